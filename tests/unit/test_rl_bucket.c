/* test_rl_bucket.c — token bucket maths and rate parsing.
 *
 * The vectors below are the contract shared with lua/bucket.lua: one step is
 * "refill to now, check cost, charge when it fits".  Levels are in fixed
 * point (tokens * period_ms).  Keep the table one vector per line between the
 * BEGIN/END markers so a script can extract it for the Lua test.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tollgate/rl_bucket.h"
#include "unit.h"

typedef struct bucket_vec {
    const char *name;
    uint32_t n, period_ms, burst; /* rate */
    int64_t level, ts_ms;         /* state before */
    int64_t now_ms;
    uint32_t cost;
    int allowed;
    uint64_t remaining, reset_ms, retry_after_ms;
    int64_t level_after, ts_after; /* state after */
} bucket_vec_t;

/* clang-format off */
/* BEGIN bucket vectors:
 * name, n, period_ms, burst, level, ts, now, cost, allowed, remaining, reset_ms, retry_after_ms,
 * level_after, ts_after */
static const bucket_vec_t vecs[] = {
    {"full 60/min",        60, 60000, 60, 3600000, 1000, 1000, 1, 1, 59, 1000, 0, 3540000, 1000},
    {"empty half token",   60, 60000, 60, 0, 1000, 1500, 1, 0, 0, 59500, 500, 30000, 1500},
    {"empty one token",    60, 60000, 60, 0, 1000, 2000, 1, 1, 0, 60000, 0, 0, 2000},
    {"long idle caps",     60, 60000, 60, 0, 0, 1000000000, 1, 1, 59, 1000, 0, 3540000, 1000000000},
    {"cost 4 fits",        10, 1000, 10, 10000, 0, 0, 4, 1, 6, 400, 0, 6000, 0},
    {"cost 4 denied",      10, 1000, 10, 2500, 0, 0, 4, 0, 2, 750, 150, 2500, 0},
    {"clock back",         10, 1000, 10, 2500, 5000, 4000, 1, 1, 1, 850, 0, 1500, 5000},
    {"round up retry",     7, 60000, 7, 59999, 0, 0, 1, 0, 0, 51429, 1, 59999, 0},
    {"one ms later",       7, 60000, 7, 59999, 0, 1, 1, 1, 0, 60000, 0, 6, 1},
    {"max burst per day",  10000000, 86400000, 10000000, 0, 0, 1700000000000, 1, 1, 9999999, 9, 0,
                           863999913600000, 1700000000000},
    {"max cost per day",   10000000, 86400000, 10000000, 864000000000000, 5, 5, 10000000, 1, 0,
                           86400000, 0, 0, 5},
    {"cost above burst",   10, 1000, 10, 10000, 0, 0, 11, 0, 10, 0, 100, 10000, 0},
    {"1/day after 1h",     1, 86400000, 1, 0, 0, 3600000, 1, 0, 0, 82800000, 82800000, 3600000,
                           3600000},
    {"burst above n",      1, 1000, 5, 0, 0, 2500, 1, 1, 1, 3500, 0, 1500, 2500},
    {"burst below n",      100, 1000, 10, 0, 0, 50, 1, 1, 4, 60, 0, 4000, 50},
    {"level above cap",    10, 1000, 10, 20000, 0, 0, 1, 1, 9, 100, 0, 9000, 0},
    {"epoch ms partial",   60, 60000, 60, 0, 1700000000000, 1700000000999, 1, 0, 0, 59001, 1,
                           59940, 1700000000999},
};
/* END bucket vectors */
/* clang-format on */

static void test_vectors(void)
{
    size_t i;

    for (i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        const bucket_vec_t *t = &vecs[i];
        rl_rate_t r = {t->n, t->period_ms, t->burst};
        rl_bucket_t b = {t->level, t->ts_ms};
        rl_verdict_t v;
        bool ok;

        rl_bucket_refill(&b, &r, t->now_ms);
        ok = rl_bucket_peek(&b, &r, t->cost, &v);
        if (ok)
            rl_bucket_take(&b, &r, t->cost);
        CU_ASSERT_EQUAL(ok, t->allowed != 0);
        CU_ASSERT_EQUAL(v.allowed, t->allowed != 0);
        CU_ASSERT_EQUAL(v.remaining, t->remaining);
        CU_ASSERT_EQUAL(v.reset_ms, t->reset_ms);
        CU_ASSERT_EQUAL(v.retry_after_ms, t->retry_after_ms);
        CU_ASSERT_EQUAL(b.level, t->level_after);
        CU_ASSERT_EQUAL(b.ts_ms, t->ts_after);
        CU_ASSERT_EQUAL(rl_bucket_full_after_ms(&b, &r), t->reset_ms);
        if (v.remaining != t->remaining || b.level != t->level_after ||
            v.reset_ms != t->reset_ms || v.retry_after_ms != t->retry_after_ms)
            fprintf(stderr, "vector \"%s\" failed\n", t->name);
    }
}

