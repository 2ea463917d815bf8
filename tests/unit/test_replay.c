/* test_replay.c — `tollgate replay`'s audit-line parser (srv_replay_parse_line:
 * the fields audit.c writes, old lines, lines to skip, refusals that name
 * the field and never quote the line) and the report's arithmetic (rows,
 * top clients, the --max-deny-increase gate). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/audit.h"
#include "../../server/srv_replay.h"
#include "unit.h"

static int parse(const char *line, srv_replay_rec_t *r, char *err)
{
    return srv_replay_parse_line(line, strlen(line), r, err, 256);
}

/* A line as audit.c writes it parses back into the same values. */
static void test_round_trip(void)
{
    static char s1[] = "orders:read", s2[] = "orders:write";
    char *const scopes[] = {s1, s2};
    static const audit_key_t keys[] = {{false, "X-Tenant", "acme"}, {true, "org", NULL}};
    audit_rec_t a = {.ts_ms = 1795556400123LL,
                     .request_id = "r1",
                     .client_id = "alice",
                     .method = "GET",
                     .target = "/orders/1?token=secret",
                     .status = 429,
                     .duration_ms = 0.5,
                     .ip = "203.0.113.5",
                     .decision = "deny",
                     .reason = "rate_limited",
                     .limit = "tight",
                     .upstream_status = -1,
                     .route = "orders",
                     .auth_method = "api_key",
                     .scopes = scopes,
                     .nscopes = 2,
                     .decided_ms = 1795556400100LL,
                     .host = "api.example",
                     .tier = "gold",
                     .peer = "10.0.0.1",
                     .mode = "nginx",
                     .keys = keys,
                     .nkeys = 2};
    char line[8192], err[256];
    srv_replay_rec_t r;
    int n = audit_format(&a, line, sizeof line);

    CU_ASSERT_FATAL(n > 0);
    CU_ASSERT_EQUAL_FATAL(srv_replay_parse_line(line, (size_t)n - 1, &r, err, sizeof err),
                          1);
    CU_ASSERT(r.why);
    CU_ASSERT_EQUAL(r.t_ms, 1795556400100LL); /* the decision's time, not the write's */
    CU_ASSERT_STRING_EQUAL(r.client_id, "alice");
    CU_ASSERT_STRING_EQUAL(r.path, "/orders/1?token=REDACTED");
    CU_ASSERT_EQUAL(r.status, 429);
    CU_ASSERT_STRING_EQUAL(r.decision, "deny");
    CU_ASSERT_STRING_EQUAL(r.limit, "tight");
    CU_ASSERT_STRING_EQUAL(r.route, "orders");
    CU_ASSERT_STRING_EQUAL(r.auth_method, "api_key");
    CU_ASSERT_STRING_EQUAL(r.scopes, "orders:read orders:write");
    CU_ASSERT_STRING_EQUAL(r.tier, "gold");
    CU_ASSERT_STRING_EQUAL(r.mode, "nginx");
    CU_ASSERT_STRING_EQUAL(r.peer, "10.0.0.1");
    CU_ASSERT_EQUAL_FATAL(r.nkeys, 2);
    CU_ASSERT_STRING_EQUAL(r.keys[0].name, "header:x-tenant");
    CU_ASSERT_STRING_EQUAL(r.keys[0].value, "acme");
    CU_ASSERT_STRING_EQUAL(r.keys[1].name, "claim:org");
    CU_ASSERT_PTR_NULL(r.keys[1].value);
    CU_ASSERT_PTR_NULL(r.iss);
    srv_replay_rec_clear(&r);
}

/* A line from before item 6: the old twelve fields; the time is ts. */
static void test_old_line(void)
{
    srv_replay_rec_t r;
    char err[256];

    CU_ASSERT_EQUAL_FATAL(
        parse(
            "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"request_id\":\"x\",\"client_id\":"
            "\"bob\","
            "\"method\":\"GET\",\"path\":\"/a\",\"status\":200,\"duration_ms\":0.1,"
            "\"ip\":\"127.0.0.1\",\"decision\":\"allow\",\"reason\":\"ok\",\"limit\":null,"
            "\"upstream_status\":null}",
            &r, err),
        1);
    CU_ASSERT_FALSE(r.why);
    CU_ASSERT_EQUAL(r.t_ms, 1795556400123LL);
    CU_ASSERT_STRING_EQUAL(r.client_id, "bob");
    CU_ASSERT_PTR_NULL(r.mode);
    srv_replay_rec_clear(&r);
}

