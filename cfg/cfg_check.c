/* cfg_check.c — rules that span several keys (and the environment), and the
 * runtime objects a snapshot carries: the API key store and the JWT verifier.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tollgate/auth_jwks.h"
#include "tollgate/log.h"
#include "tollgate/http.h"

#include "cfg_internal.h"

/* ---- files -------------------------------------------------------------- */

/* A configured file (`key`, possibly from the environment) must be readable. */
static void check_file(cfg_build_t *b, const char *key, const char *path)
{
    char why[128], shown[200];

    if (path == NULL)
        return;
    if (cfg_check_file(path, why, sizeof why) != 0) {
        cfg_printable(path, shown, sizeof shown);
        cfg_err(b, cfg_where(b, key), "%s: cannot read '%s': %s", key, shown, why);
    }
}

/* The audit log's directory must exist ("-" = stdout, "off" = none). */
static void check_audit(cfg_build_t *b)
{
    const char *p = b->c->audit_path, *slash;
    char dir[4096], shown[200];
    struct stat st;
    size_t len;

    if (strcmp(p, "-") == 0 || strcmp(p, "off") == 0)
        return;
    slash = strrchr(p, '/');
    len = slash == NULL ? 0 : (slash == p ? 1 : (size_t)(slash - p));
    if (len >= sizeof dir) {
        cfg_err(b, cfg_where(b, "audit.path"), "audit.path: too long");
        return;
    }
    if (len == 0)
        memcpy(dir, ".", 2);
    else {
        memcpy(dir, p, len);
        dir[len] = '\0';
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cfg_printable(dir, shown, sizeof shown);
        cfg_err(b, cfg_where(b, "audit.path"), "audit.path: directory '%s' does not exist",
                shown);
    }
}

static void check_files(cfg_build_t *b)
{
    const cfg_t *c = b->c;

    check_file(b, "auth.api_keys_file", c->auth.api_keys_file);
    check_file(b, "auth.jwt.keys_file", c->auth.jwt.keys_file);
    for (size_t i = 0; i < c->auth.jwt.nproviders; i++) {
        check_file(b, "auth.jwt.providers[].keys_file", c->auth.jwt.providers[i].keys_file);
        check_file(b, "auth.jwt.providers[].ca_file", c->auth.jwt.providers[i].ca_file);
    }
    check_file(b, "redis.tls_ca_file", c->redis.tls_ca_file);
    check_file(b, "redis.tls_cert_file", c->redis.tls_cert_file);
    check_file(b, "redis.tls_key_file", c->redis.tls_key_file);
    check_file(b, "admin_tokens_file", c->admin_tokens_file);
    check_audit(b);
}

/* ---- paths and routes ---------------------------------------------------- */

/* Could a request for `own` (and, with `subtree`, for `own`/...) match `m`?
 * Methods and host are ignored: the paths are the main listener's. */
static bool overlaps(const rl_match_t *m, const char *own, bool subtree)
{
    size_t ol = strlen(own), pl;

    if (m->path != NULL)
        return strcmp(m->path, own) == 0 ||
               (subtree && strncmp(m->path, own, ol) == 0 && m->path[ol] == '/');
    if (m->path_prefix == NULL)
        return true; /* matches every path */
    pl = strlen(m->path_prefix);
    if (strncmp(own, m->path_prefix, pl) == 0)
        return true;
    return subtree && strncmp(m->path_prefix, own, ol) == 0 && m->path_prefix[ol] == '/';
}

typedef struct own_path {
    const char *key;
    const char *path;
    bool subtree; /* forward-auth also answers PATH/... (Envoy dialect) */
} own_path_t;

static void check_own_paths(cfg_build_t *b, const own_path_t *own, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            rl_match_t m;

            if (i == j || own[i].path == NULL || own[j].path == NULL)
                continue;
            memset(&m, 0, sizeof m);
            m.path = (char *)own[j].path;
            if ((i < j && strcmp(own[i].path, own[j].path) == 0) ||
                (own[i].subtree && strcmp(own[i].path, own[j].path) != 0 &&
                 overlaps(&m, own[i].path, true)))
                cfg_err(b, cfg_where(b, own[j].key), "%s %s overlaps %s %s", own[j].key,
                        own[j].path, own[i].key, own[i].path);
        }
}

/* A match with both path and path_prefix that can never match. */
static void check_match(cfg_build_t *b, const rl_match_t *m, int line, const char *what)
{
    if (m->path != NULL && m->path_prefix != NULL &&
        strncmp(m->path, m->path_prefix, strlen(m->path_prefix)) != 0)
        cfg_err(b, cfg_at(line),
                "%s: match.path does not start with match.path_prefix; it "
                "can never match",
                what);
}

static void check_routes(cfg_build_t *b)
{
    const cfg_t *c = b->c;
    const own_path_t own[] = {
        {"forward_auth.path", c->forward_auth.path, true},
        {"tickets.path", c->tickets.path, false},
        {"health.healthz_path", c->healthz_path, false},
        {"health.readyz_path", c->readyz_path, false},
    };

    check_own_paths(b, own, sizeof own / sizeof own[0]);
    for (size_t i = 0; i < c->nroutes; i++) {
        const cfg_route_t *r = &c->routes[i];
        char what[100];

        snprintf(what, sizeof what, "routes[%zu] (%s)", i, r->name ? r->name : "?");
        check_match(b, &r->match, b->route_lines[i], what);
        for (size_t k = 0; k < sizeof own / sizeof own[0]; k++)
            if (overlaps(&r->match, own[k].path, own[k].subtree))
                cfg_err(
                    b, cfg_at(b->route_lines[i]),
                    "%s: its match overlaps tollgate's own path %s (%s); use default_route "
                    "for requests no route matches",
                    what, own[k].path, own[k].key);
        for (size_t j = 0; j < i; j++)
            if (r->name != NULL && c->routes[j].name != NULL &&
                strcmp(r->name, c->routes[j].name) == 0)
                cfg_err(b, cfg_at(b->route_lines[i]), "%s: name also used by routes[%zu]",
                        what, j);
    }
}

