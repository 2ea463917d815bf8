/* test_rl_redis.c — the limiter's Redis backend: key spelling, the script
 * call it makes and the replies it reads, against a fake rc_ops_t; then the
 * real path (rc client + lua/bucket.lua + limiter) against a real
 * redis-server on a free loopback port. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "tollgate/lua_scripts.h"
#include "tollgate/rc.h"
#include "tollgate/rl_limiter.h"
#include "tollgate/rl_redis.h"
#include "tollgate/util_clock.h"
#include "support_redis.h"
#include "unit.h"

/* ---- a fake Redis client ---------------------------------------------- */

#define FAKE_MAX 8

typedef struct fake {
    int ncalls;
    char keys[FAKE_MAX][4][256];
    char args[FAKE_MAX][24][24];
    int nkeys[FAKE_MAX], nargs[FAKE_MAX];
    rc_reply_fn fn[FAKE_MAX];
    void *priv[FAKE_MAX];
    int cancelled;
    int refuse; /* evalsha returns NULL */
} fake_t;

static rc_pending_t *fake_evalsha(void *cl, size_t script, int nkeys, const char **keys,
                                  const size_t *keylens, int nargs, const char **args,
                                  const size_t *arglens, rc_reply_fn fn, void *privdata)
{
    fake_t *f = cl;
    int i = f->ncalls;

    (void)script;
    if (f->refuse || i >= FAKE_MAX)
        return NULL;
    f->nkeys[i] = nkeys;
    f->nargs[i] = nargs;
    for (int k = 0; k < nkeys && k < 4; k++)
        snprintf(f->keys[i][k], 256, "%.*s", (int)keylens[k], keys[k]);
    for (int a = 0; a < nargs && a < 24; a++)
        snprintf(f->args[i][a], 24, "%.*s", (int)arglens[a], args[a]);
    f->fn[i] = fn;
    f->priv[i] = privdata;
    f->ncalls++;
    return (rc_pending_t *)(intptr_t)(i + 1);
}

static void fake_cancel(void *cl, rc_pending_t *p)
{
    (void)p;
    ((fake_t *)cl)->cancelled++;
}

static const rc_ops_t fake_ops = {.evalsha = fake_evalsha, .cancel = fake_cancel};

/* Answer call i with an integer array reply. */
static void answer(fake_t *f, int i, const long long *v, size_t n)
{
    redisReply *el[16], arr = {.type = REDIS_REPLY_ARRAY, .elements = n, .element = el};
    redisReply ints[16];

    for (size_t k = 0; k < n; k++) {
        ints[k] = (redisReply){.type = REDIS_REPLY_INTEGER, .integer = v[k]};
        el[k] = &ints[k];
    }
    f->fn[i](NULL, &arr, NULL, f->priv[i]);
}

typedef struct got {
    int calls, status;
    const char *err;
} got_t;

static void got_done(int status, const char *errstr, void *privdata)
{
    got_t *g = privdata;

    g->calls++;
    g->status = status;
    g->err = errstr;
}

static rl_limit_t mk_limit(const char *name, rl_mode_t mode)
{
    rl_limit_t l = {.name = (char *)(uintptr_t)name, .mode = mode};

    l.rate = (rl_rate_t){.n = 10, .period_ms = 1000, .burst = 20};
    return l;
}

static void test_key_spelling(void)
{
    char k[64];

    CU_ASSERT_EQUAL(rl_redis_key("tg:", "c=alice", "default", k, sizeof(k)), 22);
    CU_ASSERT_STRING_EQUAL(k, "tg:{c=alice}:b:default");
    CU_ASSERT_EQUAL(rl_redis_key("tg:", "c=alice", "default", k, 22), -1);
}

/* Two groups: the call carries every key of a group with its rates, and the
 * reply is read back into the group's results. */
static void test_calls_and_replies(void)
{
    fake_t f = {0};
    rl_redis_t *r = rl_redis_new(&fake_ops, &f, "tg:", 0);
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE), b = mk_limit("b", RL_MODE_SHADOW);
    const rl_limit_t *l1[2] = {&a, &b}, *l2[1] = {&a};
    rl_rate_t r1[2] = {a.rate, b.rate}, r2[1] = {a.rate};
    rl_limit_result_t res1[2] = {{0}}, res2[1] = {{0}};
    rl_group_t g[2] = {{"c=x", l1, r1, res1, 2, 1, false, false},
                       {"ip=1.2.3.4", l2, r2, res2, 1, 1, false, false}};
    got_t got = {0};
    void *tok = rl_redis_ops.check(r, NULL, g, 2, got_done, &got);
    const long long rep1[] = {1, 0, 1, 19, 100, 0, 0, 0, 2000, 50};

    CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
    CU_ASSERT_EQUAL_FATAL(f.ncalls, 2);
    CU_ASSERT_EQUAL(f.nkeys[0], 2);
    CU_ASSERT_STRING_EQUAL(f.keys[0][0], "tg:{c=x}:b:a");
    CU_ASSERT_STRING_EQUAL(f.keys[0][1], "tg:{c=x}:b:b");
    CU_ASSERT_STRING_EQUAL(f.keys[1][0], "tg:{ip=1.2.3.4}:b:a");
    CU_ASSERT_EQUAL(f.nargs[0], 9);
    CU_ASSERT_STRING_EQUAL(f.args[0][0], "1");  /* cost */
    CU_ASSERT_STRING_EQUAL(f.args[0][1], "10"); /* n */
    CU_ASSERT_STRING_EQUAL(f.args[0][2], "1000");
    CU_ASSERT_STRING_EQUAL(f.args[0][3], "20");
    CU_ASSERT_STRING_EQUAL(f.args[0][4], "0"); /* enforce */
    CU_ASSERT_STRING_EQUAL(f.args[0][8], "1"); /* shadow */
    answer(&f, 0, rep1, 10);
    CU_ASSERT_EQUAL(got.calls, 0); /* waits for the second group */
    CU_ASSERT_TRUE(res1[0].v.allowed);
    CU_ASSERT_EQUAL(res1[0].v.remaining, 19);
    CU_ASSERT_EQUAL(res1[0].v.reset_ms, 100);
    CU_ASSERT_FALSE(res1[1].v.allowed);
    CU_ASSERT_EQUAL(res1[1].v.retry_after_ms, 50);
    /* The second group gets an error reply: only it fails. */
    char busy[] = "BUSY";
    redisReply e = {.type = REDIS_REPLY_ERROR, .str = busy, .len = 4};
    f.fn[1](NULL, &e, NULL, f.priv[1]);
    CU_ASSERT_EQUAL(got.calls, 1);
    CU_ASSERT_EQUAL(got.status, 0);
    CU_ASSERT_FALSE(g[0].failed);
    CU_ASSERT_TRUE(g[1].failed);
    rl_redis_free(r);
}

