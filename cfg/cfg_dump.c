/* cfg_dump.c — the effective config as JSON (GET /admin/v1/config) and its
 * version, a hash of the same JSON.
 *
 * Secrets are "<redacted>" when set and null when not; the API key store is
 * a count.  The version hashes the canonical dump (sorted keys, compact, no
 * `path`, no `version`, no key count), so it changes exactly when a
 * non-secret setting changes; secrets_version is a keyed hash over digests
 * of the secrets and key files, so it changes on rotation and reveals
 * nothing of them.  /readyz publishes both.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "cfg_internal.h"

/* A string, or null.  Bytes that are not UTF-8 (from the environment)
 * become '?', so a field is never lost. */
static json_t *jstr(const char *s)
{
    json_t *j;
    char *copy;

    if (s == NULL)
        return json_null();
    j = json_string(s);
    if (j != NULL || (copy = strdup(s)) == NULL)
        return j;
    for (char *p = copy; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

static json_t *jsecret(const char *s)
{
    return s != NULL ? json_string("<redacted>") : json_null();
}

static json_t *jstrv(const cfg_strv_t *v)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < v->n; i++)
        json_array_append_new(a, jstr(v->v[i]));
    return a;
}

static json_t *jcidrs(const http_cidr_list_t *l)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < l->n; i++) {
        char ip[HTTP_IP_STRLEN], text[HTTP_IP_STRLEN + 8];

        if (inet_ntop(l->v[i].family, l->v[i].addr, ip, sizeof ip) == NULL)
            continue;
        snprintf(text, sizeof text, "%s/%u", ip, l->v[i].prefix);
        json_array_append_new(a, json_string(text));
    }
    return a;
}

static json_t *jmethods(unsigned bits)
{
    static const char *const names[] = {"GET",   "HEAD",    "POST",    "PUT",   "DELETE",
                                        "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER"};
    json_t *a = json_array();

    for (unsigned i = 0; a != NULL && i < sizeof names / sizeof names[0]; i++)
        if (bits & (1u << i))
            json_array_append_new(a, json_string(names[i]));
    return a;
}

static json_t *jmatch(const rl_match_t *m)
{
    return json_pack("{s:o, s:o, s:o, s:o}", "path", jstr(m->path), "path_prefix",
                     jstr(m->path_prefix), "methods", jmethods(m->methods), "host",
                     jstr(m->host));
}

/* {"rate": "60/minute", "n": 60, "period_ms": 60000, "burst": 60} */
static json_t *jrate(const rl_rate_t *r)
{
    static const struct {
        uint32_t ms;
        const char *name;
    } periods[] = {
        {1000, "second"}, {60000, "minute"}, {3600000, "hour"}, {86400000, "day"}};
    char text[64];

    snprintf(text, sizeof text, "%u/%ums", r->n, r->period_ms);
    for (size_t i = 0; i < sizeof periods / sizeof periods[0]; i++)
        if (r->period_ms == periods[i].ms)
            snprintf(text, sizeof text, "%u/%s", r->n, periods[i].name);
    return json_pack("{s:s, s:I, s:I, s:I}", "rate", text, "n", (json_int_t)r->n,
                     "period_ms", (json_int_t)r->period_ms, "burst", (json_int_t)r->burst);
}

static json_t *jby(const rl_limit_t *lim)
{
    static const char *const kinds[] = {"client", "ip", "route", "header", "claim"};
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < lim->nby; i++) {
        char text[200];

        if (lim->by[i].name != NULL)
            snprintf(text, sizeof text, "%s:%s", kinds[lim->by[i].kind], lim->by[i].name);
        else
            snprintf(text, sizeof text, "%s", kinds[lim->by[i].kind]);
        json_array_append_new(a, jstr(text));
    }
    return a;
}

