/* test_decide.c — decide.h stays a door no transport type crosses.
 *
 * Included first and alone, it must compile without libevent (checked by
 * the preprocessor below: none of its headers' guards may be defined), and
 * its code — comments left out — names no evhttp, evbuffer, bufferevent,
 * evkeyval or event2 type.
 */
#include "tollgate/decide.h"

#if defined(EVENT2_EVENT_H_INCLUDED_) || defined(EVENT2_HTTP_H_INCLUDED_) ||               \
    defined(EVENT2_BUFFER_H_INCLUDED_) || defined(EVENT2_UTIL_H_INCLUDED_)
#error "decide.h pulls in libevent"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/rl_policy.h"
#include "unit.h"

/* The header's text with its comments blanked out; NULL on error. */
static char *code_of(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = calloc(1, (size_t)n + 1)) != NULL &&
        fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    for (char *p = buf; p != NULL && (p = strstr(p, "/*")) != NULL;) {
        char *end = strstr(p + 2, "*/");

        end = end != NULL ? end + 2 : p + strlen(p);
        memset(p, ' ', (size_t)(end - p));
        p = end;
    }
    return buf;
}

static void test_no_transport_names(void)
{
    static const char *const banned[] = {
        "event2", "evhttp", "evbuffer", "bufferevent", "evkeyval", "event_base", "nghttp2",
    };
    char *code = code_of("../../include/tollgate/decide.h");

    CU_ASSERT_PTR_NOT_NULL_FATAL(code);
    CU_ASSERT_PTR_NOT_NULL(strstr(code, "dec_verdict_t")); /* the code is there */
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (strstr(code, banned[i]) != NULL)
            CU_FAIL(banned[i]);
    free(code);
}

/* A verdict holds what the evhttp adapter wrote before: the longest Allow
 * list and a Retry-After fit a copied value, a preflight's headers fit. */
static void test_verdict_room(void)
{
    static const char all[] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE";
    dec_verdict_t v;

    /* rl_method_list cuts a list that does not fit: every method must. */
    CU_ASSERT_EQUAL(rl_method_list(~0u, v.vals[0], sizeof v.vals[0]), strlen(all));
    CU_ASSERT_STRING_EQUAL(v.vals[0], all);
    CU_ASSERT(sizeof v.limits.retry >= sizeof "18446744073709551615");
    CU_ASSERT(DEC_VERDICT_HDRS >= 3);
}

int test_decide_add(void)
{
    static const unit_test_t tests[] = {
        {"decide.h names no transport type", test_no_transport_names},
        {"a verdict has room for the adapter's headers", test_verdict_room},
        {NULL, NULL},
    };

    return unit_add_suite("decide", tests);
}