static void hit(void *ctx)
{
    (*(int *)ctx)++;
}

/* Check one group of `lim` for client `id` (a dry run when `dry`); returns
 * how many calls went out. */
static int check_g(rl_redis_t *r, fake_t *f, const rl_limit_t *lim, const char *id,
                   rl_limit_result_t *res, const long long *reply, bool dry)
{
    const rl_limit_t *l[1] = {lim};
    rl_rate_t rt[1] = {lim->rate};
    rl_group_t g = {id, l, rt, res, 1, 1, false, dry};
    got_t got = {0};
    int before = f->ncalls;

    rl_redis_ops.check(r, NULL, &g, 1, got_done, &got);
    if (f->ncalls > before && reply != NULL)
        answer(f, f->ncalls - 1, reply, 6);
    CU_ASSERT_EQUAL(got.calls, 1);
    return f->ncalls - before;
}

static int check_one(rl_redis_t *r, fake_t *f, const rl_limit_t *lim, const char *id,
                     rl_limit_result_t *res, const long long *reply)
{
    return check_g(r, f, lim, id, res, reply, false);
}

/* A call Redis denied is answered locally until its bucket could fit, with
 * the same verdict (retry counted down); an allowed one never is; another
 * client, cost, rate or a shadow limit misses. */
static void test_overlimit_cache(void)
{
    fake_t f = {0};
    rl_redis_t *r = rl_redis_new(&fake_ops, &f, "tg:", 0);
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE), s = mk_limit("s", RL_MODE_SHADOW);
    rl_limit_t a2 = a;
    rl_limit_result_t res = {0};
    const long long denied[] = {0, 400, 0, 0, 2000, 400};   /* retry 400 ms */
    const long long allowed[] = {1, 0, 1, 5, 1500, 0};
    const long long soon[] = {0, 30, 0, 0, 2000, 30};       /* retry 30 ms */
    int hits = 0;

    rl_redis_set_local_observer(r, hit, NULL, &hits);
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=x", &res, denied), 1);
    CU_ASSERT_FALSE(res.v.allowed);
    memset(&res, 0, sizeof res);
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=x", &res, NULL), 0); /* local */
    CU_ASSERT_EQUAL(hits, 1);
    CU_ASSERT_FALSE(res.v.allowed);
    CU_ASSERT_EQUAL(res.v.remaining, 0);
    CU_ASSERT(res.v.retry_after_ms <= 400 && res.v.retry_after_ms > 300);
    CU_ASSERT_EQUAL(rl_redis_overlimit_count(r), 1);
    /* another client, another rate: asked */
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=y", &res, allowed), 1);
    a2.rate.n = 11;
    CU_ASSERT_EQUAL(check_one(r, &f, &a2, "c=x", &res, allowed), 1);
    CU_ASSERT_TRUE(res.v.allowed);
    /* allowed calls are not remembered: c=y asks again */
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=y", &res, allowed), 1);
    /* a shadow limit that does not fit denies nothing: not remembered */
    CU_ASSERT_EQUAL(check_one(r, &f, &s, "c=z", &res, denied), 1);
    CU_ASSERT_EQUAL(check_one(r, &f, &s, "c=z", &res, allowed), 1);
    /* expiry: a 30 ms wait is over after 40 ms */
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=w", &res, soon), 1);
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=w", &res, NULL), 0);
    {
        struct timespec ts = {0, 40 * 1000 * 1000};

        nanosleep(&ts, NULL);
    }
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=w", &res, allowed), 1);
    CU_ASSERT_TRUE(res.v.allowed);
    CU_ASSERT_EQUAL(hits, 2);
    rl_redis_free(r);
}