/* Drain a 5/second bucket, then one token every 200 ms. */
static void test_sequence(void)
{
    rl_rate_t r = {5, 1000, 5};
    rl_bucket_t b;
    rl_verdict_t v;
    int i, admitted = 0;
    int64_t t;

    rl_bucket_init(&b, &r, 0);
    CU_ASSERT_EQUAL(b.level, 5000);
    for (i = 0; i < 10; i++) {
        rl_bucket_refill(&b, &r, 0);
        if (rl_bucket_peek(&b, &r, 1, &v)) {
            rl_bucket_take(&b, &r, 1);
            admitted++;
        }
    }
    CU_ASSERT_EQUAL(admitted, 5);
    CU_ASSERT_FALSE(v.allowed);
    CU_ASSERT_EQUAL(v.retry_after_ms, 200);
    CU_ASSERT_EQUAL(v.reset_ms, 1000);
    /* Over 10 s at 1 ms steps, exactly 50 more are admitted. */
    admitted = 0;
    for (t = 1; t <= 10000; t++) {
        rl_bucket_refill(&b, &r, t);
        if (rl_bucket_peek(&b, &r, 1, &v)) {
            rl_bucket_take(&b, &r, 1);
            admitted++;
        }
    }
    CU_ASSERT_EQUAL(admitted, 50);
}

/* Peek changes nothing; refill never exceeds the capacity. */
static void test_peek_pure(void)
{
    rl_rate_t r = {3, 1000, 3};
    rl_bucket_t b = {1000, 0}, copy;
    rl_verdict_t v;

    copy = b;
    CU_ASSERT_TRUE(rl_bucket_peek(&b, &r, 1, &v));
    CU_ASSERT_EQUAL(memcmp(&b, &copy, sizeof(b)), 0);
    rl_bucket_refill(&b, &r, INT64_MAX);
    CU_ASSERT_EQUAL(b.level, 3000);
    CU_ASSERT_EQUAL(rl_bucket_full_after_ms(&b, &r), 0);
    /* time going back after a refill does not move ts back */
    rl_bucket_take(&b, &r, 3);
    rl_bucket_refill(&b, &r, 0);
    CU_ASSERT_EQUAL(b.level, 0);
    CU_ASSERT_EQUAL(b.ts_ms, INT64_MAX);
}

static void test_rate_parse(void)
{
    static const struct {
        const char *s;
        uint32_t n, period_ms;
    } good[] = {
        {"60/minute", 60, 60000},
        {"1/second", 1, 1000},
        {"10/s", 10, 1000},
        {"5/m", 5, 60000},
        {"100/hour", 100, 3600000},
        {"2/h", 2, 3600000},
        {"1/day", 1, 86400000},
        {"7/d", 7, 86400000},
        {"10000000/second", 10000000, 1000},
    };
    static const char *const bad[] = {
        "",
        "60",
        "/minute",
        "0/minute",
        "-1/minute",
        "+1/minute",
        " 60/minute",
        "60/ minute",
        "60/minutes",
        "60/Minute",
        "60/minute ",
        "60//minute",
        "10000001/second",
        "60/w",
        "99999999999999999999/s",
        "6x/m",
        "60/",
    };
    rl_rate_t r;
    char err[128];
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(&r, 0, sizeof(r));
        CU_ASSERT_EQUAL(rl_rate_parse(good[i].s, &r, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(r.n, good[i].n);
        CU_ASSERT_EQUAL(r.burst, good[i].n);
        CU_ASSERT_EQUAL(r.period_ms, good[i].period_ms);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(rl_rate_parse(bad[i], &r, err, sizeof(err)), -1);
        CU_ASSERT_NOT_EQUAL(err[0], '\0');
    }
    CU_ASSERT_EQUAL(rl_rate_parse(NULL, &r, NULL, 0), -1);
    CU_ASSERT_EQUAL(rl_rate_parse("x", &r, err, 8), -1); /* truncated message */
    CU_ASSERT_EQUAL(strlen(err), 7);
}

int test_rl_bucket_add(void)
{
    static const unit_test_t tests[] = {
        {"vectors", test_vectors},
        {"sequence", test_sequence},
        {"peek_pure", test_peek_pure},
        {"rate_parse", test_rate_parse},
        {NULL, NULL},
    };

    return unit_add_suite("rl_bucket", tests);
}
