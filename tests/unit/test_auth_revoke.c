/* test_auth_revoke.c — jti and subject revocations, expiry, bounds, input
 * validation, readers alongside a writer. */
#include <pthread.h>
#include <stdint.h>
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

/* A subject of one issuer refuses only that issuer's tokens; the
 * every-issuer entry refuses them all, a token without iss included. */
static void test_scoped_vs_unscoped(void)
{
    auth_revoke_t *r = auth_revoke_new(100);
    int64_t b = 0;

    CU_ASSERT_EQUAL(auth_revoke_subject(r, "https://idp", "erin", 500, 0), 0);
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, "https://idp", "erin", 499, 1000));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, "https://idp", "erin", 500, 1000));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, "hs-issuer", "erin", 1, 1000));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, NULL, "erin", 1, 1000));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, "https://idp", "erin2", 1, 1000));
    /* no collision through the separator: a claim holding it never matches */
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, "https://idp\x1f" "erin", "", 1, 1000));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, "https:", "//idp\x1f" "erin", 1, 1000));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, NULL, "https://idp\x1f" "erin", 1, 1000));
    CU_ASSERT_TRUE(auth_revoke_subject_get(r, "https://idp", "erin", 1000, &b));
    CU_ASSERT_EQUAL(b, 500);
    CU_ASSERT_FALSE(auth_revoke_subject_get(r, NULL, "erin", 1000, &b));
    /* every issuer */
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "erin", 300, 0), 0);
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, "hs-issuer", "erin", 299, 1000));
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, NULL, "erin", 299, 1000));
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, "https://idp", "erin", 499, 1000)); /* scoped */
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, "hs-issuer", "erin", 300, 1000));
    CU_ASSERT_EQUAL(auth_revoke_count(r), 2);
    /* bad iss */
    CU_ASSERT_EQUAL(auth_revoke_subject(r, "", "erin", 300, 0), -1);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, "a\x1f" "b", "erin", 300, 0), -1);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, "ok", "a\x1f" "b", 300, 0), -1);
    CU_ASSERT_EQUAL(auth_revoke_count(r), 2);
    auth_revoke_free(r);
}

static void test_undo(void)
{
    auth_revoke_t *r = auth_revoke_new(100);

    CU_ASSERT_EQUAL(auth_revoke_jti(r, "t", 2000, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "u", 500, 0), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, "idp", "u", 600, 0), 0);
    CU_ASSERT_TRUE(auth_revoke_unjti(r, "t"));
    CU_ASSERT_FALSE(auth_revoke_unjti(r, "t"));
    CU_ASSERT_FALSE(auth_revoke_check(r, "t", NULL, NULL, 0, 1000));
    CU_ASSERT_FALSE(auth_revoke_unsubject(r, "other", "u"));
    CU_ASSERT_TRUE(auth_revoke_unsubject(r, NULL, "u")); /* only the every-issuer one */
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, "x", "u", 1, 1000));
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, "idp", "u", 1, 1000));
    CU_ASSERT_TRUE(auth_revoke_unsubject(r, "idp", "u"));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, "idp", "u", 1, 1000));
    CU_ASSERT_EQUAL(auth_revoke_count(r), 0);
    CU_ASSERT_FALSE(auth_revoke_unjti(r, NULL));
    CU_ASSERT_FALSE(auth_revoke_unsubject(r, NULL, NULL));
    CU_ASSERT_FALSE(auth_revoke_unjti(NULL, "t"));
    /* the heaps stay consistent after removals from the middle */
    for (int i = 0; i < 50; i++) {
        char id[16];

        snprintf(id, sizeof id, "j%d", i);
        CU_ASSERT_EQUAL(auth_revoke_jti(r, id, 2000 + (i * 7) % 50, 1000), 0);
        snprintf(id, sizeof id, "s%d", i);
        CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, id, 100 + (i * 11) % 50, 0), 0);
    }
    for (int i = 0; i < 50; i += 3) {
        char id[16];

        snprintf(id, sizeof id, "j%d", i);
        CU_ASSERT_TRUE(auth_revoke_unjti(r, id));
        snprintf(id, sizeof id, "s%d", i);
        CU_ASSERT_TRUE(auth_revoke_unsubject(r, NULL, id));
    }
    CU_ASSERT_EQUAL(auth_revoke_count(r), 66);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "late", 9000, 2030), 0); /* purges exp <= 2030 */
    CU_ASSERT_FALSE(auth_revoke_get(r, "j1", 1000, NULL));      /* 2007 */
    CU_ASSERT_TRUE(auth_revoke_get(r, "j5", 1000, NULL));       /* 2035 */
    auth_revoke_free(r);
}

