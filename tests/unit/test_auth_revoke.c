/* test_auth_revoke.c — jti and subject revocations, expiry, bounds, input
 * validation, readers alongside a writer. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tollgate/auth_revoke.h"
#include "unit.h"

static void test_jti_until_exp(void)
{
    auth_revoke_t *r = auth_revoke_new(100);

    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_FALSE(auth_revoke_check(r, "t1", NULL, NULL, 0, 1000));
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "t1", 2000, 1000), 0);
    CU_ASSERT_TRUE(auth_revoke_check(r, "t1", NULL, NULL, 0, 1000));
    CU_ASSERT_TRUE(auth_revoke_check(r, "t1", NULL, "someone", 900, 1999));
    CU_ASSERT_FALSE(auth_revoke_check(r, "t1", NULL, NULL, 0, 2000)); /* expired at exp */
    CU_ASSERT_FALSE(auth_revoke_check(r, "t2", NULL, NULL, 0, 1000));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, NULL, NULL, 0, 1000));
    CU_ASSERT_EQUAL(auth_revoke_count(r), 1);
    auth_revoke_free(r);
}

static void test_jti_expired_purged(void)
{
    auth_revoke_t *r = auth_revoke_new(100);
    char jti[32];
    int i;

    for (i = 0; i < 50; i++) {
        snprintf(jti, sizeof(jti), "old-%d", i);
        CU_ASSERT_EQUAL(auth_revoke_jti(r, jti, 1100 + i, 1000), 0);
    }
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "late", 5000, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "u", 900, 0), 0);
    CU_ASSERT_EQUAL(auth_revoke_count(r), 52);
    /* a write at 1125 drops the 26 that have expired by then (exp <= now) */
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "new", 3000, 1125), 0);
    CU_ASSERT_EQUAL(auth_revoke_count(r), 27);
    CU_ASSERT_FALSE(auth_revoke_get(r, "old-25", 1000, NULL));
    CU_ASSERT_TRUE(auth_revoke_get(r, "old-26", 1000, NULL));
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "newer", 3000, 2000), 0);
    CU_ASSERT_EQUAL(auth_revoke_count(r), 4); /* late, u, new, newer */
    auth_revoke_free(r);
}

static void test_jti_again(void)
{
    auth_revoke_t *r = auth_revoke_new(100);
    int64_t exp = 0;

    CU_ASSERT_EQUAL(auth_revoke_jti(r, "t", 2000, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "t", 3000, 1000), 0); /* extends */
    CU_ASSERT_TRUE(auth_revoke_get(r, "t", 1000, &exp));
    CU_ASSERT_EQUAL(exp, 3000);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "t", 1500, 1000), 0); /* an earlier exp is ignored */
    CU_ASSERT_TRUE(auth_revoke_get(r, "t", 1000, &exp));
    CU_ASSERT_EQUAL(exp, 3000);
    CU_ASSERT_EQUAL(auth_revoke_count(r), 1);
    auth_revoke_free(r);
}

static void test_subject_boundary(void)
{
    auth_revoke_t *r = auth_revoke_new(100);

    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "alice", 500, 0), 0);
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, NULL, "alice", 499, 10000));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, NULL, "alice", 500, 10000)); /* iat == before */
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, NULL, "alice", 501, 10000));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, NULL, "bob", 1, 10000));
    CU_ASSERT_TRUE(auth_revoke_check(r, "unrelated-jti", NULL, "alice", 1, 10000));
    CU_ASSERT_FALSE(auth_revoke_get(r, "alice", 0, NULL)); /* subjects are not jtis */
    auth_revoke_free(r);
}

static void test_subject_larger_before_wins(void)
{
    auth_revoke_t *r = auth_revoke_new(100);

    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "alice", 500, 0), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "alice", 700, 0), 0);
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, NULL, "alice", 600, 0));
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "alice", 600, 0), 0); /* ignored */
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, NULL, "alice", 650, 0));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, NULL, "alice", 700, 0));
    CU_ASSERT_EQUAL(auth_revoke_count(r), 1);
    auth_revoke_free(r);
}

