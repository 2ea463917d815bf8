/* test_cfg.c — the configuration: file, environment, checks, dump, version.
 * Run from tests/unit/ (fixtures/cfg-* are relative). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "tollgate/cfg.h"
#include "tollgate/log.h"
#include "unit.h"

static const char secret32[] = "0123456789abcdef0123456789abcdef";

static int clear_env(void)
{
    for (size_t i = 0; cfg_env_names[i] != NULL; i++)
        unsetenv(cfg_env_names[i]);
    return 0;
}

static char err[8192];

/* Load YAML text as "t.yaml"; NULL on error (message in err). */
static cfg_t *load(const char *yaml)
{
    return cfg_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof err);
}

static cfg_t *load_ok(const char *yaml)
{
    cfg_t *c = load(yaml);

    if (c == NULL)
        fprintf(stderr, "\nunexpected errors:\n%s", err);
    CU_ASSERT_PTR_NOT_NULL(c);
    return c;
}

/* Loading `yaml` fails and one line of the message is `line`. */
static void expect_err(const char *yaml, const char *line)
{
    cfg_t *c = load(yaml);
    char want[512];
    bool found;

    CU_ASSERT_PTR_NULL(c);
    cfg_unref(c);
    snprintf(want, sizeof want, "%s\n", line);
    found = strncmp(err, want, strlen(want)) == 0 ||
            (strstr(err, want) != NULL && strstr(err, want)[-1] == '\n');
    if (!found)
        fprintf(stderr, "\nwanted line: %s\ngot:\n%s", line, err);
    CU_ASSERT(found);
}

/* Like expect_err, but `part` may be anywhere in the message. */
static void expect_err_part(const char *yaml, const char *part)
{
    cfg_t *c = load(yaml);

    CU_ASSERT_PTR_NULL(c);
    cfg_unref(c);
    if (strstr(err, part) == NULL)
        fprintf(stderr, "\nwanted: %s\ngot:\n%s", part, err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, part));
}

