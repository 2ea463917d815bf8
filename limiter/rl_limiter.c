/* rl_limiter.c — match, spell, group, ask the backend, aggregate; see
 * rl_limiter.h.
 *
 * One heap block per rl_check() holds everything of the request: the
 * pending state, an event for answers the limiter gives itself (no limit
 * matched, or the backend refused at once), the groups handed to the backend
 * and the results in both orders.  The block is freed exactly once: after
 * `done` returns, or by rl_cancel() (which, called from inside `done`, only
 * marks it — the block is freed when `done` returns).
 *
 * Choices where the header is silent:
 *  - cost 0 is taken as 1 (a zeroed request must not bypass limits);
 *  - a dry run (rl_request_t.dry_run) marks every group dry_run and follows
 *    the same path: the backends and the local fallback decide without
 *    writing, so the verdict, numbers and aggregation are the real ones;
 *  - an identity that does not fit RL_MAX_IDENTITY_LEN (only possible with an
 *    absurd `by` list) is spelled "%L": one shared, quickly exhausted bucket,
 *    never an unlimited request;
 *  - on backend failure a denial from a `local` limit wins over a `closed`
 *    limit's RL_ERR (429 with Retry-After says more than 503); `closed` on a
 *    shadow limit never yields RL_ERR (shadow never refuses);
 *  - `report` when nothing denies: fewest tokens left among enforced limits
 *    that have numbers (not `failed`), else among shadow ones; ties go to the
 *    first in config order; when every limit failed, 0 (its `failed` tells
 *    the caller there are no numbers to show).
 */
#include "tollgate/util_clock.h"
#include "tollgate/rl_limiter.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "tollgate/rl_fleet.h"
#include "tollgate/rl_memory.h"
#include "tollgate/rl_topk.h"

struct rl_limiter {
    struct event_base *base;
    const rl_backend_ops_t *ops;
    void *be;
    rl_memory_t *fallback;   /* NULL: `local` acts as `open` */
    unsigned divisor;        /* expected_replicas, >= 1 */
    const rl_fleet_t *fleet; /* the live count, when known, replaces divisor */
    rl_topk_t *topk;         /* who is limited; NULL: not recorded */
};

struct rl_pending {
    rl_limiter_t *l;
    rl_done_fn done;
    void *privdata;
    void *token;         /* the backend's while its answer is due, else NULL */
    struct event *ev;    /* own answer (no match / refused), inside this block */
    bool ev_armed;       /* ev is pending */
    bool refused;        /* ops->check returned NULL: answer as a failure */
    bool in_cb;          /* `done` is running: rl_cancel only marks */
    bool in_check;       /* inside ops->check */
    bool answered_early; /* the backend called back inside ops->check */
    bool any_failed;     /* some group was marked failed by the backend */
    size_t k, ng;        /* matching limits, groups */
    rl_group_t *groups;
    const rl_limit_t **glimits;   /* k, group order */
    rl_rate_t *grates;            /* k, group order */
    rl_limit_result_t *gres;      /* k, group order, filled by the backend */
    rl_limit_result_t *res;       /* k, config order, handed to `done` */
    size_t *pos;                  /* k: config index -> group-order index */
    const rl_limit_t **fb_limits; /* k, scratch for the local fallback */
    rl_rate_t *fb_rates;
    rl_limit_result_t *fb_res;
    size_t *fb_idx;
    char *ids; /* k * RL_MAX_IDENTITY_LEN */
};

rl_limiter_t *rl_limiter_new(struct event_base *base, const rl_backend_ops_t *ops, void *be)
{
    rl_limiter_t *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->base = base;
    l->ops = ops;
    l->be = be;
    l->divisor = 1;
    return l;
}

void rl_limiter_free(rl_limiter_t *l)
{
    free(l);
}

void rl_limiter_set_fallback(rl_limiter_t *l, struct rl_memory *m, unsigned divisor)
{
    l->fallback = m;
    l->divisor = divisor > 0 ? divisor : 1;
}

void rl_limiter_set_fleet(rl_limiter_t *l, const struct rl_fleet *f)
{
    l->fleet = f;
}