/* Answer call i with a batch reply: one array per request. */
static void answer_batch(fake_t *f, int i, const long long (*v)[6], size_t nreq)
{
    redisReply *outer_el[8], inner[8], *inner_el[8][6], ints[8][6];
    redisReply outer = {.type = REDIS_REPLY_ARRAY, .elements = nreq, .element = outer_el};

    for (size_t r = 0; r < nreq; r++) {
        for (size_t k = 0; k < 6; k++) {
            ints[r][k] = (redisReply){.type = REDIS_REPLY_INTEGER, .integer = v[r][k]};
            inner_el[r][k] = &ints[r][k];
        }
        inner[r] = (redisReply){.type = REDIS_REPLY_ARRAY, .elements = 6, .element = inner_el[r]};
        outer_el[r] = &inner[r];
    }
    f->fn[i](NULL, &outer, NULL, f->priv[i]);
}

/* The checks of one loop turn go out as one batched call ('B', R, then per
 * request k, cost, rates); each gets its own part of the reply; a request
 * cancelled before the flush leaves the batch. */
static void test_batching(void)
{
    fake_t f = {0};
    struct event_base *base = event_base_new();
    rl_redis_t *r = rl_redis_new(&fake_ops, &f, "tg:", 0);
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE);
    const rl_limit_t *l[1] = {&a};
    rl_rate_t rt[1] = {a.rate};
    rl_limit_result_t res[4][1] = {{{0}}};
    rl_group_t g[4] = {{"c=1", l, rt, res[0], 1, 1, false, false},
                       {"c=2", l, rt, res[1], 1, 2, false, false},
                       {"c=3", l, rt, res[2], 1, 1, false, false},
                       {"c=4", l, rt, res[3], 1, 1, false, false}};
    got_t got[4] = {{0}};
    void *tok[4];
    const long long rep[3][6] = {{1, 0, 1, 9, 100, 0}, {0, 70, 0, 0, 900, 70}, {1, 0, 1, 3, 5, 0}};

    CU_ASSERT_PTR_NOT_NULL_FATAL(base);
    rl_redis_set_batching(r, 64, false);
    for (int i = 0; i < 4; i++)
        tok[i] = rl_redis_ops.check(r, base, &g[i], 1, got_done, &got[i]);
    CU_ASSERT_EQUAL(f.ncalls, 0); /* held until the loop turn ends */
    rl_redis_ops.cancel(r, tok[2]); /* c=3 leaves before the flush */
    event_base_loop(base, EVLOOP_NONBLOCK);
    CU_ASSERT_EQUAL_FATAL(f.ncalls, 1);
    CU_ASSERT_EQUAL(f.nkeys[0], 3);
    CU_ASSERT_STRING_EQUAL(f.keys[0][0], "tg:{c=1}:b:a");
    CU_ASSERT_STRING_EQUAL(f.keys[0][1], "tg:{c=2}:b:a");
    CU_ASSERT_STRING_EQUAL(f.keys[0][2], "tg:{c=4}:b:a");
    CU_ASSERT_STRING_EQUAL(f.args[0][0], "B");
    CU_ASSERT_STRING_EQUAL(f.args[0][1], "3");
    CU_ASSERT_STRING_EQUAL(f.args[0][2], "1"); /* k */
    CU_ASSERT_STRING_EQUAL(f.args[0][3], "1"); /* cost */
    CU_ASSERT_STRING_EQUAL(f.args[0][4], "10");
    CU_ASSERT_STRING_EQUAL(f.args[0][9], "2"); /* cost of c=2 */
    CU_ASSERT_EQUAL(f.nargs[0], 2 + 3 * 6);
    answer_batch(&f, 0, rep, 3);
    CU_ASSERT_EQUAL(got[0].calls, 1);
    CU_ASSERT_EQUAL(got[1].calls, 1);
    CU_ASSERT_EQUAL(got[2].calls, 0); /* cancelled */
    CU_ASSERT_EQUAL(got[3].calls, 1);
    CU_ASSERT_TRUE(res[0][0].v.allowed);
    CU_ASSERT_EQUAL(res[0][0].v.remaining, 9);
    CU_ASSERT_FALSE(res[1][0].v.allowed);
    CU_ASSERT_EQUAL(res[1][0].v.retry_after_ms, 70);
    CU_ASSERT_EQUAL(res[3][0].v.remaining, 3);
    /* a batch reply of the wrong size fails each of its requests */
    for (int i = 0; i < 2; i++)
        tok[i] = rl_redis_ops.check(r, base, &g[i + 2], 1, got_done, &got[i + 2]);
    event_base_loop(base, EVLOOP_NONBLOCK);
    CU_ASSERT_EQUAL_FATAL(f.ncalls, 2);
    answer_batch(&f, 1, rep, 1);
    CU_ASSERT_TRUE(g[2].failed && g[3].failed);
    CU_ASSERT_EQUAL(got[2].calls, 1);
    rl_redis_free(r);
    event_base_free(base);
}

/* consistency: leased — the call asks for a lease's worth of tokens, the
 * next checks are admitted locally from it; when Redis cannot give that
 * many the check is asked again with its own cost; a lease expires. */
