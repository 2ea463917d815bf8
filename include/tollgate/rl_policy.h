/* rl_policy.h — limit definitions, request matching and limit identities.
 *
 * A limit (`limits:` in the config) says which requests it applies to
 * (rl_match_t), how requests are grouped into buckets (`by`), and the bucket's
 * rate.  The same rl_match_t is used by routes.  The config module fills these
 * structures; the limiter reads them and never changes them.
 */
#ifndef TOLLGATE_RL_POLICY_H
#define TOLLGATE_RL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/rl_bucket.h"

#define RL_MAX_IDENTITY_LEN 512 /* bytes of a spelled identity, see rl_policy_identity */

/* HTTP methods as bits, for `methods: [GET, POST]`. */
enum {
    RL_METHOD_GET = 1u << 0,
    RL_METHOD_HEAD = 1u << 1,
    RL_METHOD_POST = 1u << 2,
    RL_METHOD_PUT = 1u << 3,
    RL_METHOD_DELETE = 1u << 4,
    RL_METHOD_PATCH = 1u << 5,
    RL_METHOD_OPTIONS = 1u << 6,
    RL_METHOD_CONNECT = 1u << 7,
    RL_METHOD_TRACE = 1u << 8,
    RL_METHOD_OTHER = 1u << 9,
};

/* "GET" -> RL_METHOD_GET; unknown names -> 0. Case-sensitive (RFC 9110). */
unsigned rl_method_bit(const char *name);

/* The methods of `bits` as an Allow header value ("GET, HEAD, POST"), in a
 * fixed order (GET HEAD POST PUT PATCH DELETE OPTIONS TRACE; CONNECT and
 * RL_METHOD_OTHER are never named), cut to whole names that fit `outlen`;
 * "" for none.  Returns the length written. */
size_t rl_method_list(unsigned bits, char *out, size_t outlen);

typedef struct rl_match {
    char *path;        /* exact normalized path, or NULL = any */
    char *path_prefix; /* normalized prefix, or NULL = any */
    unsigned methods;  /* RL_METHOD_* bits, 0 = any */
    char *host;        /* exact, case-insensitive, port ignored; NULL = any */
    bool icase;        /* path and path_prefix compared ASCII case-insensitively */
    bool slash_strict; /* `path` does not also cover its trailing-slash twin */
} rl_match_t;

typedef enum {
    RL_BY_CLIENT,
    RL_BY_IP,
    RL_BY_ROUTE,
    RL_BY_HEADER,
    RL_BY_CLAIM
} rl_by_kind_t;

typedef struct rl_by {
    rl_by_kind_t kind;
    char *name; /* header or claim name for RL_BY_HEADER / RL_BY_CLAIM, else NULL */
} rl_by_t;

typedef enum { RL_MODE_ENFORCE, RL_MODE_SHADOW } rl_mode_t;
typedef enum { RL_ONERR_LOCAL, RL_ONERR_OPEN, RL_ONERR_CLOSED } rl_onerr_t;
/* exact: every check asks Redis.  leased: a replica takes up to lease_max
 * tokens at once and admits from them locally for lease_ttl_ms (Redis
 * backend; limiter/rl_redis.c states the bound). */
typedef enum { RL_CONSISTENCY_EXACT, RL_CONSISTENCY_LEASED } rl_consistency_t;

typedef struct rl_limit {
    char *name;
    rl_match_t match;
    rl_by_t *by; /* at least one */
    size_t nby;
    rl_rate_t rate;
    rl_mode_t mode;
    rl_onerr_t on_redis_error;
    rl_consistency_t consistency; /* default exact */
    uint32_t lease_max;           /* leased: tokens of one lease at most, default 100 */
    uint32_t lease_ttl_ms;        /* leased: a lease's life, default 100 */
} rl_limit_t;

/* `tiers: {gold: {default: 6000/minute}}`: per-tier rate of named limits. */
typedef struct rl_tier_override {
    char *limit;
    rl_rate_t rate;
} rl_tier_override_t;

typedef struct rl_tier {
    char *name;
    rl_tier_override_t *overrides;
    size_t n;
} rl_tier_t;

typedef struct rl_policy_set {
    rl_limit_t *limits;
    size_t nlimits;
    rl_tier_t *tiers;
    size_t ntiers;
} rl_policy_set_t;

/* What the limiter needs to know about one request.  All strings are borrowed
 * from the caller for the duration of the rl_check() call only. */
typedef struct rl_request {
    unsigned method;       /* one RL_METHOD_* bit */
    const char *path;      /* normalized path, no query */
    const char *host;      /* Host of the (original) request, may be NULL */
    const char *client_id; /* authenticated id, NULL when anonymous */
    const char *ip;        /* client ip, text */
    const char *route;     /* matched route name, NULL when none */
    const char *tier;      /* credential's tier, NULL when none */
    uint32_t cost;         /* tokens this request takes, normally 1 */
    /* Inbound header / string claim by name, NULL when absent. */
    const char *(*header)(void *ctx, const char *name);
    const char *(*claim)(void *ctx, const char *name);
    void *ctx;
    /* Decide exactly as now (verdicts, remaining, reset, retry-after, the
     * all-or-nothing rule, the backend's clock) but take no token and change
     * no state anywhere: no bucket, key, lease or cache entry is written,
     * created or dropped.  The basis of explain and replay. */
    bool dry_run;
} rl_request_t;

/* True when `m` matches path and host, whatever its methods. */
bool rl_match_target(const rl_match_t *m, const char *path, const char *host);

/* True when `m` matches method/path/host of `req`. */
bool rl_match_request(const rl_match_t *m, unsigned method, const char *path,
                      const char *host);

/* The rate of `lim` for `tier` (tier override, else the limit's own). */
const rl_rate_t *rl_policy_rate(const rl_policy_set_t *ps, const rl_limit_t *lim,
                                const char *tier);

/* Spell the identity of `req` under `lim`'s `by` list into `out`, e.g.
 * "c=orders-svc", "ip=10.0.0.7", "c=orders-svc|h:x-tenant=acme".  A missing
 * client, header or claim is spelled "-" (the shared bucket for "absent").
 * Characters outside [A-Za-z0-9._:@=-] are percent-encoded, so an identity is
 * always safe inside a Redis key and inside a {hash tag}.  Returns the length,
 * or -1 when it does not fit in `outlen` (RL_MAX_IDENTITY_LEN is enough for
 * any identity built from bounded inputs). */
int rl_policy_identity(const rl_limit_t *lim, const rl_request_t *req, char *out,
                       size_t outlen);

/* Whether `key` is an identity rl_policy_identity could spell for `lim`:
 * one '|'-separated part per `by` entry, in order, each with its prefix
 * ("c=", "ip=", "r=", "h:NAME=" with NAME lower-cased, "cl:NAME=") and a
 * value as spelled ("-", "%2D", "%S" + 32 hex digits, or bytes of
 * [A-Za-z0-9._:@=-] and %XX upper-case escapes of bytes outside it, at most
 * 96 bytes); or "%L".  0, or -1 with the reason in `err` (which quotes no
 * part of the key). */
int rl_policy_identity_check(const rl_limit_t *lim, const char *key, char *err,
                             size_t errlen);

/* Free the contents (not the struct) of a policy set / limit / match. */
void rl_match_clear(rl_match_t *m);
void rl_limit_clear(rl_limit_t *lim);
void rl_policy_set_clear(rl_policy_set_t *ps);

#endif
