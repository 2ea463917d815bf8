/* admin.c — the admin listener (docs/reference.md §4): metrics, health, and the admin
 * API behind `Authorization: Bearer ADMIN_TOKEN` (constant-time compare).
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
#include "srv_admin_req.h"
#include "tollgate/log.h"
#include "tollgate/rc.h"
#include "tollgate/rl_redis.h"
#include "tollgate/util_fmt.h"
#include "srv_process.h"
#include "srv_admin_explain.h"

static void send_err(struct evhttp_request *req, int status, const char *code,
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

static void send_obj(struct evhttp_request *req, int status, json_t *o)
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

static bool authorized(const cfg_t *c, struct evhttp_request *req)
{
    const char *h =
        evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    const char *tok;

    if (c->admin_token == NULL || h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    tok = h + 7;
    return auth_ct_equal(tok, strlen(tok), c->admin_token, strlen(c->admin_token));
}

static void metrics(srv_worker_t *w, struct evhttp_request *req)
{
    struct evbuffer *buf = evbuffer_new();
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    if (buf == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    metrics_render(buf);
    srv_jwks_metrics(buf);
    /* the admin thread's snapshot: the newest, it is given it last */
    metrics_render_build_info(buf, TOLLGATE_VERSION, w->cfg->version);
    metrics_render_process(buf);
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

    if (srv_reload(w->srv, err, sizeof(err)) != 0) {
        const char *rid =
            evhttp_find_header(evhttp_request_get_output_headers(req), "X-Request-ID");

        send_obj(req, 422,
                 json_pack("{s:{s:s,s:s,s:s,s:s}}", "error", "code", "config_invalid",
                           "message", "config rejected; the old config stays", "detail",
                           err, "request_id", rid ? rid : ""));
        return;
    }
    c = srv_current_cfg(w->srv);
    send_obj(req, 200,
             json_pack("{s:s,s:s,s:s}", "status", "ok", "config_version", c->version,
                       "secrets_version", c->secrets_version));
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
    struct evhttp_request *req;
    rc_client_t *rc;
    size_t script;
    char *limit;
    char *key;  /* the identity, as given */
    char *rkey; /* its Redis key */
    uint64_t n, period_ms, burst;
    bool exists;
} bucket_op_t;

static void bucket_op_free(bucket_op_t *op)
{
    free(op->limit);
    free(op->key);
    free(op->rkey);
    free(op);
}