static unsigned count_lines(const char *s)
{
    unsigned n = 0;

    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/* ---- loading ------------------------------------------------------------ */

static void test_minimal_file(void)
{
    cfg_t *c;

    clear_env();
    c = cfg_load("fixtures/cfg-minimal.yaml", err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->path, "fixtures/cfg-minimal.yaml");
    CU_ASSERT_EQUAL(strlen(c->version), 16);
    CU_ASSERT_EQUAL(c->environment, CFG_ENV_DEVELOPMENT);
    CU_ASSERT_STRING_EQUAL(c->listen, "0.0.0.0:8080");
    CU_ASSERT_STRING_EQUAL(c->admin_listen, "127.0.0.1:9090");
    CU_ASSERT_EQUAL(c->threads, 0);
    CU_ASSERT_EQUAL(c->trusted_proxies.n, 6);
    CU_ASSERT_EQUAL(c->max_body_bytes, 1048576);
    CU_ASSERT_EQUAL(c->max_header_bytes, 16384);
    CU_ASSERT_EQUAL(c->max_connections, 10000);
    CU_ASSERT_EQUAL(c->request_read_timeout_ms, 30000);
    CU_ASSERT_EQUAL(c->idle_timeout_ms, 15000);
    CU_ASSERT_EQUAL(c->client_ipv6_prefix, 64);
    CU_ASSERT_EQUAL(c->expected_replicas, 1);
    CU_ASSERT_EQUAL(c->redis.mode, CFG_REDIS_NONE);
    CU_ASSERT_STRING_EQUAL(c->redis.key_prefix, "tg:");
    CU_ASSERT_EQUAL(c->redis.timeout_ms, 50);
    CU_ASSERT_STRING_EQUAL(c->forward_auth.path, "/auth");
    CU_ASSERT_EQUAL(c->forward_auth.nginx_rate_limited_status, 403);
    CU_ASSERT_STRING_EQUAL(c->tickets.path, "/v1/tickets");
    CU_ASSERT_EQUAL(c->tickets.ttl_s, 30);
    CU_ASSERT_STRING_EQUAL(c->healthz_path, "/healthz");
    CU_ASSERT_STRING_EQUAL(c->readyz_path, "/readyz");
    CU_ASSERT_EQUAL(c->default_route.auth, CFG_ROUTE_REQUIRED);
    CU_ASSERT_EQUAL(c->default_route.scopes.n, 0);
    CU_ASSERT_EQUAL(c->security_headers.hsts_max_age, 31536000);
    CU_ASSERT_EQUAL(c->auth.mode, CFG_AUTH_NONE);
    CU_ASSERT(c->auth.api_key_enabled);
    CU_ASSERT_PTR_NOT_NULL(c->auth.keys);
    CU_ASSERT_PTR_NULL(c->auth.jwt_verifier);
    CU_ASSERT_EQUAL(c->auth.jwt.algorithms.n, 1);
    CU_ASSERT_EQUAL(c->auth.jwt.leeway_s, 30);
    CU_ASSERT_EQUAL(c->auth.lockout.max_failures, 10);
    CU_ASSERT_EQUAL(c->auth.lockout.max_backoff_s, 900);
    CU_ASSERT_EQUAL(c->revocation_max_token_lifetime_s, 86400); /* 1d */
    CU_ASSERT_STRING_EQUAL(c->audit_path, "-");
    CU_ASSERT_PTR_NULL(c->admin_token);
    CU_ASSERT_EQUAL(c->nroutes, 0);
    CU_ASSERT_EQUAL(atomic_load(&c->refs), 1);
    cfg_unref(c);
}

static void test_implicit_default_limit(void)
{
    cfg_t *c;

    clear_env();
    c = load_ok("auth: {mode: none}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(c->policy.nlimits, 1);
    CU_ASSERT_STRING_EQUAL(c->policy.limits[0].name, "default");
    CU_ASSERT_EQUAL(c->policy.limits[0].nby, 1);
    CU_ASSERT_EQUAL(c->policy.limits[0].by[0].kind, RL_BY_CLIENT);
    CU_ASSERT_EQUAL(c->policy.limits[0].rate.n, 60);
    CU_ASSERT_EQUAL(c->policy.limits[0].rate.period_ms, 60000);
    CU_ASSERT_EQUAL(c->policy.limits[0].rate.burst, 60);
    CU_ASSERT_EQUAL(c->policy.limits[0].mode, RL_MODE_ENFORCE);
    CU_ASSERT_EQUAL(c->policy.limits[0].on_redis_error, RL_ONERR_LOCAL);
    cfg_unref(c);
    /* `limits: []` says "no limits", not "the default one" */
    c = load_ok("auth: {mode: none}\nlimits: []\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->policy.nlimits, 0);
    cfg_unref(c);
}

static void test_full_example(void)
{
    cfg_t *c;
    const rl_limit_t *l;

    clear_env();
    setenv("JWT_SECRET", secret32, 1);
    c = cfg_load("fixtures/cfg-full.yaml", err, sizeof err);
    if (c == NULL)
        fprintf(stderr, "\n%s", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->admin_listen, "0.0.0.0:9090");
    CU_ASSERT_EQUAL(c->trusted_proxies.n, 1);
    CU_ASSERT_EQUAL(c->expected_replicas, 3);
    CU_ASSERT_EQUAL(c->redis.mode, CFG_REDIS_CLUSTER);
    CU_ASSERT_EQUAL_FATAL(c->redis.nodes.n, 1);
    CU_ASSERT_STRING_EQUAL(c->redis.nodes.v[0], "redis-0.redis:6379");
    CU_ASSERT_EQUAL(c->tickets.ttl_s, 30);
    CU_ASSERT_EQUAL(c->auth.mode, CFG_AUTH_ANY);
    CU_ASSERT_EQUAL(auth_keystore_count(c->auth.keys), 1);
    CU_ASSERT_PTR_NOT_NULL(auth_keystore_lookup(c->auth.keys, "orders-key-plaintext", 20));
    CU_ASSERT_PTR_NOT_NULL(c->auth.jwt_verifier);
    CU_ASSERT_STRING_EQUAL(c->auth.jwt.issuer, "https://issuer.example");
    CU_ASSERT_STRING_EQUAL(c->auth.jwt.audience, "tollgate");
    CU_ASSERT_STRING_EQUAL(c->auth.jwt.keys_file, "fixtures/cfg-jwks.json");
    CU_ASSERT_EQUAL(c->auth.lockout.window_s, 60);
    CU_ASSERT_EQUAL(c->auth.lockout.base_backoff_s, 1);
    CU_ASSERT_EQUAL(c->auth.lockout.max_backoff_s, 900);
    CU_ASSERT_EQUAL_FATAL(c->policy.nlimits, 2);
    l = &c->policy.limits[1];
    CU_ASSERT_STRING_EQUAL(l->name, "batch-orders");
    CU_ASSERT_STRING_EQUAL(l->match.path, "/advanced/batch-orders");
    CU_ASSERT_EQUAL(l->match.methods, RL_METHOD_POST);
    CU_ASSERT_EQUAL(l->rate.n, 10);
    CU_ASSERT_EQUAL(l->rate.burst, 10);
    CU_ASSERT_EQUAL_FATAL(c->policy.ntiers, 1);
    CU_ASSERT_STRING_EQUAL(c->policy.tiers[0].name, "gold");
    CU_ASSERT_EQUAL_FATAL(c->policy.tiers[0].n, 1);
    CU_ASSERT_STRING_EQUAL(c->policy.tiers[0].overrides[0].limit, "default");
    CU_ASSERT_EQUAL(c->policy.tiers[0].overrides[0].rate.n, 6000);
    CU_ASSERT_EQUAL_FATAL(c->nroutes, 1);
    CU_ASSERT_STRING_EQUAL(c->routes[0].name, "route-1");
    CU_ASSERT_STRING_EQUAL(c->routes[0].match.path_prefix, "/api/");
    CU_ASSERT_STRING_EQUAL(c->routes[0].upstream, "http://backend:8000");
    CU_ASSERT_EQUAL(c->routes[0].auth, CFG_ROUTE_REQUIRED);
    CU_ASSERT_EQUAL_FATAL(c->routes[0].scopes.n, 1);
    CU_ASSERT_STRING_EQUAL(c->routes[0].scopes.v[0], "nl-query:read");
    CU_ASSERT_EQUAL(c->routes[0].upstream_timeout_ms, 30000);
    CU_ASSERT_EQUAL_FATAL(c->cors_origins.n, 1);
    CU_ASSERT_STRING_EQUAL(c->cors_origins.v[0], "https://app.example.com");
    cfg_unref(c);
    clear_env();
}

static void test_defaults_without_file(void)
{
    cfg_t *c;

    clear_env();
    c = cfg_load(NULL, err, sizeof err);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "(defaults): auth.mode any needs API keys"));
    setenv("ALLOWED_API_KEYS", "dev-key-1", 1);
    c = cfg_load(NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NULL(c->path);
    CU_ASSERT_EQUAL(auth_keystore_count(c->auth.keys), 1);
    cfg_unref(c);
    clear_env();
}

static void test_values(void)
{
    cfg_t *c;

    clear_env();
    c = load_ok(
        "auth: {mode: none}\n"
        "health: {healthz_path: /livez, readyz_path: /ready}\n"
        "max_header_bytes: 32768\n"
        "max_connections: 50\n"
        "request_read_timeout_ms: 2500\n"
        "idle_timeout_ms: 75000\n"
        "client_ipv6_prefix: 56\n"
        "security_headers: {permissions_policy: \"camera=()\"}\n"
        "redis: {nodes: [\"[::1]:7000\", Redis.Local], tls: true, db: 3}\n"
        "trusted_proxies: []\n"
        "limits:\n"
        "  - name: per-tenant\n"
        "    match: {path_prefix: /v1/, methods: [GET, HEAD], host: API.example.com}\n"
        "    by: [ip, route, header:X-Tenant, claim:org]\n"
        "    rate: 5/s\n"
        "    burst: 20\n"
        "    mode: shadow\n"
        "    on_redis_error: closed\n"
        "routes:\n"
        "  - name: api\n"
        "    match: {path: /v1/x}\n"
        "    upstream: http://10.0.0.1/\n"
        "    auth: optional\n"
        "    tickets: true\n"
        "    upstream_timeout_ms: 1500\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->healthz_path, "/livez");
    CU_ASSERT_STRING_EQUAL(c->readyz_path, "/ready");
    CU_ASSERT_EQUAL(c->max_header_bytes, 32768);
    CU_ASSERT_EQUAL(c->max_connections, 50);
    CU_ASSERT_EQUAL(c->request_read_timeout_ms, 2500);
    CU_ASSERT_EQUAL(c->idle_timeout_ms, 75000);
    CU_ASSERT_EQUAL(c->client_ipv6_prefix, 56);
    CU_ASSERT_STRING_EQUAL(c->security_headers.permissions_policy, "camera=()");
    CU_ASSERT_EQUAL(c->redis.mode, CFG_REDIS_STANDALONE); /* nodes without a mode */
    CU_ASSERT_STRING_EQUAL(c->redis.nodes.v[0], "[::1]:7000");
    CU_ASSERT_STRING_EQUAL(c->redis.nodes.v[1], "redis.local:6379");
    CU_ASSERT(c->redis.tls);
    CU_ASSERT_EQUAL(c->redis.db, 3);
    CU_ASSERT_EQUAL(c->trusted_proxies.n, 0);
    CU_ASSERT_EQUAL_FATAL(c->policy.nlimits, 1);
    CU_ASSERT_EQUAL(c->policy.limits[0].match.methods, RL_METHOD_GET | RL_METHOD_HEAD);
    CU_ASSERT_STRING_EQUAL(c->policy.limits[0].match.host, "api.example.com");
    CU_ASSERT_EQUAL_FATAL(c->policy.limits[0].nby, 4);
    CU_ASSERT_EQUAL(c->policy.limits[0].by[1].kind, RL_BY_ROUTE);
    CU_ASSERT_EQUAL(c->policy.limits[0].by[2].kind, RL_BY_HEADER);
    CU_ASSERT_STRING_EQUAL(c->policy.limits[0].by[2].name, "x-tenant");
    CU_ASSERT_EQUAL(c->policy.limits[0].by[3].kind, RL_BY_CLAIM);
    CU_ASSERT_STRING_EQUAL(c->policy.limits[0].by[3].name, "org");
    CU_ASSERT_EQUAL(c->policy.limits[0].rate.n, 5);
    CU_ASSERT_EQUAL(c->policy.limits[0].rate.period_ms, 1000);
    CU_ASSERT_EQUAL(c->policy.limits[0].rate.burst, 20);
    CU_ASSERT_EQUAL(c->policy.limits[0].mode, RL_MODE_SHADOW);
    CU_ASSERT_EQUAL(c->policy.limits[0].on_redis_error, RL_ONERR_CLOSED);
    CU_ASSERT_EQUAL_FATAL(c->nroutes, 1);
    CU_ASSERT_STRING_EQUAL(c->routes[0].name, "api");
    CU_ASSERT_STRING_EQUAL(c->routes[0].upstream, "http://10.0.0.1:80");
    CU_ASSERT_EQUAL(c->routes[0].auth, CFG_ROUTE_OPTIONAL);
    CU_ASSERT(c->routes[0].tickets);
    CU_ASSERT_EQUAL(c->routes[0].upstream_timeout_ms, 1500);
    cfg_unref(c);
}

/* ---- errors, each with FILE:LINE ----------------------------------------- */

static void test_err_unknown_key(void)
{
    clear_env();
    expect_err("auth: {mode: none}\nlisen: x\n",
               "t.yaml:2: unknown key 'lisen' at the top level");
    expect_err("auth: {mode: none}\n"
               "limits:\n"
               "  - name: a\n"
               "    rate: 1/s\n"
               "    burts: 5\n",
               "t.yaml:5: unknown key 'burts' in limits[0]");
    expect_err("auth:\n  mode: none\n  jwt: {isuser: x}\n",
               "t.yaml:3: unknown key 'isuser' in auth.jwt");
    expect_err("auth: {mode: none}\nroutes:\n  - match: {prefix: /x}\n",
               "t.yaml:3: unknown key 'prefix' in routes[0].match");
}

static void test_err_every_problem(void)
{
    clear_env();
    CU_ASSERT_PTR_NULL(load("auth: {mode: none}\nfoo: 1\nbar: 2\nthreads: many\n"));
    CU_ASSERT_EQUAL(count_lines(err), 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml:2: unknown key 'foo'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml:3: unknown key 'bar'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml:4: threads: expected an integer"));
    /* a small buffer holds whole lines only */
    {
        char small[60];
        cfg_t *c = cfg_load_string("auth: {mode: none}\nfoo: 1\nbar: 2\n", 31, "t.yaml",
                                   small, sizeof small);

        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_STRING_EQUAL(small, "t.yaml:2: unknown key 'foo' at the top level\n");
    }
}

static void test_err_types(void)
{
    clear_env();
    expect_err("auth: {mode: none}\nthreads: 300\n",
               "t.yaml:2: threads: expected an integer from 0 to 256, got '300'");
    expect_err("auth: {mode: none}\nredis: [a]\n",
               "t.yaml:2: redis: expected a mapping, got a list");
    expect_err("auth: {mode: none}\nredis: {tls: yes}\n",
               "t.yaml:2: redis.tls: expected true or false, got 'yes'");
    expect_err("auth: {mode: none}\nlisten: {a: 1}\n",
               "t.yaml:2: listen: expected a string, got a mapping");
    expect_err(
        "auth: {mode: none}\ntickets: {ttl: 10x}\n",
        "t.yaml:2: tickets.ttl: expected a duration (30s, 1m, 1h, 1d) from 1s to 86400s, "
        "got '10x'");
    expect_err("auth: {mode: cloud}\n",
               "t.yaml:1: auth.mode: 'cloud' is not one of none, api_key, jwt, any");
    expect_err("auth: {mode: none}\nexpected_replicas: 0\n",
               "t.yaml:2: expected_replicas: expected an integer from 1 to 10000, got '0'");
    expect_err(
        "auth: {mode: none}\nclient_ipv6_prefix: 129\n",
        "t.yaml:2: client_ipv6_prefix: expected an integer from 32 to 128, got '129'");
    expect_err("auth: {mode: none}\nclient_ipv6_prefix: 0\n",
               "t.yaml:2: client_ipv6_prefix: expected an integer from 32 to 128, got '0'");
    expect_err(
        "auth: {mode: none}\nclient_ipv6_prefix: /64\n",
        "t.yaml:2: client_ipv6_prefix: expected an integer from 32 to 128, got '/64'");
    expect_err(
        "auth: {mode: none}\nforward_auth: {nginx_rate_limited_status: 200}\n",
        "t.yaml:2: forward_auth.nginx_rate_limited_status: expected an integer from 400 "
        "to 599, got '200'");
    expect_err("auth: {mode: none}\nredis: {timeout_ms: 0}\n",
               "t.yaml:2: redis.timeout_ms: expected an integer from 1 to 60000, got '0'");
    /* a replica's resync of the bans index reads at most 100,000 entries
     * (auth/shared.c): a larger cap would leave it never ready */
    expect_err("auth:\n  mode: none\n  bans: {max_entries: 100001}\n",
               "t.yaml:3: auth.bans.max_entries: expected an integer from 1 to 100000, "
               "got '100001'");
    expect_err("auth: {mode: none}\nauth: {mode: none}\n",
               "t.yaml:2: duplicate key 'auth' in the top level");
    expect_err("- a\n- b\n", "t.yaml:1: the top level: expected a mapping, got a list");
    expect_err("auth: {mode: none}\n---\nthreads: 1\n",
               "t.yaml:3: only one YAML document is allowed");
    expect_err_part("auth: {mode: none}\nmax_connections: 0\n", "t.yaml:2");
    expect_err_part("auth: {mode: none}\nrequest_read_timeout_ms: 50\n", "t.yaml:2");
    expect_err_part("auth: {mode: none\nthreads: 1\n", "t.yaml:");
    expect_err_part("auth: {mode: none\nthreads: 1\n", "YAML: ");
    expect_err("auth: {mode: none}\nredis: {password: hunter2}\n",
               "t.yaml:2: redis.password: secrets do not belong in the config file; set "
               "REDIS_PASSWORD or REDIS_PASSWORD_FILE");
    expect_err("auth: {mode: none}\nlisten: nowhere\n",
               "t.yaml:2: listen: 'nowhere' is not host:port");
    expect_err(
        "auth: {mode: none}\nsecurity_headers: {content_security_policy: \"a\\nb\"}\n",
        "t.yaml:2: security_headers.content_security_policy: contains a control character");
}

static void test_err_bad_rate(void)
{
    clear_env();
    expect_err_part(
        "auth: {mode: none}\n"
        "limits:\n"
        "  - name: a\n"
        "    rate: 6o/minute\n",
        "t.yaml:4: limits[0].rate: bad rate '6o/minute' (N/second|minute|hour|day): ");
    expect_err_part("auth: {mode: none}\nlimits:\n  - name: a\n    rate: 10/fortnight\n",
                    "t.yaml:4: limits[0].rate: bad rate '10/fortnight'");
    expect_err("auth: {mode: none}\nlimits:\n  - name: a\n    by: [ip]\n",
               "t.yaml:3: limits[0]: missing 'rate'");
    expect_err("auth: {mode: none}\nlimits:\n  - rate: 1/s\n",
               "t.yaml:3: limits[0]: missing 'name'");
    expect_err(
        "auth: {mode: none}\nlimits:\n  - {name: a, rate: 1/s, burst: 0}\n",
        "t.yaml:3: limits[0].burst: expected an integer from 1 to 10000000, got '0'");
    expect_err(
        "auth: {mode: none}\nlimits:\n  - {name: a, rate: 1/s}\n  - {name: a, rate: 2/s}\n",
        "t.yaml:4: limits[1] (a): name also used by limits[0]");
    expect_err("auth: {mode: none}\nlimits:\n  - {name: 'a b', rate: 1/s}\n",
               "t.yaml:3: limits[0].name: 'a b' is not a name ([A-Za-z0-9._-], 1 to 64 "
               "characters)");
}

static void test_err_bad_by(void)
{
    clear_env();
    expect_err(
        "auth: {mode: none}\nlimits:\n  - name: a\n    rate: 1/s\n    by: [clinet]\n",
        "t.yaml:5: limits[0].by[0]: 'clinet' is not client, ip, route, header:NAME or "
        "claim:NAME");
    expect_err(
        "auth: {mode: none}\nlimits:\n  - name: a\n    rate: 1/s\n    by: [ip, 'header:a "
        "b']\n",
        "t.yaml:5: limits[0].by[1]: 'header:a b' is not client, ip, route, header:NAME "
        "or claim:NAME");
    expect_err("auth: {mode: none}\nlimits:\n  - name: a\n    rate: 1/s\n    by: []\n",
               "t.yaml:5: limits[0].by: needs at least one entry");
}

/* allowed_methods and other_methods: values, defaults, precise errors. */
static void test_allowed_methods(void)
{
    cfg_t *c;

    clear_env();
    c = load_ok("auth: {mode: none}\n");
    if (c != NULL) {
        CU_ASSERT_EQUAL(c->allowed_methods, CFG_ALLOWED_METHODS_DEFAULT);
        CU_ASSERT_FALSE(c->allowed_methods & (RL_METHOD_TRACE | RL_METHOD_CONNECT));
        cfg_unref(c);
    }
    c = load_ok(
        "auth: {mode: none}\nallowed_methods: [GET, TRACE]\n"
        "routes:\n"
        "  - {name: a, match: {path_prefix: /x, methods: [GET]}, other_methods: deny}\n"
        "  - {name: b, match: {path_prefix: /y, methods: [GET]}, "
        "other_methods: next_route}\n");
    if (c != NULL) {
        CU_ASSERT_EQUAL(c->allowed_methods, RL_METHOD_GET | RL_METHOD_TRACE);
        CU_ASSERT_TRUE(c->routes[0].other_methods_deny);
        CU_ASSERT_FALSE(c->routes[1].other_methods_deny);
        cfg_unref(c);
    }
    expect_err("auth: {mode: none}\nallowed_methods: [GET,\n  PURGE]\n",
               "t.yaml:3: allowed_methods[1]: 'PURGE' is not GET, HEAD, POST, PUT, PATCH, "
               "DELETE, OPTIONS or TRACE (case-sensitive; extension methods such as PURGE "
               "cannot be allowed)");
    expect_err("auth: {mode: none}\nallowed_methods: [get]\n",
               "t.yaml:2: allowed_methods[0]: 'get' is not GET, HEAD, POST, PUT, PATCH, "
               "DELETE, OPTIONS or TRACE (case-sensitive; extension methods such as PURGE "
               "cannot be allowed)");
    expect_err("auth: {mode: none}\nallowed_methods: [CONNECT]\n",
               "t.yaml:2: allowed_methods[0]: CONNECT cannot be allowed (tollgate "
               "authorizes no tunnels)");
    expect_err("auth: {mode: none}\nallowed_methods: []\n",
               "t.yaml:2: allowed_methods: list at least one method");
    expect_err("auth: {mode: none}\nallowed_methods: GET\n",
               "t.yaml:2: allowed_methods: expected a list, got a scalar");
    expect_err("auth: {mode: none}\nroutes:\n  - {name: a, match: {path: /a}, "
               "other_methods: deny}\n",
               "t.yaml:3: routes[0] (a): other_methods: deny needs match.methods");
    expect_err("auth: {mode: none}\nroutes:\n  - name: a\n    other_methods: Deny\n",
               "t.yaml:4: routes[0].other_methods: 'Deny' is not one of next_route, deny");
}

static void test_err_bad_method(void)
{
    clear_env();
    expect_err(
        "auth: {mode: none}\n"
        "limits:\n"
        "  - name: a\n"
        "    rate: 1/s\n"
        "    match:\n"
        "      methods: [GET,\n"
        "                GTE]\n",
        "t.yaml:7: limits[0].match.methods[1]: unknown method 'GTE' (GET, HEAD, POST, "
        "PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE; case-sensitive)");
    expect_err(
        "auth: {mode: none}\nlimits:\n  - {name: a, rate: 1/s, match: {path: api}}\n",
        "t.yaml:3: limits[0].match.path: 'api' must start with '/' and have no query");
    expect_err(
        "auth: {mode: none}\nlimits:\n  - {name: a, rate: 1/s, match: {path: /a/../b}}\n",
        "t.yaml:3: limits[0].match.path: '/a/../b' is not in normal form (requests are "
        "matched as normalized)");
}

static void test_err_tier(void)
{
    clear_env();
    expect_err("auth: {mode: none}\n"
               "tiers:\n"
               "  gold:\n"
               "    defualt: 6000/minute\n",
               "t.yaml:4: tiers.gold: 'defualt' is not a defined limit");
    expect_err_part("auth: {mode: none}\ntiers:\n  gold: {default: lots}\n",
                    "t.yaml:3: tiers.gold.default: bad rate 'lots'");
    expect_err("auth: {mode: none}\ntiers: [gold]\n",
               "t.yaml:2: tiers: expected a mapping, got a list");
}

static void test_err_missing_file(void)
{
    clear_env();
    expect_err(
        "auth:\n  mode: api_key\n  api_keys_file: fixtures/cfg-nope\n",
        "t.yaml:3: auth.api_keys_file: cannot read 'fixtures/cfg-nope': No such file or "
        "directory");
    expect_err(
        "auth: {mode: none}\nredis: {tls: true, tls_ca_file: /nonexistent/ca.pem}\n",
        "t.yaml:2: redis.tls_ca_file: cannot read '/nonexistent/ca.pem': No such file or "
        "directory");
    expect_err("auth: {mode: none}\naudit: {path: /nonexistent/dir/audit.log}\n",
               "t.yaml:2: audit.path: directory '/nonexistent/dir' does not exist");
    setenv("API_KEYS_FILE", "/nonexistent/keys", 1);
    expect_err(
        "auth: {mode: none}\n",
        "env API_KEYS_FILE: auth.api_keys_file: cannot read '/nonexistent/keys': No such "
        "file or directory");
    clear_env();
    /* the key file's own errors carry its name and line */
    expect_err_part("auth: {api_keys_file: fixtures/apikeys-dup-digest.txt}\n",
                    "fixtures/apikeys-dup-digest.txt:");
}

static void test_err_upstream(void)
{
    clear_env();
    expect_err(
        "auth: {mode: none}\nroutes:\n  - match: {path_prefix: /api/}\n"
        "    upstream: http://backend:8000/api\n",
        "t.yaml:4: routes[0].upstream: must be http://host[:port] without a path or query "
        "(the request's path is forwarded unchanged)");
    expect_err(
        "auth: {mode: none}\nroutes:\n  - {match: {path: /x}, upstream: 'https://b'}\n",
        "t.yaml:3: routes[0].upstream: https upstreams are not supported yet; use http://");
    expect_err(
        "auth: {mode: none}\nroutes:\n  - {match: {path: /x}, upstream: 'ftp://b'}\n",
        "t.yaml:3: routes[0].upstream: expected http://host[:port]");
    expect_err("auth: {mode: none}\nroutes:\n  - {match: {path: /x}, upstream: "
               "'http://b:99999'}\n",
               "t.yaml:3: routes[0].upstream: expected http://host[:port]");
}

static void test_err_route_overlap(void)
{
    clear_env();
    expect_err(
        "auth: {mode: none}\nroutes:\n  - match: {path_prefix: /auth}\n",
        "t.yaml:3: routes[0] (route-1): its match overlaps tollgate's own path /auth "
        "(forward_auth.path); use default_route for requests no route matches");
    expect_err_part(
        "auth: {mode: none}\nroutes:\n  - name: x\n    match: {path: /auth/check}\n",
        "t.yaml:3: routes[0] (x): its match overlaps tollgate's own path /auth");
    expect_err_part("auth: {mode: none}\nroutes:\n  - match: {path: /healthz}\n",
                    "overlaps tollgate's own path /healthz (health.healthz_path)");
    expect_err_part("auth: {mode: none}\nroutes:\n  - match: {methods: [GET]}\n",
                    "overlaps tollgate's own path /v1/tickets (tickets.path)");
    expect_err("auth: {mode: none}\ntickets: {path: /auth/tickets}\n",
               "t.yaml:2: tickets.path /auth/tickets overlaps forward_auth.path /auth");
    /* no overlap: a sibling path */
    cfg_unref(
        load_ok("auth: {mode: none}\nroutes:\n  - match: {path_prefix: /authors/}\n"));
}

static void test_err_production(void)
{
    clear_env();
    expect_err("environment: production\nauth:\n  mode: none\n",
               "t.yaml:3: auth.mode none is not allowed in production");
    setenv("ENVIRONMENT", "production", 1);
    setenv("AUTH_MODE", "none", 1);
    expect_err("{}\n", "env AUTH_MODE: auth.mode none is not allowed in production");
    clear_env();

    setenv("JWT_SECRET", "short", 1);
    expect_err("environment: production\nauth: {mode: jwt}\n",
               "env JWT_SECRET: the HS secret is 5 bytes; production needs at least 32");
    CU_ASSERT_PTR_NULL(strstr(err, "short"));
    clear_env();
    /* JWT_SECRET_FILE: the trailing newline is not part of the secret */
    setenv("JWT_SECRET_FILE", "fixtures/cfg-jwt-secret", 1);
    expect_err(
        "environment: production\nauth: {mode: jwt}\n",
        "env JWT_SECRET_FILE: the HS secret is 31 bytes; production needs at least 32");
    CU_ASSERT_PTR_NULL(strstr(err, "this-secret"));
    clear_env();

    setenv("ALLOWED_API_KEYS", "k-1234567890", 1);
    expect_err(
        "environment: production\ncors:\n  allowed_origins:\n    - https://ok.example\n"
        "    - '*'\n",
        "t.yaml:5: cors.allowed_origins: CORS origin \"*\": wildcards are not allowed "
        "(refused in production)");
    expect_err_part(
        "environment: production\ncors: {allowed_origins: ['ftp://x.example']}\n",
        "t.yaml:2: cors.allowed_origins: CORS origin \"ftp://x.example\": ");
    setenv("API_KEY_ENABLED", "false", 1);
    setenv("JWT_SECRET", secret32, 1);
    expect_err(
        "environment: production\n",
        "env API_KEY_ENABLED: API keys cannot be disabled (API_KEY_ENABLED=false) in "
        "production");
    clear_env();
}

static void test_dev_drops_bad_origin(void)
{
    cfg_t *c;

    clear_env();
    c = load_ok(
        "auth: {mode: none}\n"
        "cors: {allowed_origins: ['*', https://app.example.com, 'https://x.example/p']}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(c->cors_origins.n, 1);
    CU_ASSERT_STRING_EQUAL(c->cors_origins.v[0], "https://app.example.com");
    cfg_unref(c);
    /* a short HS secret only warns in development */
    setenv("JWT_SECRET", "short", 1);
    c = load_ok("auth: {mode: jwt}\n");
    CU_ASSERT_PTR_NOT_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(c ? c->auth.jwt_verifier : NULL);
    cfg_unref(c);
    clear_env();
}

static void test_err_credentials(void)
{
    clear_env();
    expect_err("auth:\n  mode: jwt\n",
               "t.yaml:2: auth.mode jwt needs JWT_SECRET, JWT_SECRET_FILE or a JWKS "
               "(auth.jwt.keys_file, JWKS_FILE)");
    expect_err(
        "auth: {mode: api_key}\n",
        "t.yaml:1: auth.mode api_key needs API keys: auth.api_keys_file, API_KEYS_FILE or "
        "ALLOWED_API_KEYS");
    setenv("ALLOWED_API_KEYS", "k-1", 1);
    setenv("API_KEY_ENABLED", "false", 1);
    expect_err(
        "auth: {mode: api_key}\n",
        "t.yaml:1: auth.mode api_key, but API keys are disabled (API_KEY_ENABLED=false)");
    clear_env();
    /* JWT_SECRET is pinned to one HS algorithm */
    setenv("JWT_SECRET", secret32, 1);
    expect_err_part("auth:\n  mode: jwt\n  jwt: {algorithms: [HS256, HS512]}\n",
                    "t.yaml:3: auth.jwt: algorithms: list only one of HS256/HS384/HS512");
    expect_err(
        "auth:\n  mode: jwt\n  jwt: {algorithms: [none]}\n",
        "t.yaml:3: auth.jwt.algorithms[0]: 'none' is not a supported algorithm (HS, RS, "
        "ES, PS with 256, 384, 512; EdDSA)");
    clear_env();
}

/* ---- environment -------------------------------------------------------- */

static void test_env_rate_limit(void)
{
    cfg_t *c;

    clear_env();
    setenv("RATE_LIMIT_PER_MINUTE", "120", 1);
    c = load_ok("auth: {mode: none}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->policy.limits[0].rate.n, 120);
    CU_ASSERT_EQUAL(c->policy.limits[0].rate.burst, 120);
    cfg_unref(c);
    /* the file's limit `default`: rate changes, an explicit burst stays */
    c = load_ok("auth: {mode: none}\nlimits:\n  - {name: x, rate: 1/s}\n"
                "  - {name: default, rate: 5/hour, burst: 7}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->policy.limits[1].rate.n, 120);
    CU_ASSERT_EQUAL(c->policy.limits[1].rate.period_ms, 60000);
    CU_ASSERT_EQUAL(c->policy.limits[1].rate.burst, 7);
    CU_ASSERT_EQUAL(c->policy.limits[0].rate.n, 1);
    cfg_unref(c);
    expect_err(
        "auth: {mode: none}\nlimits:\n  - {name: x, rate: 1/s}\n",
        "env RATE_LIMIT_PER_MINUTE: no limit named 'default' in limits: to apply it to");
    setenv("RATE_LIMIT_PER_MINUTE", "ten", 1);
    expect_err("auth: {mode: none}\n",
               "env RATE_LIMIT_PER_MINUTE: expected an integer from 1 to 10000000");
    clear_env();
}

static void test_env_api_keys(void)
{
    cfg_t *c;
    char *dump;

    clear_env();
    setenv("ALLOWED_API_KEYS", "first-plain-key, second-plain-key,,", 1);
    c = load_ok("auth: {mode: api_key}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(auth_keystore_count(c->auth.keys), 2);
    CU_ASSERT_PTR_NOT_NULL(auth_keystore_lookup(c->auth.keys, "second-plain-key", 16));
    dump = cfg_dump_json(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dump);
    CU_ASSERT_PTR_NULL(strstr(dump, "plain-key"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "\"api_keys\": 2"));
    free(dump);
    cfg_unref(c);
    /* with the key file too */
    setenv("API_KEYS_FILE", "fixtures/cfg-api-keys", 1);
    c = load_ok("auth: {mode: api_key}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(auth_keystore_count(c->auth.keys), 3);
    CU_ASSERT_STRING_EQUAL(c->auth.api_keys_file, "fixtures/cfg-api-keys");
    cfg_unref(c);
    setenv("ALLOWED_API_KEYS", "dup-key-123,dup-key-123", 1);
    expect_err("auth: {mode: api_key}\n",
               "env ALLOWED_API_KEYS: entry 2 refused (a duplicate?)");
    CU_ASSERT_PTR_NULL(strstr(err, "dup-key"));
    clear_env();
}

static void test_env_redis_url(void)
{
    cfg_t *c;
    char *dump;

    clear_env();
    setenv("REDIS_URL", "rediss://app:s3cr%40tPw@Redis.Example:6380/2", 1);
    c = load_ok("auth: {mode: none}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->redis.mode, CFG_REDIS_STANDALONE);
    CU_ASSERT(c->redis.tls);
    CU_ASSERT_EQUAL_FATAL(c->redis.nodes.n, 1);
    CU_ASSERT_STRING_EQUAL(c->redis.nodes.v[0], "redis.example:6380");
    CU_ASSERT_STRING_EQUAL(c->redis.username, "app");
    CU_ASSERT_STRING_EQUAL(c->redis.password, "s3cr@tPw");
    CU_ASSERT_EQUAL(c->redis.db, 2);
    dump = cfg_dump_json(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dump);
    CU_ASSERT_PTR_NULL(strstr(dump, "s3cr"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "\"password\": \"<redacted>\""));
    free(dump);
    cfg_unref(c);

    /* the file said cluster: it stays cluster; REDIS_PASSWORD wins */
    setenv("REDIS_URL", "redis://:urlpass@10.1.2.3", 1);
    setenv("REDIS_PASSWORD", "envpass", 1);
    c = load_ok("auth: {mode: none}\nredis: {mode: cluster, nodes: [a:1, b:2]}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->redis.mode, CFG_REDIS_CLUSTER);
    CU_ASSERT_FALSE(c->redis.tls);
    CU_ASSERT_EQUAL(c->redis.nodes.n, 1);
    CU_ASSERT_STRING_EQUAL(c->redis.nodes.v[0], "10.1.2.3:6379");
    CU_ASSERT_PTR_NULL(c->redis.username);
    CU_ASSERT_STRING_EQUAL(c->redis.password, "envpass");
    cfg_unref(c);
    unsetenv("REDIS_PASSWORD");

    setenv("REDIS_URL", "http://u:topsecret@h:1", 1);
    expect_err("auth: {mode: none}\n",
               "env REDIS_URL: must start with redis:// or rediss://");
    CU_ASSERT_PTR_NULL(strstr(err, "topsecret"));
    setenv("REDIS_URL", "redis://u:topsecret@h:1/x", 1);
    expect_err("auth: {mode: none}\n",
               "env REDIS_URL: the database must be a number from 0 to 65535");
    CU_ASSERT_PTR_NULL(strstr(err, "topsecret"));
    setenv("REDIS_URL", "redis://u:top%zzsecret@h:1", 1);
    expect_err("auth: {mode: none}\n",
               "env REDIS_URL: bad percent-escape in user or password");
    setenv("REDIS_URL", "redis://h:1/3", 1);
    expect_err("auth: {mode: none}\nredis: {mode: cluster}\n",
               "env REDIS_URL: redis.db: Redis Cluster has only database 0");
    clear_env();
}

/* ADMIN_TOKEN is `admin write`; admin_tokens_file adds its lines; a short
 * token is refused in production only; secrets_version follows the file. */
static void test_admin_tokens(void)
{
    cfg_t *c, *d;
    FILE *f;
    const char *path = "fixtures/admin-tokens-tmp";

    clear_env();
    setenv("ADMIN_TOKEN", secret32, 1);
    c = load_ok("auth: {mode: none}\nadmin_tokens_file: fixtures/admin-tokens\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(auth_admintok_count(c->admin_tokens), 3);
    CU_ASSERT_STRING_EQUAL(auth_admintok_get(c->admin_tokens, 0)->id, "admin");
    CU_ASSERT_STRING_EQUAL(auth_admintok_get(c->admin_tokens, 1)->id, "sre-dashboard");
    CU_ASSERT_EQUAL(auth_admintok_get(c->admin_tokens, 1)->scope, AUTH_ADMIN_READ);
    CU_ASSERT_PTR_EQUAL(auth_admintok_match(c->admin_tokens, secret32, 32),
                        auth_admintok_get(c->admin_tokens, 0));
    {
        char *dump = cfg_dump_json(c);

        CU_ASSERT_PTR_NOT_NULL(dump);
        CU_ASSERT_PTR_NULL(dump ? strstr(dump, "read-token-0123") : NULL);
        CU_ASSERT_PTR_NOT_NULL(dump ? strstr(dump, "\"admin_tokens_file\"") : NULL);
        free(dump);
    }
    /* the same token twice, in the file and ADMIN_TOKEN: refused */
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "other write %s\n", secret32);
    fclose(f);
    expect_err_part(
        "auth: {mode: none}\nadmin_tokens_file: fixtures/admin-tokens-tmp\n",
        "fixtures/admin-tokens-tmp:1: admin token other has the same token as admin");
    CU_ASSERT_PTR_NULL(strstr(err, secret32));
    /* a short token: a warning in development, refused in production */
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "short read tooshort-token\n");
    fclose(f);
    d = load_ok("auth: {mode: none}\nadmin_tokens_file: fixtures/admin-tokens-tmp\n");
    CU_ASSERT_PTR_NOT_NULL(d);
    CU_ASSERT_STRING_NOT_EQUAL(c->secrets_version, d ? d->secrets_version : "");
    cfg_unref(d);
    setenv("ENVIRONMENT", "production", 1);
    setenv("ALLOWED_API_KEYS", "some-long-api-key", 1);
    expect_err_part("auth: {mode: api_key}\nadmin_tokens_file: fixtures/admin-tokens-tmp\n",
                    "admin token short is 14 bytes; production needs at least 32");
    CU_ASSERT_PTR_NULL(strstr(err, "tooshort"));
    unsetenv("ENVIRONMENT");
    unsetenv("ALLOWED_API_KEYS");
    /* bad lines say where, never what the token was */
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "# comment\n\nbad\"id write some-secret-token\n");
    fclose(f);
    expect_err_part(
        "auth: {mode: none}\nadmin_tokens_file: fixtures/admin-tokens-tmp\n",
        "fixtures/admin-tokens-tmp:3: an admin token id is 1..64 of [A-Za-z0-9._-]");
    CU_ASSERT_PTR_NULL(strstr(err, "some-secret-token"));
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "x admin some-secret-token\n");
    fclose(f);
    expect_err_part("auth: {mode: none}\nadmin_tokens_file: fixtures/admin-tokens-tmp\n",
                    "fixtures/admin-tokens-tmp:1: the scope is read or write");
    expect_err_part("admin_tokens_file: fixtures/nope\nauth: {mode: none}\n",
                    "admin_tokens_file: cannot read 'fixtures/nope'");
    unlink(path);
    cfg_unref(c);
    clear_env();
}

static void test_env_misc(void)
{
    cfg_t *c;
    char *dump;

    clear_env();
    setenv("ENVIRONMENT", "production", 1);
    setenv("AUTH_MODE", "api_key", 1);
    setenv("ALLOWED_API_KEYS", "some-long-api-key", 1);
    setenv("CORS_ALLOWED_ORIGINS", "https://a.example, http://b.example:8080", 1);
    setenv("MAX_REQUEST_BODY_BYTES", "4096", 1);
    setenv("AUDIT_LOG_PATH", "off", 1);
    setenv("ADMIN_TOKEN", "admin-token-value-of-at-least-32-bytes", 1);
    c = load_ok("auth: {mode: none}\ncors: {allowed_origins: [https://file.example]}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->environment, CFG_ENV_PRODUCTION);
    CU_ASSERT_EQUAL(c->auth.mode, CFG_AUTH_API_KEY);
    CU_ASSERT_EQUAL_FATAL(c->cors_origins.n, 2);
    CU_ASSERT_STRING_EQUAL(c->cors_origins.v[1], "http://b.example:8080");
    CU_ASSERT_EQUAL(c->max_body_bytes, 4096);
    CU_ASSERT_STRING_EQUAL(c->audit_path, "off");
    CU_ASSERT_STRING_EQUAL(c->admin_token, "admin-token-value-of-at-least-32-bytes");
    dump = cfg_dump_json(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dump);
    CU_ASSERT_PTR_NULL(strstr(dump, "admin-token-value"));
    CU_ASSERT_EQUAL(auth_admintok_count(c->admin_tokens), 1);
    CU_ASSERT_STRING_EQUAL(auth_admintok_get(c->admin_tokens, 0)->id, "admin");
    CU_ASSERT_EQUAL(auth_admintok_get(c->admin_tokens, 0)->scope, AUTH_ADMIN_WRITE);
    CU_ASSERT_PTR_NULL(strstr(dump, "some-long-api-key"));
    free(dump);
    cfg_unref(c);
    setenv("ALLOWED_ORIGINS", "https://c.example", 1);
    expect_err("{}\n", "env CORS_ALLOWED_ORIGINS: differs from ALLOWED_ORIGINS; set one");
    clear_env();

    setenv("ENVIRONMENT", "staging", 1);
    setenv("API_KEY_ENABLED", "maybe", 1);
    setenv("JWT_SECRET", secret32, 1);
    setenv("JWT_SECRET_FILE", "fixtures/cfg-jwt-secret", 1);
    setenv("ADMIN_TOKEN_FILE", "/nonexistent/token", 1);
    CU_ASSERT_PTR_NULL(load("auth: {mode: none}\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err, "env ENVIRONMENT: expected development or production\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "env API_KEY_ENABLED: expected true or false\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err, "env JWT_SECRET: set JWT_SECRET or JWT_SECRET_FILE, not both\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(
        err, "env ADMIN_TOKEN_FILE: cannot read '/nonexistent/token': No such file"));
    CU_ASSERT_PTR_NULL(strstr(err, secret32));
    clear_env();
}

/* ---- dump, version, references ------------------------------------------ */

static void test_dump_json(void)
{
    cfg_t *c;
    char *dump;
    json_t *j;
    json_error_t je;

    clear_env();
    setenv("JWT_SECRET", secret32, 1);
    c = cfg_load("fixtures/cfg-full.yaml", err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    dump = cfg_dump_json(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dump);
    j = json_loads(dump, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "version")), c->version);
    CU_ASSERT(json_is_null(json_object_get(j, "admin_token")));
    CU_ASSERT(json_is_null(json_object_get(json_object_get(j, "redis"), "password")));
    CU_ASSERT_EQUAL(
        json_integer_value(json_object_get(json_object_get(j, "auth"), "api_keys")), 1);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(j, "limits"), 1), "rate"),
            "rate")),
        "10/minute");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_array_get(json_object_get(j, "trusted_proxies"), 0)),
        "10.0.0.0/8");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "client_ipv6_prefix")), 64);
    CU_ASSERT_PTR_NULL(strstr(dump, secret32));
    CU_ASSERT_PTR_NULL(strstr(dump, "f788feb7")); /* never a key digest */
    json_decref(j);
    free(dump);
    cfg_unref(c);
    clear_env();
}

