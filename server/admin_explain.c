/* admin_explain.c — POST /admin/v1/explain (docs/reference.md §4 "Explain").
 *
 * The body (srv_explain_req.h) becomes a dec_input_t with dry_run set and
 * an explain sink, and goes through dec_start on a decision context of its
 * own: a limiter over this replica's backend (the shared memory store, or
 * Redis through the admin thread's client, with the workers' local
 * fallback), the real stores (read only: a dry run writes nothing there),
 * timers on the admin loop and no observation hooks (explain moves no
 * metric).  The context lives as long as the one request; it is freed from
 * a zero-delay event, never inside the callbacks that end the decision.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "tollgate/log.h"
#include "tollgate/rc.h"
#include "tollgate/rl_memory.h"
#include "tollgate/rl_redis.h"
#include "srv_admin_explain.h"
#include "srv_explain_req.h"
#include "srv_trail.h"

typedef struct explain_op {
    struct explain_op *prev, *next; /* on srv_t.explains until freed */
    srv_worker_t *w;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    cfg_t *cfg; /* one reference, for the decision and the answer */
    srv_explain_req_t rq;
    dec_explain_t ex;
    rl_redis_t *rr;
    rl_limiter_t *limiter;
    dec_stores_real_t stores;
    dec_ctx_t *ctx;
    dec_pending_t *p;
    struct event *free_ev; /* answered: frees the op from the loop */
} explain_op_t;

/* ---- the decision context ------------------------------------------------ */

/* The core's timers on the admin loop (decide_ctx.c's, as a worker's). */
static void *timer_add(void *arg, unsigned ms, dec_timer_fn *fn, void *fn_arg)
{
    return srv_dec_timer_add(((explain_op_t *)arg)->w->base, ms, fn, fn_arg);
}

static void timer_cancel(void *arg, void *timer)
{
    (void)arg;
    srv_dec_timer_cancel(timer);
}

static void op_free(explain_op_t *op)
{
    if (op->w != NULL) { /* linked */
        if (op->prev != NULL)
            op->prev->next = op->next;
        else
            op->w->srv->explains = op->next;
        if (op->next != NULL)
            op->next->prev = op->prev;
    }
    if (op->free_ev != NULL)
        event_free(op->free_ev);
    dec_ctx_free(op->ctx);
    rl_limiter_free(op->limiter);
    rl_redis_free(op->rr);
    dec_explain_clear(&op->ex);
    srv_explain_req_clear(&op->rq);
    cfg_unref(op->cfg);
    free(op);
}

static void op_free_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    op_free(arg);
}

/* The limiter a worker of this replica decides with, on the admin loop. */
static int limiter_new(explain_op_t *op)
{
    srv_t *s = op->w->srv;
    const cfg_t *c = op->cfg;

    if (op->w->rc == NULL) {
        op->limiter = rl_limiter_new(op->w->base, &rl_memory_ops, s->memory);
        return op->limiter != NULL ? 0 : -1;
    }
    op->rr = rl_redis_new(&rc_client_ops, op->w->rc, s->redis_prefix,
                          srv_script_index("bucket"));
    if (op->rr == NULL)
        return -1;
    rl_redis_set_batching(op->rr, c->redis.batch_max, c->redis.mode == CFG_REDIS_CLUSTER);
    op->limiter = rl_limiter_new(op->w->base, &rl_redis_ops, op->rr);
    if (op->limiter == NULL)
        return -1;
    rl_limiter_set_fallback(op->limiter, s->memory, c->expected_replicas);
    return 0;
}

static int ctx_new(explain_op_t *op)
{
    srv_t *s = op->w->srv;
    dec_ctx_cfg_t c = {
        .stores = &dec_stores_real_ops,
        .store = &op->stores,
        .revoked = s->revoked,
        .ticket_prefix = s->redis_prefix,
        .hooks = {.arg = op, .timer_add = timer_add, .timer_cancel = timer_cancel},
        .bans = s->bans,
    };

    if (limiter_new(op) != 0)
        return -1;
    op->stores = (dec_stores_real_t){
        .lockout = s->lockout,
        .shared = &s->shared,
        .tickets = s->tickets,
        .rc_ops = &rc_client_ops,
        .rc = op->w->rc,
    };
    c.limiter = op->limiter;
    op->ctx = dec_ctx_new(&c);
    return op->ctx != NULL ? 0 : -1;
}

/* ---- the request's headers ----------------------------------------------- */

static const char *h_find(void *ctx, const char *name)
{
    const srv_explain_req_t *rq = ctx;

    for (size_t i = 0; i < rq->nheaders; i++)
        if (strcasecmp(rq->headers[i].name, name) == 0)
            return rq->headers[i].value;
    return NULL;
}

static void h_each(void *ctx, dec_header_fn fn, void *arg)
{
    const srv_explain_req_t *rq = ctx;

    for (size_t i = 0; i < rq->nheaders; i++)
        if (fn(arg, rq->headers[i].name, rq->headers[i].value) != 0)
            return;
}

/* ---- the answer ---------------------------------------------------------- */