/* Does `j`'s prefix (compared as `j` compares) begin `s`? */
static bool prefix_of(const rl_match_t *j, const char *prefix, const char *s)
{
    size_t n = strlen(prefix);

    return (j->icase ? strncasecmp(prefix, s, n) : strncmp(prefix, s, n)) == 0;
}

/* Is every path `i` matches also matched by `j` (methods and host aside)? */
static bool path_covered(const rl_match_t *j, const rl_match_t *i)
{
    if (i->icase && !j->icase)
        return false;      /* i takes case variants j does not */
    if (j->path != NULL) { /* exact (a prefix beside it is implied by it) */
        if (i->path == NULL || i->slash_strict != j->slash_strict)
            return false;
        return (j->icase ? strcasecmp(j->path, i->path) : strcmp(j->path, i->path)) == 0;
    }
    if (j->path_prefix == NULL)
        return true;
    if (i->path != NULL) {
        size_t n = strlen(i->path);

        /* and its twin without the trailing '/', unless slash_strict */
        if (!i->slash_strict && n > 1 && i->path[n - 1] == '/' &&
            strlen(j->path_prefix) >= n)
            return false;
        return prefix_of(j, j->path_prefix, i->path);
    }
    return i->path_prefix != NULL && prefix_of(j, j->path_prefix, i->path_prefix);
}

/* Does `j` match every request `i` matches?  Then `i`, after it, never wins. */
static bool match_covered(const rl_match_t *j, const rl_match_t *i)
{
    if (j->methods != 0 && (i->methods == 0 || (i->methods & ~j->methods) != 0))
        return false;
    if (j->host != NULL && (i->host == NULL || !http_host_equal(j->host, i->host)))
        return false;
    return path_covered(j, i);
}

/* The first matching route wins: one matching all a later one does hides it
 * (in proxy mode routes without an upstream are passed over, so such a
 * route hides only routes without one either). */
static void check_shadowed_routes(cfg_build_t *b)
{
    const cfg_t *c = b->c;

    for (size_t i = 0; i < c->nroutes; i++)
        for (size_t j = 0; j < i; j++) {
            const cfg_route_t *ri = &c->routes[i], *rj = &c->routes[j];
            rl_match_t mj = rj->match;

            if (rj->other_methods_deny) /* it answers every method on its paths */
                mj.methods = 0;
            if ((rj->upstream != NULL || ri->upstream == NULL) &&
                match_covered(&mj, &ri->match)) {
                cfg_err(b, cfg_at(b->route_lines[i]),
                        "routes[%zu] (%s): never used: routes[%zu] (%s) before it matches "
                        "every request it does (the first match wins)",
                        i, ri->name ? ri->name : "?", j, rj->name ? rj->name : "?");
                break;
            }
        }
}

/* A route that requires scopes but authenticates no one answers every
 * request 403. */
static void check_route_scopes(cfg_build_t *b)
{
    const cfg_t *c = b->c;

    for (size_t i = 0; i < c->nroutes; i++)
        if (c->routes[i].scopes.n > 0 &&
            (c->routes[i].auth == CFG_ROUTE_NONE || c->auth.mode == CFG_AUTH_NONE))
            cfg_err(b, cfg_at(b->route_lines[i]),
                    "routes[%zu] (%s): scopes can never be met: %s", i,
                    c->routes[i].name ? c->routes[i].name : "?",
                    c->routes[i].auth == CFG_ROUTE_NONE ? "the route has auth: none"
                                                        : "auth.mode is none");
}

/* ---- methods ------------------------------------------------------------- */

/* Is there a path (and host) both matches could take? */
static bool targets_overlap(const rl_match_t *a, const rl_match_t *b)
{
    rl_match_t aa = *a, bb = *b;
    const char *pa, *pb;

    if (a->host != NULL && b->host != NULL && strcmp(a->host, b->host) != 0)
        return false;
    aa.host = bb.host = NULL;
    if (a->path != NULL)
        return rl_match_target(&bb, a->path, NULL);
    if (b->path != NULL)
        return rl_match_target(&aa, b->path, NULL);
    pa = a->path_prefix;
    pb = b->path_prefix;
    if (pa == NULL || pb == NULL)
        return true;
    return rl_match_target(&aa, pb, NULL) || rl_match_target(&bb, pa, NULL);
}

/* Does `l` take every request of `r`'s paths (and host) with a method
 * `r` does not list (so none goes past it)? */
static bool covers_rest(const rl_match_t *l, const rl_match_t *r, unsigned allowed)
{
    const char *rp = r->path != NULL ? r->path : r->path_prefix;

    if ((l->host != NULL && (r->host == NULL || strcmp(l->host, r->host) != 0)) ||
        (r->icase && !l->icase) ||
        (l->methods != 0 && (allowed & ~r->methods & ~l->methods) != 0))
        return false;
    if (l->path != NULL)
        return r->path != NULL && strcmp(l->path, r->path) == 0;
    if (l->path_prefix != NULL)
        return rp != NULL && strncmp(rp, l->path_prefix, strlen(l->path_prefix)) == 0;
    return true;
}

/* What `later` asks less than `r` (weaker auth, a missing scope) into
 * `why`; false when it asks as much. */
