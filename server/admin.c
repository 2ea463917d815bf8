/* admin.c — the admin listener (docs/reference.md §4): metrics, health, and the admin
 * API behind `Authorization: Bearer TOKEN`, where TOKEN is one of the admin
 * tokens (ADMIN_TOKEN, admin_tokens_file), each with an id and a scope:
 * `read` may call the GET endpoints, `write` every endpoint.  The dispatch is
 * one table (admin_routes, below); every state-changing action writes one
 * admin trail line (srv_trail.h) naming the token's id, never the token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "tollgate/util_clock.h"
#include "tollgate/auth.h"
#include "tollgate/auth_jwt.h"
#include "tollgate/auth_revoke.h"
#include "srv_admin_bans.h"
#include "srv_admin_explain.h"
#include "srv_admin_req.h"
#include "srv_admin_revoc.h"
#include "srv_admin_routes.h"
#include "tollgate/log.h"
#include "tollgate/rc.h"
#include "tollgate/rl_redis.h"
#include "tollgate/rl_topk.h"
#include "tollgate/util_fmt.h"
#include "srv_process.h"
#include "srv_top.h"
#include "srv_trail.h"

/* The admin token's id the request being dispatched came with: the admin
 * listener is one thread, and a handler that answers later copies it. */
static _Thread_local const char *g_actor;
static _Thread_local bool g_actor_writes; /* its scope is write */

const char *srv_admin_actor(void)
{
    return g_actor != NULL ? g_actor : "-";
}

bool srv_admin_actor_writes(void)
{
    return g_actor != NULL && g_actor_writes;
}

static const char *request_id(struct evhttp_request *req)
{
    return evhttp_find_header(evhttp_request_get_output_headers(req), "X-Request-ID");
}

/* One trail line for an answered action: the result follows the status
 * (srv_process.h; admin_bans.c and admin_revoc.c too). */
void srv_admin_trail_answer(srv_worker_t *w, struct evhttp_request *req, const char *actor,
                            const char *action, const char *target, int status,
                            const char *code)
{
    srv_trail_rec_t r = {
        .action = action,
        .target = target,
        .result = status < 400   ? "ok"
                  : status < 500 ? "refused"
                                 : "error",
        .status = status,
        .code = status < 400 ? NULL : code,
        .actor = actor,
        .request_id = request_id(req),
    };

    srv_admin_trail(w->srv, &r);
}
/* The admin API's error envelope (srv_process.h), for admin_top.c and
 * admin_explain.c too. */
void srv_admin_error(struct evhttp_request *req, int status, const char *code,
                     const char *msg)
{
    const char *rid =
        evhttp_find_header(evhttp_request_get_output_headers(req), "X-Request-ID");
    json_t *o = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message", msg,
                          "request_id", rid ? rid : "");
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;

    srv_send_plain_json(req, status, body ? body : "{}");
    free(body);
    json_decref(o);
}

static void send_err(struct evhttp_request *req, int status, const char *code,
                     const char *msg)
{
    srv_admin_error(req, status, code, msg);
}

/* Answer `o` (taken) as JSON, or a 500 when it cannot be written
 * (srv_process.h). */
void srv_admin_send_json(struct evhttp_request *req, int status, json_t *o)
{
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;

    if (body == NULL) {
        send_err(req, 500, "error", "out of memory");
    } else {
        srv_send_plain_json(req, status, body);
        free(body);
    }
    json_decref(o);
}

/* The admin token the request carries, or NULL.  Every token is compared
 * (auth_admintok_match): the time taken does not say which matched. */
static const auth_admin_id_t *authorized(const cfg_t *c, struct evhttp_request *req)
{
    const char *h =
        evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    const char *tok;

    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    tok = h + 7;
    return auth_admintok_match(c->admin_tokens, tok, strlen(tok));
}

