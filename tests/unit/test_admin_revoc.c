/* test_admin_revoc.c — the revocation listing's pure parts (server/admin_revoc.c):
 * the query and its cursors, the subject body's iss, and the Redis index's
 * replies (ZRANGEBYSCORE WITHSCORES, HSCAN) read into pages. */
#include <string.h>

#include <hiredis/hiredis.h>

#include "../../server/srv_admin_req.h"
#include "../../server/srv_admin_revoc.h"
#include "unit.h"

static redisReply *resp(const char *text, size_t len)
{
    redisReader *r = redisReaderCreate();
    void *rep = NULL;

    redisReaderFeed(r, text, len);
    if (redisReaderGetReply(r, &rep) != REDIS_OK)
        rep = NULL;
    redisReaderFree(r);
    return rep;
}

static int query(const char *kind, const char *cursor, const char *limit, bool *subject,
                 srv_revoc_cursor_t *c, unsigned *n)
{
    char err[160];

    return srv_revoc_parse_query(kind, cursor, limit, subject, c, n, err, sizeof err);
}

static void test_query(void)
{
    srv_revoc_cursor_t c;
    unsigned n = 0;
    bool subject = true;
    static const char *const bad_limits[] = {"0", "1001", "-1", "1e3", "", " 5", "5 ",
                                             "99999999999999999999999"};
    static const char *const bad_cursors[] = {
        "", "x", "j", "j5", "j5.", "j.5", "j-5.0", "j253402300800.0", "j5.1000000001",
        "s1", "m", "m0", "m4", "mzz", "m3a3a", "m31",
        "m313a303a78" /* "1:0:x": no separator */, "m313a313a1f78" /* scoped, no iss */};

    CU_ASSERT_EQUAL(query("jti", NULL, NULL, &subject, &c, &n), 0);
    CU_ASSERT_FALSE(subject);
    CU_ASSERT_EQUAL(n, SRV_REVOC_PAGE_DEFAULT);
    CU_ASSERT_EQUAL(c.type, 0);
    CU_ASSERT_EQUAL(query("subject", NULL, "1000", &subject, &c, &n), 0);
    CU_ASSERT_TRUE(subject);
    CU_ASSERT_EQUAL(n, 1000);
    CU_ASSERT_EQUAL(query(NULL, NULL, NULL, &subject, &c, &n), -1);
    CU_ASSERT_EQUAL(query("JTI", NULL, NULL, &subject, &c, &n), -1);
    for (size_t i = 0; i < sizeof bad_limits / sizeof bad_limits[0]; i++)
        CU_ASSERT_EQUAL(query("jti", NULL, bad_limits[i], &subject, &c, &n), -1);
    for (size_t i = 0; i < sizeof bad_cursors / sizeof bad_cursors[0]; i++)
        CU_ASSERT_EQUAL(query("jti", bad_cursors[i], NULL, &subject, &c, &n), -1);
    /* a cursor of the other kind */
    CU_ASSERT_EQUAL(query("jti", "s5.0", NULL, &subject, &c, &n), -1);
    CU_ASSERT_EQUAL(query("subject", "j5.0", NULL, &subject, &c, &n), -1);
    CU_ASSERT_EQUAL(query("subject", "i0.3", NULL, &subject, &c, &n), 0);
    CU_ASSERT_EQUAL(c.type, 'i');
    CU_ASSERT_EQUAL(c.skip, 3);
}

