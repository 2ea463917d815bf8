/* test_rl_memory.c — the in-process backend: decisions, all-or-nothing,
 * shadow, expiry, bounded size, threads, the asynchronous ops table. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "tollgate/rl_memory.h"
#include "unit.h"

#define T0 1700000000000LL

static rl_limit_t mk_limit(const char *name, rl_mode_t mode)
{
    rl_limit_t l;

    memset(&l, 0, sizeof(l));
    l.name = (char *)name;
    l.mode = mode;
    return l;
}

/* A group over `n` limits with rates `rates`, results into `res`. */
static rl_group_t mk_group(const char *id, const rl_limit_t **lims, const rl_rate_t *rates,
                           rl_limit_result_t *res, size_t n, uint32_t cost)
{
    rl_group_t g = {id, lims, rates, res, n, cost, false, false};
    size_t i;

    for (i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        res[i].limit = lims[i];
        res[i].rate = rates[i];
    }
    return g;
}

static bool decide1(rl_memory_t *m, const rl_limit_t *lim, const rl_rate_t *r,
                    const char *id, int64_t now, rl_verdict_t *v)
{
    const rl_limit_t *lims[1] = {lim};
    rl_limit_result_t res[1];
    rl_group_t g = mk_group(id, lims, r, res, 1, 1);

    rl_memory_decide(m, &g, now);
    *v = res[0].v;
    return res[0].v.allowed;
}

static void test_basic(void)
{
    rl_memory_t *m = rl_memory_new(1000);
    rl_limit_t lim = mk_limit("default", RL_MODE_ENFORCE);
    rl_rate_t r = {3, 60000, 3};
    rl_verdict_t v;
    rl_bucket_t b;

    CU_ASSERT_TRUE(decide1(m, &lim, &r, "c=a", T0, &v));
    CU_ASSERT_EQUAL(v.remaining, 2);
    CU_ASSERT_TRUE(decide1(m, &lim, &r, "c=a", T0, &v));
    CU_ASSERT_TRUE(decide1(m, &lim, &r, "c=a", T0, &v));
    CU_ASSERT_EQUAL(v.remaining, 0);
    CU_ASSERT_EQUAL(v.reset_ms, 60000);
    CU_ASSERT_FALSE(decide1(m, &lim, &r, "c=a", T0 + 5000, &v));
    CU_ASSERT_EQUAL(v.retry_after_ms, 15000);
    CU_ASSERT_TRUE(decide1(m, &lim, &r, "c=b", T0, &v)); /* another identity */
    CU_ASSERT_EQUAL(rl_memory_count(m), 2);
    CU_ASSERT_TRUE(decide1(m, &lim, &r, "c=a", T0 + 20000, &v));
    CU_ASSERT_EQUAL(rl_memory_peek(m, "default", "c=a", &r, T0 + 20000, &b), 0);
    CU_ASSERT_EQUAL(b.level, 0);
    CU_ASSERT_EQUAL(rl_memory_peek(m, "default", "c=zz", &r, T0, &b), -1);
    CU_ASSERT_EQUAL(rl_memory_peek(m, "other", "c=a", &r, T0, &b), -1);
    CU_ASSERT_EQUAL(rl_memory_reset(m, "default", "c=a"), 0);
    CU_ASSERT_EQUAL(rl_memory_reset(m, "default", "c=a"), -1);
    CU_ASSERT_EQUAL(rl_memory_count(m), 1);
    CU_ASSERT_TRUE(decide1(m, &lim, &r, "c=a", T0 + 20000, &v));
    CU_ASSERT_EQUAL(v.remaining, 2);
    rl_memory_free(m);
    rl_memory_free(NULL);
}

