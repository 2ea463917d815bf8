/* cfg_dump.c — the effective config as JSON (GET /admin/v1/config) and its
 * version, a hash of the same JSON.
 *
 * The JSON is written by walking the schema's tables (cfg_yaml.c), each
 * field through its kind's emitter (below), so every key the file takes is
 * shown and hashed; only what no key sets is added here (the key count,
 * `verifier`, the versions, `path`).
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

/* The value of field `f` inside `base`. */
#define AT(type, f, base) ((const type *)(const void *)((const char *)(base) + (f)->off))

json_t *cfg_emit_str(const cfg_field_t *f, const void *base)
{
    return jstr(*AT(char *, f, base));
}

/* Never the value: "<redacted>" when set, null when not. */
json_t *cfg_emit_secret(const cfg_field_t *f, const void *base)
{
    return *AT(char *, f, base) != NULL ? json_string("<redacted>") : json_null();
}

json_t *cfg_emit_nothing(const cfg_field_t *f, const void *base)
{
    (void)f;
    (void)base;
    return NULL;
}

json_t *cfg_emit_uint(const cfg_field_t *f, const void *base)
{
    return json_integer((json_int_t)*AT(unsigned, f, base));
}

json_t *cfg_emit_u32(const cfg_field_t *f, const void *base)
{
    return json_integer((json_int_t)*AT(uint32_t, f, base));
}

json_t *cfg_emit_int(const cfg_field_t *f, const void *base)
{
    return json_integer((json_int_t)*AT(int, f, base));
}

json_t *cfg_emit_size(const cfg_field_t *f, const void *base)
{
    return json_integer((json_int_t)*AT(size_t, f, base));
}

json_t *cfg_emit_i64(const cfg_field_t *f, const void *base)
{
    return json_integer((json_int_t)*AT(int64_t, f, base));
}

json_t *cfg_emit_bool(const cfg_field_t *f, const void *base)
{
    return json_boolean(*AT(bool, f, base));
}

/* The name of the index stored (as an int) by p_enum. */
static json_t *enum_name(const cfg_field_t *f, int i)
{
    const char *const *names = f->aux;

    for (int n = 0; names[n] != NULL; n++)
        if (n == i)
            return json_string(names[n]);
    return json_null(); /* not a value the parser stores */
}

json_t *cfg_emit_enum(const cfg_field_t *f, const void *base)
{
    return enum_name(f, *AT(int, f, base));
}

/* A two-name enum kept as a bool: names[0] false, names[1] true. */
json_t *cfg_emit_flag_enum(const cfg_field_t *f, const void *base)
{
    return enum_name(f, *AT(bool, f, base) ? 1 : 0);
}

json_t *cfg_emit_strv(const cfg_field_t *f, const void *base)
{
    const cfg_strv_t *v = AT(cfg_strv_t, f, base);
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < v->n; i++)
        json_array_append_new(a, jstr(v->v[i]));
    return a;
}