static json_t *jlimits(const rl_policy_set_t *ps)
{
    static const char *const modes[] = {"enforce", "shadow"};
    static const char *const onerr[] = {"local", "open", "closed"};
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < ps->nlimits; i++) {
        const rl_limit_t *l = &ps->limits[i];

        json_array_append_new(
            a, json_pack("{s:o, s:o, s:o, s:o, s:s, s:s, s:s, s:I, s:I}", "name",
                         jstr(l->name), "match", jmatch(&l->match), "by", jby(l), "rate",
                         jrate(&l->rate), "mode", modes[l->mode], "on_redis_error",
                         onerr[l->on_redis_error], "consistency",
                         l->consistency == RL_CONSISTENCY_LEASED ? "leased" : "exact",
                         "lease_max", (json_int_t)l->lease_max, "lease_ttl_ms",
                         (json_int_t)l->lease_ttl_ms));
    }
    return a;
}

static json_t *jtiers(const rl_policy_set_t *ps)
{
    json_t *o = json_object();

    for (size_t i = 0; o != NULL && i < ps->ntiers; i++) {
        json_t *t = json_object();

        for (size_t j = 0; t != NULL && j < ps->tiers[i].n; j++)
            json_object_set_new(t, ps->tiers[i].overrides[j].limit,
                                jrate(&ps->tiers[i].overrides[j].rate));
        json_object_set_new(o, ps->tiers[i].name, t);
    }
    return o;
}

static json_t *jauth_methods(unsigned m)
{
    json_t *a = json_array();

    if (m == 0 || (m & CFG_METHOD_API_KEY))
        json_array_append_new(a, json_string("api_key"));
    if (m == 0 || (m & CFG_METHOD_JWT))
        json_array_append_new(a, json_string("jwt"));
    return a;
}

static json_t *jroute(const cfg_route_t *r)
{
    static const char *const auth[] = {"required", "optional", "none"};
    json_t *o = json_pack(
        "{s:o, s:o, s:o, s:s, s:o, s:b, s:I, s:s, s:b, s:b}", "name", jstr(r->name),
        "match", jmatch(&r->match), "upstream", jstr(r->upstream), "auth", auth[r->auth],
        "scopes", jstrv(&r->scopes), "tickets", r->tickets, "upstream_timeout_ms",
        (json_int_t)r->upstream_timeout_ms, "path_match",
        r->path_icase ? "case_insensitive" : "case_sensitive", "allow_encoded_percent",
        r->allow_encoded_percent, "allow_semicolon", r->allow_semicolon);

    json_object_set_new(o, "auth_methods", jauth_methods(r->auth_methods));
    json_object_set_new(o, "other_methods",
                        json_string(r->other_methods_deny ? "deny" : "next_route"));
    return o;
}

static json_t *jroutes(const cfg_t *c)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < c->nroutes; i++)
        json_array_append_new(a, jroute(&c->routes[i]));
    return a;
}

static json_t *jredis(const cfg_redis_t *r)
{
    static const char *const modes[] = {"none", "standalone", "cluster"};

    return json_pack(
        "{s:s, s:o, s:o, s:b, s:o, s:o, s:o, s:I, s:I, s:I, s:b, s:I, s:o, s:o}", "mode",
        modes[r->mode], "nodes", jstrv(&r->nodes), "key_prefix", jstr(r->key_prefix), "tls",
        r->tls, "tls_ca_file", jstr(r->tls_ca_file), "tls_cert_file",
        jstr(r->tls_cert_file), "tls_key_file", jstr(r->tls_key_file), "timeout_ms",
        (json_int_t)r->timeout_ms, "batch_max", (json_int_t)r->batch_max, "max_pending",
        (json_int_t)r->max_pending, "required", r->required, "db", (json_int_t)r->db,
        "username", jstr(r->username), "password", jsecret(r->password));
}

static json_t *jclaim_hdrs(const cfg_claim_hdrs_t *h)
{
    json_t *o = json_object();

    for (size_t i = 0; o != NULL && i < h->claims.n; i++)
        json_object_set_new(o, h->claims.v[i], json_string(h->headers.v[i]));
    return o;
}