/* `s` as a URL query value: every byte but [A-Za-z0-9._~-] as %XX. */
static void url_encode(const char *s, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (; *s != '\0' && n + 4 < len; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '~' || c == '-') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
}

static json_t *strv_json(char *const *v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *limit_json(const dec_explain_limit_t *x)
{
    char name[3 * 128 + 1], key[3 * RL_MAX_IDENTITY_LEN + 1],
        url[sizeof name + sizeof key + 64];
    json_t *o;

    url_encode(x->limit->name, name, sizeof name);
    url_encode(x->key, key, sizeof key);
    snprintf(url, sizeof url, "/admin/v1/buckets?limit=%s&key=%s", name, key);
    o = json_pack("{s:s,s:s,s:s,s:s,s:{s:I,s:I,s:I}}", "name", x->limit->name, "mode",
                  x->limit->mode == RL_MODE_SHADOW ? "shadow" : "enforce", "key", x->key,
                  "buckets", url, "rate", "tokens", (json_int_t)x->rate.n, "period_seconds",
                  (json_int_t)(x->rate.period_ms / 1000), "burst",
                  (json_int_t)x->rate.burst);
    if (o == NULL)
        return NULL;
    if (x->failed) {
        json_object_set_new(o, "outcome", json_string("error"));
        json_object_set_new(o, "tokens", json_null());
        return o;
    }
    json_object_set_new(o, "outcome", json_string(x->v.allowed ? "allow" : "deny"));
    json_object_set_new(
        o, "tokens",
        json_pack("{s:I,s:I,s:I,s:I,s:I}", "now",
                  (json_int_t)(x->v.remaining + (x->v.allowed ? 1 : 0)), "remaining",
                  (json_int_t)x->v.remaining, "limit", (json_int_t)x->rate.burst,
                  "reset_seconds", (json_int_t)((x->v.reset_ms + 999) / 1000),
                  "retry_after_seconds", (json_int_t)((x->v.retry_after_ms + 999) / 1000)));
    json_object_set_new(o, "fallback", json_boolean(x->fallback));
    return o;
}

static json_t *authn_json(const explain_op_t *op, const dec_verdict_t *v)
{
    const auth_identity_t *id = v->id;
    json_t *o;

    if (op->ex.authn == NULL)
        return json_null();
    o = json_pack("{s:s,s:s,s:b}", "method",
                  op->ex.authn_method ? op->ex.authn_method : "none", "reason",
                  op->ex.authn, "as_client", op->rq.as_client != NULL);
    if (o != NULL && id != NULL)
        json_object_set_new(o, "identity",
                            json_pack("{s:s?,s:s?,s:s?}", "client_id", id->client_id,
                                      "subject", id->subject, "tier", id->tier));
    return o;
}

static json_t *scopes_json(const explain_op_t *op, const dec_verdict_t *v)
{
    const cfg_route_t *rt = op->ex.route;

    if (rt == NULL || !op->ex.authz_checked)
        return rt == NULL ? json_null()
                          : json_pack("{s:o,s:n,s:n}", "required",
                                      strv_json(rt->scopes.v, rt->scopes.n), "held", "ok");
    return json_pack(
        "{s:o,s:o,s:b}", "required", strv_json(rt->scopes.v, rt->scopes.n), "held",
        v->id != NULL ? strv_json(v->id->scopes, v->id->nscopes) : json_array(), "ok",
        op->ex.authz_ok);
}

static void hdr(json_t *a, const char *name, const char *value)
{
    if (value != NULL && value[0] != '\0')
        json_array_append_new(a, json_pack("[s,s]", name, value));
}

static json_t *decision_json(const dec_verdict_t *v)
{
    json_t *h = json_array(), *o;

    for (size_t i = 0; h != NULL && i < v->nset; i++)
        json_array_append_new(h, json_pack("[s,s]", v->set[i].name, v->set[i].value));
    if (h != NULL && v->limits.limit[0] != '\0') {
        hdr(h, "X-RateLimit-Limit", v->limits.limit);
        hdr(h, "X-RateLimit-Remaining", v->limits.remaining);
        hdr(h, "X-RateLimit-Reset", v->limits.reset);
        hdr(h, "Retry-After", v->limits.retry);
        hdr(h, "RateLimit-Policy", v->limits.policy);
        hdr(h, "RateLimit", v->limits.state);
    }
    o = json_pack("{s:i,s:s,s:s,s:s?,s:s?,s:o}", "status", v->status, "decision",
                  v->decision, "reason", v->reason, "limit", v->limit, "error", v->code,
                  "headers", h);
    if (o != NULL && v->kind == DEC_FORWARD)
        json_object_set_new(o, "forward",
                            json_pack("{s:s?,s:s?}", "upstream", v->forward.upstream,
                                      "target", v->forward.target));
    return o;
}

static json_t *answer_json(const explain_op_t *op, const dec_verdict_t *v)
{
    json_t *lims = json_array();

    for (size_t i = 0; lims != NULL && i < op->ex.nlimits; i++)
        json_array_append_new(lims, limit_json(&op->ex.limits[i]));
    json_t *o = json_pack(
        "{s:b,s:{s:s?,s:s?,s:s?,s:s?},s:o,s:o,s:o,s:o,s:o}", "dry_run", 1, "request",
        "method", v->method, "host", v->host, "target", v->target, "client_ip",
        v->client_ip, "route",
        op->ex.route != NULL ? json_pack("{s:s}", "name", op->ex.route->name) : json_null(),
        "authentication", authn_json(op, v), "scopes", scopes_json(op, v), "limits",
        op->ex.limits_checked ? lims : (json_decref(lims), json_null()), "decision",
        decision_json(v));

    /* a ban that stopped it: "ip" or "client" (dec_ban.c), else null */
    if (o != NULL)
        json_object_set_new(
            o, "banned", op->ex.banned != NULL ? json_string(op->ex.banned) : json_null());
    return o;
}

static void on_close(struct evhttp_connection *conn, void *arg)
{
    explain_op_t *op = arg;

    (void)conn;
    dec_cancel(op->p); /* `done` will not run */
    op_free(op);
}

static void explained(const dec_verdict_t *v, void *arg)
{
    explain_op_t *op = arg;
    json_t *o = answer_json(op, v);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    static const struct timeval now = {0, 0};

    op->p = NULL;
    evhttp_connection_set_closecb(op->conn, NULL, NULL);
    if (body == NULL)
        srv_admin_error(op->req, 500, "error", "out of memory");
    else
        srv_send_plain_json(op->req, 200, body);
    free(body);
    json_decref(o);
    /* the limiter may still be on the stack: free from the loop (or from
     * srv_admin_explain_cancel_all, if the loop stops first) */
    op->free_ev = evtimer_new(op->w->base, op_free_later, op);
    if (op->free_ev == NULL || evtimer_add(op->free_ev, &now) != 0)
        log_warn("explain: a decision context is kept until shutdown (no event)");
}

void srv_admin_explain_cancel_all(srv_t *s)
{
    while (s->explains != NULL) {
        explain_op_t *op = s->explains;

        if (op->p != NULL) { /* still deciding: its connection is still open */
            evhttp_connection_set_closecb(op->conn, NULL, NULL);
            dec_cancel(op->p);
            op->p = NULL;
        }
        op_free(op); /* unlinks it */
    }
}

/* ---- the handler --------------------------------------------------------- */

static char *body_of(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    char *b;

    *len = evbuffer_get_length(in);
    if ((b = malloc(*len + 1)) == NULL)
        return NULL;
    evbuffer_copyout(in, b, *len);
    b[*len] = '\0';
    return b;
}

static void start(explain_op_t *op)
{
    const srv_explain_req_t *rq = &op->rq;
    dec_input_t in = {
        .method = rq->method,
        .target = rq->path,
        .host = rq->host,
        .peer = rq->peer,
        .tls = rq->tls,
        .headers = {(void *)rq, h_find, h_each},
        .dry_run = true,
        .explain = &op->ex,
        .as_client = rq->as_client,
    };

    if (rq->dialect != DEC_DIALECT_NONE) {
        /* a forward-auth sub-request: the body describes the original */
        in.dialect = rq->dialect;
        in.method = "GET";
        in.target = op->cfg->forward_auth.path;
        in.o_method = rq->method;
        in.o_target = rq->path;
        in.o_host = rq->host;
    }
    op->conn = evhttp_request_get_connection(op->req);
    op->p = dec_start(op->ctx, op->cfg, &in, explained, op);
    if (op->p == NULL) {
        srv_admin_error(op->req, 500, "error", "out of memory");
        op_free(op);
        return;
    }
    evhttp_connection_set_closecb(op->conn, on_close, op);
}

void srv_admin_explain(srv_worker_t *w, struct evhttp_request *req)
{
    explain_op_t *op = calloc(1, sizeof(*op));
    char err[256];
    size_t len = 0;
    char *body = body_of(req, &len);
    int rc = -1;

    if (op == NULL || body == NULL) {
        free(body);
        free(op);
        srv_admin_error(req, 500, "error", "out of memory");
        return;
    }
    rc = srv_explain_parse(body, len, &op->rq, err, sizeof err);
    OPENSSL_cleanse(body, len); /* may hold a credential: the parse has its own copy */
    free(body);
    if (rc != 0) {
        srv_admin_error(req, 400, "bad_request", err);
        free(op);
        return;
    }
    if (!srv_admin_actor_writes() && srv_explain_carries_credential(&op->rq)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"tollgate-admin\", error=\"insufficient_scope\", "
                          "scope=\"write\"");
        srv_admin_error(
            req, 403, "insufficient_scope",
            "explaining a request that carries a credential needs a write token; "
            "name an API-key client with as_client instead");
        srv_explain_req_clear(&op->rq);
        free(op);
        return;
    }
    op->w = w;
    op->req = req;
    op->cfg = cfg_ref(w->cfg);
    op->next = w->srv->explains;
    if (op->next != NULL)
        op->next->prev = op;
    w->srv->explains = op;
    if (ctx_new(op) != 0) {
        srv_admin_error(req, 500, "error", "out of memory");
        op_free(op);
        return;
    }
    start(op);
}