/* Two enforced limits of one identity: when one denies, neither is charged. */
static void test_all_or_nothing(void)
{
    rl_memory_t *m = rl_memory_new(1000);
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE), b = mk_limit("b", RL_MODE_ENFORCE);
    const rl_limit_t *lims[2] = {&a, &b};
    rl_rate_t rates[2] = {{5, 60000, 5}, {2, 60000, 2}};
    rl_limit_result_t res[2];
    rl_group_t g;
    rl_bucket_t bk;
    int i;

    for (i = 0; i < 2; i++) {
        g = mk_group("c=x", lims, rates, res, 2, 1);
        rl_memory_decide(m, &g, T0);
        CU_ASSERT_TRUE(res[0].v.allowed && res[1].v.allowed);
    }
    CU_ASSERT_EQUAL(res[0].v.remaining, 3);
    CU_ASSERT_EQUAL(res[1].v.remaining, 0);
    g = mk_group("c=x", lims, rates, res, 2, 1);
    rl_memory_decide(m, &g, T0);
    CU_ASSERT_TRUE(res[0].v.allowed);       /* would fit ... */
    CU_ASSERT_EQUAL(res[0].v.remaining, 3); /* ... but is not taken */
    CU_ASSERT_EQUAL(res[0].v.retry_after_ms, 0);
    CU_ASSERT_FALSE(res[1].v.allowed);
    CU_ASSERT_EQUAL(res[1].v.retry_after_ms, 30000);
    CU_ASSERT_EQUAL(rl_memory_peek(m, "a", "c=x", &rates[0], T0, &bk), 0);
    CU_ASSERT_EQUAL(bk.level, 3 * 60000);
    /* cost 6 against "a" alone: denied, a brand-new bucket is not created */
    g = mk_group("c=new", lims, rates, res, 1, 6);
    rl_memory_decide(m, &g, T0);
    CU_ASSERT_FALSE(res[0].v.allowed);
    CU_ASSERT_EQUAL(rl_memory_peek(m, "a", "c=new", &rates[0], T0, &bk), -1);
    rl_memory_free(m);
}

/* Shadow limits are decided and charged only when they fit and the request
 * is allowed; their denial does not stop the enforced limit. */
static void test_shadow(void)
{
    rl_memory_t *m = rl_memory_new(1000);
    rl_limit_t e = mk_limit("e", RL_MODE_ENFORCE), s = mk_limit("s", RL_MODE_SHADOW);
    const rl_limit_t *lims[2] = {&e, &s};
    rl_rate_t rates[2] = {{10, 60000, 10}, {1, 60000, 1}};
    rl_limit_result_t res[2];
    rl_group_t g;
    rl_bucket_t bk;

    g = mk_group("ip=1", lims, rates, res, 2, 1);
    rl_memory_decide(m, &g, T0);
    CU_ASSERT_TRUE(res[0].v.allowed && res[1].v.allowed);
    g = mk_group("ip=1", lims, rates, res, 2, 1);
    rl_memory_decide(m, &g, T0);
    CU_ASSERT_TRUE(res[0].v.allowed);
    CU_ASSERT_FALSE(res[1].v.allowed);
    CU_ASSERT_EQUAL(res[1].v.retry_after_ms, 60000);
    CU_ASSERT_EQUAL(res[0].v.remaining, 8);
    rl_memory_peek(m, "s", "ip=1", &rates[1], T0, &bk);
    CU_ASSERT_EQUAL(bk.level, 0);
    rl_memory_free(m);
}

