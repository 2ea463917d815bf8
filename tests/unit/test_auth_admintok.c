/* test_auth_admintok.c — the admin token store: lines, ids, scopes, matching. */
#include <string.h>

#include "tollgate/auth_admintok.h"
#include "unit.h"

static int line(auth_admintok_t *t, const char *l, char *err, size_t errlen)
{
    return auth_admintok_add_line(t, l, strlen(l), "f:1", err, errlen);
}

static void test_lines(void)
{
    auth_admintok_t *t = auth_admintok_new();
    char err[256];
    const auth_admin_id_t *e;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(line(t, "# a comment", err, sizeof err), 0);
    CU_ASSERT_EQUAL(line(t, "   \t", err, sizeof err), 0);
    CU_ASSERT_EQUAL(line(t, "dash read tok-read\r", err, sizeof err), 0);
    CU_ASSERT_EQUAL(line(t, "  ci.deploy_2\twrite   tok-write  ", err, sizeof err), 0);
    CU_ASSERT_EQUAL(auth_admintok_count(t), 2);
    e = auth_admintok_match(t, "tok-read", 8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->id, "dash");
    CU_ASSERT_EQUAL(e->scope, AUTH_ADMIN_READ);
    e = auth_admintok_match(t, "tok-write", 9);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->id, "ci.deploy_2");
    CU_ASSERT_EQUAL(e->scope, AUTH_ADMIN_WRITE);
    /* near misses */
    CU_ASSERT_PTR_NULL(auth_admintok_match(t, "tok-rea", 7));
    CU_ASSERT_PTR_NULL(auth_admintok_match(t, "tok-readx", 9));
    CU_ASSERT_PTR_NULL(auth_admintok_match(t, "TOK-READ", 8));
    CU_ASSERT_PTR_NULL(auth_admintok_match(t, "", 0));
    CU_ASSERT_PTR_NULL(auth_admintok_match(NULL, "tok-read", 8));
    auth_admintok_free(t);
}

static void test_refused(void)
{
    static const struct {
        const char *line, *msg;
    } bad[] = {
        {"only-id", "f:1: expected ID SCOPE TOKEN"},
        {"id read", "f:1: expected ID SCOPE TOKEN"},
        {"id read tok extra", "f:1: expected ID SCOPE TOKEN"},
        {"id admin secret-tok", "f:1: the scope is read or write"},
        {"id READ secret-tok", "f:1: the scope is read or write"},
        {"b\"d read secret-tok", "f:1: an admin token id is 1..64 of [A-Za-z0-9._-]"},
        {"x\xc3\xa9 read secret-tok", "f:1: an admin token id is 1..64 of [A-Za-z0-9._-]"},
        {"dup read other-tok", "f:1: admin token id dup is given twice"},
        {"other read dup-secret-tok", "f:1: admin token other has the same token as dup"},
        {"id read secret\x7ftok", "f:1: admin token id: the token must be 1..512 visible ASCII "
                                  "bytes"},
    };
    auth_admintok_t *t = auth_admintok_new();
    char err[256], longid[80];

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(line(t, "dup write dup-secret-tok", err, sizeof err), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(line(t, bad[i].line, err, sizeof err), -1);
        CU_ASSERT_STRING_EQUAL(err, bad[i].msg);
        CU_ASSERT_PTR_NULL(strstr(err, "secret")); /* never the token */
        CU_ASSERT_EQUAL(auth_admintok_count(t), 1);
    }
    memset(longid, 'a', 65);
    memcpy(longid + 65, " read tok", 10);
    CU_ASSERT_EQUAL(line(t, longid, err, sizeof err), -1);
    CU_ASSERT_EQUAL(auth_admintok_add_line(t, "a read b\0c", 10, "f:1", err, sizeof err), -1);
    CU_ASSERT_EQUAL(auth_admintok_count(t), 1);
    auth_admintok_free(t);
}

/* The fingerprint follows ids, scopes and tokens. */
static void test_fingerprint(void)
{
    auth_admintok_t *a = auth_admintok_new(), *b = auth_admintok_new();
    unsigned char fa[32], fb[32];
    char err[256];

    CU_ASSERT_EQUAL(line(a, "x read tok", err, sizeof err), 0);
    CU_ASSERT_EQUAL(line(b, "x write tok", err, sizeof err), 0);
    CU_ASSERT_EQUAL(auth_admintok_fingerprint(a, fa), 0);
    CU_ASSERT_EQUAL(auth_admintok_fingerprint(b, fb), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(fa, fb, 32), 0);
    auth_admintok_free(a);
    auth_admintok_free(b);
    auth_admintok_free(NULL);
}

int test_auth_admintok_add(void)
{
    static const unit_test_t tests[] = {
        {"lines and matching", test_lines},
        {"refused lines add nothing, never echo", test_refused},
        {"fingerprint", test_fingerprint},
        {NULL, NULL},
    };

    return unit_add_suite("auth_admintok", tests);
}
