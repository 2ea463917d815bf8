/* test_explain_req.c — POST /admin/v1/explain's body (srv_explain_parse):
 * both header forms, the defaults, the bounds, and refusals that leave the
 * output cleared and never quote a header value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/srv_explain_req.h"
#include "unit.h"

static int parse(const char *body, srv_explain_req_t *rq, char *err)
{
    return srv_explain_parse(body, strlen(body), rq, err, 256);
}

static void test_accepted(void)
{
    srv_explain_req_t rq;
    char err[256];

    CU_ASSERT_EQUAL_FATAL(parse("{\"method\":\"GET\",\"path\":\"/v1/o?x=1\",\"host\":\"a.example\","
                                "\"headers\":{\"X-API-Key\":\"k\",\"X-T\":\"\"},\"peer\":\"::1\","
                                "\"tls\":true}",
                                &rq, err),
                          0);
    CU_ASSERT_STRING_EQUAL(rq.method, "GET");
    CU_ASSERT_STRING_EQUAL(rq.path, "/v1/o?x=1");
    CU_ASSERT_STRING_EQUAL(rq.host, "a.example");
    CU_ASSERT_STRING_EQUAL(rq.peer, "::1");
    CU_ASSERT(rq.tls);
    CU_ASSERT_EQUAL(rq.dialect, DEC_DIALECT_NONE);
    CU_ASSERT_EQUAL_FATAL(rq.nheaders, 2);
    CU_ASSERT_STRING_EQUAL(rq.headers[0].name, "X-API-Key");
    CU_ASSERT_STRING_EQUAL(rq.headers[1].value, "");
    srv_explain_req_clear(&rq);
    CU_ASSERT_PTR_NULL(rq.root);

    CU_ASSERT_EQUAL_FATAL(parse("{\"path\":\"/x\",\"method\":\"POST\",\"dialect\":\"traefik\","
                                "\"as_client\":\"orders-svc\","
                                "\"headers\":[[\"X-T\",\"a\"],[\"x-t\",\"b\"]]}",
                                &rq, err),
                          0);
    CU_ASSERT_EQUAL(rq.dialect, DEC_DIALECT_TRAEFIK);
    CU_ASSERT_STRING_EQUAL(rq.as_client, "orders-svc");
    CU_ASSERT_STRING_EQUAL(rq.peer, ""); /* not given */
    CU_ASSERT_PTR_NULL(rq.host);
    CU_ASSERT_EQUAL(rq.nheaders, 2); /* a repeated name, in order */
    CU_ASSERT_STRING_EQUAL(rq.headers[1].value, "b");
    srv_explain_req_clear(&rq);
}

static void test_refused(void)
{
    static const struct {
        const char *body, *why;
    } rows[] = {
        {"", "invalid JSON (line 1, column 0)"},
        {"{\"method\":\"GET\",\"path\":\"/x\"} x", "invalid JSON"},
        {"[1]", "the body must be a JSON object"},
        {"{\"method\":\"GET\"}", "method and path are required"},
        {"{\"method\":\"GETTTTTTTTTTTTTTTT\",\"path\":\"/x\"}", "method:"},
        {"{\"method\":\"GET\",\"path\":\"/x y\"}", "path:"},
        {"{\"method\":\"GET\",\"path\":\"/x\\u0000\"}", "invalid JSON"},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"host\":\"\"}", "host:"},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"tls\":1}", "tls:"},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"peer\":\"10.0.0.256\"}", "peer:"},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"as_client\":\"a b\"}", "as_client:"},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"headers\":\"X\"}", "headers: an object"},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"headers\":[[1,\"a\"]]}", "a name must be"},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"headers\":{\"X\":1}}", "a value must be"},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"headers\":{\"X-Key\":\"s3cret\\n\"}}",
         "no control byte"},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"as_client\":\"a\","
         "\"headers\":{\"authorization\":\"s3cret\"}}",
         "give one"},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"Weird Name\":1}", "unknown field (allowed:"},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"dry_run\":false}", "unknown field \"dry_run\""},
    };
    srv_explain_req_t rq;
    char err[256];

    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(parse(rows[i].body, &rq, err), -1);
        CU_ASSERT_PTR_NULL(rq.root);
        CU_ASSERT_EQUAL(rq.nheaders, 0);
        if (strstr(err, rows[i].why) == NULL || strstr(err, "s3cret") != NULL) {
            fprintf(stderr, "row %zu: %s\n", i, err);
            CU_FAIL(rows[i].why);
        }
    }
}