static json_t *jproviders(const cfg_jwt_t *j)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < j->nproviders; i++) {
        const cfg_jwt_provider_t *p = &j->providers[i];

        json_array_append_new(
            a, json_pack(
                   "{s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:o, s:o, s:I, s:I, "
                   "s:I, s:I}",
                   "name", p->name, "issuer", p->issuer, "audiences", jstrv(&p->audiences),
                   "algorithms", jstrv(&p->algorithms), "keys_file", jstr(p->keys_file),
                   "jwks_uri", jstr(p->jwks_uri), "discovery", p->discovery, "ca_file",
                   jstr(p->ca_file), "scopes_claim", jstr(p->scopes_claim), "tier_claim",
                   jstr(p->tier_claim), "claim_to_headers", jclaim_hdrs(&p->claim_hdrs),
                   "refresh_interval_s", (json_int_t)p->refresh_s, "min_refresh_interval_s",
                   (json_int_t)p->min_refresh_s, "max_stale_s", (json_int_t)p->max_stale_s,
                   "fetch_timeout_s", (json_int_t)p->fetch_timeout_s));
    }
    return a;
}

static json_t *jauth(const cfg_t *c)
{
    const cfg_jwt_t *j = &c->auth.jwt;
    const cfg_lockout_t *l = &c->auth.lockout;
    json_t *jwt, *lockout;

    jwt = json_pack("{s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:b}", "algorithms",
                    jstrv(&j->algorithms), "keys_file", jstr(j->keys_file), "issuer",
                    jstr(j->issuer), "audience", jstr(j->audience), "leeway_seconds",
                    (json_int_t)j->leeway_s, "scopes_claim", jstr(j->scopes_claim),
                    "tier_claim", jstr(j->tier_claim), "verifier",
                    c->auth.jwt_verifier != NULL);
    json_object_set_new(jwt, "claim_to_headers", jclaim_hdrs(&j->claim_hdrs));
    json_object_set_new(jwt, "providers", jproviders(j));
    json_object_set_new(jwt, "cache_entries", json_integer(j->cache_entries));
    json_object_set_new(jwt, "cache_bytes", json_integer((json_int_t)j->cache_bytes));
    lockout = json_pack("{s:I, s:I, s:I, s:I}", "max_failures", (json_int_t)l->max_failures,
                        "window_s", (json_int_t)l->window_s, "base_backoff_s",
                        (json_int_t)l->base_backoff_s, "max_backoff_s",
                        (json_int_t)l->max_backoff_s);
    return json_pack(
        "{s:s, s:b, s:o, s:I, s:o, s:o, s:{s:b, s:I, s:I, s:o}}", "mode",
        cfg_auth_mode_str(c->auth.mode), "api_key_enabled", c->auth.api_key_enabled,
        "api_keys_file", jstr(c->auth.api_keys_file), "api_keys",
        (json_int_t)auth_keystore_count(c->auth.keys), "jwt", jwt, "lockout", lockout,
        "api_keys_deprecation", "deprecated", c->auth.api_keys.deprecated,
        "deprecated_since", (json_int_t)c->auth.api_keys.since_s, "sunset",
        (json_int_t)c->auth.api_keys.sunset_s, "link", jstr(c->auth.api_keys.link));
}

/* The whole snapshot; `public` adds `version` and `path`. */
static const char *const audit_flushes[] = {"interval", "every", "fsync"};

