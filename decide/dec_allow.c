/* dec_allow.c — the verdict of an allowed request: forward-auth's 200 with
 * the identity headers, or (proxy mode) where to forward it, with the
 * headers tollgate vouches for and the credentials to leave out; a POST to
 * tickets.path gets its ticket (dec_authn.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tollgate/auth_jwt.h"
#include "dec_internal.h"

/* X-Auth-* of an allow, values encoded (http_hdr_value_encode).  Anonymous
 * forward-auth allows carry them too, empty (X-Auth-Method: none), so an
 * ingress that copies them onto the upstream request replaces whatever a
 * client sent under those names. */
static int identity_add(dec_req_t *r)
{
    dec_ident_hdrs_t *v = &r->idv;
    char scopes[1024];
    http_hdr_value_encode(r->id.client_id, false, v->client_id, sizeof(v->client_id));
    http_hdr_value_encode(r->id.subject, false, v->subject, sizeof(v->subject));
    auth_identity_scopes_str(&r->id, scopes, sizeof(scopes));
    http_hdr_value_encode(scopes, true, v->scopes, sizeof(v->scopes));
    dec_verdict_header(r, "X-Auth-Client-Id", v->client_id, false);
    dec_verdict_header(r, "X-Auth-Subject", v->subject, false);
    dec_verdict_header(r, "X-Auth-Scopes", v->scopes, false);
    dec_verdict_header(r, "X-Auth-Method",
                       r->id.ticket                      ? "ticket"
                       : r->id.kind == AUTH_KIND_API_KEY ? "api_key"
                       : r->id.kind == AUTH_KIND_JWT     ? "jwt"
                                                         : "none",
                       false);
    return 0;
}

/* claim_to_headers values, encoded like the identity headers.  Forward-auth
 * sends every configured name (empty when this identity has none, so an
 * ingress that copies it replaces a client's); the proxy the identity's own. */
static int claim_add(dec_req_t *r, bool every)
{
    size_t nnames = 0, need = 1, used = 0, n = 0;
    const char *const *names =
        every ? auth_jwt_claim_headers(r->cfg->auth.jwt_verifier, &nnames) : NULL;
    char *buf;

    for (size_t i = 0; i < r->id.nhdrs; i++)
        need += 3 * strlen(r->id.hdrs[i].value) + 1;
    if (nnames == 0 && r->id.nhdrs == 0)
        return 0;
    if ((buf = r->owned[1] = malloc(need)) == NULL)
        return -1;
    for (size_t i = 0; i < r->id.nhdrs && n < AUTH_JWT_MAX_CLAIM_HDRS; i++, n++) {
        dec_verdict_header(r, r->id.hdrs[i].name, buf + used, false);
        used += http_hdr_value_encode(r->id.hdrs[i].value, true, buf + used, need - used);
        used++;
    }
    for (size_t i = 0; i < nnames && n < AUTH_JWT_MAX_CLAIM_HDRS; i++) {
        size_t k;

        for (k = 0; k < r->id.nhdrs; k++)
            if (strcasecmp(r->id.hdrs[k].name, names[i]) == 0)
                break;
        if (k == r->id.nhdrs) {
            dec_verdict_header(r, names[i], "", false);
            n++;
        }
    }
    return 0;
}

static dec_step_t out_of_memory(dec_req_t *r)
{
    r->v.reason = "out_of_memory";
    r->v.decision = NULL;
    r->v.nset = 0; /* none of an allow's headers on the error */
    r->v.nremove = 0;
    return dec_verdict(r, 500, "unavailable", "out of memory");
}

/* Proxy mode: what the upstream gets. */
static dec_step_t forward(dec_req_t *r)
{
    const char *authz = r->h.authorization;

    r->v.kind = DEC_FORWARD;
    /* Vouch for these ourselves: a client's own values are never passed on. */
    dec_verdict_header(r, "X-Request-ID", r->reqid, false);
    dec_verdict_header(r, "X-Forwarded-Proto", r->https ? "https" : "http", false);
    dec_verdict_header(r, "X-Real-IP", r->ip, false);
    if (r->host != NULL)
        dec_verdict_header(r, "X-Forwarded-Host", r->host, false);
    if (r->id.kind != AUTH_KIND_NONE && (identity_add(r) != 0 || claim_add(r, false) != 0))
        return out_of_memory(r);
    if (r->cfg->proxy.hide_credentials) {
        r->v.remove[r->v.nremove++] = "X-API-Key";
        if (authz != NULL && strncasecmp(authz, "Bearer ", 7) == 0)
            r->v.remove[r->v.nremove++] = "Authorization";
    }
    /* The normalized path and the query unchanged. */
    if (asprintf(&r->owned[0], "%s%s%s", r->path, r->query ? "?" : "",
                 r->query ? r->query : "") < 0) {
        r->owned[0] = NULL;
        return out_of_memory(r);
    }
    r->v.forward = (dec_forward_t){
        .upstream = r->route->upstream,
        .target = r->owned[0],
        .timeout_ms = r->route->upstream_timeout_ms,
        .peer_trusted = r->peer_trusted,
    };
    return DEC_ANSWERED;
}

dec_step_t dec_allow(dec_req_t *r)
{
    if (r->mode == DEC_MODE_TICKET)
        return dec_issue_ticket(r);
    r->v.decision = "allow";
    r->v.status = 200;
    if (r->id.kind == AUTH_KIND_API_KEY &&
        (r->id.deprecated || r->cfg->auth.api_keys.deprecated)) {
        r->deprecated = true;
        DEC_HOOK(r, deprecated, r->id.client_id);
    }
    if (r->mode == DEC_MODE_PROXY)
        return forward(r);
    r->v.kind = DEC_ALLOW;
    if (identity_add(r) != 0 || claim_add(r, true) != 0)
        return out_of_memory(r);
    return DEC_ANSWERED;
}
