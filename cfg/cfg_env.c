/* cfg_env.c — the environment variables (docs/reference.md §3), applied over the file.
 *
 * An empty variable counts as unset (Kubernetes often renders `value: ""`).
 * Messages read "env NAME: ..." and never contain a secret's value: not a
 * password, a key, a token, nor a REDIS_URL (it may hold a password).
 * TOLLGATE_CONFIG is main's business; ALLOWED_API_KEYS is read by
 * cfg_build_runtime() when the key store is filled.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "tollgate/rl_bucket.h"
#include "tollgate/util_fmt.h"
#include "tollgate/rl_policy.h"

#include "cfg_internal.h"

const char *const cfg_env_names[] = {
    "ENVIRONMENT",
    "AUTH_MODE",
    "ALLOWED_API_KEYS",
    "API_KEYS_FILE",
    "JWT_SECRET",
    "JWT_SECRET_FILE",
    "JWKS_FILE",
    "RATE_LIMIT_PER_MINUTE",
    "REDIS_URL",
    "REDIS_PASSWORD",
    "REDIS_PASSWORD_FILE",
    "ALLOWED_ORIGINS",
    "CORS_ALLOWED_ORIGINS",
    "MAX_REQUEST_BODY_BYTES",
    "AUDIT_LOG_PATH",
    "ADMIN_TOKEN",
    "ADMIN_TOKEN_FILE",
    "ADMIN_TOKENS_FILE",
    "API_KEY_ENABLED",
    NULL,
};

#define SECRET_FILE_MAX 65536 /* bytes */

static const char *env(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? v : NULL;
}

static void env_environment(cfg_build_t *b)
{
    const char *v = env("ENVIRONMENT");
    int i;

    if (v == NULL)
        return;
    i = cfg_name_index(cfg_environment_names, v);
    if (i < 0) {
        cfg_err(b, cfg_env_at("ENVIRONMENT"), "expected development or production");
        return;
    }
    b->c->environment = (cfg_env_t)i;
    cfg_mark(b, "environment", cfg_env_at("ENVIRONMENT"));
}

static void env_auth_mode(cfg_build_t *b)
{
    const char *v = env("AUTH_MODE");
    int i;

    if (v == NULL)
        return;
    i = cfg_name_index(cfg_auth_mode_names, v);
    if (i < 0) {
        cfg_err(b, cfg_env_at("AUTH_MODE"), "expected api_key, jwt, any or none");
        return;
    }
    b->c->auth.mode = (cfg_auth_mode_t)i;
    cfg_mark(b, "auth.mode", cfg_env_at("AUTH_MODE"));
}

static void env_bool(cfg_build_t *b, const char *name, bool *dst, const char *key)
{
    const char *v = env(name);

    if (v == NULL)
        return;
    if (strcmp(v, "1") == 0)
        v = "true";
    else if (strcmp(v, "0") == 0)
        v = "false";
    if (cfg_parse_bool(v, dst) != 0) {
        cfg_err(b, cfg_env_at(name), "expected true or false");
        return;
    }
    cfg_mark(b, key, cfg_env_at(name));
}

/* A string setting (a file name): replaces the file's value. */
static void env_string(cfg_build_t *b, const char *name, char **dst, const char *key)
{
    const char *v = env(name);
    char *d;

    if (v == NULL)
        return;
    d = cfg_dup(b, v);
    if (d == NULL)
        return;
    cfg_set_str(dst, d);
    cfg_mark(b, key, cfg_env_at(name));
}

static void env_body_bytes(cfg_build_t *b)
{
    const char *v = env("MAX_REQUEST_BODY_BYTES");
    unsigned long long n;

    if (v == NULL)
        return;
    if (cfg_parse_uint(v, 1ull << 40, &n) != 0 || n == 0) {
        cfg_err(b, cfg_env_at("MAX_REQUEST_BODY_BYTES"),
                "expected an integer from 1 to %llu", 1ull << 40);
        return;
    }
    b->c->max_body_bytes = (size_t)n;
    cfg_mark(b, "max_body_bytes", cfg_env_at("MAX_REQUEST_BODY_BYTES"));
}

/* RATE_LIMIT_PER_MINUTE: the rate of the limit named `default` (its burst
 * too, unless the file set one). */
static void env_rate(cfg_build_t *b)
{
    const char *v = env("RATE_LIMIT_PER_MINUTE");
    rl_policy_set_t *ps = &b->c->policy;
    unsigned long long n;

    if (v == NULL)
        return;
    if (cfg_parse_uint(v, RL_MAX_BURST, &n) != 0 || n == 0) {
        cfg_err(b, cfg_env_at("RATE_LIMIT_PER_MINUTE"), "expected an integer from 1 to %u",
                RL_MAX_BURST);
        return;
    }
    for (size_t i = 0; i < ps->nlimits; i++) {
        if (strcmp(ps->limits[i].name, "default") != 0)
            continue;
        ps->limits[i].rate.n = (uint32_t)n;
        ps->limits[i].rate.period_ms = 60000;
        if (!b->limit_meta[i].burst_set)
            ps->limits[i].rate.burst = (uint32_t)n;
        return;
    }
    cfg_err(b, cfg_env_at("RATE_LIMIT_PER_MINUTE"),
            "no limit named 'default' in limits: to apply it to");
}

