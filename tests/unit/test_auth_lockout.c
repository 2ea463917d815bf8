/* test_auth_lockout.c — thresholds, window, doubling backoff, forgetting,
 * bounds and concurrent failures of one key. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tollgate/auth_lockout.h"
#include "unit.h"

static const auth_lockout_policy_t POLICY = {
    .max_failures = 3, .window_ms = 60000, .base_backoff_ms = 1000, .max_backoff_ms = 8000};

static void test_threshold(void)
{
    auth_lockout_t *l = auth_lockout_new(100);

    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "10.0.0.1", 1000), 0);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "10.0.0.1", &POLICY, 1000), 0);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "10.0.0.1", &POLICY, 1001), 0);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "10.0.0.1", 1002), 0);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "10.0.0.1", &POLICY, 1002), 1000);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "10.0.0.1", 1002), 1000);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "10.0.0.1", 1500), 502);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "10.0.0.1", 2001), 1);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "10.0.0.1", 2002), 0);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "10.0.0.2", 1500), 0); /* other keys unaffected */
    CU_ASSERT_EQUAL(auth_lockout_count(l), 1);
    /* the count starts again after a lockout */
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "10.0.0.1", &POLICY, 3000), 0);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "10.0.0.1", &POLICY, 3000), 0);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "10.0.0.1", &POLICY, 3000), 2000);
    auth_lockout_free(l);
}

static void test_one_failure_locks(void)
{
    auth_lockout_policy_t p = POLICY;
    auth_lockout_t *l = auth_lockout_new(10);

    p.max_failures = 1;
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "k", &p, 0), 1000);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "k", 0), 1000);
    auth_lockout_free(l);
}

static void test_window_expiry(void)
{
    auth_lockout_t *l = auth_lockout_new(100);

    CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &POLICY, 0), 0);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &POLICY, 59999), 0);
    /* the window of the first failure has passed: this one starts a new count */
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &POLICY, 60000), 0);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &POLICY, 60001), 0);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "ip", 60001), 0);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &POLICY, 119999), 1000);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "ip", 119999), 1000);
    auth_lockout_free(l);
}

static void test_doubling_and_cap(void)
{
    static const uint64_t want[] = {1000, 2000, 4000, 5000, 5000, 5000};
    auth_lockout_policy_t p = {2, 60000, 1000, 5000};
    auth_lockout_t *l = auth_lockout_new(100);
    int64_t now = 0;
    size_t i;

    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &p, now), 0);
        CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &p, now), want[i]);
        CU_ASSERT_EQUAL(auth_lockout_check(l, "ip", now), want[i]);
        now += (int64_t)want[i]; /* wait out the lock, stay within the window */
        CU_ASSERT_EQUAL(auth_lockout_check(l, "ip", now), 0);
    }
    auth_lockout_free(l);
}

/* Many lockouts with a huge cap: the shift saturates at the cap, no overflow. */
static void test_shift_overflow(void)
{
    auth_lockout_policy_t p = {1, 1000, 3, UINT64_MAX};
    auth_lockout_t *l = auth_lockout_new(10);
    uint64_t b = 0, prev = 0;
    int i;

    for (i = 0; i < 200; i++) {
        b = auth_lockout_fail(l, "ip", &p, 1000000);
        CU_ASSERT(b >= prev);
        prev = b;
    }
    CU_ASSERT_EQUAL(b, UINT64_MAX);
    /* locked until "forever": the remaining time saturates too */
    CU_ASSERT_EQUAL(auth_lockout_check(l, "ip", 1000000), (uint64_t)INT64_MAX - 1000000);
    auth_lockout_free(l);
}

static void test_success_clears(void)
{
    auth_lockout_t *l = auth_lockout_new(100);
    int i;

    for (i = 0; i < 6; i++)
        auth_lockout_fail(l, "ip", &POLICY, 0); /* two lockouts: level 2 */
    CU_ASSERT_EQUAL(auth_lockout_check(l, "ip", 0), 2000);
    auth_lockout_success(l, "ip");
    CU_ASSERT_EQUAL(auth_lockout_check(l, "ip", 0), 0);
    CU_ASSERT_EQUAL(auth_lockout_count(l), 0);
    /* the level went too: the next lockout is the base one */
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &POLICY, 1), 0);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &POLICY, 1), 0);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &POLICY, 1), 1000);
    auth_lockout_success(l, "unknown"); /* no-op */
    CU_ASSERT_EQUAL(auth_lockout_count(l), 1);
    auth_lockout_free(l);
}

static void test_disabled(void)
{
    auth_lockout_policy_t p = POLICY;
    auth_lockout_t *l = auth_lockout_new(100);
    int i;

    p.max_failures = 0;
    for (i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &p, i), 0);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "ip", 100), 0);
    CU_ASSERT_EQUAL(auth_lockout_count(l), 0);
    auth_lockout_free(l);
}