/* Every cursor written reads back the same. */
static void test_cursor_round_trip(void)
{
    srv_revoc_cursor_t in[] = {
        {.type = 'j', .exp = 1796695291, .skip = 7},
        {.type = 's', .scan = 18446744073709551615ull, .skip = 0},
        {.type = 'i', .scan = 0, .skip = 12},
        {.type = 'm', .after = {.t = 1700000000, .scoped = true, .iss = "https://idp", .id = "e r/in"}},
        {.type = 'm', .after = {.t = 1, .scoped = false, .iss = "", .id = "caf\xc3\xa9"}},
    };
    char s[SRV_REVOC_CURSOR_MAX];
    srv_revoc_cursor_t c;
    unsigned n;
    bool subject;

    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        CU_ASSERT_EQUAL_FATAL(srv_revoc_cursor_str(&in[i], s, sizeof s), 0);
        CU_ASSERT_EQUAL_FATAL(
            query(in[i].type == 'j' ? "jti" : "subject", s, NULL, &subject, &c, &n), 0);
        CU_ASSERT_EQUAL(c.type, in[i].type);
        CU_ASSERT_EQUAL(c.exp, in[i].exp);
        CU_ASSERT_EQUAL(c.scan, in[i].scan);
        CU_ASSERT_EQUAL(c.skip, in[i].skip);
        CU_ASSERT_EQUAL(c.after.t, in[i].after.t);
        CU_ASSERT_EQUAL(c.after.scoped, in[i].after.scoped);
        CU_ASSERT_STRING_EQUAL(c.after.iss, in[i].after.iss);
        CU_ASSERT_STRING_EQUAL(c.after.id, in[i].after.id);
    }
    /* a scoped memory cursor is a subject's */
    CU_ASSERT_EQUAL(srv_revoc_cursor_str(&in[3], s, sizeof s), 0);
    CU_ASSERT_EQUAL(query("jti", s, NULL, &subject, &c, &n), -1);
    /* too small a buffer */
    CU_ASSERT_EQUAL(srv_revoc_cursor_str(&in[3], s, 8), -1);
}

static void test_jti_page(void)
{
    static const char text[] = "*6\r\n$2\r\nj1\r\n$3\r\n100\r\n$2\r\nj2\r\n$3\r\n100\r\n"
                               "$2\r\nj3\r\n$3\r\n100\r\n";
    redisReply *rep = resp(text, sizeof text - 1);
    srv_revoc_cursor_t first = {0}, cont = {.type = 'j', .exp = 100, .skip = 4};
    char next[SRV_REVOC_CURSOR_MAX], err[160];
    json_t *a;

    CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
    a = srv_revoc_jti_entries(rep, &first, 3, next, sizeof next, err, sizeof err);
    CU_ASSERT_EQUAL(json_array_size(a), 3);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(a, 2), "jti")),
                           "j3");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(a, 2), "exp")), 100);
    CU_ASSERT_STRING_EQUAL(next, "j100.3"); /* three of exp 100 listed */
    json_decref(a);
    /* a page that went on within one exp adds to its skip */
    a = srv_revoc_jti_entries(rep, &cont, 3, next, sizeof next, err, sizeof err);
    CU_ASSERT_STRING_EQUAL(next, "j100.7");
    json_decref(a);
    /* short: the last page */
    a = srv_revoc_jti_entries(rep, &first, 4, next, sizeof next, err, sizeof err);
    CU_ASSERT_STRING_EQUAL(next, "");
    json_decref(a);
    freeReplyObject(rep);
    {
        static const char *const bad[] = {"+OK\r\n", "*1\r\n$1\r\na\r\n",
                                          "*2\r\n$1\r\na\r\n$3\r\nabc\r\n",
                                          "*2\r\n$1\r\na\r\n$1\r\n0\r\n",
                                          "*2\r\n$1\r\na\r\n$12\r\n253402300800\r\n"};

        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            rep = resp(bad[i], strlen(bad[i]));
            CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
            CU_ASSERT_PTR_NULL(
                srv_revoc_jti_entries(rep, &first, 3, next, sizeof next, err, sizeof err));
            freeReplyObject(rep);
        }
    }
}

