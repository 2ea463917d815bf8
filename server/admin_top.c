/* admin_top.c — GET /admin/v1/limits/{name}/top?window=&by=&n= (docs/reference.md):
 * the fleet's merged top list of one limit from Redis (lua/top.lua), this
 * replica's own lists counted live rather than as last published; without
 * Redis, or when the read fails, this replica's alone ("scope": "replica").
 *
 * Every list read from Redis is outside input: rl_topk_decode refuses what
 * is not well-formed, and such a replica is left out and counted in
 * "rejected".  The answer is bounded: at most RL_TOPK_CAP entries of
 * bounded identities.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "tollgate/log.h"
#include "tollgate/rc.h"
#include "srv_top.h"

#define TOP_DEFAULT_N 10
#define TOP_MAX_REPLICAS 1000 /* entries of lua/top.lua's answer, at most */

typedef struct top_q {
    char name[RL_TOPK_NAME_LEN];
    const rl_limit_t *lim;
    int win; /* rl_topk_windows index */
    rl_topk_kind_t by;
    size_t n;
} top_q_t;

typedef struct top_op {
    struct evhttp_request *req;
    srv_t *s;
    rc_pending_t *h;            /* the script call in flight */
    struct top_op *next, *prev; /* srv_top_pending's list */
    top_q_t q;
    bool shadow; /* the limit's mode is shadow */
} top_op_t;

/* window, by and n, each at most once, nothing else: 0, or -1 with `msg`. */
static int parse_query(struct evhttp_request *req, top_q_t *q, const char **msg)
{
    const char *uri = evhttp_request_get_uri(req), *qs = strchr(uri, '?');
    struct evkeyvalq kv;
    struct evkeyval *e;
    unsigned seen = 0;
    int rc = 0;

    q->win = rl_topk_window_index(5);
    q->by = RL_TOPK_DENIED;
    q->n = TOP_DEFAULT_N;
    TAILQ_INIT(&kv);
    if (qs == NULL)
        return 0;
    if (evhttp_parse_query_str(qs + 1, &kv) != 0) {
        *msg = "malformed query";
        return -1;
    }
    TAILQ_FOREACH(e, &kv, next)
    {
        unsigned bit = strcmp(e->key, "window") == 0 ? 1
                       : strcmp(e->key, "by") == 0   ? 2
                       : strcmp(e->key, "n") == 0    ? 4
                                                     : 0;
        char *end = NULL;
        unsigned long v;

        if (bit == 0 || (seen & bit) != 0) {
            *msg = bit ? "a parameter given twice"
                       : "unknown parameter: window, by and n only";
            rc = -1;
            break;
        }
        seen |= bit;
        if (bit == 1) {
            q->win = strcmp(e->value, "1m") == 0    ? 0
                     : strcmp(e->value, "5m") == 0  ? 1
                     : strcmp(e->value, "15m") == 0 ? 2
                                                    : -1;
            if (q->win < 0) {
                *msg = "window: 1m, 5m or 15m";
                rc = -1;
                break;
            }
        } else if (bit == 2) {
            if (strcmp(e->value, "denied") != 0 && strcmp(e->value, "requests") != 0) {
                *msg = "by: denied or requests";
                rc = -1;
                break;
            }
            q->by = strcmp(e->value, "denied") == 0 ? RL_TOPK_DENIED : RL_TOPK_REQUESTS;
        } else {
            v = e->value[0] >= '1' && e->value[0] <= '9' && strlen(e->value) <= 3
                    ? strtoul(e->value, &end, 10)
                    : 0;
            if (end == NULL || *end != '\0' || v < 1 || v > RL_TOPK_CAP) {
                *msg = "n: an integer from 1 to 48";
                rc = -1;
                break;
            }
            q->n = v;
        }
    }
    evhttp_clear_headers(&kv);
    return rc;
}

/* The limit named by "NAME/top"; 404 / 400 answered here when not. */
static int parse_target(srv_worker_t *w, struct evhttp_request *req, const char *rest,
                        top_q_t *q)
{
    const char *slash = strchr(rest, '/');
    size_t len = slash ? (size_t)(slash - rest) : 0;
    const char *msg = NULL;

    if (slash == NULL || strcmp(slash, "/top") != 0 || len == 0 ||
        len >= RL_TOPK_NAME_LEN) {
        srv_admin_error(req, 404, "not_found", "no such admin endpoint");
        return -1;
    }
    memcpy(q->name, rest, len);
    q->name[len] = '\0';
    q->lim = NULL;
    for (size_t i = 0; i < w->cfg->policy.nlimits; i++)
        if (strcmp(w->cfg->policy.limits[i].name, q->name) == 0)
            q->lim = &w->cfg->policy.limits[i];
    if (q->lim == NULL) {
        srv_admin_error(req, 404, "not_found", "no limit of that name");
        return -1;
    }
    if (parse_query(req, q, &msg) != 0) {
        srv_admin_error(req, 400, "bad_request", msg);
        return -1;
    }
    return 0;
}

