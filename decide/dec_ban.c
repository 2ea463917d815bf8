/* dec_ban.c — bans (auth_ban.h): an IP or CIDR ban refuses the request
 * before its credentials are looked at (before the lockout step, so a
 * banned client's wrong keys count no failure), a client-id ban once the
 * identity is known (before scopes and limits).  The answer is 403
 * `banned` and says nothing else: not which ban, not until when (no
 * Retry-After: a ban ends when an operator says, and its end would tell
 * the client when to come back).  A dry run (explain) is refused the same
 * way and records which kind of ban stopped it.
 */
#include "tollgate/auth_ban.h"
#include "dec_internal.h"

static dec_step_t banned(dec_req_t *r, const char *kind)
{
    if (r->in.explain != NULL && r->in.dry_run)
        r->in.explain->banned = kind;
    r->v.reason = "banned";
    return dec_verdict(r, 403, "banned", "banned");
}

dec_step_t dec_step_ban_ip(dec_req_t *r)
{
    auth_ban_t *b = r->ctx->c.bans;

    if (b == NULL || r->ip[0] == '\0' || !auth_ban_check_ip(b, r->ip, dec_wall_ms(r), NULL))
        return DEC_NEXT;
    return banned(r, "ip");
}

dec_step_t dec_step_ban_client(dec_req_t *r)
{
    auth_ban_t *b = r->ctx->c.bans;

    if (b == NULL || r->id.client_id == NULL ||
        !auth_ban_check_client(b, r->id.client_id, dec_wall_ms(r), NULL))
        return DEC_NEXT;
    return banned(r, "client");
}