static json_t *jcfg(const cfg_t *c, bool public)
{
    static const char *const dialects[] = {"auto", "nginx", "traefik", "envoy",
                                           "ingress-nginx"};
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    if (public) {
        json_object_set_new(o, "version", json_string(c->version));
        json_object_set_new(o, "secrets_version", json_string(c->secrets_version));
        json_object_set_new(o, "path", jstr(c->path));
    }
    json_object_set_new(
        o, "environment",
        json_string(c->environment == CFG_ENV_PRODUCTION ? "production" : "development"));
    json_object_set_new(o, "listen", jstr(c->listen));
    json_object_set_new(o, "admin_listen", jstr(c->admin_listen));
    json_object_set_new(o, "threads", json_integer(c->threads));
    json_object_set_new(o, "trusted_proxies", jcidrs(&c->trusted_proxies));
    json_object_set_new(o, "client_ipv6_prefix", json_integer(c->client_ipv6_prefix));
    json_object_set_new(o, "max_body_bytes", json_integer((json_int_t)c->max_body_bytes));
    json_object_set_new(o, "max_header_bytes",
                        json_integer((json_int_t)c->max_header_bytes));
    json_object_set_new(o, "max_connections", json_integer((json_int_t)c->max_connections));
    json_object_set_new(o, "request_read_timeout_ms",
                        json_integer((json_int_t)c->request_read_timeout_ms));
    json_object_set_new(o, "idle_timeout_ms", json_integer((json_int_t)c->idle_timeout_ms));
    json_object_set_new(o, "expected_replicas", json_integer(c->expected_replicas));
    json_object_set_new(o, "shutdown_delay", json_integer(c->shutdown_delay));
    json_object_set_new(o, "redis", jredis(&c->redis));
    json_object_set_new(o, "forward_auth",
                        json_pack("{s:o, s:i, s:s}", "path", jstr(c->forward_auth.path),
                                  "nginx_rate_limited_status",
                                  c->forward_auth.nginx_rate_limited_status, "dialect",
                                  dialects[c->forward_auth.dialect]));
    json_object_set_new(
        o, "proxy",
        json_pack("{s:b, s:s}", "hide_credentials", c->proxy.hide_credentials,
                  "reserved_headers",
                  c->proxy.reserved == CFG_RESERVED_REJECT ? "reject" : "drop"));
    json_object_set_new(
        o, "trailing_slash",
        json_string(c->trailing_slash == CFG_SLASH_DISTINCT ? "distinct" : "same"));
    json_object_set_new(o, "allowed_methods", jmethods(c->allowed_methods));
    json_object_set_new(o, "path_match",
                        json_string(c->path_match == CFG_PATH_CASE_INSENSITIVE
                                        ? "case_insensitive"
                                        : "case_sensitive"));
    json_object_set_new(o, "tickets",
                        json_pack("{s:o, s:I, s:o}", "path", jstr(c->tickets.path), "ttl_s",
                                  (json_int_t)c->tickets.ttl_s, "scopes",
                                  jstrv(&c->tickets.scopes)));
    json_object_set_new(o, "health",
                        json_pack("{s:o, s:o}", "healthz_path", jstr(c->healthz_path),
                                  "readyz_path", jstr(c->readyz_path)));
    json_object_set_new(o, "default_route", jroute(&c->default_route));
    json_object_set_new(
        o, "security_headers",
        json_pack("{s:o, s:o, s:I}", "content_security_policy",
                  jstr(c->security_headers.content_security_policy), "permissions_policy",
                  jstr(c->security_headers.permissions_policy), "hsts_max_age",
                  (json_int_t)c->security_headers.hsts_max_age));
    json_object_set_new(o, "auth", jauth(c));
    json_object_set_new(o, "limits", jlimits(&c->policy));
    json_object_set_new(o, "tiers", jtiers(&c->policy));
    json_object_set_new(o, "routes", jroutes(c));
    json_object_set_new(o, "cors",
                        json_pack("{s:o}", "allowed_origins", jstrv(&c->cors_origins)));
    json_object_set_new(o, "audit",
                        json_pack("{s:o, s:s, s:o}", "path", jstr(c->audit_path), "flush",
                                  audit_flushes[c->audit_flush], "redact_query",
                                  jstrv(&c->audit_redact)));
    json_object_set_new(o, "admin_token", jsecret(c->admin_token));
    return o;
}

