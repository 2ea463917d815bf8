/* dec_identify.c — steps 1 and 2: who is asking, and about which request.
 *
 * Step 1 (identify): the request id, the client address (X-Forwarded-For or
 * X-Real-IP believed from trusted_proxies only), the method, and the
 * refusals that need nothing else: a head the transport refused, headers
 * dec_hdrs_scan() refused.
 * Step 2 (own paths): the normalized path; tollgate's own paths (health,
 * tickets); forward-auth, whose original request replaces method, target
 * and host (dec_fwd.c reads the dialect); then the names no client may send.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dec_internal.h"
#include "dec_fwd.h"

/* ---- the header scan ------------------------------------------------------ */

typedef struct known {
    const char *name;
    size_t off;
    bool single; /* a second copy is refused */
} known_t;

#define K(n, f, s)                                                                         \
    {                                                                                      \
        n, offsetof(dec_hdrs_t, f), s                                                      \
    }
static const known_t known[] = {
    K("Host", host, true),
    K("Origin", origin, false),
    K("X-API-Key", api_key, true),
    K("X-Real-IP", real_ip, true),
    K("X-Request-ID", request_id, false),
    K("X-Sent-From", sent_from, true),
    K("Authorization", authorization, true),
    K("X-Original-URI", o_uri, true),
    K("X-Original-URL", o_url, true),
    K("X-Forwarded-Uri", f_uri, true),
    K("X-Forwarded-Host", f_host, true),
    K("X-Forwarded-Proto", f_proto, true),
    K("X-Forwarded-Method", f_method, true),
    K("X-Original-Method", o_method, true),
    K("X-Original-Host", o_host, true),
    K("Content-Length", content_length, true),
    K("Transfer-Encoding", transfer_encoding, true),
    K("Content-Type", content_type, false),
    K("Access-Control-Request-Method", acrm, false),
    K("Access-Control-Request-Headers", acrh, false),
};
#undef K

/* Visible ASCII, obs-text, SP and HTAB only (RFC 9110 §5.5). */
static bool value_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

static bool digits(const char *s)
{
    size_t n = strspn(s, "0123456789");

    return n > 0 && n <= 18 && s[n] == '\0';
}

/* Remember a name spelled like one of tollgate's own headers. */
static void note_reserved(dec_hdrs_t *h, const char *name)
{
    bool variant;
    http_hdr_class_t cls = http_hdr_class(name, &variant);

    if (cls == HTTP_HDR_IDENTITY && variant)
        h->identity_variant = true;
    else if (cls == HTTP_HDR_IDENTITY)
        h->identity_exact = true;
    if (variant)
        h->reserved_variant = true;
}

static int scan_one(void *arg, const char *key, const char *value)
{
    dec_hdrs_t *h = arg;
    size_t len = strlen(key);

    if (!http_hdr_name_ok(key)) {
        h->bad = "bad_header_name";
        return 1;
    }
    if (!value_ok(value)) {
        h->bad = "bad_header_value";
        return 1;
    }
    if (memchr(key, '_', len) != NULL || memchr(key, '.', len) != NULL ||
        strncasecmp(key, "X-Auth-", 7) == 0)
        note_reserved(h, key);
    if (http_hdr_method_override(key))
        h->method_override = true;
    if (len == 15 && strcasecmp(key, "X-Forwarded-For") == 0) {
        if (h->nxff++ == 0)
            h->xff = value;
        return 0;
    }
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        const char **slot = (const char **)((char *)h + known[i].off);

        if (strlen(known[i].name) != len || strcasecmp(key, known[i].name) != 0)
            continue;
        if (*slot == NULL) {
            *slot = value;
        } else if (known[i].single) {
            h->dup_name = known[i].name;
            h->bad = "duplicate_header";
            return 1;
        }
        break;
    }
    return 0;
}

/* One walk finds the headers the steps read and refuses what an upstream
 * could read differently (request smuggling, RFC 9112 §5.1 and §6.3):
 * field names that are not tokens, control bytes in values, a
 * Content-Length that is not digits, Transfer-Encoding other than a single
 * "chunked" or next to a Content-Length, a second copy of a header that
 * must be single (Host, credentials, framing, dialect headers). */
