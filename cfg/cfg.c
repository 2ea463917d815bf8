/* cfg.c — see include/tollgate/cfg.h: the load's steps, the snapshot's life,
 * and the small helpers the other cfg*.c files share (cfg_internal.h). */
#include "tollgate/cfg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cfg_internal.h"

/* ---- messages and marks ------------------------------------------------ */

void cfg_err(cfg_build_t *b, cfg_where_t w, const char *fmt, ...)
{
    char line[512];
    size_t n;
    int r;
    va_list ap;

    line[0] = '\0';
    if (w.line >= 0 || w.env != NULL) {
        cfg_where_str(b, w, line, sizeof line - 2);
        strcat(line, ": ");
    }
    n = strlen(line);
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    n += r < 0 ? 0 : ((size_t)r < sizeof line - n ? (size_t)r : sizeof line - n - 1);
    b->nerr++;
    /* Whole lines only: a problem that does not fit is counted, not cut. */
    if (b->err == NULL || b->errused + n + 2 > b->errlen)
        return;
    memcpy(b->err + b->errused, line, n);
    b->errused += n;
    b->err[b->errused++] = '\n';
    b->err[b->errused] = '\0';
}

/* "FILE:LINE", "FILE" or "env NAME", for messages and warnings. */
void cfg_where_str(const cfg_build_t *b, cfg_where_t w, char *out, size_t outlen)
{
    if (w.env != NULL)
        snprintf(out, outlen, "env %s", w.env);
    else if (w.line > 0)
        snprintf(out, outlen, "%s:%d", b->name, w.line);
    else
        snprintf(out, outlen, "%s", b->name);
}

cfg_where_t cfg_at(int line)
{
    cfg_where_t w = {line, NULL};
    return w;
}

cfg_where_t cfg_env_at(const char *env)
{
    cfg_where_t w = {0, env};
    return w;
}

void cfg_mark(cfg_build_t *b, const char *key, cfg_where_t w)
{
    cfg_mark_t *m;

    for (size_t i = 0; i < b->nmarks; i++)
        if (strcmp(b->marks[i].key, key) == 0) {
            b->marks[i].w = w;
            return;
        }
    if (b->nmarks == b->capmarks) {
        size_t cap = b->capmarks ? b->capmarks * 2 : 64;
        m = realloc(b->marks, cap * sizeof *m);
        if (m == NULL)
            return; /* a mark only improves a message */
        b->marks = m;
        b->capmarks = cap;
    }
    b->marks[b->nmarks].key = strdup(key);
    if (b->marks[b->nmarks].key == NULL)
        return;
    b->marks[b->nmarks++].w = w;
}

cfg_where_t cfg_where(const cfg_build_t *b, const char *key)
{
    for (size_t i = 0; i < b->nmarks; i++)
        if (strcmp(b->marks[i].key, key) == 0)
            return b->marks[i].w;
    return cfg_at(0);
}

/* ---- memory ------------------------------------------------------------- */

char *cfg_dup(cfg_build_t *b, const char *s)
{
    char *d = strdup(s);

    if (d == NULL)
        cfg_err(b, cfg_at(0), "out of memory");
    return d;
}

void cfg_set_str(char **dst, char *s)
{
    free(*dst);
    *dst = s;
}

void *cfg_grow(cfg_build_t *b, void *arr, size_t n, size_t size)
{
    void *p;

    if (n > ((size_t)-1) / size / 2) {
        cfg_err(b, cfg_at(0), "out of memory");
        return NULL;
    }
    /* Grow by powers of two: room for n + 1 elements. */
    if (n != 0 && (n & (n - 1)) != 0)
        return arr;
    p = realloc(arr, (n == 0 ? 1 : n * 2) * size);
    if (p == NULL)
        cfg_err(b, cfg_at(0), "out of memory");
    return p;
}