static void metrics(srv_worker_t *w, struct evhttp_request *req)
{
    struct evbuffer *buf = evbuffer_new();
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    if (buf == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    metrics_set_bans_active((long)auth_ban_count(w->srv->bans, util_wall_ms()));
    metrics_render(buf);
    srv_jwks_metrics(buf);
    srv_top_metrics(w->srv, w->cfg, buf);
    /* the admin thread's snapshot: the newest, it is given it last */
    metrics_render_build_info(buf, TOLLGATE_VERSION, w->cfg->version);
    metrics_render_process(buf);
    srv_trail_metrics(w->srv, buf);
    evhttp_add_header(out, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    evhttp_add_header(out, "Cache-Control", "no-store");
    evhttp_send_reply(req, 200, "OK", buf);
    evbuffer_free(buf);
}

static void readyz(srv_worker_t *w, struct evhttp_request *req)
{
    char body[2048];

    srv_send_plain_json(req, srv_readyz(w->srv, w->cfg, true, body, sizeof(body)), body);
}

static void reload(srv_worker_t *w, struct evhttp_request *req)
{
    char err[4096];
    cfg_t *c;

    /* srv_reload writes the trail line, with the versions before and after */
    if (srv_reload(w->srv, srv_admin_actor(), request_id(req), err, sizeof(err)) != 0) {
        const char *rid = request_id(req);

        srv_admin_send_json(req, 422,
                            json_pack("{s:{s:s,s:s,s:s,s:s}}", "error", "code",
                                      "config_invalid", "message",
                                      "config rejected; the old config stays", "detail",
                                      err, "request_id", rid ? rid : ""));
        return;
    }
    c = srv_current_cfg(w->srv);
    srv_admin_send_json(req, 200,
                        json_pack("{s:s,s:s,s:s}", "status", "ok", "config_version",
                                  c->version, "secrets_version", c->secrets_version));
    cfg_unref(c);
}

static void config(srv_worker_t *w, struct evhttp_request *req)
{
    char *body = cfg_dump_json(w->cfg);

    if (body == NULL) {
        send_err(req, 500, "error", "out of memory");
        return;
    }
    srv_send_plain_json(req, 200, body);
    free(body);
}

/* A bucket read or reset in Redis: the admin request waits for its reply. */
typedef struct bucket_op {
    srv_worker_t *w;
    struct evhttp_request *req;
    rc_client_t *rc;
    size_t script;
    char *limit;
    char *key;   /* the identity, as given */
    char *shown; /* key as logged and trailed: credential headers '*' */
    char *rkey;  /* its Redis key */
    uint64_t n, period_ms, burst;
    bool exists;
    bool del;                             /* DELETE: a reset, trailed */
    char actor[AUTH_ADMINTOK_ID_MAX + 1]; /* the admin token's id */
} bucket_op_t;

/* "limit=NAME key=KEY", the trail's target of a bucket reset; `shown` is
 * the key as shown_key() wrote it. */
static void bucket_target(const char *limit, const char *shown, char *out, size_t outlen)
{
    /* cut to the buffer: the trail keeps SRV_TRAIL_TARGET_MAX bytes anyway */
    if (snprintf(out, outlen, "limit=%s key=%s", limit ? limit : "", shown ? shown : "") <
        0)
        out[0] = '\0';
}

/* The key as the log and the trail show it: a `header:` part that may
 * carry a credential (as the top lists judge it) written "h:NAME=*". */
static void shown_key(const rl_limit_t *lim, const char *key, char *out, size_t outlen)
{
    rl_topk_redact(lim, key, out, outlen);
}

static void bucket_op_free(bucket_op_t *op)
{
    free(op->limit);
    free(op->key);
    free(op->shown);
    free(op->rkey);
    free(op);
}

static void redis_failed(bucket_op_t *op, const char *errstr)
{
    char target[SRV_TRAIL_TARGET_MAX + 1];

    log_warn("admin buckets: redis: %s", errstr ? errstr : "no reply");
    if (op->del) {
        bucket_target(op->limit, op->shown, target, sizeof target);
        srv_admin_trail_answer(op->w, op->req, op->actor, "bucket_reset", target, 503,
                               "unavailable");
    }
    send_err(op->req, 503, "unavailable", "redis unavailable");
    bucket_op_free(op);
}

static void on_peek(rc_client_t *c, redisReply *rep, const char *errstr, void *privdata)
{
    bucket_op_t *op = privdata;

    (void)c;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 6) {
        redis_failed(op, rep && rep->type == REDIS_REPLY_ERROR ? rep->str : errstr);
        return;
    }
    /* [allowed, retry, fits, remaining, reset_ms, retry_after] (lua/bucket.lua) */
    srv_admin_send_json(op->req, 200,
                        json_pack("{s:s,s:s,s:b,s:s,s:I,s:I,s:I}", "limit", op->limit,
                                  "key", op->key, "exists", op->exists, "state",
                                  op->exists ? "present" : "absent (full)", "tokens",
                                  (json_int_t)rep->element[3]->integer, "capacity",
                                  (json_int_t)op->burst, "reset_seconds",
                                  (json_int_t)((rep->element[4]->integer + 999) / 1000)));
    bucket_op_free(op);
}

static void on_exists(rc_client_t *c, redisReply *rep, const char *errstr, void *privdata)
{
    bucket_op_t *op = privdata;
    char a[4][UTIL_FMT_U64_MAX];
    const char *args[5] = {"0", a[0], a[1], a[2], "0"}; /* cost 0: peek; enforce */
    const char *keys[1] = {op->rkey};

    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        redis_failed(op, rep && rep->type == REDIS_REPLY_ERROR ? rep->str : errstr);
        return;
    }
    op->exists = rep->integer > 0;
    util_fmt_u64(a[0], op->n);
    util_fmt_u64(a[1], op->period_ms);
    util_fmt_u64(a[2], op->burst);
    if (rc_evalsha(c, op->script, 1, keys, NULL, 5, args, NULL, on_peek, op) == NULL)
        redis_failed(op, "not sent");
}