/* Full (idle) buckets are forgotten; the size bound holds. */
static void test_expiry_and_bound(void)
{
    rl_memory_t *m = rl_memory_new(1);
    rl_limit_t lim = mk_limit("l", RL_MODE_ENFORCE);
    rl_rate_t r = {1, 1000, 1};
    rl_verdict_t v;
    rl_bucket_t bk;
    char id[32];
    int i, admitted = 0;

    CU_ASSERT_TRUE(decide1(m, &lim, &r, "a", T0, &v));
    CU_ASSERT_FALSE(decide1(m, &lim, &r, "a", T0, &v));
    CU_ASSERT_TRUE(decide1(m, &lim, &r, "b", T0 + 5000, &v)); /* "a" is full: forgotten */
    CU_ASSERT_EQUAL(rl_memory_count(m), 1);
    CU_ASSERT_EQUAL(rl_memory_peek(m, "l", "a", &r, T0 + 5000, &bk), -1);
    CU_ASSERT_TRUE(decide1(m, &lim, &r, "c", T0 + 5000, &v)); /* busy "b" dropped */
    CU_ASSERT_EQUAL(rl_memory_count(m), 1);
    rl_memory_free(m);

    m = rl_memory_new(1000);
    for (i = 0; i < 20000; i++) {
        snprintf(id, sizeof(id), "ip=10.0.%d.%d", i / 256, i % 256);
        admitted += decide1(m, &lim, &r, id, T0, &v);
    }
    CU_ASSERT_EQUAL(admitted, 20000);
    CU_ASSERT(rl_memory_count(m) <= 1000);
    CU_ASSERT(rl_memory_count(m) >= 900);
    /* much later everything is full; new traffic sweeps the old out lazily */
    for (i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "ip=10.9.%d.%d", i / 256, i % 256);
        decide1(m, &lim, &r, id, T0 + 3600000, &v);
        decide1(m, &lim, &r, id, T0 + 3600000, &v); /* denied: changes nothing */
    }
    CU_ASSERT(rl_memory_count(m) <= 1000);
    rl_memory_free(m);
}

typedef struct hammer {
    rl_memory_t *m;
    int admitted;
} hammer_t;

static const rl_rate_t hammer_rates[2] = {{1000, 86400000, 1000}, {700, 86400000, 700}};

static void *hammer_run(void *arg)
{
    hammer_t *h = arg;
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE), b = mk_limit("b", RL_MODE_ENFORCE);
    const rl_limit_t *lims[2] = {&a, &b};
    rl_limit_result_t res[2];
    rl_group_t g;
    int i;

    for (i = 0; i < 5000; i++) {
        g = mk_group("c=hot", lims, hammer_rates, res, 2, 1);
        rl_memory_decide(h->m, &g, T0 + i / 100);
        if (res[0].v.allowed && res[1].v.allowed)
            h->admitted++;
        /* plus noise on other identities */
        g = mk_group(i % 2 ? "c=cold1" : "c=cold2", lims, hammer_rates, res, 1, 1);
        rl_memory_decide(h->m, &g, T0);
    }
    return NULL;
}

/* Four threads never admit more than the tighter burst, and the looser
 * limit is charged exactly as often (all-or-nothing under the lock). */
static void test_threads(void)
{
    rl_memory_t *m = rl_memory_new(10000);
    pthread_t th[4];
    hammer_t h[4];
    rl_bucket_t bk;
    int i, total = 0;

    for (i = 0; i < 4; i++) {
        h[i].m = m;
        h[i].admitted = 0;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += h[i].admitted;
    }
    CU_ASSERT_EQUAL(total, 700);
    CU_ASSERT_EQUAL(rl_memory_peek(m, "a", "c=hot", &hammer_rates[0], T0, &bk), 0);
    CU_ASSERT_EQUAL(bk.level / 86400000, 300);
    rl_memory_free(m);
}

typedef struct seen {
    int calls, status;
} seen_t;

static void on_done(int status, const char *errstr, void *privdata)
{
    seen_t *s = privdata;

    (void)errstr;
    s->calls++;
    s->status = status;
}

