/* rl_redis.h — the Redis backend of the limiter: lua/bucket.lua per group.
 *
 * One rl_redis_t per worker thread, over that thread's Redis client (through
 * rc_ops_t, so the logic is testable without a socket).  Each group of a
 * check (limits sharing an identity) is one EVALSHA of the bucket script over
 * the keys `<prefix>{<identity>}:b:<limit>` — one hash tag, so one slot in a
 * cluster — and groups go out in parallel.  A group whose call fails (no
 * reply, timeout, error reply, malformed reply) is marked `failed` and its
 * limits follow their on_redis_error; the others keep their answers.
 */
#ifndef TOLLGATE_RL_REDIS_H
#define TOLLGATE_RL_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include "tollgate/rc.h"
#include "tollgate/rl_limiter.h"

#define RL_REDIS_MAX_KEY 1024 /* bytes of one bucket key */

typedef struct rl_redis rl_redis_t;

/* Called once per script call: result "ok", "error" or "timeout", and its
 * duration in seconds (for tollgate_redis_* metrics). */
typedef void (*rl_redis_observe_fn)(void *ctx, const char *result, double seconds);

/* `ops`/`client` and `prefix` are borrowed (prefix is copied); `script` is
 * the index of lua/bucket.lua among the client's registered scripts. */
rl_redis_t *rl_redis_new(const rc_ops_t *ops, void *client, const char *prefix,
                         size_t script);
void rl_redis_free(rl_redis_t *r);

void rl_redis_set_observer(rl_redis_t *r, rl_redis_observe_fn fn, void *ctx);

/* `fn` is called for each script call answered from the over-limit cache (a
 * call Redis denied a moment ago that cannot fit yet; see
 * limiter/olcache_internal.h), `lease_fn` for each admitted from a token
 * lease (consistency: leased; limiter/lease_internal.h).  Either may be NULL. */
void rl_redis_set_local_observer(rl_redis_t *r, void (*fn)(void *ctx),
                                 void (*lease_fn)(void *ctx), void *ctx);

/* Batch the calls of one event-loop turn: up to `max` requests go to a node
 * (cluster: to a hash slot, as every key of a script call must share one)
 * as one script call of lua/bucket.lua's batch form, decided in arrival
 * order, each all-or-nothing as on its own; `max` < 2 turns it off (the
 * default).  A full batch goes out at once, the rest when the loop turn
 * ends (a zero timer). */
void rl_redis_set_batching(rl_redis_t *r, size_t max, bool cluster);

/* Backpressure: with `max` checks already waiting on Redis, a new one fails
 * at once (its limits take their on_redis_error answer) and `shed_fn` (the
 * local observer's ctx; may be NULL) counts it.  0: no bound. */
void rl_redis_set_max_pending(rl_redis_t *r, size_t max, void (*shed_fn)(void *ctx));

/* Denied calls held by the over-limit cache now. */
size_t rl_redis_overlimit_count(const rl_redis_t *r);

/* The ops table; its `be` is an rl_redis_t *. */
extern const rl_backend_ops_t rl_redis_ops;

/* Write the key of (limit, identity) into out: "<prefix>{<identity>}:b:<limit>".
 * Returns its length, or -1 when it does not fit. */
int rl_redis_key(const char *prefix, const char *identity, const char *limit, char *out,
                 size_t outlen);

#endif
