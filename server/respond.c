/* respond.c — what every tollgate answer carries: request id, security
 * headers, CORS, rate-limit fields, and the JSON error envelope (DESIGN §6).
 */
#include <stdio.h>
#include <time.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "srv_req.h"

const char *srv_status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

/* Set `name` to `value`.  On a proxied answer, replace what the upstream
 * sent; on tollgate's own answer there is nothing to replace (and the search
 * would cost a header-list walk per header). */
static void set_header(struct evkeyvalq *out, bool replace, const char *name,
                       const char *value)
{
    if (replace)
        evhttp_remove_header(out, name);
    evhttp_add_header(out, name, value);
}

/* Security headers of every response, request id, CORS.  `own`: the
 * body is tollgate's (not the upstream's), so it must not be cached. */
void srv_add_common_headers(srv_req_t *r, struct evkeyvalq *out, bool own)
{
    const cfg_t *c = r->cfg;
    char hsts[64];

    set_header(out, !own, "X-Request-ID", r->reqid);
    set_header(out, !own, "X-Content-Type-Options", "nosniff");
    set_header(out, !own, "X-Frame-Options", "DENY");
    set_header(out, !own, "Referrer-Policy", "strict-origin-when-cross-origin");
    if (c->security_headers.content_security_policy &&
        *c->security_headers.content_security_policy)
        set_header(out, !own, "Content-Security-Policy",
                   c->security_headers.content_security_policy);
    if (c->security_headers.permissions_policy && *c->security_headers.permissions_policy)
        set_header(out, !own, "Permissions-Policy", c->security_headers.permissions_policy);
    if (r->https && c->security_headers.hsts_max_age > 0) {
        snprintf(hsts, sizeof(hsts), "max-age=%u; includeSubDomains",
                 (unsigned)c->security_headers.hsts_max_age);
        set_header(out, !own, "Strict-Transport-Security", hsts);
    }
    if (own)
        set_header(out, !own, "Cache-Control", "no-store");
    if (c->cors_origins.n > 0)
        evhttp_add_header(out, "Vary", "Origin"); /* next to an upstream Vary */
    if (r->origin != NULL) {
        set_header(out, !own, "Access-Control-Allow-Origin", r->origin);
        set_header(out, !own, "Access-Control-Expose-Headers",
                   "X-Request-ID, X-RateLimit-Limit, X-RateLimit-Remaining, "
                   "X-RateLimit-Reset, Retry-After, RateLimit, RateLimit-Policy");
    }
}

/* Deprecation (RFC 9745: "@<unix time>"), Sunset (RFC 8594: an HTTP date)
 * and Link rel="deprecation" on an answer allowed with a deprecated
 * credential. */
static void add_deprecation(srv_req_t *r, struct evkeyvalq *out, bool own)
{
    const cfg_t *c = r->cfg;
    char v[64], link[600];
    struct tm tm;
    time_t t;

    if (!r->deprecated)
        return;
    snprintf(v, sizeof v, "@%lld", (long long)c->auth.api_keys.since_s);
    set_header(out, !own, "Deprecation", v);
    if (c->auth.api_keys.sunset_s > 0) {
        t = (time_t)c->auth.api_keys.sunset_s;
        if (gmtime_r(&t, &tm) != NULL &&
            strftime(v, sizeof v, "%a, %d %b %Y %H:%M:%S GMT", &tm) > 0)
            set_header(out, !own, "Sunset", v);
    }
    if (c->auth.api_keys.link != NULL) {
        snprintf(link, sizeof link, "<%.500s>; rel=\"deprecation\"; type=\"text/html\"",
                 c->auth.api_keys.link);
        evhttp_add_header(out, "Link", link);
    }
}

void srv_add_rl_headers(srv_req_t *r, struct evkeyvalq *out, bool own)
{
    add_deprecation(r, out, own);
    if (r->rl_limit[0] == '\0')
        return;
    set_header(out, !own, "X-RateLimit-Limit", r->rl_limit);
    set_header(out, !own, "X-RateLimit-Remaining", r->rl_remaining);
    set_header(out, !own, "X-RateLimit-Reset", r->rl_reset);
    if (r->rl_retry[0] != '\0')
        set_header(out, !own, "Retry-After", r->rl_retry);
    if (r->rl_policy != NULL)
        set_header(out, !own, "RateLimit-Policy", r->rl_policy);
    if (r->rl_state != NULL)
        set_header(out, !own, "RateLimit", r->rl_state);
}

static void on_flushed(struct evhttp_request *req, void *arg)
{
    srv_worker_t *w = arg;

    (void)req;
    w->unflushed--;
}

/* Send the reply; the worker counts it until libevent has written all of it,
 * so a drain never closes a connection under a reply still being written. */
void srv_reply(srv_req_t *r, int code, const char *reason, struct evbuffer *body)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);

    /* Shutting down: keep-alive clients (and load balancer pools) move to
     * another replica now rather than when this one stops accepting. */
    if (atomic_load(&r->w->srv->draining) && evhttp_find_header(out, "Connection") == NULL)
        evhttp_add_header(out, "Connection", "close");
    r->w->unflushed++;
    evhttp_request_set_on_complete_cb(r->req, on_flushed, r->w);
    evhttp_send_reply(r->req, code, reason, body);
}

/* Send `body` (JSON or NULL) with every header tollgate adds. */
void srv_send_json(srv_req_t *r, int status, const char *body)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    struct evbuffer *buf = NULL;

    r->status = status;
    srv_add_common_headers(r, out, true);
    srv_add_rl_headers(r, out, true);
    if (body != NULL) {
        evhttp_add_header(out, "Content-Type", "application/json");
        buf = evbuffer_new();
        if (buf != NULL)
            evbuffer_add(buf, body, strlen(body));
    }
    srv_reply(r, status, srv_status_reason(status), buf);
    if (buf != NULL)
        evbuffer_free(buf);
}

/* The deny envelope.  `message` is a fixed text: nothing from the request's
 * credentials is ever echoed back. */
void srv_send_error(srv_req_t *r, int status, const char *code, const char *message)
{
    char body[512];
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);

    if (status == 401)
        evhttp_add_header(out, "WWW-Authenticate",
                          r->bearer_failed
                              ? "Bearer realm=\"tollgate\", error=\"invalid_token\""
                              : "Bearer realm=\"tollgate\"");
    snprintf(body, sizeof(body),
             "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"request_id\":\"%s\"}}", code,
             message, r->reqid);
    if (r->reason == NULL)
        r->reason = code;
    if (r->decision == NULL)
        r->decision = status >= 500 ? "error" : "deny";
    srv_send_json(r, status, body);
}

/* For the admin listener, whose answers have no srv_req_t. */
void srv_send_plain_json(struct evhttp_request *req, int status, const char *body)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *buf = evbuffer_new();

    evhttp_add_header(out, "Content-Type", "application/json");
    evhttp_add_header(out, "Cache-Control", "no-store");
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    if (buf != NULL && body != NULL)
        evbuffer_add(buf, body, strlen(body));
    evhttp_send_reply(req, status, srv_status_reason(status), buf);
    if (buf != NULL)
        evbuffer_free(buf);
}