/* The ops table answers from the loop, never inside check; cancel works. */
static void test_ops_async(void)
{
    struct event_base *base = event_base_new();
    rl_memory_t *m = rl_memory_new(100);
    rl_limit_t lim = mk_limit("l", RL_MODE_ENFORCE);
    const rl_limit_t *lims[1] = {&lim};
    rl_rate_t r = {2, 1000, 2};
    rl_limit_result_t res[1];
    rl_group_t g = mk_group("c=a", lims, &r, res, 1, 1);
    seen_t s1 = {0, 9}, s2 = {0, 9};
    void *tok;

    CU_ASSERT_STRING_EQUAL(rl_memory_ops.name, "memory");
    tok = rl_memory_ops.check(m, base, &g, 1, on_done, &s1);
    CU_ASSERT_PTR_NOT_NULL(tok);
    CU_ASSERT_EQUAL(s1.calls, 0);
    event_base_dispatch(base);
    CU_ASSERT_EQUAL(s1.calls, 1);
    CU_ASSERT_EQUAL(s1.status, 0);
    CU_ASSERT_TRUE(res[0].v.allowed);

    rl_memory_set_delay_ms(m, 20);
    tok = rl_memory_ops.check(m, base, &g, 1, on_done, &s2);
    rl_memory_ops.cancel(m, tok);
    event_base_dispatch(base);
    CU_ASSERT_EQUAL(s2.calls, 0);
    tok = rl_memory_ops.check(m, base, &g, 1, on_done, &s2);
    event_base_dispatch(base);
    CU_ASSERT_EQUAL(s2.calls, 1);
    CU_ASSERT_FALSE(res[0].v.allowed); /* third in the same second */
    rl_memory_free(m);
    event_base_free(base);
}

/* Two groups of one request: one denies, the other is not charged. */
static void test_groups_atomic(void)
{
    struct event_base *base = event_base_new();
    rl_memory_t *m = rl_memory_new(100);
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE), b = mk_limit("b", RL_MODE_ENFORCE);
    const rl_limit_t *la[1] = {&a}, *lb[1] = {&b};
    rl_rate_t ra = {5, 60000, 5}, rb = {1, 60000, 1};
    rl_limit_result_t res_a[1], res_b[1];
    rl_group_t g[2];
    seen_t s = {0, 9};
    rl_bucket_t bk;
    int i;

    for (i = 0; i < 2; i++) {
        g[0] = mk_group("c=x", la, &ra, res_a, 1, 1);
        g[1] = mk_group("ip=y", lb, &rb, res_b, 1, 1);
        CU_ASSERT_PTR_NOT_NULL(rl_memory_ops.check(m, base, g, 2, on_done, &s));
        event_base_dispatch(base);
    }
    CU_ASSERT_EQUAL(s.calls, 2);
    CU_ASSERT_TRUE(res_a[0].v.allowed);
    CU_ASSERT_FALSE(res_b[0].v.allowed);
    CU_ASSERT_EQUAL(rl_memory_peek(m, "a", "c=x", &ra, 0, &bk), 0);
    CU_ASSERT_EQUAL(bk.level / 60000, 4); /* charged once, not twice */
    rl_memory_free(m);
    event_base_free(base);
}

typedef struct multi {
    rl_memory_t *m;
    int id, admitted;
} multi_t;

static const rl_rate_t multi_rates[2] = {{500, 86400000, 500}, {300, 86400000, 300}};

/* Groups in opposite orders on different threads: stripes are locked in a
 * fixed order, so no deadlock, and never more than the tighter burst. */
static void *multi_run(void *arg)
{
    multi_t *mt = arg;
    struct event_base *base = event_base_new();
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE), b = mk_limit("b", RL_MODE_ENFORCE);
    const rl_limit_t *la[1] = {&a}, *lb[1] = {&b};
    rl_limit_result_t res_a[1], res_b[1];
    rl_group_t g[2];
    seen_t s = {0, 9};
    int i, x = mt->id % 2;

    for (i = 0; i < 2000; i++) {
        g[x] = mk_group("c=one", la, &multi_rates[0], res_a, 1, 1);
        g[1 - x] = mk_group("c=two", lb, &multi_rates[1], res_b, 1, 1);
        rl_memory_ops.check(mt->m, base, g, 2, on_done, &s);
        event_base_dispatch(base);
        if (res_a[0].v.allowed && res_b[0].v.allowed)
            mt->admitted++;
    }
    event_base_free(base);
    return NULL;
}