/* ---- things configured that can never apply ------------------------------- */

/* Load `yaml` with log warnings captured; the text goes to `warns`. */
static cfg_t *load_warns(const char *yaml, char *warns, size_t len)
{
    FILE *tmp = tmpfile();
    int saved = dup(2);
    size_t n = 0;
    cfg_t *c;

    CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
    fflush(stderr);
    dup2(fileno(tmp), 2);
    log_set_level(LOG_WARN);
    c = load(yaml);
    log_set_level(LOG_ERROR);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    n = fread(warns, 1, len - 1, tmp);
    warns[n] = '\0';
    fclose(tmp);
    return c;
}

/* In development: loads, with a warning holding `part`. */
static void expect_warn(const char *yaml, const char *part)
{
    char w[4096];
    cfg_t *c = load_warns(yaml, w, sizeof w);

    if (c == NULL)
        fprintf(stderr, "\nunexpected errors:\n%s", err);
    CU_ASSERT_PTR_NOT_NULL(c);
    if (strstr(w, part) == NULL)
        fprintf(stderr, "\nwanted warning: %s\ngot:\n%s", part, w);
    CU_ASSERT_PTR_NOT_NULL(strstr(w, part));
    cfg_unref(c);
}

/* Loads with no warning at all. */
static void expect_quiet(const char *yaml)
{
    char w[4096];
    cfg_t *c = load_warns(yaml, w, sizeof w);

    if (c == NULL || w[0] != '\0')
        fprintf(stderr, "\nunexpected (%s):\n%s%s", yaml, c == NULL ? err : "", w);
    CU_ASSERT_PTR_NOT_NULL(c);
    CU_ASSERT_STRING_EQUAL(w, "");
    cfg_unref(c);
}

