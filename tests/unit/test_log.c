/* test_log.c — log_ratelimit_take: one line per interval, the rest counted. */
#include <pthread.h>

#include "tollgate/log.h"
#include "unit.h"

static void test_ratelimit_interval(void)
{
    log_ratelimit_t rl = {0};
    uint64_t held = 99;

    CU_ASSERT_TRUE(log_ratelimit_take(&rl, 1000, 10000, &held));
    CU_ASSERT_EQUAL(held, 0);
    for (int i = 0; i < 49; i++) {
        CU_ASSERT_FALSE(log_ratelimit_take(&rl, 1000 + (uint64_t)i * 100, 10000, &held));
        CU_ASSERT_EQUAL(held, 0);
    }
    CU_ASSERT_FALSE(log_ratelimit_take(&rl, 10999, 10000, &held)); /* 1 ms early */
    /* the next line says how many were held back: 49 + 1 */
    CU_ASSERT_TRUE(log_ratelimit_take(&rl, 11000, 10000, &held));
    CU_ASSERT_EQUAL(held, 50);
    /* a quiet spell: nothing held back, and the next line is due at once */
    CU_ASSERT_TRUE(log_ratelimit_take(&rl, 50000, 10000, &held));
    CU_ASSERT_EQUAL(held, 0);
}

typedef struct {
    log_ratelimit_t *rl;
    int lines;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    uint64_t held;

    for (int i = 0; i < 10000; i++)
        r->lines += log_ratelimit_take(r->rl, 5000, 10000, &held);
    return NULL;
}

/* Threads at one instant: exactly one line; every other call is counted. */
static void test_ratelimit_threads(void)
{
    log_ratelimit_t rl = {0};
    racer_t r[4];
    pthread_t t[4];
    uint64_t held;
    int lines = 0;

    for (int i = 0; i < 4; i++) {
        r[i] = (racer_t){&rl, 0};
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, race, &r[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        lines += r[i].lines;
    }
    CU_ASSERT_EQUAL(lines, 1);
    CU_ASSERT_TRUE(log_ratelimit_take(&rl, 15000, 10000, &held));
    CU_ASSERT_EQUAL(held, 39999);
}

int test_log_add(void)
{
    static const unit_test_t tests[] = {
        {"ratelimit interval and count", test_ratelimit_interval},
        {"ratelimit across threads", test_ratelimit_threads},
        {NULL, NULL},
    };

    return unit_add_suite("log", tests);
}
