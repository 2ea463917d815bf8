/* rl_memory.h — the in-process backend: token buckets in a hash table shared
 * by all worker threads, with striped locks, bounded size and expiry of idle
 * buckets.  Used for `redis.mode: none` and as the `local` fallback when
 * Redis is unreachable.
 */
#ifndef TOLLGATE_RL_MEMORY_H
#define TOLLGATE_RL_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "tollgate/rl_limiter.h"

typedef struct rl_memory rl_memory_t;

/* At most `max_buckets` buckets (idle full buckets are evicted first; when
 * every bucket is busy the oldest is dropped).  Thread-safe. */
rl_memory_t *rl_memory_new(size_t max_buckets);
void rl_memory_free(rl_memory_t *m);

/* The ops table; its `be` is an rl_memory_t *. */
extern const rl_backend_ops_t rl_memory_ops;

/* Answer every check `ms` later (tests of in-flight cancellation only). */
void rl_memory_set_delay_ms(rl_memory_t *m, unsigned ms);

/* Number of buckets held now. */
size_t rl_memory_count(rl_memory_t *m);

/* Synchronous decision for one group, now (used by the fallback path and by
 * tests): fills group->results.  Charges all-or-nothing; a dry_run group is
 * decided the same and changes nothing (no charge, no new bucket, no
 * expiry).  Every `now_ms` of one store must come from one clock;
 * tollgate's is util_mono_ms(), which never steps back: with the wall
 * clock, a step back of an hour (NTP) left a drained bucket empty for that
 * hour (ts never moves backwards). */
void rl_memory_decide(rl_memory_t *m, rl_group_t *group, int64_t now_ms);

/* The ops table's decision of a whole check at `now_ms`, in the caller's
 * thread: every group, all-or-nothing across them (replay: simulated time). */
void rl_memory_decide_groups(rl_memory_t *m, rl_group_t *groups, size_t n, int64_t now_ms);

/* Admin: copy the bucket of (limit, identity) refilled to `now_ms` into `out`;
 * 0 when it exists, -1 when it does not.  rl_memory_reset forgets it. */
int rl_memory_peek(rl_memory_t *m, const char *limit, const char *identity,
                   const rl_rate_t *rate, int64_t now_ms, rl_bucket_t *out);
int rl_memory_reset(rl_memory_t *m, const char *limit, const char *identity);

#endif