/* Subject revocations expire at before + lifetime; 0 never. */
static void test_subject_expiry(void)
{
    auth_revoke_t *r = auth_revoke_new(100);
    int64_t b = 0;

    CU_ASSERT_EQUAL(auth_revoke_lifetime(r), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "old", 1000, 5000000), 0); /* never */
    auth_revoke_set_lifetime(r, 3600);
    CU_ASSERT_EQUAL(auth_revoke_lifetime(r), 3600);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, "idp", "u", 10000, 10000), 0);
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, "idp", "u", 9999, 13599));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, "idp", "u", 9999, 13600)); /* at expiry */
    CU_ASSERT_TRUE(auth_revoke_subject_get(r, "idp", "u", 13599, &b));
    CU_ASSERT_FALSE(auth_revoke_subject_get(r, "idp", "u", 13600, &b));
    CU_ASSERT_EQUAL(auth_revoke_count(r), 1); /* the write at 10000 dropped "old" */
    /* already expired when written: refused; the write at 13600 still drops
     * the expired ones */
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "v", 10000, 13600), -1);
    CU_ASSERT_EQUAL(auth_revoke_count(r), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "w", 13000, 13600), 0);
    CU_ASSERT_EQUAL(auth_revoke_count(r), 1);
    /* times past the last one held are refused: nothing can overflow (found
     * by fuzz_revoc: a channel message "i 9223372036854775807 ...") */
    CU_ASSERT_EQUAL(auth_revoke_subject(r, "i", "x", INT64_MAX, 13600), -1);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, "i", "x", AUTH_REVOKE_MAX_TIME + 1, 13600), -1);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, "i", "x", AUTH_REVOKE_MAX_TIME, 13600), 0);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "j", INT64_MAX, 13600), -1);
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, "i", "x", 1, INT64_MIN / 2));
    auth_revoke_set_lifetime(r, INT64_MAX);
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, "i", "x", 1, INT64_MAX)); /* expired */
    CU_ASSERT_TRUE(auth_revoke_unsubject(r, "i", "x"));
    auth_revoke_set_lifetime(r, 0);
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, "any", "w", 1, 1LL << 40));
    auth_revoke_free(r);
}

