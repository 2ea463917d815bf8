/* cfg.h — the configuration: YAML file + environment, validated and compiled
 * into one immutable, reference-counted snapshot.
 *
 * cfg_load() reads the YAML file (libyaml), applies the environment variables
 * of docs/reference.md §3 (they override the file), validates everything, loads the
 * files it names (API keys, JWKS) and builds the runtime objects (key store,
 * JWT verifier).  A snapshot never changes after cfg_load returns; a reload
 * builds a new one and swaps it in, and requests keep the snapshot they
 * started with (cfg_ref / cfg_unref, atomic).
 */
#ifndef TOLLGATE_CFG_H
#define TOLLGATE_CFG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth_admintok.h"
#include "tollgate/auth_apikey.h"
#include "tollgate/auth_jwt.h"
#include "tollgate/rl_policy.h"
#include "tollgate/http.h"

typedef enum { CFG_ENV_DEVELOPMENT, CFG_ENV_PRODUCTION } cfg_env_t;
typedef enum { CFG_REDIS_NONE, CFG_REDIS_STANDALONE, CFG_REDIS_CLUSTER } cfg_redis_mode_t;
typedef enum {
    CFG_AUTH_NONE,
    CFG_AUTH_API_KEY,
    CFG_AUTH_JWT,
    CFG_AUTH_ANY
} cfg_auth_mode_t;
typedef enum { CFG_ROUTE_REQUIRED, CFG_ROUTE_OPTIONAL, CFG_ROUTE_NONE } cfg_route_auth_t;

/* Which forward-auth dialect's headers are read (docs/forward-auth.md). */
typedef enum {
    CFG_DIALECT_AUTO,
    CFG_DIALECT_NGINX,
    CFG_DIALECT_TRAEFIK,
    CFG_DIALECT_ENVOY,
    CFG_DIALECT_INGRESS_NGINX /* nginx's headers, X-Original-URL set by the ingress */
} cfg_dialect_t;

/* Inbound headers spelled like one tollgate sets or vouches for. */
typedef enum { CFG_RESERVED_DROP, CFG_RESERVED_REJECT } cfg_reserved_t;

typedef enum { CFG_PATH_CASE_SENSITIVE, CFG_PATH_CASE_INSENSITIVE } cfg_path_match_t;
/* trailing_slash: does an exact `path` also cover its twin with or without
 * one trailing '/' (same, the default) or not (distinct)? */
typedef enum { CFG_SLASH_SAME, CFG_SLASH_DISTINCT } cfg_trailing_slash_t;
/* audit.flush, in the order of audit_flush_t (audit.h) */
typedef enum { CFG_AUDIT_INTERVAL, CFG_AUDIT_EVERY, CFG_AUDIT_FSYNC } cfg_audit_flush_t;

typedef struct cfg_strv {
    char **v;
    size_t n;
} cfg_strv_t;

typedef struct cfg_route {
    char *name; /* `name:` or "route-N" (1-based, config order) */
    rl_match_t match;
    char *upstream; /* "http://host:port" (no path), NULL = forward-auth only */
    cfg_route_auth_t auth;
    cfg_strv_t scopes;            /* all required */
    bool tickets;                 /* `?ticket=` accepted once */
    unsigned upstream_timeout_ms; /* default: cfg_route_fields (cfg_yaml.c) */
    bool path_icase;              /* path_match: case_insensitive (route or global) */
    bool allow_encoded_percent;   /* "%25" + hex (double encoding) accepted */
    bool allow_semicolon;         /* a raw ';' in the path accepted */
    unsigned auth_methods; /* CFG_METHOD_* accepted; 0 = every one auth.mode allows */
    /* other_methods: deny — a request on this route's paths (and host) with
     * a method match.methods does not list is 405 here, never decided by a
     * later route; false (next_route, the default): it goes on matching. */
    bool other_methods_deny;
} cfg_route_t;

/* allowed_methods when the config does not say */
#define CFG_ALLOWED_METHODS_DEFAULT                                                        \
    (RL_METHOD_GET | RL_METHOD_HEAD | RL_METHOD_POST | RL_METHOD_PUT | RL_METHOD_PATCH |   \
     RL_METHOD_DELETE | RL_METHOD_OPTIONS)

#define CFG_METHOD_API_KEY 1u
#define CFG_METHOD_JWT 2u

typedef struct cfg_redis {
    cfg_redis_mode_t mode;
    cfg_strv_t nodes; /* "host:port" seeds */
    char *key_prefix; /* default "tg:" */
    bool tls;
    char *tls_ca_file, *tls_cert_file, *tls_key_file; /* NULL = none */
    unsigned timeout_ms;                              /* default 50 */
    unsigned batch_max;   /* limit checks per batched script call; default 64, 1 = off */
    unsigned max_pending; /* limit checks waiting on Redis per worker; default 2048 */
    bool required;
    unsigned db;    /* REDIS_URL "/N" or redis.db; default 0 (cluster: 0 only) */
    char *username; /* from REDIS_URL, NULL = none */
    char *password; /* secret: REDIS_URL / REDIS_PASSWORD(_FILE); redacted */
} cfg_redis_t;