static void test_leases(void)
{
    fake_t f = {0};
    rl_redis_t *r = rl_redis_new(&fake_ops, &f, "tg:", 0);
    rl_limit_t a = mk_limit("hot", RL_MODE_ENFORCE);
    rl_limit_result_t res = {0};
    const long long ok[] = {1, 0, 1, 50, 100, 0}, no[] = {0, 30, 0, 3, 100, 30};
    int leased = 0;

    a.consistency = RL_CONSISTENCY_LEASED;
    a.lease_max = 8;
    a.lease_ttl_ms = 50;
    rl_redis_set_local_observer(r, NULL, hit, &leased);
    /* 1: no demand seen yet: its own cost */
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=h", &res, ok), 1);
    CU_ASSERT_STRING_EQUAL(f.args[0][0], "1");
    /* 2: a lease of 2 (twice the demand), one of them this check's */
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=h", &res, ok), 1);
    CU_ASSERT_STRING_EQUAL(f.args[1][0], "2");
    CU_ASSERT_TRUE(res.v.allowed);
    /* 3: from the lease, no call */
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=h", &res, NULL), 0);
    CU_ASSERT_TRUE(res.v.allowed);
    CU_ASSERT_EQUAL(res.v.remaining, 50);
    CU_ASSERT_EQUAL(leased, 1);
    /* 4: asks for 4; Redis cannot give them: asked again for 1 (exact) */
    {
        const rl_limit_t *l[1] = {&a};
        rl_rate_t rt[1] = {a.rate};
        rl_group_t g = {"c=h", l, rt, &res, 1, 1, false, false};
        got_t got = {0};

        rl_redis_ops.check(r, NULL, &g, 1, got_done, &got);
        CU_ASSERT_EQUAL_FATAL(f.ncalls, 3);
        CU_ASSERT_STRING_EQUAL(f.args[2][0], "4");
        answer(&f, 2, no, 6);
        CU_ASSERT_EQUAL(got.calls, 0); /* not yet: asked again */
        CU_ASSERT_EQUAL_FATAL(f.ncalls, 4);
        CU_ASSERT_STRING_EQUAL(f.args[3][0], "1");
        CU_ASSERT_EQUAL(g.cost, 1); /* the check's own cost, restored */
        answer(&f, 3, ok, 6);
        CU_ASSERT_EQUAL(got.calls, 1);
        CU_ASSERT_TRUE(res.v.allowed);
    }
    /* 5: half the refused size (2), granted; then the lease expires unused */
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=h", &res, ok), 1);
    CU_ASSERT_STRING_EQUAL(f.args[4][0], "2");
    {
        struct timespec ts = {0, 60 * 1000 * 1000};

        nanosleep(&ts, NULL);
    }
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=h", &res, ok), 1); /* expired: a call */
    /* an exact limit is never leased */
    a.consistency = RL_CONSISTENCY_EXACT;
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=e", &res, ok), 1);
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=e", &res, ok), 1);
    CU_ASSERT_EQUAL(leased, 1);
    rl_redis_free(r);
}

static void test_malformed_and_missing_replies(void)
{
    fake_t f = {0};
    rl_redis_t *r = rl_redis_new(&fake_ops, &f, "tg:", 0);
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE);
    const rl_limit_t *l1[1] = {&a};
    rl_rate_t r1[1] = {a.rate};
    rl_limit_result_t res[1] = {{0}};
    rl_group_t g = {"c=x", l1, r1, res, 1, 1, false, false};
    got_t got = {0};
    const long long short_reply[] = {1, 0, 1};

    CU_ASSERT_PTR_NOT_NULL_FATAL(rl_redis_ops.check(r, NULL, &g, 1, got_done, &got));
    answer(&f, 0, short_reply, 3); /* wrong length */
    CU_ASSERT_EQUAL(got.calls, 1);
    CU_ASSERT_EQUAL(got.status, -1); /* every group failed */
    CU_ASSERT_TRUE(g.failed);

    got = (got_t){0};
    f.ncalls = 0;
    CU_ASSERT_PTR_NOT_NULL_FATAL(rl_redis_ops.check(r, NULL, &g, 1, got_done, &got));
    f.fn[0](NULL, NULL, "timeout", f.priv[0]); /* no reply */
    CU_ASSERT_EQUAL(got.status, -1);
    CU_ASSERT_PTR_NOT_NULL(got.err);
    rl_redis_free(r);
}

static void test_refused_and_cancel(void)
{
    fake_t f = {0};
    rl_redis_t *r = rl_redis_new(&fake_ops, &f, "tg:", 0);
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE);
    const rl_limit_t *l1[1] = {&a};
    rl_rate_t r1[1] = {a.rate};
    rl_limit_result_t res[2] = {{0}};
    rl_group_t g[2] = {{"c=x", l1, r1, res, 1, 1, false, false},
                       {"c=y", l1, r1, res + 1, 1, 1, false, false}};
    got_t got = {0};
    void *tok;

    /* Nothing can be sent: answered inside check (the limiter copes), no token. */
    f.refuse = 1;
    tok = rl_redis_ops.check(r, NULL, g, 2, got_done, &got);
    CU_ASSERT_PTR_NULL(tok);
    CU_ASSERT_EQUAL(got.calls, 1);
    CU_ASSERT_EQUAL(got.status, -1);
    /* Cancel with both in flight: both cancelled, done never runs. */
    f.refuse = 0;
    got = (got_t){0};
    tok = rl_redis_ops.check(r, NULL, g, 2, got_done, &got);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
    rl_redis_ops.cancel(r, tok);
    CU_ASSERT_EQUAL(f.cancelled, 2);
    CU_ASSERT_EQUAL(got.calls, 0);
    rl_redis_free(r);
}

/* ---- dry runs ------------------------------------------------------------ */