static void test_subject_page(void)
{
    /* HSCAN of the scoped hash: a good field, one without a separator, one
     * expired, one with a control byte */
    static const char text[] = "*2\r\n$1\r\n0\r\n*8\r\n"
                               "$8\r\nidp\x1f" "erin\r\n$4\r\n5000\r\n"
                               "$4\r\nnsep\r\n$4\r\n5000\r\n"
                               "$7\r\nidp\x1f" "old\r\n$2\r\n10\r\n"
                               "$7\r\nidp\x1f" "a\x01" "b\r\n$4\r\n5000\r\n";
    redisReply *rep = resp(text, sizeof text - 1);
    srv_revoc_cursor_t scoped = {.type = 'i'}, every = {.type = 's'};
    char next[SRV_REVOC_CURSOR_MAX], err[160];
    json_t *a, *e;

    CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
    a = srv_revoc_subject_entries(rep, &scoped, 10, 3600, 4000, next, sizeof next, err,
                                  sizeof err);
    CU_ASSERT_EQUAL_FATAL(json_array_size(a), 1);
    e = json_array_get(a, 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "iss")), "idp");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "sub")), "erin");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(e, "expires")), 8600);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "scope")), "issuer");
    CU_ASSERT_STRING_EQUAL(next, ""); /* scan 0 of the scoped hash: the end */
    json_decref(a);
    /* a batch longer than the page: the rest of it next */
    a = srv_revoc_subject_entries(rep, &scoped, 1, 3600, 4000, next, sizeof next, err,
                                  sizeof err);
    CU_ASSERT_EQUAL(json_array_size(a), 1);
    CU_ASSERT_STRING_EQUAL(next, "i0.1");
    json_decref(a);
    /* the every-issuer hash ends by going on to the scoped one */
    a = srv_revoc_subject_entries(rep, &every, 10, 0, 4000, next, sizeof next, err,
                                  sizeof err);
    CU_ASSERT_STRING_EQUAL(next, "i0.0");
    CU_ASSERT_TRUE(json_is_null(json_object_get(json_array_get(a, 0), "iss")));
    CU_ASSERT_TRUE(json_is_null(json_object_get(json_array_get(a, 0), "expires")));
    json_decref(a);
    freeReplyObject(rep);
    {
        static const char *const bad[] = {"*1\r\n$1\r\n0\r\n", "*2\r\n$1\r\nx\r\n*0\r\n",
                                          "*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n",
                                          "*2\r\n$1\r\n0\r\n$1\r\na\r\n"};

        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            rep = resp(bad[i], strlen(bad[i]));
            CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
            CU_ASSERT_PTR_NULL(srv_revoc_subject_entries(rep, &every, 3, 0, 0, next,
                                                         sizeof next, err, sizeof err));
            freeReplyObject(rep);
        }
    }
}

/* The subject body takes an iss; refused ones leave nothing behind. */
static void test_subject_body_iss(void)
{
    srv_revoke_req_t rq;
    char err[256];
    static const char *const bad[] = {"{\"sub\":\"e\",\"iss\":5}", "{\"sub\":\"e\",\"iss\":\"\"}",
                                      "{\"sub\":\"e\",\"iss\":\"a\\nb\"}",
                                      "{\"sub\":\"e\",\"iss\":\"x\",\"iss\":\"y\"}",
                                      "{\"iss\":\"x\"}"};
    const char *ok = "{\"iss\":\"https://idp\",\"sub\":\"erin\",\"before\":5}";

    CU_ASSERT_EQUAL(srv_admin_parse_revoke(ok, strlen(ok), 1, &rq, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(rq.iss, "https://idp");
    CU_ASSERT_STRING_EQUAL(rq.id, "erin");
    CU_ASSERT_EQUAL(rq.when, 5);
    srv_revoke_req_clear(&rq);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(srv_admin_parse_revoke(bad[i], strlen(bad[i]), 1, &rq, err, sizeof err),
                        -1);
        CU_ASSERT_STRING_EQUAL(rq.iss, "");
    }
    /* a jti body has no iss */
    ok = "{\"jti\":\"t\",\"exp\":5,\"iss\":\"x\"}";
    CU_ASSERT_EQUAL(srv_admin_parse_revoke(ok, strlen(ok), 0, &rq, err, sizeof err), -1);
}

int test_admin_revoc_add(void)
{
    static const unit_test_t tests[] = {
        {"listing query and bad cursors", test_query},
        {"cursors read back as written", test_cursor_round_trip},
        {"a jti page from ZRANGEBYSCORE", test_jti_page},
        {"a subject page from HSCAN", test_subject_page},
        {"the subject body's iss", test_subject_body_iss},
        {NULL, NULL},
    };

    return unit_add_suite("admin_revoc", tests);
}
