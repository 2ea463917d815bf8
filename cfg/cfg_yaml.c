/* cfg_yaml.c — the YAML file (libyaml document API) into a cfg_t.
 *
 * Each mapping of the schema is a table of fields; parse_map() walks a
 * mapping through its table, so an unknown key, a duplicate key or a value of
 * the wrong type is reported with its line wherever it is.  The tables are
 * the schema's one source: a field's kind pairs its parser with the emitter
 * the dump (cfg_dump.c) shows it with, and its default is written in the
 * table as the file would write it and read by the same parser
 * (cfg_yaml_defaults, and each list entry as it is parsed).  Lists of limits
 * and routes build each entry in a temporary and append it when complete.
 * Values that other parts decide on (files, origins, overlaps) are checked in
 * cfg_check.c, after the environment has had its say.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate/auth_ban.h"
#include "tollgate/auth_jwks.h"
#include "tollgate/rl_bucket.h"
#include "tollgate/rl_policy.h"
#include "tollgate/rl_topk.h"
#include "tollgate/http.h"

#include "cfg_internal.h"

typedef cfg_field_t field_t;
typedef cfg_kind_t kind_t;

static cfg_parse_fn p_map, p_str, p_str_opt, p_path, p_name, p_listen, p_prefix, p_host,
    p_upstream, p_uint, p_u32, p_int, p_size, p_dur, p_bool, p_enum, p_date, p_secret,
    p_query_names, p_scopes, p_algs, p_nodes, p_origins, p_cidrs, p_methods,
    p_allowed_methods, p_auth_methods, p_by, p_rate, p_limits, p_routes, p_tiers,
    p_providers, p_claim_hdrs, p_route_path_match, p_route_other_methods;

static void set_defaults(cfg_build_t *b, const field_t *t, void *base);

/* ---- kinds: how each value is read and shown ---------------------------- */

static const kind_t K_MAP = {p_map, cfg_emit_map, NULL};
/* default_route: takes some of a route's keys, shown with all of them */
static const kind_t K_DEFAULT_ROUTE = {p_map, cfg_emit_route_map, NULL};
static const kind_t K_STR = {p_str, cfg_emit_str, NULL};
static const kind_t K_STR_OPT = {p_str_opt, cfg_emit_str, NULL};
static const kind_t K_PATH = {p_path, cfg_emit_str, NULL};
static const kind_t K_NAME = {p_name, cfg_emit_str, NULL};
static const kind_t K_LISTEN = {p_listen, cfg_emit_str, NULL};
static const kind_t K_PREFIX = {p_prefix, cfg_emit_str, NULL};
static const kind_t K_HOST = {p_host, cfg_emit_str, NULL};
static const kind_t K_UPSTREAM = {p_upstream, cfg_emit_str, NULL};
static const kind_t K_UINT = {p_uint, cfg_emit_uint, NULL};
static const kind_t K_U32 = {p_u32, cfg_emit_u32, NULL};
static const kind_t K_INT = {p_int, cfg_emit_int, NULL};
static const kind_t K_SIZE = {p_size, cfg_emit_size, NULL};
/* seconds in the file (30, "30s", "1m"); an integer with "_s" in the dump */
static const kind_t K_DUR = {p_dur, cfg_emit_uint, "_s"};
static const kind_t K_BOOL = {p_bool, cfg_emit_bool, NULL};
static const kind_t K_ENUM = {p_enum, cfg_emit_enum, NULL};
static const kind_t K_DATE = {p_date, cfg_emit_i64, NULL};
/* refused in the file; kept in the snapshot, shown "<redacted>" or null */
static const kind_t K_SECRET = {p_secret, cfg_emit_secret, NULL};
/* refused in the file; not kept after the load (JWT_SECRET), not shown */
static const kind_t K_SECRET_UNKEPT = {p_secret, cfg_emit_nothing, NULL};
static const kind_t K_QUERY_NAMES = {p_query_names, cfg_emit_strv, NULL};
static const kind_t K_SCOPES = {p_scopes, cfg_emit_strv, NULL};
static const kind_t K_ALGS = {p_algs, cfg_emit_strv, NULL};
static const kind_t K_NODES = {p_nodes, cfg_emit_strv, NULL};
static const kind_t K_ORIGINS = {p_origins, cfg_emit_strv, NULL};
static const kind_t K_CIDRS = {p_cidrs, cfg_emit_cidrs, NULL};
static const kind_t K_METHODS = {p_methods, cfg_emit_methods, NULL};
static const kind_t K_ALLOWED_METHODS = {p_allowed_methods, cfg_emit_methods, NULL};
static const kind_t K_AUTH_METHODS = {p_auth_methods, cfg_emit_auth_methods, NULL};
static const kind_t K_BY = {p_by, cfg_emit_by, NULL};
static const kind_t K_RATE = {p_rate, cfg_emit_rate, NULL};
/* a limit's burst: kept in its rate (and shown there too) */
static const kind_t K_BURST = {p_u32, cfg_emit_burst, NULL};
static const kind_t K_CLAIM_HDRS = {p_claim_hdrs, cfg_emit_claim_hdrs, NULL};
static const kind_t K_ROUTE_PATH_MATCH = {p_route_path_match, cfg_emit_flag_enum, NULL};
static const kind_t K_ROUTE_OTHER_METHODS = {p_route_other_methods, cfg_emit_flag_enum,
                                             NULL};
/* lists of mappings: aux is the table of one entry */
static const kind_t K_LIMITS = {p_limits, cfg_emit_limits, NULL};
static const kind_t K_ROUTES = {p_routes, cfg_emit_routes, NULL};
static const kind_t K_PROVIDERS = {p_providers, cfg_emit_providers, NULL};
static const kind_t K_TIERS = {p_tiers, cfg_emit_tiers, NULL};

/* The table of the entries of field `f` and how their paths join ("." for
 * a mapping, "[]." for a list of them), or NULL for a value. */
static const field_t *sub_table(const field_t *f, const char **sep)
{
    if (f->kind == &K_MAP || f->kind == &K_DEFAULT_ROUTE) {
        *sep = ".";
        return f->aux;
    }
    if (f->kind == &K_LIMITS || f->kind == &K_ROUTES || f->kind == &K_PROVIDERS) {
        *sep = "[].";
        return f->aux;
    }
    return NULL;
}

const char *cfg_field_dump_name(const field_t *f, char *out, size_t outlen)
{
    if (f->dkey != NULL)
        snprintf(out, outlen, "%s", f->dkey);
    else
        snprintf(out, outlen, "%s%s", f->key, f->kind->unit != NULL ? f->kind->unit : "");
    return out;
}

int cfg_name_index(const char *const *names, const char *s)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* A limit while it is parsed: burst may come before rate. */
typedef struct limit_build {
    rl_limit_t lim;
    uint32_t burst;
} limit_build_t;

/* limit_fields are shown from the rl_limit_t alone (cfg_emit_burst) */
_Static_assert(offsetof(limit_build_t, lim) == 0, "a limit's fields are the rl_limit_t's");

_Static_assert(sizeof(cfg_env_t) == sizeof(int) && sizeof(cfg_auth_mode_t) == sizeof(int) &&
                   sizeof(cfg_redis_mode_t) == sizeof(int) &&
                   sizeof(cfg_route_auth_t) == sizeof(int) &&
                   sizeof(rl_mode_t) == sizeof(int) && sizeof(rl_onerr_t) == sizeof(int) &&
                   sizeof(cfg_audit_flush_t) == sizeof(int),
               "enums are stored as int by p_enum");

/* ---- nodes -------------------------------------------------------------- */

static cfg_where_t at(const yaml_node_t *n)
{
    return cfg_at((int)n->start_mark.line + 1);
}

/* Count a node against CFG_MAX_NODES (aliases can multiply the work). */
static bool visit(cfg_build_t *b, const yaml_node_t *v)
{
    if (++b->nodes_seen == CFG_MAX_NODES + 1)
        cfg_err(b, at(v), "document too large (more than %u nodes, aliases included)",
                CFG_MAX_NODES);
    return b->nodes_seen <= CFG_MAX_NODES;
}