static bool asks_less(const cfg_route_t *r, const cfg_route_t *later, char *why, size_t len)
{
    if (later->auth > r->auth) { /* required < optional < none */
        snprintf(why, len, "auth %s", later->auth == CFG_ROUTE_NONE ? "none" : "optional");
        return true;
    }
    for (size_t i = 0; i < r->scopes.n; i++) {
        bool has = false;

        for (size_t j = 0; j < later->scopes.n && !has; j++)
            has = strcmp(r->scopes.v[i], later->scopes.v[j]) == 0;
        if (!has) {
            snprintf(why, len, "no scope %.64s", r->scopes.v[i]);
            return true;
        }
    }
    return false;
}

/* A route that lists methods lets a request for its paths with another
 * method go on to the next route that matches it: warn when that one asks
 * less (the fall-through of issue 19), unless other_methods: deny. */
static void warn_fall_through(cfg_build_t *b, size_t i)
{
    const cfg_t *c = b->c;
    const cfg_route_t *r = &c->routes[i];
    char where[300], why[96];

    if (r->match.methods == 0 || r->other_methods_deny)
        return;
    for (size_t j = i + 1; j <= c->nroutes; j++) {
        const cfg_route_t *l = j < c->nroutes ? &c->routes[j] : &c->default_route;
        unsigned lm = l->match.methods != 0 ? l->match.methods : ~0u;

        if ((lm & ~r->match.methods & c->allowed_methods) == 0 ||
            !targets_overlap(&r->match, &l->match))
            continue;
        if (!asks_less(r, l, why, sizeof why)) {
            if (covers_rest(&l->match, &r->match, c->allowed_methods))
                return; /* it decides them all, asking as much */
            continue;
        }
        cfg_where_str(b, cfg_at(b->route_lines[i]), where, sizeof where);
        if (j < c->nroutes)
            log_warn("%s: routes[%zu] (%s) lists methods; another method on its paths "
                     "falls through to routes[%zu] (%s), which asks less (%s): set "
                     "other_methods: deny, or route those methods on purpose",
                     where, i, r->name, j, l->name, why);
        else
            log_warn("%s: routes[%zu] (%s) lists methods; in forward-auth another method "
                     "on its paths falls through to default_route, which asks less (%s): "
                     "set other_methods: deny, or route those methods on purpose",
                     where, i, r->name, why);
        return; /* one warning per route: the first route it falls to */
    }
}

static void check_methods(cfg_build_t *b)
{
    const cfg_t *c = b->c;

    for (size_t i = 0; i < c->nroutes; i++) {
        const cfg_route_t *r = &c->routes[i];
        char where[300];

        if (r->other_methods_deny && r->match.methods == 0)
            cfg_err(b, cfg_at(b->route_lines[i]),
                    "routes[%zu] (%s): other_methods: deny needs match.methods", i,
                    r->name);
        if (r->match.methods != 0 && (r->match.methods & c->allowed_methods) == 0) {
            cfg_where_str(b, cfg_at(b->route_lines[i]), where, sizeof where);
            log_warn("%s: routes[%zu] (%s): none of its methods is in allowed_methods; it "
                     "never matches",
                     where, i, r->name);
        }
        warn_fall_through(b, i);
    }
}

static void check_limits(cfg_build_t *b)
{
    const rl_policy_set_t *ps = &b->c->policy;

    for (size_t i = 0; i < ps->nlimits; i++) {
        char what[100];

        snprintf(what, sizeof what, "limits[%zu] (%s)", i, ps->limits[i].name);
        check_match(b, &ps->limits[i].match, b->limit_meta[i].line, what);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ps->limits[i].name, ps->limits[j].name) == 0)
                cfg_err(b, cfg_at(b->limit_meta[i].line),
                        "%s: name also used by limits[%zu]", what, j);
    }
}

/* ---- the rest ------------------------------------------------------------ */

/* A problem that refuses the config in production and is a loud warning in
 * development (where an operator may be half-way through setting up). */
static void cfg_err_prod(cfg_build_t *b, cfg_where_t w, const char *msg)
{
    char where[300];

    if (b->c->environment == CFG_ENV_PRODUCTION) {
        cfg_err(b, w, "%s (refused in production)", msg);
        return;
    }
    if (w.line == -1) /* the message names its own place */
        log_warn("%s (refused in production)", msg);
    else {
        cfg_where_str(b, w, where, sizeof where);
        log_warn("%s: %s (refused in production)", where, msg);
    }
}

static void check_redis(cfg_build_t *b)
{
    const cfg_redis_t *r = &b->c->redis;

    if (r->mode != CFG_REDIS_NONE && r->nodes.n == 0)
        cfg_err(b, cfg_where(b, "redis.mode"),
                "redis.nodes (or REDIS_URL) is needed when "
                "redis.mode is standalone or cluster");
    if (r->mode == CFG_REDIS_CLUSTER && r->db != 0)
        cfg_err(b, cfg_where(b, "redis.db"), "redis.db: Redis Cluster has only database 0");
    if ((r->tls_cert_file == NULL) != (r->tls_key_file == NULL))
        cfg_err(
            b,
            cfg_where(b, r->tls_cert_file ? "redis.tls_cert_file" : "redis.tls_key_file"),
            "redis.tls_cert_file and redis.tls_key_file go together");
    if (!r->tls && (r->tls_ca_file || r->tls_cert_file))
        log_warn("%s: redis.tls_* files are set but redis.tls is false", b->name);
    if (r->mode == CFG_REDIS_NONE && r->required)
        cfg_err(b, cfg_where(b, "redis.required"),
                "redis.required is true but redis.mode is none");
}

