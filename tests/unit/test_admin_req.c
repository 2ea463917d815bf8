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

int test_admin_req_add(void)
{
    static const unit_test_t tests[] = {
        {"jti, token and subject bodies", test_accepted},
        {"refused bodies leave nothing behind", test_refused_leave_nothing},
        {NULL, NULL},
    };

    return unit_add_suite("admin_req", tests);
}