static void on_del(rc_client_t *c, redisReply *rep, const char *errstr, void *privdata)
{
    bucket_op_t *op = privdata;

    (void)c;
    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        redis_failed(op, rep && rep->type == REDIS_REPLY_ERROR ? rep->str : errstr);
        return;
    }
    log_info("admin: reset bucket %s of %s in redis", op->limit, op->shown);
    {
        char target[SRV_TRAIL_TARGET_MAX + 1];

        bucket_target(op->limit, op->shown, target, sizeof target);
        srv_admin_trail_answer(op->w, op->req, op->actor, "bucket_reset", target, 200,
                               NULL);
    }
    srv_admin_send_json(op->req, 200,
                        json_pack("{s:s,s:s,s:b}", "limit", op->limit, "key", op->key,
                                  "reset", rep->integer > 0));
    bucket_op_free(op);
}

/* GET reads the bucket with bucket.lua's peek (cost 0: Redis' clock, nothing
 * written); DELETE deletes its key.  Workers that cached a denial of it
 * (the over-limit cache) keep denying until that entry expires. */
static void redis_bucket(srv_worker_t *w, struct evhttp_request *req,
                         enum evhttp_cmd_type cmd, const rl_limit_t *lim, const char *key)
{
    char rkey[RL_REDIS_MAX_KEY], shown[RL_MAX_IDENTITY_LEN + 8];
    int len = rl_redis_key(w->srv->redis_prefix, key, lim->name, rkey, sizeof rkey);
    bucket_op_t *op = calloc(1, sizeof(*op));
    const char *argv[2] = {cmd == EVHTTP_REQ_DELETE ? "DEL" : "EXISTS", rkey};
    rc_pending_t *h;