static void redis_failed(bucket_op_t *op, const char *errstr)
{
    log_warn("admin buckets: redis: %s", errstr ? errstr : "no reply");
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
    send_obj(op->req, 200,
             json_pack("{s:s,s:s,s:b,s:s,s:I,s:I,s:I}", "limit", op->limit, "key", op->key,
                       "exists", op->exists, "state",
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
    log_info("admin: reset bucket %s of %s in redis", op->limit, op->key);
    send_obj(op->req, 200,
             json_pack("{s:s,s:s,s:b}", "limit", op->limit, "key", op->key, "reset",
                       rep->integer > 0));
    bucket_op_free(op);
}

/* GET reads the bucket with bucket.lua's peek (cost 0: Redis' clock, nothing
 * written); DELETE deletes its key.  Workers that cached a denial of it
 * (the over-limit cache) keep denying until that entry expires. */
static void redis_bucket(srv_worker_t *w, struct evhttp_request *req,
                         enum evhttp_cmd_type cmd, const rl_limit_t *lim, const char *key)
{
    char rkey[RL_REDIS_MAX_KEY];
    int len = rl_redis_key(w->srv->redis_prefix, key, lim->name, rkey, sizeof rkey);
    bucket_op_t *op = calloc(1, sizeof(*op));
    const char *argv[2] = {cmd == EVHTTP_REQ_DELETE ? "DEL" : "EXISTS", rkey};
    rc_pending_t *h;

    if (len < 0 || op == NULL) {
        send_err(req, 400, "bad_request", "key too long");
        free(op);
        return;
    }
    op->req = req;
    op->rc = w->srv->admin.rc;
    op->script = srv_script_index("bucket");
    op->limit = strdup(lim->name);
    op->key = strdup(key);
    op->rkey = strdup(rkey);
    op->n = lim->rate.n;
    op->period_ms = lim->rate.period_ms;
    op->burst = lim->rate.burst;
    if (op->limit == NULL || op->key == NULL || op->rkey == NULL) {
        send_err(req, 503, "unavailable", "out of memory");
        bucket_op_free(op);
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
        send_err(req, 400, "bad_request", "limit and key are required");
        goto out;
    }
    name = evhttp_find_header(&q, "limit");
    key = evhttp_find_header(&q, "key");
    for (size_t i = 0; name != NULL && i < w->cfg->policy.nlimits; i++)
        if (strcmp(w->cfg->policy.limits[i].name, name) == 0)
            lim = &w->cfg->policy.limits[i];
    if (lim == NULL || key == NULL) {
        send_err(req, 400, "bad_request", "limit (a configured name) and key are required");
        goto out;
    }
    /* key, once URL-decoded, is the identity exactly as spelled (explain's
     * "key"): one that no request could spell is refused, not read as full */
    if (rl_policy_identity_check(lim, key, err, sizeof err) != 0) {
        send_err(req, 400, "bad_request", err);
        goto out;
    }
    if (w->srv->admin.rc != NULL) {
        redis_bucket(w, req, cmd, lim, key);
        goto out;
    }
    if (cmd == EVHTTP_REQ_DELETE) {
        bool had = rl_memory_reset(w->srv->memory, lim->name, key) == 0;

        send_obj(req, 200,
                 json_pack("{s:s,s:s,s:b}", "limit", lim->name, "key", key, "reset", had));
        goto out;
    }
    if (rl_memory_peek(w->srv->memory, lim->name, key, &lim->rate, util_mono_ms(), &b) !=
        0) {
        send_obj(req, 200,
                 json_pack("{s:s,s:s,s:b,s:s,s:I,s:I}", "limit", lim->name, "key", key,
                           "exists", 0, "state", "absent (full)", "tokens",
                           (json_int_t)lim->rate.burst, "capacity",
                           (json_int_t)lim->rate.burst));
        goto out;
    }
    send_obj(
        req, 200,
        json_pack("{s:s,s:s,s:b,s:s,s:I,s:I,s:I}", "limit", lim->name, "key", key, "exists",
                  1, "state", "present", "tokens",
                  (json_int_t)(b.level / lim->rate.period_ms), "capacity",
                  (json_int_t)lim->rate.burst, "reset_seconds",
                  (json_int_t)((rl_bucket_full_after_ms(&b, &lim->rate) + 999) / 1000)));
out:
    evhttp_clear_headers(&q);
}

/* The request body as a NUL-terminated copy (admin bodies are small:
 * the admin listener caps them at 64 KiB). */
static char *body_of(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    char *b;

    *len = evbuffer_get_length(in);
    b = malloc(*len + 1);
    if (b == NULL)
        return NULL;
    evbuffer_copyout(in, b, *len);
    b[*len] = '\0';
    return b;
}

/* The admin request waiting for Redis to store a revocation. */
typedef struct revoke_wait {
    struct evhttp_request *req;
    bool subject;
    char id[AUTH_REVOKE_MAX_ID + 1];
} revoke_wait_t;

static void revoke_done(const char *err, int64_t when, void *privdata)
{
    revoke_wait_t *rw = privdata;

    if (err != NULL) {
        send_err(rw->req, strstr(err, "redis") ? 503 : 400,
                 strstr(err, "redis") ? "unavailable" : "bad_request", err);
    } else {
        log_info("revoked %s %s (%s %lld)", rw->subject ? "subject" : "jti", rw->id,
                 rw->subject ? "before" : "until", (long long)when);
        send_obj(rw->req, 200,
                 rw->subject ? json_pack("{s:s,s:I,s:b}", "sub", rw->id, "before",
                                         (json_int_t)when, "revoked", 1)
                             : json_pack("{s:s,s:I,s:b}", "jti", rw->id, "exp",
                                         (json_int_t)when, "revoked", 1));
    }
    free(rw);
}

/* POST /admin/v1/revocations and /admin/v1/revocations/subject. */
static void revoke(srv_worker_t *w, struct evhttp_request *req, bool subject)
{
    srv_revoke_req_t rq;
    char err[256];
    size_t len;
    char *body = body_of(req, &len);
    int64_t now = util_wall_ms() / 1000;
    int rc;

    rc = body ? srv_admin_parse_revoke(body, len, subject, &rq, err, sizeof(err)) : -1;
    free(body);
    if (rc != 0) {
        send_err(req, 400, "bad_request", body ? err : "out of memory");
        return;
    }
    if (rq.kind == SRV_REVOKE_TOKEN) {
        auth_identity_t id = {0};
        auth_jwt_status_t st =
            w->cfg->auth.jwt_verifier
                ? auth_jwt_verify(w->cfg->auth.jwt_verifier, w->jwt_local, rq.token,
                                  strlen(rq.token), now, &id)
                : AUTH_JWT_BAD_ALG;

        if (st == AUTH_JWT_OK && id.jti == NULL)
            snprintf(err, sizeof(err), "the token has no jti: revoke its subject instead");
        else if (st != AUTH_JWT_OK)
            snprintf(err, sizeof(err), "the token does not verify (%s)",
                     auth_jwt_status_str(st));
        else
            snprintf(rq.id, sizeof(rq.id), "%s", id.jti);
        rq.when = id.exp < SRV_ADMIN_MAX_TIME ? id.exp : SRV_ADMIN_MAX_TIME;
        auth_identity_clear(&id);
        if (st != AUTH_JWT_OK || rq.id[0] == '\0') {
            srv_revoke_req_clear(&rq);
            send_err(req, 400, "bad_request", err);
            return;
        }
    }
    if (rq.kind == SRV_REVOKE_SUBJECT && rq.when == 0)
        rq.when = now + 1; /* every token issued up to now */
    revoke_wait_t *rw = calloc(1, sizeof(*rw));
    if (rw == NULL) {
        srv_revoke_req_clear(&rq);
        send_err(req, 500, "error", "out of memory");
        return;
    }
    rw->req = req;
    rw->subject = subject;
    snprintf(rw->id, sizeof(rw->id), "%s", rq.id);
    if (srv_shared_revoke(w->srv, rq.kind, rq.id, rq.when, revoke_done, rw) != 0) {
        free(rw);
        send_err(req, 503, "unavailable", "redis unavailable: nothing was revoked");
    }
    srv_revoke_req_clear(&rq);
}

/* GET /admin/v1/revocations/{jti} */
static void revocation(srv_worker_t *w, struct evhttp_request *req, const char *jti)
{
    int64_t exp = 0;
    char *id = evhttp_uridecode(jti, 0, NULL);
    bool revoked;

    if (id == NULL || *id == '\0' || strlen(id) > AUTH_REVOKE_MAX_ID) {
        free(id);
        send_err(req, 400, "bad_request", "bad jti");
        return;
    }
    revoked = auth_revoke_get(w->srv->revoked, id, util_wall_ms() / 1000, &exp);
    send_obj(req, 200,
             revoked ? json_pack("{s:s,s:b,s:I}", "jti", id, "revoked", 1, "exp",
                                 (json_int_t)exp)
                     : json_pack("{s:s,s:b,s:n}", "jti", id, "revoked", 0, "exp"));
    free(id);
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
    if (!authorized(w->cfg, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"tollgate-admin\"");
        {
            send_err(req, 401, "unauthorized",
                     w->cfg->admin_token ? "admin token required"
                                         : "admin API disabled: set ADMIN_TOKEN");
            return;
        }
    }
    if (strcmp(path, "/admin/v1/reload") == 0 && cmd == EVHTTP_REQ_POST) {
        reload(w, req);
        return;
    }
    if (strcmp(path, "/admin/v1/config") == 0 && cmd == EVHTTP_REQ_GET) {
        config(w, req);
        return;
    }
    if (strcmp(path, "/admin/v1/buckets") == 0 &&
        (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_DELETE)) {
        buckets(w, req, cmd);
        return;
    }
    if (strcmp(path, "/admin/v1/revocations") == 0 && cmd == EVHTTP_REQ_POST) {
        revoke(w, req, false);
        return;
    }
    if (strcmp(path, "/admin/v1/revocations/subject") == 0 && cmd == EVHTTP_REQ_POST) {
        revoke(w, req, true);
        return;
    }
    if (strncmp(path, "/admin/v1/revocations/", 22) == 0 && cmd == EVHTTP_REQ_GET) {
        revocation(w, req, path + 22);
        return;
    }
    if (strcmp(path, "/admin/v1/explain") == 0 && cmd == EVHTTP_REQ_POST) {
        srv_admin_explain(w, req); /* a dry run: changes nothing (read scope) */
        return;
    }
    send_err(req, 404, "not_found", "no such admin endpoint");
}
