/* srv_admin_bans.h — bans and lockouts in the admin API (admin_bans.c;
 * docs/reference.md §4), for server/ sources and the fuzz target only.
 *
 *   POST   /admin/v1/bans            ban a target for a duration (write)
 *   GET    /admin/v1/bans            list, paged by target (read)
 *   DELETE /admin/v1/bans/{target}   lift (write; 404 when none)
 *   GET    /admin/v1/lockouts        list locked ip keys, paged (read)
 *   DELETE /admin/v1/lockouts/{key}  lift a lockout everywhere (write)
 */
#ifndef TOLLGATE_SRV_ADMIN_BANS_H
#define TOLLGATE_SRV_ADMIN_BANS_H

#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth_ban.h"

#define SRV_BANS_MAX_BODY 4096 /* bytes of a POST /admin/v1/bans body */
#define SRV_BANS_PAGE_DEFAULT 100
#define SRV_BANS_PAGE_MAX 1000

/* A POST /admin/v1/bans body. */
typedef struct srv_ban_req {
    char target[AUTH_BAN_TARGET_MAX + 1]; /* canonical */
    auth_ban_kind_t kind;
    int64_t duration_ms; /* AUTH_BAN_MIN_MS .. AUTH_BAN_MAX_MS */
    char reason[AUTH_BAN_REASON_MAX + 1];
} srv_ban_req_t;

/* {"target": "ip:..|cidr:..|client:..", "duration": <seconds> | "90s" |
 * "15m" | "1h" | "7d", "reason": ".."} (reason optional, at most
 * AUTH_BAN_REASON_MAX bytes, control bytes as '?').  Unknown members are
 * refused.  0, or -1 with a message in err (never the body's bytes but a
 * target's canonical form); `out` is then zeroed. */
int srv_admin_parse_ban(const char *body, size_t len, const auth_ban_rules_t *rules,
                        srv_ban_req_t *out, char *err, size_t errlen);

struct srv_worker;
struct evhttp_request;
/* The handlers of the route table (admin.c). */
void srv_admin_ban_post(struct srv_worker *w, struct evhttp_request *req);
void srv_admin_bans_get(struct srv_worker *w, struct evhttp_request *req);
void srv_admin_ban_delete(struct srv_worker *w, struct evhttp_request *req);
void srv_admin_lockouts_get(struct srv_worker *w, struct evhttp_request *req);
void srv_admin_lockout_delete(struct srv_worker *w, struct evhttp_request *req);

#endif
