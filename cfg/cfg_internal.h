/* cfg_internal.h — shared by the files of cfg/ only: the state of one load.
 *
 * A load runs in steps over one cfg_build_t: the YAML file (cfg_yaml.c), the
 * environment (cfg_env.c), checks and runtime objects (cfg_check.c), then the
 * version (cfg_dump.c).  Every step records problems with cfg_err() and goes
 * on, so the operator sees every problem at once; the load fails at the end
 * when any was recorded.
 */
#ifndef TOLLGATE_SERVER_CFG_INTERNAL_H
#define TOLLGATE_SERVER_CFG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <yaml.h>

#include "tollgate/cfg.h"

#define CFG_MAX_FILE_BYTES (4u << 20) /* a config file larger than this is refused */
#define CFG_MAX_NODES 200000u         /* YAML nodes visited (aliases included) */
#define CFG_MAX_NAME 64               /* limit, route and tier names */
#define CFG_MAX_ITEMS 10000u          /* entries of one list (limits, routes, ...) */

/* Where a value came from: a line of the file, or an environment variable. */
typedef struct cfg_where {
    int line;        /* 1-based; 0 = no line (a default); -1 = message has its own */
    const char *env; /* variable name, or NULL */
} cfg_where_t;

typedef struct cfg_mark {
    char *key; /* dotted path, e.g. "auth.mode" */
    cfg_where_t w;
} cfg_mark_t;

/* Per-limit facts the checks need and rl_limit_t does not keep. */
typedef struct cfg_limit_meta {
    int line;
    bool burst_set;
} cfg_limit_meta_t;

typedef struct cfg_build {
    cfg_t *c;
    const char *name; /* the file, for messages */
    char *err;
    size_t errlen, errused;
    unsigned nerr;
    cfg_mark_t *marks; /* where each key of the file / env var was set */
    size_t nmarks, capmarks;
    cfg_limit_meta_t *limit_meta; /* parallel to c->policy.limits */
    int *route_lines;             /* parallel to c->routes */
    cfg_where_t *origin_where;    /* parallel to c->cors_origins */
    bool limits_given;            /* `limits:` present in the file */
    yaml_document_t *doc;
    yaml_node_t *tiers_node; /* parsed once every limit is known */
    size_t nodes_seen;
    /* JWT_SECRET(_FILE), held only during the load and wiped after. */
    char *jwt_secret;
    size_t jwt_secret_len;
    cfg_where_t jwt_secret_where;
    /* for secrets_version: the key file's and the JWKS files' bytes */
    unsigned char keys_file_sha[32], jwks_file_sha[32];
    unsigned char admin_tokens_file_sha[32]; /* zeros: no admin_tokens_file */
} cfg_build_t;