static void check_production(cfg_build_t *b)
{
    const cfg_t *c = b->c;

    if (c->environment != CFG_ENV_PRODUCTION) {
        if (c->auth.mode == CFG_AUTH_NONE)
            log_warn(
                "%s: auth.mode none: every request is anonymous (refused in production)",
                b->name);
        return;
    }
    if (c->auth.mode == CFG_AUTH_NONE)
        cfg_err(b, cfg_where(b, "auth.mode"),
                "auth.mode none is not allowed in production");
    if (!c->auth.api_key_enabled)
        cfg_err(b, cfg_where(b, "auth.api_key_enabled"),
                "API keys cannot be disabled (API_KEY_ENABLED=false) in production");
}

/* Keep the valid CORS origins; a bad one is an error in production and is
 * dropped with a warning in development. */
static void check_origins(cfg_build_t *b)
{
    cfg_strv_t *o = &b->c->cors_origins;
    size_t keep = 0;

    for (size_t i = 0; i < o->n; i++) {
        char why[256] = "", shown[256], where[300];
        cfg_where_t w = b->origin_where[i];

        if (http_cors_origin_check(o->v[i], why, sizeof why) == 0) {
            b->origin_where[keep] = w;
            o->v[keep++] = o->v[i];
            continue;
        }
        cfg_printable(why, shown, sizeof shown); /* `why` names the origin */
        if (b->c->environment == CFG_ENV_PRODUCTION)
            cfg_err(b, w, "cors.allowed_origins: %s (refused in production)", shown);
        else {
            cfg_where_str(b, w, where, sizeof where);
            log_warn("%s: cors.allowed_origins: %s (dropped)", where, shown);
        }
        free(o->v[i]);
    }
    o->n = keep;
}

/* host:0 — the kernel picks the port at bind time */
static bool listen_any_port(const char *addr)
{
    char host[256];
    uint16_t port;

    return http_parse_hostport(addr, host, sizeof host, &port) == 0 && port == 0;
}

static void check_misc(cfg_build_t *b)
{
    const cfg_t *c = b->c;
    const cfg_lockout_t *lo = &c->auth.lockout;

    /* Both on port 0 is fine: the kernel gives each its own port. */
    if (strcmp(c->listen, c->admin_listen) == 0 && !listen_any_port(c->listen))
        cfg_err(b, cfg_where(b, "admin_listen"), "admin_listen must differ from listen");
    if (lo->max_backoff_s < lo->base_backoff_s)
        cfg_err(b, cfg_where(b, "auth.lockout.max_backoff"),
                "auth.lockout.max_backoff is shorter than base_backoff");
    /* it goes into a Link header between < and > */
    if (c->auth.api_keys.link != NULL &&
        ((strncmp(c->auth.api_keys.link, "https://", 8) != 0 &&
          strncmp(c->auth.api_keys.link, "http://", 7) != 0) ||
         strpbrk(c->auth.api_keys.link, "<>\" ") != NULL ||
         strlen(c->auth.api_keys.link) > 500))
        cfg_err(
            b, cfg_where(b, "auth.api_keys.link"),
            "auth.api_keys.link: an http(s) URL of at most 500 bytes without <, >, \" or "
            "spaces");
}

/* path_match: a route's own setting, or the global one for every route and
 * limit (so a case variant cannot skip a limit either). */
static void apply_path_match(cfg_build_t *b)
{
    cfg_t *c = b->c;
    bool all = c->path_match == CFG_PATH_CASE_INSENSITIVE;

    c->default_route.path_icase = all;
    for (size_t i = 0; i < c->nroutes; i++) {
        c->routes[i].path_icase |= all;
        c->routes[i].match.icase = c->routes[i].path_icase;
        c->routes[i].match.slash_strict = c->trailing_slash == CFG_SLASH_DISTINCT;
    }
    for (size_t i = 0; i < c->policy.nlimits; i++) {
        c->policy.limits[i].match.icase = all;
        c->policy.limits[i].match.slash_strict = c->trailing_slash == CFG_SLASH_DISTINCT;
    }
}

void cfg_check(cfg_build_t *b)
{
    apply_path_match(b);
    check_production(b);
    check_files(b);
    check_routes(b);
    check_shadowed_routes(b);
    check_route_scopes(b);
    check_methods(b);
    check_limits(b);
    check_redis(b);
    check_origins(b);
    check_misc(b);
}

/* ---- runtime objects ----------------------------------------------------- */

/* SHA-256 of a file's bytes (for the version); zeros when unreadable. */
static void hash_file(const char *path, unsigned char out[32])
{
    unsigned char buf[8192];
    EVP_MD_CTX *ctx;
    FILE *f;
    size_t n;

    memset(out, 0, 32);
    if (path == NULL || (f = fopen(path, "rb")) == NULL)
        return;
    ctx = EVP_MD_CTX_new();
    if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            EVP_DigestUpdate(ctx, buf, n);
        EVP_DigestFinal_ex(ctx, out, NULL);
    }
    EVP_MD_CTX_free(ctx);
    fclose(f);
}

/* ALLOWED_API_KEYS: comma list of plaintext keys, hashed at once. */
static void add_plain_keys(cfg_build_t *b, auth_keystore_t *ks)
{
    const char *v = getenv("ALLOWED_API_KEYS"), *p;
    size_t entry = 0;

    if (v == NULL)
        return;
    for (p = v; *p != '\0';) {
        size_t len = strcspn(p, ","), s = 0, e = len;
        char why[256];

        while (s < e && (p[s] == ' ' || p[s] == '\t'))
            s++;
        while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
            e--;
        if (e > s) {
            entry++;
            if (e - s > AUTH_APIKEY_MAX_LEN)
                cfg_err(b, cfg_env_at("ALLOWED_API_KEYS"),
                        "entry %zu is longer than %d bytes", entry, AUTH_APIKEY_MAX_LEN);
            else if (auth_keystore_add_plain(ks, p + s, e - s, why, sizeof why) != 0)
                /* `why` is not shown: it is not ours to promise it holds no key */
                cfg_err(b, cfg_env_at("ALLOWED_API_KEYS"),
                        "entry %zu refused (a duplicate?)", entry);
            OPENSSL_cleanse(why, sizeof why);
        }
        p += len;
        if (*p == ',')
            p++;
    }
}