/* Idle for max(window, max_backoff): the key is forgotten, level included. */
static void test_idle_forgotten(void)
{
    auth_lockout_policy_t p = {2, 1000, 1000, 5000};
    auth_lockout_t *l = auth_lockout_new(100);
    int64_t t = 10000;

    auth_lockout_fail(l, "ip", &p, t);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &p, t), 1000);
    auth_lockout_fail(l, "ip", &p, t + 2000);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &p, t + 2000), 2000); /* level 2 */
    t += 2000;
    CU_ASSERT_EQUAL(auth_lockout_check(l, "ip", t + 4999), 0);
    CU_ASSERT_EQUAL(auth_lockout_count(l), 1);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "ip", t + 5000), 0);
    CU_ASSERT_EQUAL(auth_lockout_count(l), 0);
    auth_lockout_fail(l, "ip", &p, t + 5000);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "ip", &p, t + 5000), 1000); /* level 1 again */
    auth_lockout_free(l);
}

static void test_many_keys_bounded(void)
{
    auth_lockout_t *l = auth_lockout_new(100);
    char key[32];
    int i;

    for (i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        auth_lockout_fail(l, key, &POLICY, 1000);
        CU_ASSERT(auth_lockout_count(l) <= 100);
    }
    CU_ASSERT_EQUAL(auth_lockout_count(l), 100); /* every stripe full */
    /* the most recent key is still there */
    auth_lockout_fail(l, key, &POLICY, 1000);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, key, &POLICY, 1000), 1000);
    auth_lockout_free(l);
}

/* A locked key survives a flood of other keys with a few failures each, even
 * when it is the coldest key of its stripe. */
static void test_eviction_prefers_unlocked(void)
{
    auth_lockout_t *l = auth_lockout_new(256);
    char key[32];
    int i;

    for (i = 0; i < 3; i++)
        auth_lockout_fail(l, "locked", &POLICY, 0);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "locked", 0), 1000);
    for (i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        auth_lockout_fail(l, key, &POLICY, 0);
    }
    CU_ASSERT_EQUAL(auth_lockout_count(l), 256);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "locked", 999), 1);
    auth_lockout_free(l);
}

static void test_long_keys(void)
{
    auth_lockout_t *l = auth_lockout_new(100);
    char a[400], b[400];
    int i;

    memset(a, 'x', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(b, a, sizeof(a));
    b[sizeof(b) - 2] = 'y'; /* differs only past the stored prefix */
    for (i = 0; i < 3; i++)
        auth_lockout_fail(l, a, &POLICY, 0);
    CU_ASSERT_EQUAL(auth_lockout_check(l, a, 0), 1000);
    CU_ASSERT_EQUAL(auth_lockout_check(l, b, 0), 0);
    CU_ASSERT_EQUAL(auth_lockout_count(l), 1);
    auth_lockout_success(l, a);
    CU_ASSERT_EQUAL(auth_lockout_count(l), 0);
    auth_lockout_free(l);
}

static void test_null_args(void)
{
    auth_lockout_t *l = auth_lockout_new(0); /* one key at least */

    auth_lockout_free(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_EQUAL(auth_lockout_count(NULL), 0);
    CU_ASSERT_EQUAL(auth_lockout_check(NULL, "k", 0), 0);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, NULL, &POLICY, 0), 0);
    CU_ASSERT_EQUAL(auth_lockout_fail(l, "k", NULL, 0), 0);
    auth_lockout_success(l, NULL);
    auth_lockout_fail(l, "a", &POLICY, 0);
    auth_lockout_fail(l, "b", &POLICY, 0);
    CU_ASSERT_EQUAL(auth_lockout_count(l), 1);
    auth_lockout_free(l);
}

#define HAMMER_THREADS 4
#define HAMMER_FAILS 2000

typedef struct hammer {
    auth_lockout_t *l;
    unsigned lockouts;
} hammer_t;

static void *hammer_run(void *arg)
{
    hammer_t *h = arg;
    auth_lockout_policy_t p = {5, 60000, 1000, 60000};
    int i;

    for (i = 0; i < HAMMER_FAILS; i++) {
        if (auth_lockout_fail(h->l, "1.2.3.4", &p, 5000) != 0)
            h->lockouts++;
        (void)auth_lockout_check(h->l, "1.2.3.4", 5000);
        (void)auth_lockout_fail(h->l, i % 2 ? "other-a" : "other-b", &p, 5000);
    }
    return NULL;
}

