/* test_rl_limiter.c — rl_check end to end on an event_base: memory backend,
 * grouping, shadow, report index, tiers, cancel, backend failures, the
 * local fallback following the fleet's live count. */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "tollgate/rl_fleet.h"
#include "tollgate/util_clock.h"
#include "tollgate/rl_limiter.h"
#include "tollgate/rl_memory.h"
#include "tollgate/rl_topk.h"
#include "unit.h"

/* --- fixtures ------------------------------------------------------------- */

#define MAXL 4

typedef struct fix {
    rl_limit_t lims[MAXL];
    rl_by_t by[MAXL];
    rl_policy_set_t ps;
    struct event_base *base;
    rl_memory_t *mem;
    rl_limiter_t *l;
} fix_t;

/* Add a limit `name` keyed by `kind`, rate n per minute, burst b. */
static void add_limit(fix_t *f, const char *name, rl_by_kind_t kind, uint32_t n, uint32_t b,
                      rl_mode_t mode, rl_onerr_t onerr)
{
    rl_limit_t *lim = &f->lims[f->ps.nlimits];

    memset(lim, 0, sizeof(*lim));
    f->by[f->ps.nlimits].kind = kind;
    lim->name = (char *)name;
    lim->by = &f->by[f->ps.nlimits];
    lim->nby = 1;
    lim->rate = (rl_rate_t){n, 60000, b};
    lim->mode = mode;
    lim->on_redis_error = onerr;
    f->ps.nlimits++;
}

static void fix_init(fix_t *f, const rl_backend_ops_t *ops, void *be)
{
    memset(f, 0, sizeof(*f));
    f->ps.limits = f->lims;
    f->base = event_base_new();
    f->mem = rl_memory_new(1000);
    f->l = rl_limiter_new(f->base, ops != NULL ? ops : &rl_memory_ops,
                          be != NULL ? be : f->mem);
}

static void fix_done(fix_t *f)
{
    rl_limiter_free(f->l);
    rl_memory_free(f->mem);
    event_base_free(f->base);
}

static rl_request_t mk_req(const char *client, const char *ip)
{
    rl_request_t r;

    memset(&r, 0, sizeof(r));
    r.method = RL_METHOD_GET;
    r.path = "/api/x";
    r.host = "api.example.com";
    r.client_id = client;
    r.ip = ip;
    r.cost = 1;
    return r;
}

/* What `done` saw, copied out (the result is valid only during the call). */
typedef struct answer {
    int calls;
    rl_status_t status;
    size_t n;
    int report;
    rl_limit_result_t res[MAXL];
    char errstr[64];
    rl_pending_t **cancel_self; /* when set, done cancels its own handle */
} answer_t;

static void on_done(const rl_result_t *res, void *privdata)
{
    answer_t *a = privdata;
    size_t i;

    a->calls++;
    a->status = res->status;
    a->n = res->n;
    a->report = res->report;
    for (i = 0; i < res->n && i < MAXL; i++)
        a->res[i] = res->limits[i];
    a->errstr[0] = '\0';
    if (res->errstr != NULL)
        snprintf(a->errstr, sizeof(a->errstr), "%s", res->errstr);
    if (a->cancel_self != NULL)
        rl_cancel(*a->cancel_self);
}

/* One full check: rl_check, nothing before the loop runs, then the loop. */
static answer_t run(fix_t *f, const rl_request_t *req)
{
    answer_t a;
    rl_pending_t *p;

    memset(&a, 0, sizeof(a));
    p = rl_check(f->l, &f->ps, req, on_done, &a);
    CU_ASSERT_PTR_NOT_NULL(p);
    CU_ASSERT_EQUAL(a.calls, 0);
    event_base_dispatch(f->base);
    CU_ASSERT_EQUAL(a.calls, 1);
    return a;
}

/* --- tests ---------------------------------------------------------------- */

