/* dec_fwd.c — which request is forward-auth asking about?
 * (docs/forward-auth.md)  Pure code over the scanned headers.
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
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dec_fwd.h"

/* An upper-case RFC 9110 token: methods are case-sensitive and every
 * registered one is upper-case, but frameworks differ ("delete" is DELETE
 * to some), so another spelling is refused rather than decided as an
 * unknown method no `methods:` rule matches. */
static bool method_ok(const char *m)
{
    size_t n = 0;

    for (; m[n] != '\0'; n++)
        if (!((m[n] >= 'A' && m[n] <= 'Z') || m[n] == '-' || m[n] == '_'))
            return false;
    return n > 0 && n <= 32;
}

const char *dec_fwd_repeat_dialect(const dec_req_t *r, const char *name)
{
    const dec_headers_t *in = &r->in.headers;
    cfg_dialect_t d = r->cfg->forward_auth.dialect;

    if (strncmp(name, "X-Forwarded-", 12) == 0 && strcmp(name, "X-Forwarded-For") != 0) {
        /* X-Forwarded-Host/-Proto alone are any proxy's: Traefik's when
         * pinned, or when the request carries Traefik's own -Uri/-Method */
        if (d == CFG_DIALECT_TRAEFIK ||
            (d == CFG_DIALECT_AUTO && (in->find(in->ctx, "X-Forwarded-Uri") != NULL ||
                                       in->find(in->ctx, "X-Forwarded-Method") != NULL)))
            return "traefik";
        return NULL;
    }
    if (strncmp(name, "X-Original-", 11) == 0 &&
        (d == CFG_DIALECT_AUTO || d == CFG_DIALECT_NGINX || d == CFG_DIALECT_INGRESS_NGINX))
        return "nginx";
    return NULL;
}

static dec_fwd_result_t refuse(dec_req_t *r, dec_fwd_result_t result, const char *reason)
{
    r->v.reason = reason;
    return result;
}

/* "https://host:port/path?q" -> r->host (copied into r->hostbuf) and target. */
static int split_url(dec_req_t *r, const char *url)
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
    /* userinfo ("user:password@host") would be read as the host, and its
     * password written into the audit line: a request URL never has it */
    if (n == 0 || n >= sizeof(r->hostbuf) || memchr(p, '@', n) != NULL)
        return -1;
    memcpy(r->hostbuf, p, n);
    r->hostbuf[n] = '\0';
    r->host = r->hostbuf;
    r->target = slash ? slash : "/";
    return 0;
}

#define SEEN_NGINX 1u
#define SEEN_TRAEFIK 2u

static unsigned dialects_seen(const dec_hdrs_t *h)
{
    unsigned seen = 0;

    if (h->o_url || h->o_uri || h->o_method || h->sent_from)
        seen |= SEEN_NGINX;
    if (h->f_uri || h->f_method)
        seen |= SEEN_TRAEFIK;
    return seen;
}

static dec_fwd_result_t parse_nginx(dec_req_t *r)
{
    const dec_hdrs_t *h = &r->h;
    bool ingress = r->cfg->forward_auth.dialect == CFG_DIALECT_INGRESS_NGINX;

    if (h->o_url != NULL) {
        if (split_url(r, h->o_url) != 0)
            return refuse(r, DEC_FWD_BAD, "bad_original");
        /* Both: one may be a client's, so they must name the same target,
         * and the URL the host of Host.  ingress-nginx sets both itself and
         * Host to the auth service's: pinned to it, the URL's host is the
         * host. */
        if (h->o_uri != NULL &&
            (strcmp(h->o_uri, r->target) != 0 ||
             (!ingress && (h->host == NULL || strcasecmp(h->host, r->host) != 0))))
            return refuse(r, DEC_FWD_CONFLICT, "dialect_conflict");
        /* ingress-nginx builds the URL from Host ($http_host) but routes an
         * absolute-form request by its request line's host ($host): given
         * X-Original-Host: $host, the two must agree. */
        if (ingress && h->o_host != NULL && !http_host_equal(h->o_host, r->host))
            return refuse(r, DEC_FWD_CONFLICT, "host_mismatch");
    } else if (ingress) {
        return refuse(r, DEC_FWD_BAD, "bad_original"); /* it always sends the URL */
    } else if (h->o_uri != NULL) {
        r->target = h->o_uri;
        r->host = h->host; /* what the nginx config sets, never X-Forwarded-Host */
    } else {
        return refuse(r, DEC_FWD_BAD, "bad_original"); /* no original target */
    }
    if (h->o_method != NULL)
        r->method = h->o_method;
    return DEC_FWD_OK;
}

static dec_fwd_result_t parse_traefik(dec_req_t *r)
{
    if (r->h.f_uri == NULL)
        return refuse(r, DEC_FWD_BAD, "bad_original");
    r->target = r->h.f_uri;
    r->host = r->h.f_host;
    if (r->h.f_method != NULL)
        r->method = r->h.f_method;
    return DEC_FWD_OK;
}