int dec_hdrs_scan(dec_hdrs_t *h, const dec_headers_t *in)
{
    in->each(in->ctx, scan_one, h);
    if (h->bad != NULL)
        return -1;
    if (h->content_length != NULL && !digits(h->content_length))
        h->bad = "bad_content_length";
    else if (h->transfer_encoding != NULL &&
             (strcasecmp(h->transfer_encoding, "chunked") != 0 ||
              h->content_length != NULL))
        h->bad = "bad_transfer_encoding";
    return h->bad != NULL ? -1 : 0;
}

/* ---- step 1 --------------------------------------------------------------- */

typedef struct xff_join {
    char *buf; /* NULL: measuring */
    size_t len;
} xff_join_t;

static int xff_add(void *arg, const char *name, const char *value)
{
    xff_join_t *j = arg;
    size_t n = strlen(value);

    if (strcasecmp(name, "X-Forwarded-For") != 0)
        return 0;
    if (j->len > 0) {
        if (j->buf != NULL)
            memcpy(j->buf + j->len, ", ", 2);
        j->len += 2;
    }
    if (j->buf != NULL)
        memcpy(j->buf + j->len, value, n);
    j->len += n;
    return 0;
}

/* All X-Forwarded-For headers joined with ", " (a proxy may add its own
 * line rather than append to the first).  NULL when none, or out of memory
 * (then the peer is the client).  Never cut: the rightmost hops are the
 * trusted proxies' own (*owned: free it). */
static const char *forwarded_for(dec_req_t *r, char **owned)
{
    xff_join_t j = {NULL, 0};

    *owned = NULL;
    if (r->h.nxff <= 1)
        return r->h.xff;
    r->in.headers.each(r->in.headers.ctx, xff_add, &j);
    if ((j.buf = malloc(j.len + 1)) == NULL)
        return NULL;
    j.len = 0;
    r->in.headers.each(r->in.headers.ctx, xff_add, &j);
    j.buf[j.len] = '\0';
    *owned = j.buf;
    return j.buf;
}

/* Does the raw target name the forward-auth endpoint (then the end, '/' or
 * '?')?  Decided before anything is normalized: "/auth/../healthz" is a
 * forward-auth question about "/../healthz", never the health endpoint. */
static bool is_fwd_target(const char *target, const char *prefix)
{
    size_t n = strlen(prefix);

    return strncmp(target, prefix, n) == 0 &&
           (target[n] == '\0' || target[n] == '/' || target[n] == '?');
}

/* Headers refused by the scan: the framing may be ambiguous, so the
 * connection is closed after the answer. */
static dec_step_t refuse_headers(dec_req_t *r)
{
    const char *dialect;

    r->v.close = true;
    if (r->h.dup_name != NULL && r->peer_trusted &&
        is_fwd_target(r->target, r->cfg->forward_auth.path) &&
        (dialect = dec_fwd_repeat_dialect(r, r->h.dup_name)) != NULL)
        DEC_HOOK(r, forwarded_repeat, dialect, r->h.dup_name, r->in.peer);
    r->v.reason = r->h.bad;
    return dec_verdict(r, 400, "bad_request", "malformed request header");
}

/* The head the transport refused before it read it: nothing of the request
 * is reported as the client's but a refused method's name. */
static dec_step_t refuse_head(dec_req_t *r)
{
    r->v.close = true;
    r->target = NULL;
    switch (r->in.head) {
    case DEC_HEAD_METHOD:
        return dec_refuse_method(r, dec_methods_served(r));
    case DEC_HEAD_TOO_LARGE:
        r->method = NULL;
        r->v.reason = "headers_too_large";
        return dec_verdict(r, 431, "headers_too_large",
                           "request headers over max_header_bytes");
    case DEC_HEAD_BODY_TOO_LARGE:
        r->method = NULL;
        r->v.reason = "body_too_large";
        return dec_verdict(r, 413, "payload_too_large", "request body over max_body_bytes");
    case DEC_HEAD_NUL: /* the transport cut the value there: not what was sent */
    case DEC_HEAD_OK:
    default:
        return DEC_NEXT;
    }
}