static void test_allow_then_deny(void)
{
    fix_t f;
    rl_request_t req = mk_req("orders", "10.0.0.1");
    answer_t a;
    int i;

    fix_init(&f, NULL, NULL);
    add_limit(&f, "default", RL_BY_CLIENT, 3, 3, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    for (i = 0; i < 3; i++) {
        a = run(&f, &req);
        CU_ASSERT_EQUAL(a.status, RL_OK);
        CU_ASSERT_EQUAL(a.n, 1);
        CU_ASSERT_EQUAL(a.report, 0);
        CU_ASSERT_EQUAL(a.res[0].v.remaining, (uint64_t)(2 - i));
        CU_ASSERT_PTR_EQUAL(a.res[0].limit, &f.lims[0]);
        CU_ASSERT_EQUAL(a.res[0].rate.n, 3);
    }
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.status, RL_DENIED);
    CU_ASSERT_EQUAL(a.report, 0);
    CU_ASSERT_FALSE(a.res[0].v.allowed);
    CU_ASSERT(a.res[0].v.retry_after_ms > 19000 && a.res[0].v.retry_after_ms <= 20000);
    CU_ASSERT_PTR_NULL(a.errstr[0] ? a.errstr : NULL);
    /* another client has its own bucket; cost 0 counts as 1 */
    req = mk_req("billing", "10.0.0.1");
    req.cost = 0;
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.status, RL_OK);
    CU_ASSERT_EQUAL(a.res[0].v.remaining, 2);
    fix_done(&f);
}

static void test_no_match(void)
{
    fix_t f;
    rl_request_t req = mk_req("orders", "10.0.0.1");
    answer_t a;

    fix_init(&f, NULL, NULL);
    add_limit(&f, "batch", RL_BY_CLIENT, 3, 3, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    f.lims[0].match.path = (char *)"/advanced/batch-orders";
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.status, RL_OK);
    CU_ASSERT_EQUAL(a.n, 0);
    CU_ASSERT_EQUAL(a.report, -1);
    req.path = "/advanced/batch-orders";
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.n, 1);
    fix_done(&f);
}

/* Limits of one identity: when one denies, the other is not charged. */
static void test_all_or_nothing(void)
{
    fix_t f;
    rl_request_t req = mk_req("orders", "10.0.0.1");
    answer_t a;

    fix_init(&f, NULL, NULL);
    add_limit(&f, "wide", RL_BY_CLIENT, 10, 10, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    add_limit(&f, "narrow", RL_BY_CLIENT, 1, 1, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.status, RL_OK);
    CU_ASSERT_EQUAL(a.report, 1); /* fewest left */
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.status, RL_DENIED);
    CU_ASSERT_EQUAL(a.report, 1);
    CU_ASSERT_TRUE(a.res[0].v.allowed);
    CU_ASSERT_EQUAL(a.res[0].v.remaining, 9); /* not charged */
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.res[0].v.remaining, 9);
    fix_done(&f);
}

static void test_shadow(void)
{
    fix_t f;
    rl_request_t req = mk_req("orders", "10.0.0.1");
    answer_t a;
    int i;

    fix_init(&f, NULL, NULL);
    add_limit(&f, "trial", RL_BY_IP, 1, 1, RL_MODE_SHADOW, RL_ONERR_LOCAL);
    for (i = 0; i < 3; i++) {
        a = run(&f, &req);
        CU_ASSERT_EQUAL(a.status, RL_OK);
        CU_ASSERT_EQUAL(a.report, 0); /* only a shadow limit: it is reported */
        CU_ASSERT_EQUAL(a.res[0].v.allowed, i == 0);
    }
    /* with an enforced limit, the enforced one is reported */
    add_limit(&f, "real", RL_BY_CLIENT, 100, 100, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.status, RL_OK);
    CU_ASSERT_FALSE(a.res[0].v.allowed);
    CU_ASSERT_EQUAL(a.report, 1);
    fix_done(&f);
}

/* Deny: the enforced limit with the largest retry-after; else fewest left.
 * A denial in one group charges nothing in another (memory backend). */