/* Returns false when the key file could not be loaded. */
static bool build_keystore(cfg_build_t *b)
{
    cfg_t *c = b->c;
    char why[512], tmp[32];

    if (!c->auth.api_key_enabled) {
        if (getenv("ALLOWED_API_KEYS") != NULL || c->auth.api_keys_file != NULL)
            log_warn("%s: API keys are disabled (API_KEY_ENABLED=false): configured keys "
                     "ignored",
                     b->name);
        return true;
    }
    if (c->auth.api_keys_file != NULL &&
        cfg_check_file(c->auth.api_keys_file, tmp, sizeof tmp) == 0) {
        if (auth_keystore_load_file(c->auth.keys, c->auth.api_keys_file, why, sizeof why) !=
            0) {
            cfg_err(b, cfg_at(-1), "%s", why);
            return false;
        }
        hash_file(c->auth.api_keys_file, b->keys_file_sha);
    }
    add_plain_keys(b, c->auth.keys);
    return true;
}

static bool jwt_wanted(const cfg_t *c)
{
    return c->auth.mode == CFG_AUTH_JWT || c->auth.mode == CFG_AUTH_ANY;
}

static void check_hs_secret(cfg_build_t *b)
{
    char where[300];

    if (b->jwt_secret == NULL || b->jwt_secret_len >= AUTH_JWT_MIN_HS_SECRET)
        return;
    if (b->c->environment == CFG_ENV_PRODUCTION) {
        cfg_err(b, b->jwt_secret_where,
                "the HS secret is %zu bytes; production needs at least %d",
                b->jwt_secret_len, AUTH_JWT_MIN_HS_SECRET);
        return;
    }
    cfg_where_str(b, b->jwt_secret_where, where, sizeof where);
    log_warn("%s: the HS secret is %zu bytes; production needs at least %d", where,
             b->jwt_secret_len, AUTH_JWT_MIN_HS_SECRET);
}

/* acc = SHA-256(acc || SHA-256(data)): one digest over several files. */
static void fold_digest(unsigned char acc[32], const char *data, size_t len)
{
    unsigned char both[64];

    memcpy(both, acc, 32);
    if (EVP_Digest(data, len, both + 32, NULL, EVP_sha256(), NULL) == 1)
        EVP_Digest(both, sizeof both, acc, NULL, EVP_sha256(), NULL);
}

/* A JWKS file's bytes (at most AUTH_JWKS_MAX_DOC + 1, so an oversized one
 * is refused by the parser), folded into the version digest.  NULL when
 * unreadable (check_files reported it). */
static char *read_jwks(cfg_build_t *b, const char *path, size_t *len)
{
    char *buf = malloc(AUTH_JWKS_MAX_DOC + 1);
    FILE *f = buf != NULL ? fopen(path, "rb") : NULL;

    *len = 0;
    if (f == NULL) {
        free(buf);
        return NULL;
    }
    *len = fread(buf, 1, AUTH_JWKS_MAX_DOC + 1, f);
    fclose(f);
    fold_digest(b->jwks_file_sha, buf, *len);
    return buf;
}

static void claim_hdrs_opts(const cfg_claim_hdrs_t *h, auth_jwt_claim_hdr_t *out)
{
    for (size_t i = 0; i < h->claims.n; i++)
        out[i] = (auth_jwt_claim_hdr_t){h->claims.v[i], h->headers.v[i]};
}

/* The single-issuer keys (auth.jwt.issuer, audience, keys_file, JWT_SECRET)
 * as one provider; false when there are none. */
static bool shorthand_opts(cfg_build_t *b, auth_jwt_provider_opts_t *o,
                           auth_jwt_claim_hdr_t *hdrs, char **doc)
{
    const cfg_jwt_t *j = &b->c->auth.jwt;

    *doc = NULL;
    if (b->jwt_secret == NULL && j->keys_file == NULL)
        return false;
    memset(o, 0, sizeof *o);
    o->issuer = j->issuer;
    o->audiences = (const char *const *)&j->audience;
    o->naudiences = j->audience != NULL;
    o->algorithms = (const char *const *)j->algorithms.v;
    o->nalgorithms = j->algorithms.n;
    o->hs_secret = (const unsigned char *)b->jwt_secret;
    o->hs_secret_len = b->jwt_secret_len;
    if (j->keys_file != NULL) {
        *doc = read_jwks(b, j->keys_file, &o->keys_len);
        o->keys_json = *doc != NULL ? *doc : "";
    }
    o->scopes_claim = j->scopes_claim;
    o->tier_claim = j->tier_claim;
    claim_hdrs_opts(&j->claim_hdrs, hdrs);
    o->claim_hdrs = hdrs;
    o->nclaim_hdrs = j->claim_hdrs.claims.n;
    return true;
}