    if (len < 0 || op == NULL) {
        if (cmd == EVHTTP_REQ_DELETE)
            srv_admin_trail_answer(w, req, srv_admin_actor(), "bucket_reset", NULL, 400,
                                   "bad_request");
        send_err(req, 400, "bad_request", "key too long");
        free(op);
        return;
    }
    op->w = w;
    op->req = req;
    op->del = cmd == EVHTTP_REQ_DELETE;
    snprintf(op->actor, sizeof op->actor, "%s", srv_admin_actor());
    op->rc = w->srv->admin.rc;
    op->script = srv_script_index("bucket");
    op->limit = strdup(lim->name);
    op->key = strdup(key);
    shown_key(lim, key, shown, sizeof shown);
    op->shown = strdup(shown);
    op->rkey = strdup(rkey);
    op->n = lim->rate.n;
    op->period_ms = lim->rate.period_ms;
    op->burst = lim->rate.burst;
    if (op->limit == NULL || op->key == NULL || op->shown == NULL || op->rkey == NULL) {
        redis_failed(op, "out of memory");
        return;
    }
    h = rc_command_argv(op->rc, rkey, (size_t)len, 2, argv, NULL,
                        cmd == EVHTTP_REQ_DELETE ? on_del : on_exists, op);
    if (h == NULL)
        redis_failed(op, "not sent");
}

static void buckets(srv_worker_t *w, struct evhttp_request *req, enum evhttp_cmd_type cmd)
{
    struct evkeyvalq q;
    const char *uri = evhttp_request_get_uri(req), *qs = strchr(uri, '?');
    const char *name, *key;
    const rl_limit_t *lim = NULL;
    rl_bucket_t b;
    char err[256];

    TAILQ_INIT(&q);
    if (qs == NULL || evhttp_parse_query_str(qs + 1, &q) != 0) {
        if (cmd == EVHTTP_REQ_DELETE)
            srv_admin_trail_answer(w, req, srv_admin_actor(), "bucket_reset", NULL, 400,
                                   "bad_request");
        send_err(req, 400, "bad_request", "limit and key are required");
        goto out;
    }
    name = evhttp_find_header(&q, "limit");
    key = evhttp_find_header(&q, "key");
    for (size_t i = 0; name != NULL && i < w->cfg->policy.nlimits; i++)
        if (strcmp(w->cfg->policy.limits[i].name, name) == 0)
            lim = &w->cfg->policy.limits[i];
    if (lim == NULL || key == NULL) {
        if (cmd == EVHTTP_REQ_DELETE)
            srv_admin_trail_answer(w, req, srv_admin_actor(), "bucket_reset", NULL, 400,
                                   "bad_request");
        send_err(req, 400, "bad_request", "limit (a configured name) and key are required");
        goto out;
    }
    /* key, once URL-decoded, is the identity exactly as spelled (explain's
     * "key"): one that no request could spell is refused, not read as full */
    if (rl_policy_identity_check(lim, key, err, sizeof err) != 0) {
        if (cmd == EVHTTP_REQ_DELETE)
            srv_admin_trail_answer(w, req, srv_admin_actor(), "bucket_reset", NULL, 400,
                                   "bad_request");
        send_err(req, 400, "bad_request", err);
        goto out;
    }
    if (w->srv->admin.rc != NULL) {
        redis_bucket(w, req, cmd, lim, key);
        goto out;
    }
    if (cmd == EVHTTP_REQ_DELETE) {
        bool had = rl_memory_reset(w->srv->memory, lim->name, key) == 0;
        char target[SRV_TRAIL_TARGET_MAX + 1], shown[RL_MAX_IDENTITY_LEN + 8];

        shown_key(lim, key, shown, sizeof shown);
        bucket_target(lim->name, shown, target, sizeof target);
        srv_admin_trail_answer(w, req, srv_admin_actor(), "bucket_reset", target, 200,
                               NULL);
        srv_admin_send_json(
            req, 200,
            json_pack("{s:s,s:s,s:b}", "limit", lim->name, "key", key, "reset", had));
        goto out;
    }
    if (rl_memory_peek(w->srv->memory, lim->name, key, &lim->rate, util_mono_ms(), &b) !=
        0) {
        srv_admin_send_json(req, 200,
                            json_pack("{s:s,s:s,s:b,s:s,s:I,s:I}", "limit", lim->name,
                                      "key", key, "exists", 0, "state", "absent (full)",
                                      "tokens", (json_int_t)lim->rate.burst, "capacity",
                                      (json_int_t)lim->rate.burst));
        goto out;
    }
    srv_admin_send_json(
        req, 200,
        json_pack("{s:s,s:s,s:b,s:s,s:I,s:I,s:I}", "limit", lim->name, "key", key, "exists",
                  1, "state", "present", "tokens",
                  (json_int_t)(b.level / lim->rate.period_ms), "capacity",
                  (json_int_t)lim->rate.burst, "reset_seconds",
                  (json_int_t)((rl_bucket_full_after_ms(&b, &lim->rate) + 999) / 1000)));
out:
    evhttp_clear_headers(&q);
}

