/* respond.c — what every tollgate answer carries: request id, security
 * headers, CORS, rate-limit fields, and the JSON error envelope (docs/reference.md §5, §6).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/queue.h> /* TAILQ_INSERT_TAIL on evhttp's header list */

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* the client's HTTP version (no getter in 2.1) */
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

/* tollgate's own answers send every header of tollgate's making as ONE
 * entry of evhttp's output list: the entry's key is the first header's name
 * and its value is the rest of the block, "value\r\nName: value\r\n...".
 * evhttp_make_header() writes each entry as "%s: %s\r\n", so the client gets
 * exactly the bytes of separate headers, for three allocations and one
 * printf instead of three and one per header (about 16 on an answer).
 *
 * What keeps this correct:
 * - The headers evhttp itself reads or adds (Connection, Content-Length,
 *   Content-Type, Transfer-Encoding, Date) are never put in the block, so its
 *   keep-alive, HEAD and close handling sees them as before.
 * - Nothing reads the output list after the block is attached (the proxied
 *   answer, whose headers are looked up and replaced, does not use it).
 * - evhttp_add_header() refuses a value with a line break that is not a
 *   folded continuation; the block is added past that check, so hb_add()
 *   makes its own: a value with CR or LF is left out, as evhttp would.
 * - evhttp frees the entry, key and value with mm_free(), which is free()
 *   because tollgate never calls event_set_mem_functions().
 */
typedef struct hblock {
    char *p;
    size_t len, cap;
    bool failed;
    char stack[2048];
} hblock_t;

static void hb_init(hblock_t *b)
{
    b->p = b->stack;
    b->len = 0;
    b->cap = sizeof b->stack;
    b->failed = false;
}

static void hb_free(hblock_t *b)
{
    if (b->p != b->stack)
        free(b->p);
}

