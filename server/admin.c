/* admin.c — the admin listener (DESIGN §5): metrics, health, and the admin
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

#include "tollgate/auth.h"
#include "tollgate/log.h"
#include "srv_internal.h"

static void send_err(struct evhttp_request *req, int status, const char *code,
                     const char *msg)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
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

static void metrics(struct evhttp_request *req)
{
    struct evbuffer *buf = evbuffer_new();
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    if (buf == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    metrics_render(buf);
    evhttp_add_header(out, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    evhttp_add_header(out, "Cache-Control", "no-store");
    evhttp_send_reply(req, 200, "OK", buf);
    evbuffer_free(buf);
}

static void readyz(srv_worker_t *w, struct evhttp_request *req)
{
    bool draining = atomic_load(&w->srv->draining);
    bool ready = atomic_load(&w->srv->ready) && !draining;

    send_obj(req, ready ? 200 : 503,
             json_pack("{s:s,s:s,s:b,s:s}", "status",
                       draining ? "draining"
                       : ready  ? "ok"
                                : "starting",
                       "redis", "disabled", "fallback", 0, "config_version",
                       w->cfg->version));
}

static void reload(srv_worker_t *w, struct evhttp_request *req)
{
    char err[4096];
    cfg_t *c;

    if (srv_reload(w->srv, err, sizeof(err)) != 0) {
        send_obj(req, 422,
                 json_pack("{s:{s:s,s:s,s:s}}", "error", "code", "bad_request", "message",
                           "config rejected; the old config stays", "detail", err));
        return;
    }
    c = srv_current_cfg(w->srv);
    send_obj(req, 200,
             json_pack("{s:s,s:s}", "status", "ok", "config_version", c->version));
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

/* GET|DELETE /admin/v1/buckets?limit=NAME&key=IDENTITY (memory backend). */
static void buckets(srv_worker_t *w, struct evhttp_request *req, enum evhttp_cmd_type cmd)
{
    struct evkeyvalq q;
    const char *uri = evhttp_request_get_uri(req), *qs = strchr(uri, '?');
    const char *name, *key;
    const rl_limit_t *lim = NULL;
    rl_bucket_t b;

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
    if (cmd == EVHTTP_REQ_DELETE) {
        bool had = rl_memory_reset(w->srv->memory, lim->name, key) == 0;

        send_obj(req, 200,
                 json_pack("{s:s,s:s,s:b}", "limit", lim->name, "key", key, "reset", had));
        goto out;
    }
    if (rl_memory_peek(w->srv->memory, lim->name, key, &lim->rate, srv_now_ms(), &b) != 0) {
        send_obj(req, 200,
                 json_pack("{s:s,s:s,s:b,s:I,s:I}", "limit", lim->name, "key", key,
                           "exists", 0, "tokens", (json_int_t)lim->rate.burst, "capacity",
                           (json_int_t)lim->rate.burst));
        goto out;
    }
    send_obj(
        req, 200,
        json_pack("{s:s,s:s,s:b,s:I,s:I,s:I}", "limit", lim->name, "key", key, "exists", 1,
                  "tokens", (json_int_t)(b.level / lim->rate.period_ms), "capacity",
                  (json_int_t)lim->rate.burst, "reset_seconds",
                  (json_int_t)((rl_bucket_full_after_ms(&b, &lim->rate) + 999) / 1000)));
out:
    evhttp_clear_headers(&q);
}

void srv_admin_handle(struct evhttp_request *req, void *arg)
{
    srv_worker_t *w = arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

    if (path == NULL)
        path = "/";
    if (strcmp(path, "/metrics") == 0 && cmd == EVHTTP_REQ_GET) {
        metrics(req);
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
    if (strncmp(path, "/admin/v1/revocations", 21) == 0) {
        send_err(req, 503, "unavailable",
                 "revocations are kept in Redis: not available with redis.mode none");
        return;
    }
    send_err(req, 404, "not_found", "no such admin endpoint");
}