static void answer(struct evhttp_request *req, const top_q_t *q, bool shadow,
                   const rl_topk_sum_t *sum, const char *scope, unsigned replicas,
                   unsigned rejected)
{
    static const char *const win_names[RL_TOPK_NWIN] = {"1m", "5m", "15m"};
    const rl_topk_entry_t *top[RL_TOPK_CAP];
    size_t n = rl_topk_sum_sorted(sum, top, q->n);
    json_t *list = json_array(), *o;
    char *body;

    for (size_t i = 0; list != NULL && i < n; i++)
        json_array_append_new(list, json_pack("{s:s,s:I,s:I}", "client", top[i]->id,
                                              "count", (json_int_t)top[i]->count, "error",
                                              (json_int_t)top[i]->err));
    o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:I,s:I,s:o*}", "limit", q->name, "mode",
                  shadow ? "shadow" : "enforce", "window", win_names[q->win], "by",
                  q->by == RL_TOPK_DENIED ? "denied" : "requests", "scope", scope,
                  "replicas", (int)replicas, "rejected", (int)rejected, "total",
                  (json_int_t)sum->total, "max_unlisted",
                  (json_int_t)rl_topk_sum_floor(sum), "top", list);
    body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (body == NULL)
        srv_admin_error(req, 500, "error", "out of memory");
    else
        srv_send_plain_json(req, 200, body);
    free(body);
    json_decref(o);
}

/* This replica's live summary of the query into `acc` (merged). */
static void add_own(srv_t *s, const top_q_t *q, rl_topk_sum_t *acc)
{
    const rl_topk_view_t *v = srv_top_replica(s);
    const rl_topk_lview_t *lv = v ? rl_topk_view_find(v, q->name) : NULL;

    if (lv != NULL)
        rl_topk_sum_merge(acc, &lv->w[q->win][q->by]);
}

static void answer_replica(top_op_t *op)
{
    rl_topk_sum_t *acc = malloc(sizeof(*acc));

    if (acc == NULL) {
        srv_admin_error(op->req, 500, "error", "out of memory");
        return;
    }
    rl_topk_sum_init(acc);
    add_own(op->s, &op->q, acc);
    answer(op->req, &op->q, op->shadow, acc, "replica", 1, 0);
    free(acc);
}

static bool is_str(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static void unlink_op(top_op_t *op)
{
    void **head = srv_top_pending(op->s);

    if (op->prev != NULL)
        op->prev->next = op->next;
    else if (head != NULL)
        *head = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
}

void srv_admin_top_cancel_all(srv_t *s)
{
    void **head = srv_top_pending(s);

    while (head != NULL && *head != NULL) {
        top_op_t *op = *head;

        *head = op->next;
        rc_cancel(op->h);
        free(op);
    }
}

static void on_lists(rc_client_t *c, redisReply *rep, const char *errstr, void *privdata)
{
    top_op_t *op = privdata;
    const char *own = srv_top_id(op->s);
    rl_topk_sum_t *acc = malloc(sizeof(*acc));
    rl_topk_lview_t *lv = malloc(sizeof(*lv));
    unsigned replicas = 1, rejected = 0;
    char why[64];

    (void)c;
    unlink_op(op);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements % 2 != 0 ||
        rep->elements > 2 * TOP_MAX_REPLICAS || acc == NULL || lv == NULL) {
        log_warn("admin top: redis: %s", rep && rep->type == REDIS_REPLY_ERROR
                                             ? rep->str
                                             : (errstr ? errstr : "malformed answer"));
        answer_replica(op);
        goto out;
    }
    rl_topk_sum_init(acc);
    add_own(op->s, &op->q, acc);
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const redisReply *id = rep->element[i], *v = rep->element[i + 1];

        if (!is_str(id) || (own != NULL && strcmp(id->str, own) == 0))
            continue; /* this replica: counted live above */
        if (!is_str(v) || rl_topk_decode(v->str, v->len, lv, why, sizeof why) != 0) {
            rejected++;
            continue;
        }
        rl_topk_sum_merge(acc, &lv->w[op->q.win][op->q.by]);
        replicas++;
    }
    if (rejected > 0)
        log_warn("admin top: %u replicas' lists of %s in redis are malformed: left out",
                 rejected, op->q.name);
    answer(op->req, &op->q, op->shadow, acc, "fleet", replicas, rejected);
out:
    free(acc);
    free(lv);
    free(op);
}

void srv_admin_top(srv_worker_t *w, struct evhttp_request *req, const char *rest)
{
    top_op_t *op = calloc(1, sizeof(*op));
    char lists[SRV_TOP_KEY_LEN], until[SRV_TOP_KEY_LEN];
    const char *keys[2] = {lists, until}, *args[1] = {"get"};

    if (op == NULL) {
        srv_admin_error(req, 500, "error", "out of memory");
        return;
    }
    op->req = req;
    op->s = w->srv;
    if (parse_target(w, req, rest, &op->q) != 0) {
        free(op);
        return;
    }
    op->shadow = op->q.lim->mode == RL_MODE_SHADOW;
    op->q.lim = NULL; /* the snapshot may change before Redis answers */
    if (w->srv->admin.rc != NULL && srv_top_id(w->srv) != NULL) {
        srv_top_keys(w->srv, op->q.name, lists, until);
        void **head = srv_top_pending(w->srv);

        op->h = head ? rc_evalsha(w->srv->admin.rc, srv_script_index("top"), 2, keys, NULL,
                                  1, args, NULL, on_lists, op)
                     : NULL;
        if (op->h != NULL) {
            op->next = *head;
            if (op->next != NULL)
                op->next->prev = op;
            *head = op;
            return;
        }
    }
    answer_replica(op);
    free(op);
}