/* The case: algorithms set, no key at all. */
static void test_never_alg_without_key(void)
{
    clear_env();
    setenv("ALLOWED_API_KEYS", "some-key-for-any-mode-01", 1);
    expect_err("environment: production\nauth:\n  jwt:\n    algorithms: [HS256]\n",
               "t.yaml:4: auth.jwt.algorithms is set but no JWT key is configured "
               "(JWT_SECRET, JWT_SECRET_FILE, JWKS_FILE, auth.jwt.keys_file or providers); "
               "every token would be refused with reason no_key (refused in production)");
    expect_warn("auth:\n  jwt:\n    algorithms: [HS256]\n",
                "t.yaml:3: auth.jwt.algorithms is set but no JWT key");
    /* the default list, untouched, in an API-key-only setup: nothing to say */
    expect_quiet("auth: {mode: any}\n");
    /* with its key: fine */
    setenv("JWT_SECRET", secret32, 1);
    expect_quiet("environment: production\nauth:\n  jwt:\n    algorithms: [HS256]\n");
    /* a family without a key: RS256 listed, only JWT_SECRET */
    expect_err_part(
        "environment: production\nauth:\n  jwt:\n    algorithms: [HS256, RS256, "
        "PS256]\n",
        "t.yaml:4: auth.jwt: algorithms RS256, PS256 have no key to check them "
        "(a JWKS keys_file with keys of that type)");
    expect_warn("auth:\n  jwt:\n    algorithms: [HS256, ES256]\n",
                "algorithms ES256 have no key to check them");
    clear_env();
    /* a family with keys, one algorithm without: a warning, in production too */
    setenv("ALLOWED_API_KEYS", "some-key-for-any-mode-01", 1);
    expect_warn("environment: production\nauth:\n  jwt:\n    keys_file: "
                "fixtures/cfg-jwks.json\n    algorithms: [ES256, ES384]\n",
                "ES384 is listed but no key is pinned to it");
    /* a provider with a JWKS file of EC keys, listing RS256 too */
    expect_err_part(
        "environment: production\nauth:\n  jwt:\n    providers:\n      - {name: idp, "
        "issuer: "
        "https://idp.example, keys_file: fixtures/cfg-jwks.json, algorithms: [ES256, "
        "RS256]}\n",
        "auth.jwt provider idp: algorithms RS256 have no key to check them");
    /* a provider whose keys are fetched: not known at load, no check */
    expect_quiet(
        "environment: production\nauth:\n  jwt:\n    providers:\n      - {name: idp, "
        "issuer: https://idp.example, jwks_uri: https://idp.example/jwks, "
        "algorithms: [RS256, ES256]}\n");
    clear_env();
}