static void provider_opts(cfg_build_t *b, const cfg_jwt_provider_t *p,
                          auth_jwt_provider_opts_t *o, auth_jwt_claim_hdr_t *hdrs,
                          char **doc)
{
    memset(o, 0, sizeof *o);
    *doc = NULL;
    o->name = p->name;
    o->issuer = p->issuer;
    o->audiences = (const char *const *)p->audiences.v;
    o->naudiences = p->audiences.n;
    o->algorithms = (const char *const *)p->algorithms.v;
    o->nalgorithms = p->algorithms.n;
    if (p->keys_file != NULL) {
        *doc = read_jwks(b, p->keys_file, &o->keys_len);
        o->keys_json = *doc != NULL ? *doc : "";
    }
    o->jwks_uri = p->jwks_uri;
    o->discovery = p->discovery;
    o->ca_file = p->ca_file;
    o->refresh_s = p->refresh_s;
    o->min_refresh_s = p->min_refresh_s;
    o->max_stale_s = p->max_stale_s;
    o->fetch_timeout_s = p->fetch_timeout_s;
    o->scopes_claim = p->scopes_claim;
    o->tier_claim = p->tier_claim;
    claim_hdrs_opts(&p->claim_hdrs, hdrs);
    o->claim_hdrs = hdrs;
    o->nclaim_hdrs = p->claim_hdrs.claims.n;
}

static size_t claim_hdrs_total(const cfg_jwt_t *j)
{
    size_t n = j->claim_hdrs.claims.n;

    for (size_t i = 0; i < j->nproviders; i++)
        n += j->providers[i].claim_hdrs.claims.n;
    return n;
}

static bool jwt_configured(const cfg_build_t *b)
{
    const cfg_jwt_t *j = &b->c->auth.jwt;

    return b->jwt_secret != NULL || j->keys_file != NULL || j->nproviders > 0;
}

/* Key families: an RSA key serves RS* and PS*, an EC key ES*, an OKP key
 * EdDSA, a secret HS*. */
static unsigned alg_family(auth_alg_t a)
{
    static const unsigned hs = 1u << AUTH_ALG_HS256 | 1u << AUTH_ALG_HS384 |
                               1u << AUTH_ALG_HS512,
                          rsa = 1u << AUTH_ALG_RS256 | 1u << AUTH_ALG_RS384 |
                                1u << AUTH_ALG_RS512 | 1u << AUTH_ALG_PS256 |
                                1u << AUTH_ALG_PS384 | 1u << AUTH_ALG_PS512,
                          ec = 1u << AUTH_ALG_ES256 | 1u << AUTH_ALG_ES384 |
                               1u << AUTH_ALG_ES512;
    unsigned bit = 1u << a;

    return (bit & hs) ? hs : (bit & rsa) ? rsa : (bit & ec) ? ec : bit;
}

/* Which algorithms the provider's static keys can check (JWT_SECRET: the
 * one HS algorithm listed; a JWKS file: each key's pinned algorithm). */
static unsigned static_key_algs(const auth_jwt_provider_opts_t *o, unsigned allowed)
{
    unsigned have = 0;

    if (o->hs_secret != NULL && o->hs_secret_len > 0)
        have |= allowed & alg_family(AUTH_ALG_HS256);
    if (o->keys_json != NULL) {
        char note[64], why[64];
        auth_jwks_t *k = auth_jwks_parse(o->keys_json, o->keys_len, allowed, NULL, note,
                                         sizeof note, why, sizeof why);

        have |= auth_jwks_alg_mask(k);
        auth_jwks_unref(k);
    }
    return have;
}

/* Every algorithm listed must have a key that can check it, or its tokens
 * are refused (no_key, unknown_kid) by a config that looked fine.  A whole
 * family without a key: refused in production; one algorithm of a family
 * that has keys: a warning.  Keys fetched at run time are not known now. */
static void check_alg_keys(cfg_build_t *b, const auth_jwt_provider_opts_t *o,
                           bool shorthand)
{
    unsigned allowed = 0, have, missing = 0, done = 0;
    char msg[512], list[256] = "";
    cfg_where_t w = cfg_where(b, shorthand ? "auth.jwt.algorithms" : "auth.jwt.providers");
    size_t used = 0;

    if (o->jwks_uri != NULL || o->discovery)
        return;
    for (size_t i = 0; i < o->nalgorithms; i++)
        allowed |= 1u << auth_alg_from_name(o->algorithms[i]);
    allowed &= ~1u; /* AUTH_ALG_NONE: refused when the verifier was built */
    have = static_key_algs(o, allowed);
    if (w.line == 0)
        w = cfg_where(b, "auth.jwt");
    for (size_t i = 0; i < o->nalgorithms; i++) {
        auth_alg_t a = auth_alg_from_name(o->algorithms[i]);
        unsigned fam = alg_family(a);

        if (a == AUTH_ALG_NONE || (have & (1u << a)) || (done & (1u << a)))
            continue;
        done |= 1u << a;
        if ((have & fam) == 0) {
            missing |= fam;
            used +=
                (size_t)snprintf(list + used, used < sizeof list ? sizeof list - used : 0,
                                 "%s%s", used > 0 ? ", " : "", auth_alg_name(a));
        } else {
            char where[300];

            cfg_where_str(b, w, where, sizeof where);
            log_warn("%s: auth.jwt%s%s: %s is listed but no key is pinned to it; its "
                     "tokens are refused (unknown_kid)",
                     where, shorthand ? "" : " provider ", shorthand ? "" : o->name,
                     auth_alg_name(a));
        }
    }
    if (missing == 0)
        return;
    snprintf(msg, sizeof msg,
             "auth.jwt%s%s: algorithms %s have no key to check them (%s); such tokens "
             "would be refused with reason no_key",
             shorthand ? "" : " provider ", shorthand ? "" : o->name, list,
             (missing & alg_family(AUTH_ALG_HS256))
                 ? "HS* needs JWT_SECRET, JWT_SECRET_FILE or an oct key in keys_file"
                 : "a JWKS keys_file with keys of that type");
    cfg_err_prod(b, w, msg);
}