static void test_threads_groups(void)
{
    rl_memory_t *m = rl_memory_new(10000);
    pthread_t th[4];
    multi_t mt[4];
    rl_bucket_t bk;
    int i, total = 0;

    for (i = 0; i < 4; i++) {
        mt[i].m = m;
        mt[i].id = i;
        mt[i].admitted = 0;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, multi_run, &mt[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += mt[i].admitted;
    }
    CU_ASSERT_EQUAL(total, 300);
    CU_ASSERT_EQUAL(rl_memory_peek(m, "a", "c=one", &multi_rates[0], 0, &bk), 0);
    CU_ASSERT_EQUAL(bk.level / 86400000, 200);
    rl_memory_free(m);
}

/* What a bucket holds, untouched (a `now` of 0 refills nothing); its
 * existence as the return value (0 / -1). */
static int stored(rl_memory_t *m, const char *limit, const char *id, const rl_rate_t *r,
                  rl_bucket_t *out)
{
    memset(out, 0, sizeof(*out));
    return rl_memory_peek(m, limit, id, r, 0, out);
}

static void assert_same_verdict(const rl_verdict_t *x, const rl_verdict_t *y)
{
    CU_ASSERT_EQUAL(x->allowed, y->allowed);
    CU_ASSERT_EQUAL(x->remaining, y->remaining);
    CU_ASSERT_EQUAL(x->reset_ms, y->reset_ms);
    CU_ASSERT_EQUAL(x->retry_after_ms, y->retry_after_ms);
}

/* A dry run at time t answers exactly what a real check at t answers, over
 * two enforced limits and a shadow one, allowed and denied, and changes no
 * bucket: each step is dry, then real, at the same `now`. */
static void test_dry_run_equals_real(void)
{
    rl_memory_t *m = rl_memory_new(1000);
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE), b = mk_limit("b", RL_MODE_ENFORCE);
    rl_limit_t s = mk_limit("s", RL_MODE_SHADOW);
    const rl_limit_t *lims[3] = {&a, &b, &s};
    rl_rate_t rates[3] = {{5, 60000, 5}, {3, 60000, 3}, {1, 60000, 1}};
    rl_limit_result_t dry[3], real[3];
    rl_bucket_t before[3], after[3];
    int exists[3], denied = 0;
    rl_group_t g;

    /* no bucket yet: decided as full, and none is created */
    g = mk_group("c=d", lims, rates, dry, 3, 1);
    g.dry_run = true;
    rl_memory_decide(m, &g, T0);
    CU_ASSERT_TRUE(dry[0].v.allowed && dry[1].v.allowed && dry[2].v.allowed);
    CU_ASSERT_EQUAL(dry[0].v.remaining, 4);
    CU_ASSERT_EQUAL(dry[1].v.remaining, 2);
    CU_ASSERT_EQUAL(dry[2].v.remaining, 0);
    CU_ASSERT_EQUAL(rl_memory_count(m), 0);
    /* b (3/minute) allows 3, then denies at T0 + 3 s: level 9000 of 60000,
     * 3 units a ms: retry after ceil(51000 / 3) = 17000 ms */
    for (int i = 0; i < 5; i++) {
        int64_t now = T0 + i * 1000;

        for (int k = 0; k < 3; k++)
            exists[k] = stored(m, lims[k]->name, "c=d", &rates[k], &before[k]);
        g = mk_group("c=d", lims, rates, dry, 3, 1);
        g.dry_run = true;
        rl_memory_decide(m, &g, now);
        for (int k = 0; k < 3; k++) {
            CU_ASSERT_EQUAL(stored(m, lims[k]->name, "c=d", &rates[k], &after[k]), exists[k]);
            CU_ASSERT_EQUAL(after[k].level, before[k].level);
            CU_ASSERT_EQUAL(after[k].ts_ms, before[k].ts_ms);
        }
        g = mk_group("c=d", lims, rates, real, 3, 1);
        rl_memory_decide(m, &g, now);
        for (int k = 0; k < 3; k++)
            assert_same_verdict(&dry[k].v, &real[k].v);
        CU_ASSERT_EQUAL(real[1].v.allowed, i < 3);
        if (i == 3) {
            denied = 1;
            CU_ASSERT_EQUAL(dry[1].v.retry_after_ms, 17000);
            CU_ASSERT_TRUE(dry[0].v.allowed); /* would fit, not taken */
            CU_ASSERT_EQUAL(dry[0].v.remaining, 2);
        }
    }
    CU_ASSERT_EQUAL(denied, 1);
    CU_ASSERT_EQUAL(rl_memory_count(m), 3);
    /* the real state went on as if no dry run had happened: a counted 3 */
    CU_ASSERT_EQUAL(stored(m, "a", "c=d", &rates[0], &after[0]), 0);
    CU_ASSERT_EQUAL(after[0].level, 2 * 60000 + 2 * 5000); /* 5 - 3, 2 s of refill */
    rl_memory_free(m);
}