/* A dry call says 'D' first; its denial is not remembered; it reads the
 * over-limit cache (no counted hit) but leaves even an expired entry for a
 * real call to drop. */
static void test_dry_run_calls(void)
{
    fake_t f = {0};
    rl_redis_t *r = rl_redis_new(&fake_ops, &f, "tg:", 0);
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE);
    rl_limit_result_t res = {0};
    const long long denied[] = {0, 400, 0, 0, 2000, 400};
    const long long allowed[] = {1, 0, 1, 5, 1500, 0};
    const long long soon[] = {0, 30, 0, 0, 2000, 30};
    uint64_t t0;
    int hits = 0;

    rl_redis_set_local_observer(r, hit, NULL, &hits);
    CU_ASSERT_EQUAL(check_g(r, &f, &a, "c=x", &res, denied, true), 1);
    CU_ASSERT_EQUAL(f.nargs[0], 6);
    CU_ASSERT_STRING_EQUAL(f.args[0][0], "D");
    CU_ASSERT_STRING_EQUAL(f.args[0][1], "1"); /* cost */
    CU_ASSERT_STRING_EQUAL(f.args[0][2], "10");
    CU_ASSERT_STRING_EQUAL(f.keys[0][0], "tg:{c=x}:b:a");
    CU_ASSERT_FALSE(res.v.allowed);
    CU_ASSERT_EQUAL(res.v.retry_after_ms, 400);
    CU_ASSERT_EQUAL(rl_redis_overlimit_count(r), 0); /* not remembered */
    CU_ASSERT_EQUAL(check_g(r, &f, &a, "c=x", &res, denied, true), 1);
    /* a real denial is remembered; a dry run reads it, counts no hit */
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=x", &res, denied), 1);
    CU_ASSERT_STRING_EQUAL(f.args[2][0], "1"); /* a real call: no 'D' */
    memset(&res, 0, sizeof res);
    CU_ASSERT_EQUAL(check_g(r, &f, &a, "c=x", &res, NULL, true), 0);
    CU_ASSERT_FALSE(res.v.allowed);
    CU_ASSERT(res.v.retry_after_ms <= 400 && res.v.retry_after_ms > 300);
    CU_ASSERT_EQUAL(hits, 0);
    CU_ASSERT_EQUAL(rl_redis_overlimit_count(r), 1);
    /* an expired entry: the dry run asks Redis and leaves it; a real call
     * drops it */
    t0 = util_mono_ms();
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=w", &res, soon), 1);
    CU_ASSERT_EQUAL(rl_redis_overlimit_count(r), 2);
    while (util_mono_ms() < t0 + 40) /* the entry's 30 ms run out */
        ;
    CU_ASSERT_EQUAL(check_g(r, &f, &a, "c=w", &res, allowed, true), 1);
    CU_ASSERT_EQUAL(rl_redis_overlimit_count(r), 2);
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=w", &res, allowed), 1);
    CU_ASSERT_EQUAL(rl_redis_overlimit_count(r), 1);
    rl_redis_free(r);
}

/* Dry and real requests share one batch: 'D' before the dry one's k. */
static void test_dry_run_batch(void)
{
    fake_t f = {0};
    struct event_base *base = event_base_new();
    rl_redis_t *r = rl_redis_new(&fake_ops, &f, "tg:", 0);
    rl_limit_t a = mk_limit("a", RL_MODE_ENFORCE);
    const rl_limit_t *l[1] = {&a};
    rl_rate_t rt[1] = {a.rate};
    rl_limit_result_t res[3][1] = {{{0}}};
    rl_group_t g[3] = {{"c=1", l, rt, res[0], 1, 1, false, false},
                       {"c=1", l, rt, res[1], 1, 1, false, true},
                       {"c=1", l, rt, res[2], 1, 2, false, false}};
    got_t got[3] = {{0}};
    const long long rep[3][6] = {
        {1, 0, 1, 9, 100, 0}, {0, 70, 0, 0, 900, 70}, {0, 80, 0, 0, 900, 80}};

    CU_ASSERT_PTR_NOT_NULL_FATAL(base);
    rl_redis_set_batching(r, 64, false);
    for (int i = 0; i < 3; i++)
        rl_redis_ops.check(r, base, &g[i], 1, got_done, &got[i]);
    event_base_loop(base, EVLOOP_NONBLOCK);
    CU_ASSERT_EQUAL_FATAL(f.ncalls, 1);
    CU_ASSERT_EQUAL(f.nargs[0], 2 + 6 + 7 + 6);
    CU_ASSERT_STRING_EQUAL(f.args[0][0], "B");
    CU_ASSERT_STRING_EQUAL(f.args[0][1], "3");
    CU_ASSERT_STRING_EQUAL(f.args[0][2], "1"); /* k of the first, real */
    CU_ASSERT_STRING_EQUAL(f.args[0][8], "D"); /* the second is dry */
    CU_ASSERT_STRING_EQUAL(f.args[0][9], "1"); /* its k */
    CU_ASSERT_STRING_EQUAL(f.args[0][10], "1"); /* its cost */
    CU_ASSERT_STRING_EQUAL(f.args[0][15], "1"); /* k of the third, real */
    CU_ASSERT_STRING_EQUAL(f.args[0][16], "2"); /* its cost */
    answer_batch(&f, 0, rep, 3);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(got[i].calls, 1);
    CU_ASSERT_TRUE(res[0][0].v.allowed);
    CU_ASSERT_FALSE(res[1][0].v.allowed);
    CU_ASSERT_EQUAL(res[1][0].v.retry_after_ms, 70);
    CU_ASSERT_EQUAL(res[2][0].v.retry_after_ms, 80);
    CU_ASSERT_EQUAL(rl_redis_overlimit_count(r), 1); /* the real denial only */
    rl_redis_free(r);
    event_base_free(base);
}