static void test_never_shadowed_route(void)
{
    clear_env();
    setenv("ALLOWED_API_KEYS", "some-key-for-any-mode-01", 1);
    expect_err(
        "auth: {mode: none}\nroutes:\n  - {name: all, match: {path_prefix: /api/}}\n"
        "  - {name: x, match: {path: /api/x}}\n",
        "t.yaml:4: routes[1] (x): never used: routes[0] (all) before it matches every "
        "request it does (the first match wins)");
    expect_err_part(
        "auth: {mode: none}\nroutes:\n  - {name: a, match: {path_prefix: /api/}}\n"
        "  - {name: b, match: {path_prefix: /api/v2/, methods: [GET]}}\n",
        "routes[1] (b): never used: routes[0] (a)");
    expect_err_part("auth: {mode: none}\nroutes:\n  - {name: a, match: {path: /p}}\n"
                    "  - {name: b, match: {path: /p}}\n",
                    "routes[1] (b): never used");
    expect_err_part("auth: {mode: none}\nroutes:\n  - {name: a, match: {path_prefix: /p/, "
                    "methods: [GET, POST]}}\n"
                    "  - {name: b, match: {path: /p/q, host: h.example, methods: [GET]}}\n",
                    "routes[1] (b): never used");
    /* not shadowed: narrower first, other method, other host, case, twin, proxy */
    expect_quiet("routes:\n  - {name: x, match: {path: /api/x}}\n"
                 "  - {name: all, match: {path_prefix: /api/}}\n");
    expect_quiet("routes:\n  - {match: {path_prefix: /b, methods: [GET]}}\n"
                 "  - {match: {path_prefix: /b/c}}\n");
    expect_quiet("routes:\n  - {match: {path_prefix: /b, host: a.example}}\n"
                 "  - {match: {path_prefix: /b/c}}\n");
    expect_quiet("routes:\n  - {match: {path_prefix: /b}}\n"
                 "  - {match: {path_prefix: /B}, path_match: case_insensitive}\n");
    expect_quiet("routes:\n  - {match: {path_prefix: /b/}}\n"
                 "  - {match: {path: /b/}}\n"); /* /b/ also takes /b */
    expect_quiet("routes:\n  - {match: {path_prefix: /api/}}\n"
                 "  - {match: {path: /api/x}, upstream: 'http://127.0.0.1:1'}\n");
    clear_env();
}

static void test_never_other(void)
{
    clear_env();
    /* scopes on a route that authenticates no one */
    expect_err("auth: {mode: none}\nroutes:\n  - {match: {path: /x}, scopes: [a:read]}\n",
               "t.yaml:3: routes[0] (route-1): scopes can never be met: auth.mode is none");
    setenv("ALLOWED_API_KEYS", "some-key-for-any-mode-01", 1);
    expect_err_part("routes:\n  - {match: {path: /x}, auth: none, scopes: [a:read]}\n",
                    "scopes can never be met: the route has auth: none");
    /* a route taking only JWTs when none are accepted */
    expect_err(
        "environment: production\nroutes:\n  - {match: {path: /x}, auth_methods: [jwt]}\n",
        "t.yaml:3: routes[0] (route-1): auth_methods accepts only jwt, which auth.mode "
        "any and the configured keys never accept: every request is refused (refused "
        "in production)");
    expect_warn("routes:\n  - {match: {path: /x}, auth_methods: [jwt]}\n",
                "auth_methods accepts only jwt");
    /* a limit keyed on a claim no request carries */
    expect_warn(
        "limits:\n  - {name: per-org, by: [claim:org], rate: 5/s}\n",
        "t.yaml:2: limits[0] (per-org): by claim:org, but no JWT is accepted: every "
        "request shares one bucket");
    clear_env();
    expect_warn("auth: {mode: none}\nlimits:\n  - {name: pc, by: [client], rate: 5/s}\n",
                "limits[0] (pc): by client, but auth.mode is none");
    /* a key's tier that tiers: does not define */
    expect_err("environment: production\nauth: {api_keys_file: fixtures/apikeys-tier.txt}\n"
               "tiers:\n  gold: {default: 10/s}\n",
               "fixtures/apikeys-tier.txt:3: key id bad: tier=platinum is not defined in "
               "tiers (its requests would get the default rates) (refused in production)");
    expect_warn(
        "auth: {api_keys_file: fixtures/apikeys-tier.txt}\ntiers:\n  gold: {default: "
        "10/s}\n",
        "fixtures/apikeys-tier.txt:3: key id bad: tier=platinum");
    /* API keys accepted but none there, JWT works */
    setenv("JWT_SECRET", secret32, 1);
    expect_warn("auth: {mode: any}\n", "API keys enabled but none configured");
    clear_env();
}

static void test_version(void)
{
    const char *a = "auth: {mode: none}\nthreads: 2\nlimits:\n  - {name: x, rate: 1/s}\n";
    const char *a2 = "threads: 2   # same, other spelling\nlimits:\n"
                     "  - rate: 1/second\n    name: x\nauth:\n  mode: none\n";
    const char *b = "auth: {mode: none}\nthreads: 2\nlimits:\n  - {name: x, rate: 2/s}\n";
    cfg_t *c1, *c2, *c3, *c4;

    clear_env();
    c1 = load_ok(a);
    c2 = load_ok(a);
    c3 = load_ok(a2);
    c4 = load_ok(b);
    CU_ASSERT_FATAL(c1 && c2 && c3 && c4);
    CU_ASSERT_STRING_EQUAL(c1->version, c2->version);
    CU_ASSERT_STRING_EQUAL(c1->version, c3->version);
    CU_ASSERT_STRING_NOT_EQUAL(c1->version, c4->version);
    for (int i = 0; i < 16; i++)
        CU_ASSERT(strchr("0123456789abcdef", c1->version[i]) != NULL);
    cfg_unref(c1);
    cfg_unref(c2);
    cfg_unref(c3);
    cfg_unref(c4);
}

/* ---- one schema: every key reaches the dump and the version ------------- */

/* fixtures/cfg-every-key.yaml sets every key the parser accepts. */
#define EVERY_KEY "fixtures/cfg-every-key.yaml"

/* The secrets the every-key config is loaded under. */
static const char every_admin[] = "admin-token-every-key-0123456789";
static const char every_redis_pw[] = "redis-password-every-key-42";
static const char every_api_key[] = "api-key-every-key-0123456789abc";

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 1 << 16);
    size_t n = 0;

    if (f != NULL && buf != NULL)
        n = fread(buf, 1, (1 << 16) - 1, f);
    if (f != NULL)
        fclose(f);
    if (n == 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* `yaml` with its one occurrence of `from` replaced by `to`; NULL when
 * `from` is not there exactly once. */
static char *replace_once(const char *yaml, const char *from, const char *to)
{
    const char *at = strstr(yaml, from);
    size_t n = strlen(yaml) + strlen(to) + 1;
    char *out;

    if (at == NULL || strstr(at + 1, from) != NULL)
        return NULL;
    out = malloc(n);
    if (out != NULL)
        snprintf(out, n, "%.*s%s%s", (int)(at - yaml), yaml, to, at + strlen(from));
    return out;
}

static cfg_t *load_every(const char *yaml)
{
    clear_env();
    setenv("ADMIN_TOKEN", every_admin, 1);
    setenv("REDIS_PASSWORD", every_redis_pw, 1);
    setenv("JWT_SECRET", secret32, 1);
    setenv("ALLOWED_API_KEYS", every_api_key, 1);
    return cfg_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof err);
}

/* The value at dotted `path` of the dump ("a.b[].c": item 0 of list b). */
static json_t *dump_at(json_t *j, const char *path)
{
    char part[128];

    while (j != NULL && *path != '\0') {
        size_t n = strcspn(path, ".");
        bool list = n >= 2 && strncmp(path + n - 2, "[]", 2) == 0;

        snprintf(part, sizeof part, "%.*s", (int)(list ? n - 2 : n), path);
        j = json_object_get(j, part);
        if (list)
            j = json_array_get(j, 0);
        path += n + (path[n] == '.');
    }
    return j;
}

typedef struct key_check {
    json_t *dump;
    unsigned keys, missing;
} key_check_t;

static void check_dumped(const char *key, const char *dumped, const char *def, void *arg)
{
    key_check_t *k = arg;

    (void)def;
    k->keys++;
    if (dump_at(k->dump, dumped) == NULL) {
        fprintf(stderr, "\nkey %s: no %s in the dump", key, dumped);
        k->missing++;
    }
}

static void count_key(const char *key, void *arg)
{
    (void)key;
    (*(unsigned *)arg)++;
}

/* Every key cfg_keys() lists is in GET /admin/v1/config's JSON (and so in
 * config_version), at the path cfg_keys_info() names. */