static void test_get(void)
{
    auth_revoke_t *r = auth_revoke_new(100);
    int64_t exp = -1;

    CU_ASSERT_FALSE(auth_revoke_get(r, "t", 1000, &exp));
    CU_ASSERT_EQUAL(exp, -1); /* untouched */
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "t", 1700000000, 1600000000), 0);
    CU_ASSERT_TRUE(auth_revoke_get(r, "t", 1600000000, &exp));
    CU_ASSERT_EQUAL(exp, 1700000000);
    CU_ASSERT_TRUE(auth_revoke_get(r, "t", 1600000000, NULL));
    CU_ASSERT_FALSE(auth_revoke_get(r, "t", 1700000000, &exp));
    CU_ASSERT_FALSE(auth_revoke_get(r, NULL, 0, &exp));
    CU_ASSERT_FALSE(auth_revoke_get(r, "", 0, &exp));
    auth_revoke_free(r);
}

static void test_count(void)
{
    auth_revoke_t *r = auth_revoke_new(100);

    CU_ASSERT_EQUAL(auth_revoke_count(r), 0);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "a", 2000, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "b", 2000, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "a", 2000, 0), 0); /* own namespace */
    CU_ASSERT_EQUAL(auth_revoke_count(r), 3);
    CU_ASSERT_EQUAL(auth_revoke_count(NULL), 0);
    auth_revoke_free(r);
}

static void test_bound_evicts_earliest_exp(void)
{
    auth_revoke_t *r = auth_revoke_new(3);

    CU_ASSERT_EQUAL(auth_revoke_jti(r, "e5", 5000, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "e3", 3000, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "e4", 4000, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "e6", 6000, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_count(r), 3);
    CU_ASSERT_FALSE(auth_revoke_get(r, "e3", 1000, NULL));
    CU_ASSERT_TRUE(auth_revoke_get(r, "e4", 1000, NULL));
    CU_ASSERT_TRUE(auth_revoke_get(r, "e5", 1000, NULL));
    CU_ASSERT_TRUE(auth_revoke_get(r, "e6", 1000, NULL));
    /* a subject also pushes out the jti that expires first */
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "s1", 100, 0), 0);
    CU_ASSERT_EQUAL(auth_revoke_count(r), 3);
    CU_ASSERT_FALSE(auth_revoke_get(r, "e4", 1000, NULL));
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, NULL, "s1", 99, 1000));
    auth_revoke_free(r);
}

static void test_bound_only_subjects(void)
{
    auth_revoke_t *r = auth_revoke_new(2);

    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "s700", 700, 0), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "s500", 500, 0), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "s900", 900, 0), 0);
    CU_ASSERT_EQUAL(auth_revoke_count(r), 2);
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, NULL, "s500", 1, 0));
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, NULL, "s700", 1, 0));
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, NULL, "s900", 1, 0));
    auth_revoke_free(r);
}

/* Thousands of entries through a small set: heap and tables stay consistent. */
static void test_bound_many(void)
{
    auth_revoke_t *r = auth_revoke_new(64);
    char id[32];
    int i, held = 0;

    for (i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "j%d", i);
        /* exps out of order, some already gone by the later writes */
        CU_ASSERT_EQUAL(auth_revoke_jti(r, id, 1000 + (i * 7919) % 4000 + i / 2, i / 2), 0);
        if (i % 10 == 0) {
            snprintf(id, sizeof(id), "s%d", i);
            CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, id, 1 + i, 0), 0);
        }
        CU_ASSERT(auth_revoke_count(r) <= 64);
    }
    for (i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "j%d", i);
        held += auth_revoke_get(r, id, 0, NULL);
    }
    CU_ASSERT(held > 0 && held <= 64);
    auth_revoke_free(r);
}