/* A dry run forgets no idle full bucket (a real check's lazy expiry does),
 * and a denied dry run of a new identity creates nothing either. */
static void test_dry_run_no_expiry(void)
{
    rl_memory_t *m = rl_memory_new(1000);
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE), b = mk_limit("b", RL_MODE_ENFORCE);
    const rl_limit_t *la[1] = {&a}, *lb[1] = {&b};
    rl_rate_t r = {1, 1000, 1};
    rl_limit_result_t res[1];
    rl_bucket_t bk;
    rl_group_t g;

    g = mk_group("c=e", la, &r, res, 1, 1);
    rl_memory_decide(m, &g, T0); /* "a" of c=e: full again at T0 + 1 s */
    g = mk_group("c=e", lb, &r, res, 1, 1);
    g.dry_run = true;
    rl_memory_decide(m, &g, T0 + 3600000); /* same stripe, an hour later */
    CU_ASSERT_TRUE(res[0].v.allowed);
    CU_ASSERT_EQUAL(stored(m, "a", "c=e", &r, &bk), 0);
    CU_ASSERT_EQUAL(stored(m, "b", "c=e", &r, &bk), -1);
    CU_ASSERT_EQUAL(rl_memory_count(m), 1);
    g = mk_group("c=f", la, &r, res, 1, 2); /* cost 2 > burst 1: denied */
    g.dry_run = true;
    rl_memory_decide(m, &g, T0);
    CU_ASSERT_FALSE(res[0].v.allowed);
    CU_ASSERT_EQUAL(res[0].v.retry_after_ms, 1000);
    CU_ASSERT_EQUAL(rl_memory_count(m), 1);
    /* the real check at that hour does expire it (the test can fail) */
    g = mk_group("c=e", lb, &r, res, 1, 1);
    rl_memory_decide(m, &g, T0 + 3600000);
    CU_ASSERT_EQUAL(stored(m, "a", "c=e", &r, &bk), -1);
    CU_ASSERT_EQUAL(stored(m, "b", "c=e", &r, &bk), 0);
    rl_memory_free(m);
}

int test_rl_memory_add(void)
{
    static const unit_test_t tests[] = {
        {"basic", test_basic},
        {"all_or_nothing", test_all_or_nothing},
        {"shadow", test_shadow},
        {"expiry_and_bound", test_expiry_and_bound},
        {"threads", test_threads},
        {"ops_async", test_ops_async},
        {"groups_atomic", test_groups_atomic},
        {"threads_groups", test_threads_groups},
        {"dry_run_equals_real", test_dry_run_equals_real},
        {"dry_run_no_expiry", test_dry_run_no_expiry},
        {NULL, NULL},
    };

    return unit_add_suite("rl_memory", tests);
}