static void test_skipped(void)
{
    srv_replay_rec_t r;
    char err[256];

    CU_ASSERT_EQUAL(parse("", &r, err), 0);
    CU_ASSERT_EQUAL(parse("  \r", &r, err), 0);
    CU_ASSERT_EQUAL(parse("{\"ts\":\"2026-11-24T21:40:00.123Z\",\"kind\":\"admin\","
                          "\"action\":\"reload\"}",
                          &r, err),
                    0);
}

/* Refusals: each names what is wrong, none quotes the line. */
static void test_refused(void)
{
    static const char *const bad[] = {
        "not json SECRETVALUE",
        "[1,2]",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"allow\",\"decision\":\"deny\","
        "\"method\":\"GET\",\"path\":\"/SECRETVALUE\"}", /* duplicate key */
        "{\"ts\":\"yesterday\",\"decision\":\"allow\",\"method\":\"GET\",\"path\":\"/\"}",
        "{\"ts\":\"2026-13-24T21:40:00.123Z\",\"decision\":\"allow\"}",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"maybe\"}",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"allow\",\"status\":\"200\"}",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"allow\",\"status\":99999}",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"allow\",\"client_id\":7}",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"allow\",\"client_id\":"
        "\"a\\u0000b\"}",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"allow\",\"auth_method\":"
        "\"magic\"}",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"allow\",\"mode\":\"grpc\"}",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"allow\",\"keys\":{\"x\":\"1\"}"
        "}",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"allow\",\"keys\":[1]}",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"allow\",\"scopes\":[\"a b\"]}",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"allow\",\"decided_ms\":-5}",
        "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"kind\":\"other\",\"decision\":\"allow\"}",
        "{\"decision\":\"allow\",\"method\":\"GET\",\"path\":\"/\"}", /* no time */
    };
    srv_replay_rec_t r;
    char err[256];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(parse(bad[i], &r, err), -1);
        CU_ASSERT(err[0] != '\0');
        CU_ASSERT_PTR_NULL(strstr(err, "SECRETVALUE"));
        CU_ASSERT_PTR_NULL(r.decision); /* left cleared */
    }
}

/* A string over its bound, a line over SRV_REPLAY_LINE_MAX. */
static void test_bounds(void)
{
    size_t n = SRV_REPLAY_LINE_MAX + 10;
    char *line = malloc(n + 1), err[256];
    srv_replay_rec_t r;
    int k;

    CU_ASSERT_PTR_NOT_NULL_FATAL(line);
    k = snprintf(line, n,
                 "{\"ts\":\"2026-11-24T21:40:00.123Z\",\"decision\":\"allow\","
                 "\"client_id\":\"");
    memset(line + k, 'a', 300);
    strcpy(line + k + 300, "\"}");
    CU_ASSERT_EQUAL(parse(line, &r, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "client_id"));
    memset(line, ' ', n);
    line[0] = '{';
    line[n - 1] = '}';
    line[n] = '\0';
    CU_ASSERT_EQUAL(srv_replay_parse_line(line, n, &r, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "longer"));
    free(line);
}

static void test_ts(void)
{
    CU_ASSERT_EQUAL(srv_replay_parse_ts("1970-01-01T00:00:00.000Z"), 0);
    CU_ASSERT_EQUAL(srv_replay_parse_ts("2026-11-24T21:40:00.123Z"), 1795556400123LL);
    CU_ASSERT_EQUAL(srv_replay_parse_ts("2026-11-24T21:40:00Z"), -1);
    CU_ASSERT_EQUAL(srv_replay_parse_ts("2026-11-24 21:40:00.123Z"), -1);
    CU_ASSERT_EQUAL(srv_replay_parse_ts("2026-11-24T21:40:00.12xZ"), -1);
    CU_ASSERT_EQUAL(srv_replay_parse_ts(NULL), -1);
}

