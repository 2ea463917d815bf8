/* test_util_fmt.c — integer formatting agrees with printf. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tollgate/util_fmt.h"
#include "unit.h"

static void test_u64_like_printf(void)
{
    const uint64_t v[] = {
        0, 1, 9, 10, 99, 100, 12345, 4294967295u, 4294967296u, UINT64_MAX / 10, UINT64_MAX};
    char a[UTIL_FMT_U64_MAX], b[32];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = util_fmt_u64(a, v[i]);

        snprintf(b, sizeof(b), "%" PRIu64, v[i]);
        CU_ASSERT_STRING_EQUAL(a, b);
        CU_ASSERT_EQUAL(n, strlen(b));
    }
}

static void test_i64_like_printf(void)
{
    const int64_t v[] = {0, -1, 1, -10, 123, -123456789, INT64_MAX, INT64_MIN};
    char a[UTIL_FMT_U64_MAX + 1], b[32];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = util_fmt_i64(a, v[i]);

        snprintf(b, sizeof(b), "%" PRId64, v[i]);
        CU_ASSERT_STRING_EQUAL(a, b);
        CU_ASSERT_EQUAL(n, strlen(b));
    }
}

int test_util_fmt_add(void)
{
    static const unit_test_t tests[] = {
        {"u64 like printf", test_u64_like_printf},
        {"i64 like printf, INT64_MIN included", test_i64_like_printf},
        {NULL, NULL},
    };

    return unit_add_suite("util_fmt", tests);
}
