/* olcache_internal.h — the over-limit cache of one worker's Redis backend
 * (rl_redis.c): a script call that Redis answered "denied" is answered
 * again locally, with the same per-bucket results, until the earliest time
 * any of its denying buckets could fit.
 *
 * Why this never admits what Redis would deny and never denies longer than
 * Redis would: an entry is keyed by the whole call (identity, every limit
 * with its effective rate and mode, the cost), so a reload that changes a
 * rate misses it; it holds only calls that were denied; and it expires at
 * send_time + min(retry_after_ms of the enforce buckets that did not fit).
 * Redis computed each retry_after at its own time, which is at or after the
 * moment the call was sent, so until the entry expires every one of those
 * buckets is still short of `cost` (tokens only grow by refill, at the rate
 * in the key), and the all-or-nothing call is still denied.  What can be
 * stale is only the `remaining` of buckets that did fit (other replicas may
 * have spent them): a header detail, never a decision.  An admin reset of
 * the bucket in Redis is not seen until the entry expires.
 *
 * Bounded (least recently stored out first); owned by one thread.
 */
#ifndef TOLLGATE_RL_OLCACHE_INTERNAL_H
#define TOLLGATE_RL_OLCACHE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/rl_limiter.h"

typedef struct olcache olcache_t;

olcache_t *olcache_new(size_t max_entries);
void olcache_free(olcache_t *c);

/* The key of group `g` into out ("cost|identity|limit:n:period:burst:mode|..."),
 * its length, or -1 when it does not fit. */
int olcache_key(const rl_group_t *g, char *out, size_t outlen);

/* Answer `g` from the cache at monotonic `now_ms`: true when it was denied
 * and still is (g->results filled: the stored verdicts, reset and retry
 * counted down).  For a dry_run group the cache is only read. */
bool olcache_answer(olcache_t *c, const char *key, size_t keylen, rl_group_t *g,
                    uint64_t now_ms);

/* After Redis answered `g` (results filled) for a call sent at `sent_ms`:
 * remember it when it was denied (never a dry_run group). */
void olcache_store(olcache_t *c, const char *key, size_t keylen, const rl_group_t *g,
                   uint64_t sent_ms);

size_t olcache_count(const olcache_t *c);

#endif
