/* lease_internal.h — token leases of one worker's Redis backend (rl_redis.c)
 * for limits with `consistency: leased`.
 *
 * A leased check asks Redis for k tokens at once (the bucket script with
 * cost k: all-or-nothing, so the k tokens are charged in Redis before any is
 * used) and admits the next checks of the same identity and limits from them
 * locally, until they are used up or lease_ttl_ms has passed; leftovers
 * expire (they are never returned, so a lease can only under-admit).  k
 * follows the demand: twice the tokens asked for since the last lease, at
 * least the check's cost, at most lease_max.  When Redis cannot give k, the
 * check is asked again with its own cost (exact).
 *
 * The bound: every admitted request's tokens were charged in Redis, so over
 * any time window a leased limit admits at most what the exact bucket would
 * plus the tokens leased before the window and used inside it — at most
 * lease_max per worker thread holding a lease: replicas × threads ×
 * lease_max.  Tested in tests/integration/test_overlimit.py.
 */
#ifndef TOLLGATE_RL_LEASE_INTERNAL_H
#define TOLLGATE_RL_LEASE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/rl_limiter.h"

typedef struct lease_tab lease_tab_t;

lease_tab_t *lease_new(size_t max_entries);
void lease_free(lease_tab_t *t);

/* Every limit of the group is enforce + leased. */
bool lease_applies(const rl_group_t *g);

/* The key of a group (identity and limits with rates; not the cost). */
int lease_key(const rl_group_t *g, char *out, size_t outlen);

/* Admit `g` from a live lease at monotonic `now_ms`: true with g->results
 * filled (allowed).  A dry_run group reads the lease only: the same answer,
 * no token taken, no demand counted. */
bool lease_take(lease_tab_t *t, const char *key, size_t keylen, rl_group_t *g,
                uint64_t now_ms);

/* Tokens to ask Redis for, for a check of g->cost that no lease covered. */
uint32_t lease_want(lease_tab_t *t, const char *key, size_t keylen, const rl_group_t *g);

/* Redis charged `got` tokens (the check's own `cost` among them) in a call
 * sent at `sent_ms`; g->results hold its reply. */
void lease_granted(lease_tab_t *t, const char *key, size_t keylen, const rl_group_t *g,
                   uint32_t got, uint32_t cost, uint64_t sent_ms);

/* Redis could not give `want` tokens: ask for half as many next time. */
void lease_refused(lease_tab_t *t, const char *key, size_t keylen, uint32_t want);

#endif