/* The content of a secret file: trailing "\n" / "\r\n" removed.  The
 * caller wipes and frees it. */
static char *read_secret_file(cfg_build_t *b, const char *var, const char *path,
                              size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL) {
        cfg_err(b, cfg_env_at(var), "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(SECRET_FILE_MAX + 1);
    if (buf == NULL) {
        cfg_err(b, cfg_env_at(var), "out of memory");
        goto out_close;
    }
    n = fread(buf, 1, SECRET_FILE_MAX + 1, f);
    if (ferror(f) || n > SECRET_FILE_MAX) {
        cfg_err(b, cfg_env_at(var), "'%s': %s", path,
                ferror(f) ? "read error" : "larger than 64 KiB");
        OPENSSL_cleanse(buf, n);
        free(buf);
        buf = NULL;
        goto out_close;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    *len = n;
out_close:
    fclose(f);
    return buf;
}

/* NAME or NAME_FILE (not both) into a new buffer; NULL when neither is set
 * or on error (reported).  `used` says which variable it came from. */
static char *read_secret(cfg_build_t *b, const char *name, const char *name_file,
                         size_t *len, const char **used)
{
    const char *v = env(name), *path = env(name_file);
    char *s;

    *used = name;
    if (v != NULL && path != NULL) {
        cfg_err(b, cfg_env_at(name), "set %s or %s, not both", name, name_file);
        return NULL;
    }
    if (v != NULL) {
        *len = strlen(v);
        s = malloc(*len + 1);
        if (s == NULL) {
            cfg_err(b, cfg_env_at(name), "out of memory");
            return NULL;
        }
        memcpy(s, v, *len + 1);
        return s;
    }
    if (path == NULL)
        return NULL;
    *used = name_file;
    s = read_secret_file(b, name_file, path, len);
    if (s != NULL && (*len == 0 || strlen(s) != *len)) {
        cfg_err(b, cfg_env_at(name_file), "the file is empty or holds a NUL byte");
        OPENSSL_cleanse(s, *len);
        free(s);
        return NULL;
    }
    return s;
}

static void env_secrets(cfg_build_t *b)
{
    const char *used;
    size_t len = 0;
    char *s;

    s = read_secret(b, "JWT_SECRET", "JWT_SECRET_FILE", &len, &used);
    if (s != NULL) {
        b->jwt_secret = s;
        b->jwt_secret_len = len;
        b->jwt_secret_where = cfg_env_at(used);
    }
    s = read_secret(b, "REDIS_PASSWORD", "REDIS_PASSWORD_FILE", &len, &used);
    if (s != NULL) {
        cfg_free_secret(b->c->redis.password);
        b->c->redis.password = s;
    }
    s = read_secret(b, "ADMIN_TOKEN", "ADMIN_TOKEN_FILE", &len, &used);
    if (s != NULL) {
        cfg_free_secret(b->c->admin_token);
        b->c->admin_token = s;
        cfg_mark(b, "admin_token", cfg_env_at(used));
    }
}

/* Percent-decode `len` bytes of `s` (userinfo of a URL) into a new string;
 * NULL on a bad escape or %00.  The result may be a secret. */
static char *pct_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t o = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;

        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        hi = i + 2 < len ? util_hexval(s[i + 1]) : -1;
        lo = hi >= 0 ? util_hexval(s[i + 2]) : -1;
        if (lo < 0 || (hi == 0 && lo == 0)) {
            OPENSSL_cleanse(out, o);
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* user[:password] of a REDIS_URL into c->redis; -1 on a bad escape. */
static int url_userinfo(cfg_build_t *b, const char *ui, size_t len)
{
    const char *colon = memchr(ui, ':', len);
    size_t ulen = colon != NULL ? (size_t)(colon - ui) : len;
    char *user = NULL, *pass = NULL;

    if (ulen > 0 && (user = pct_decode(ui, ulen)) == NULL)
        return -1;
    if (colon != NULL && colon + 1 < ui + len &&
        (pass = pct_decode(colon + 1, len - ulen - 1)) == NULL) {
        free(user);
        return -1;
    }
    if (user != NULL)
        cfg_set_str(&b->c->redis.username, user);
    if (pass != NULL) {
        cfg_free_secret(b->c->redis.password);
        b->c->redis.password = pass;
    }
    return 0;
}

/* The part after host:port: "" or "/" or "/DB". */
static int url_db(const char *rest, unsigned *db)
{
    unsigned long long n;

    if (*rest == '\0' || strcmp(rest, "/") == 0) {
        *db = 0;
        return 0;
    }
    if (*rest != '/' || cfg_parse_uint(rest + 1, 65535, &n) != 0)
        return -1;
    *db = (unsigned)n;
    return 0;
}

/* REDIS_URL: redis[s]://[user[:password]@]host[:port][/db]. */
static void env_redis_url(cfg_build_t *b)
{
    const cfg_where_t w = cfg_env_at("REDIS_URL");
    const char *url = env("REDIS_URL"), *p, *end, *at;
    cfg_redis_t *r = &b->c->redis;
    char hp[300];
    unsigned db;
    bool tls;

    if (url == NULL)
        return;
    if (strncmp(url, "redis://", 8) == 0) {
        tls = false;
        p = url + 8;
    } else if (strncmp(url, "rediss://", 9) == 0) {
        tls = true;
        p = url + 9;
    } else {
        cfg_err(b, w, "must start with redis:// or rediss://");
        return;
    }
    end = p + strcspn(p, "/?#");
    at = memrchr(p, '@', (size_t)(end - p));
    if (strpbrk(end, "?#") != NULL) {
        cfg_err(b, w, "query parameters and fragments are not supported");
        return;
    }
    if (cfg_hostport_norm(at != NULL ? at + 1 : p,
                          (size_t)(end - (at != NULL ? at + 1 : p)), 6379, hp,
                          sizeof hp) != 0) {
        cfg_err(b, w, "expected redis[s]://[user[:password]@]host[:port][/db]");
        return;
    }
    if (url_db(end, &db) != 0) {
        cfg_err(b, w, "the database must be a number from 0 to 65535");
        return;
    }
    if (at != NULL && url_userinfo(b, p, (size_t)(at - p)) != 0) {
        cfg_err(b, w, "bad percent-escape in user or password");
        return;
    }
    cfg_strv_clear(&r->nodes);
    cfg_strv_push(b, &r->nodes, hp);
    if (r->mode != CFG_REDIS_CLUSTER)
        r->mode = CFG_REDIS_STANDALONE;
    r->tls = tls;
    r->db = db;
    cfg_mark(b, "redis.nodes", w);
    cfg_mark(b, "redis.db", w);
    cfg_mark(b, "redis.tls", w);
}

/* ALLOWED_ORIGINS (or its alias CORS_ALLOWED_ORIGINS): a comma list that
 * replaces cors.allowed_origins; checked with the file's in cfg_check. */
static void env_origins(cfg_build_t *b)
{
    const char *name = "ALLOWED_ORIGINS", *v = env(name), *p;
    cfg_strv_t *o = &b->c->cors_origins;

    if (v == NULL) {
        name = "CORS_ALLOWED_ORIGINS";
        v = env(name);
    } else if (env("CORS_ALLOWED_ORIGINS") != NULL &&
               strcmp(v, env("CORS_ALLOWED_ORIGINS")) != 0) {
        cfg_err(b, cfg_env_at("CORS_ALLOWED_ORIGINS"),
                "differs from ALLOWED_ORIGINS; set one");
        return;
    }
    if (v == NULL)
        return;
    cfg_strv_clear(o);
    for (p = v; *p != '\0';) {
        size_t len = strcspn(p, ","), s = 0, e = len;
        char item[1024];
        cfg_where_t *w;

        while (s < e && (p[s] == ' ' || p[s] == '\t'))
            s++;
        while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
            e--;
        if (e > s) {
            snprintf(item, sizeof item, "%.*s", (int)(e - s), p + s);
            w = cfg_grow(b, b->origin_where, o->n, sizeof *w);
            if (w == NULL)
                return;
            b->origin_where = w;
            if (cfg_strv_push(b, o, item) == 0)
                w[o->n - 1] = cfg_env_at(name);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    cfg_mark(b, "cors.allowed_origins", cfg_env_at(name));
}

void cfg_env_apply(cfg_build_t *b)
{
    env_environment(b);
    env_auth_mode(b);
    env_bool(b, "API_KEY_ENABLED", &b->c->auth.api_key_enabled, "auth.api_key_enabled");
    env_string(b, "API_KEYS_FILE", &b->c->auth.api_keys_file, "auth.api_keys_file");
    env_string(b, "JWKS_FILE", &b->c->auth.jwt.keys_file, "auth.jwt.keys_file");
    env_string(b, "AUDIT_LOG_PATH", &b->c->audit_path, "audit.path");
    env_string(b, "ADMIN_TOKENS_FILE", &b->c->admin_tokens_file, "admin_tokens_file");
    env_body_bytes(b);
    env_rate(b);
    env_redis_url(b);
    env_secrets(b);
    env_origins(b);
}