/* GET /admin/v1/audit?since=&limit=: one page of the fleet's admin trail
 * from the Redis stream, oldest first. */
typedef struct audit_page {
    struct evhttp_request *req;
    unsigned count;
} audit_page_t;

static void audit_unavailable(struct evhttp_request *req)
{
    send_err(req, 503, "unavailable",
             "the fleet's admin trail needs Redis; each replica's local audit log has its "
             "own lines (\"kind\":\"admin\")");
}

static void on_xrange(rc_client_t *c, redisReply *rep, const char *errstr, void *privdata)
{
    audit_page_t *ap = privdata;
    char last[SRV_AUDIT_ID_MAX + 1], err[128];
    json_t *entries;

    (void)c;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        log_warn("admin audit: redis: %s", rep      ? "error reply"
                                           : errstr ? errstr
                                                    : "no reply");
        audit_unavailable(ap->req);
        goto out_free;
    }
    entries = srv_admin_trail_entries(rep, ap->count, last, sizeof last, err, sizeof err);
    if (entries == NULL) {
        log_warn("admin audit: %s", err);
        send_err(ap->req, 502, "bad_gateway",
                 "the admin trail stream's reply is malformed");
        goto out_free;
    }
    srv_admin_send_json(ap->req, 200,
                        json_pack("{s:o,s:s?,s:b}", "entries", entries, "next",
                                  last[0] ? last : NULL, "more",
                                  json_array_size(entries) == ap->count));
out_free:
    free(ap);
}

static void audit_read(srv_worker_t *w, struct evhttp_request *req)
{
    struct evkeyvalq q;
    const char *uri = evhttp_request_get_uri(req), *qs = strchr(uri, '?');
    char start[SRV_AUDIT_ID_MAX + 2], key[256], count[UTIL_FMT_U64_MAX], err[160];
    const char *argv[6] = {"XRANGE", key, start, "+", "COUNT", count};
    audit_page_t *ap = NULL;
    unsigned n;
    int klen;

    TAILQ_INIT(&q);
    if (qs != NULL && evhttp_parse_query_str(qs + 1, &q) != 0) {
        send_err(req, 400, "bad_request", "bad query string");
        goto out;
    }
    if (srv_admin_parse_audit_query(evhttp_find_header(&q, "since"),
                                    evhttp_find_header(&q, "limit"), start, sizeof start,
                                    &n, err, sizeof err) != 0) {
        send_err(req, 400, "bad_request", err);
        goto out;
    }
    klen = srv_trail_key(w->srv->redis_prefix, key, sizeof key);
    if (w->srv->admin.rc == NULL || klen < 0) {
        audit_unavailable(req);
        goto out;
    }
    util_fmt_u64(count, n);
    ap = calloc(1, sizeof(*ap));
    if (ap == NULL) {
        send_err(req, 500, "error", "out of memory");
        goto out;
    }
    ap->req = req;
    ap->count = n;
    if (rc_command_argv(w->srv->admin.rc, key, (size_t)klen, 6, argv, NULL, on_xrange,
                        ap) == NULL) {
        free(ap);
        audit_unavailable(req);
    }
out:
    evhttp_clear_headers(&q);
}

/* Uniform handlers for the table. */
static void config_get(srv_worker_t *w, struct evhttp_request *req)
{
    config(w, req);
}

static void buckets_any(srv_worker_t *w, struct evhttp_request *req)
{
    buckets(w, req, evhttp_request_get_command(req));
}

/* POST /admin/v1/explain (admin_explain.c): a dry run, it changes nothing */
static void explain_post(srv_worker_t *w, struct evhttp_request *req)
{
    srv_admin_explain(w, req);
}

