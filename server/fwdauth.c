/* fwdauth.c — which request is forward-auth asking about?  (docs/forward-auth.md)
 *
 * Three dialects:
 *   nginx / ingress-nginx: X-Original-URL (scheme://host/uri) or
 *     X-Original-URI (host: Host), X-Original-Method, X-Sent-From;
 *   Traefik ForwardAuth: X-Forwarded-Method, -Uri, -Host, -Proto;
 *   Envoy ext_authz (HTTP): the request itself, path after the prefix.
 * Ingresses pass most client headers through to the auth request, so the
 * client can add another dialect's headers.  forward_auth.dialect pins the
 * one dialect that is read; `auto` recognises it and refuses (400) what is
 * ambiguous: headers of two dialects, dialect headers on an Envoy-style
 * "/auth/<path>" request, X-Original-URL and X-Original-URI that disagree.
 * A header the named ingress passes through from the client unchanged never
 * chooses the method, host or path (the nginx host is Host, never a client's
 * X-Forwarded-Host).  nginx and Traefik headers are believed only from
 * trusted_proxies; from anyone else they are refused (403).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>

#include "tollgate/log.h"
#include "tollgate/metrics.h"
#include "tollgate/util_clock.h"
#include "srv_req.h"

/* Method names are RFC 9110 tokens; anything else is refused. */
/* An upper-case method name: methods are case-sensitive (RFC 9110 §9.1)
 * and every registered one is upper-case, but frameworks differ ("delete"
 * is DELETE to some, unknown to others), so another spelling is refused
 * rather than decided as an unknown method no `methods:` rule matches. */
static bool method_ok(const char *m)
{
    size_t n = 0;

    for (; m[n] != '\0'; n++)
        if (!((m[n] >= 'A' && m[n] <= 'Z') || m[n] == '-' || m[n] == '_'))
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
        snprintf(s->warned[s->nwarned++], HTTP_IP_STRLEN, "%s", peer);
    pthread_mutex_unlock(&s->warn_mu);
    if (warn)
        log_warn("forward-auth: dialect headers from %s, which is not in trusted_proxies: "
                 "refused with 403",
                 peer);
}

/* Which dialect's own header `name` (canonical spelling) is, under
 * forward_auth.dialect and the request's other headers; NULL: none. */
static const char *repeat_dialect(const srv_req_t *r, const char *name)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(r->req);
    cfg_dialect_t d = r->cfg->forward_auth.dialect;

    if (strncmp(name, "X-Forwarded-", 12) == 0 && strcmp(name, "X-Forwarded-For") != 0) {
        /* X-Forwarded-Host/-Proto alone are any proxy's: Traefik's when
         * pinned, or when the request carries Traefik's own -Uri/-Method */
        if (d == CFG_DIALECT_TRAEFIK ||
            (d == CFG_DIALECT_AUTO &&
             (evhttp_find_header(in, "X-Forwarded-Uri") != NULL ||
              evhttp_find_header(in, "X-Forwarded-Method") != NULL)))
            return "traefik";
        return NULL;
    }
    if (strncmp(name, "X-Original-", 11) == 0 &&
        (d == CFG_DIALECT_AUTO || d == CFG_DIALECT_NGINX || d == CFG_DIALECT_INGRESS_NGINX))
        return "nginx";
    return NULL;
}