int cfg_strv_push(cfg_build_t *b, cfg_strv_t *v, const char *s)
{
    char **nv = cfg_grow(b, v->v, v->n, sizeof *v->v);
    char *d;

    if (nv == NULL)
        return -1;
    v->v = nv;
    d = cfg_dup(b, s);
    if (d == NULL)
        return -1;
    v->v[v->n++] = d;
    return 0;
}

void cfg_strv_clear(cfg_strv_t *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

void cfg_route_clear(cfg_route_t *r)
{
    free(r->name);
    rl_match_clear(&r->match);
    free(r->upstream);
    cfg_strv_clear(&r->scopes);
    memset(r, 0, sizeof *r);
}

void cfg_free_secret(char *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void cfg_claim_hdrs_clear(cfg_claim_hdrs_t *h)
{
    cfg_strv_clear(&h->claims);
    cfg_strv_clear(&h->headers);
}

void cfg_provider_clear(cfg_jwt_provider_t *p)
{
    free(p->name);
    free(p->issuer);
    cfg_strv_clear(&p->audiences);
    cfg_strv_clear(&p->algorithms);
    free(p->keys_file);
    free(p->jwks_uri);
    free(p->ca_file);
    free(p->scopes_claim);
    free(p->tier_claim);
    cfg_claim_hdrs_clear(&p->claim_hdrs);
    memset(p, 0, sizeof(*p));
}

static void cfg_free(cfg_t *c)
{
    free(c->path);
    free(c->listen);
    free(c->admin_listen);
    http_cidr_list_clear(&c->trusted_proxies);
    cfg_strv_clear(&c->redis.nodes);
    free(c->redis.key_prefix);
    free(c->redis.tls_ca_file);
    free(c->redis.tls_cert_file);
    free(c->redis.tls_key_file);
    free(c->redis.username);
    cfg_free_secret(c->redis.password);
    free(c->forward_auth.path);
    free(c->tickets.path);
    cfg_strv_clear(&c->tickets.scopes);
    c->tickets.route.scopes.v = NULL; /* borrowed from tickets.scopes */
    c->tickets.route.scopes.n = 0;
    cfg_route_clear(&c->tickets.route);
    free(c->healthz_path);
    free(c->readyz_path);
    cfg_route_clear(&c->default_route);
    free(c->security_headers.content_security_policy);
    free(c->security_headers.permissions_policy);
    free(c->auth.api_keys_file);
    free(c->auth.api_keys.link);
    auth_keystore_free(c->auth.keys);
    cfg_strv_clear(&c->auth.jwt.algorithms);
    free(c->auth.jwt.keys_file);
    free(c->auth.jwt.issuer);
    free(c->auth.jwt.audience);
    free(c->auth.jwt.scopes_claim);
    free(c->auth.jwt.tier_claim);
    cfg_claim_hdrs_clear(&c->auth.jwt.claim_hdrs);
    for (size_t i = 0; i < c->auth.jwt.nproviders; i++)
        cfg_provider_clear(&c->auth.jwt.providers[i]);
    free(c->auth.jwt.providers);
    auth_jwt_free(c->auth.jwt_verifier);
    rl_policy_set_clear(&c->policy);
    for (size_t i = 0; i < c->nroutes; i++)
        cfg_route_clear(&c->routes[i]);
    free(c->routes);
    cfg_strv_clear(&c->cors_origins);
    free(c->audit_path);
    cfg_strv_clear(&c->audit_redact);
    cfg_free_secret(c->admin_token);
    free(c->admin_tokens_file);
    auth_admintok_free(c->admin_tokens);
    free(c);
}

/* ---- small parsers ------------------------------------------------------ */

int cfg_parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    unsigned long long v = 0;

    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (max - (unsigned)(*s - '0')) / 10)
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    *out = v;
    return 0;
}

int cfg_parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

