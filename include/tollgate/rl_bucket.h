/* rl_bucket.h — token bucket maths, integers only.
 *
 * A rate "N per period" refills N tokens every `period_ms` into a bucket of
 * `burst` tokens.  The level is kept in fixed point: one token is `period_ms`
 * units, and one millisecond adds `n` units.  So refill is exact integer
 * arithmetic (elapsed_ms * n), with no drift and no floating point; the Lua
 * script (lua/bucket.lua) does the same sums and both are tested on the same
 * vectors.  All values stay below 2^53 for every rate the config accepts
 * (burst <= 10^7, period <= 1 day), so Lua's doubles are exact too.
 */
#ifndef TOLLGATE_RL_BUCKET_H
#define TOLLGATE_RL_BUCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_MAX_BURST 10000000u     /* tokens */
#define RL_MAX_PERIOD_MS 86400000u /* one day */

typedef struct rl_rate {
    uint32_t n;         /* tokens added per period (the N of N/period), >= 1 */
    uint32_t period_ms; /* period length, ms */
    uint32_t burst;     /* capacity, tokens, >= 1 */
} rl_rate_t;

typedef struct rl_bucket {
    int64_t level; /* tokens * period_ms (fixed point) */
    int64_t ts_ms; /* time of `level`, ms since the epoch */
} rl_bucket_t;

typedef struct rl_verdict {
    bool allowed;
    uint64_t remaining;      /* whole tokens left (after charging, when allowed) */
    uint64_t reset_ms;       /* until the bucket is full again */
    uint64_t retry_after_ms; /* until this cost would fit; 0 when allowed */
} rl_verdict_t;

/* Parse "60/minute" (second|minute|hour|day, also s|m|h|d).  burst = n.
 * Returns 0, or -1 with a message in err. */
int rl_rate_parse(const char *s, rl_rate_t *out, char *err, size_t errlen);

/* A new, full bucket at `now_ms`. */
void rl_bucket_init(rl_bucket_t *b, const rl_rate_t *r, int64_t now_ms);

/* Refill `b` up to `now_ms` (time going backwards adds nothing). */
void rl_bucket_refill(rl_bucket_t *b, const rl_rate_t *r, int64_t now_ms);

/* Would `cost` tokens fit (after rl_bucket_refill)?  Fills `v` as if the
 * tokens were taken when they fit; changes nothing. */
bool rl_bucket_peek(const rl_bucket_t *b, const rl_rate_t *r, uint32_t cost,
                    rl_verdict_t *v);

/* Take `cost` tokens (caller checked with rl_bucket_peek). */
void rl_bucket_take(rl_bucket_t *b, const rl_rate_t *r, uint32_t cost);

/* Milliseconds of idleness after which the bucket is full again and can be
 * forgotten (used for expiry: memory backend, PEXPIRE in Redis). */
uint64_t rl_bucket_full_after_ms(const rl_bucket_t *b, const rl_rate_t *r);

#endif