/* claim_to_headers: claims[i] is copied into headers[i]. */
typedef struct cfg_claim_hdrs {
    cfg_strv_t claims, headers;
} cfg_claim_hdrs_t;

/* auth.jwt.providers[]: one identity provider. */
typedef struct cfg_jwt_provider {
    char *name;            /* label in metrics and logs; default from the list index */
    char *issuer;          /* required */
    cfg_strv_t audiences;  /* one must be in `aud`; empty = not checked */
    cfg_strv_t algorithms; /* default [RS256] */
    char *keys_file;       /* one key source: a JWKS file, */
    char *jwks_uri;        /* a JWKS URL (https), */
    bool discovery;        /* or <issuer>/.well-known/openid-configuration */
    char *ca_file;         /* CA bundle for jwks_uri/discovery; NULL = the system's */
    char *scopes_claim;    /* NULL = scope, scp, scopes */
    char *tier_claim;      /* NULL = none */
    cfg_claim_hdrs_t claim_hdrs;
    unsigned refresh_s;       /* at most this long between fetches; default 300 */
    unsigned min_refresh_s;   /* at least this long; unknown-kid refetch; default 30 */
    unsigned max_stale_s;     /* a set older than this is not used; default 86400 */
    unsigned fetch_timeout_s; /* default 5 */
} cfg_jwt_provider_t;

typedef struct cfg_jwt {
    cfg_strv_t algorithms; /* default [HS256] */
    char *keys_file;       /* JWKS, NULL = none */
    char *issuer, *audience;
    unsigned leeway_s;  /* default 30 */
    char *scopes_claim; /* NULL = scope, scp, scopes */
    char *tier_claim;   /* NULL = none */
    cfg_claim_hdrs_t claim_hdrs;
    unsigned cache_entries; /* verified-token cache per thread; default 10000, 0 = off */
    size_t cache_bytes;     /* default 16 MiB per thread */
    cfg_jwt_provider_t *providers;
    size_t nproviders;
} cfg_jwt_t;

typedef struct cfg_lockout {
    unsigned max_failures;   /* default 10; 0 disables */
    unsigned window_s;       /* default 60 */
    unsigned base_backoff_s; /* default 1 */
    unsigned max_backoff_s;  /* default 900 */
} cfg_lockout_t;

typedef struct cfg_bans {
    unsigned max_entries;   /* bans held at most; default 10000 (read at start) */
    unsigned min_prefix_v4; /* a narrower CIDR ban is refused; default 8 */
    unsigned min_prefix_v6; /* default 32 */
} cfg_bans_t;

