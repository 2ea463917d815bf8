/* fwdauth.c — which request is forward-auth asking about?  (DESIGN §6)
 *
 * Three dialects, recognised from the headers:
 *   nginx / ingress-nginx: X-Original-URL (scheme://host/uri) or
 *     X-Original-URI, X-Original-Method, X-Sent-From;
 *   Traefik ForwardAuth: X-Forwarded-Method, -Uri, -Host, -Proto;
 *   Envoy ext_authz (HTTP): the request itself, path after the prefix.
 * Dialect headers are believed only from trusted_proxies; from anyone else
 * they are refused (never evaluated as some other path, which would skip the
 * real route's scopes).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>

#include "tollgate/log.h"
#include "srv_internal.h"

/* Method names are RFC 9110 tokens; anything else is refused. */
static bool method_ok(const char *m)
{
    size_t n = 0;

    for (; m[n] != '\0'; n++)
        if (!((m[n] >= 'A' && m[n] <= 'Z') || (m[n] >= 'a' && m[n] <= 'z') || m[n] == '-' ||
              m[n] == '_'))
            return false;
    return n > 0 && n <= 32;
}

/* Warn once per peer and process (bounded set) about refused dialect headers. */
static void warn_untrusted(srv_t *s, const char *peer)
{
    bool warn = true;

    pthread_mutex_lock(&s->warn_mu);
    for (unsigned i = 0; i < s->nwarned && warn; i++)
        if (strcmp(s->warned[i], peer) == 0)
            warn = false;
    if (warn && s->nwarned < sizeof(s->warned) / sizeof(s->warned[0]))
        snprintf(s->warned[s->nwarned++], SRV_IP_STRLEN, "%s", peer);
    pthread_mutex_unlock(&s->warn_mu);
    if (warn)
        log_warn("forward-auth: dialect headers from %s, which is not in trusted_proxies: "
                 "refused with 403",
                 peer);
}

/* "https://host:port/path?q" -> host (into the request's own headers' memory is
 * not possible, so `host` points into a buffer of the request) and target. */
static int split_url(srv_req_t *r, const char *url, char *hostbuf, size_t hostlen)
{
    const char *p, *slash;
    size_t n;

    if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        if (r->peer_trusted)
            r->https = true;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else {
        return -1;
    }
    slash = strchr(p, '/');
    n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= hostlen)
        return -1;
    memcpy(hostbuf, p, n);
    hostbuf[n] = '\0';
    r->host = hostbuf;
    r->target = slash ? slash : "/";
    return 0;
}

int srv_fwdauth_parse(srv_req_t *r, const char *own_target)
{
    const char *o_url = r->h.o_url;
    const char *o_uri = r->h.o_uri;
    const char *o_method = r->h.o_method;
    const char *sent_from = r->h.sent_from;
    const char *f_uri = r->h.f_uri;
    const char *f_method = r->h.f_method;
    const char *f_proto = r->h.f_proto;
    const char *prefix = r->cfg->forward_auth.path;
    size_t plen = strlen(prefix);

    if (o_url || o_uri || o_method || sent_from)
        r->mode = SRV_MODE_FWD_NGINX;
    else if (f_uri || f_method)
        r->mode = SRV_MODE_FWD_TRAEFIK;
    else
        r->mode = SRV_MODE_FWD_ENVOY;

    if (r->mode != SRV_MODE_FWD_ENVOY && !r->peer_trusted) {
        warn_untrusted(r->w->srv, r->peer);
        return 403;
    }

    switch (r->mode) {
    case SRV_MODE_FWD_NGINX:
        if (o_url != NULL) {
            if (split_url(r, o_url, r->hostbuf, sizeof(r->hostbuf)) != 0)
                return 400;
        } else if (o_uri != NULL) {
            r->target = o_uri;
            r->host = r->h.f_host;
            if (r->host == NULL)
                r->host = r->h.host;
        } else {
            return 400; /* nginx dialect without the original target */
        }
        if (o_method != NULL)
            r->method = o_method;
        break;
    case SRV_MODE_FWD_TRAEFIK:
        r->target = f_uri != NULL ? f_uri : "/";
        r->host = r->h.f_host;
        if (f_method != NULL)
            r->method = f_method;
        break;
    case SRV_MODE_FWD_ENVOY:
    default:
        /* own_target starts with the prefix: "/auth/x?y" -> "/x?y"; "/auth" -> "/". */
        r->target = own_target + plen;
        if (*r->target == '\0') {
            r->target = "/";
        } else if (*r->target == '?') {
            /* "/auth?x" is a request for "/?x": keep the query. */
            if (asprintf(&r->target_own, "/%s", r->target) < 0)
                return 500;
            r->target = r->target_own;
        }
        r->host = r->h.host;
        break;
    case SRV_MODE_PROXY:
        break;
    }
    if (r->peer_trusted && f_proto != NULL && strcasecmp(f_proto, "https") == 0)
        r->https = true;
    if (!method_ok(r->method))
        return 400;
    r->method_bit = rl_method_bit(r->method);
    if (r->method_bit == 0)
        r->method_bit = RL_METHOD_OTHER;
    if (r->target[0] != '/')
        return 400;
    return 0;
}
