/* top.c — the wiring of who is limited (srv_top.h): each worker's recorder
 * and its published view, the replica's merge on the admin thread, the
 * publication to Redis (lua/top.lua) and tollgate_limit_top_denied.
 *
 * A publication round sends one script call per limit that has lists; a
 * round starts only when the last one is answered, so a slow Redis never
 * piles calls up.  Failures are logged once when they start and once when
 * they end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "tollgate/log.h"
#include "tollgate/rc.h"
#include "tollgate/rl_fleet.h"
#include "tollgate/util_clock.h"
#include "srv_top.h"

#define TOP_TICK_MS 1000

struct srv_top_worker {
    rl_topk_t *rec;        /* worker thread only */
    rl_topk_view_t *build; /* worker thread only: the next view */
    pthread_mutex_t mu;    /* guards `pub` */
    rl_topk_view_t *pub;   /* the last view, read by the admin thread */
    struct event *ev;
};

struct srv_top {
    rl_topk_view_t *replica; /* admin thread */
    char *wire;              /* admin thread: one encoded limit */
    struct event *ev;
    uint64_t last_pub_ms;
    unsigned inflight; /* script calls of the round not answered yet */
    bool failing;
    void *pending; /* admin_top.c: GET requests waiting on Redis */
};

/* --- workers ------------------------------------------------------------------ */

static void worker_tick(evutil_socket_t fd, short what, void *arg)
{
    struct srv_top_worker *t = arg;
    rl_topk_view_t *v;

    (void)fd;
    (void)what;
    rl_topk_view(t->rec, util_mono_ms(), t->build);
    pthread_mutex_lock(&t->mu);
    v = t->pub;
    t->pub = t->build;
    pthread_mutex_unlock(&t->mu);
    t->build = v;
}

int srv_top_worker_init(srv_worker_t *w)
{
    struct timeval tv = {TOP_TICK_MS / 1000, (TOP_TICK_MS % 1000) * 1000};
    struct srv_top_worker *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return -1;
    w->top = t;
    pthread_mutex_init(&t->mu, NULL);
    t->rec = rl_topk_new();
    t->build = calloc(1, sizeof(*t->build));
    t->pub = calloc(1, sizeof(*t->pub));
    t->ev = event_new(w->base, -1, EV_PERSIST, worker_tick, t);
    if (t->rec == NULL || t->build == NULL || t->pub == NULL || t->ev == NULL ||
        event_add(t->ev, &tv) != 0)
        return -1;
    rl_limiter_set_topk(w->limiter, t->rec);
    return 0;
}

void srv_top_worker_clear(srv_worker_t *w)
{
    struct srv_top_worker *t = w->top;

    if (t == NULL)
        return;
    if (w->limiter != NULL)
        rl_limiter_set_topk(w->limiter, NULL);
    if (t->ev != NULL)
        event_free(t->ev);
    rl_topk_free(t->rec);
    free(t->build);
    free(t->pub);
    pthread_mutex_destroy(&t->mu);
    free(t);
    w->top = NULL;
}

/* --- the replica ---------------------------------------------------------------- */

const rl_topk_view_t *srv_top_replica(srv_t *s)
{
    if (s->top == NULL)
        return NULL;
    rl_topk_view_reset(s->top->replica);
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct srv_top_worker *t = s->workers[i].top;

        if (t == NULL)
            continue;
        pthread_mutex_lock(&t->mu);
        rl_topk_view_merge(s->top->replica, t->pub);
        pthread_mutex_unlock(&t->mu);
    }
    return s->top->replica;
}

const char *srv_top_id(const srv_t *s)
{
    return s->fleet != NULL ? rl_fleet_id(s->fleet) : NULL;
}

void srv_top_keys(const srv_t *s, const char *limit, char *lists, char *until)
{
    snprintf(lists, SRV_TOP_KEY_LEN, "%s{top}:%s:lists", s->redis_prefix, limit);
    snprintf(until, SRV_TOP_KEY_LEN, "%s{top}:%s:until", s->redis_prefix, limit);
}

static bool configured(const cfg_t *c, const char *name)
{
    for (size_t i = 0; i < c->policy.nlimits; i++)
        if (strcmp(c->policy.limits[i].name, name) == 0)
            return true;
    return false;
}

static void on_published(rc_client_t *c, redisReply *rep, const char *errstr,
                         void *privdata)
{
    srv_t *s = privdata;
    bool ok = rep != NULL && rep->type == REDIS_REPLY_INTEGER;

    (void)c;
    if (s->top == NULL)
        return;
    s->top->inflight--;
    if (!ok && !s->top->failing)
        log_warn("top lists: publishing to redis failed (%s); GET .../top answers for "
                 "this replica alone until it works",
                 rep && rep->type == REDIS_REPLY_ERROR ? rep->str
                                                       : (errstr ? errstr : "no reply"));
    else if (ok && s->top->failing)
        log_info("top lists: publishing to redis works again");
    s->top->failing = !ok;
}