/* GET /admin/v1/limits/{name}/top (admin_top.c) */
static void limits_get(srv_worker_t *w, struct evhttp_request *req)
{
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

    srv_admin_top(w, req, path + strlen("/admin/v1/limits/"));
}

typedef void admin_fn(srv_worker_t *w, struct evhttp_request *req);

typedef struct admin_route {
    unsigned methods;         /* EVHTTP_REQ_* bits */
    const char *path;         /* exact; ending in '*': that prefix and any rest */
    auth_admin_scope_t scope; /* the least scope a token needs */
    const char *action;       /* write endpoints: the trail's action for a 403 */
    admin_fn *fn;
} admin_route_t;

#define GET EVHTTP_REQ_GET
#define POST EVHTTP_REQ_POST
#define DELETE EVHTTP_REQ_DELETE
#define READ AUTH_ADMIN_READ
#define WRITE AUTH_ADMIN_WRITE

/* The admin API.  Adding an endpoint is one line here: methods, path,
 * scope (READ for what only reads, WRITE for what changes state), the trail
 * action refused 403s are recorded under (NULL for reads), the handler.
 * A WRITE handler calls srv_admin_trail (srv_trail.h) once with its outcome;
 * srv_admin_actor() is the token's id.  The first line that matches the
 * path and method wins; a path that matches no line is a 404. */
static const admin_route_t admin_routes[] = {
    {POST, "/admin/v1/reload", WRITE, "reload", reload},
    {GET, "/admin/v1/config", READ, NULL, config_get},
    {GET, "/admin/v1/buckets", READ, NULL, buckets_any},
    {DELETE, "/admin/v1/buckets", WRITE, "bucket_reset", buckets_any},
    {POST, "/admin/v1/revocations", WRITE, "revoke_jti", srv_admin_revoke_jti},
    {POST, "/admin/v1/revocations/subject", WRITE, "revoke_subject",
     srv_admin_revoke_subject},
    {GET, "/admin/v1/revocations", READ, NULL, srv_admin_revocations_list},
    {GET, "/admin/v1/revocations/subject/*", READ, NULL, srv_admin_revocation_subject_get},
    {GET, "/admin/v1/revocations/*", READ, NULL, srv_admin_revocation_get},
    {DELETE, "/admin/v1/revocations/subject/*", WRITE, "unrevoke",
     srv_admin_unrevoke_subject},
    {DELETE, "/admin/v1/revocations/*", WRITE, "unrevoke", srv_admin_unrevoke_jti},
    {GET, "/admin/v1/audit", READ, NULL, audit_read},
    {GET, "/admin/v1/limits/*", READ, NULL, limits_get},
    {POST, "/admin/v1/explain", READ, NULL, explain_post},
    {POST, "/admin/v1/bans", WRITE, "ban", srv_admin_ban_post},
    {GET, "/admin/v1/bans", READ, NULL, srv_admin_bans_get},
    {DELETE, "/admin/v1/bans/*", WRITE, "unban", srv_admin_ban_delete},
    {GET, "/admin/v1/lockouts", READ, NULL, srv_admin_lockouts_get},
    {DELETE, "/admin/v1/lockouts/*", WRITE, "unlock", srv_admin_lockout_delete},
};

#undef GET
#undef POST
#undef DELETE
#undef READ
#undef WRITE

static bool route_matches(const admin_route_t *r, const char *path)
{
    size_t n = strlen(r->path);

    if (n > 0 && r->path[n - 1] == '*')
        return strncmp(path, r->path, n - 1) == 0;
    return strcmp(path, r->path) == 0;
}

static const admin_route_t *find_route(const char *path, enum evhttp_cmd_type cmd)
{
    for (size_t i = 0; i < sizeof admin_routes / sizeof admin_routes[0]; i++)
        if ((admin_routes[i].methods & (unsigned)cmd) != 0 &&
            route_matches(&admin_routes[i], path))
            return &admin_routes[i];
    return NULL;
}