static void build_jwt(cfg_build_t *b)
{
    cfg_t *c = b->c;
    const cfg_jwt_t *j = &c->auth.jwt;
    auth_jwt_provider_opts_t *po;
    auth_jwt_claim_hdr_t *hdrs;
    char **docs, why[512] = "";
    size_t n = 0, used = 0;
    cfg_where_t w;

    check_hs_secret(b);
    if (!jwt_configured(b)) {
        w = cfg_where(b, "auth.jwt.algorithms");
        if (jwt_wanted(c) && w.line != 0) {
            snprintf(why, sizeof why,
                     "auth.jwt.algorithms is set but no JWT key is configured (JWT_SECRET, "
                     "JWT_SECRET_FILE, JWKS_FILE, auth.jwt.keys_file or providers); every "
                     "token would be refused with reason no_key");
            cfg_err_prod(b, w, why);
        }
        return;
    }
    if (!jwt_wanted(c)) {
        log_warn("%s: JWT keys are configured but auth.mode is %s: ignored", b->name,
                 cfg_auth_mode_str(c->auth.mode));
        return;
    }
    po = calloc(j->nproviders + 1, sizeof *po);
    docs = calloc(j->nproviders + 1, sizeof *docs);
    hdrs = calloc(claim_hdrs_total(j) + 1, sizeof *hdrs);
    if (po == NULL || docs == NULL || hdrs == NULL) {
        cfg_err(b, cfg_at(0), "out of memory");
        goto out_free;
    }
    if (shorthand_opts(b, &po[0], hdrs, &docs[0])) {
        used += po[0].nclaim_hdrs;
        n++;
    }
    for (size_t i = 0; i < j->nproviders; i++, n++) {
        provider_opts(b, &j->providers[i], &po[n], hdrs + used, &docs[n]);
        used += po[n].nclaim_hdrs;
    }
    c->auth.jwt_verifier = auth_jwt_new(
        &(auth_jwt_opts_t){.providers = po, .nproviders = n, .leeway_s = j->leeway_s}, why,
        sizeof why);
    if (c->auth.jwt_verifier == NULL) {
        w = cfg_where(b, "auth.jwt");
        cfg_err(b, w.line > 0 ? w : b->jwt_secret_where, "auth.jwt: %s", why);
    } else {
        for (size_t i = 0; i < n; i++)
            check_alg_keys(b, &po[i], i == 0 && n > j->nproviders);
    }
out_free:
    for (size_t i = 0; docs != NULL && i <= j->nproviders; i++)
        free(docs[i]);
    free(docs);
    free(po);
    free(hdrs);
}

/* The chosen auth mode must have a credential to check. */
static void check_credentials(cfg_build_t *b, bool keys_ok)
{
    const cfg_t *c = b->c;
    char why[32];
    /* A key file that failed to load has its own message: no second one. */
    bool file_bad =
        !keys_ok || (c->auth.api_keys_file != NULL &&
                     cfg_check_file(c->auth.api_keys_file, why, sizeof why) != 0);
    bool keys =
        c->auth.api_key_enabled && (file_bad || auth_keystore_count(c->auth.keys) > 0);
    bool jwt = jwt_configured(b);
    cfg_where_t w = cfg_where(b, "auth.mode");

    switch (c->auth.mode) {
    case CFG_AUTH_API_KEY:
        if (!c->auth.api_key_enabled)
            cfg_err(b, w,
                    "auth.mode api_key, but API keys are disabled (API_KEY_ENABLED=false)");
        else if (!keys)
            cfg_err(b, w,
                    "auth.mode api_key needs API keys: auth.api_keys_file, API_KEYS_FILE "
                    "or ALLOWED_API_KEYS");
        break;
    case CFG_AUTH_JWT:
        if (!jwt)
            cfg_err(b, w,
                    "auth.mode jwt needs JWT_SECRET, JWT_SECRET_FILE or a JWKS "
                    "(auth.jwt.keys_file, JWKS_FILE)");
        break;
    case CFG_AUTH_ANY:
        if (!keys && !jwt)
            cfg_err(b, w,
                    "auth.mode any needs API keys (auth.api_keys_file, API_KEYS_FILE, "
                    "ALLOWED_API_KEYS) or a JWT key (JWT_SECRET, JWT_SECRET_FILE, "
                    "JWKS_FILE)");
        break;
    case CFG_AUTH_NONE:
        break;
    }
}

/* Settings that can never apply given which credentials are accepted. */

static bool jwt_accepted(const cfg_t *c)
{
    return jwt_wanted(c) && c->auth.jwt_verifier != NULL;
}

static bool keys_accepted(const cfg_t *c)
{
    return (c->auth.mode == CFG_AUTH_API_KEY || c->auth.mode == CFG_AUTH_ANY) &&
           c->auth.api_key_enabled && auth_keystore_count(c->auth.keys) > 0;
}

/* A route taking only credentials that are never accepted refuses all. */
static void check_route_methods(cfg_build_t *b)
{
    const cfg_t *c = b->c;
    char msg[300];

    if (c->auth.mode == CFG_AUTH_NONE)
        return;
    for (size_t i = 0; i < c->nroutes; i++) {
        unsigned m = c->routes[i].auth_methods;

        if (m == 0 || c->routes[i].auth == CFG_ROUTE_NONE ||
            ((m & CFG_METHOD_API_KEY) && keys_accepted(c)) ||
            ((m & CFG_METHOD_JWT) && jwt_accepted(c)))
            continue;
        snprintf(msg, sizeof msg,
                 "routes[%zu] (%s): auth_methods accepts only %s, which auth.mode %s and "
                 "the configured keys never accept: every request is refused",
                 i, c->routes[i].name ? c->routes[i].name : "?",
                 m == CFG_METHOD_JWT ? "jwt" : "api_key", cfg_auth_mode_str(c->auth.mode));
        cfg_err_prod(b, cfg_at(b->route_lines[i]), msg);
    }
}