static const char *kind_name(const yaml_node_t *v)
{
    if (v->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (v->type == YAML_SEQUENCE_NODE)
        return "a list";
    return "a scalar";
}

static bool is_null(const yaml_node_t *v)
{
    const char *s = (const char *)v->data.scalar.value;

    if (v->type != YAML_SCALAR_NODE || v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return v->data.scalar.length == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* The text of scalar `v`, or NULL after an error. */
static const char *scalar(cfg_build_t *b, const yaml_node_t *v, const char *ctx,
                          const char *what)
{
    const char *s;

    if (v->type != YAML_SCALAR_NODE) {
        cfg_err(b, at(v), "%s: expected %s, got %s", ctx, what, kind_name(v));
        return NULL;
    }
    s = (const char *)v->data.scalar.value;
    if (strlen(s) != v->data.scalar.length) {
        cfg_err(b, at(v), "%s: contains a NUL byte", ctx);
        return NULL;
    }
    return s;
}

/* A string value: not null, no control characters (many end up in headers). */
static const char *text(cfg_build_t *b, const yaml_node_t *v, const char *ctx)
{
    const char *s = scalar(b, v, ctx, "a string");

    if (s == NULL)
        return NULL;
    if (is_null(v)) {
        cfg_err(b, at(v), "%s: expected a string, got null", ctx);
        return NULL;
    }
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            cfg_err(b, at(v), "%s: contains a control character", ctx);
            return NULL;
        }
    return s;
}

/* Is `v` a list (null counts as an empty one)?  Reports the error if not. */
static bool is_list(cfg_build_t *b, const yaml_node_t *v, const char *ctx)
{
    if (is_null(v))
        return true;
    if (v->type != YAML_SEQUENCE_NODE) {
        cfg_err(b, at(v), "%s: expected a list, got %s", ctx, kind_name(v));
        return false;
    }
    if (v->data.sequence.items.top - v->data.sequence.items.start > (long)CFG_MAX_ITEMS) {
        cfg_err(b, at(v), "%s: more than %u entries", ctx, CFG_MAX_ITEMS);
        return false;
    }
    return true;
}

/* Is `v` a mapping?  Reports the error if not. */
static bool is_map(cfg_build_t *b, const yaml_node_t *v, const char *ctx)
{
    if (v->type == YAML_MAPPING_NODE)
        return true;
    cfg_err(b, at(v), "%s: expected a mapping, got %s", ctx, kind_name(v));
    return false;
}

static size_t list_len(const yaml_node_t *v)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return 0;
    return (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
}

/* Item `i` of list `v`, or NULL when the node budget is spent. */
static yaml_node_t *list_item(cfg_build_t *b, const yaml_node_t *v, size_t i)
{
    yaml_node_t *n = yaml_document_get_node(b->doc, v->data.sequence.items.start[i]);

    return (n != NULL && visit(b, n)) ? n : NULL;
}

/* ---- mappings ----------------------------------------------------------- */

static const field_t *find_field(const field_t *fields, const char *key, size_t *idx)
{
    for (*idx = 0; fields[*idx].key != NULL; (*idx)++)
        if (strcmp(fields[*idx].key, key) == 0)
            return &fields[*idx];
    return NULL;
}

/* Walk mapping `v` through `fields`; destinations are relative to `base`. */
static void parse_map(cfg_build_t *b, yaml_node_t *v, const field_t *fields, void *base,
                      const char *ctx)
{
    uint64_t seen = 0; /* tables have fewer than 64 fields */
    const char *where = *ctx != '\0' ? ctx : "the top level";

    if (!visit(b, v) || is_null(v) || !is_map(b, v, where))
        return;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(b->doc, p->key);
        yaml_node_t *val = yaml_document_get_node(b->doc, p->value);
        char sub[256], shown[72];
        const char *key;
        const field_t *f;
        size_t idx;

        if (k == NULL || val == NULL || !visit(b, k))
            continue;
        key = scalar(b, k, where, "a string key");
        if (key == NULL)
            continue;
        f = find_field(fields, key, &idx);
        cfg_printable(key, shown, sizeof shown);
        if (f == NULL) {
            cfg_err(b, at(k), "unknown key '%s' %s %s", shown, *ctx ? "in" : "at", where);
            continue;
        }
        if (seen & (1ull << idx)) {
            cfg_err(b, at(k), "duplicate key '%s' in %s", shown, where);
            continue;
        }
        seen |= 1ull << idx;
        snprintf(sub, sizeof sub, "%s%s%s", ctx, *ctx ? "." : "", key);
        cfg_mark(b, sub, at(val));
        f->kind->parse(b, f, val, (char *)base + f->off, sub);
    }
}

static void p_map(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                  const char *ctx)
{
    parse_map(b, v, f->aux, dst, ctx);
}

/* ---- scalars ------------------------------------------------------------ */

static void p_str(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                  const char *ctx)
{
    const char *s = text(b, v, ctx);
    char *d;

    if (s == NULL)
        return;
    if (f->min > 0 && *s == '\0') {
        cfg_err(b, at(v), "%s: must not be empty", ctx);
        return;
    }
    d = cfg_dup(b, s);
    if (d != NULL)
        cfg_set_str(dst, d);
}

/* A string or null (= unset). */
static void p_str_opt(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                      const char *ctx)
{
    if (is_null(v))
        cfg_set_str(dst, NULL);
    else
        p_str(b, f, v, dst, ctx);
}

/* One of tollgate's own paths, or a route's / limit's: absolute and in the
 * normal form requests are matched in (http_path_normalize). */
static void p_path(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                   const char *ctx)
{
    char norm[HTTP_MAX_PATH], shown[72];
    const char *s = text(b, v, ctx);
    int n;

    if (s == NULL)
        return;
    cfg_printable(s, shown, sizeof shown);
    if (s[0] != '/' || strpbrk(s, "?# ") != NULL) {
        cfg_err(b, at(v), "%s: '%s' must start with '/' and have no query", ctx, shown);
        return;
    }
    n = http_path_normalize(s, strlen(s), norm, sizeof norm, NULL);
    if (n < 0) {
        cfg_err(b, at(v), "%s: '%s' is not a valid path", ctx, shown);
        return;
    }
    if (strcmp(norm, s) != 0) {
        cfg_err(b, at(v),
                "%s: '%s' is not in normal form (requests are matched as normalized)", ctx,
                shown);
        return;
    }
    p_str(b, f, v, dst, ctx);
}

/* An integer in [f->min, f->max] into *out. */
static bool integer(cfg_build_t *b, const field_t *f, yaml_node_t *v, const char *ctx,
                    unsigned long long *out)
{
    const char *s = scalar(b, v, ctx, "an integer");
    char shown[32];

    if (s == NULL)
        return false;
    if (cfg_parse_uint(s, ~0ull, out) != 0 || *out < f->min || *out > f->max) {
        cfg_printable(s, shown, sizeof shown);
        cfg_err(b, at(v), "%s: expected an integer from %llu to %llu, got '%s'", ctx,
                f->min, f->max, shown);
        return false;
    }
    return true;
}

/* p_uint, p_u32, p_int, p_size: integer() stored as `type`. */
#define P_INTEGER(name, type)                                                              \
    static void name(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,          \
                     const char *ctx)                                                      \
    {                                                                                      \
        unsigned long long x;                                                              \
                                                                                           \
        if (integer(b, f, v, ctx, &x))                                                     \
            *(type *)dst = (type)x;                                                        \
    }

P_INTEGER(p_uint, unsigned)
P_INTEGER(p_u32, uint32_t)
P_INTEGER(p_int, int)
P_INTEGER(p_size, size_t)

/* A duration in seconds: 30, "30s", "1m", "1h", "1d". */
static void p_dur(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                  const char *ctx)
{
    const char *s = scalar(b, v, ctx, "a duration");
    unsigned long long x;
    char shown[32];

    if (s == NULL)
        return;
    if (cfg_parse_duration(s, &x) != 0 || x < f->min || x > f->max) {
        cfg_printable(s, shown, sizeof shown);
        cfg_err(b, at(v),
                "%s: expected a duration (30s, 1m, 1h, 1d) from %llus to %llus, got '%s'",
                ctx, f->min, f->max, shown);
        return;
    }
    *(unsigned *)dst = (unsigned)x;
}

static void p_bool(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                   const char *ctx)
{
    const char *s = scalar(b, v, ctx, "true or false");
    char shown[32];

    (void)f;
    if (s == NULL)
        return;
    if (cfg_parse_bool(s, dst) != 0) {
        cfg_printable(s, shown, sizeof shown);
        cfg_err(b, at(v), "%s: expected true or false, got '%s'", ctx, shown);
    }
}

/* One of the NULL-terminated names in f->aux; stored as its index. */
static void p_enum(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                   const char *ctx)
{
    const char *const *names = f->aux;
    const char *s = scalar(b, v, ctx, "a name");
    char shown[32], list[128] = "";
    int i;

    if (s == NULL)
        return;
    i = cfg_name_index(names, s);
    if (i >= 0) {
        memcpy(dst, &i, sizeof i);
        return;
    }
    for (i = 0; names[i] != NULL; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
    }
    cfg_printable(s, shown, sizeof shown);
    cfg_err(b, at(v), "%s: '%s' is not one of %s", ctx, shown, list);
}

/* Secrets never live in the file: say where they go. */
static void p_secret(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                     const char *ctx)
{
    (void)dst;
    cfg_err(b, at(v), "%s: secrets do not belong in the config file; set %s or %s_FILE",
            ctx, (const char *)f->aux, (const char *)f->aux);
}

static void p_name(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                   const char *ctx)
{
    const char *s = text(b, v, ctx);
    char shown[72];

    if (s == NULL)
        return;
    if (cfg_check_name(s) != 0) {
        cfg_printable(s, shown, sizeof shown);
        cfg_err(b, at(v), "%s: '%s' is not a name ([A-Za-z0-9._-], 1 to %d characters)",
                ctx, shown, CFG_MAX_NAME);
        return;
    }
    p_str(b, f, v, dst, ctx);
}

static void p_listen(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                     const char *ctx)
{
    const char *s = text(b, v, ctx);
    char host[256], shown[72];
    uint16_t port;

    if (s == NULL)
        return;
    if (http_parse_hostport(s, host, sizeof host, &port) != 0) {
        cfg_printable(s, shown, sizeof shown);
        cfg_err(b, at(v), "%s: '%s' is not host:port", ctx, shown);
        return;
    }
    p_str(b, f, v, dst, ctx);
}

static void p_prefix(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                     const char *ctx)
{
    const char *s = text(b, v, ctx);

    if (s == NULL)
        return;
    if (*s == '\0' || strlen(s) > 64 || strpbrk(s, "{} ") != NULL) {
        cfg_err(b, at(v), "%s: must be 1 to 64 characters without '{', '}' or spaces", ctx);
        return;
    }
    p_str(b, f, v, dst, ctx);
}

/* ---- lists -------------------------------------------------------------- */

/* What to do with string item `s` of a list (its node `item`, its context
 * `ictx` like "routes[2].scopes[0]"); -1 stops the walk. */
typedef int (*text_item_fn)(cfg_build_t *b, yaml_node_t *item, const char *s,
                            const char *ictx, void *arg);

/* Hand each string item of list `v` to `fn`; an item that is not a string is
 * reported and skipped.  false when the walk stopped early (node budget
 * spent, or `fn` said -1). */
static bool each_text(cfg_build_t *b, yaml_node_t *v, const char *ctx, text_item_fn fn,
                      void *arg)
{
    for (size_t i = 0; i < list_len(v); i++) {
        yaml_node_t *item = list_item(b, v, i);
        char ictx[280];
        const char *s;

        if (item == NULL)
            return false;
        snprintf(ictx, sizeof ictx, "%s[%zu]", ctx, i);
        s = text(b, item, ictx);
        if (s != NULL && fn(b, item, s, ictx, arg) != 0)
            return false;
    }
    return true;
}

/* A list of strings into `dst` (replaced), each taken by `fn`. */
static void strv(cfg_build_t *b, yaml_node_t *v, cfg_strv_t *dst, const char *ctx,
                 text_item_fn fn)
{
    if (!is_list(b, v, ctx))
        return;
    cfg_strv_clear(dst);
    each_text(b, v, ctx, fn, dst);
}

static bool nonempty(cfg_build_t *b, yaml_node_t *item, const char *s, const char *ictx)
{
    if (*s != '\0')
        return true;
    cfg_err(b, at(item), "%s: must not be empty", ictx);
    return false;
}

static int scope_item(cfg_build_t *b, yaml_node_t *item, const char *s, const char *ictx,
                      void *scopes)
{
    if (!nonempty(b, item, s, ictx))
        return 0;
    if (strpbrk(s, " \t,") != NULL) {
        cfg_err(b, at(item), "%s: a scope has no spaces or commas", ictx);
        return 0;
    }
    cfg_strv_push(b, scopes, s);
    return 0;
}

/* audit.redact_query: query parameter names, compared case-insensitively. */
static int query_name_item(cfg_build_t *b, yaml_node_t *item, const char *s,
                           const char *ictx, void *names)
{
    size_t n =
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-");

    if (!nonempty(b, item, s, ictx))
        return 0;
    if (s[n] != '\0' || n > HTTP_REDACT_NAME_MAX) {
        cfg_err(b, at(item), "%s: a query name is 1-%d of [A-Za-z0-9._~-]", ictx,
                HTTP_REDACT_NAME_MAX);
        return 0;
    }
    cfg_strv_push(b, names, s);
    return 0;
}

static void p_query_names(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                          const char *ctx)
{
    (void)f;
    strv(b, v, dst, ctx, query_name_item);
}

static int alg_item(cfg_build_t *b, yaml_node_t *item, const char *s, const char *ictx,
                    void *algs)
{
    char shown[32];

    if (!nonempty(b, item, s, ictx))
        return 0;
    if (auth_alg_from_name(s) != AUTH_ALG_NONE) { /* the verifier's own names */
        cfg_strv_push(b, algs, s);
        return 0;
    }
    cfg_printable(s, shown, sizeof shown);
    cfg_err(b, at(item),
            "%s: '%s' is not a supported algorithm (HS, RS, ES, PS with 256, 384, 512; "
            "EdDSA)",
            ictx, shown);
    return 0;
}

static void p_scopes(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                     const char *ctx)
{
    (void)f;
    strv(b, v, dst, ctx, scope_item);
}

static void p_algs(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                   const char *ctx)
{
    cfg_strv_t *algs = dst;

    (void)f;
    strv(b, v, algs, ctx, alg_item);
    if (algs->n == 0)
        cfg_err(b, at(v), "%s: needs at least one algorithm", ctx);
}

static int node_item(cfg_build_t *b, yaml_node_t *item, const char *s, const char *ictx,
                     void *nodes)
{
    char norm[300], shown[72];

    if (cfg_hostport_norm(s, strlen(s), 6379, norm, sizeof norm) != 0) {
        cfg_printable(s, shown, sizeof shown);
        cfg_err(b, at(item), "%s: '%s' is not host[:port]", ictx, shown);
        return 0;
    }
    cfg_strv_push(b, nodes, norm);
    return 0;
}

static void p_nodes(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                    const char *ctx)
{
    (void)f;
    strv(b, v, dst, ctx, node_item);
}

static int cidr_item(cfg_build_t *b, yaml_node_t *item, const char *s, const char *ictx,
                     void *list)
{
    char shown[72];
    http_cidr_t cidr;

    if (http_cidr_parse(s, &cidr) != 0) {
        cfg_printable(s, shown, sizeof shown);
        cfg_err(b, at(item), "%s: '%s' is not an address or CIDR (host bits zero)", ictx,
                shown);
        return 0;
    }
    if (http_cidr_list_add(list, &cidr) != 0)
        cfg_err(b, at(item), "out of memory");
    return 0;
}

static void p_cidrs(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                    const char *ctx)
{
    (void)f;
    if (!is_list(b, v, ctx))
        return;
    http_cidr_list_clear(dst);
    each_text(b, v, ctx, cidr_item, dst);
}

/* An origin, kept as written with its line (cfg_check validates them). */
static int origin_item(cfg_build_t *b, yaml_node_t *item, const char *s, const char *ictx,
                       void *arg)
{
    cfg_strv_t *origins = arg;
    cfg_where_t *w = cfg_grow(b, b->origin_where, origins->n, sizeof *w);

    (void)ictx;
    if (w == NULL)
        return -1;
    b->origin_where = w;
    if (cfg_strv_push(b, origins, s) == 0)
        w[origins->n - 1] = at(item);
    return 0;
}

/* cors.allowed_origins: kept as written; cfg_check validates them (the
 * environment may replace them). */
static void p_origins(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                      const char *ctx)
{
    (void)f;
    strv(b, v, dst, ctx, origin_item);
}

/* ---- match, by, rate ---------------------------------------------------- */

static int method_item(cfg_build_t *b, yaml_node_t *item, const char *s, const char *ictx,
                       void *bits)
{
    unsigned bit = rl_method_bit(s);
    char shown[32];

    if (bit == 0) {
        cfg_printable(s, shown, sizeof shown);
        cfg_err(b, at(item),
                "%s: unknown method '%s' (GET, HEAD, POST, PUT, DELETE, PATCH, "
                "OPTIONS, CONNECT, TRACE; case-sensitive)",
                ictx, shown);
        return 0;
    }
    *(unsigned *)bits |= bit;
    return 0;
}

static void p_methods(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                      const char *ctx)
{
    unsigned bits = 0;

    (void)f;
    if (is_list(b, v, ctx) && each_text(b, v, ctx, method_item, &bits))
        *(unsigned *)dst = bits;
}

/* One entry of allowed_methods: a registered method tollgate can decide. */
static int allowed_method_item(cfg_build_t *b, yaml_node_t *item, const char *s,
                               const char *ictx, void *bits)
{
    unsigned bit = rl_method_bit(s);
    char shown[32];

    cfg_printable(s, shown, sizeof shown);
    if (bit == RL_METHOD_CONNECT)
        cfg_err(b, at(item),
                "%s: CONNECT cannot be allowed (tollgate authorizes no tunnels)", ictx);
    else if (bit == 0)
        cfg_err(b, at(item),
                "%s: '%s' is not GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or TRACE "
                "(case-sensitive; extension methods such as PURGE cannot be allowed)",
                ictx, shown);
    else
        *(unsigned *)bits |= bit;
    return 0;
}

/* allowed_methods: the methods served at all (others: 405 before routing). */
static void p_allowed_methods(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                              const char *ctx)
{
    unsigned bits = 0;

    (void)f;
    if (!is_list(b, v, ctx) || !each_text(b, v, ctx, allowed_method_item, &bits))
        return;
    if (list_len(v) == 0)
        cfg_err(b, at(v), "%s: list at least one method", ctx);
    else
        *(unsigned *)dst = bits;
}

static void p_host(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                   const char *ctx)
{
    const char *s = text(b, v, ctx);
    char *d;

    (void)f;
    if (s == NULL)
        return;
    if (*s == '\0' || strpbrk(s, "/: @") != NULL) {
        cfg_err(b, at(v), "%s: expected a host name without scheme or port", ctx);
        return;
    }
    d = cfg_dup(b, s);
    if (d == NULL)
        return;
    for (char *p = d; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    cfg_set_str(dst, d);
}

static const field_t match_fields[] = {
    {"path", &K_PATH, offsetof(rl_match_t, path), 1, 0, NULL, NULL, NULL},
    {"path_prefix", &K_PATH, offsetof(rl_match_t, path_prefix), 1, 0, NULL, NULL, NULL},
    {"methods", &K_METHODS, offsetof(rl_match_t, methods), 0, 0, NULL, NULL, NULL},
    {"host", &K_HOST, offsetof(rl_match_t, host), 0, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

/* An HTTP token (RFC 9110 §5.6.2), for header names. */
static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return false;
    return true;
}

/* "client" | "ip" | "route" | "header:NAME" | "claim:NAME" into `out`. */
static int by_parse(cfg_build_t *b, const char *s, rl_by_t *out)
{
    memset(out, 0, sizeof *out);
    if (strcmp(s, "client") == 0)
        out->kind = RL_BY_CLIENT;
    else if (strcmp(s, "ip") == 0)
        out->kind = RL_BY_IP;
    else if (strcmp(s, "route") == 0)
        out->kind = RL_BY_ROUTE;
    else if (strncmp(s, "header:", 7) == 0 && is_token(s + 7)) {
        out->kind = RL_BY_HEADER;
        out->name = cfg_dup(b, s + 7);
        /* header names are case-insensitive: keep one spelling */
        for (char *p = out->name; p != NULL && *p != '\0'; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    } else if (strncmp(s, "claim:", 6) == 0 && s[6] != '\0' && strlen(s + 6) <= 128 &&
               strpbrk(s + 6, " ,") == NULL) {
        out->kind = RL_BY_CLAIM;
        out->name = cfg_dup(b, s + 6);
    } else
        return -1;
    return (out->kind == RL_BY_HEADER || out->kind == RL_BY_CLAIM) && out->name == NULL ? -2
                                                                                        : 0;
}

/* One entry of `by:`, appended to the rl_limit_t `arg`. */
static int by_item(cfg_build_t *b, yaml_node_t *item, const char *s, const char *ictx,
                   void *arg)
{
    rl_limit_t *lim = arg;
    rl_by_t *nb = cfg_grow(b, lim->by, lim->nby, sizeof *nb);
    char shown[72];
    int r;

    if (nb == NULL)
        return -1;
    lim->by = nb;
    r = by_parse(b, s, &nb[lim->nby]);
    if (r == 0)
        lim->nby++;
    else if (r == -1) {
        cfg_printable(s, shown, sizeof shown);
        cfg_err(b, at(item), "%s: '%s' is not client, ip, route, header:NAME or claim:NAME",
                ictx, shown);
    }
    return 0;
}

/* `by:` of a limit; dst is the rl_limit_t. */
static void p_by(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                 const char *ctx)
{
    (void)f;
    if (is_list(b, v, ctx) && each_text(b, v, ctx, by_item, dst) && list_len(v) == 0)
        cfg_err(b, at(v), "%s: needs at least one entry", ctx);
}

static void p_rate(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                   const char *ctx)
{
    const char *s = scalar(b, v, ctx, "a rate N/period");
    char why[128] = "", shown[72];

    (void)f;
    if (s == NULL)
        return;
    if (rl_rate_parse(s, dst, why, sizeof why) != 0) {
        cfg_printable(s, shown, sizeof shown);
        cfg_err(b, at(v), "%s: bad rate '%s' (N/second|minute|hour|day): %s", ctx, shown,
                why);
    }
}

/* ---- limits ------------------------------------------------------------- */

static const char *const mode_names[] = {"enforce", "shadow", NULL};
static const char *const onerr_names[] = {"local", "open", "closed", NULL};
static const char *const consistency_names[] = {"exact", "leased", NULL};

static const field_t limit_fields[] = {
    {"name", &K_NAME, offsetof(limit_build_t, lim.name), 1, 0, NULL, NULL, NULL},
    {"match", &K_MAP, offsetof(limit_build_t, lim.match), 0, 0, match_fields, NULL, NULL},
    {"by", &K_BY, offsetof(limit_build_t, lim), 0, 0, NULL, NULL, NULL},
    {"rate", &K_RATE, offsetof(limit_build_t, lim.rate), 0, 0, NULL, NULL, NULL},
    {"burst", &K_BURST, offsetof(limit_build_t, burst), 1, RL_MAX_BURST, NULL, NULL, NULL},
    {"mode", &K_ENUM, offsetof(limit_build_t, lim.mode), 0, 0, mode_names, "enforce", NULL},
    {"on_redis_error", &K_ENUM, offsetof(limit_build_t, lim.on_redis_error), 0, 0,
     onerr_names, "local", NULL},
    {"consistency", &K_ENUM, offsetof(limit_build_t, lim.consistency), 0, 0,
     consistency_names, "exact", NULL},
    {"lease_max", &K_U32, offsetof(limit_build_t, lim.lease_max), 1, 1000000, NULL, "100",
     NULL},
    {"lease_ttl_ms", &K_U32, offsetof(limit_build_t, lim.lease_ttl_ms), 10, 10000, NULL,
     "100", NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

/* Append `lim` (moved) to the policy; on failure it is cleared. */
static int limit_append(cfg_build_t *b, rl_limit_t *lim, int line, bool burst_set)
{
    rl_policy_set_t *ps = &b->c->policy;
    cfg_limit_meta_t *meta = cfg_grow(b, b->limit_meta, ps->nlimits, sizeof *meta);
    rl_limit_t *limits;

    if (meta == NULL)
        goto out_clear;
    b->limit_meta = meta;
    limits = cfg_grow(b, ps->limits, ps->nlimits, sizeof *limits);
    if (limits == NULL)
        goto out_clear;
    ps->limits = limits;
    meta[ps->nlimits].line = line;
    meta[ps->nlimits].burst_set = burst_set;
    limits[ps->nlimits++] = *lim;
    return 0;
out_clear:
    rl_limit_clear(lim);
    return -1;
}

/* `by: [client]`, the default of a limit. */
static int by_client(cfg_build_t *b, rl_limit_t *lim)
{
    lim->by = calloc(1, sizeof *lim->by);
    if (lim->by == NULL) {
        cfg_err(b, cfg_at(0), "out of memory");
        return -1;
    }
    lim->by[0].kind = RL_BY_CLIENT;
    lim->nby = 1;
    return 0;
}

int cfg_limit_add_default(cfg_build_t *b)
{
    limit_build_t lb;

    memset(&lb, 0, sizeof lb);
    set_defaults(b, limit_fields, &lb);
    lb.lim.name = cfg_dup(b, "default");
    if (lb.lim.name == NULL || by_client(b, &lb.lim) != 0) {
        rl_limit_clear(&lb.lim);
        return -1;
    }
    lb.lim.rate.n = lb.lim.rate.burst = 60;
    lb.lim.rate.period_ms = 60000;
    return limit_append(b, &lb.lim, 0, false);
}

static bool given(const cfg_build_t *b, const char *ctx, const char *key)
{
    char k[300];

    snprintf(k, sizeof k, "%s.%s", ctx, key);
    return cfg_where(b, k).line > 0;
}

static void parse_limit(cfg_build_t *b, yaml_node_t *v, const char *ctx)
{
    limit_build_t lb;

    memset(&lb, 0, sizeof lb);
    if (!is_map(b, v, ctx))
        return;
    set_defaults(b, limit_fields, &lb);
    parse_map(b, v, limit_fields, &lb, ctx);
    if (lb.lim.name == NULL && !given(b, ctx, "name"))
        cfg_err(b, at(v), "%s: missing 'name'", ctx);
    if (!given(b, ctx, "rate"))
        cfg_err(b, at(v), "%s: missing 'rate'", ctx);
    if (lb.lim.nby == 0 && !given(b, ctx, "by") && by_client(b, &lb.lim) != 0)
        goto out_clear;
    if (given(b, ctx, "burst") && lb.burst != 0)
        lb.lim.rate.burst = lb.burst;
    if (lb.lim.name == NULL)
        goto out_clear; /* reported above; nothing can refer to it */
    limit_append(b, &lb.lim, at(v).line, given(b, ctx, "burst"));
    return;
out_clear:
    rl_limit_clear(&lb.lim);
}

static void p_limits(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                     const char *ctx)
{
    (void)f;
    (void)dst;
    b->limits_given = true;
    if (!is_list(b, v, ctx))
        return;
    for (size_t i = 0; i < list_len(v); i++) {
        yaml_node_t *item = list_item(b, v, i);
        char ictx[64];

        if (item == NULL)
            return;
        snprintf(ictx, sizeof ictx, "limits[%zu]", i);
        parse_limit(b, item, ictx);
    }
}

/* ---- routes ------------------------------------------------------------- */

/* "http://host[:port]" (a lone trailing '/' is allowed) into "http://host:port". */
static void p_upstream(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                       const char *ctx)
{
    const char *s = text(b, v, ctx), *auth;
    char norm[300] = "http://";
    size_t len;

    (void)f;
    if (s == NULL)
        return;
    if (strncmp(s, "https://", 8) == 0) {
        cfg_err(b, at(v), "%s: https upstreams are not supported yet; use http://", ctx);
        return;
    }
    if (strncmp(s, "http://", 7) != 0) {
        cfg_err(b, at(v), "%s: expected http://host[:port]", ctx);
        return;
    }
    auth = s + 7;
    len = strcspn(auth, "/?#");
    if (auth[len] != '\0' && strcmp(auth + len, "/") != 0) {
        cfg_err(b, at(v),
                "%s: must be http://host[:port] without a path or query "
                "(the request's path is forwarded unchanged)",
                ctx);
        return;
    }
    if (memchr(auth, '@', len) != NULL ||
        cfg_hostport_norm(auth, len, 80, norm + 7, sizeof norm - 7) != 0) {
        cfg_err(b, at(v), "%s: expected http://host[:port]", ctx);
        return;
    }
    cfg_set_str(dst, cfg_dup(b, norm));
}

static const char *const route_auth_names[] = {"required", "optional", "none", NULL};

static int auth_method_item(cfg_build_t *b, yaml_node_t *item, const char *s,
                            const char *ictx, void *mask)
{
    char shown[32];

    if (strcmp(s, "api_key") == 0)
        *(unsigned *)mask |= CFG_METHOD_API_KEY;
    else if (strcmp(s, "jwt") == 0)
        *(unsigned *)mask |= CFG_METHOD_JWT;
    else {
        cfg_printable(s, shown, sizeof shown);
        cfg_err(b, at(item), "%s: '%s' is not api_key or jwt", ictx, shown);
    }
    return 0;
}

/* auth_methods: [api_key, jwt] — the credentials a route takes. */
static void p_auth_methods(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                           const char *ctx)
{
    (void)f;
    if (!is_list(b, v, ctx))
        return;
    *(unsigned *)dst = 0;
    each_text(b, v, ctx, auth_method_item, dst);
    if (*(unsigned *)dst == 0)
        cfg_err(b, at(v), "%s: list api_key, jwt or both", ctx);
}
static const char *const path_match_names[] = {"case_sensitive", "case_insensitive", NULL};
static const char *const dialect_names[] = {"auto",  "nginx",         "traefik",
                                            "envoy", "ingress-nginx", NULL};
static const char *const trailing_slash_names[] = {"same", "distinct", NULL};
static const char *const reserved_names[] = {"drop", "reject", NULL};
static const char *const other_methods_names[] = {"next_route", "deny", NULL};

/* A route's path_match: only case_insensitive changes anything (the global
 * setting applies to every route after parsing). */
static void p_route_path_match(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                               const char *ctx)
{
    int m = 0;

    p_enum(b, f, v, &m, ctx);
    if (m == CFG_PATH_CASE_INSENSITIVE)
        *(bool *)dst = true;
}

/* A route's other_methods: deny or next_route (the default). */
static void p_route_other_methods(cfg_build_t *b, const field_t *f, yaml_node_t *v,
                                  void *dst, const char *ctx)
{
    int m = 0;

    p_enum(b, f, v, &m, ctx);
    *(bool *)dst = m == 1;
}

const field_t cfg_route_fields[] = {
    {"name", &K_NAME, offsetof(cfg_route_t, name), 1, 0, NULL, NULL, NULL},
    {"match", &K_MAP, offsetof(cfg_route_t, match), 0, 0, match_fields, NULL, NULL},
    {"upstream", &K_UPSTREAM, offsetof(cfg_route_t, upstream), 0, 0, NULL, NULL, NULL},
    {"auth", &K_ENUM, offsetof(cfg_route_t, auth), 0, 0, route_auth_names, "required",
     NULL},
    {"scopes", &K_SCOPES, offsetof(cfg_route_t, scopes), 0, 0, NULL, NULL, NULL},
    {"tickets", &K_BOOL, offsetof(cfg_route_t, tickets), 0, 0, NULL, NULL, NULL},
    {"upstream_timeout_ms", &K_UINT, offsetof(cfg_route_t, upstream_timeout_ms), 1, 3600000,
     NULL, "30000", NULL},
    {"path_match", &K_ROUTE_PATH_MATCH, offsetof(cfg_route_t, path_icase), 0, 0,
     path_match_names, NULL, NULL},
    {"allow_encoded_percent", &K_BOOL, offsetof(cfg_route_t, allow_encoded_percent), 0, 0,
     NULL, NULL, NULL},
    {"allow_semicolon", &K_BOOL, offsetof(cfg_route_t, allow_semicolon), 0, 0, NULL, NULL,
     NULL},
    {"auth_methods", &K_AUTH_METHODS, offsetof(cfg_route_t, auth_methods), 0, 0, NULL, NULL,
     NULL},
    {"other_methods", &K_ROUTE_OTHER_METHODS, offsetof(cfg_route_t, other_methods_deny), 0,
     0, other_methods_names, NULL, NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static void route_append(cfg_build_t *b, cfg_route_t *r, int line)
{
    cfg_route_t *routes;
    int *lines = cfg_grow(b, b->route_lines, b->c->nroutes, sizeof *lines);

    if (lines == NULL)
        goto out_clear;
    b->route_lines = lines;
    routes = cfg_grow(b, b->c->routes, b->c->nroutes, sizeof *routes);
    if (routes == NULL)
        goto out_clear;
    b->c->routes = routes;
    lines[b->c->nroutes] = line;
    routes[b->c->nroutes++] = *r;
    return;
out_clear:
    cfg_route_clear(r);
}

static void p_routes(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                     const char *ctx)
{
    (void)f;
    (void)dst;
    if (!is_list(b, v, ctx))
        return;
    for (size_t i = 0; i < list_len(v); i++) {
        yaml_node_t *item = list_item(b, v, i);
        char ictx[64], name[32];
        cfg_route_t r;

        if (item == NULL)
            return;
        snprintf(ictx, sizeof ictx, "routes[%zu]", i);
        if (!is_map(b, item, ictx))
            continue;
        memset(&r, 0, sizeof r);
        set_defaults(b, cfg_route_fields, &r);
        parse_map(b, item, cfg_route_fields, &r, ictx);
        if (r.name == NULL) {
            snprintf(name, sizeof name, "route-%zu", i + 1);
            r.name = cfg_dup(b, name);
        }
        route_append(b, &r, at(item).line);
    }
}

/* ---- tiers -------------------------------------------------------------- */

static void p_tiers(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                    const char *ctx)
{
    (void)f;
    (void)dst;
    (void)ctx;
    b->tiers_node = v; /* needs every limit: parsed by cfg_yaml_tiers() */
}

static const rl_limit_t *find_limit(const rl_policy_set_t *ps, const char *name)
{
    for (size_t i = 0; i < ps->nlimits; i++)
        if (strcmp(ps->limits[i].name, name) == 0)
            return &ps->limits[i];
    return NULL;
}

/* Has mapping `map` a key equal to `key` before pair `upto`? */
static bool dup_before(cfg_build_t *b, yaml_node_t *map, yaml_node_pair_t *upto,
                       const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < upto; p++) {
        yaml_node_t *k = yaml_document_get_node(b->doc, p->key);

        if (k != NULL && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, key) == 0)
            return true;
    }
    return false;
}

/* One tier: {LIMIT: RATE, ...} into `t`. */
static void parse_tier(cfg_build_t *b, yaml_node_t *v, rl_tier_t *t, const char *ctx)
{
    if (is_null(v))
        return;
    if (v->type != YAML_MAPPING_NODE) {
        cfg_err(b, at(v), "%s: expected a mapping of limit: rate, got %s", ctx,
                kind_name(v));
        return;
    }
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(b->doc, p->key);
        yaml_node_t *val = yaml_document_get_node(b->doc, p->value);
        rl_tier_override_t *o;
        char sub[300], shown[72];
        const char *lname;
        rl_rate_t rate;

        if (k == NULL || val == NULL || !visit(b, k) || !visit(b, val))
            return;
        lname = scalar(b, k, ctx, "a limit name");
        if (lname == NULL)
            continue;
        cfg_printable(lname, shown, sizeof shown);
        snprintf(sub, sizeof sub, "%s.%s", ctx, shown);
        if (find_limit(&b->c->policy, lname) == NULL) {
            cfg_err(b, at(k), "%s: '%s' is not a defined limit", ctx, shown);
            continue;
        }
        if (dup_before(b, v, p, lname)) {
            cfg_err(b, at(k), "duplicate key '%s' in %s", shown, ctx);
            continue;
        }
        memset(&rate, 0, sizeof rate);
        p_rate(b, NULL, val, &rate, sub);
        if (rate.n == 0)
            continue;
        o = cfg_grow(b, t->overrides, t->n, sizeof *o);
        if (o == NULL)
            return;
        t->overrides = o;
        o[t->n].limit = cfg_dup(b, lname);
        o[t->n].rate = rate;
        if (o[t->n].limit != NULL)
            t->n++;
    }
}

void cfg_yaml_tiers(cfg_build_t *b)
{
    rl_policy_set_t *ps = &b->c->policy;
    yaml_node_t *v = b->tiers_node;

    if (v == NULL || is_null(v) || !is_map(b, v, "tiers"))
        return;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(b->doc, p->key);
        yaml_node_t *val = yaml_document_get_node(b->doc, p->value);
        char ctx[100], shown[72];
        const char *tname;
        rl_tier_t *tiers;

        if (k == NULL || val == NULL || !visit(b, k) || !visit(b, val))
            return;
        if (p - v->data.mapping.pairs.start >= (long)CFG_MAX_ITEMS) {
            cfg_err(b, at(k), "tiers: more than %u entries", CFG_MAX_ITEMS);
            return;
        }
        tname = scalar(b, k, "tiers", "a tier name");
        if (tname == NULL)
            continue;
        cfg_printable(tname, shown, sizeof shown);
        if (cfg_check_name(tname) != 0) {
            cfg_err(b, at(k),
                    "tiers: '%s' is not a name ([A-Za-z0-9._-], 1 to %d characters)", shown,
                    CFG_MAX_NAME);
            continue;
        }
        if (dup_before(b, v, p, tname)) {
            cfg_err(b, at(k), "duplicate key '%s' in tiers", shown);
            continue;
        }
        tiers = cfg_grow(b, ps->tiers, ps->ntiers, sizeof *tiers);
        if (tiers == NULL)
            return;
        ps->tiers = tiers;
        memset(&tiers[ps->ntiers], 0, sizeof *tiers);
        tiers[ps->ntiers].name = cfg_dup(b, tname);
        if (tiers[ps->ntiers].name == NULL)
            return;
        snprintf(ctx, sizeof ctx, "tiers.%s", tname);
        parse_tier(b, val, &tiers[ps->ntiers++], ctx);
    }
}

/* ---- the schema --------------------------------------------------------- */

const char *const cfg_environment_names[] = {"development", "production", NULL};
static const char *const redis_mode_names[] = {"none", "standalone", "cluster", NULL};
const char *const cfg_auth_mode_names[] = {"none", "api_key", "jwt", "any", NULL};

#define DAY 86400ull

static const field_t redis_fields[] = {
    {"mode", &K_ENUM, offsetof(cfg_redis_t, mode), 0, 0, redis_mode_names, "none", NULL},
    {"nodes", &K_NODES, offsetof(cfg_redis_t, nodes), 0, 0, NULL, NULL, NULL},
    {"key_prefix", &K_PREFIX, offsetof(cfg_redis_t, key_prefix), 0, 0, NULL, "tg:", NULL},
    {"tls", &K_BOOL, offsetof(cfg_redis_t, tls), 0, 0, NULL, NULL, NULL},
    {"tls_ca_file", &K_STR_OPT, offsetof(cfg_redis_t, tls_ca_file), 1, 0, NULL, NULL, NULL},
    {"tls_cert_file", &K_STR_OPT, offsetof(cfg_redis_t, tls_cert_file), 1, 0, NULL, NULL,
     NULL},
    {"tls_key_file", &K_STR_OPT, offsetof(cfg_redis_t, tls_key_file), 1, 0, NULL, NULL,
     NULL},
    {"timeout_ms", &K_UINT, offsetof(cfg_redis_t, timeout_ms), 1, 60000, NULL, "50", NULL},
    {"batch_max", &K_UINT, offsetof(cfg_redis_t, batch_max), 1, 256, NULL, "64", NULL},
    {"max_pending", &K_UINT, offsetof(cfg_redis_t, max_pending), 1, 1000000, NULL, "2048",
     NULL},
    {"required", &K_BOOL, offsetof(cfg_redis_t, required), 0, 0, NULL, NULL, NULL},
    {"db", &K_UINT, offsetof(cfg_redis_t, db), 0, 65535, NULL, NULL, NULL},
    {"username", &K_STR_OPT, offsetof(cfg_redis_t, username), 1, 0, NULL, NULL, NULL},
    {"password", &K_SECRET, offsetof(cfg_redis_t, password), 0, 0, "REDIS_PASSWORD", NULL,
     NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

/* claim_to_headers: {claim: X-Auth-Header, ...}.  Header names must start
 * with X-Auth- (the prefix tollgate strips from what clients send, so a
 * client can never supply one) and not be one of the four it always sets. */
static void p_claim_hdrs(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                         const char *ctx)
{
    static const char *const fixed[] = {"X-Auth-Client-Id", "X-Auth-Subject",
                                        "X-Auth-Scopes", "X-Auth-Method"};
    cfg_claim_hdrs_t *h = dst;

    (void)f;
    if (!visit(b, v) || is_null(v) || !is_map(b, v, ctx))
        return;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(b->doc, p->key);
        yaml_node_t *val = yaml_document_get_node(b->doc, p->value);
        const char *claim, *hdr;
        char shown[72];

        if (k == NULL || val == NULL || !visit(b, k) || !visit(b, val))
            continue;
        claim = text(b, k, ctx);
        hdr = text(b, val, ctx);
        if (claim == NULL || hdr == NULL)
            continue;
        cfg_printable(hdr, shown, sizeof shown);
        if (*claim == '\0' || strlen(claim) > 64) {
            cfg_err(b, at(k), "%s: a claim name is 1 to 64 bytes", ctx);
            continue;
        }
        if (strncasecmp(hdr, "X-Auth-", 7) != 0 || strlen(hdr) > 64 || hdr[7] == '\0' ||
            strspn(hdr,
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-") !=
                strlen(hdr)) {
            cfg_err(b, at(val),
                    "%s: '%s' must be a header name starting with X-Auth- (letters, "
                    "digits, '-'; at most 64)",
                    ctx, shown);
            continue;
        }
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
            if (strcasecmp(hdr, fixed[i]) == 0) {
                cfg_err(b, at(val), "%s: %s is set by tollgate itself", ctx, shown);
                hdr = NULL;
                break;
            }
        for (size_t i = 0; hdr != NULL && i < h->headers.n; i++)
            if (strcasecmp(hdr, h->headers.v[i]) == 0) {
                cfg_err(b, at(val), "%s: %s appears twice", ctx, shown);
                hdr = NULL;
            }
        if (hdr != NULL && cfg_strv_push(b, &h->claims, claim) == 0)
            cfg_strv_push(b, &h->headers, hdr);
    }
}

static const field_t provider_fields[] = {
    {"name", &K_NAME, offsetof(cfg_jwt_provider_t, name), 1, 0, NULL, NULL, NULL},
    {"issuer", &K_STR, offsetof(cfg_jwt_provider_t, issuer), 1, 0, NULL, NULL, NULL},
    {"audiences", &K_SCOPES, offsetof(cfg_jwt_provider_t, audiences), 0, 0, NULL, NULL,
     NULL},
    {"algorithms", &K_ALGS, offsetof(cfg_jwt_provider_t, algorithms), 0, 0, NULL, NULL,
     NULL},
    {"keys_file", &K_STR_OPT, offsetof(cfg_jwt_provider_t, keys_file), 1, 0, NULL, NULL,
     NULL},
    {"jwks_uri", &K_STR_OPT, offsetof(cfg_jwt_provider_t, jwks_uri), 1, 0, NULL, NULL,
     NULL},
    {"discovery", &K_BOOL, offsetof(cfg_jwt_provider_t, discovery), 0, 0, NULL, NULL, NULL},
    {"ca_file", &K_STR_OPT, offsetof(cfg_jwt_provider_t, ca_file), 1, 0, NULL, NULL, NULL},
    {"scopes_claim", &K_STR_OPT, offsetof(cfg_jwt_provider_t, scopes_claim), 1, 0, NULL,
     NULL, NULL},
    {"tier_claim", &K_STR_OPT, offsetof(cfg_jwt_provider_t, tier_claim), 1, 0, NULL, NULL,
     NULL},
    {"claim_to_headers", &K_CLAIM_HDRS, offsetof(cfg_jwt_provider_t, claim_hdrs), 0, 0,
     NULL, NULL, NULL},
    {"refresh_interval", &K_DUR, offsetof(cfg_jwt_provider_t, refresh_s), 1, DAY, NULL,
     "5m", NULL},
    {"min_refresh_interval", &K_DUR, offsetof(cfg_jwt_provider_t, min_refresh_s), 1, DAY,
     NULL, "30s", NULL},
    {"max_stale", &K_DUR, offsetof(cfg_jwt_provider_t, max_stale_s), 1, 30 * DAY, NULL,
     "1d", NULL},
    {"fetch_timeout", &K_DUR, offsetof(cfg_jwt_provider_t, fetch_timeout_s), 1, 60, NULL,
     "5s", NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static void p_providers(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                        const char *ctx)
{
    cfg_jwt_t *j = dst;

    (void)f;
    if (!is_list(b, v, ctx))
        return;
    for (size_t i = 0; i < list_len(v); i++) {
        yaml_node_t *item = list_item(b, v, i);
        char ictx[64], name[32];
        cfg_jwt_provider_t p, *grown;

        if (item == NULL)
            return;
        snprintf(ictx, sizeof ictx, "%s[%zu]", ctx, i);
        if (!is_map(b, item, ictx))
            continue;
        memset(&p, 0, sizeof p);
        set_defaults(b, provider_fields, &p);
        parse_map(b, item, provider_fields, &p, ictx);
        if (p.name == NULL) {
            snprintf(name, sizeof name, "provider-%zu", i + 1);
            p.name = cfg_dup(b, name);
        }
        if (p.algorithms.n == 0)
            cfg_strv_push(b, &p.algorithms, "RS256");
        if (p.issuer == NULL)
            cfg_err(b, at(item), "%s: needs an issuer", ictx);
        if ((p.keys_file != NULL) + (p.jwks_uri != NULL) + p.discovery != 1)
            cfg_err(b, at(item), "%s: needs exactly one of keys_file, jwks_uri, discovery",
                    ictx);
        if (p.jwks_uri != NULL && strncmp(p.jwks_uri, "https://", 8) != 0)
            cfg_err(b, at(item), "%s: jwks_uri must be an https:// URL", ictx);
        if (p.discovery && p.issuer != NULL && strncmp(p.issuer, "https://", 8) != 0)
            cfg_err(b, at(item), "%s: discovery needs an https:// issuer", ictx);
        if (p.min_refresh_s > p.refresh_s)
            cfg_err(b, at(item), "%s: min_refresh_interval is longer than refresh_interval",
                    ictx);
        grown = cfg_grow(b, j->providers, j->nproviders, sizeof *grown);
        if (grown == NULL) {
            cfg_provider_clear(&p);
            return;
        }
        j->providers = grown;
        j->providers[j->nproviders++] = p;
    }
}

static const field_t jwt_fields[] = {
    {"algorithms", &K_ALGS, offsetof(cfg_jwt_t, algorithms), 0, 0, NULL, NULL, NULL},
    {"keys_file", &K_STR_OPT, offsetof(cfg_jwt_t, keys_file), 1, 0, NULL, NULL, NULL},
    {"issuer", &K_STR_OPT, offsetof(cfg_jwt_t, issuer), 1, 0, NULL, NULL, NULL},
    {"audience", &K_STR_OPT, offsetof(cfg_jwt_t, audience), 1, 0, NULL, NULL, NULL},
    {"leeway_seconds", &K_UINT, offsetof(cfg_jwt_t, leeway_s), 0, 3600, NULL, "30", NULL},
    {"scopes_claim", &K_STR_OPT, offsetof(cfg_jwt_t, scopes_claim), 1, 0, NULL, NULL, NULL},
    {"tier_claim", &K_STR_OPT, offsetof(cfg_jwt_t, tier_claim), 1, 0, NULL, NULL, NULL},
    {"claim_to_headers", &K_CLAIM_HDRS, offsetof(cfg_jwt_t, claim_hdrs), 0, 0, NULL, NULL,
     NULL},
    {"cache_entries", &K_UINT, offsetof(cfg_jwt_t, cache_entries), 0, 1000000, NULL,
     "10000", NULL},
    {"cache_bytes", &K_SIZE, offsetof(cfg_jwt_t, cache_bytes), 0, (size_t)1 << 32, NULL,
     "16777216", NULL},
    {"providers", &K_PROVIDERS, 0, 0, 0, provider_fields, NULL, NULL},
    {"secret", &K_SECRET_UNKEPT, 0, 0, 0, "JWT_SECRET", NULL, NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

/* A date: "2027-06-30" (midnight UTC) or RFC 3339 "2027-06-30T12:00:00Z";
 * stored as unix seconds (int64_t). */
static void p_date(cfg_build_t *b, const field_t *f, yaml_node_t *v, void *dst,
                   const char *ctx)
{
    const char *s = scalar(b, v, ctx, "a date");
    struct tm tm;
    const char *end;
    char shown[40];

    (void)f;
    if (s == NULL)
        return;
    memset(&tm, 0, sizeof tm);
    end = strptime(s, "%Y-%m-%d", &tm);
    if (end != NULL && *end == 'T')
        end = strptime(end + 1, "%H:%M:%S", &tm);
    if (end == NULL || (*end != '\0' && strcmp(end, "Z") != 0) || tm.tm_year < 70) {
        cfg_printable(s, shown, sizeof shown);
        cfg_err(b, at(v),
                "%s: expected a UTC date (2027-06-30 or 2027-06-30T12:00:00Z), "
                "got '%s'",
                ctx, shown);
        return;
    }
    *(int64_t *)dst = (int64_t)timegm(&tm);
}

static const field_t api_keys_fields[] = {
    {"deprecated", &K_BOOL, offsetof(cfg_t, auth.api_keys.deprecated), 0, 0, NULL, NULL,
     NULL},
    {"deprecated_since", &K_DATE, offsetof(cfg_t, auth.api_keys.since_s), 0, 0, NULL, NULL,
     NULL},
    {"sunset", &K_DATE, offsetof(cfg_t, auth.api_keys.sunset_s), 0, 0, NULL, NULL, NULL},
    {"link", &K_STR_OPT, offsetof(cfg_t, auth.api_keys.link), 1, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const field_t lockout_fields[] = {
    {"max_failures", &K_UINT, offsetof(cfg_lockout_t, max_failures), 0, 1000000, NULL, "10",
     NULL},
    {"window", &K_DUR, offsetof(cfg_lockout_t, window_s), 1, DAY, NULL, "1m", NULL},
    {"base_backoff", &K_DUR, offsetof(cfg_lockout_t, base_backoff_s), 1, DAY, NULL, "1s",
     NULL},
    {"max_backoff", &K_DUR, offsetof(cfg_lockout_t, max_backoff_s), 1, 7 * DAY, NULL, "15m",
     NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const field_t bans_fields[] = {
    {"max_entries", &K_UINT, offsetof(cfg_bans_t, max_entries), 1, AUTH_BAN_MAX_ENTRIES,
     NULL, "10000", NULL},
    {"min_prefix_v4", &K_UINT, offsetof(cfg_bans_t, min_prefix_v4), 1, 32, NULL, "8", NULL},
    {"min_prefix_v6", &K_UINT, offsetof(cfg_bans_t, min_prefix_v6), 1, 128, NULL, "32",
     NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const field_t revocation_fields[] = {
    {"max_token_lifetime", &K_DUR, offsetof(cfg_t, revocation_max_token_lifetime_s), 0,
     365 * DAY, NULL, "1d", NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const field_t auth_fields[] = {
    {"mode", &K_ENUM, offsetof(cfg_t, auth.mode), 0, 0, cfg_auth_mode_names, "any", NULL},
    {"api_key_enabled", &K_BOOL, offsetof(cfg_t, auth.api_key_enabled), 0, 0, NULL, "true",
     NULL},
    {"api_keys_file", &K_STR_OPT, offsetof(cfg_t, auth.api_keys_file), 1, 0, NULL, NULL,
     NULL},
    {"api_keys", &K_MAP, 0, 0, 0, api_keys_fields, NULL, "api_keys_deprecation"},
    {"jwt", &K_MAP, offsetof(cfg_t, auth.jwt), 0, 0, jwt_fields, NULL, NULL},
    {"lockout", &K_MAP, offsetof(cfg_t, auth.lockout), 0, 0, lockout_fields, NULL, NULL},
    {"bans", &K_MAP, offsetof(cfg_t, auth.bans), 0, 0, bans_fields, NULL, NULL},
    {"revocation", &K_MAP, 0, 0, 0, revocation_fields, NULL, NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const field_t forward_auth_fields[] = {
    {"path", &K_PATH, offsetof(cfg_t, forward_auth.path), 1, 0, NULL, "/auth", NULL},
    {"nginx_rate_limited_status", &K_INT,
     offsetof(cfg_t, forward_auth.nginx_rate_limited_status), 400, 599, NULL, "403", NULL},
    {"dialect", &K_ENUM, offsetof(cfg_t, forward_auth.dialect), 0, 0, dialect_names, "auto",
     NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const field_t proxy_fields[] = {
    {"hide_credentials", &K_BOOL, offsetof(cfg_t, proxy.hide_credentials), 0, 0, NULL, NULL,
     NULL},
    {"reserved_headers", &K_ENUM, offsetof(cfg_t, proxy.reserved), 0, 0, reserved_names,
     "drop", NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const field_t tickets_fields[] = {
    {"path", &K_PATH, offsetof(cfg_t, tickets.path), 1, 0, NULL, "/v1/tickets", NULL},
    {"ttl", &K_DUR, offsetof(cfg_t, tickets.ttl_s), 1, DAY, NULL, "30s", NULL},
    {"scopes", &K_SCOPES, offsetof(cfg_t, tickets.scopes), 0, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const field_t health_fields[] = {
    {"healthz_path", &K_PATH, offsetof(cfg_t, healthz_path), 1, 0, NULL, "/healthz", NULL},
    {"readyz_path", &K_PATH, offsetof(cfg_t, readyz_path), 1, 0, NULL, "/readyz", NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const field_t top_fields[] = {
    {"publish_interval", &K_DUR, offsetof(cfg_t, top_publish_interval), 1, 300, NULL, "5s",
     NULL},
    {"metric_clients", &K_UINT, offsetof(cfg_t, top_metric_clients), 0, RL_TOPK_CAP, NULL,
     "10", NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const field_t default_route_fields[] = {
    {"auth", &K_ENUM, offsetof(cfg_route_t, auth), 0, 0, route_auth_names, "required",
     NULL},
    {"scopes", &K_SCOPES, offsetof(cfg_route_t, scopes), 0, 0, NULL, NULL, NULL},
    {"allow_encoded_percent", &K_BOOL, offsetof(cfg_route_t, allow_encoded_percent), 0, 0,
     NULL, NULL, NULL},
    {"allow_semicolon", &K_BOOL, offsetof(cfg_route_t, allow_semicolon), 0, 0, NULL, NULL,
     NULL},
    {"auth_methods", &K_AUTH_METHODS, offsetof(cfg_route_t, auth_methods), 0, 0, NULL, NULL,
     NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const field_t security_headers_fields[] = {
    {"content_security_policy", &K_STR,
     offsetof(cfg_t, security_headers.content_security_policy), 0, 0, NULL,
     "default-src 'none'; frame-ancestors 'none'", NULL},
    {"permissions_policy", &K_STR, offsetof(cfg_t, security_headers.permissions_policy), 0,
     0, NULL, "geolocation=(), camera=(), microphone=()", NULL},
    {"hsts_max_age", &K_U32, offsetof(cfg_t, security_headers.hsts_max_age), 0,
     0xffffffffull, NULL, "31536000", NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const field_t cors_fields[] = {
    {"allowed_origins", &K_ORIGINS, offsetof(cfg_t, cors_origins), 0, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static const char *const audit_flush_names[] = {"interval", "every", "fsync", NULL};

static const field_t audit_fields[] = {
    {"path", &K_STR, offsetof(cfg_t, audit_path), 1, 0, NULL, "-", NULL},
    {"flush", &K_ENUM, offsetof(cfg_t, audit_flush), 0, 0, audit_flush_names, "interval",
     NULL},
    {"redact_query", &K_QUERY_NAMES, offsetof(cfg_t, audit_redact), 0, 0, NULL, NULL, NULL},
    {"admin_stream_max", &K_UINT, offsetof(cfg_t, audit_admin_stream_max), 0, 1000000, NULL,
     "10000", NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

const field_t cfg_top_fields[] = {
    {"listen", &K_LISTEN, offsetof(cfg_t, listen), 1, 0, NULL, "0.0.0.0:8080", NULL},
    {"admin_listen", &K_LISTEN, offsetof(cfg_t, admin_listen), 1, 0, NULL, "127.0.0.1:9090",
     NULL},
    {"threads", &K_UINT, offsetof(cfg_t, threads), 0, 256, NULL, NULL, NULL},
    {"environment", &K_ENUM, offsetof(cfg_t, environment), 0, 0, cfg_environment_names,
     "development", NULL},
    {"trusted_proxies", &K_CIDRS, offsetof(cfg_t, trusted_proxies), 0, 0, NULL, NULL, NULL},
    {"client_ipv6_prefix", &K_UINT, offsetof(cfg_t, client_ipv6_prefix), 32, 128, NULL,
     "64", NULL},
    {"max_body_bytes", &K_SIZE, offsetof(cfg_t, max_body_bytes), 1, 1ull << 40, NULL,
     "1048576", NULL},
    {"max_header_bytes", &K_SIZE, offsetof(cfg_t, max_header_bytes), 1024, 1ull << 20, NULL,
     "16384", NULL},
    {"max_connections", &K_UINT, offsetof(cfg_t, max_connections), 1, 10000000, NULL,
     "10000", NULL},
    {"request_read_timeout_ms", &K_UINT, offsetof(cfg_t, request_read_timeout_ms), 100,
     3600000, NULL, "30000", NULL},
    {"idle_timeout_ms", &K_UINT, offsetof(cfg_t, idle_timeout_ms), 100, 3600000, NULL,
     "15000", NULL},
    {"expected_replicas", &K_UINT, offsetof(cfg_t, expected_replicas), 1, 10000, NULL, "1",
     NULL},
    {"shutdown_delay", &K_DUR, offsetof(cfg_t, shutdown_delay), 0, 600, NULL, "5s",
     "shutdown_delay"},
    {"redis", &K_MAP, offsetof(cfg_t, redis), 0, 0, redis_fields, NULL, NULL},
    {"forward_auth", &K_MAP, 0, 0, 0, forward_auth_fields, NULL, NULL},
    {"proxy", &K_MAP, 0, 0, 0, proxy_fields, NULL, NULL},
    {"path_match", &K_ENUM, offsetof(cfg_t, path_match), 0, 0, path_match_names,
     "case_sensitive", NULL},
    {"trailing_slash", &K_ENUM, offsetof(cfg_t, trailing_slash), 0, 0, trailing_slash_names,
     "same", NULL},
    {"allowed_methods", &K_ALLOWED_METHODS, offsetof(cfg_t, allowed_methods), 0, 0, NULL,
     NULL, NULL},
    {"tickets", &K_MAP, 0, 0, 0, tickets_fields, NULL, NULL},
    {"health", &K_MAP, 0, 0, 0, health_fields, NULL, NULL},
    {"top", &K_MAP, 0, 0, 0, top_fields, NULL, NULL},
    {"default_route", &K_DEFAULT_ROUTE, offsetof(cfg_t, default_route), 0, 0,
     default_route_fields, NULL, NULL},
    {"security_headers", &K_MAP, 0, 0, 0, security_headers_fields, NULL, NULL},
    {"auth", &K_MAP, 0, 0, 0, auth_fields, NULL, NULL},
    {"limits", &K_LIMITS, 0, 0, 0, limit_fields, NULL, NULL},
    {"tiers", &K_TIERS, 0, 0, 0, NULL, NULL, NULL},
    {"routes", &K_ROUTES, 0, 0, 0, cfg_route_fields, NULL, NULL},
    {"cors", &K_MAP, 0, 0, 0, cors_fields, NULL, NULL},
    {"audit", &K_MAP, 0, 0, 0, audit_fields, NULL, NULL},
    {"admin_token", &K_SECRET, offsetof(cfg_t, admin_token), 0, 0, "ADMIN_TOKEN", NULL,
     NULL},
    {"admin_tokens_file", &K_STR_OPT, offsetof(cfg_t, admin_tokens_file), 1, 0, NULL, NULL,
     NULL},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

/* Refuse a second document in the stream ("---" twice). */
static void check_single_document(cfg_build_t *b, yaml_parser_t *parser)
{
    yaml_document_t extra;
    yaml_node_t *root;

    if (!yaml_parser_load(parser, &extra)) {
        cfg_err(b, cfg_at((int)parser->problem_mark.line + 1), "YAML: %s",
                parser->problem != NULL ? parser->problem : "parse error");
        return;
    }
    root = yaml_document_get_root_node(&extra);
    if (root != NULL)
        cfg_err(b, at(root), "only one YAML document is allowed");
    yaml_document_delete(&extra);
}

void cfg_yaml_load(cfg_build_t *b, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    yaml_node_t *root;

    b->doc = calloc(1, sizeof *b->doc);
    if (b->doc == NULL || !yaml_parser_initialize(&parser)) {
        cfg_err(b, cfg_at(0), "out of memory");
        free(b->doc);
        b->doc = NULL;
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, b->doc)) {
        /* libyaml has already freed the document's contents. */
        cfg_err(b, cfg_at((int)parser.problem_mark.line + 1), "YAML: %s%s%s",
                parser.problem != NULL ? parser.problem : "parse error",
                parser.context != NULL ? " " : "",
                parser.context != NULL ? parser.context : "");
        free(b->doc);
        b->doc = NULL;
        goto out_parser;
    }
    root = yaml_document_get_root_node(b->doc);
    if (root == NULL)
        goto out_parser; /* an empty file: every default */
    check_single_document(b, &parser);
    parse_map(b, root, cfg_top_fields, b->c, "");
    /* nodes without a mode: one standalone server */
    if (cfg_where(b, "redis.mode").line == 0 && b->c->redis.nodes.n > 0)
        b->c->redis.mode = CFG_REDIS_STANDALONE;
out_parser:
    yaml_parser_delete(&parser);
}

/* ---- defaults ----------------------------------------------------------- */

/* Field `f`'s default (its text, as the file would write it) through its
 * own parser into the struct at `base`: the bounds that hold for the file
 * hold for the defaults too. */
static void set_default(cfg_build_t *b, const field_t *f, void *base)
{
    yaml_node_t v;
    char ctx[96];

    memset(&v, 0, sizeof v);
    v.type = YAML_SCALAR_NODE;
    v.data.scalar.value = (yaml_char_t *)(uintptr_t)f->def; /* only read */
    v.data.scalar.length = strlen(f->def);
    v.data.scalar.style = YAML_PLAIN_SCALAR_STYLE;
    snprintf(ctx, sizeof ctx, "the default of %s", f->key);
    f->kind->parse(b, f, &v, (char *)base + f->off, ctx);
}

/* The defaults of table `t` (and of its mappings) into the struct at
 * `base`; lists of mappings get theirs entry by entry as they are parsed. */
static void set_defaults(cfg_build_t *b, const field_t *t, void *base)
{
    for (const field_t *f = t; f->key != NULL; f++) {
        const field_t *sub;
        const char *sep;

        if (f->def != NULL)
            set_default(b, f, base);
        sub = sub_table(f, &sep);
        if (f->kind == &K_DEFAULT_ROUTE)
            sub = cfg_route_fields; /* shown as a route: a route's defaults */
        if (sub != NULL && strcmp(sep, ".") == 0)
            set_defaults(b, sub, (char *)base + f->off);
    }
}

void cfg_yaml_defaults(cfg_build_t *b)
{
    set_defaults(b, cfg_top_fields, b->c);
}

/* ---- the keys, for the docs' test ---------------------------------------- */

/* Each key of table `t` under `prefix` (file) / `dprefix` (dump). */
static void walk_keys(const field_t *t, const char *prefix, const char *dprefix,
                      cfg_key_info_fn fn, void *arg)
{
    char path[128], dpath[128], name[64];

    for (const field_t *f = t; f->key != NULL; f++) {
        const field_t *sub;
        const char *sep;

        if (f->kind->parse == p_secret) /* accepted only to say where secrets go */
            continue;
        snprintf(path, sizeof path, "%s%s", prefix, f->key);
        snprintf(dpath, sizeof dpath, "%s%s", dprefix,
                 cfg_field_dump_name(f, name, sizeof name));
        fn(path, dpath, f->def, arg);
        sub = sub_table(f, &sep);
        if (sub != NULL) {
            strncat(path, sep, sizeof path - strlen(path) - 1);
            strncat(dpath, sep, sizeof dpath - strlen(dpath) - 1);
            walk_keys(sub, path, dpath, fn, arg);
        }
    }
}

void cfg_keys_info(cfg_key_info_fn fn, void *arg)
{
    walk_keys(cfg_top_fields, "", "", fn, arg);
}

typedef struct key_only {
    cfg_key_fn fn;
    void *arg;
} key_only_t;

static void key_only(const char *key, const char *dumped, const char *def, void *arg)
{
    const key_only_t *k = arg;

    (void)dumped;
    (void)def;
    k->fn(key, k->arg);
}

void cfg_keys(cfg_key_fn fn, void *arg)
{
    key_only_t k = {fn, arg};

    cfg_keys_info(key_only, &k);
}