static const char *method_name(unsigned methods)
{
    return methods == EVHTTP_REQ_GET      ? "GET"
           : methods == EVHTTP_REQ_POST   ? "POST"
           : methods == EVHTTP_REQ_DELETE ? "DELETE"
                                          : "?";
}

bool srv_admin_route_at(size_t i, const char **method, const char **path, bool *write)
{
    if (i >= sizeof admin_routes / sizeof admin_routes[0])
        return false;
    *method = method_name(admin_routes[i].methods);
    *path = admin_routes[i].path;
    *write = admin_routes[i].scope == AUTH_ADMIN_WRITE;
    return true;
}

long srv_admin_route_find(const char *method, const char *path)
{
    static const struct {
        const char *name;
        enum evhttp_cmd_type cmd;
    } cmds[] = {
        {"GET", EVHTTP_REQ_GET}, {"POST", EVHTTP_REQ_POST}, {"DELETE", EVHTTP_REQ_DELETE}};
    const admin_route_t *r = NULL;

    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(method, cmds[i].name) == 0)
            r = find_route(path, cmds[i].cmd);
    return r != NULL ? (long)(r - admin_routes) : -1;
}

static void unauthorized(srv_worker_t *w, struct evhttp_request *req)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"tollgate-admin\"");
    send_err(req, 401, "unauthorized",
             auth_admintok_count(w->cfg->admin_tokens) > 0
                 ? "admin token required"
                 : "admin API disabled: set ADMIN_TOKEN or admin_tokens_file");
}

static void dispatch(srv_worker_t *w, struct evhttp_request *req, const char *path,
                     enum evhttp_cmd_type cmd)
{
    const auth_admin_id_t *who = authorized(w->cfg, req);
    const admin_route_t *r;
    const char *q;

    if (who == NULL) {
        unauthorized(w, req);
        return;
    }
    r = find_route(path, cmd);
    if (r == NULL) {
        send_err(req, 404, "not_found", "no such admin endpoint");
        return;
    }
    if (r->scope == AUTH_ADMIN_WRITE && who->scope != AUTH_ADMIN_WRITE) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"tollgate-admin\", error=\"insufficient_scope\", "
                          "scope=\"write\"");
        srv_admin_trail_answer(w, req, who->id, r->action, NULL, 403, "insufficient_scope");
        send_err(req, 403, "insufficient_scope", "this admin token may only read");
        return;
    }
    if ((q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req))) != NULL &&
        strstr(q, "%00") != NULL) {
        /* a decoded NUL ends the C string every handler reads: the query
         * would name another target than it shows (a path's ids are each
         * handler's to check) */
        if (r->scope == AUTH_ADMIN_WRITE)
            srv_admin_trail_answer(w, req, who->id, r->action, NULL, 400, "bad_request");
        send_err(req, 400, "bad_request", "a NUL (%00) in the query");
        return;
    }
    g_actor = who->id;
    g_actor_writes = who->scope == AUTH_ADMIN_WRITE;
    r->fn(w, req);
    g_actor = NULL;
    g_actor_writes = false;
}

void srv_admin_handle(struct evhttp_request *req, void *arg)
{
    srv_worker_t *w = arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

    const char *rid =
        evhttp_find_header(evhttp_request_get_input_headers(req), "X-Request-ID");
    char newid[37];

    if (rid == NULL || !http_reqid_valid(rid)) {
        http_reqid_new(newid);
        rid = newid;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Request-ID", rid);
    if (path == NULL)
        path = "/";
    if (strcmp(path, "/metrics") == 0 && cmd == EVHTTP_REQ_GET) {
        metrics(w, req);
        return;
    }
    if (strcmp(path, w->cfg->healthz_path) == 0) {
        srv_send_plain_json(req, 200, "{\"status\":\"ok\"}");
        return;
    }
    if (strcmp(path, w->cfg->readyz_path) == 0) {
        readyz(w, req);
        return;
    }
    if (strncmp(path, "/admin/", 7) != 0) {
        send_err(req, 404, "not_found", "no such admin endpoint");
        return;
    }
    dispatch(w, req, path, cmd);
}