void rl_limiter_set_topk(rl_limiter_t *l, struct rl_topk *t)
{
    l->topk = t;
}

static size_t align_up(size_t n)
{
    return (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
}

/* --- building the block --------------------------------------------------- */

/* One block for a request with `k` matching limits; NULL when out of memory. */
static rl_pending_t *pending_alloc(size_t k)
{
    size_t off[12], total = 0, i = 0;
    const size_t sizes[12] = {
        sizeof(rl_pending_t),           event_get_struct_event_size(),
        k * sizeof(rl_group_t),         k * sizeof(const rl_limit_t *),
        k * sizeof(rl_rate_t),          k * sizeof(rl_limit_result_t),
        k * sizeof(rl_limit_result_t),  k * sizeof(size_t),
        k * sizeof(const rl_limit_t *), k * sizeof(rl_rate_t),
        k * sizeof(rl_limit_result_t),  k * sizeof(size_t),
    };
    rl_pending_t *p;
    char *base;

    for (i = 0; i < 12; i++) {
        off[i] = total;
        total += align_up(sizes[i]);
    }
    base = calloc(1, total + k * RL_MAX_IDENTITY_LEN);
    if (base == NULL)
        return NULL;
    p = (rl_pending_t *)base;
    p->ev = (struct event *)(base + off[1]);
    p->groups = (rl_group_t *)(base + off[2]);
    p->glimits = (const rl_limit_t **)(base + off[3]);
    p->grates = (rl_rate_t *)(base + off[4]);
    p->gres = (rl_limit_result_t *)(base + off[5]);
    p->res = (rl_limit_result_t *)(base + off[6]);
    p->pos = (size_t *)(base + off[7]);
    p->fb_limits = (const rl_limit_t **)(base + off[8]);
    p->fb_rates = (rl_rate_t *)(base + off[9]);
    p->fb_res = (rl_limit_result_t *)(base + off[10]);
    p->fb_idx = (size_t *)(base + off[11]);
    p->ids = base + total;
    p->k = k;
    return p;
}

static size_t count_matches(const rl_policy_set_t *ps, const rl_request_t *req)
{
    size_t i, k = 0;

    for (i = 0; i < ps->nlimits; i++)
        if (rl_match_request(&ps->limits[i].match, req->method, req->path, req->host))
            k++;
    return k;
}

/* Matching limits in config order into lims[j], their identity into ids[j]
 * and into gid[j] the group each belongs to (numbered by first appearance). */
static void spell_and_group(rl_pending_t *p, const rl_policy_set_t *ps,
                            const rl_request_t *req, const rl_limit_t **lims, size_t *gid)
{
    size_t i, j = 0, g;

    for (i = 0; i < ps->nlimits && j < p->k; i++) {
        const rl_limit_t *lim = &ps->limits[i];
        char *id = p->ids + j * RL_MAX_IDENTITY_LEN;

        if (!rl_match_request(&lim->match, req->method, req->path, req->host))
            continue;
        if (rl_policy_identity(lim, req, id, RL_MAX_IDENTITY_LEN) < 0)
            memcpy(id, "%L", 3);
        for (g = 0; g < p->ng; g++)
            if (strcmp(p->groups[g].identity, id) == 0)
                break;
        if (g == p->ng)
            p->groups[p->ng++].identity = id;
        lims[j] = lim;
        gid[j++] = g;
    }
}

/* Lay the limits out group by group (config order inside a group) and point
 * each rl_group_t at its slice; pos[] becomes config -> group-order index. */
static void layout_groups(rl_pending_t *p, const rl_policy_set_t *ps,
                          const rl_request_t *req, const rl_limit_t **lims,
                          const size_t *gid)
{
    uint32_t cost = req->cost > 0 ? req->cost : 1;
    size_t g, j, at = 0;

    for (g = 0; g < p->ng; g++) {
        rl_group_t *grp = &p->groups[g];

        grp->limits = &p->glimits[at];
        grp->rates = &p->grates[at];
        grp->results = &p->gres[at];
        grp->cost = cost;
        grp->dry_run = req->dry_run;
        for (j = 0; j < p->k; j++) {
            if (gid[j] != g)
                continue;
            p->glimits[at] = lims[j];
            p->grates[at] = *rl_policy_rate(ps, lims[j], req->tier);
            p->gres[at].limit = lims[j];
            p->gres[at].rate = p->grates[at];
            p->pos[j] = at++;
            grp->n++;
        }
    }
}

/* --- answering ------------------------------------------------------------ */

static bool is_enforced(const rl_limit_result_t *r)
{
    return r->limit->mode == RL_MODE_ENFORCE;
}

/* Index of the limit to report when nothing denies. */
static int pick_fewest(const rl_limit_result_t *res, size_t k)
{
    int best = -1, pass;
    size_t j;

    for (pass = 0; pass < 2 && best < 0; pass++)
        for (j = 0; j < k; j++) {
            if (res[j].failed || is_enforced(&res[j]) != (pass == 0))
                continue;
            if (best < 0 || res[j].v.remaining < res[best].v.remaining)
                best = (int)j;
        }
    return best < 0 && k > 0 ? 0 : best;
}

static void aggregate(const rl_limit_result_t *res, size_t k, rl_result_t *out)
{
    int deny = -1, closed = -1;
    size_t j;

    for (j = 0; j < k; j++) {
        if (!is_enforced(&res[j]) || res[j].v.allowed)
            continue;
        if (res[j].failed) {
            if (closed < 0)
                closed = (int)j;
        } else if (deny < 0 || res[j].v.retry_after_ms > res[deny].v.retry_after_ms) {
            deny = (int)j;
        }
    }
    if (deny >= 0) {
        out->status = RL_DENIED;
        out->report = deny;
    } else if (closed >= 0) {
        out->status = RL_ERR;
        out->report = closed;
    } else {
        out->status = RL_OK;
        out->report = pick_fewest(res, k);
    }
}

/* Every limit's verdict into the top lists (not for a dry run). */
static void record_top(const rl_pending_t *p)
{
    rl_topk_t *t = p->l->topk;
    int64_t now;

    if (t == NULL || p->ng == 0 || p->groups[0].dry_run)
        return;
    now = util_mono_ms();
    for (size_t g = 0; g < p->ng; g++) {
        const rl_group_t *grp = &p->groups[g];

        for (size_t i = 0; i < grp->n; i++)
            rl_topk_record(t, now, grp->limits[i], grp->identity,
                           !grp->results[i].v.allowed && !grp->results[i].failed);
    }
}

/* Hand the result to `done`, then free the block. */
static void finish(rl_pending_t *p, const char *errstr)
{
    rl_result_t r;
    size_t j;

    for (j = 0; j < p->k; j++)
        p->res[j] = p->gres[p->pos[j]];
    memset(&r, 0, sizeof(r));
    r.limits = p->res;
    r.n = p->k;
    r.errstr = errstr;
    aggregate(p->res, p->k, &r);
    record_top(p);
    p->in_cb = true;
    p->done(&r, p->privdata);
    free(p);
}

static uint32_t divide(uint32_t v, unsigned d)
{
    return v / d > 0 ? v / d : 1;
}

/* The backend failed: decide group `g` per each limit's on_redis_error. */
static void fail_group(rl_pending_t *p, rl_group_t *g, int64_t now)
{
    rl_limiter_t *l = p->l;
    rl_group_t fb = {g->identity, p->fb_limits, p->fb_rates, p->fb_res,
                     0,           g->cost,      false,       g->dry_run};
    unsigned divisor = rl_fleet_divisor(l->fleet, l->divisor);
    size_t i;

    for (i = 0; i < g->n; i++) {
        rl_limit_result_t *r = &g->results[i];

        memset(&r->v, 0, sizeof(r->v));
        r->fallback = false;
        r->failed = true;
        r->v.allowed = g->limits[i]->on_redis_error != RL_ONERR_CLOSED;
        if (g->limits[i]->on_redis_error != RL_ONERR_LOCAL || l->fallback == NULL)
            continue;
        p->fb_limits[fb.n] = g->limits[i];
        p->fb_rates[fb.n] = g->rates[i];
        p->fb_rates[fb.n].n = divide(g->rates[i].n, divisor);
        p->fb_rates[fb.n].burst = divide(g->rates[i].burst, divisor);
        p->fb_res[fb.n].limit = g->limits[i];
        p->fb_res[fb.n].rate = p->fb_rates[fb.n];
        p->fb_idx[fb.n++] = i;
    }
    if (fb.n == 0)
        return;
    rl_memory_decide(l->fallback, &fb, now);
    for (i = 0; i < fb.n; i++) {
        rl_limit_result_t *r = &g->results[p->fb_idx[i]];

        r->v = p->fb_res[i].v;
        r->rate = p->fb_rates[i];
        r->failed = false;
        r->fallback = true;
    }
}

static void fail_all(rl_pending_t *p)
{
    int64_t now = util_mono_ms();
    size_t g;

    for (g = 0; g < p->ng; g++)
        fail_group(p, &p->groups[g], now);
}

/* Groups the backend marked `failed` (one slot of a cluster, say). */
static void fail_marked(rl_pending_t *p)
{
    int64_t now = 0;
    size_t g;

    for (g = 0; g < p->ng; g++) {
        if (!p->groups[g].failed)
            continue;
        if (now == 0)
            now = util_mono_ms();
        p->any_failed = true;
        fail_group(p, &p->groups[g], now);
    }
}

static void backend_done(int status, const char *errstr, void *privdata)
{
    rl_pending_t *p = privdata;

    p->token = NULL;
    if (p->in_check) {
        p->answered_early = true;
        p->refused = status != 0;
        return;
    }
    if (status != 0) {
        fail_all(p);
        finish(p, errstr != NULL ? errstr : "backend failed");
    } else {
        fail_marked(p);
        finish(p, p->any_failed ? (errstr != NULL ? errstr : "backend failed") : NULL);
    }
}

static void own_fire(evutil_socket_t fd, short what, void *arg)
{
    rl_pending_t *p = arg;

    (void)fd;
    (void)what;
    p->ev_armed = false; /* fired: no longer pending, freed with p */
    if (p->refused) {
        fail_all(p);
        finish(p, "backend refused the request");
    } else {
        fail_marked(p);
        finish(p, p->any_failed ? "backend failed" : NULL);
    }
}

/* Answer later from our own event, made active now: it runs later in this
 * same pass of the loop, never inside rl_check.  -1 when it cannot be set. */
static int arm_own(rl_pending_t *p)
{
    if (event_assign(p->ev, p->l->base, -1, 0, own_fire, p) != 0)
        return -1;
    event_active(p->ev, EV_TIMEOUT, 1);
    p->ev_armed = true;
    return 0;
}

rl_pending_t *rl_check(rl_limiter_t *l, const rl_policy_set_t *policy,
                       const rl_request_t *req, rl_done_fn done, void *privdata)
{
    size_t k = policy != NULL ? count_matches(policy, req) : 0;
    rl_pending_t *p = pending_alloc(k);

    if (p == NULL)
        return NULL;
    p->l = l;
    p->done = done;
    p->privdata = privdata;
    if (k > 0) {
        /* the fallback scratch arrays are free until the answer comes */
        spell_and_group(p, policy, req, p->fb_limits, p->fb_idx);
        layout_groups(p, policy, req, p->fb_limits, p->fb_idx);
        p->in_check = true;
        p->token = l->ops->check(l->be, l->base, p->groups, p->ng, backend_done, p);
        p->in_check = false;
        if (p->answered_early) /* a backend broke "later": answer later ourselves */
            p->token = NULL;
        else if (p->token != NULL)
            return p;
        else
            p->refused = true;
    }
    if (arm_own(p) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

void rl_cancel(rl_pending_t *p)
{
    if (p == NULL || p->in_cb)
        return; /* inside `done`: finish() frees the block when it returns */
    if (p->token != NULL)
        p->l->ops->cancel(p->l->be, p->token);
    if (p->ev_armed)
        event_del(p->ev);
    free(p);
}