json_t *cfg_emit_cidrs(const cfg_field_t *f, const void *base)
{
    const http_cidr_list_t *l = AT(http_cidr_list_t, f, base);
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

/* RL_METHOD_* bits, in bit order. */
json_t *cfg_emit_methods(const cfg_field_t *f, const void *base)
{
    static const char *const names[] = {"GET",   "HEAD",    "POST",    "PUT",   "DELETE",
                                        "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER"};
    unsigned bits = *AT(unsigned, f, base);
    json_t *a = json_array();

    for (unsigned i = 0; a != NULL && i < sizeof names / sizeof names[0]; i++)
        if (bits & (1u << i))
            json_array_append_new(a, json_string(names[i]));
    return a;
}

/* CFG_METHOD_* bits; 0 (not set) shows both. */
json_t *cfg_emit_auth_methods(const cfg_field_t *f, const void *base)
{
    unsigned m = *AT(unsigned, f, base);
    json_t *a = json_array();

    if (m == 0 || (m & CFG_METHOD_API_KEY))
        json_array_append_new(a, json_string("api_key"));
    if (m == 0 || (m & CFG_METHOD_JWT))
        json_array_append_new(a, json_string("jwt"));
    return a;
}

/* {"claim": "X-Auth-Header", ...} */
json_t *cfg_emit_claim_hdrs(const cfg_field_t *f, const void *base)
{
    const cfg_claim_hdrs_t *h = AT(cfg_claim_hdrs_t, f, base);
    json_t *o = json_object();

    for (size_t i = 0; o != NULL && i < h->claims.n; i++)
        json_object_set_new(o, h->claims.v[i], jstr(h->headers.v[i]));
    return o;
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

json_t *cfg_emit_rate(const cfg_field_t *f, const void *base)
{
    return jrate(AT(rl_rate_t, f, base));
}

/* A limit's burst lives in its rate: `base` is the rl_limit_t. */
json_t *cfg_emit_burst(const cfg_field_t *f, const void *base)
{
    (void)f;
    return json_integer((json_int_t)((const rl_limit_t *)base)->rate.burst);
}

/* A limit's `by` (the rl_limit_t at the field): "client", "header:x-tenant". */
json_t *cfg_emit_by(const cfg_field_t *f, const void *base)
{
    static const char *const kinds[] = {"client", "ip", "route", "header", "claim"};
    const rl_limit_t *lim = AT(rl_limit_t, f, base);
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

json_t *cfg_emit_table(const cfg_field_t *t, const void *base)
{
    json_t *o = json_object();

    for (const cfg_field_t *f = t; o != NULL && f->key != NULL; f++) {
        json_t *v = f->kind->emit(f, base);
        char name[64];

        if (v != NULL)
            json_object_set_new(o, cfg_field_dump_name(f, name, sizeof name), v);
    }
    return o;
}

json_t *cfg_emit_map(const cfg_field_t *f, const void *base)
{
    return cfg_emit_table(f->aux, (const char *)base + f->off);
}

/* The default route takes a few of a route's keys and shows all of them. */
json_t *cfg_emit_route_map(const cfg_field_t *f, const void *base)
{
    return cfg_emit_table(cfg_route_fields, (const char *)base + f->off);
}

/* `n` entries of `size` bytes from `items`, each shown with table `t`. */
static json_t *jlist(const cfg_field_t *t, const void *items, size_t n, size_t size)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < n; i++)
        json_array_append_new(a, cfg_emit_table(t, (const char *)items + i * size));
    return a;
}

/* The lists of mappings; `base` is the cfg_t (routes, limits, tiers) or the
 * cfg_jwt_t (providers). */
json_t *cfg_emit_limits(const cfg_field_t *f, const void *base)
{
    const rl_policy_set_t *ps = &((const cfg_t *)base)->policy;

    return jlist(f->aux, ps->limits, ps->nlimits, sizeof *ps->limits);
}

json_t *cfg_emit_routes(const cfg_field_t *f, const void *base)
{
    const cfg_t *c = base;

    return jlist(f->aux, c->routes, c->nroutes, sizeof *c->routes);
}

json_t *cfg_emit_providers(const cfg_field_t *f, const void *base)
{
    const cfg_jwt_t *j = base;

    return jlist(f->aux, j->providers, j->nproviders, sizeof *j->providers);
}

/* {"gold": {"limit": {rate...}, ...}, ...} */
json_t *cfg_emit_tiers(const cfg_field_t *f, const void *base)
{
    const rl_policy_set_t *ps = &((const cfg_t *)base)->policy;
    json_t *o = json_object();

    (void)f;
    for (size_t i = 0; o != NULL && i < ps->ntiers; i++) {
        json_t *t = json_object();

        for (size_t j = 0; t != NULL && j < ps->tiers[i].n; j++)
            json_object_set_new(t, ps->tiers[i].overrides[j].limit,
                                jrate(&ps->tiers[i].overrides[j].rate));
        json_object_set_new(o, ps->tiers[i].name, t);
    }
    return o;
}

/* The whole snapshot, walked from the schema's table, plus what no key
 * sets: the key store's size (auth.api_keys), whether a JWT verifier was
 * built (auth.jwt.verifier); `public` adds the versions and `path`. */
static json_t *jcfg(const cfg_t *c, bool public)
{
    json_t *o = cfg_emit_table(cfg_top_fields, c);
    json_t *auth = o != NULL ? json_object_get(o, "auth") : NULL;
    json_t *jwt = auth != NULL ? json_object_get(auth, "jwt") : NULL;

    if (jwt == NULL) {
        json_decref(o);
        return NULL;
    }
    json_object_set_new(auth, "api_keys",
                        json_integer((json_int_t)auth_keystore_count(c->auth.keys)));
    json_object_set_new(jwt, "verifier", json_boolean(c->auth.jwt_verifier != NULL));
    if (public) {
        json_object_set_new(o, "version", json_string(c->version));
        json_object_set_new(o, "secrets_version", json_string(c->secrets_version));
        json_object_set_new(o, "path", jstr(c->path));
    }
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
 * bytes, the admin token, the Redis password and, when configured, the admin
 * tokens file's bytes.  Only digests of digests
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
        /* only with a tokens file: a config without one keeps the value
         * it had before the file existed */
        (c->admin_tokens_file == NULL ||
         secret_part(m, "admin_tokens_file", b->admin_tokens_file_sha, 32,
                     memcmp(b->admin_tokens_file_sha, zero32, 32) != 0)) &&
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