static void test_report(void)
{
    fix_t f;
    rl_request_t req = mk_req("orders", "10.0.0.1");
    answer_t a;

    fix_init(&f, NULL, NULL);
    add_limit(&f, "per-client", RL_BY_CLIENT, 60, 3, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    add_limit(&f, "per-ip", RL_BY_IP, 2, 1, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.status, RL_OK);
    CU_ASSERT_EQUAL(a.report, 1); /* 0 left vs 2 left */
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.status, RL_DENIED);
    CU_ASSERT_EQUAL(a.report, 1);
    CU_ASSERT_TRUE(a.res[0].v.allowed);
    CU_ASSERT_EQUAL(a.res[0].v.remaining, 2); /* other group: not charged */
    req.ip = "10.0.0.2";
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.status, RL_OK);
    CU_ASSERT_EQUAL(a.res[0].v.remaining, 1);
    req.ip = "10.0.0.3";
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.status, RL_OK);
    CU_ASSERT_EQUAL(a.res[0].v.remaining, 0);
    CU_ASSERT_EQUAL(a.report, 0); /* tie: first in config order */
    /* both deny: per-client needs ~1 s, per-ip ~30 s */
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.status, RL_DENIED);
    CU_ASSERT_FALSE(a.res[0].v.allowed);
    CU_ASSERT_FALSE(a.res[1].v.allowed);
    CU_ASSERT(a.res[1].v.retry_after_ms > a.res[0].v.retry_after_ms);
    CU_ASSERT_EQUAL(a.report, 1);
    fix_done(&f);
}

static void test_tiers(void)
{
    fix_t f;
    rl_tier_override_t ov[] = {{(char *)"default", {6000, 60000, 6000}}};
    rl_tier_t tiers[] = {{(char *)"gold", ov, 1}};
    rl_request_t req = mk_req("orders", "10.0.0.1");
    answer_t a;

    fix_init(&f, NULL, NULL);
    add_limit(&f, "default", RL_BY_CLIENT, 60, 60, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    f.ps.tiers = tiers;
    f.ps.ntiers = 1;
    req.tier = "gold";
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.res[0].rate.n, 6000);
    CU_ASSERT_EQUAL(a.res[0].v.remaining, 5999);
    req = mk_req("other", "10.0.0.1");
    req.tier = "silver";
    a = run(&f, &req);
    CU_ASSERT_EQUAL(a.res[0].rate.n, 60);
    CU_ASSERT_EQUAL(a.res[0].v.remaining, 59);
    fix_done(&f);
}

/* A backend that records the groups it was given, then answers via memory. */
typedef struct capture {
    rl_memory_t *mem;
    size_t ng, sizes[MAXL];
    char ids[MAXL][64];
    const rl_limit_t *first[MAXL];
} capture_t;

static void *cap_check(void *be, struct event_base *base, rl_group_t *groups, size_t n,
                       rl_backend_done_fn done, void *privdata)
{
    capture_t *c = be;
    size_t i;

    c->ng = n;
    for (i = 0; i < n && i < MAXL; i++) {
        c->sizes[i] = groups[i].n;
        snprintf(c->ids[i], sizeof(c->ids[i]), "%s", groups[i].identity);
        c->first[i] = groups[i].limits[0];
    }
    return rl_memory_ops.check(c->mem, base, groups, n, done, privdata);
}

static void cap_cancel(void *be, void *token)
{
    rl_memory_ops.cancel(((capture_t *)be)->mem, token);
}

static const rl_backend_ops_t cap_ops = {"capture", cap_check, cap_cancel};