/* No time passes: exactly one lockout per max_failures failures. */
static void test_threads_same_key(void)
{
    hammer_t h[HAMMER_THREADS];
    pthread_t t[HAMMER_THREADS];
    unsigned total = 0;
    int i;

    h[0].l = auth_lockout_new(1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h[0].l);
    for (i = 0; i < HAMMER_THREADS; i++) {
        h[i].l = h[0].l;
        h[i].lockouts = 0;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
    }
    for (i = 0; i < HAMMER_THREADS; i++) {
        pthread_join(t[i], NULL);
        total += h[i].lockouts;
    }
    CU_ASSERT_EQUAL(total, HAMMER_THREADS * HAMMER_FAILS / 5);
    CU_ASSERT_EQUAL(auth_lockout_check(h[0].l, "1.2.3.4", 5000), 60000);
    CU_ASSERT_EQUAL(auth_lockout_count(h[0].l), 3);
    auth_lockout_free(h[0].l);
}

/* A lockout decided elsewhere (another replica) is honoured here. */
static void test_remote_lock(void)
{
    auth_lockout_t *l = auth_lockout_new(64);

    CU_ASSERT_EQUAL(auth_lockout_check(l, "10.0.0.9", 1000), 0);
    auth_lockout_lock(l, "10.0.0.9", 6000, 1000);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "10.0.0.9", 1000), 5000);
    auth_lockout_lock(l, "10.0.0.9", 3000, 1000); /* an earlier end never shortens it */
    CU_ASSERT_EQUAL(auth_lockout_check(l, "10.0.0.9", 2000), 4000);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "10.0.0.9", 6000), 0);
    auth_lockout_lock(l, "10.0.0.9", 500, 1000); /* already over: nothing */
    CU_ASSERT_EQUAL(auth_lockout_check(l, "10.0.0.10", 1000), 0);
    auth_lockout_free(l);
}

static void test_unlock_and_list(void)
{
    auth_lockout_t *l = auth_lockout_new(100);
    auth_lockout_info_t v[8];
    size_t n;

    CU_ASSERT_FALSE(auth_lockout_unlock(l, "198.51.100.1"));
    for (int i = 0; i < 3; i++)
        auth_lockout_fail(l, "198.51.100.1", &POLICY, 1000);
    auth_lockout_fail(l, "198.51.100.2", &POLICY, 1000); /* failures, not locked */
    auth_lockout_lock(l, "198.51.100.3", 50000, 1000);
    n = auth_lockout_locked(l, 1000, v, 8);
    CU_ASSERT_EQUAL(n, 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].key, "198.51.100.1") == 0) {
            CU_ASSERT_EQUAL(v[i].level, 1);
            CU_ASSERT_EQUAL(v[i].until_ms, 2000);
        } else {
            CU_ASSERT_STRING_EQUAL(v[i].key, "198.51.100.3");
            CU_ASSERT_EQUAL(v[i].until_ms, 50000);
        }
    }
    CU_ASSERT_EQUAL(auth_lockout_locked(l, 1000, v, 1), 1); /* bounded by max */
    CU_ASSERT_EQUAL(auth_lockout_locked(l, 2000, v, 8), 1); /* the first one ended */
    CU_ASSERT_TRUE(auth_lockout_unlock(l, "198.51.100.1"));
    CU_ASSERT_EQUAL(auth_lockout_check(l, "198.51.100.1", 1500), 0);
    /* lifted: failures and level start afresh (one failure locks no more) */
    auth_lockout_fail(l, "198.51.100.1", &POLICY, 1600);
    CU_ASSERT_EQUAL(auth_lockout_check(l, "198.51.100.1", 1600), 0);
    CU_ASSERT_FALSE(auth_lockout_unlock(NULL, "x"));
    CU_ASSERT_EQUAL(auth_lockout_locked(NULL, 0, v, 8), 0);
    auth_lockout_free(l);
}

static const unit_test_t tests[] = {
    {"threshold locks, lock runs out", test_threshold},
    {"max_failures 1", test_one_failure_locks},
    {"window expiry resets the count", test_window_expiry},
    {"backoff doubles up to the cap", test_doubling_and_cap},
    {"backoff shift never overflows", test_shift_overflow},
    {"success clears failures and level", test_success_clears},
    {"max_failures 0 disables", test_disabled},
    {"idle keys are forgotten", test_idle_forgotten},
    {"10000 keys stay within max_keys", test_many_keys_bounded},
    {"eviction spares a locked key", test_eviction_prefers_unlocked},
    {"long keys stored apart", test_long_keys},
    {"NULL arguments, max_keys 0", test_null_args},
    {"4 threads fail one key", test_threads_same_key},
    {"lock decided elsewhere", test_remote_lock},
    {"unlock and the list of locked keys", test_unlock_and_list},
    {NULL, NULL},
};

int test_auth_lockout_add(void)
{
    return unit_add_suite("auth_lockout", tests);
}