/* `rest` is what follows the prefix: "/x?y" -> "/x?y"; "" -> "/"; "?x" -> "/?x". */
static dec_fwd_result_t parse_envoy(dec_req_t *r, const char *rest)
{
    r->target = rest;
    if (*rest == '\0') {
        r->target = "/";
    } else if (*rest == '?') {
        if (asprintf(&r->target_own, "/%s", rest) < 0) {
            r->target_own = NULL;
            return refuse(r, DEC_FWD_NOMEM, "out_of_memory");
        }
        r->target = r->target_own;
    }
    return DEC_FWD_OK;
}

/* The dialect of this request under forward_auth.dialect. */
static dec_fwd_result_t pick_mode(dec_req_t *r, const char *rest)
{
    unsigned seen = dialects_seen(&r->h);

    switch (r->cfg->forward_auth.dialect) {
    case CFG_DIALECT_NGINX:
    case CFG_DIALECT_INGRESS_NGINX:
        r->mode = DEC_MODE_FWD_NGINX;
        return DEC_FWD_OK;
    case CFG_DIALECT_TRAEFIK:
        r->mode = DEC_MODE_FWD_TRAEFIK;
        return DEC_FWD_OK;
    case CFG_DIALECT_ENVOY:
        r->mode = DEC_MODE_FWD_ENVOY;
        return DEC_FWD_OK;
    case CFG_DIALECT_AUTO:
    default:
        break;
    }
    /* Envoy's path_prefix always yields "/auth/<path>"; nginx and Traefik
     * ask at the bare prefix.  Anything that fits two dialects is refused. */
    if (seen == (SEEN_NGINX | SEEN_TRAEFIK) || (seen != 0 && rest[0] == '/'))
        return refuse(r, DEC_FWD_CONFLICT, "dialect_conflict");
    r->mode = seen & SEEN_NGINX     ? DEC_MODE_FWD_NGINX
              : seen & SEEN_TRAEFIK ? DEC_MODE_FWD_TRAEFIK
                                    : DEC_MODE_FWD_ENVOY;
    return DEC_FWD_OK;
}

/* The transport described the original request itself (a gRPC ext_authz
 * CheckRequest): believed as given. */
static dec_fwd_result_t from_input(dec_req_t *r)
{
    switch (r->in.dialect) {
    case DEC_DIALECT_NGINX:
        r->mode = DEC_MODE_FWD_NGINX;
        break;
    case DEC_DIALECT_TRAEFIK:
        r->mode = DEC_MODE_FWD_TRAEFIK;
        break;
    case DEC_DIALECT_ENVOY:
    case DEC_DIALECT_NONE:
    default:
        r->mode = DEC_MODE_FWD_ENVOY;
        break;
    }
    if (r->in.o_target == NULL)
        return refuse(r, DEC_FWD_BAD, "bad_original");
    r->target = r->in.o_target;
    r->host = r->in.o_host;
    if (r->in.o_method != NULL)
        r->method = r->in.o_method;
    return DEC_FWD_OK;
}

static dec_fwd_result_t parse_dialect(dec_req_t *r, const char *own_target)
{
    const char *rest = own_target + strlen(r->cfg->forward_auth.path);
    dec_fwd_result_t st;

    if (r->in.dialect != DEC_DIALECT_NONE)
        return from_input(r);
    if ((st = pick_mode(r, rest)) != DEC_FWD_OK)
        return st;
    if (r->mode != DEC_MODE_FWD_ENVOY && !r->peer_trusted) {
        DEC_HOOK(r, untrusted_forwarder, r->in.peer != NULL ? r->in.peer : "");
        return refuse(r, DEC_FWD_UNTRUSTED, "untrusted_forwarder");
    }
    if (r->mode == DEC_MODE_FWD_NGINX)
        return parse_nginx(r);
    if (r->mode == DEC_MODE_FWD_TRAEFIK)
        return parse_traefik(r);
    return parse_envoy(r, rest);
}

dec_fwd_result_t dec_fwd_parse(dec_req_t *r, const char *own_target)
{
    const char *f_proto = r->h.f_proto;
    dec_fwd_result_t st = parse_dialect(r, own_target);

    if (st != DEC_FWD_OK)
        return st;
    if (r->peer_trusted && f_proto != NULL && strcasecmp(f_proto, "https") == 0)
        r->https = true;
    if (!method_ok(r->method) || r->target[0] != '/')
        return refuse(r, DEC_FWD_BAD, "bad_original");
    r->method_bit = rl_method_bit(r->method);
    if (r->method_bit == 0)
        r->method_bit = RL_METHOD_OTHER;
    return DEC_FWD_OK;
}