void srv_fwdauth_note_repeat(srv_req_t *r)
{
    const char *dialect;
    uint64_t held = 0;

    if (r->h.dup_name == NULL || !r->peer_trusted ||
        (dialect = repeat_dialect(r, r->h.dup_name)) == NULL)
        return;
    metrics_forwarded_repeat(r->w->metrics, dialect);
    if (!log_ratelimit_take(&r->w->srv->repeat_log, util_mono_ms(), SRV_REPEAT_LOG_MS,
                            &held))
        return;
    if (strcmp(dialect, "traefik") == 0)
        log_warn("forward-auth: %s came twice from %s: refused (400 duplicate_header). "
                 "Traefik with trustForwardHeader on, behind a proxy that passes the "
                 "client's own X-Forwarded-* headers on looks like this; set it to false "
                 "(%llu more such requests since the last line)",
                 r->h.dup_name, r->peer, (unsigned long long)held);
    else
        log_warn(
            "forward-auth: %s came twice from %s: refused (400 duplicate_header); "
            "the proxy in front passes a client's own copy on (%llu more such requests "
            "since the last line)",
            r->h.dup_name, r->peer, (unsigned long long)held);
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

/* Which dialects' own headers does the request carry? */
#define SEEN_NGINX 1u
#define SEEN_TRAEFIK 2u

static unsigned dialects_seen(const srv_hdrs_t *h)
{
    unsigned seen = 0;

    if (h->o_url || h->o_uri || h->o_method || h->sent_from)
        seen |= SEEN_NGINX;
    if (h->f_uri || h->f_method)
        seen |= SEEN_TRAEFIK;
    return seen;
}

static srv_fwd_result_t refuse(srv_req_t *r, srv_fwd_result_t result, const char *reason)
{
    r->reason = reason;
    return result;
}

static srv_fwd_result_t parse_nginx(srv_req_t *r)
{
    const srv_hdrs_t *h = &r->h;
    bool ingress = r->cfg->forward_auth.dialect == CFG_DIALECT_INGRESS_NGINX;

    if (h->o_url != NULL) {
        if (split_url(r, h->o_url, r->hostbuf, sizeof(r->hostbuf)) != 0)
            return refuse(r, SRV_FWD_BAD, "bad_original");
        /* Both: one may be a client's (nginx passes client headers on), so
         * they must name the same target, and the URL the host of Host.
         * ingress-nginx sets both itself (with auth-method, X-Original-URI
         * $request_uri next to X-Original-URL) and Host to the auth
         * service's: pinned to it, the URL's host is the host. */
        if (h->o_uri != NULL &&
            (strcmp(h->o_uri, r->target) != 0 ||
             (!ingress && (h->host == NULL || strcasecmp(h->host, r->host) != 0))))
            return refuse(r, SRV_FWD_CONFLICT, "dialect_conflict");
        /* ingress-nginx builds the URL from the Host header ($http_host)
         * but routes an absolute-form request by its request line's host
         * ($host): given X-Original-Host: $host (docs/forward-auth.md), the
         * two must agree.  A client's own copy can only make it refuse. */
        if (ingress && h->o_host != NULL && !http_host_equal(h->o_host, r->host))
            return refuse(r, SRV_FWD_CONFLICT, "host_mismatch");
    } else if (ingress) {
        return refuse(r, SRV_FWD_BAD, "bad_original"); /* it always sends the URL */
    } else if (h->o_uri != NULL) {
        r->target = h->o_uri;
        r->host = h->host; /* what the nginx config sets, never X-Forwarded-Host */
    } else {
        return refuse(r, SRV_FWD_BAD, "bad_original"); /* no original target */
    }
    if (h->o_method != NULL)
        r->method = h->o_method;
    return SRV_FWD_OK;
}

static srv_fwd_result_t parse_traefik(srv_req_t *r)
{
    if (r->h.f_uri == NULL)
        return refuse(r, SRV_FWD_BAD, "bad_original");
    r->target = r->h.f_uri;
    r->host = r->h.f_host;
    if (r->h.f_method != NULL)
        r->method = r->h.f_method;
    return SRV_FWD_OK;
}

/* `rest` is what follows the prefix: "/x?y" -> "/x?y"; "" -> "/"; "?x" -> "/?x". */
static srv_fwd_result_t parse_envoy(srv_req_t *r, const char *rest)
{
    r->target = rest;
    if (*rest == '\0') {
        r->target = "/";
    } else if (*rest == '?') {
        if (asprintf(&r->target_own, "/%s", rest) < 0)
            return refuse(r, SRV_FWD_NOMEM, "out_of_memory");
        r->target = r->target_own;
    }
    r->host = r->h.host;
    return SRV_FWD_OK;
}

/* The dialect of this request under forward_auth.dialect. */
static srv_fwd_result_t pick_mode(srv_req_t *r, const char *rest)
{
    unsigned seen = dialects_seen(&r->h);

    switch (r->cfg->forward_auth.dialect) {
    case CFG_DIALECT_NGINX:
    case CFG_DIALECT_INGRESS_NGINX:
        r->mode = SRV_MODE_FWD_NGINX;
        return SRV_FWD_OK;
    case CFG_DIALECT_TRAEFIK:
        r->mode = SRV_MODE_FWD_TRAEFIK;
        return SRV_FWD_OK;
    case CFG_DIALECT_ENVOY:
        r->mode = SRV_MODE_FWD_ENVOY;
        return SRV_FWD_OK;
    case CFG_DIALECT_AUTO:
    default:
        break;
    }
    /* Envoy's path_prefix always yields "/auth/<path>"; nginx and Traefik
     * ask at the bare prefix.  Anything that fits two dialects is refused. */
    if (seen == (SEEN_NGINX | SEEN_TRAEFIK) || (seen != 0 && rest[0] == '/'))
        return refuse(r, SRV_FWD_CONFLICT, "dialect_conflict");
    r->mode = seen & SEEN_NGINX     ? SRV_MODE_FWD_NGINX
              : seen & SEEN_TRAEFIK ? SRV_MODE_FWD_TRAEFIK
                                    : SRV_MODE_FWD_ENVOY;
    return SRV_FWD_OK;
}

srv_fwd_result_t srv_fwdauth_parse(srv_req_t *r, const char *own_target)
{
    const char *rest = own_target + strlen(r->cfg->forward_auth.path);
    const char *f_proto = r->h.f_proto;
    srv_fwd_result_t st = pick_mode(r, rest);

    if (st != SRV_FWD_OK)
        return st;
    if (r->mode != SRV_MODE_FWD_ENVOY && !r->peer_trusted) {
        warn_untrusted(r->w->srv, r->peer);
        return refuse(r, SRV_FWD_UNTRUSTED, "untrusted_forwarder");
    }
    switch (r->mode) {
    case SRV_MODE_FWD_NGINX:
        st = parse_nginx(r);
        break;
    case SRV_MODE_FWD_TRAEFIK:
        st = parse_traefik(r);
        break;
    case SRV_MODE_FWD_ENVOY:
    case SRV_MODE_PROXY:
    default:
        st = parse_envoy(r, rest);
        break;
    }
    if (st != SRV_FWD_OK)
        return st;
    if (r->peer_trusted && f_proto != NULL && strcasecmp(f_proto, "https") == 0)
        r->https = true;
    if (!method_ok(r->method) || r->target[0] != '/')
        return refuse(r, SRV_FWD_BAD, "bad_original");
    r->method_bit = rl_method_bit(r->method);
    if (r->method_bit == 0)
        r->method_bit = RL_METHOD_OTHER;
    return SRV_FWD_OK;
}