typedef struct cfg {
    char *path;                       /* file it came from, NULL = built-in defaults */
    char version[17];                 /* 16 hex digits: hash of the effective config,
                                         secrets and key material left out */
    char secrets_version[17];         /* 16 hex digits: keyed hash over the secrets
                                         and key material (cfg_dump.c) */
    cfg_env_t environment;            /* default development */
    char *listen;                     /* default "0.0.0.0:8080" */
    char *admin_listen;               /* default "127.0.0.1:9090" */
    unsigned threads;                 /* 0 = one per CPU */
    http_cidr_list_t trusted_proxies; /* default http_cidr_list_default() */
    unsigned client_ipv6_prefix;      /* IPv6 clients keyed on this /N; default 64 */
    size_t max_body_bytes;            /* default 1 MiB */
    size_t max_header_bytes;          /* default 16 KiB */
    unsigned max_connections;         /* main listener, per process; default 10000 */
    unsigned request_read_timeout_ms; /* first byte to complete request; default 30000 */
    unsigned idle_timeout_ms;         /* no byte either way: closed; default 15000 */
    unsigned expected_replicas;       /* default 1 */
    unsigned top_publish_interval;    /* top.publish_interval: seconds, default 5 */
    unsigned top_metric_clients;      /* top.metric_clients: default 10, 0 = no metric */
    unsigned shutdown_delay;          /* seconds answering after SIGTERM, default 5 */
    cfg_redis_t redis;
    struct {
        char *path;                    /* default "/auth" */
        int nginx_rate_limited_status; /* default 403 */
        cfg_dialect_t dialect;         /* default auto */
    } forward_auth;
    struct {
        bool hide_credentials;   /* strip X-API-Key / Authorization: Bearer; default off */
        cfg_reserved_t reserved; /* reserved_headers: default drop */
    } proxy;
    cfg_path_match_t path_match;         /* default case_sensitive */
    cfg_trailing_slash_t trailing_slash; /* default same */
    /* allowed_methods: RL_METHOD_* bits of the methods served at all; any
     * other is 405 before routing.  Default GET HEAD POST PUT PATCH DELETE
     * OPTIONS; TRACE may be added; CONNECT and extension methods never. */
    unsigned allowed_methods;
    struct {
        char *path;        /* default "/v1/tickets" */
        unsigned ttl_s;    /* default 30 */
        cfg_strv_t scopes; /* needed to be issued one; default none */
        cfg_route_t route; /* POST path: auth required, these scopes */
    } tickets;
    char *healthz_path, *readyz_path; /* defaults "/healthz", "/readyz" */
    cfg_route_t default_route;        /* default auth required, no scopes */
    struct {
        char *content_security_policy; /* default "default-src 'none'; frame-ancestors
                                          'none'" */
        char *permissions_policy; /* default "geolocation=(), camera=(), microphone=()" */
        uint32_t hsts_max_age;    /* default 31536000 */
    } security_headers;
    struct {
        cfg_auth_mode_t mode;  /* default any */
        bool api_key_enabled;  /* default true (API_KEY_ENABLED) */
        char *api_keys_file;   /* NULL = none */
        auth_keystore_t *keys; /* file + ALLOWED_API_KEYS; never NULL */
        cfg_jwt_t jwt;
        auth_jwt_t *jwt_verifier; /* NULL when JWT is off or has no key */
        struct {
            bool deprecated;  /* every API key (besides per-key `deprecated`) */
            int64_t since_s;  /* Deprecation: @since (RFC 9745); default 0 */
            int64_t sunset_s; /* Sunset (RFC 8594); 0 = not sent */
            char *link;       /* Link: <..>; rel="deprecation"; NULL = none */
        } api_keys;
        cfg_lockout_t lockout;
        cfg_bans_t bans;
    } auth;
    rl_policy_set_t policy; /* limits + tiers */
    cfg_route_t *routes;
    size_t nroutes;
    cfg_strv_t cors_origins;         /* validated */
    char *audit_path;                /* default "-" (stdout); "off" = no audit */
    cfg_strv_t audit_redact;         /* audit.redact_query: extra query names to redact */
    cfg_audit_flush_t audit_flush;   /* audit.flush; default interval */
    unsigned audit_admin_stream_max; /* audit.admin_stream_max: the fleet's admin trail
                                        stream's MAXLEN ~; default 10000, 0 = no stream */
    char *admin_token;               /* secret (ADMIN_TOKEN(_FILE)), NULL = none */
    char *admin_tokens_file;       /* admin_tokens_file / ADMIN_TOKENS_FILE, NULL = none */
    auth_admintok_t *admin_tokens; /* ADMIN_TOKEN as `admin write`, then the file's;
                                      never NULL; empty = admin API closed */
    atomic_int refs;               /* starts at 1; cfg_ref / cfg_unref */
    /* auth.revocation.max_token_lifetime: a subject revocation expires at
     * before + this (seconds); default 86400, 0 = never */
    unsigned revocation_max_token_lifetime_s;
} cfg_t;

/* Load `path` (NULL: built-in defaults, no file) with the environment's
 * overrides.  Returns NULL and writes one line per problem into `err`
 * ("FILE:LINE: message\n", or "env NAME: message\n" for the environment).
 * Warnings (e.g. a dropped CORS origin in development) go to the log. */
cfg_t *cfg_load(const char *path, char *err, size_t errlen);

/* Same, from YAML text in memory; `name` stands for the file in messages. */
cfg_t *cfg_load_string(const char *yaml, size_t len, const char *name, char *err,
                       size_t errlen);

cfg_t *cfg_ref(cfg_t *c);
void cfg_unref(cfg_t *c); /* frees at zero; NULL is a no-op */

/* The effective config as JSON text (malloc'd, caller frees), with every
 * secret replaced by "<redacted>" (or null when unset). */
char *cfg_dump_json(const cfg_t *c);

/* Every environment variable cfg_load() reads (docs/reference.md §3), NULL-terminated;
 * TOLLGATE_CONFIG is main's.  Tests clear these to start from a known state. */
extern const char *const cfg_env_names[];

/* Names for messages and /admin/v1/config. */
const char *cfg_auth_mode_str(cfg_auth_mode_t m);

/* Every key the YAML parser accepts, dotted ("redis.nodes", "limits[].match.path"),
 * maps included, list items as "[]"; secrets (refused in the file) left out.
 * For the test that keeps docs/configuration.md in step. */
typedef void (*cfg_key_fn)(const char *key, void *arg);
void cfg_keys(cfg_key_fn fn, void *arg);

/* The same keys, each with its path in cfg_dump_json()'s output (durations
 * carry their unit: "auth.lockout.window_s"; auth.api_keys' settings are
 * "auth.api_keys_deprecation") and its default as the file would write it
 * ("30s"; NULL when the default is none, zero, or not a single value), so
 * tests can check that every key reaches the dump, and with it
 * config_version, and that the docs state the defaults the code has. */
typedef void (*cfg_key_info_fn)(const char *key, const char *dumped, const char *def,
                                void *arg);
void cfg_keys_info(cfg_key_info_fn fn, void *arg);

#endif