/* cfg.c: messages, marks, small parsers, memory. */
void cfg_err(cfg_build_t *b, cfg_where_t w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cfg_mark(cfg_build_t *b, const char *key, cfg_where_t w);
cfg_where_t cfg_where(const cfg_build_t *b, const char *key);
cfg_where_t cfg_at(int line);
cfg_where_t cfg_env_at(const char *env);
void cfg_where_str(const cfg_build_t *b, cfg_where_t w, char *out, size_t outlen);
char *cfg_dup(cfg_build_t *b, const char *s);
void cfg_set_str(char **dst, char *s); /* frees the old value */
void cfg_free_secret(char *s);         /* wipes, then frees; NULL is a no-op */
int cfg_strv_push(cfg_build_t *b, cfg_strv_t *v, const char *s);
void cfg_strv_clear(cfg_strv_t *v);
void *cfg_grow(cfg_build_t *b, void *arr, size_t n, size_t size); /* room for n+1 */
int cfg_parse_uint(const char *s, unsigned long long max, unsigned long long *out);
int cfg_parse_bool(const char *s, bool *out);
int cfg_parse_duration(const char *s, unsigned long long *out_s);
int cfg_check_name(const char *s);
int cfg_check_file(const char *path, char *why, size_t whylen);
void cfg_printable(const char *s, char *out, size_t outlen);
int cfg_hostport_norm(const char *s, size_t len, unsigned defport, char *out,
                      size_t outlen);
void cfg_route_clear(cfg_route_t *r);
void cfg_claim_hdrs_clear(cfg_claim_hdrs_t *h);
void cfg_provider_clear(cfg_jwt_provider_t *p);

/* ---- the schema ---------------------------------------------------------
 *
 * Each mapping of the file is a table of fields (cfg_yaml.c).  The table is
 * the one source of a key's name, type, bounds, default and place in the
 * dump: the parser walks it to read the file, cfg_yaml_defaults() to fill in
 * the defaults, cfg_dump.c to write GET /admin/v1/config (and so the config
 * version), cfg_keys() to list the keys. */
typedef struct cfg_field cfg_field_t;

/* Read value `v` of field `f` into `dst` (inside the table's base). */
typedef void cfg_parse_fn(cfg_build_t *b, const cfg_field_t *f, yaml_node_t *v, void *dst,
                          const char *ctx);
/* Field `f` of the struct at `base` as JSON (new reference); NULL = not
 * shown (only for a secret that is not kept). */
typedef json_t *cfg_emit_fn(const cfg_field_t *f, const void *base);

/* A kind of value: how it is read and how it is shown. */
typedef struct cfg_kind {
    cfg_parse_fn *parse;
    cfg_emit_fn *emit;
    const char *unit; /* appended to the key in the dump ("_s"), or NULL */
} cfg_kind_t;

struct cfg_field {
    const char *key;
    const cfg_kind_t *kind;
    size_t off; /* of the destination inside the table's base */
    unsigned long long min, max;
    const void *aux;  /* enum names, a sub-table (maps, lists), or a secret's env name */
    const char *def;  /* the default as the file would write it; NULL: zero / in code */
    const char *dkey; /* the name in the dump when not key + unit */
};

/* The top-level table, and the one a route's entries are shown with (the
 * default route takes only some of its keys but shows them all). */
extern const cfg_field_t cfg_top_fields[];
extern const cfg_field_t cfg_route_fields[];

/* Enum names shared with the environment (cfg_env.c) and cfg_auth_mode_str. */
extern const char *const cfg_environment_names[];
extern const char *const cfg_auth_mode_names[];
/* Index of `s` in NULL-terminated `names`, or -1. */
int cfg_name_index(const char *const *names, const char *s);

/* The name of `f` in the dump, into `out`. */
const char *cfg_field_dump_name(const cfg_field_t *f, char *out, size_t outlen);

/* cfg_yaml.c */
void cfg_yaml_defaults(cfg_build_t *b);
void cfg_yaml_load(cfg_build_t *b, const char *yaml, size_t len);
void cfg_yaml_tiers(cfg_build_t *b);
int cfg_limit_add_default(cfg_build_t *b);

/* cfg_env.c */
void cfg_env_apply(cfg_build_t *b);

/* cfg_check.c */
void cfg_check(cfg_build_t *b);
void cfg_build_runtime(cfg_build_t *b);

/* cfg_dump.c: one emitter per kind of value (see cfg_kind_t); `f->off`
 * inside `base` holds the value. */
cfg_emit_fn cfg_emit_str, cfg_emit_secret, cfg_emit_nothing, cfg_emit_uint, cfg_emit_u32,
    cfg_emit_int, cfg_emit_size, cfg_emit_i64, cfg_emit_bool, cfg_emit_enum,
    cfg_emit_flag_enum, cfg_emit_strv, cfg_emit_cidrs, cfg_emit_methods,
    cfg_emit_auth_methods, cfg_emit_claim_hdrs, cfg_emit_rate, cfg_emit_by, cfg_emit_burst,
    cfg_emit_map, cfg_emit_route_map, cfg_emit_limits, cfg_emit_tiers, cfg_emit_routes,
    cfg_emit_providers;
/* The fields of table `t` of the struct at `base`, as a JSON object. */
json_t *cfg_emit_table(const cfg_field_t *t, const void *base);
void cfg_set_version(cfg_build_t *b);

#endif