/* consistency: leased — a dry run reads a live lease (the same answer as a
 * real check from it) but takes no token and adds no demand; with no lease
 * to read it is an exact dry call at its own cost. */
static void test_dry_run_leases(void)
{
    fake_t f = {0};
    rl_redis_t *r = rl_redis_new(&fake_ops, &f, "tg:", 0);
    rl_limit_t a = mk_limit("hot", RL_MODE_ENFORCE);
    rl_limit_result_t res = {0};
    const long long ok[] = {1, 0, 1, 50, 100, 0};
    int leased = 0;

    a.consistency = RL_CONSISTENCY_LEASED;
    a.lease_max = 8;
    a.lease_ttl_ms = 60000;
    rl_redis_set_local_observer(r, NULL, hit, &leased);
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=h", &res, ok), 1);   /* exact, 1 */
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=h", &res, ok), 1);   /* lease of 2 */
    CU_ASSERT_STRING_EQUAL(f.args[1][0], "2");
    /* one token left in the lease: the dry runs read it, twice */
    for (int i = 0; i < 2; i++) {
        memset(&res, 0, sizeof res);
        CU_ASSERT_EQUAL(check_g(r, &f, &a, "c=h", &res, NULL, true), 0);
        CU_ASSERT_TRUE(res.v.allowed);
        CU_ASSERT_EQUAL(res.v.remaining, 50);
    }
    CU_ASSERT_EQUAL(leased, 0);
    /* ... and the token is still there for the real check */
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=h", &res, NULL), 0);
    CU_ASSERT_EQUAL(leased, 1);
    /* the lease is empty: a dry run asks Redis, exactly, for its own cost */
    CU_ASSERT_EQUAL(check_g(r, &f, &a, "c=h", &res, ok, true), 1);
    CU_ASSERT_STRING_EQUAL(f.args[2][0], "D");
    CU_ASSERT_STRING_EQUAL(f.args[2][1], "1");
    /* the real check's lease: twice the real demand (2), none of the dry */
    CU_ASSERT_EQUAL(check_one(r, &f, &a, "c=h", &res, ok), 1);
    CU_ASSERT_STRING_EQUAL(f.args[3][0], "4");
    rl_redis_free(r);
}

/* ---- the real thing ------------------------------------------------------ */

static size_t bucket_script(rc_script_t *out)
{
    for (size_t i = 0; tg_lua_scripts[i].name != NULL; i++)
        if (strcmp(tg_lua_scripts[i].name, "bucket") == 0) {
            out->name = tg_lua_scripts[i].name;
            out->text = tg_lua_scripts[i].text;
            out->len = tg_lua_scripts[i].len;
            return 1;
        }
    return 0;
}

typedef struct live {
    int left, allowed, denied, errors;
} live_t;

static void live_done(const rl_result_t *res, void *privdata)
{
    live_t *lv = privdata;

    lv->left--;
    if (res->status == RL_OK)
        lv->allowed++;
    else if (res->status == RL_DENIED)
        lv->denied++;
    if (res->n > 0 && res->limits[0].failed)
        lv->errors++;
}

static const char *no_header(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    return NULL;
}

/* 30 immediate requests against a 10/second burst 10 limit through two
 * limiters (two "replicas" sharing one Redis): exactly 10 are allowed. */