static void hb_raw(hblock_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n;
        char *p = b->p == b->stack ? malloc(cap) : realloc(b->p, cap);

        if (p == NULL) {
            b->failed = true;
            return;
        }
        if (b->p == b->stack)
            memcpy(p, b->stack, b->len);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* Append "name: value\r\n"; a value that would break the line is left out. */
static void hb_add(hblock_t *b, const char *name, const char *value)
{
    size_t n = strcspn(value, "\r\n");

    if (value[n] != '\0')
        return;
    hb_raw(b, name, strlen(name));
    hb_raw(b, ": ", 2);
    hb_raw(b, value, n);
    hb_raw(b, "\r\n", 2);
}

/* Hand the block to evhttp as one entry (see above).  -1: out of memory (the
 * answer then goes without these headers rather than not at all). */
static int hb_attach(hblock_t *b, struct evkeyvalq *out)
{
    struct evkeyval *kv;
    const char *colon;

    if (b->failed || b->len < 4)
        return b->failed ? -1 : 0;
    b->len -= 2; /* evhttp writes the last CRLF */
    colon = memchr(b->p, ':', b->len);
    kv = calloc(1, sizeof(*kv));
    if (kv == NULL || colon == NULL)
        goto fail;
    kv->key = strndup(b->p, (size_t)(colon - b->p));
    kv->value = strndup(colon + 2, b->len - (size_t)(colon + 2 - b->p));
    if (kv->key == NULL || kv->value == NULL)
        goto fail;
    TAILQ_INSERT_TAIL(out, kv, next);
    return 0;
fail:
    if (kv != NULL) {
        free(kv->key);
        free(kv->value);
        free(kv);
    }
    return -1;
}

/* Where a header goes: into the block of tollgate's own answer, or onto a
 * proxied answer's list, replacing what the upstream sent. */
typedef struct hsink {
    hblock_t *b;
    struct evkeyvalq *q;
} hsink_t;

static void put(hsink_t *s, const char *name, const char *value)
{
    if (s->b != NULL) {
        hb_add(s->b, name, value);
        return;
    }
    evhttp_remove_header(s->q, name);
    evhttp_add_header(s->q, name, value);
}

/* Added next to whatever the upstream sent (Vary, Link). */
static void put_also(hsink_t *s, const char *name, const char *value)
{
    if (s->b != NULL)
        hb_add(s->b, name, value);
    else
        evhttp_add_header(s->q, name, value);
}

/* The headers of every own answer that depend only on the configuration,
 * formatted once per snapshot and worker. */
static void static_headers(hsink_t *s, const cfg_t *c)
{
    put(s, "X-Content-Type-Options", "nosniff");
    put(s, "X-Frame-Options", "DENY");
    put(s, "Referrer-Policy", "strict-origin-when-cross-origin");
    if (c->security_headers.content_security_policy &&
        *c->security_headers.content_security_policy)
        put(s, "Content-Security-Policy", c->security_headers.content_security_policy);
    if (c->security_headers.permissions_policy && *c->security_headers.permissions_policy)
        put(s, "Permissions-Policy", c->security_headers.permissions_policy);
    if (s->b != NULL)
        put(s, "Cache-Control", "no-store"); /* own body: never cached */
    if (c->cors_origins.n > 0)
        put_also(s, "Vary", "Origin");
}

static void add_static(srv_req_t *r, hsink_t *s)
{
    srv_worker_t *w = r->w;
    hblock_t tmp;

    if (s->b == NULL) {
        static_headers(s, r->cfg);
        return;
    }
    if (w->own_hdrs == NULL || strcmp(w->own_hdrs_version, r->cfg->version) != 0) {
        hb_init(&tmp);
        static_headers(&(hsink_t){.b = &tmp}, r->cfg);
        free(w->own_hdrs);
        w->own_hdrs = tmp.failed ? NULL : malloc(tmp.len);
        if (w->own_hdrs != NULL) {
            memcpy(w->own_hdrs, tmp.p, tmp.len);
            w->own_hdrs_len = tmp.len;
            snprintf(w->own_hdrs_version, sizeof w->own_hdrs_version, "%s",
                     r->cfg->version);
        }
        hb_free(&tmp);
        if (w->own_hdrs == NULL) {
            static_headers(s, r->cfg);
            return;
        }
    }
    hb_raw(s->b, w->own_hdrs, w->own_hdrs_len);
}

/* Security headers of every response, request id, CORS. */
static void common_headers(srv_req_t *r, hsink_t *s)
{
    const cfg_t *c = r->cfg;
    char hsts[64];

    put(s, "X-Request-ID", r->reqid);
    add_static(r, s);
    if (r->https && c->security_headers.hsts_max_age > 0) {
        snprintf(hsts, sizeof(hsts), "max-age=%u; includeSubDomains",
                 (unsigned)c->security_headers.hsts_max_age);
        put(s, "Strict-Transport-Security", hsts);
    }
    if (r->origin != NULL) {
        put(s, "Access-Control-Allow-Origin", r->origin);
        put(s, "Access-Control-Expose-Headers",
            "X-Request-ID, X-RateLimit-Limit, X-RateLimit-Remaining, "
            "X-RateLimit-Reset, Retry-After, RateLimit, RateLimit-Policy");
    }
}

/* Deprecation (RFC 9745: "@<unix time>"), Sunset (RFC 8594: an HTTP date)
 * and Link rel="deprecation" on an answer allowed with a deprecated
 * credential. */
static void add_deprecation(srv_req_t *r, hsink_t *s)
{
    const cfg_t *c = r->cfg;
    char v[64], link[600];
    struct tm tm;
    time_t t;

    if (!r->deprecated)
        return;
    snprintf(v, sizeof v, "@%lld", (long long)c->auth.api_keys.since_s);
    put(s, "Deprecation", v);
    if (c->auth.api_keys.sunset_s > 0) {
        t = (time_t)c->auth.api_keys.sunset_s;
        if (gmtime_r(&t, &tm) != NULL &&
            strftime(v, sizeof v, "%a, %d %b %Y %H:%M:%S GMT", &tm) > 0)
            put(s, "Sunset", v);
    }
    if (c->auth.api_keys.link != NULL) {
        snprintf(link, sizeof link, "<%.500s>; rel=\"deprecation\"; type=\"text/html\"",
                 c->auth.api_keys.link);
        put_also(s, "Link", link);
    }
}

static void rl_headers(srv_req_t *r, hsink_t *s)
{
    add_deprecation(r, s);
    if (r->limits.limit[0] == '\0')
        return;
    put(s, "X-RateLimit-Limit", r->limits.limit);
    put(s, "X-RateLimit-Remaining", r->limits.remaining);
    put(s, "X-RateLimit-Reset", r->limits.reset);
    if (r->limits.retry[0] != '\0')
        put(s, "Retry-After", r->limits.retry);
    if (r->limits.policy != NULL)
        put(s, "RateLimit-Policy", r->limits.policy);
    if (r->limits.state != NULL)
        put(s, "RateLimit", r->limits.state);
}

void srv_add_proxied_headers(srv_req_t *r, struct evkeyvalq *out)
{
    hsink_t s = {.q = out};

    common_headers(r, &s);
    rl_headers(r, &s);
}

static void on_flushed(struct evhttp_request *req, void *arg)
{
    srv_conn_answered(arg, req);
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
    srv_conn_writing(r->w, r->req);
    evhttp_request_set_on_complete_cb(r->req, on_flushed, r->w);
    /* An answer to HEAD has no body (RFC 9110 §9.3.2); evhttp would send
     * one, unframed, into the next answer of a kept-alive connection. */
    if (evhttp_request_get_command(r->req) == EVHTTP_REQ_HEAD)
        body = NULL;
    evhttp_send_reply(r->req, code, reason, body);
}

/* Start a streamed reply (the body follows with evhttp_send_reply_chunk and
 * ends with evhttp_send_reply_end), counted like srv_reply's.  Framing: the
 * upstream's Content-Length when the headers have one (evhttp then sends the
 * body as it is); otherwise chunked to an HTTP/1.1 client, and to an
 * HTTP/1.0 client, which knows no chunks, a body delimited by closing the
 * connection (RFC 9112 §6.3): evhttp would add "Content-Length: 0" to a
 * kept-alive 1.0 answer, so its keep-alive request is withdrawn. */
void srv_reply_start(srv_req_t *r, int code, const char *reason)
{
    struct evhttp_request *req = r->req;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    bool bodiless = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD || code == 204 ||
                    code == 304 || (code >= 100 && code < 200);

    if (atomic_load(&r->w->srv->draining) && evhttp_find_header(out, "Connection") == NULL)
        evhttp_add_header(out, "Connection", "close");
    if (!bodiless && req->major == 1 && req->minor == 0 &&
        evhttp_find_header(out, "Content-Length") == NULL) {
        evhttp_remove_header(evhttp_request_get_input_headers(req), "Connection");
        evhttp_remove_header(out, "Connection");
        evhttp_add_header(out, "Connection", "close");
    }
    srv_conn_writing(r->w, req);
    evhttp_request_set_on_complete_cb(req, on_flushed, r->w);
    evhttp_send_reply_start(req, code, reason);
}

/* The Date header (RFC 9110 §6.6.1, IMF-fixdate), formatted once a second
 * per worker instead of by evhttp on every answer. */
static const char *http_date(srv_worker_t *w)
{
    time_t now = time(NULL);
    struct tm tm;

    if (now != w->date_s && gmtime_r(&now, &tm) != NULL &&
        strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm) > 0)
        w->date_s = now;
    return w->date_s != 0 ? w->date : NULL;
}

/* Send `body` (JSON or NULL) with every header tollgate adds, after
 * `extra` (the identity headers of an allowed forward-auth answer). */
void srv_send_json_with(srv_req_t *r, int status, const char *body,
                        const srv_proxy_hdr_t *extra, size_t nextra)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    struct evbuffer *buf = NULL;
    hblock_t b;
    hsink_t s = {.b = &b};
    const char *date;

    r->status = status;
    hb_init(&b);
    for (size_t i = 0; i < nextra; i++)
        hb_add(&b, extra[i].name, extra[i].value);
    common_headers(r, &s);
    rl_headers(r, &s);
    hb_attach(&b, out);
    hb_free(&b);
    if ((date = http_date(r->w)) != NULL)
        evhttp_add_header(out, "Date", date); /* a real entry: evhttp looks for it */
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

void srv_send_json(srv_req_t *r, int status, const char *body)
{
    srv_send_json_with(r, status, body, NULL, 0);
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
    if (buf != NULL && body != NULL && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
        evbuffer_add(buf, body, strlen(body));
    evhttp_send_reply(req, status, srv_status_reason(status), buf);
    if (buf != NULL)
        evbuffer_free(buf);
}
