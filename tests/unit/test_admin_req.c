/* test_admin_req.c — the admin API's revocation bodies. */
#include <string.h>

#include "../../server/srv_admin_req.h"
#include "unit.h"

static int parse(const char *body, int subject, srv_revoke_req_t *rq)
{
    char err[256];

    return srv_admin_parse_revoke(body, strlen(body), subject, rq, err, sizeof(err));
}

static void test_accepted(void)
{
    srv_revoke_req_t rq;

    CU_ASSERT_EQUAL(parse("{\"jti\":\"t-1\",\"exp\":253402300799}", 0, &rq), 0); /* 9999 */
    CU_ASSERT_EQUAL(rq.when, SRV_ADMIN_MAX_TIME);
    srv_revoke_req_clear(&rq);
    CU_ASSERT_EQUAL(parse("{\"jti\":\"t-1\",\"exp\":4102444800}", 0, &rq), 0);
    CU_ASSERT_EQUAL(rq.kind, SRV_REVOKE_JTI);
    CU_ASSERT_STRING_EQUAL(rq.id, "t-1");
    CU_ASSERT_EQUAL(rq.when, 4102444800LL);
    srv_revoke_req_clear(&rq);

    CU_ASSERT_EQUAL(parse("{\"token\":\"a.b.c\"}", 0, &rq), 0);
    CU_ASSERT_EQUAL(rq.kind, SRV_REVOKE_TOKEN);
    CU_ASSERT_STRING_EQUAL(rq.token, "a.b.c");
    srv_revoke_req_clear(&rq);
    CU_ASSERT_PTR_NULL(rq.token);

    CU_ASSERT_EQUAL(parse("{\"sub\":\"alice\",\"before\":1700000000}", 1, &rq), 0);
    CU_ASSERT_EQUAL(rq.kind, SRV_REVOKE_SUBJECT);
    CU_ASSERT_STRING_EQUAL(rq.id, "alice");
    CU_ASSERT_EQUAL(rq.when, 1700000000);
    CU_ASSERT_EQUAL(parse("{\"sub\":\"alice\"}", 1, &rq), 0);
    CU_ASSERT_EQUAL(rq.when, 0); /* "now", decided by the caller */
}

static void test_refused_leave_nothing(void)
{
    static const char *const jti_bodies[] = {"",
                                             "[]",
                                             "nope",
                                             "{}",
                                             "{\"jti\":\"a\"}",
                                             "{\"exp\":5}",
                                             "{\"jti\":\"a\",\"exp\":0}",
                                             "{\"jti\":\"a\",\"exp\":253402300800}",
                                             "{\"jti\":\"a\",\"exp\":10000000000000000}",
                                             "{\"jti\":\"a\",\"exp\":\"5\"}",
                                             "{\"jti\":\"\",\"exp\":5}",
                                             "{\"jti\":\"a\\nb\",\"exp\":5}",
                                             "{\"jti\":\"a\",\"exp\":5,\"extra\":1}",
                                             "{\"jti\":\"a\",\"jti\":\"b\",\"exp\":5}",
                                             "{\"token\":\"x\",\"jti\":\"a\"}",
                                             "{\"token\":5}",
                                             "{\"token\":\"\"}",
                                             NULL};
    static const char *const sub_bodies[] = {"{}", "{\"sub\":5}",
                                             "{\"sub\":\"a\",\"before\":-1}",
                                             "{\"sub\":\"a\",\"before\":1000000000000000000}",
                                             "{\"sub\":\"a\",\"jti\":\"b\"}", NULL};
    char longid[400];
    srv_revoke_req_t rq;

    for (int i = 0; jti_bodies[i] != NULL; i++) {
        CU_ASSERT_EQUAL(parse(jti_bodies[i], 0, &rq), -1);
        CU_ASSERT_EQUAL(rq.id[0], '\0');
        CU_ASSERT_PTR_NULL(rq.token);
    }
    for (int i = 0; sub_bodies[i] != NULL; i++) {
        CU_ASSERT_EQUAL(parse(sub_bodies[i], 1, &rq), -1);
        CU_ASSERT_EQUAL(rq.id[0], '\0');
    }
    memset(longid, 'x', sizeof(longid));
    memcpy(longid, "{\"jti\":\"", 8);
    memcpy(longid + 8 + 257, "\",\"exp\":5}", 11);
    CU_ASSERT_EQUAL(parse(longid, 0, &rq), -1); /* a 257-byte jti */
}

/* ---- GET /admin/v1/audit ---- */