/* "30" or "30s", "1m", "15m", "1h", "1d": seconds. */
int cfg_parse_duration(const char *s, unsigned long long *out_s)
{
    static const struct {
        char unit;
        unsigned mult;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    char num[24];
    size_t len = strlen(s);
    unsigned mult = 1;
    unsigned long long v;

    if (len == 0 || len >= sizeof num)
        return -1;
    memcpy(num, s, len + 1);
    if (num[len - 1] < '0' || num[len - 1] > '9') {
        size_t i;

        for (i = 0; i < sizeof units / sizeof units[0]; i++)
            if (num[len - 1] == units[i].unit)
                break;
        if (i == sizeof units / sizeof units[0])
            return -1;
        mult = units[i].mult;
        num[len - 1] = '\0';
    }
    if (cfg_parse_uint(num, 0xffffffffull / mult, &v) != 0)
        return -1;
    *out_s = v * mult;
    return 0;
}

/* Limit, route and tier names: [A-Za-z0-9._-]{1,64} (they go into Redis keys,
 * metric labels and headers). */
int cfg_check_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CFG_MAX_NAME)
        return -1;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
            return -1;
    return 0;
}

/* A configured file must exist and be readable. */
int cfg_check_file(const char *path, char *why, size_t whylen)
{
    struct stat st;

    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "not a regular file");
        return -1;
    }
    return 0;
}

/* Copy a value from the file into a message: printable, bounded. */
void cfg_printable(const char *s, char *out, size_t outlen)
{
    size_t i = 0;

    for (; *s != '\0' && i + 1 < outlen; s++)
        out[i++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    out[i] = '\0';
    if (*s != '\0' && outlen > 4)
        memcpy(out + outlen - 4, "...", 4);
}

/* ---- defaults ----------------------------------------------------------- */

/* A new snapshot holding the defaults into b->c (NULL when out of memory).
 * The schema's table (cfg_yaml.c) holds every default a key has; only what
 * no single key's text can say is set here. */
static cfg_t *cfg_defaults(cfg_build_t *b)
{
    cfg_t *c = calloc(1, sizeof *c);
    bool ok;

    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    b->c = c;
    cfg_yaml_defaults(b);
    c->allowed_methods = CFG_ALLOWED_METHODS_DEFAULT;
    c->tickets.route.name = strdup("tickets");
    c->tickets.route.auth = CFG_ROUTE_REQUIRED;
    c->default_route.name = strdup("default");
    c->auth.keys = auth_keystore_new();
    c->auth.jwt.algorithms.v = calloc(1, sizeof(char *));
    if (c->auth.jwt.algorithms.v != NULL) {
        c->auth.jwt.algorithms.v[0] = strdup("HS256");
        c->auth.jwt.algorithms.n = c->auth.jwt.algorithms.v[0] != NULL;
    }
    ok = b->nerr == 0 && c->tickets.route.name && c->default_route.name && c->auth.keys &&
         c->auth.jwt.algorithms.n == 1 && http_cidr_list_default(&c->trusted_proxies) == 0;
    if (!ok) {
        cfg_free(c);
        b->c = NULL;
        return NULL;
    }
    return c;
}

/* ---- the load ----------------------------------------------------------- */

static void build_release(cfg_build_t *b)
{
    if (b->doc != NULL) {
        yaml_document_delete(b->doc);
        free(b->doc);
    }
    if (b->jwt_secret != NULL) {
        OPENSSL_cleanse(b->jwt_secret, b->jwt_secret_len);
        free(b->jwt_secret);
    }
    for (size_t i = 0; i < b->nmarks; i++)
        free(b->marks[i].key);
    free(b->marks);
    free(b->limit_meta);
    free(b->route_lines);
    free(b->origin_where);
}

cfg_t *cfg_load_string(const char *yaml, size_t len, const char *name, char *err,
                       size_t errlen)
{
    cfg_build_t b;

    memset(&b, 0, sizeof b);
    b.err = errlen > 0 ? err : NULL;
    b.errlen = errlen;
    if (b.err != NULL)
        b.err[0] = '\0';
    b.name = name != NULL ? name : "(config)";
    if (cfg_defaults(&b) == NULL) {
        cfg_err(&b, cfg_at(0), "out of memory");
        return NULL;
    }
    cfg_yaml_load(&b, yaml != NULL ? yaml : "", yaml != NULL ? len : 0);
    if (!b.limits_given)
        cfg_limit_add_default(&b);
    cfg_env_apply(&b);
    cfg_yaml_tiers(&b);
    cfg_check(&b);
    cfg_build_runtime(&b);
    if (b.nerr == 0)
        cfg_set_version(&b);
    build_release(&b);
    if (b.nerr != 0) {
        cfg_free(b.c);
        return NULL;
    }
    return b.c;
}

/* Read all of `path` (at most CFG_MAX_FILE_BYTES) into a new buffer. */
static char *read_config(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;

    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    buf = malloc(CFG_MAX_FILE_BYTES + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "%s: out of memory\n", path);
        goto out_close;
    }
    n = fread(buf, 1, CFG_MAX_FILE_BYTES + 1, f);
    if (ferror(f) || n > CFG_MAX_FILE_BYTES) {
        snprintf(err, errlen, "%s: %s\n", path,
                 ferror(f) ? "read error" : "larger than 4 MiB");
        free(buf);
        buf = NULL;
        goto out_close;
    }
    buf[n] = '\0';
    *len = n;
out_close:
    fclose(f);
    return buf;
}