static void test_bad_input(void)
{
    auth_revoke_t *r = auth_revoke_new(100);
    char id[AUTH_REVOKE_MAX_ID + 2];

    CU_ASSERT_EQUAL(auth_revoke_jti(r, NULL, 2000, 1000), -1);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "", 2000, 1000), -1);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "a\nb", 2000, 1000), -1);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "a\x7f", 2000, 1000), -1);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "\t", 2000, 1000), -1);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "t", 1000, 1000), -1); /* exp == now */
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "t", 999, 1000), -1);
    CU_ASSERT_EQUAL(auth_revoke_jti(NULL, "t", 2000, 1000), -1);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, NULL, 10, 0), -1);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "", 10, 0), -1);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "a\rb", 10, 0), -1);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "u", 0, 0), -1);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "u", -5, 0), -1);
    memset(id, 'x', AUTH_REVOKE_MAX_ID + 1);
    id[AUTH_REVOKE_MAX_ID + 1] = '\0';
    CU_ASSERT_EQUAL(auth_revoke_jti(r, id, 2000, 1000), -1);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, id, 10, 0), -1);
    CU_ASSERT_FALSE(auth_revoke_check(r, id, NULL, id, 0, 1000));
    CU_ASSERT_EQUAL(auth_revoke_count(r), 0);
    id[AUTH_REVOKE_MAX_ID] = '\0'; /* exactly the limit */
    CU_ASSERT_EQUAL(auth_revoke_jti(r, id, 2000, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, id, 10, 0), 0);
    CU_ASSERT_TRUE(auth_revoke_check(r, id, NULL, NULL, 0, 1000));
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "caf\xc3\xa9", 2000, 1000), 0); /* UTF-8 is fine */
    CU_ASSERT_EQUAL(auth_revoke_count(r), 3);
    CU_ASSERT_FALSE(auth_revoke_check(NULL, "t", NULL, "u", 0, 0));
    auth_revoke_free(r);
    auth_revoke_free(NULL);
}

typedef struct reader {
    auth_revoke_t *r;
    unsigned hits;
} reader_t;

static void *reader_run(void *arg)
{
    reader_t *rd = arg;
    int i;

    for (i = 0; i < 20000; i++)
        rd->hits += auth_revoke_check(rd->r, "hot", NULL, "alice", 1, 1000);
    return NULL;
}

/* Readers on the request path alongside a writer: no race (TSan/ASan-clean). */
static void test_readers_and_writer(void)
{
    reader_t rd[3];
    pthread_t t[3];
    char id[32];
    int i;

    rd[0].r = auth_revoke_new(128);
    CU_ASSERT_EQUAL(auth_revoke_jti(rd[0].r, "hot", 1 << 30, 1000), 0);
    for (i = 0; i < 3; i++) {
        rd[i].r = rd[0].r;
        rd[i].hits = 0;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, reader_run, &rd[i]), 0);
    }
    for (i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "w%d", i);
        auth_revoke_jti(rd[0].r, id, 2000 + i, 1000);
    }
    for (i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        /* "hot" expires last, so it is never the one evicted */
        CU_ASSERT_EQUAL(rd[i].hits, 20000);
    }
    auth_revoke_free(rd[0].r);
}

static const unit_test_t tests[] = {
    {"jti revoked until exp", test_jti_until_exp},
    {"expired jti purged on write", test_jti_expired_purged},
    {"jti revoked again", test_jti_again},
    {"subject: iat < before, iat == before is not", test_subject_boundary},
    {"subject: larger before replaces", test_subject_larger_before_wins},
    {"get", test_get},
    {"count", test_count},
    {"bound evicts the earliest exp", test_bound_evicts_earliest_exp},
    {"bound with only subjects", test_bound_only_subjects},
    {"5000 entries through 64", test_bound_many},
    {"bad input", test_bad_input},
    {"readers alongside a writer", test_readers_and_writer},
    {NULL, NULL},
};

int test_auth_revoke_add(void)
{
    return unit_add_suite("auth_revoke", tests);
}
