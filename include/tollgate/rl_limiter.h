/* rl_limiter.h — the asynchronous decision on all limits of one request.
 *
 * One rl_limiter_t per worker thread, bound to that thread's event_base.
 * rl_check() finds the limits that match, spells each one's identity, groups
 * limits that share an identity (one backend call per group: one Lua script
 * call in Redis), and hands the groups to a backend through rl_backend_ops_t.
 * The answer always comes through `done`, on this thread, exactly once —
 * unless rl_cancel() was called first.  The memory backend answers from a
 * zero-delay event (never inside rl_check), so the caller's code path is the
 * same as with Redis.
 */
#ifndef TOLLGATE_RL_LIMITER_H
#define TOLLGATE_RL_LIMITER_H

#include <stddef.h>
#include <stdint.h>

#include "tollgate/rl_bucket.h"
#include "tollgate/rl_policy.h"

struct event_base;
struct rl_memory;
struct rl_fleet;
struct rl_topk;

typedef enum {
    RL_OK,     /* every enforced limit allows (shadow denials included here) */
    RL_DENIED, /* an enforced limit denies: 429 */
    RL_ERR,    /* the backend failed and a limit's on_redis_error is `closed`: 503 */
} rl_status_t;

typedef struct rl_limit_result {
    const rl_limit_t *limit; /* borrowed from the policy set */
    rl_rate_t rate;          /* effective rate (tier applied) */
    rl_verdict_t v;
    bool fallback; /* decided by the local fallback, not the shared backend */
    bool failed;   /* backend failed and on_redis_error = open: allowed, no numbers */
} rl_limit_result_t;

typedef struct rl_result {
    rl_status_t status;
    const rl_limit_result_t *limits; /* every matching limit, in config order */
    size_t n;
    /* The most restrictive limit, reported in X-RateLimit-* and RateLimit: on
     * a deny the enforced limit that denied with the largest retry-after,
     * otherwise the one with the fewest tokens left; -1 when n == 0. */
    int report;
    const char *errstr; /* backend error detail, NULL when none; never secret */
} rl_result_t;

/* `res` and everything it points to is valid only during the call. */
typedef void (*rl_done_fn)(const rl_result_t *res, void *privdata);

typedef struct rl_pending rl_pending_t;

/* One group: limits sharing an identity.  The backend fills `results[i].v`
 * (and `fallback` / `failed`) for every i < n, then calls `done`.  Charging
 * is all-or-nothing over the group's enforced limits. */
typedef struct rl_group {
    const char *identity;       /* spelled by rl_policy_identity */
    const rl_limit_t **limits;  /* n entries */
    const rl_rate_t *rates;     /* n entries, effective rates */
    rl_limit_result_t *results; /* n entries, filled by the backend */
    size_t n;
    uint32_t cost;
    bool failed; /* set by the backend: this group alone could not be decided */
    /* Decide but write nothing (rl_request_t.dry_run): the results are what
     * a real check would report now; no token is taken and no bucket, key,
     * lease or cache entry is created, changed or dropped. */
    bool dry_run;
} rl_group_t;

/* Backend answer for a whole check: 0 ok (groups marked `failed` are decided
 * by their limits' on_redis_error), -1 the whole backend failed (errstr set). */
typedef void (*rl_backend_done_fn)(int status, const char *errstr, void *privdata);

typedef struct rl_backend_ops {
    const char *name; /* "memory", "redis" */
    /* Decide every group; call `done` once, later, on `base`'s thread.
     * Returns a token the limiter may pass to cancel(), or NULL on immediate
     * failure (then `done` is not called). */
    void *(*check)(void *be, struct event_base *base, rl_group_t *groups, size_t n,
                   rl_backend_done_fn done, void *privdata);
    /* `done` for this token will not run; free what it holds. */
    void (*cancel)(void *be, void *token);
} rl_backend_ops_t;

typedef struct rl_limiter rl_limiter_t;

/* A limiter for the thread that runs `base`, deciding with `policy` through
 * `ops`/`be` (both borrowed; they outlive the limiter). */
rl_limiter_t *rl_limiter_new(struct event_base *base, const rl_backend_ops_t *ops,
                             void *be);
void rl_limiter_free(rl_limiter_t *l);

/* Wire the local fallback (on_redis_error: local): when the backend fails,
 * `local` limits decide on `m` with rate N and burst divided by `divisor`
 * (expected_replicas; each at least 1) and report fallback = true.  Without
 * one, `local` behaves as `open`.  `m` is borrowed; NULL unwires it. */
void rl_limiter_set_fallback(rl_limiter_t *l, struct rl_memory *m, unsigned divisor);

/* Divide by the fleet's live count instead (rl_fleet_divisor: the last
 * count of live replicas seen in Redis; `divisor` only until the first).  A
 * change of the count changes the rates of the local buckets, whose levels
 * are kept (a lower burst caps them at the next decision).  `f` is borrowed
 * and outlives the limiter; NULL: `divisor` alone. */
void rl_limiter_set_fleet(rl_limiter_t *l, const struct rl_fleet *f);

/* Record every decided request in `t` (rl_topk.h: who is limited), per
 * limit under its group's identity; a denial is a limit's verdict that
 * does not allow (shadow limits included: their denials are the ones they
 * would have made; a `failed` limit is not a denial).  A dry run and a
 * cancelled check are not recorded.  `t` is borrowed, owned by this
 * limiter's thread; NULL: nothing is recorded. */
void rl_limiter_set_topk(rl_limiter_t *l, struct rl_topk *t);

/* Decide every limit of `policy` that matches `req`.  Returns a handle for
 * rl_cancel(); NULL only when out of memory (`done` then not called).
 * When no limit matches, `done` still runs (later) with n == 0.  With
 * req->dry_run the answer is the one a real check would get now, and
 * nothing is taken or written (every group is dry_run; see rl_group_t). */
rl_pending_t *rl_check(rl_limiter_t *l, const rl_policy_set_t *policy,
                       const rl_request_t *req, rl_done_fn done, void *privdata);

/* The client went away: `done` will not run, the handle is freed. */
void rl_cancel(rl_pending_t *p);

#endif