/* A limit keyed on what no request carries puts every request in one bucket. */
static void check_limit_keys(cfg_build_t *b)
{
    const cfg_t *c = b->c;
    const rl_policy_set_t *ps = &c->policy;

    for (size_t i = 0; i < ps->nlimits; i++)
        for (size_t k = 0; k < ps->limits[i].nby; k++) {
            const rl_by_t *by = &ps->limits[i].by[k];
            char where[300];

            if (!(by->kind == RL_BY_CLAIM && !jwt_accepted(c)) &&
                !(by->kind == RL_BY_CLIENT && c->auth.mode == CFG_AUTH_NONE))
                continue;
            cfg_where_str(b, cfg_at(b->limit_meta[i].line), where, sizeof where);
            log_warn("%s: limits[%zu] (%s): by %s%s, but %s: every request shares one "
                     "bucket",
                     where, i, ps->limits[i].name,
                     by->kind == RL_BY_CLAIM ? "claim:" : "client",
                     by->kind == RL_BY_CLAIM && by->name ? by->name : "",
                     by->kind == RL_BY_CLAIM ? "no JWT is accepted" : "auth.mode is none");
        }
}

/* tier= in the key file must name a tier of `tiers:`, or the key silently
 * gets the default rates. */
static void check_key_tiers(cfg_build_t *b)
{
    const cfg_t *c = b->c;
    const auth_apikey_t *k;

    for (size_t i = 0; (k = auth_keystore_get(c->auth.keys, i)) != NULL; i++) {
        bool found = k->tier == NULL;
        char msg[300], shown[200];

        for (size_t t = 0; !found && t < c->policy.ntiers; t++)
            found = strcmp(c->policy.tiers[t].name, k->tier) == 0;
        if (found)
            continue;
        cfg_printable(c->auth.api_keys_file ? c->auth.api_keys_file : "ALLOWED_API_KEYS",
                      shown, sizeof shown);
        snprintf(msg, sizeof msg,
                 "%s:%lu: key id %s: tier=%s is not defined in tiers (its requests would "
                 "get the default rates)",
                 shown, k->line, k->id, k->tier);
        cfg_err_prod(b, cfg_at(-1), msg);
    }
}

/* API keys accepted but none configured (JWT works): every X-API-Key is
 * refused invalid_api_key, which looks like a client's fault. */
static void check_empty_keys(cfg_build_t *b, bool keys_ok)
{
    const cfg_t *c = b->c;

    if (keys_ok && (c->auth.mode == CFG_AUTH_ANY) && c->auth.api_key_enabled &&
        auth_keystore_count(c->auth.keys) == 0 && jwt_accepted(c))
        log_warn("%s: auth.mode any with API keys enabled but none configured: every "
                 "X-API-Key is refused (invalid_api_key); set API_KEY_ENABLED=false in "
                 "development or add keys",
                 b->name);
}

/* The admin tokens: ADMIN_TOKEN as `admin write`, then admin_tokens_file.
 * A token shorter than AUTH_ADMINTOK_MIN_PROD bytes is refused in
 * production (like an HS secret) and a warning in development. */
static void build_admin_tokens(cfg_build_t *b)
{
    cfg_t *c = b->c;
    char why[512], tmp[32];

    c->admin_tokens = auth_admintok_new();
    if (c->admin_tokens == NULL) {
        cfg_err(b, cfg_at(0), "out of memory");
        return;
    }
    if (c->admin_token != NULL &&
        auth_admintok_add(c->admin_tokens, AUTH_ADMINTOK_ENV_ID, AUTH_ADMIN_WRITE,
                          c->admin_token, strlen(c->admin_token), why, sizeof why) != 0)
        cfg_err(b, cfg_where(b, "admin_token"), "ADMIN_TOKEN: %s", why);
    if (c->admin_tokens_file != NULL &&
        cfg_check_file(c->admin_tokens_file, tmp, sizeof tmp) == 0) {
        if (auth_admintok_load_file(c->admin_tokens, c->admin_tokens_file, why,
                                    sizeof why) != 0)
            cfg_err(b, cfg_at(-1), "%s", why);
        else
            hash_file(c->admin_tokens_file, b->admin_tokens_file_sha);
    }
    for (size_t i = 0; i < auth_admintok_count(c->admin_tokens); i++) {
        const auth_admin_id_t *e = auth_admintok_get(c->admin_tokens, i);
        char msg[200];

        if (e->token_len >= AUTH_ADMINTOK_MIN_PROD)
            continue;
        snprintf(msg, sizeof msg,
                 "admin token %s is %zu bytes; production needs at least %d", e->id,
                 e->token_len, AUTH_ADMINTOK_MIN_PROD);
        if (c->environment == CFG_ENV_PRODUCTION)
            cfg_err(b, cfg_at(0), "%s", msg);
        else
            log_warn("%s: %s", b->name, msg);
    }
}

void cfg_build_runtime(cfg_build_t *b)
{
    bool keys_ok = build_keystore(b);

    build_admin_tokens(b);

    build_jwt(b);
    check_credentials(b, keys_ok);
    check_route_methods(b);
    check_limit_keys(b);
    check_key_tiers(b);
    check_empty_keys(b, keys_ok);
    /* POST tickets.path: authenticated, with tickets.scopes (borrowed). */
    b->c->tickets.route.scopes = b->c->tickets.scopes;
}