/* 100 headers pass, 101 do not; a body over 64 KiB is refused unread. */
static void test_bounds(void)
{
    size_t cap = 64 + 101 * 16;
    char *b = malloc(SRV_EXPLAIN_MAX_BODY + 2), err[256];
    srv_explain_req_t rq;
    int n;

    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    for (int count = 100; count <= 101; count++) {
        n = snprintf(b, cap, "{\"method\":\"GET\",\"path\":\"/\",\"headers\":[");
        for (int i = 0; i < count; i++)
            n += snprintf(b + n, cap - (size_t)n, "%s[\"h%d\",\"v\"]", i ? "," : "", i);
        snprintf(b + n, cap - (size_t)n, "]}");
        CU_ASSERT_EQUAL(parse(b, &rq, err), count == 100 ? 0 : -1);
        if (count == 100)
            CU_ASSERT_EQUAL(rq.nheaders, 100);
        srv_explain_req_clear(&rq);
    }
    CU_ASSERT_STRING_EQUAL(err, "headers: more than 100");
    memset(b, ' ', SRV_EXPLAIN_MAX_BODY + 1);
    CU_ASSERT_EQUAL(srv_explain_parse(b, SRV_EXPLAIN_MAX_BODY + 1, &rq, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, "body over 65536 bytes");
    free(b);
}

/* What makes an explain need a write token (srv_explain_carries_credential). */
static void test_credentials(void)
{
    static const struct {
        const char *body;
        bool cred;
    } cases[] = {
        {"{\"method\":\"GET\",\"path\":\"/x\"}", false},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"as_client\":\"bob\"}", false},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"headers\":{\"X-Tenant\":\"a\"}}", false},
        {"{\"method\":\"GET\",\"path\":\"/x?tickets=1&aticket=2\"}", false},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"headers\":{\"x-api-key\":\"k\"}}", true},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"headers\":[[\"AUTHORIZATION\",\"B\"]]}",
         true},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"headers\":{\"Proxy-Authorization\":\"B\"}}",
         true},
        {"{\"method\":\"GET\",\"path\":\"/x\",\"headers\":{\"Cookie\":\"s=1\"}}", true},
        {"{\"method\":\"GET\",\"path\":\"/x?ticket=abc\"}", true},
        {"{\"method\":\"GET\",\"path\":\"/x?a=1&ticket=abc\"}", true},
    };
    char err[256];
    srv_explain_req_t rq;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CU_ASSERT_EQUAL_FATAL(parse(cases[i].body, &rq, err), 0);
        if (srv_explain_carries_credential(&rq) != cases[i].cred) {
            fprintf(stderr, "\n%s: want %d\n", cases[i].body, cases[i].cred);
            CU_FAIL("srv_explain_carries_credential (see stderr)");
        }
        srv_explain_req_clear(&rq);
    }
}

int test_explain_req_add(void)
{
    static const unit_test_t tests[] = {
        {"accepted: both header forms, defaults", test_accepted},
        {"refused: cleared, precise, no value quoted", test_refused},
        {"bounds: 100 headers, 64 KiB", test_bounds},
        {"a credential in the request needs a write token", test_credentials},
        {NULL, NULL},
    };

    return unit_add_suite("explain_req", tests);
}