char *cfg_dump_json(const cfg_t *c)
{
    json_t *o;
    char *text;

    if (c == NULL)
        return NULL;
    o = jcfg(c, true);
    if (o == NULL)
        return NULL;
    text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

static void hex16(const unsigned char *md, char out[17])
{
    static const char hex[] = "0123456789abcdef";

    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[16] = '\0';
}

/* config_version: SHA-256 of the canonical dump without what secrets decide
 * (the number of API keys); neither the key file nor the JWKS files, which
 * go into secrets_version.  The same file and the same non-secret settings
 * give the same version whatever the secrets are. */
static bool config_digest(const cfg_t *c, unsigned char md[EVP_MAX_MD_SIZE])
{
    json_t *o = jcfg(c, false), *auth = o != NULL ? json_object_get(o, "auth") : NULL;
    char *text;
    bool ok;

    if (auth != NULL)
        json_object_del(auth, "api_keys");
    text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    ok = text != NULL && EVP_Digest(text, strlen(text), md, NULL, EVP_sha256(), NULL) == 1;
    free(text);
    json_decref(o);
    return ok;
}

/* One input of secrets_version: a label, then a presence byte and the
 * SHA-256 of the value, so "absent" and "empty" differ and no value is
 * ever hashed next to another one's bytes. */
static bool secret_part(EVP_MAC_CTX *m, const char *label, const void *v, size_t len,
                        bool present)
{
    unsigned char d[32] = {0}, flag = present;
    bool ok = EVP_MAC_update(m, (const unsigned char *)label, strlen(label) + 1) == 1 &&
              EVP_MAC_update(m, &flag, 1) == 1;

    if (ok && present)
        ok = EVP_Digest(v, len, d, NULL, EVP_sha256(), NULL) == 1;
    ok = ok && EVP_MAC_update(m, d, sizeof d) == 1;
    OPENSSL_cleanse(d, sizeof d);
    return ok;
}

static const unsigned char zero32[32];

/* secrets_version: HMAC-SHA256 keyed with a fixed domain-separation string
 * over, in a fixed order, the SHA-256 of each secret and key source: the API
 * keys (sorted digests), the key file's bytes, JWT_SECRET, the JWKS files'
 * bytes, the admin token and the Redis password.  Only digests of digests
 * leave the process, truncated to 64 bits. */
static bool secrets_digest(const cfg_build_t *b, unsigned char md[EVP_MAX_MD_SIZE])
{
    static const char domain[] = "tollgate secrets_version v1";
    const cfg_t *c = b->c;
    unsigned char keys[32];
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *m = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    size_t n = 0;
    bool ok =
        m != NULL && auth_keystore_fingerprint(c->auth.keys, keys) == 0 &&
        EVP_MAC_init(m, (const unsigned char *)domain, sizeof domain - 1, params) == 1 &&
        secret_part(m, "api_keys", keys, sizeof keys,
                    auth_keystore_count(c->auth.keys) > 0) &&
        secret_part(m, "api_keys_file", b->keys_file_sha, 32,
                    memcmp(b->keys_file_sha, zero32, 32) != 0) &&
        secret_part(m, "jwt_secret", b->jwt_secret, b->jwt_secret_len,
                    b->jwt_secret != NULL) &&
        secret_part(m, "jwks_files", b->jwks_file_sha, 32,
                    memcmp(b->jwks_file_sha, zero32, 32) != 0) &&
        secret_part(m, "admin_token", c->admin_token,
                    c->admin_token ? strlen(c->admin_token) : 0, c->admin_token != NULL) &&
        secret_part(m, "redis_password", c->redis.password,
                    c->redis.password ? strlen(c->redis.password) : 0,
                    c->redis.password != NULL) &&
        EVP_MAC_final(m, md, &n, EVP_MAX_MD_SIZE) == 1 && n >= 8;

    EVP_MAC_CTX_free(m);
    EVP_MAC_free(mac);
    return ok;
}

void cfg_set_version(cfg_build_t *b)
{
    unsigned char md[EVP_MAX_MD_SIZE];

    if (config_digest(b->c, md))
        hex16(md, b->c->version);
    else
        cfg_err(b, cfg_at(0), "out of memory computing the config version");
    if (secrets_digest(b, md))
        hex16(md, b->c->secrets_version);
    else
        cfg_err(b, cfg_at(0), "out of memory computing the secrets version");
    OPENSSL_cleanse(md, sizeof md);
}