/* Rows: the difference, the top would-be-denied clients (most first, ties
 * by name, at most 10) over a table that grows. */
static void test_rows(void)
{
    srv_replay_row_t *rows = NULL, *r;
    size_t n = 0, k;
    const char *names[10];
    uint64_t counts[10];
    char id[32];

    r = srv_replay_row(&rows, &n, "tight");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_EQUAL(srv_replay_row(&rows, &n, "tight"), r);
    CU_ASSERT_EQUAL(n, 1);
    for (int i = 0; i < 500; i++) { /* client-i denied i % 37 times */
        snprintf(id, sizeof id, "client-%03d", i);
        for (int j = 0; j < i % 37; j++)
            CU_ASSERT_EQUAL(srv_replay_row_deny_client(r, id), 0);
    }
    k = srv_replay_row_top(r, 10, names, counts);
    CU_ASSERT_EQUAL_FATAL(k, 10);
    CU_ASSERT_STRING_EQUAL(names[0], "client-036"); /* 36 each: 036, 073, ... by name */
    CU_ASSERT_EQUAL(counts[0], 36);
    CU_ASSERT_STRING_EQUAL(names[1], "client-073");
    for (size_t i = 1; i < k; i++)
        CU_ASSERT(counts[i] <= counts[i - 1]);
    r->rec_deny = 7;
    r->would_deny = 3;
    CU_ASSERT_EQUAL(srv_replay_row_diff(r), -4);
    r->would_deny = 12;
    CU_ASSERT_EQUAL(srv_replay_row_diff(r), 5);
    srv_replay_row_clear(r);
    free(rows);
}

static void test_gate(void)
{
    srv_replay_gate_t g;

    CU_ASSERT_EQUAL(srv_replay_gate_parse("10", &g), 0);
    CU_ASSERT(g.set && !g.percent && g.n == 10);
    CU_ASSERT_FALSE(srv_replay_gate_exceeded(&g, 10, 100));
    CU_ASSERT(srv_replay_gate_exceeded(&g, 11, 100));
    CU_ASSERT_FALSE(srv_replay_gate_exceeded(&g, -50, 100));
    CU_ASSERT_EQUAL(srv_replay_gate_parse("2.5%", &g), 0);
    CU_ASSERT(g.percent && g.n == 250);
    CU_ASSERT_FALSE(srv_replay_gate_exceeded(&g, 25, 1000)); /* 2.5% exactly */
    CU_ASSERT(srv_replay_gate_exceeded(&g, 26, 1000));
    CU_ASSERT_EQUAL(srv_replay_gate_parse("0", &g), 0);
    CU_ASSERT(srv_replay_gate_exceeded(&g, 1, 1000));
    CU_ASSERT_FALSE(srv_replay_gate_exceeded(&g, 0, 1000));
    CU_ASSERT_EQUAL(srv_replay_gate_parse("0%", &g), 0);
    CU_ASSERT(srv_replay_gate_exceeded(&g, 1, 1000000));
    for (const char *const *b =
             (const char *const[]){"", "-1", "x", "1.5", "101%", "5%%", "1e3", "5 %",
                                   "99999999999999999999", NULL};
         *b != NULL; b++)
        CU_ASSERT_EQUAL(srv_replay_gate_parse(*b, &g), -1);
    CU_ASSERT_FALSE(g.set);
}

int test_replay_add(void)
{
    static const unit_test_t tests[] = {
        {"a written line parses back", test_round_trip},
        {"a line from before item 6", test_old_line},
        {"empty and admin lines are skipped", test_skipped},
        {"refused lines name the field, quote nothing", test_refused},
        {"bounds", test_bounds},
        {"ts", test_ts},
        {"rows: difference and top clients", test_rows},
        {"--max-deny-increase", test_gate},
        {NULL, NULL},
    };
    return unit_add_suite("replay", tests);
}