static void test_every_key_dumped(void)
{
    char *yaml = read_text(EVERY_KEY), *dump;
    key_check_t k = {NULL, 0, 0};
    unsigned nkeys = 0;
    json_error_t je;
    cfg_t *c;

    CU_ASSERT_PTR_NOT_NULL_FATAL(yaml);
    c = load_every(yaml);
    clear_env();
    if (c == NULL)
        fprintf(stderr, "\n%s", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    dump = cfg_dump_json(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dump);
    k.dump = json_loads(dump, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k.dump);
    cfg_keys_info(check_dumped, &k);
    cfg_keys(count_key, &nkeys);
    CU_ASSERT(k.keys > 120);
    CU_ASSERT_EQUAL(k.keys, nkeys);
    CU_ASSERT_EQUAL(k.missing, 0);
    /* spot checks of names and values from the file */
    CU_ASSERT_EQUAL(json_integer_value(dump_at(k.dump, "auth.lockout.window_s")), 120);
    CU_ASSERT_EQUAL(json_integer_value(dump_at(k.dump, "shutdown_delay")), 7);
    CU_ASSERT_EQUAL(json_integer_value(dump_at(k.dump, "limits[].burst")), 40);
    CU_ASSERT_EQUAL(json_integer_value(dump_at(k.dump, "limits[].rate.burst")), 40);
    CU_ASSERT_STRING_EQUAL(json_string_value(dump_at(k.dump, "routes[].other_methods")),
                           "deny");
    CU_ASSERT_STRING_EQUAL(json_string_value(dump_at(k.dump, "routes[].path_match")),
                           "case_insensitive");
    CU_ASSERT_EQUAL(json_integer_value(dump_at(k.dump, "auth.jwt.providers[].max_stale_s")),
                    2 * 86400);
    CU_ASSERT(json_is_true(dump_at(k.dump, "auth.api_keys_deprecation.deprecated")));
    CU_ASSERT_EQUAL(
        json_integer_value(dump_at(k.dump, "default_route.upstream_timeout_ms")), 30000);
    json_decref(k.dump);
    free(dump);
    cfg_unref(c);
    free(yaml);
}

/* Secrets: "<redacted>" when set, null when not, never their bytes; the
 * key store only as a count; JWT_SECRET (not kept) not at all. */
static void test_dump_secrets_redacted(void)
{
    char *yaml = read_text(EVERY_KEY), *dump;
    json_t *j;
    cfg_t *c;

    CU_ASSERT_PTR_NOT_NULL_FATAL(yaml);
    c = load_every(yaml);
    clear_env();
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    dump = cfg_dump_json(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dump);
    j = json_loads(dump, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(dump_at(j, "admin_token")), "<redacted>");
    CU_ASSERT_STRING_EQUAL(json_string_value(dump_at(j, "redis.password")), "<redacted>");
    CU_ASSERT(json_is_integer(dump_at(j, "auth.api_keys")));
    CU_ASSERT(json_integer_value(dump_at(j, "auth.api_keys")) >= 2); /* file + env */
    CU_ASSERT_PTR_NULL(dump_at(j, "auth.jwt.secret"));
    CU_ASSERT(json_is_true(dump_at(j, "auth.jwt.verifier")));
    CU_ASSERT_PTR_NULL(strstr(dump, every_admin));
    CU_ASSERT_PTR_NULL(strstr(dump, every_redis_pw));
    CU_ASSERT_PTR_NULL(strstr(dump, every_api_key));
    CU_ASSERT_PTR_NULL(strstr(dump, secret32));
    CU_ASSERT_PTR_NULL(strstr(dump, "0123456789abcdef")); /* nor a piece of one */
    json_decref(j);
    free(dump);
    cfg_unref(c);
    /* unset: null */
    clear_env();
    setenv("ALLOWED_API_KEYS", every_api_key, 1);
    c = load_ok("auth: {mode: api_key}\n");
    clear_env();
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    dump = cfg_dump_json(c);
    j = json_loads(dump, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT(json_is_null(dump_at(j, "admin_token")));
    CU_ASSERT(json_is_null(dump_at(j, "redis.password")));
    CU_ASSERT_EQUAL(json_integer_value(dump_at(j, "auth.api_keys")), 1);
    json_decref(j);
    free(dump);
    cfg_unref(c);
    free(yaml);
}

/* One change per key of fixtures/cfg-every-key.yaml: `from` (once in the
 * file) becomes `to`.  A key with entries (a mapping, a list of them) is
 * covered by its entries. */
static const struct {
    const char *key, *from, *to;
} every_change[] = {
    {"listen", "127.0.0.1:18080", "127.0.0.1:18081"},
    {"admin_listen", "127.0.0.1:19090", "127.0.0.1:19091"},
    {"threads", "threads: 3", "threads: 4"},
    {"environment", "environment: development", "environment: production"},
    {"trusted_proxies", "10.1.0.0/16", "10.2.0.0/16"},
    {"client_ipv6_prefix", "client_ipv6_prefix: 56", "client_ipv6_prefix: 48"},
    {"max_body_bytes", "max_body_bytes: 2000000", "max_body_bytes: 2000001"},
    {"max_header_bytes", "max_header_bytes: 20000", "max_header_bytes: 20001"},
    {"max_connections", "max_connections: 5000", "max_connections: 5001"},
    {"request_read_timeout_ms", "read_timeout_ms: 20000", "read_timeout_ms: 20001"},
    {"idle_timeout_ms", "idle_timeout_ms: 12000", "idle_timeout_ms: 12001"},
    {"expected_replicas", "expected_replicas: 2", "expected_replicas: 3"},
    {"shutdown_delay", "shutdown_delay: 7s", "shutdown_delay: 8s"},
    {"redis.mode", "mode: standalone", "mode: cluster"},
    {"redis.nodes", "redis-a:6380", "redis-b:6380"},
    {"redis.key_prefix", "\"tgx:\"", "\"tgy:\""},
    {"redis.tls", "tls: true", "tls: false"},
    {"redis.tls_ca_file", "tls_ca_file: fixtures", "tls_ca_file: ./fixtures"},
    {"redis.tls_cert_file", "tls_cert_file: fixtures", "tls_cert_file: ./fixtures"},
    {"redis.tls_key_file", "tls_key_file: fixtures", "tls_key_file: ./fixtures"},
    {"redis.timeout_ms", "timeout_ms: 70", "timeout_ms: 71"},
    {"redis.batch_max", "batch_max: 32", "batch_max: 33"},
    {"redis.max_pending", "max_pending: 1000", "max_pending: 1001"},
    {"redis.required", "required: true", "required: false"},
    {"redis.db", "db: 0", "db: 3"},
    {"redis.username", "username: redis-user", "username: redis-user2"},
    {"forward_auth.path", "/fwd-auth", "/fwd-auth2"},
    {"forward_auth.nginx_rate_limited_status", "status: 429", "status: 430"},
    {"forward_auth.dialect", "dialect: nginx", "dialect: traefik"},
    {"proxy.hide_credentials", "hide_credentials: true", "hide_credentials: false"},
    {"proxy.reserved_headers", "reserved_headers: reject", "reserved_headers: drop"},
    {"path_match", "path_match: case_sensitive", "path_match: case_insensitive"},
    {"trailing_slash", "trailing_slash: distinct", "trailing_slash: same"},
    {"allowed_methods", "[GET, HEAD, POST]", "[GET, HEAD, POST, PUT]"},
    {"tickets.path", "/v1/tix", "/v1/tix2"},
    {"tickets.ttl", "ttl: 45s", "ttl: 46s"},
    {"tickets.scopes", "[tix:get]", "[tix:put]"},
    {"top.publish_interval", "publish_interval: 4s", "publish_interval: 6s"},
    {"top.metric_clients", "metric_clients: 12", "metric_clients: 13"},
    {"health.healthz_path", "/hz", "/hz2"},
    {"health.readyz_path", "/rz", "/rz2"},
    {"default_route.auth", "auth: optional", "auth: none"},
    {"default_route.scopes", "[dflt:read]", "[dflt:write]"},
    {"default_route.allow_encoded_percent", "\n  allow_encoded_percent: true",
     "\n  allow_encoded_percent: false"},
    {"default_route.allow_semicolon", "\n  allow_semicolon: true",
     "\n  allow_semicolon: false"},
    {"default_route.auth_methods", "auth_methods: [api_key]",
     "auth_methods: [api_key, jwt]"},
    {"security_headers.content_security_policy", "'self'", "'none'"},
    {"security_headers.permissions_policy", "camera=()", "camera=(self)"},
    {"security_headers.hsts_max_age", "hsts_max_age: 600", "hsts_max_age: 601"},
    {"auth.mode", "mode: any", "mode: api_key"},
    {"auth.api_key_enabled", "api_key_enabled: true", "api_key_enabled: false"},
    {"auth.api_keys_file", "api_keys_file: fixtures", "api_keys_file: ./fixtures"},
    {"auth.api_keys.deprecated", "deprecated: true", "deprecated: false"},
    {"auth.api_keys.deprecated_since", "2026-01-02", "2026-01-03"},
    {"auth.api_keys.sunset", "2027-06-30", "2027-07-01"},
    {"auth.api_keys.link", "docs.example/keys", "docs.example/keys2"},
    {"auth.jwt.algorithms", "[HS256, ES256]", "[HS256, ES256, ES384]"},
    {"auth.jwt.keys_file", "\n    keys_file: fixtures", "\n    keys_file: ./fixtures"},
    {"auth.jwt.issuer", "issuer.example", "issuer2.example"},
    {"auth.jwt.audience", "audience: tollgate-aud", "audience: tollgate-aud2"},
    {"auth.jwt.leeway_seconds", "leeway_seconds: 40", "leeway_seconds: 41"},
    {"auth.jwt.scopes_claim", "scopes_claim: scp", "scopes_claim: scp2"},
    {"auth.jwt.tier_claim", "tier_claim: plan", "tier_claim: plan2"},
    {"auth.jwt.claim_to_headers", "X-Auth-Email", "X-Auth-Mail"},
    {"auth.jwt.cache_entries", "cache_entries: 500", "cache_entries: 501"},
    {"auth.jwt.cache_bytes", "cache_bytes: 1000000", "cache_bytes: 1000001"},
    {"auth.jwt.providers[].name", "name: idp-one", "name: idp-two"},
    {"auth.jwt.providers[].issuer", "issuer: https://idp.example",
     "issuer: https://idp2.example"},
    {"auth.jwt.providers[].audiences", "[idp-aud]", "[idp-aud2]"},
    {"auth.jwt.providers[].algorithms", "algorithms: [ES256]",
     "algorithms: [ES256, RS256]"},
    {"auth.jwt.providers[].jwks_uri", "example/jwks", "example/jwks2"},
    {"auth.jwt.providers[].keys_file", "jwks_uri: https://idp.example/jwks",
     "keys_file: fixtures/cfg-jwks.json"},
    {"auth.jwt.providers[].discovery",
     "jwks_uri: https://idp.example/jwks\n        discovery: false", "discovery: true"},
    {"auth.jwt.providers[].ca_file", "\n        ca_file: fixtures",
     "\n        ca_file: ./fixtures"},
    {"auth.jwt.providers[].scopes_claim", "scopes_claim: roles", "scopes_claim: roles2"},
    {"auth.jwt.providers[].tier_claim", "tier_claim: level", "tier_claim: level2"},
    {"auth.jwt.providers[].claim_to_headers", "X-Auth-Org", "X-Auth-Orgn"},
    {"auth.jwt.providers[].refresh_interval", "refresh_interval: 10m",
     "refresh_interval: 11m"},
    {"auth.jwt.providers[].min_refresh_interval", "min_refresh_interval: 45s",
     "min_refresh_interval: 46s"},
    {"auth.jwt.providers[].max_stale", "max_stale: 2d", "max_stale: 3d"},
    {"auth.jwt.providers[].fetch_timeout", "fetch_timeout: 7s", "fetch_timeout: 8s"},
    {"auth.lockout.max_failures", "max_failures: 8", "max_failures: 9"},
    {"auth.lockout.window", "window: 2m", "window: 3m"},
    {"auth.lockout.base_backoff", "base_backoff: 3s", "base_backoff: 4s"},
    {"auth.lockout.max_backoff", "max_backoff: 20m", "max_backoff: 21m"},
    {"auth.bans.max_entries", "max_entries: 5000", "max_entries: 5001"},
    {"auth.bans.min_prefix_v4", "min_prefix_v4: 12", "min_prefix_v4: 13"},
    {"auth.bans.min_prefix_v6", "min_prefix_v6: 40", "min_prefix_v6: 41"},
    {"auth.revocation.max_token_lifetime", "max_token_lifetime: 36h",
     "max_token_lifetime: 37h"},
    {"limits[].name", "name: lim-two", "name: lim-2"},
    {"limits[].match.path", "/lim/exact", "/lim/exact2"},
    {"limits[].match.path_prefix", "path_prefix: /lim/", "path_prefix: /lim2/"},
    {"limits[].match.methods", "methods: [POST]", "methods: [PUT]"},
    {"limits[].match.host", "lim.example", "lim2.example"},
    {"limits[].by", "header:x-tenant", "header:x-org"},
    {"limits[].rate", "30/minute", "31/minute"},
    {"limits[].burst", "burst: 40", "burst: 41"},
    {"limits[].mode", "mode: shadow", "mode: enforce"},
    {"limits[].on_redis_error", "on_redis_error: open", "on_redis_error: closed"},
    {"limits[].consistency", "consistency: leased", "consistency: exact"},
    {"limits[].lease_max", "lease_max: 20", "lease_max: 21"},
    {"limits[].lease_ttl_ms", "lease_ttl_ms: 250", "lease_ttl_ms: 251"},
    {"tiers", "300/minute", "301/minute"},
    {"routes[].name", "name: route-one", "name: route-1"},
    {"routes[].match.path", "path_prefix: /api/", "path: /api/x"},
    {"routes[].match.path_prefix", "path_prefix: /api/", "path_prefix: /api2/"},
    {"routes[].match.methods", "[GET, POST]", "[GET, PUT]"},
    {"routes[].match.host", "host: api.example", "host: api2.example"},
    {"routes[].upstream", "backend:8000", "backend:8001"},
    {"routes[].auth", "auth: required", "auth: optional"},
    {"routes[].scopes", "[api:read]", "[api:write]"},
    {"routes[].tickets", "tickets: true", "tickets: false"},
    {"routes[].upstream_timeout_ms", "upstream_timeout_ms: 5000",
     "upstream_timeout_ms: 5001"},
    {"routes[].path_match", "path_match: case_insensitive", "path_match: case_sensitive"},
    {"routes[].allow_encoded_percent", "\n    allow_encoded_percent: true",
     "\n    allow_encoded_percent: false"},
    {"routes[].allow_semicolon", "\n    allow_semicolon: true",
     "\n    allow_semicolon: false"},
    {"routes[].auth_methods", "auth_methods: [jwt]", "auth_methods: [api_key, jwt]"},
    {"routes[].other_methods", "other_methods: deny", "other_methods: next_route"},
    {"cors.allowed_origins", "app.example.com", "app2.example.com"},
    {"audit.path", "path: \"-\"", "path: \"off\""},
    {"audit.flush", "flush: every", "flush: fsync"},
    {"audit.redact_query", "[sig]", "[token]"},
    {"audit.admin_stream_max", "admin_stream_max: 5000", "admin_stream_max: 6000"},
    {"admin_tokens_file", "admin_tokens_file: fixtures", "admin_tokens_file: ./fixtures"},
};

typedef struct cover {
    unsigned keys, uncovered;
} cover_t;

/* Is `key` changed by a row of every_change, itself or through an entry? */
static void check_covered(const char *key, void *arg)
{
    cover_t *cv = arg;
    size_t n = strlen(key);

    cv->keys++;
    for (size_t i = 0; i < sizeof every_change / sizeof every_change[0]; i++) {
        const char *k = every_change[i].key;

        if (strcmp(k, key) == 0 ||
            (strncmp(k, key, n) == 0 && (k[n] == '.' || k[n] == '[')))
            return;
    }
    fprintf(stderr, "\nkey %s: no change of it in every_change[]", key);
    cv->uncovered++;
}

/* Changing any non-secret key's value changes config_version, and the
 * table of changes covers every key cfg_keys() lists: a new key needs a
 * row, and its row fails if the key does not reach the version. */
static void test_every_key_versioned(void)
{
    char *yaml = read_text(EVERY_KEY);
    cover_t cv = {0, 0};
    char base[17];
    cfg_t *c;

    CU_ASSERT_PTR_NOT_NULL_FATAL(yaml);
    cfg_keys(check_covered, &cv);
    CU_ASSERT(cv.keys > 120);
    CU_ASSERT_EQUAL(cv.uncovered, 0);
    c = load_every(yaml);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    memcpy(base, c->version, sizeof base);
    cfg_unref(c);
    c = load_every(yaml); /* the same file: the same version */
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->version, base);
    cfg_unref(c);
    for (size_t i = 0; i < sizeof every_change / sizeof every_change[0]; i++) {
        char *changed = replace_once(yaml, every_change[i].from, every_change[i].to);

        if (changed == NULL)
            fprintf(stderr, "\n%s: '%s' is not once in %s", every_change[i].key,
                    every_change[i].from, EVERY_KEY);
        CU_ASSERT_PTR_NOT_NULL(changed);
        if (changed == NULL)
            continue;
        c = load_every(changed);
        if (c == NULL)
            fprintf(stderr, "\n%s: %s", every_change[i].key, err);
        CU_ASSERT_PTR_NOT_NULL(c);
        if (c != NULL && strcmp(c->version, base) == 0)
            fprintf(stderr, "\n%s: config_version unchanged", every_change[i].key);
        CU_ASSERT(c != NULL && strcmp(c->version, base) != 0);
        cfg_unref(c);
        free(changed);
    }
    clear_env();
    free(yaml);
}

/* Load `yaml` under ALLOWED_API_KEYS/ADMIN_TOKEN/JWT_SECRET (NULL = unset). */
static cfg_t *load_env(const char *yaml, const char *keys, const char *admin,
                       const char *jwt)
{
    clear_env();
    if (keys != NULL)
        setenv("ALLOWED_API_KEYS", keys, 1);
    if (admin != NULL)
        setenv("ADMIN_TOKEN", admin, 1);
    if (jwt != NULL)
        setenv("JWT_SECRET", jwt, 1);
    return load_ok(yaml);
}

/* config_version ignores the secrets (and how many keys there are);
 * secrets_version changes with any of them and not with their order. */
static void test_secrets_version(void)
{
    const char *y = "auth: {mode: any, jwt: {algorithms: [HS256]}}\n";
    const char *s2 = "abcdefghijklmnopqrstuvwxyz012345";
    cfg_t *c[7];

    c[0] = load_env(y, "key-one-aaaaaaaa,key-two-bbbbbbbb", "admin-token-1", secret32);
    c[1] = load_env(y, "key-two-bbbbbbbb, key-one-aaaaaaaa", "admin-token-1", secret32);
    c[2] = load_env(y, "key-one-aaaaaaaa,key-three-cccccc", "admin-token-1", secret32);
    c[3] = load_env(y, "key-one-aaaaaaaa,key-two-bbbbbbbb", "admin-token-2", secret32);
    c[4] = load_env(y, "key-one-aaaaaaaa,key-two-bbbbbbbb", "admin-token-1", s2);
    c[5] = load_env(y, "key-one-aaaaaaaa", "admin-token-1", s2); /* one key fewer */
    c[6] = load_env("auth: {mode: any, jwt: {algorithms: [HS384]}}\n", "key-one-aaaaaaaa",
                    "admin-token-1", s2);
    clear_env();
    for (int i = 0; i < 7; i++)
        CU_ASSERT_PTR_NOT_NULL_FATAL(c[i]);
    for (int i = 1; i < 6; i++)
        CU_ASSERT_STRING_EQUAL(c[0]->version, c[i]->version);
    CU_ASSERT_STRING_NOT_EQUAL(c[5]->version, c[6]->version); /* a setting changed */
    CU_ASSERT_STRING_EQUAL(c[5]->secrets_version, c[6]->secrets_version);
    CU_ASSERT_STRING_EQUAL(c[0]->secrets_version, c[1]->secrets_version);
    for (int i = 2; i < 6; i++)
        for (int j = 0; j < i; j++)
            CU_ASSERT_STRING_NOT_EQUAL(c[i]->secrets_version, c[j]->secrets_version);
    CU_ASSERT_EQUAL(strlen(c[0]->secrets_version), 16);
    CU_ASSERT_EQUAL(strspn(c[0]->secrets_version, "0123456789abcdef"), 16);
    CU_ASSERT_STRING_NOT_EQUAL(c[0]->secrets_version, c[0]->version);
    for (int i = 0; i < 7; i++)
        cfg_unref(c[i]);
}

static void test_refs(void)
{
    cfg_t *c;

    clear_env();
    c = load_ok("auth: {mode: none}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_EQUAL(cfg_ref(c), c);
    CU_ASSERT_EQUAL(atomic_load(&c->refs), 2);
    cfg_unref(c);
    CU_ASSERT_EQUAL(atomic_load(&c->refs), 1);
    cfg_unref(c);
    cfg_unref(NULL);
    CU_ASSERT_PTR_NULL(cfg_ref(NULL));
    CU_ASSERT_STRING_EQUAL(cfg_auth_mode_str(CFG_AUTH_API_KEY), "api_key");
    CU_ASSERT_STRING_EQUAL(cfg_auth_mode_str(CFG_AUTH_ANY), "any");
}

static void test_odd_input(void)
{
    static const char nul_yaml[] = "auth: {mode: none}\nlisten: \"a\\0b\"\n";
    cfg_t *c;

    clear_env();
    /* empty and comment-only files are all defaults */
    c = cfg_load_string("# nothing\n", 10, "t.yaml", err, sizeof err);
    CU_ASSERT_PTR_NULL(c); /* mode any without credentials */
    expect_err(nul_yaml, "t.yaml:2: listen: contains a NUL byte");
    /* an alias bomb stays cheap */
    expect_err_part("auth: {mode: none}\n"
                    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                    "trusted_proxies: [*a, *a]\n",
                    "t.yaml:2: unknown key 'a' at the top level");
    /* aliases that multiply the work hit the node budget */
    {
        size_t cap = 65536, n = 0;
        char *y = malloc(cap);

        CU_ASSERT_PTR_NOT_NULL_FATAL(y);
        n += (size_t)snprintf(y + n, cap - n, "auth: {mode: none}\nm: &m [");
        for (int i = 0; i < 1000; i++)
            n += (size_t)snprintf(y + n, cap - n, "GET, ");
        n += (size_t)snprintf(y + n, cap - n, "GET]\nlimits: [");
        for (int i = 0; i < 300; i++)
            n += (size_t)snprintf(y + n, cap - n,
                                  "%s{name: l%d, rate: 1/s, match: {methods: *m}}",
                                  i ? ", " : "", i);
        snprintf(y + n, cap - n, "]\n");
        expect_err_part(y, "document too large (more than 200000 nodes, aliases included)");
        free(y);
    }
    /* a list where a value was expected, a self-referencing alias */
    expect_err_part("auth: {mode: none}\nroutes: &r [*r]\n",
                    "routes[0]: expected a mapping");
}

/* Lists and strings: the shapes each kind of value refuses. */
static void test_err_lists_and_strings(void)
{
    clear_env();
    expect_err("auth: {mode: none}\nlisten: null\n",
               "t.yaml:2: listen: expected a string, got null");
    expect_err("auth: {mode: none}\ntrusted_proxies: 10.0.0.0/8\n",
               "t.yaml:2: trusted_proxies: expected a list, got a scalar");
    expect_err("auth: {mode: none}\ntrusted_proxies: [10.0.0.1/8]\n",
               "t.yaml:2: trusted_proxies[0]: '10.0.0.1/8' is not an address or CIDR (host "
               "bits zero)");
    expect_err("auth: {mode: none}\nredis: {nodes: ['a:b:c']}\n",
               "t.yaml:2: redis.nodes[0]: 'a:b:c' is not host[:port]");
    expect_err("auth: {mode: none}\nredis: {key_prefix: 'a b'}\n",
               "t.yaml:2: redis.key_prefix: must be 1 to 64 characters without '{', '}' or "
               "spaces");
    expect_err("auth: {mode: none}\nredis: {key_prefix: '{tg}'}\n",
               "t.yaml:2: redis.key_prefix: must be 1 to 64 characters without '{', '}' or "
               "spaces");
    expect_err("auth: {mode: none}\naudit: {path: ''}\n",
               "t.yaml:2: audit.path: must not be empty");
    expect_err("auth: {mode: none}\ntickets: {scopes: ['']}\n",
               "t.yaml:2: tickets.scopes[0]: must not be empty");
    expect_err("auth: {mode: none}\ntickets: {scopes: ['a,b']}\n",
               "t.yaml:2: tickets.scopes[0]: a scope has no spaces or commas");
    expect_err(
        "auth: {mode: none}\nlimits:\n  - {name: a, rate: 1/s, match: {host: "
        "'api.example.com:443'}}\n",
        "t.yaml:3: limits[0].match.host: expected a host name without scheme or port");
    expect_err(
        "auth: {mode: none}\nlimits:\n  - {name: a, rate: 1/s, match: {host: ''}}\n",
        "t.yaml:3: limits[0].match.host: expected a host name without scheme or port");
    /* more entries than any list may have */
    {
        size_t cap = 40000, n = 0;
        char *y = malloc(cap);

        CU_ASSERT_PTR_NOT_NULL_FATAL(y);
        n += (size_t)snprintf(y + n, cap - n, "auth: {mode: none}\ntrusted_proxies: [");
        for (int i = 0; i <= 10000; i++)
            n += (size_t)snprintf(y + n, cap - n, "%s1", i ? "," : "");
        snprintf(y + n, cap - n, "]\n");
        expect_err(y, "t.yaml:2: trusted_proxies: more than 10000 entries");
        free(y);
    }
}

/* A route's options: what they set, what they refuse. */
static void test_route_options(void)
{
    cfg_t *c;

    clear_env();
    c = load_ok("auth: {mode: none}\n"
                "routes:\n"
                "  - {match: {path_prefix: /a/, host: API.Example.COM}, auth: none,\n"
                "     path_match: case_insensitive, auth_methods: [jwt]}\n"
                "  - {match: {path_prefix: /b/}, auth: none, path_match: case_sensitive,\n"
                "     auth_methods: [api_key, jwt]}\n");
    if (c != NULL) {
        CU_ASSERT_EQUAL_FATAL(c->nroutes, 2);
        CU_ASSERT_STRING_EQUAL(c->routes[0].name, "route-1");
        CU_ASSERT_STRING_EQUAL(c->routes[1].name, "route-2");
        CU_ASSERT_STRING_EQUAL(c->routes[0].match.host, "api.example.com");
        CU_ASSERT(c->routes[0].path_icase);
        CU_ASSERT(!c->routes[1].path_icase);
        CU_ASSERT_EQUAL(c->routes[0].auth_methods, CFG_METHOD_JWT);
        CU_ASSERT_EQUAL(c->routes[1].auth_methods, CFG_METHOD_API_KEY | CFG_METHOD_JWT);
        cfg_unref(c);
    }
    expect_err("auth: {mode: none}\nroutes:\n  - {match: {path_prefix: /a/}, auth_methods: "
               "[password]}\n",
               "t.yaml:3: routes[0].auth_methods[0]: 'password' is not api_key or jwt");
    expect_err("auth: {mode: none}\nroutes:\n  - {match: {path_prefix: /a/}, auth_methods: "
               "[]}\n",
               "t.yaml:3: routes[0].auth_methods: list api_key, jwt or both");
    expect_err("auth: {mode: none}\nroutes:\n  - {match: {path_prefix: /a/}, path_match: "
               "fuzzy}\n",
               "t.yaml:3: routes[0].path_match: 'fuzzy' is not one of case_sensitive, "
               "case_insensitive");
    expect_err("auth: {mode: none}\nroutes: [/a/]\n",
               "t.yaml:2: routes[0]: expected a mapping, got a scalar");
}

/* tiers: names, duplicates, shapes. */
static void test_err_tiers_shape(void)
{
    clear_env();
    expect_err("auth: {mode: none}\n"
               "limits: [{name: default, rate: 10/minute}]\n"
               "tiers:\n"
               "  gold: {default: 100/minute}\n"
               "  gold: {default: 200/minute}\n",
               "t.yaml:5: duplicate key 'gold' in tiers");
    expect_err("auth: {mode: none}\n"
               "limits: [{name: default, rate: 10/minute}]\n"
               "tiers:\n"
               "  'gold tier': {default: 100/minute}\n",
               "t.yaml:4: tiers: 'gold tier' is not a name ([A-Za-z0-9._-], 1 to 64 "
               "characters)");
    expect_err("auth: {mode: none}\n"
               "limits: [{name: default, rate: 10/minute}]\n"
               "tiers:\n"
               "  gold: {default: 100/minute, default: 200/minute}\n",
               "t.yaml:4: duplicate key 'default' in tiers.gold");
    expect_err("auth: {mode: none}\n"
               "limits: [{name: default, rate: 10/minute}]\n"
               "tiers:\n"
               "  gold: [default]\n",
               "t.yaml:4: tiers.gold: expected a mapping of limit: rate, got a list");
}

/* claim_to_headers: names tollgate may set, each once. */
static void test_err_claim_headers(void)
{
    static const char head[] = "auth:\n  mode: none\n  jwt:\n    claim_to_headers:\n";
    char y[512];

    clear_env();
    snprintf(y, sizeof y, "%s      tenant: X-Auth-Subject\n", head);
    expect_err(y, "t.yaml:5: auth.jwt.claim_to_headers: X-Auth-Subject is set by tollgate "
                  "itself");
    snprintf(y, sizeof y, "%s      tenant: X-Auth-Tenant\n      org: x-auth-tenant\n",
             head);
    expect_err(y, "t.yaml:6: auth.jwt.claim_to_headers: x-auth-tenant appears twice");
    snprintf(y, sizeof y, "%s      tenant: X-Tenant\n", head);
    expect_err(y, "t.yaml:5: auth.jwt.claim_to_headers: 'X-Tenant' must be a header name "
                  "starting with X-Auth- (letters, digits, '-'; at most 64)");
    snprintf(y, sizeof y, "%s      '': X-Auth-Tenant\n", head);
    expect_err(y, "t.yaml:5: auth.jwt.claim_to_headers: a claim name is 1 to 64 bytes");
    snprintf(y, sizeof y, "%s      [a]: X-Auth-Tenant\n", head);
    expect_err_part(y, "t.yaml:5: auth.jwt.claim_to_headers: expected a string");
}

/* auth.jwt.providers: defaults, and each rule of a provider. */
static void test_providers(void)
{
    static const char head[] = "auth:\n  mode: none\n  jwt:\n    providers:\n";
    char y[1024];
    cfg_t *c;

    clear_env();
    snprintf(
        y, sizeof y,
        "%s      - {issuer: 'https://idp.example', jwks_uri: "
        "'https://idp.example/jwks'}\n"
        "      - {name: corp, issuer: 'https://corp.example', discovery: true,\n"
        "         algorithms: [ES256], refresh_interval: 10m, min_refresh_interval: 1m}\n",
        head);
    c = load_ok(y);
    if (c != NULL) {
        CU_ASSERT_EQUAL_FATAL(c->auth.jwt.nproviders, 2);
        CU_ASSERT_STRING_EQUAL(c->auth.jwt.providers[0].name, "provider-1");
        CU_ASSERT_EQUAL(c->auth.jwt.providers[0].algorithms.n, 1);
        CU_ASSERT_STRING_EQUAL(c->auth.jwt.providers[0].algorithms.v[0], "RS256");
        CU_ASSERT_EQUAL(c->auth.jwt.providers[0].refresh_s, 300);
        CU_ASSERT_EQUAL(c->auth.jwt.providers[0].min_refresh_s, 30);
        CU_ASSERT_STRING_EQUAL(c->auth.jwt.providers[1].name, "corp");
        CU_ASSERT_STRING_EQUAL(c->auth.jwt.providers[1].algorithms.v[0], "ES256");
        CU_ASSERT(c->auth.jwt.providers[1].discovery);
        CU_ASSERT_EQUAL(c->auth.jwt.providers[1].refresh_s, 600);
        CU_ASSERT_EQUAL(c->auth.jwt.providers[1].min_refresh_s, 60);
        cfg_unref(c);
    }
    snprintf(y, sizeof y, "%s      - {jwks_uri: 'https://idp.example/jwks'}\n", head);
    expect_err(y, "t.yaml:5: auth.jwt.providers[0]: needs an issuer");
    snprintf(y, sizeof y, "%s      - {issuer: 'https://idp.example'}\n", head);
    expect_err(y, "t.yaml:5: auth.jwt.providers[0]: needs exactly one of keys_file, "
                  "jwks_uri, discovery");
    snprintf(y, sizeof y,
             "%s      - {issuer: 'https://idp.example', discovery: true, jwks_uri: "
             "'https://idp.example/jwks'}\n",
             head);
    expect_err(y, "t.yaml:5: auth.jwt.providers[0]: needs exactly one of keys_file, "
                  "jwks_uri, discovery");
    snprintf(
        y, sizeof y,
        "%s      - {issuer: 'https://idp.example', jwks_uri: 'http://idp.example/jwks'}\n",
        head);
    expect_err(y, "t.yaml:5: auth.jwt.providers[0]: jwks_uri must be an https:// URL");
    snprintf(y, sizeof y, "%s      - {issuer: 'http://idp.example', discovery: true}\n",
             head);
    expect_err(y, "t.yaml:5: auth.jwt.providers[0]: discovery needs an https:// issuer");
    snprintf(y, sizeof y,
             "%s      - {issuer: 'https://idp.example', discovery: true,\n"
             "         refresh_interval: 1m, min_refresh_interval: 5m}\n",
             head);
    expect_err(y, "t.yaml:5: auth.jwt.providers[0]: min_refresh_interval is longer than "
                  "refresh_interval");
    snprintf(y, sizeof y,
             "%s      - {issuer: 'https://idp.example', discovery: true, "
             "algorithms: [HS257]}\n",
             head);
    expect_err(y, "t.yaml:5: auth.jwt.providers[0].algorithms[0]: 'HS257' is not a "
                  "supported algorithm (HS, RS, ES, PS with 256, 384, 512; EdDSA)");
    snprintf(y, sizeof y, "%s      - https://idp.example\n", head);
    expect_err(y, "t.yaml:5: auth.jwt.providers[0]: expected a mapping, got a scalar");
}

static int suite_init(void)
{
    clear_env();
    log_set_level(LOG_ERROR);
    return 0;
}

static int suite_cleanup(void)
{
    clear_env();
    log_set_level(LOG_INFO);
    return 0;
}

/* Port 0 (the kernel picks one at bind time) on both listeners is allowed;
 * one fixed address for both is not, nor a port past 65535. */
static void test_listen_port_zero(void)
{
    cfg_t *c;

    clear_env();
    c = load_ok(
        "auth: {mode: none}\nlisten: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->listen, "127.0.0.1:0");
    CU_ASSERT_STRING_EQUAL(c->admin_listen, "127.0.0.1:0");
    cfg_unref(c);
    c = load_ok("auth: {mode: none}\nlisten: \"[::1]:0\"\nadmin_listen: \"[::1]:0\"\n");
    cfg_unref(c);
    expect_err_part("auth: {mode: none}\nlisten: \"127.0.0.1:9090\"\n"
                    "admin_listen: \"127.0.0.1:9090\"\n",
                    "admin_listen must differ from listen");
    expect_err_part("auth: {mode: none}\nlisten: \"127.0.0.1:65536\"\n"
                    "admin_listen: \"127.0.0.1:0\"\n",
                    "is not host:port");
}

int test_cfg_add(void)
{
    static const unit_test_t tests[] = {
        {"minimal file", test_minimal_file},
        {"implicit default limit", test_implicit_default_limit},
        {"full example config", test_full_example},
        {"listen and admin_listen on port 0", test_listen_port_zero},
        {"built-in defaults, no file", test_defaults_without_file},
        {"values of every kind", test_values},
        {"unknown keys, top level and nested", test_err_unknown_key},
        {"every problem reported", test_err_every_problem},
        {"wrong types and ranges", test_err_types},
        {"bad rate", test_err_bad_rate},
        {"bad by", test_err_bad_by},
        {"bad method and path", test_err_bad_method},
        {"allowed_methods and other_methods", test_allowed_methods},
        {"tier naming an unknown limit", test_err_tier},
        {"missing files", test_err_missing_file},
        {"bad upstream", test_err_upstream},
        {"route overlapping own paths", test_err_route_overlap},
        {"production refusals", test_err_production},
        {"development drops bad origins", test_dev_drops_bad_origin},
        {"credentials for the auth mode", test_err_credentials},
        {"env RATE_LIMIT_PER_MINUTE", test_env_rate_limit},
        {"env ALLOWED_API_KEYS", test_env_api_keys},
        {"env REDIS_URL", test_env_redis_url},
        {"env misc", test_env_misc},
        {"admin tokens", test_admin_tokens},
        {"dump json", test_dump_json},
        {"version", test_version},
        {"secrets_version", test_secrets_version},
        {"every key reaches the dump", test_every_key_dumped},
        {"every key changes the version", test_every_key_versioned},
        {"dump: secrets redacted, keys counted", test_dump_secrets_redacted},
        {"never: algorithm without a key", test_never_alg_without_key},
        {"never: shadowed route", test_never_shadowed_route},
        {"never: scopes, methods, claims, tiers, keys", test_never_other},
        {"cfg_ref / cfg_unref", test_refs},
        {"odd input", test_odd_input},
        {"lists and strings refused", test_err_lists_and_strings},
        {"route options", test_route_options},
        {"tiers: names and duplicates", test_err_tiers_shape},
        {"claim_to_headers refused", test_err_claim_headers},
        {"jwt providers", test_providers},
        {NULL, NULL},
    };

    if (unit_add_suite("cfg", tests) != 0)
        return -1;
    /* quiet the expected warnings (dropped origins, auth.mode none) for this
     * suite only, and leave no variable behind */
    CU_set_suite_initfunc(CU_get_suite("cfg"), suite_init);
    CU_set_suite_cleanupfunc(CU_get_suite("cfg"), suite_cleanup);
    return 0;
}