dec_step_t dec_step_identify(dec_req_t *r)
{
    const cfg_t *c = r->cfg;
    const char *peer = r->in.peer != NULL ? r->in.peer : "";

    if (r->in.head != DEC_HEAD_TOO_LARGE && r->in.head != DEC_HEAD_BODY_TOO_LARGE &&
        r->in.head != DEC_HEAD_METHOD)
        (void)dec_hdrs_scan(&r->h, &r->in.headers); /* refused below */
    if (r->in.head == DEC_HEAD_NUL)
        r->h.bad = "nul_in_header";
    if (r->h.request_id != NULL && http_reqid_valid(r->h.request_id))
        snprintf(r->reqid, sizeof(r->reqid), "%s", r->h.request_id);
    else
        http_reqid_new(r->reqid);
    r->peer_trusted = peer[0] && http_cidr_list_contains(&c->trusted_proxies, peer);
    if (r->peer_trusted) {
        char *xff = NULL;

        /* X-Forwarded-For; else X-Real-IP, which nginx auth_request setups
         * often send alone (one hop: treated like a one-entry XFF). */
        http_client_ip(peer, r->h.nxff ? forwarded_for(r, &xff) : r->h.real_ip,
                       &c->trusted_proxies, r->ip, sizeof(r->ip));
        free(xff);
    } else {
        http_client_ip(peer, NULL, &c->trusted_proxies, r->ip, sizeof(r->ip));
    }
    http_ip_key(r->ip, c->client_ipv6_prefix, r->ip_key, sizeof(r->ip_key));
    r->method = r->in.method;
    r->method_bit = r->method != NULL ? rl_method_bit(r->method) : 0;
    /* A TRACE's body would be read as the next request where a proxy in
     * front sees a body: whatever the answer, the connection ends with it. */
    if (r->method_bit == RL_METHOD_TRACE)
        r->v.close = true;
    r->https = r->in.tls;
    r->target = r->in.target != NULL ? r->in.target : "/";
    r->host = r->in.host != NULL ? r->in.host : r->h.host;
    r->mode = DEC_MODE_PROXY;
    if (r->in.head != DEC_HEAD_OK && r->in.head != DEC_HEAD_NUL)
        return refuse_head(r);
    if (r->h.bad != NULL)
        return refuse_headers(r);
    if (r->method == NULL)
        r->method = "OTHER";
    return DEC_NEXT;
}

/* ---- step 2 --------------------------------------------------------------- */

/* Split r->target into normalized path and query.  -1: bad path. */
static int normalize(dec_req_t *r)
{
    const char *q = strchr(r->target, '?');
    size_t len = q ? (size_t)(q - r->target) : strlen(r->target);
    const char *hash = memchr(r->target, '#', len);
    size_t room;

    if (hash != NULL)
        len = (size_t)(hash - r->target);
    r->query = q ? q + 1 : NULL;
    room = len + 1 < HTTP_MAX_PATH ? len + 1 : HTTP_MAX_PATH;
    free(r->path);
    if ((r->path = malloc(room)) == NULL)
        return -1;
    return http_path_normalize(r->target, len, r->path, room, &r->path_flags) < 0 ? -1 : 0;
}

/* A POST whose body names another method: a _method form field (Rails'
 * Rack::MethodOverride, Symfony, Laravel, Express's method-override) or a
 * "_method" key of a JSON body.  Forward-auth sees a body only when the
 * proxy sends one (Envoy's with_request_body). */
static bool body_overrides_method(dec_req_t *r)
{
    const char *body;
    size_t len = 0;

    if (r->in.body == NULL || strcmp(r->method, "POST") != 0 ||
        !http_body_type_has_params(r->h.content_type))
        return false; /* no copy of a body nothing reads parameters from */
    body = r->in.body(r->in.body_ctx, &len);
    if (len == 0)
        return false;
    return body == NULL || http_body_has_param(r->h.content_type, body, len, "_method");
}

/* The names no client may send: a method override the upstream may obey
 * instead of the method decided on; names spelled like tollgate's own
 * headers (forward-auth cannot drop what the ingress passes on, so a
 * '_'/'.' spelling of an identity header is refused there;
 * proxy.reserved_headers: reject refuses every reserved spelling). */
