/* test_rl_policy.c — methods, matching, tier rates, identity spelling. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tollgate/rl_policy.h"
#include "tollgate/util_hash.h"
#include "unit.h"

static void test_method_bit(void)
{
    CU_ASSERT_EQUAL(rl_method_bit("GET"), RL_METHOD_GET);
    CU_ASSERT_EQUAL(rl_method_bit("HEAD"), RL_METHOD_HEAD);
    CU_ASSERT_EQUAL(rl_method_bit("POST"), RL_METHOD_POST);
    CU_ASSERT_EQUAL(rl_method_bit("PUT"), RL_METHOD_PUT);
    CU_ASSERT_EQUAL(rl_method_bit("DELETE"), RL_METHOD_DELETE);
    CU_ASSERT_EQUAL(rl_method_bit("PATCH"), RL_METHOD_PATCH);
    CU_ASSERT_EQUAL(rl_method_bit("OPTIONS"), RL_METHOD_OPTIONS);
    CU_ASSERT_EQUAL(rl_method_bit("CONNECT"), RL_METHOD_CONNECT);
    CU_ASSERT_EQUAL(rl_method_bit("TRACE"), RL_METHOD_TRACE);
    CU_ASSERT_EQUAL(rl_method_bit("get"), 0);
    CU_ASSERT_EQUAL(rl_method_bit("PROPFIND"), 0);
    CU_ASSERT_EQUAL(rl_method_bit(""), 0);
    CU_ASSERT_EQUAL(rl_method_bit(NULL), 0);
}

/* The Allow header's list: fixed order, CONNECT and OTHER never named. */
static void test_method_list(void)
{
    char out[80], small[12];

    CU_ASSERT_EQUAL(rl_method_list(RL_METHOD_GET | RL_METHOD_HEAD | RL_METHOD_POST |
                                       RL_METHOD_PUT | RL_METHOD_PATCH | RL_METHOD_DELETE |
                                       RL_METHOD_OPTIONS | RL_METHOD_TRACE |
                                       RL_METHOD_CONNECT | RL_METHOD_OTHER,
                                   out, sizeof out),
                    strlen("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"));
    CU_ASSERT_STRING_EQUAL(out, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE");
    rl_method_list(RL_METHOD_POST | RL_METHOD_GET, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "GET, POST");
    CU_ASSERT_EQUAL(rl_method_list(0, out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_EQUAL(rl_method_list(RL_METHOD_CONNECT | RL_METHOD_OTHER, out, sizeof out),
                    0);
    /* cut to whole names */
    rl_method_list(RL_METHOD_GET | RL_METHOD_HEAD | RL_METHOD_DELETE, small, sizeof small);
    CU_ASSERT_STRING_EQUAL(small, "GET, HEAD");
    CU_ASSERT_EQUAL(rl_method_list(RL_METHOD_GET, out, 0), 0);
}

/* rl_match_target: path and host whatever the methods (other_methods: deny). */
static void test_match_target(void)
{
    rl_match_t ro = {
        NULL, (char *)"/orders/admin", RL_METHOD_GET, (char *)"a.example", false, false};
    rl_match_t exact = {(char *)"/x", NULL, RL_METHOD_POST, NULL, false, false};

    CU_ASSERT_TRUE(rl_match_target(&ro, "/orders/admin/1", "a.example:443"));
    CU_ASSERT_FALSE(
        rl_match_request(&ro, RL_METHOD_DELETE, "/orders/admin/1", "a.example"));
    CU_ASSERT_FALSE(rl_match_request(&ro, RL_METHOD_OTHER, "/orders/admin/1", "a.example"));
    CU_ASSERT_FALSE(rl_match_target(&ro, "/orders/1", "a.example"));
    CU_ASSERT_FALSE(rl_match_target(&ro, "/orders/admin/1", "b.example"));
    CU_ASSERT_TRUE(rl_match_target(&exact, "/x/", NULL)); /* trailing_slash: same */
    CU_ASSERT_FALSE(rl_match_target(&exact, "/x/y", NULL));
}

static void test_match(void)
{
    rl_match_t any = {NULL, NULL, 0, NULL, false, false};
    rl_match_t exact = {
        (char *)"/advanced/batch-orders", NULL, RL_METHOD_POST, NULL, false, false};
    rl_match_t prefix = {NULL, (char *)"/api/", 0, NULL, false, false};
    rl_match_t host = {NULL, NULL, 0, (char *)"API.Example.com", false, false};
    rl_match_t all = {NULL,
                      (char *)"/api/",
                      RL_METHOD_GET | RL_METHOD_HEAD,
                      (char *)"api.example.com",
                      false,
                      false};
    rl_match_t v6 = {NULL, NULL, 0, (char *)"[::1]", false, false};
    rl_match_t icase = {(char *)"/Admin", NULL, 0, NULL, true, false};
    rl_match_t icase_prefix = {NULL, (char *)"/papi/admin", 0, NULL, true, false};

    /* path_match: case_insensitive */
    CU_ASSERT_TRUE(rl_match_request(&icase, RL_METHOD_GET, "/ADMIN", NULL));
    CU_ASSERT_TRUE(rl_match_request(&icase, RL_METHOD_GET, "/admin", NULL));
    CU_ASSERT_FALSE(rl_match_request(&icase, RL_METHOD_GET, "/admin/x", NULL));
    CU_ASSERT_TRUE(rl_match_request(&icase_prefix, RL_METHOD_GET, "/PAPI/Admin/x", NULL));
    CU_ASSERT_FALSE(rl_match_request(&icase_prefix, RL_METHOD_GET, "/papi/x", NULL));
    CU_ASSERT_FALSE(rl_match_request(&prefix, RL_METHOD_GET, "/API/x", NULL));

    CU_ASSERT_TRUE(rl_match_request(&any, RL_METHOD_GET, "/x", NULL));
    CU_ASSERT_TRUE(rl_match_request(&any, RL_METHOD_OTHER, NULL, NULL));

    CU_ASSERT_TRUE(rl_match_request(&exact, RL_METHOD_POST, "/advanced/batch-orders", "h"));
    CU_ASSERT_FALSE(rl_match_request(&exact, RL_METHOD_GET, "/advanced/batch-orders", "h"));
    /* trailing_slash: same (the default): the twin with a trailing '/' too */
    CU_ASSERT_TRUE(
        rl_match_request(&exact, RL_METHOD_POST, "/advanced/batch-orders/", "h"));
    CU_ASSERT_FALSE(
        rl_match_request(&exact, RL_METHOD_POST, "/advanced/batch-orders//", "h"));
    CU_ASSERT_FALSE(
        rl_match_request(&exact, RL_METHOD_POST, "/advanced/batch-orders.json", "h"));
    exact.slash_strict = true; /* trailing_slash: distinct */
    CU_ASSERT_FALSE(
        rl_match_request(&exact, RL_METHOD_POST, "/advanced/batch-orders/", "h"));
    exact.slash_strict = false;
    CU_ASSERT_FALSE(rl_match_request(&exact, RL_METHOD_POST, "/advanced/batch", "h"));
    CU_ASSERT_FALSE(rl_match_request(&exact, RL_METHOD_POST, NULL, "h"));

    CU_ASSERT_TRUE(rl_match_request(&prefix, RL_METHOD_GET, "/api/", NULL));
    CU_ASSERT_TRUE(rl_match_request(&prefix, RL_METHOD_GET, "/api/v1/x", NULL));
    CU_ASSERT_FALSE(rl_match_request(&prefix, RL_METHOD_GET, "/api", NULL));
    CU_ASSERT_FALSE(rl_match_request(&prefix, RL_METHOD_GET, "/API/x", NULL));

    CU_ASSERT_TRUE(rl_match_request(&host, RL_METHOD_GET, "/", "api.example.com"));
    CU_ASSERT_TRUE(rl_match_request(&host, RL_METHOD_GET, "/", "API.EXAMPLE.COM:8443"));
    CU_ASSERT_TRUE(rl_match_request(&host, RL_METHOD_GET, "/", "api.example.com."));
    CU_ASSERT_FALSE(rl_match_request(&host, RL_METHOD_GET, "/", "api.example.co"));
    CU_ASSERT_FALSE(rl_match_request(&host, RL_METHOD_GET, "/", "xapi.example.com"));
    CU_ASSERT_FALSE(rl_match_request(&host, RL_METHOD_GET, "/", NULL));

    CU_ASSERT_TRUE(rl_match_request(&all, RL_METHOD_HEAD, "/api/a", "api.example.com:80"));
    CU_ASSERT_FALSE(rl_match_request(&all, RL_METHOD_POST, "/api/a", "api.example.com"));
    CU_ASSERT_FALSE(rl_match_request(&all, RL_METHOD_GET, "/web/a", "api.example.com"));
    CU_ASSERT_FALSE(rl_match_request(&all, RL_METHOD_GET, "/api/a", "other.example.com"));

    CU_ASSERT_TRUE(rl_match_request(&v6, RL_METHOD_GET, "/", "[::1]:8080"));
    CU_ASSERT_TRUE(rl_match_request(&v6, RL_METHOD_GET, "/", "[::1]"));
    CU_ASSERT_FALSE(rl_match_request(&v6, RL_METHOD_GET, "/", "[::2]:8080"));
    {
        rl_match_t slash = {(char *)"/p/admin/", NULL, 0, NULL, true, false};
        rl_match_t root = {(char *)"/", NULL, 0, NULL, false, false};

        CU_ASSERT_TRUE(rl_match_request(&slash, RL_METHOD_GET, "/P/Admin", NULL));
        CU_ASSERT_TRUE(rl_match_request(&slash, RL_METHOD_GET, "/p/admin/", NULL));
        CU_ASSERT_FALSE(rl_match_request(&slash, RL_METHOD_GET, "/p/admi", NULL));
        CU_ASSERT_FALSE(rl_match_request(&slash, RL_METHOD_GET, "/p/admin/x", NULL));
        CU_ASSERT_TRUE(rl_match_request(&root, RL_METHOD_GET, "/", NULL));
        CU_ASSERT_FALSE(rl_match_request(&root, RL_METHOD_GET, "/x", NULL));
    }
}

static void test_tier_rate(void)
{
    rl_limit_t lims[2];
    rl_tier_override_t gold_ov[] = {{(char *)"default", {6000, 60000, 6000}}};
    rl_tier_t tiers[] = {{(char *)"gold", gold_ov, 1}, {(char *)"silver", NULL, 0}};
    rl_policy_set_t ps;

    memset(lims, 0, sizeof(lims));
    lims[0].name = (char *)"default";
    lims[0].rate = (rl_rate_t){60, 60000, 60};
    lims[1].name = (char *)"batch";
    lims[1].rate = (rl_rate_t){10, 60000, 10};
    ps = (rl_policy_set_t){lims, 2, tiers, 2};

    CU_ASSERT_PTR_EQUAL(rl_policy_rate(&ps, &lims[0], NULL), &lims[0].rate);
    CU_ASSERT_PTR_EQUAL(rl_policy_rate(&ps, &lims[0], "gold"), &gold_ov[0].rate);
    CU_ASSERT_EQUAL(rl_policy_rate(&ps, &lims[0], "gold")->n, 6000);
    CU_ASSERT_PTR_EQUAL(rl_policy_rate(&ps, &lims[1], "gold"), &lims[1].rate);
    CU_ASSERT_PTR_EQUAL(rl_policy_rate(&ps, &lims[0], "silver"), &lims[0].rate);
    CU_ASSERT_PTR_EQUAL(rl_policy_rate(&ps, &lims[0], "bronze"), &lims[0].rate);
    CU_ASSERT_PTR_EQUAL(rl_policy_rate(&ps, &lims[0], "GOLD"), &lims[0].rate);
}

/* Headers and claims for identity tests: NULL-terminated name/value pairs. */
static const char *const hdrs[] = {
    "X-Tenant", "acme", "X-Space", "a b|c{d}%", "X-Dash", "-", "X-Empty", "", NULL,
};

static const char *lookup(void *ctx, const char *name)
{
    const char *const *kv = ctx;

    for (; kv[0] != NULL; kv += 2)
        if (strcasecmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static int spell(rl_by_t *by, size_t nby, const rl_request_t *req, char *out, size_t len)
{
    rl_limit_t lim;

    memset(&lim, 0, sizeof(lim));
    lim.name = (char *)"l";
    lim.by = by;
    lim.nby = nby;
    return rl_policy_identity(&lim, req, out, len);
}

static void test_identity(void)
{
    rl_request_t req = {RL_METHOD_GET, "/", NULL,   "orders-svc", "10.0.0.7",  "api",
                        NULL,          1,   lookup, lookup,       (void *)hdrs, false};
    rl_request_t anon = {RL_METHOD_GET, "/", NULL, NULL, NULL, NULL,
                         NULL,          1,   NULL, NULL, NULL, false};
    rl_by_t client = {RL_BY_CLIENT, NULL}, ip = {RL_BY_IP, NULL},
            route = {RL_BY_ROUTE, NULL};
    rl_by_t two[] = {{RL_BY_CLIENT, NULL}, {RL_BY_HEADER, (char *)"X-Tenant"}};
    rl_by_t h_space = {RL_BY_HEADER, (char *)"X-Space"};
    rl_by_t h_missing = {RL_BY_HEADER, (char *)"X-Missing"};
    rl_by_t h_dash = {RL_BY_HEADER, (char *)"x-dash"};
    rl_by_t h_empty = {RL_BY_HEADER, (char *)"X-Empty"};
    rl_by_t claim = {RL_BY_CLAIM, (char *)"Org"};
    char out[RL_MAX_IDENTITY_LEN];

    CU_ASSERT_EQUAL(spell(&client, 1, &req, out, sizeof(out)), 12);
    CU_ASSERT_STRING_EQUAL(out, "c=orders-svc");
    spell(&ip, 1, &req, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "ip=10.0.0.7");
    spell(&route, 1, &req, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "r=api");
    spell(two, 2, &req, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "c=orders-svc|h:x-tenant=acme");
    spell(&h_space, 1, &req, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "h:x-space=a%20b%7Cc%7Bd%7D%25");
    /* absent -> "-", a literal "-" is not the absent bucket, "" is its own */
    spell(&h_missing, 1, &req, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "h:x-missing=-");
    spell(&h_dash, 1, &req, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "h:x-dash=%2D");
    spell(&h_empty, 1, &req, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "h:x-empty=");
    spell(&claim, 1, &req, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "cl:Org=-");
    /* anonymous: every part absent, no callbacks */
    spell(two, 2, &anon, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "c=-|h:x-tenant=-");
    spell(&claim, 1, &anon, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "cl:Org=-");
    spell(&ip, 1, &anon, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "ip=-");
    /* too small a buffer */
    CU_ASSERT_EQUAL(spell(&client, 1, &req, out, 12), -1);
    CU_ASSERT_EQUAL(out[0], '\0');
    CU_ASSERT_EQUAL(spell(&client, 1, &req, out, 13), 12);
}

/* rl_policy_identity_check takes back every identity rl_policy_identity
 * spells (every single byte as a header value, a long hashed value, absent,
 * "-", empty, anonymous) and refuses what it never spells. */
static void test_identity_check(void)
{
    const char *kv[] = {"X-Tenant", NULL, NULL};
    rl_request_t req = {RL_METHOD_GET, "/", NULL,   "j:https://idp|sub", "2001:db8::/64",
                        "api",         NULL, 1,     lookup,              lookup,
                        (void *)kv,    false};
    rl_by_t by[] = {{RL_BY_CLIENT, NULL}, {RL_BY_IP, NULL}, {RL_BY_ROUTE, NULL},
                    {RL_BY_HEADER, (char *)"X-Tenant"}, {RL_BY_CLAIM, (char *)"Org"}};
    rl_limit_t lim = {.name = (char *)"l", .by = by, .nby = 5};
    char out[RL_MAX_IDENTITY_LEN], err[256], val[200];
    static const struct {
        const char *key, *why;
    } bad[] = {
        {"c=x", "1 '|'-separated part(s); limit l is keyed by 5"},
        {"ip=1|ip=1|r=a|h:x-tenant=a|cl:Org=a", "part 1 must start with \"c=\""},
        {"c=a|ip=1|r=a|h:X-Tenant=a|cl:Org=a", "part 4 must start with \"h:x-tenant=\""},
        {"c=a|ip=1|r=a|h:x-tenant=a|cl:org=a", "part 5 must start with \"cl:Org=\""},
        {"c=a b|ip=1|r=a|h:x-tenant=a|cl:Org=a", "not a %XX escape"},
        {"c=a%7c|ip=1|r=a|h:x-tenant=a|cl:Org=a", "not a %XX escape"},
        {"c=a%7|ip=1|r=a|h:x-tenant=a|cl:Org=a", "not a %XX escape"},
        {"c=a%41|ip=1|r=a|h:x-tenant=a|cl:Org=a", "spelled as itself"},
        {"c=a%2D|ip=1|r=a|h:x-tenant=a|cl:Org=a", "spelled as itself"},
        {"c=%SABC|ip=1|r=a|h:x-tenant=a|cl:Org=a", "not a %XX escape"},
        {"c=|ip=1|r=a|h:x-tenant=a|cl:Org=a|", "6 '|'"},
    };

    for (unsigned c = 1; c < 256; c++) {
        val[0] = (char)c;
        val[1] = '\0';
        kv[1] = val;
        CU_ASSERT_FATAL(rl_policy_identity(&lim, &req, out, sizeof out) > 0);
        if (rl_policy_identity_check(&lim, out, err, sizeof err) != 0)
            CU_FAIL(out);
    }
    memset(val, 'z', 150);
    val[150] = '\0'; /* hashed: %S + 32 hex */
    rl_policy_identity(&lim, &req, out, sizeof out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "h:x-tenant=%S"));
    CU_ASSERT_EQUAL(rl_policy_identity_check(&lim, out, err, sizeof err), 0);
    kv[1] = "-";
    rl_policy_identity(&lim, &req, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "c=j:https:%2F%2Fidp%7Csub|ip=2001:db8::%2F64|r=api|"
                                "h:x-tenant=%2D|cl:Org=-");
    CU_ASSERT_EQUAL(rl_policy_identity_check(&lim, out, err, sizeof err), 0);
    CU_ASSERT_EQUAL(rl_policy_identity_check(&lim, "%L", err, sizeof err), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(rl_policy_identity_check(&lim, bad[i].key, err, sizeof err), -1);
        if (strstr(err, bad[i].why) == NULL)
            CU_FAIL(bad[i].key);
    }
    memset(val, 'a', 97);
    val[97] = '\0';
    snprintf(out, sizeof out, "c=%s|ip=1|r=a|h:x-tenant=a|cl:Org=a", val);
    CU_ASSERT_EQUAL(rl_policy_identity_check(&lim, out, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "longer than"));
}

/* Long values are hashed: bounded length, distinct values stay distinct,
 * equal values give equal identities; the spelling is "%S" + the first 128
 * bits of SHA-256 (what `sha256sum | cut -c1-32` shows, upper-cased). */
static void test_identity_long(void)
{
    char big1[4096], big2[4096];
    char out1[RL_MAX_IDENTITY_LEN], out2[RL_MAX_IDENTITY_LEN], out3[RL_MAX_IDENTITY_LEN];
    rl_by_t by = {RL_BY_CLIENT, NULL};
    rl_request_t req;
    int n;

    memset(big1, '{', sizeof(big1) - 1);
    big1[sizeof(big1) - 1] = '\0';
    memcpy(big2, big1, sizeof(big2));
    big2[100] = 'x';
    memset(&req, 0, sizeof(req));
    req.client_id = big1;
    n = spell(&by, 1, &req, out1, sizeof(out1));
    CU_ASSERT_EQUAL(n, 2 + 2 + 32);
    CU_ASSERT_STRING_EQUAL(out1, "c=%SE54F1CC2CCE71B60B3D51738982724B7");
    spell(&by, 1, &req, out3, sizeof(out3));
    CU_ASSERT_STRING_EQUAL(out1, out3);
    req.client_id = big2;
    spell(&by, 1, &req, out2, sizeof(out2));
    CU_ASSERT_STRING_NOT_EQUAL(out1, out2);
    /* 96 escaped bytes is kept as is, 97 is hashed */
    memset(big1, 'a', 96);
    big1[96] = '\0';
    req.client_id = big1;
    CU_ASSERT_EQUAL(spell(&by, 1, &req, out1, sizeof(out1)), 98);
    big1[96] = 'a';
    big1[97] = '\0';
    CU_ASSERT_EQUAL(spell(&by, 1, &req, out1, sizeof(out1)), 36);
}

/* Issue 19 §3: two 109-byte values with one FNV-1a-64 (0x5EF9C23C5B45CB25,
 * found with Pollard's rho in 4 minutes on one core) were one bucket when
 * long values were spelled "%H" + FNV-1a: a client could pick a header that
 * drains another's.  With SHA-256 they are two. */
static void test_identity_long_collision(void)
{
#define PAD "tenant-" A90 "-"
#define A10 "aaaaaaaaaa"
#define A90 A10 A10 A10 A10 A10 A10 A10 A10 A10
    static const char *const pair[] = {"X-Tenant", PAD "rrmRmEmoQ7K", "X-Other",
                                       PAD "CtZ3u-HaMkG", NULL};
    rl_by_t by = {RL_BY_HEADER, (char *)"X-Tenant"};
    rl_by_t by2 = {RL_BY_HEADER, (char *)"X-Other"};
    rl_request_t req;
    char victim[RL_MAX_IDENTITY_LEN], attacker[RL_MAX_IDENTITY_LEN];

    memset(&req, 0, sizeof(req));
    req.header = lookup;
    req.ctx = (void *)pair;
    CU_ASSERT_EQUAL(util_fnv1a(UTIL_FNV_SEED, pair[1], strlen(pair[1])),
                    util_fnv1a(UTIL_FNV_SEED, pair[3], strlen(pair[3])));
    CU_ASSERT_EQUAL(spell(&by, 1, &req, victim, sizeof(victim)), 11 + 2 + 32);
    spell(&by2, 1, &req, attacker, sizeof(attacker));
    CU_ASSERT_STRING_EQUAL(victim, "h:x-tenant=%S47F038A731FC19A29DF835273D8EF8D5");
    CU_ASSERT_STRING_NOT_EQUAL(victim + 11, attacker + 10);
#undef PAD
#undef A90
#undef A10
}

static char *dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);

    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

/* The config module builds these with malloc; clearing frees all (ASan). */
static void test_clear(void)
{
    rl_policy_set_t ps;
    rl_limit_t *lim;
    rl_tier_t *tier;

    memset(&ps, 0, sizeof(ps));
    ps.limits = calloc(1, sizeof(*ps.limits));
    ps.nlimits = 1;
    lim = &ps.limits[0];
    lim->name = dup("default");
    lim->match.path = dup("/a");
    lim->match.path_prefix = dup("/b");
    lim->match.host = dup("h");
    lim->by = calloc(2, sizeof(*lim->by));
    lim->nby = 2;
    lim->by[1].kind = RL_BY_HEADER;
    lim->by[1].name = dup("X-Tenant");
    ps.tiers = calloc(1, sizeof(*ps.tiers));
    ps.ntiers = 1;
    tier = &ps.tiers[0];
    tier->name = dup("gold");
    tier->overrides = calloc(1, sizeof(*tier->overrides));
    tier->n = 1;
    tier->overrides[0].limit = dup("default");
    rl_policy_set_clear(&ps);
    CU_ASSERT_PTR_NULL(ps.limits);
    CU_ASSERT_EQUAL(ps.nlimits, 0);
    rl_policy_set_clear(&ps);
    rl_policy_set_clear(NULL);
    rl_limit_clear(NULL);
    rl_match_clear(NULL);
}

int test_rl_policy_add(void)
{
    static const unit_test_t tests[] = {
        {"method_bit", test_method_bit},
        {"match", test_match},
        {"method_list", test_method_list},
        {"match_target", test_match_target},
        {"tier_rate", test_tier_rate},
        {"identity", test_identity},
        {"identity_long", test_identity_long},
        {"identity_check: every spelled identity, no other", test_identity_check},
        {"identity_long_collision", test_identity_long_collision},
        {"clear", test_clear},
        {NULL, NULL},
    };

    return unit_add_suite("rl_policy", tests);
}