/* Listing: (t, iss, id) order, pages by the last entry, expired left out. */
static void test_list_pages(void)
{
    auth_revoke_t *r = auth_revoke_new(1000);
    auth_revoke_item_t out[7], after;
    size_t n, total = 0, pages = 0;
    char id[16];
    int64_t last_t = 0;

    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "j%02d", i);
        CU_ASSERT_EQUAL(auth_revoke_jti(r, id, 2000 + i / 3, 1000), 0); /* ties */
    }
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "soon", 1001, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "s", 700, 0), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, "idp", "s", 700, 0), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, "a-idp", "s", 700, 0), 0);
    /* jtis only, and not "soon" at 1001 */
    n = auth_revoke_list(r, AUTH_REVOKE_JTI, NULL, out, 7, 1001);
    while (n > 0) {
        pages++;
        for (size_t i = 0; i < n; i++) {
            CU_ASSERT_FALSE(out[i].scoped);
            CU_ASSERT_EQUAL(out[i].id[0], 'j');
            CU_ASSERT_TRUE(out[i].t >= last_t);
            last_t = out[i].t;
            snprintf(id, sizeof id, "j%02zu", total + i);
            CU_ASSERT_STRING_EQUAL(out[i].id, id); /* ties in id order */
        }
        total += n;
        after = out[n - 1];
        n = auth_revoke_list(r, AUTH_REVOKE_JTI, &after, out, 7, 1001);
    }
    CU_ASSERT_EQUAL(total, 20);
    CU_ASSERT_EQUAL(pages, 3);
    /* subjects: every issuer ("" iss) first, then by iss */
    n = auth_revoke_list(r, AUTH_REVOKE_SUBJECT, NULL, out, 7, 1001);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_FALSE(out[0].scoped);
    CU_ASSERT_STRING_EQUAL(out[0].iss, "");
    CU_ASSERT_STRING_EQUAL(out[1].iss, "a-idp");
    CU_ASSERT_STRING_EQUAL(out[2].iss, "idp");
    CU_ASSERT_TRUE(out[2].scoped);
    CU_ASSERT_STRING_EQUAL(out[2].id, "s");
    after = out[1];
    CU_ASSERT_EQUAL(auth_revoke_list(r, AUTH_REVOKE_SUBJECT, &after, out, 7, 1001), 1);
    /* expired ones left out; max 0 and NULL are nothing */
    auth_revoke_set_lifetime(r, 100);
    CU_ASSERT_EQUAL(auth_revoke_list(r, AUTH_REVOKE_SUBJECT, NULL, out, 7, 800), 0);
    CU_ASSERT_EQUAL(auth_revoke_list(r, AUTH_REVOKE_SUBJECT, NULL, out, 0, 0), 0);
    CU_ASSERT_EQUAL(auth_revoke_list(NULL, AUTH_REVOKE_JTI, NULL, out, 7, 0), 0);
    auth_revoke_free(r);
}

/* An authoritative reload: what was not written again is forgotten. */
static void test_sync_replaces(void)
{
    auth_revoke_t *r = auth_revoke_new(100);
    uint64_t g;

    CU_ASSERT_EQUAL(auth_revoke_jti(r, "kept", 2000, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "undone", 2000, 1000), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, "idp", "undone", 500, 0), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "kept", 500, 0), 0);
    g = auth_revoke_sync_begin(r);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "kept", 1500, 1000), 0); /* an earlier exp: kept */
    CU_ASSERT_EQUAL(auth_revoke_subject(r, NULL, "kept", 500, 0), 0);
    CU_ASSERT_EQUAL(auth_revoke_jti(r, "new", 3000, 1000), 0); /* a message meanwhile */
    auth_revoke_sync_end(r, g);
    CU_ASSERT_EQUAL(auth_revoke_count(r), 3);
    CU_ASSERT_TRUE(auth_revoke_get(r, "kept", 1000, NULL));
    CU_ASSERT_TRUE(auth_revoke_get(r, "new", 1000, NULL));
    CU_ASSERT_FALSE(auth_revoke_get(r, "undone", 1000, NULL));
    CU_ASSERT_FALSE(auth_revoke_check(r, NULL, "idp", "undone", 1, 1000));
    CU_ASSERT_TRUE(auth_revoke_check(r, NULL, "x", "kept", 1, 1000));
    /* an older generation ending late forgets nothing newer */
    auth_revoke_sync_end(r, g - 1);
    CU_ASSERT_EQUAL(auth_revoke_count(r), 3);
    auth_revoke_free(r);
}

static const unit_test_t tests[] = {
    {"subject of one issuer vs of every issuer", test_scoped_vs_unscoped},
    {"undo", test_undo},
    {"subject revocations expire at before + lifetime", test_subject_expiry},
    {"listing pages in order", test_list_pages},
    {"sync replaces the set", test_sync_replaces},
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
