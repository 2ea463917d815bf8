/* test_auth_jwks_fetch.c — when a worker meeting an unknown kid waits for a
 * JWKS fetch.  The source points at a closed loopback port, so each fetch
 * ends at once (fetch_error) and bumps the generation: what matters here is
 * the generation and the min_refresh rule, not the keys. */
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "tollgate/auth_jwks_fetch.h"
#include "unit.h"

/* Poll `s` until its generation reaches `gen`, at most 10 s. */
static bool wait_gen(auth_jwks_src_t *s, uint64_t gen)
{
    const struct timespec tick = {0, 5 * 1000000L};

    for (int i = 0; i < 2000; i++) {
        if (auth_jwks_src_gen(s) >= gen)
            return true;
        nanosleep(&tick, NULL);
    }
    return false;
}

/* A fetch that ends between a worker taking its set and asking for a
 * refetch must not leave the token decided with the old set: the worker is
 * told to look again (integration test_idp's rotation failed that way). */
static void test_fetch_ended_since_the_callers_set(void)
{
    auth_jwks_src_opts_t o = {
        .name = "unit-gen",
        .jwks_uri = "https://127.0.0.1:1/jwks",
        .allowed = 1u << AUTH_ALG_RS256,
        .refresh_s = 3600,
        .min_refresh_s = 3600,
        .timeout_s = 2,
    };
    char err[128] = "";
    auth_jwks_src_t *s = auth_jwks_src_get(&o);

    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    /* no fetch thread (--check-config): nothing to wait for */
    CU_ASSERT_FALSE(auth_jwks_src_refetch(s, 0));
    CU_ASSERT_FALSE(auth_jwks_src_busy(s, 0));
    CU_ASSERT_EQUAL_FATAL(auth_jwks_fetch_start(NULL, NULL, err, sizeof err), 0);
    CU_ASSERT_FATAL(wait_gen(s, 1));
    CU_ASSERT_EQUAL(auth_jwks_src_gen(s), 1);
    /* the caller's set (generation 0) predates the fetch that ended */
    CU_ASSERT_TRUE(auth_jwks_src_refetch(s, 0));
    CU_ASSERT_TRUE(auth_jwks_src_busy(s, 0));
    /* with the current set, a fetch started less than min_refresh ago: now */
    CU_ASSERT_FALSE(auth_jwks_src_refetch(s, 1));
    CU_ASSERT_FALSE(auth_jwks_src_busy(s, 1));
    /* and the refused refetch started none */
    CU_ASSERT_EQUAL(auth_jwks_src_gen(s), 1);
    auth_jwks_fetch_stop();
    auth_jwks_src_unref(s);
}

static const unit_test_t tests[] = {
    {"refetch: a fetch ended since the caller's set",
     test_fetch_ended_since_the_callers_set},
    {NULL, NULL},
};

int test_auth_jwks_fetch_add(void)
{
    return unit_add_suite("auth_jwks_fetch", tests);
}