static bool empty(const rl_topk_lview_t *lv)
{
    return lv->w[RL_TOPK_NWIN - 1][RL_TOPK_REQUESTS].n == 0;
}

static void publish(srv_t *s, const cfg_t *c)
{
    const rl_topk_view_t *v = srv_top_replica(s);
    char ttl[24], lists[SRV_TOP_KEY_LEN], until[SRV_TOP_KEY_LEN];
    const char *keys[2] = {lists, until};

    if (v == NULL || !rc_client_up(s->admin.rc))
        return;
    snprintf(ttl, sizeof ttl, "%u", c->top_publish_interval * 1000u * SRV_TOP_TTL_FACTOR);
    for (size_t i = 0; i < v->n; i++) {
        const rl_topk_lview_t *lv = &v->lim[i];
        int len;

        if (empty(lv) || !configured(c, lv->name))
            continue;
        len = rl_topk_encode(lv, s->top->wire, RL_TOPK_WIRE_MAX + 1);
        if (len < 0)
            continue;
        srv_top_keys(s, lv->name, lists, until);
        const char *args[4] = {"pub", srv_top_id(s), ttl, s->top->wire};
        const size_t lens[4] = {3, strlen(args[1]), strlen(ttl), (size_t)len};

        if (rc_evalsha(s->admin.rc, srv_script_index("top"), 2, keys, NULL, 4, args, lens,
                       on_published, s) != NULL)
            s->top->inflight++;
    }
}

static void admin_tick(evutil_socket_t fd, short what, void *arg)
{
    srv_t *s = arg;
    const cfg_t *c = s->admin.cfg;
    uint64_t now = util_mono_ms();

    (void)fd;
    (void)what;
    if (s->top->inflight > 0 || now - s->top->last_pub_ms < c->top_publish_interval * 1000u)
        return;
    s->top->last_pub_ms = now;
    publish(s, c);
}

int srv_top_start(srv_t *s, char *err, size_t errlen)
{
    struct timeval tv = {TOP_TICK_MS / 1000, (TOP_TICK_MS % 1000) * 1000};

    s->top = calloc(1, sizeof(*s->top));
    if (s->top == NULL || (s->top->replica = calloc(1, sizeof(*s->top->replica))) == NULL)
        goto out_nomem;
    if (s->fleet == NULL || s->admin.rc == NULL)
        return 0; /* no Redis: this replica's lists alone */
    s->top->wire = malloc(RL_TOPK_WIRE_MAX + 1);
    s->top->ev = event_new(s->admin.base, -1, EV_PERSIST, admin_tick, s);
    if (s->top->wire == NULL || s->top->ev == NULL || event_add(s->top->ev, &tv) != 0)
        goto out_nomem;
    return 0;
out_nomem:
    snprintf(err, errlen, "out of memory setting up the top lists");
    return -1;
}

void **srv_top_pending(srv_t *s)
{
    return s->top != NULL ? &s->top->pending : NULL;
}

/* Before the admin listener and client go: GET requests waiting on Redis
 * are dropped (their callbacks will not run), publications in flight find
 * s->top NULL when the client answers them "client closed". */
void srv_top_stop(srv_t *s)
{
    if (s->top == NULL)
        return;
    srv_admin_top_cancel_all(s);
    if (s->top->ev != NULL)
        event_free(s->top->ev);
    free(s->top->wire);
    free(s->top->replica);
    free(s->top);
    s->top = NULL;
}

/* --- metrics -------------------------------------------------------------------- */

void srv_top_metrics(srv_t *s, const cfg_t *c, struct evbuffer *out)
{
    const rl_topk_view_t *v;
    const rl_topk_entry_t *top[RL_TOPK_CAP];
    int w5 = rl_topk_window_index(5);

    if (c->top_metric_clients == 0)
        return;
    evbuffer_add_printf(out, "# HELP tollgate_limit_top_denied requests denied by the "
                             "limit over the last 5 minutes, for its top clients on this "
                             "replica (at most top.metric_clients per limit)\n"
                             "# TYPE tollgate_limit_top_denied gauge\n");
    v = srv_top_replica(s);
    for (size_t i = 0; v != NULL && i < v->n; i++) {
        const rl_topk_lview_t *lv = &v->lim[i];
        size_t n;

        if (!configured(c, lv->name))
            continue;
        n = rl_topk_sum_sorted(&lv->w[w5][RL_TOPK_DENIED], top, c->top_metric_clients);
        for (size_t j = 0; j < n; j++)
            evbuffer_add_printf(
                out, "tollgate_limit_top_denied{limit=\"%s\",client=\"%s\"} %llu\n",
                lv->name, top[j]->id, (unsigned long long)top[j]->count);
    }
}
