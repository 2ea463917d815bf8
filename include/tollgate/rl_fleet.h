/* rl_fleet.h — how many tollgate replicas share this Redis, so the `local`
 * fallback can divide each rate by the live fleet rather than by a guess.
 *
 * Every replica has a random instance id (128 bits from getrandom, made at
 * start; never derived from a secret).  Every RL_FLEET_BEAT_MS it runs
 * lua/fleet.lua on the key "<prefix>{fleet}:replicas" (one hash tag: one
 * slot in a cluster): its own entry is renewed until Redis's TIME +
 * RL_FLEET_TTL_MS, the expired entries go, and the reply is the number of
 * replicas alive.  The last such count is kept; while Redis is unreachable
 * it is what the local fallback divides by (rl_fleet_divisor).  Leaving
 * (graceful shutdown) removes the entry at once, so the others count one
 * less at their next beat rather than after the TTL.
 *
 * One rl_fleet_t lives on one thread (tollgate: the admin thread's loop);
 * rl_fleet_tick, rl_fleet_leave and rl_fleet_free run there.  rl_fleet_count,
 * rl_fleet_seen_ms, rl_fleet_divisor and rl_fleet_left may be called from
 * any thread (atomics).  The I/O goes through rc_ops_t, so the logic is
 * tested against a fake client.
 */
#ifndef TOLLGATE_RL_FLEET_H
#define TOLLGATE_RL_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/rc.h"

#define RL_FLEET_BEAT_MS 2000     /* between two heartbeats of one replica */
#define RL_FLEET_TTL_MS 6000      /* an entry not renewed for this long is dropped */
#define RL_FLEET_ID_HEX 32        /* instance id: 128 random bits in hex */
#define RL_FLEET_MAX_COUNT 100000 /* a larger reply is taken as malformed */

typedef struct rl_fleet rl_fleet_t;

/* Called on the fleet's thread after each heartbeat (or leave) answer:
 * `ok` with the new `count`, or not ok (no reply, error reply, malformed)
 * with `errstr` (never secret) and the count kept from before. */
typedef void (*rl_fleet_observe_fn)(void *ctx, bool ok, unsigned count, const char *errstr);

/* A fleet member over `ops`/`client` (borrowed; they outlive the fleet),
 * with keys under `prefix` (copied) and lua/fleet.lua at index `script`
 * of the client's registered scripts.  NULL when out of memory, when the
 * prefix is too long, or when no random id can be had. */
rl_fleet_t *rl_fleet_new(const rc_ops_t *ops, void *client, const char *prefix,
                         size_t script);
/* Cancels a call in flight (its answer is then never read).  NULL: no-op. */
void rl_fleet_free(rl_fleet_t *f);

void rl_fleet_set_observer(rl_fleet_t *f, rl_fleet_observe_fn fn, void *ctx);

/* The instance id (RL_FLEET_ID_HEX hex digits) and the roster key. */
const char *rl_fleet_id(const rl_fleet_t *f);
const char *rl_fleet_key(const rl_fleet_t *f);

/* Call often (tollgate: every 250 ms).  Sends a heartbeat when one is due
 * (RL_FLEET_BEAT_MS after the last one was sent; at once the first time),
 * none is in flight, the client is up and the fleet has not left.  Returns
 * true when one was sent.  `now_ms` is monotonic. */
bool rl_fleet_tick(rl_fleet_t *f, uint64_t now_ms);

/* Leave the fleet: no heartbeat is sent any more, and the entry is removed
 * (after a heartbeat in flight, on the same connection).  rl_fleet_left()
 * turns true once that is answered, failed or could not be sent. */
void rl_fleet_leave(rl_fleet_t *f);
bool rl_fleet_left(const rl_fleet_t *f);

/* The last count of live replicas seen, 0 before the first. */
unsigned rl_fleet_count(const rl_fleet_t *f);
/* util_mono_ms() of that count, 0 before the first. */
uint64_t rl_fleet_seen_ms(const rl_fleet_t *f);

/* What the local fallback divides a rate by: the last count seen, or
 * `expected` (expected_replicas) before the first count or when `f` is
 * NULL; never below 1. */
unsigned rl_fleet_divisor(const rl_fleet_t *f, unsigned expected);

#endif