static void test_live_shared_bucket(void)
{
    tu_redis_t srv = {0};
    rc_script_t script;
    char seed[32], err[256];
    const char *seeds[1] = {seed};
    struct event_base *base;
    rc_client_t *c;
    rl_redis_t *be;
    rl_limiter_t *l1, *l2;
    rl_by_t by = {RL_BY_CLIENT, NULL};
    char name[] = "default";
    rl_limit_t lim = {.name = name, .by = &by, .nby = 1};
    rl_policy_set_t ps = {.limits = &lim, .nlimits = 1};
    rl_request_t q = {.method = RL_METHOD_GET,
                      .path = "/",
                      .client_id = "live-test",
                      .ip = "127.0.0.1",
                      .cost = 1,
                      .header = no_header,
                      .claim = no_header};
    live_t lv = {0};

    if (!tu_have_redis())
        return;
    CU_ASSERT_FATAL(bucket_script(&script) == 1);
    CU_ASSERT_FATAL(tu_redis_start(&srv, NULL) == 0);
    snprintf(seed, sizeof(seed), "127.0.0.1:%u", srv.port);
    base = event_base_new();
    rc_opts_t o = {
        .seeds = seeds, .nseeds = 1, .timeout_ms = 1000, .scripts = &script, .nscripts = 1};
    c = rc_client_new(base, &o, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    for (int i = 0; i < 200 && !rc_client_up(c); i++)
        tu_spin(base, NULL, 10);
    CU_ASSERT_FATAL(rc_client_up(c));
    CU_ASSERT_EQUAL(rl_rate_parse("10/second", &lim.rate, err, sizeof(err)), 0);
    be = rl_redis_new(&rc_client_ops, c, "tgtest:", 0);
    l1 = rl_limiter_new(base, &rl_redis_ops, be);
    l2 = rl_limiter_new(base, &rl_redis_ops, be);
    lv.left = 30;
    for (int i = 0; i < 30; i++)
        CU_ASSERT_PTR_NOT_NULL(rl_check(i % 2 ? l1 : l2, &ps, &q, live_done, &lv));
    for (int i = 0; i < 300 && lv.left > 0; i++)
        tu_spin(base, NULL, 5);
    CU_ASSERT_EQUAL(lv.left, 0);
    CU_ASSERT_EQUAL(lv.errors, 0);
    /* Refill is 1 token / 100 ms: a slow run may see one more. */
    CU_ASSERT_TRUE(lv.allowed >= 10 && lv.allowed <= 11);
    CU_ASSERT_EQUAL(lv.allowed + lv.denied, 30);

    /* Redis goes away: on_redis_error open allows, marked failed.  (Another
     * client: the denied one stays denied from the over-limit cache until
     * its bucket could have refilled, Redis or not.) */
    tu_redis_kill(&srv);
    lim.on_redis_error = RL_ONERR_OPEN;
    q.client_id = "live-test-2";
    lv = (live_t){.left = 1};
    CU_ASSERT_PTR_NOT_NULL(rl_check(l1, &ps, &q, live_done, &lv));
    for (int i = 0; i < 300 && lv.left > 0; i++)
        tu_spin(base, NULL, 5);
    CU_ASSERT_EQUAL(lv.allowed, 1);
    CU_ASSERT_EQUAL(lv.errors, 1);

    rl_limiter_free(l1);
    rl_limiter_free(l2);
    rl_redis_free(be);
    rc_client_free(c);
    event_base_free(base);
    tu_redis_stop(&srv);
}

/* ---- dry runs against a real Redis --------------------------------------- */

typedef struct dry_one {
    rl_status_t status;
    uint64_t remaining, retry_after_ms;
} dry_one_t;

typedef struct dry_turn {
    int left, all_done;
    dry_one_t got[4];
} dry_turn_t;

typedef struct dry_slot {
    dry_turn_t *t;
    int i;
} dry_slot_t;

static void dry_done(const rl_result_t *res, void *privdata)
{
    dry_slot_t *s = privdata;
    dry_one_t *o = &s->t->got[s->i];

    o->status = res->status;
    o->remaining = res->n > 0 ? res->limits[0].v.remaining : 0;
    o->retry_after_ms = res->n > 0 ? res->limits[0].v.retry_after_ms : 0;
    if (res->n == 0 || res->limits[0].failed)
        o->status = RL_ERR;
    if (--s->t->left == 0)
        s->t->all_done = 1;
}

/* The checks `dry` (a 'd' per dry run, an 'r' per real one) of client `id`,
 * all in one loop turn (one batch), answered into t->got in order. */
static void dry_turn(struct event_base *base, rl_limiter_t *l, const rl_policy_set_t *ps,
                     const char *id, const char *dry, dry_turn_t *t)
{
    dry_slot_t slots[4];
    rl_request_t q = {.method = RL_METHOD_GET, .path = "/", .client_id = id,
                      .ip = "127.0.0.1", .cost = 1, .header = no_header,
                      .claim = no_header};
    int n = (int)strlen(dry);

    memset(t, 0, sizeof(*t));
    t->left = n;
    for (int i = 0; i < n && i < 4; i++) {
        slots[i] = (dry_slot_t){t, i};
        q.dry_run = dry[i] == 'd';
        CU_ASSERT_PTR_NOT_NULL(rl_check(l, ps, &q, dry_done, &slots[i]));
    }
    CU_ASSERT(tu_spin(base, &t->all_done, 5000));
}

/* What a write could change of `key`: its DUMP and absolute expiry, read
 * with redis-cli (-c: the owner, in a cluster). */
static void key_image(unsigned port, const char *key, char *out, size_t len)
{
    CU_ASSERT(tu_sh(out, len, "redis-cli -c -p %u DUMP '%s' | od -An -tx1; "
                    "redis-cli -c -p %u PEXPIRETIME '%s'", port, key, port, key) == 0);
    CU_ASSERT(strlen(out) > 40); /* a hash and an expiry, not "" and -2 */
}

/* rl_check through the rc client, rl_redis (batching on) and bucket.lua:
 * dry and real checks share batches; a dry run reports what the next real
 * check gets, leaves the key byte-identical and creates no key. */
static void live_dry(struct event_base *base, rc_client_t *c, unsigned port, bool cluster)
{
    rl_by_t by = {RL_BY_CLIENT, NULL};
    char name[] = "default", err[128], before[1024], after[1024], out[64];
    rl_limit_t lim = {.name = name, .by = &by, .nby = 1};
    rl_policy_set_t ps = {.limits = &lim, .nlimits = 1};
    const char *key = "tgdry:{c=dry-live}:b:default";
    rl_redis_t *be = rl_redis_new(&rc_client_ops, c, "tgdry:", 0);
    rl_limiter_t *l = rl_limiter_new(base, &rl_redis_ops, be);
    dry_turn_t t;

    CU_ASSERT_EQUAL(rl_rate_parse("3/minute", &lim.rate, err, sizeof(err)), 0);
    rl_redis_set_batching(be, 64, cluster);
    dry_turn(base, l, &ps, "dry-live", "rdr", &t); /* one batch */
    CU_ASSERT_EQUAL(t.got[0].status, RL_OK);
    CU_ASSERT_EQUAL(t.got[1].status, RL_OK);
    CU_ASSERT_EQUAL(t.got[2].status, RL_OK);
    CU_ASSERT_EQUAL(t.got[0].remaining, 2);
    CU_ASSERT_EQUAL(t.got[1].remaining, 1); /* saw the first, took nothing */
    CU_ASSERT_EQUAL(t.got[2].remaining, 1);
    key_image(port, key, before, sizeof(before));
    dry_turn(base, l, &ps, "dry-live", "d", &t); /* alone: the single form */
    key_image(port, key, after, sizeof(after));
    CU_ASSERT_STRING_EQUAL(after, before);
    CU_ASSERT_EQUAL(t.got[0].status, RL_OK);
    CU_ASSERT_EQUAL(t.got[0].remaining, 0);
    dry_turn(base, l, &ps, "dry-live", "rd", &t); /* the last token, then dry */
    CU_ASSERT_EQUAL(t.got[0].status, RL_OK);
    CU_ASSERT_EQUAL(t.got[0].remaining, 0);
    CU_ASSERT_EQUAL(t.got[1].status, RL_DENIED);
    CU_ASSERT(t.got[1].retry_after_ms > 19000 && t.got[1].retry_after_ms <= 20000);
    key_image(port, key, before, sizeof(before));
    dry_turn(base, l, &ps, "dry-live", "d", &t);
    key_image(port, key, after, sizeof(after));
    CU_ASSERT_STRING_EQUAL(after, before);
    CU_ASSERT_EQUAL(t.got[0].status, RL_DENIED);
    dry_turn(base, l, &ps, "dry-none", "dd", &t); /* no bucket: none made */
    CU_ASSERT_EQUAL(t.got[0].status, RL_OK);
    CU_ASSERT_EQUAL(t.got[1].remaining, 2);
    CU_ASSERT(tu_sh(out, sizeof(out), "redis-cli -c -p %u EXISTS 'tgdry:{c=dry-none}:b:default'",
                    port) == 0);
    CU_ASSERT_STRING_EQUAL(out, "0\n");
    rl_limiter_free(l);
    rl_redis_free(be);
}

static void test_live_dry_run(void)
{
    tu_redis_t srv = {0};
    rc_script_t script;
    rc_opts_t o = {.timeout_ms = 2000, .nscripts = 1};
    struct event_base *base;
    rc_client_t *c;

    if (!tu_have_redis())
        return;
    CU_ASSERT_FATAL(bucket_script(&script) == 1);
    o.scripts = &script;
    CU_ASSERT_FATAL(tu_redis_start(&srv, NULL) == 0);
    base = event_base_new();
    c = tu_client_on(base, srv.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FATAL(tu_wait_up(base, c, 3000));
    live_dry(base, c, srv.port, false);
    rc_client_free(c);
    event_base_free(base);
    tu_redis_stop(&srv);
}

static void test_live_dry_run_cluster(void)
{
    tu_cluster_t cl;
    rc_script_t script;
    char seed[2][32], err[256];
    const char *seeds[2] = {seed[0], seed[1]};
    rc_opts_t o = {.cluster = 1, .seeds = seeds, .nseeds = 2, .timeout_ms = 2000,
                   .backoff_max_ms = 300, .nscripts = 1};
    struct event_base *base;
    rc_client_t *c;

    if (!tu_have_redis())
        return;
    CU_ASSERT_FATAL(bucket_script(&script) == 1);
    o.scripts = &script;
    CU_ASSERT_FATAL(tu_cluster_start(&cl) == 0);
    snprintf(seed[0], sizeof(seed[0]), "127.0.0.1:%u", cl.port[0]);
    snprintf(seed[1], sizeof(seed[1]), "127.0.0.1:%u", cl.port[1]);
    base = event_base_new();
    c = rc_client_new(base, &o, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FATAL(tu_wait_up(base, c, 5000));
    live_dry(base, c, cl.port[0], true);
    rc_client_free(c);
    event_base_free(base);
    tu_cluster_stop(&cl);
}

int test_rl_redis_add(void)
{
    static const unit_test_t tests[] = {
        {"over-limit cache", test_overlimit_cache},
        {"batching", test_batching},
        {"token leases", test_leases},
        {"key spelling", test_key_spelling},
        {"calls and replies, one group failing", test_calls_and_replies},
        {"malformed and missing replies", test_malformed_and_missing_replies},
        {"refused sends and cancel", test_refused_and_cancel},
        {"dry run: calls and the over-limit cache", test_dry_run_calls},
        {"dry run: shares a batch with real requests", test_dry_run_batch},
        {"dry run: leases read, never taken", test_dry_run_leases},
        {NULL, NULL},
    };
    /* redis-server or the cluster of their own (support_redis.h) */
    static const unit_test_t server_tests[] = {
        {"live: two limiters share one bucket", test_live_shared_bucket},
        {"live: dry runs share batches, write nothing", test_live_dry_run},
        {"live cluster: dry runs share batches, write nothing", test_live_dry_run_cluster},
        {NULL, NULL},
    };
    if (unit_add_suite("rl_redis", tests) != 0)
        return -1;
    return unit_add_server_suite("rl_redis_server", server_tests);
}