cfg_t *cfg_load(const char *path, char *err, size_t errlen)
{
    char dummy[1];
    char *text;
    size_t len = 0;
    cfg_t *c;

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (path == NULL)
        return cfg_load_string("", 0, "(defaults)", err, errlen);
    text = read_config(path, &len, err, errlen);
    if (text == NULL)
        return NULL;
    c = cfg_load_string(text, len, path, err, errlen);
    free(text);
    if (c != NULL && (c->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "%s: out of memory\n", path);
        cfg_unref(c);
        return NULL;
    }
    return c;
}

cfg_t *cfg_ref(cfg_t *c)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void cfg_unref(cfg_t *c)
{
    if (c == NULL)
        return;
    /* acq_rel: every use by other threads happens before the free. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        cfg_free(c);
}

const char *cfg_auth_mode_str(cfg_auth_mode_t m)
{
    return m >= CFG_AUTH_NONE && m <= CFG_AUTH_ANY ? cfg_auth_mode_names[m] : "?";
}

static bool host_char(char ch, bool bracketed)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
        ch == '.' || ch == '-')
        return true;
    return bracketed ? ch == ':' : ch == '_';
}

/* "host[:port]" or "[v6]:port" (`len` bytes of `s`) into "host:port",
 * lower-cased, with `defport` when none is given.  0 or -1. */
int cfg_hostport_norm(const char *s, size_t len, unsigned defport, char *out, size_t outlen)
{
    char portbuf[8];
    const char *end = s + len, *rest;
    unsigned long long port = defport;
    size_t hl, i;
    bool br = len > 0 && s[0] == '[';

    if (br) {
        rest = memchr(s, ']', len);
        if (rest == NULL || rest == s + 1)
            return -1;
        rest++;
    } else {
        rest = memchr(s, ':', len);
        if (rest == NULL)
            rest = end;
    }
    hl = (size_t)(rest - s);
    if (hl == 0 || hl + 7 >= outlen)
        return -1;
    for (i = br ? 1 : 0; i < (br ? hl - 1 : hl); i++)
        if (!host_char(s[i], br))
            return -1;
    if (rest < end) {
        size_t pl = (size_t)(end - rest - 1);

        if (*rest != ':' || pl == 0 || pl >= sizeof portbuf)
            return -1;
        memcpy(portbuf, rest + 1, pl);
        portbuf[pl] = '\0';
        if (cfg_parse_uint(portbuf, 65535, &port) != 0 || port == 0)
            return -1;
    }
    for (i = 0; i < hl; i++)
        out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    snprintf(out + hl, outlen - hl, ":%llu", port);
    return 0;
}