static dec_step_t forged_headers(dec_req_t *r)
{
    const dec_hdrs_t *h = &r->h;
    bool reject = r->cfg->proxy.reserved == CFG_RESERVED_REJECT;

    if ((r->mode != DEC_MODE_PROXY && h->method_override) ||
        http_query_has(r->query, "_method") || body_overrides_method(r)) {
        r->v.reason = "method_override";
        return dec_verdict(r, 400, "bad_request", "method override");
    }
    if (!(r->mode != DEC_MODE_PROXY && h->identity_variant) &&
        !(reject && (h->identity_exact || h->reserved_variant)))
        return DEC_NEXT;
    r->v.reason = "reserved_header";
    return dec_verdict(r, 400, "bad_request",
                       "request header spelled like one tollgate sets");
}

static dec_step_t refuse_forward(dec_req_t *r, dec_fwd_result_t st)
{
    switch (st) {
    case DEC_FWD_UNTRUSTED:
        return dec_verdict(r, 403, "forbidden",
                           "forward-auth headers from an untrusted peer");
    case DEC_FWD_CONFLICT:
        return dec_verdict(
            r, 400, "bad_request",
            "forward-auth headers of more than one dialect, or that disagree");
    case DEC_FWD_NOMEM:
        return dec_verdict(r, 500, "unavailable", "out of memory");
    case DEC_FWD_BAD:
    case DEC_FWD_OK:
    default:
        return dec_verdict(r, 400, "bad_request", "malformed original request");
    }
}

/* The original request replaces method, target and host.  A dot segment or
 * an empty one in the path it authorizes is refused: nginx and Traefik
 * forward the raw path, which the upstream may resolve differently. */
static dec_step_t forward_auth(dec_req_t *r)
{
    dec_fwd_result_t st = dec_fwd_parse(r, r->target);

    if (st != DEC_FWD_OK)
        return refuse_forward(r, st);
    if (normalize(r) != 0 || (r->path_flags & (HTTP_PATH_DOTSEG | HTTP_PATH_EMPTYSEG))) {
        r->v.reason = "bad_path";
        return dec_verdict(r, 400, "bad_request", "malformed original request");
    }
    return forged_headers(r);
}

static dec_step_t answer_health(dec_req_t *r, bool ready)
{
    char body[2048];
    const dec_hooks_t *h = &r->ctx->c.hooks;
    int status;

    r->v.reason = "health";
    if (!ready || h->readyz == NULL)
        return dec_verdict_body(r, 200, "{\"status\":\"ok\"}");
    status = h->readyz(h->arg, r->cfg, body, sizeof(body));
    return dec_verdict_body(r, status, body);
}

/* Does normalized `path` name the forward-auth endpoint (`/auth`, `/auth/...`)? */
static bool is_fwd_path(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);

    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

dec_step_t dec_step_own_paths(dec_req_t *r)
{
    const cfg_t *c = r->cfg;
    const char *xfp = r->h.f_proto;

    if (normalize(r) != 0) {
        r->v.reason = "bad_path";
        return dec_verdict(r, 400, "bad_request", "malformed request path");
    }
    if (r->in.dialect != DEC_DIALECT_NONE || is_fwd_target(r->target, c->forward_auth.path))
        return forward_auth(r);
    if (strcmp(r->path, c->healthz_path) == 0 || strcmp(r->path, c->readyz_path) == 0)
        return answer_health(r, strcmp(r->path, c->readyz_path) == 0);
    if (strcmp(r->path, c->tickets.path) == 0) {
        if (strcmp(r->method, "POST") != 0) {
            dec_verdict_header(r, "Allow", "POST", false);
            r->v.reason = "method_not_allowed";
            return dec_verdict(r, 405, "method_not_allowed", "tickets are issued by POST");
        }
        r->mode = DEC_MODE_TICKET;
        return forged_headers(r);
    }
    if (is_fwd_path(r->path, c->forward_auth.path)) {
        /* "/x/../auth/y": the raw target does not start with the prefix */
        r->v.reason = "bad_path";
        return dec_verdict(r, 400, "bad_request", "malformed request path");
    }
    if (r->peer_trusted && xfp != NULL && strcasecmp(xfp, "https") == 0)
        r->https = true;
    return forged_headers(r);
}