static void test_grouping(void)
{
    capture_t c;
    fix_t f;
    rl_request_t req = mk_req("orders", "10.0.0.1");
    answer_t a;

    memset(&c, 0, sizeof(c));
    fix_init(&f, &cap_ops, &c);
    c.mem = f.mem;
    add_limit(&f, "a", RL_BY_CLIENT, 5, 5, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    add_limit(&f, "b", RL_BY_IP, 4, 4, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    add_limit(&f, "c", RL_BY_CLIENT, 3, 3, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    a = run(&f, &req);
    CU_ASSERT_EQUAL(c.ng, 2);
    CU_ASSERT_STRING_EQUAL(c.ids[0], "c=orders");
    CU_ASSERT_STRING_EQUAL(c.ids[1], "ip=10.0.0.1");
    CU_ASSERT_EQUAL(c.sizes[0], 2);
    CU_ASSERT_EQUAL(c.sizes[1], 1);
    CU_ASSERT_PTR_EQUAL(c.first[0], &f.lims[0]);
    CU_ASSERT_PTR_EQUAL(c.first[1], &f.lims[1]);
    /* results come back in config order */
    CU_ASSERT_EQUAL(a.n, 3);
    CU_ASSERT_PTR_EQUAL(a.res[0].limit, &f.lims[0]);
    CU_ASSERT_PTR_EQUAL(a.res[1].limit, &f.lims[1]);
    CU_ASSERT_PTR_EQUAL(a.res[2].limit, &f.lims[2]);
    CU_ASSERT_EQUAL(a.res[0].v.remaining, 4);
    CU_ASSERT_EQUAL(a.res[1].v.remaining, 3);
    CU_ASSERT_EQUAL(a.res[2].v.remaining, 2);
    CU_ASSERT_EQUAL(a.report, 2);
    fix_done(&f);
}

/* Cancel before the answer: done never runs; nothing leaks (ASan). */
static void test_cancel(void)
{
    fix_t f;
    rl_request_t req = mk_req("orders", "10.0.0.1");
    answer_t a;
    rl_pending_t *p;

    fix_init(&f, NULL, NULL);
    add_limit(&f, "default", RL_BY_CLIENT, 3, 3, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    memset(&a, 0, sizeof(a));
    p = rl_check(f.l, &f.ps, &req, on_done, &a);
    rl_cancel(p);
    event_base_dispatch(f.base);
    CU_ASSERT_EQUAL(a.calls, 0);
    /* in flight with a delay */
    rl_memory_set_delay_ms(f.mem, 30);
    p = rl_check(f.l, &f.ps, &req, on_done, &a);
    event_base_loop(f.base, EVLOOP_NONBLOCK);
    rl_cancel(p);
    event_base_dispatch(f.base);
    CU_ASSERT_EQUAL(a.calls, 0);
    /* nothing matches: the limiter's own event is cancelled too */
    req.method = RL_METHOD_POST;
    f.lims[0].match.methods = RL_METHOD_GET;
    p = rl_check(f.l, &f.ps, &req, on_done, &a);
    rl_cancel(p);
    event_base_dispatch(f.base);
    CU_ASSERT_EQUAL(a.calls, 0);
    rl_cancel(NULL);
    /* cancelling from inside done is harmless */
    f.lims[0].match.methods = 0;
    rl_memory_set_delay_ms(f.mem, 0);
    a.cancel_self = &p;
    p = rl_check(f.l, &f.ps, &req, on_done, &a);
    event_base_dispatch(f.base);
    CU_ASSERT_EQUAL(a.calls, 1);
    fix_done(&f);
}

/* Backends that fail: later (-1), or at once (NULL), or answer too early. */
typedef struct failing {
    struct event_base *base;
    int mode; /* 0 fail later, 1 refuse, 2 call done inside check */
} failing_t;

typedef struct fail_tok {
    struct event *ev;
    rl_backend_done_fn done;
    void *pd;
} fail_tok_t;

static void fail_fire(evutil_socket_t fd, short what, void *arg)
{
    fail_tok_t *t = arg;
    rl_backend_done_fn done = t->done;
    void *pd = t->pd;

    (void)fd;
    (void)what;
    event_free(t->ev);
    free(t);
    done(-1, "connection refused", pd);
}

static void *fail_check(void *be, struct event_base *base, rl_group_t *groups, size_t n,
                        rl_backend_done_fn done, void *privdata)
{
    failing_t *fb = be;
    fail_tok_t *t;
    struct timeval tv = {0, 0};

    (void)groups;
    (void)n;
    if (fb->mode == 1)
        return NULL;
    if (fb->mode == 2) {
        done(-1, "too early", privdata);
        return NULL;
    }
    t = malloc(sizeof(*t));
    t->done = done;
    t->pd = privdata;
    t->ev = event_new(base, -1, 0, fail_fire, t);
    event_add(t->ev, &tv);
    return t;
}

static void fail_cancel(void *be, void *token)
{
    fail_tok_t *t = token;

    (void)be;
    event_free(t->ev);
    free(t);
}

static const rl_backend_ops_t fail_ops = {"failing", fail_check, fail_cancel};

static void test_backend_failure(void)
{
    failing_t fb = {NULL, 0};
    fix_t f;
    rl_request_t req = mk_req("orders", "10.0.0.1");
    answer_t a;
    rl_pending_t *p;
    int mode, i;

    for (mode = 0; mode < 3; mode++) {
        fb.mode = mode;
        fix_init(&f, &fail_ops, &fb);
        add_limit(&f, "open", RL_BY_CLIENT, 5, 5, RL_MODE_ENFORCE, RL_ONERR_OPEN);
        add_limit(&f, "local", RL_BY_IP, 6, 6, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
        /* local without a fallback store acts as open */
        a = run(&f, &req);
        CU_ASSERT_EQUAL(a.status, RL_OK);
        CU_ASSERT_TRUE(a.res[0].failed && a.res[0].v.allowed);
        CU_ASSERT_TRUE(a.res[1].failed && a.res[1].v.allowed);
        CU_ASSERT_FALSE(a.res[1].fallback);
        CU_ASSERT_NOT_EQUAL(a.errstr[0], '\0');
        CU_ASSERT_EQUAL(a.report, 0);
        /* local with the fallback: rate 6 / 3 replicas = 2 */
        rl_limiter_set_fallback(f.l, f.mem, 3);
        for (i = 0; i < 3; i++) {
            a = run(&f, &req);
            CU_ASSERT_TRUE(a.res[1].fallback);
            CU_ASSERT_FALSE(a.res[1].failed);
            CU_ASSERT_EQUAL(a.res[1].rate.n, 2);
            CU_ASSERT_EQUAL(a.res[1].rate.burst, 2);
            CU_ASSERT_EQUAL(a.status, i < 2 ? RL_OK : RL_DENIED);
            CU_ASSERT_EQUAL(a.report, 1);
        }
        /* closed: 503; a local denial still wins */
        add_limit(&f, "closed", RL_BY_CLIENT, 5, 5, RL_MODE_ENFORCE, RL_ONERR_CLOSED);
        a = run(&f, &req);
        CU_ASSERT_EQUAL(a.status, RL_DENIED);
        rl_limiter_set_fallback(f.l, NULL, 0);
        a = run(&f, &req);
        CU_ASSERT_EQUAL(a.status, RL_ERR);
        CU_ASSERT_EQUAL(a.report, 2);
        CU_ASSERT_TRUE(a.res[2].failed);
        CU_ASSERT_FALSE(a.res[2].v.allowed);
        /* shadow + closed never refuses */
        f.lims[2].mode = RL_MODE_SHADOW;
        a = run(&f, &req);
        CU_ASSERT_EQUAL(a.status, RL_OK);
        /* cancel while failing is pending */
        memset(&a, 0, sizeof(a));
        p = rl_check(f.l, &f.ps, &req, on_done, &a);
        rl_cancel(p);
        event_base_dispatch(f.base);
        CU_ASSERT_EQUAL(a.calls, 0);
        fix_done(&f);
    }
}

/* --- the local fallback divides by the fleet's live count ---------------- */

static rc_reply_fn fleet_fn;
static void *fleet_priv;

static rc_pending_t *fleet_evalsha(void *cl, size_t script, int nkeys, const char **keys,
                                   const size_t *keylens, int nargs, const char **args,
                                   const size_t *arglens, rc_reply_fn fn, void *privdata)
{
    (void)cl, (void)script, (void)nkeys, (void)keys, (void)keylens;
    (void)nargs, (void)args, (void)arglens;
    fleet_fn = fn;
    fleet_priv = privdata;
    return (rc_pending_t *)&fleet_fn;
}

static void fleet_cancel(void *cl, rc_pending_t *p)
{
    (void)cl;
    (void)p;
}

static const rc_ops_t fleet_ops = {.evalsha = fleet_evalsha, .cancel = fleet_cancel};

/* The roster answers a heartbeat with `n` live replicas. */
static void fleet_says(rl_fleet_t *fl, uint64_t now, long long n)
{
    redisReply r = {.type = REDIS_REPLY_INTEGER, .integer = n};

    CU_ASSERT_TRUE_FATAL(rl_fleet_tick(fl, now));
    fleet_fn(NULL, &r, NULL, fleet_priv);
}

/* Requests allowed out of `tries`, each checking rate.n == n. */
static int allowed_of(fix_t *f, const rl_request_t *req, int tries, uint32_t n)
{
    int ok = 0;

    for (int i = 0; i < tries; i++) {
        answer_t a = run(f, req);

        CU_ASSERT_TRUE(a.res[0].fallback);
        CU_ASSERT_EQUAL(a.res[0].rate.n, n);
        CU_ASSERT_EQUAL(a.res[0].rate.burst, n);
        ok += a.status == RL_OK;
    }
    return ok;
}

static void test_fallback_follows_fleet(void)
{
    failing_t fb = {NULL, 0};
    rl_fleet_t *fl = rl_fleet_new(&fleet_ops, NULL, "tg:", 0);
    rl_request_t req = mk_req("orders", "10.0.0.1");
    fix_t f;

    CU_ASSERT_PTR_NOT_NULL_FATAL(fl);
    fix_init(&f, &fail_ops, &fb);
    add_limit(&f, "local", RL_BY_CLIENT, 60, 60, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    rl_limiter_set_fallback(f.l, f.mem, 1); /* expected_replicas: 1 */
    rl_limiter_set_fleet(f.l, fl);
    /* no count yet: expected_replicas divides */
    CU_ASSERT_EQUAL(allowed_of(&f, &req, 1, 60), 1);
    /* 3 live: 60 / 3; the 59 tokens left are capped at the new burst */
    fleet_says(fl, 1, 3);
    CU_ASSERT_EQUAL(allowed_of(&f, &req, 25, 20), 20);
    /* the fleet grows while degraded: a smaller share, no refill */
    fleet_says(fl, 1 + RL_FLEET_BEAT_MS, 6);
    CU_ASSERT_EQUAL(allowed_of(&f, &req, 3, 10), 0);
    /* it shrinks (taken after a TTL of lower counts, rl_fleet.c): a larger
     * share, but the level is kept (no free burst) */
    fleet_says(fl, 1 + 2 * RL_FLEET_BEAT_MS, 2);
    CU_ASSERT_EQUAL(allowed_of(&f, &req, 1, 10), 0);
    fleet_says(fl, 1 + 2 * RL_FLEET_BEAT_MS + RL_FLEET_TTL_MS, 2);
    CU_ASSERT_EQUAL(allowed_of(&f, &req, 3, 30), 0);
    /* a reload with another expected_replicas does not override the count */
    rl_limiter_set_fallback(f.l, f.mem, 12);
    CU_ASSERT_EQUAL(allowed_of(&f, &req, 1, 30), 0);
    /* unwired: expected_replicas again */
    rl_limiter_set_fleet(f.l, NULL);
    CU_ASSERT_EQUAL(allowed_of(&f, &req, 1, 5), 0);
    fix_done(&f);
    rl_fleet_free(fl);
}

/* --- dry run -------------------------------------------------------------- */

/* The buckets of `id` under the first `n` limits, untouched (now 0 refills
 * nothing); missing ones read as level -1. */
static void snapshot(fix_t *f, const char *const *ids, size_t n, rl_bucket_t *out)
{
    for (size_t i = 0; i < n; i++)
        if (rl_memory_peek(f->mem, f->lims[i].name, ids[i], &f->lims[i].rate, 0, &out[i]) != 0)
            out[i] = (rl_bucket_t){-1, -1};
}

static void assert_snapshot(fix_t *f, const char *const *ids, size_t n,
                            const rl_bucket_t *want)
{
    rl_bucket_t now[MAXL];

    snapshot(f, ids, n, now);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(now[i].level, want[i].level);
        CU_ASSERT_EQUAL(now[i].ts_ms, want[i].ts_ms);
    }
}

/* dry and real answers of the same request agree; reset and retry may have
 * counted down by the few ms between the two checks. */
static void assert_same_answer(const answer_t *dry, const answer_t *real)
{
    CU_ASSERT_EQUAL(dry->status, real->status);
    CU_ASSERT_EQUAL(dry->n, real->n);
    CU_ASSERT_EQUAL(dry->report, real->report);
    for (size_t i = 0; i < dry->n && i < MAXL; i++) {
        const rl_verdict_t *d = &dry->res[i].v, *r = &real->res[i].v;

        CU_ASSERT_EQUAL(d->allowed, r->allowed);
        CU_ASSERT_EQUAL(d->remaining, r->remaining);
        CU_ASSERT_TRUE(r->reset_ms <= d->reset_ms && d->reset_ms - r->reset_ms < 1000);
        CU_ASSERT_TRUE(r->retry_after_ms <= d->retry_after_ms &&
                       d->retry_after_ms - r->retry_after_ms < 1000);
        CU_ASSERT_EQUAL(dry->res[i].fallback, real->res[i].fallback);
        CU_ASSERT_EQUAL(dry->res[i].failed, real->res[i].failed);
    }
}

/* Through rl_check on the memory backend, two groups (client and ip): a dry
 * run reports what the next real request gets and leaves every bucket as it
 * was, allowed and denied, and the real requests count as if it never ran. */
static void test_dry_run(void)
{
    static const char *const ids[2] = {"c=orders", "ip=10.0.0.1"};
    fix_t f;
    rl_request_t req = mk_req("orders", "10.0.0.1"), dry = req;
    rl_bucket_t before[2];
    answer_t d, a;

    dry.dry_run = true;
    fix_init(&f, NULL, NULL);
    add_limit(&f, "client", RL_BY_CLIENT, 5, 5, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    add_limit(&f, "ip", RL_BY_IP, 3, 3, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    d = run(&f, &dry); /* nothing yet: full, and nothing is created */
    CU_ASSERT_EQUAL(d.status, RL_OK);
    CU_ASSERT_EQUAL(d.res[0].v.remaining, 4);
    CU_ASSERT_EQUAL(d.res[1].v.remaining, 2);
    CU_ASSERT_EQUAL(rl_memory_count(f.mem), 0);
    for (int i = 0; i < 4; i++) { /* ip allows 3, then denies */
        snapshot(&f, ids, 2, before);
        d = run(&f, &dry);
        assert_snapshot(&f, ids, 2, before);
        a = run(&f, &req);
        assert_same_answer(&d, &a);
        CU_ASSERT_EQUAL(a.res[1].v.remaining, (uint64_t)(i < 3 ? 2 - i : 0));
        CU_ASSERT_EQUAL(a.status, i < 3 ? RL_OK : RL_DENIED);
    }
    CU_ASSERT_EQUAL(d.status, RL_DENIED);
    CU_ASSERT_EQUAL(d.report, 1);
    CU_ASSERT(d.res[1].v.retry_after_ms > 19000 && d.res[1].v.retry_after_ms <= 20000);
    CU_ASSERT_TRUE(d.res[0].v.allowed); /* would fit, not taken */
    CU_ASSERT_EQUAL(d.res[0].v.remaining, 2);
    /* the real requests counted 3 on the client limit, the dry ones nothing */
    a = run(&f, &(rl_request_t){.method = RL_METHOD_GET, .path = "/api/x",
                                .client_id = "orders", .ip = "10.0.0.2", .cost = 1});
    CU_ASSERT_EQUAL(a.status, RL_OK);
    CU_ASSERT_EQUAL(a.res[0].v.remaining, 1);
    fix_done(&f);
}

/* Top lists: every real check is recorded per limit under its identity
 * (a shadow limit's denials as its denials), a dry run never. */
static void test_top_recorded(void)
{
    fix_t f;
    rl_request_t req = mk_req("orders", "10.0.0.1"), dry = req;
    rl_topk_t *t = rl_topk_new();
    rl_topk_view_t *v = malloc(sizeof(*v));
    const rl_topk_lview_t *lv;

    CU_ASSERT_FATAL(t != NULL && v != NULL);
    dry.dry_run = true;
    fix_init(&f, NULL, NULL);
    rl_limiter_set_topk(f.l, t);
    add_limit(&f, "client", RL_BY_CLIENT, 2, 2, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    add_limit(&f, "trial", RL_BY_IP, 1, 1, RL_MODE_SHADOW, RL_ONERR_LOCAL);
    for (int i = 0; i < 3; i++)
        run(&f, &req);
    for (int i = 0; i < 5; i++)
        run(&f, &dry);
    rl_topk_view(t, util_mono_ms(), v);
    lv = rl_topk_view_find(v, "client");
    CU_ASSERT_FATAL(lv != NULL);
    CU_ASSERT_EQUAL(lv->w[0][RL_TOPK_REQUESTS].total, 3);
    CU_ASSERT_EQUAL(lv->w[0][RL_TOPK_DENIED].total, 1);
    CU_ASSERT_STRING_EQUAL(lv->w[0][RL_TOPK_DENIED].e[0].id, "c=orders");
    lv = rl_topk_view_find(v, "trial");
    CU_ASSERT_FATAL(lv != NULL);
    CU_ASSERT_EQUAL(lv->w[0][RL_TOPK_DENIED].total, 2); /* would-be denials */
    CU_ASSERT_STRING_EQUAL(lv->w[0][RL_TOPK_DENIED].e[0].id, "ip=10.0.0.1");
    rl_limiter_set_topk(f.l, NULL);
    run(&f, &req);
    rl_topk_view(t, util_mono_ms(), v);
    CU_ASSERT_EQUAL(rl_topk_view_find(v, "client")->w[0][RL_TOPK_REQUESTS].total, 3);
    fix_done(&f);
    free(v);
    rl_topk_free(t);
}

/* The local fallback (on_redis_error: local, Redis failing) peeks as well. */
static void test_dry_run_fallback(void)
{
    static const char *const ids[1] = {"c=orders"};
    failing_t fb = {NULL, 0};
    fix_t f;
    rl_request_t req = mk_req("orders", "10.0.0.1"), dry = req;
    rl_bucket_t before[1];
    answer_t d, a;

    dry.dry_run = true;
    fix_init(&f, &fail_ops, &fb);
    add_limit(&f, "local", RL_BY_CLIENT, 4, 4, RL_MODE_ENFORCE, RL_ONERR_LOCAL);
    rl_limiter_set_fallback(f.l, f.mem, 2); /* 4 / 2 replicas: 2 */
    d = run(&f, &dry);
    CU_ASSERT_TRUE(d.res[0].fallback);
    CU_ASSERT_EQUAL(d.res[0].v.remaining, 1);
    CU_ASSERT_EQUAL(rl_memory_count(f.mem), 0);
    for (int i = 0; i < 3; i++) {
        snapshot(&f, ids, 1, before);
        d = run(&f, &dry);
        assert_snapshot(&f, ids, 1, before);
        a = run(&f, &req);
        assert_same_answer(&d, &a);
        CU_ASSERT_EQUAL(a.status, i < 2 ? RL_OK : RL_DENIED);
    }
    fix_done(&f);
}

int test_rl_limiter_add(void)
{
    static const unit_test_t tests[] = {
        {"allow_then_deny", test_allow_then_deny},
        {"no_match", test_no_match},
        {"all_or_nothing", test_all_or_nothing},
        {"shadow", test_shadow},
        {"report", test_report},
        {"tiers", test_tiers},
        {"grouping", test_grouping},
        {"cancel", test_cancel},
        {"backend_failure", test_backend_failure},
        {"fallback_follows_fleet", test_fallback_follows_fleet},
        {"dry_run", test_dry_run},
        {"top lists: real checks recorded, dry runs not", test_top_recorded},
        {"dry_run_fallback", test_dry_run_fallback},
        {NULL, NULL},
    };

    return unit_add_suite("rl_limiter", tests);
}