static void test_audit_query(void)
{
    char start[64], err[160];
    unsigned n = 0;

    CU_ASSERT_EQUAL(srv_admin_parse_audit_query(NULL, NULL, start, sizeof start, &n, err,
                                                sizeof err),
                    0);
    CU_ASSERT_STRING_EQUAL(start, "-");
    CU_ASSERT_EQUAL(n, SRV_AUDIT_PAGE_DEFAULT);
    CU_ASSERT_EQUAL(srv_admin_parse_audit_query("1700000000000-3", "1000", start, sizeof start,
                                                &n, err, sizeof err),
                    0);
    CU_ASSERT_STRING_EQUAL(start, "(1700000000000-3"); /* a cursor: exclusive */
    CU_ASSERT_EQUAL(n, 1000);
    CU_ASSERT_EQUAL(srv_admin_parse_audit_query("1700000000000", "1", start, sizeof start, &n,
                                                err, sizeof err),
                    0);
    CU_ASSERT_STRING_EQUAL(start, "1700000000000-0"); /* a time: inclusive */
    {
        static const char *const bad_since[] = {
            "", "-", "1-", "-1", "1-2-3", "x", "1 ", "+", "(1-0", "123456789012345678901",
            "18446744073709551616", "1-18446744073709551616", NULL};
        static const char *const bad_limit[] = {"0", "1001", "-1", "", "1e3", "10x", NULL};

        for (int i = 0; bad_since[i] != NULL; i++)
            CU_ASSERT_EQUAL(srv_admin_parse_audit_query(bad_since[i], NULL, start,
                                                        sizeof start, &n, err, sizeof err),
                            -1);
        for (int i = 0; bad_limit[i] != NULL; i++)
            CU_ASSERT_EQUAL(srv_admin_parse_audit_query(NULL, bad_limit[i], start,
                                                        sizeof start, &n, err, sizeof err),
                            -1);
    }
}

static redisReply *resp(const char *text)
{
    redisReader *r = redisReaderCreate();
    void *rep = NULL;

    redisReaderFeed(r, text, strlen(text));
    if (redisReaderGetReply(r, &rep) != REDIS_OK)
        rep = NULL;
    redisReaderFree(r);
    return rep;
}

static void test_trail_entries(void)
{
    char last[64], err[160];
    redisReply *rep;
    json_t *a;

    rep = resp("*2\r\n"
               "*2\r\n$3\r\n1-0\r\n*6\r\n$2\r\nts\r\n$2\r\n17\r\n$6\r\naction\r\n"
               "$6\r\nreload\r\n$5\r\nextra\r\n$1\r\nx\r\n"
               "*2\r\n$3\r\n2-5\r\n*4\r\n$6\r\ntarget\r\n$3\r\na\x01" "b\r\n"
               "$6\r\nstatus\r\n$3\r\nbad\r\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
    a = srv_admin_trail_entries(rep, 10, last, sizeof last, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(json_array_size(a), 2);
    CU_ASSERT_STRING_EQUAL(last, "2-5");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(a, 0), "ts")), 17);
    CU_ASSERT_PTR_NULL(json_object_get(json_array_get(a, 0), "extra")); /* not ours */
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(a, 1), "target")),
                           "a?b"); /* control bytes never reach the answer */
    CU_ASSERT(json_is_null(json_object_get(json_array_get(a, 1), "status")));
    json_decref(a);
    /* the page is cut at `max` */
    a = srv_admin_trail_entries(rep, 1, last, sizeof last, err, sizeof err);
    CU_ASSERT_EQUAL(json_array_size(a), 1);
    CU_ASSERT_STRING_EQUAL(last, "1-0");
    json_decref(a);
    freeReplyObject(rep);
    {
        static const char *const bad[] = {
            "+OK\r\n",
            ":1\r\n",
            "*1\r\n:1\r\n",
            "*1\r\n*1\r\n$1\r\n1\r\n",
            "*1\r\n*2\r\n$1\r\n1\r\n*1\r\n$1\r\na\r\n", /* odd pairs */
            "*1\r\n*2\r\n:1\r\n*0\r\n",                   /* id not a string */
            "*1\r\n*2\r\n$1\r\n1\r\n*2\r\n$1\r\na\r\n:2\r\n",
            "*1\r\n*2\r\n$0\r\n\r\n*0\r\n", /* empty id */
            NULL};

        for (int i = 0; bad[i] != NULL; i++) {
            rep = resp(bad[i]);
            CU_ASSERT_PTR_NOT_NULL(rep);
            CU_ASSERT_PTR_NULL(srv_admin_trail_entries(rep, 10, last, sizeof last, err,
                                                       sizeof err));
            freeReplyObject(rep);
        }
    }
    CU_ASSERT_PTR_NULL(srv_admin_trail_entries(NULL, 10, last, sizeof last, err, sizeof err));
}

int test_admin_req_add(void)
{
    static const unit_test_t tests[] = {
        {"jti, token and subject bodies", test_accepted},
        {"refused bodies leave nothing behind", test_refused_leave_nothing},
        {"audit: since and limit", test_audit_query},
        {"audit: the stream's XRANGE reply", test_trail_entries},
        {NULL, NULL},
    };

    return unit_add_suite("admin_req", tests);
}
