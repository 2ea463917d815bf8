/* rl_bucket.c — token bucket maths in integer fixed point; see rl_bucket.h.
 *
 * Units: one token is `period_ms` units, one millisecond adds `n` units, the
 * capacity is `burst * period_ms` units.  lua/bucket.lua must do exactly the
 * same sums (the vectors in tests/unit/test_rl_bucket.c are shared):
 *
 *   refill:    if now > ts: level = min(cap, level + (now - ts) * n); ts = now
 *              if now <= ts: nothing changes (ts never moves backwards)
 *   peek:      allowed = level >= cost * period_ms
 *              after = allowed ? level - cost * period_ms : level
 *              remaining = floor(after / period_ms)
 *              reset_ms = ceil((cap - after) / n)
 *              retry_after_ms = allowed ? 0 : ceil((cost * period_ms - level) / n)
 *
 * A level above the capacity (burst lowered by a reload) is clamped to it on
 * refill.  Every value stays below 2^53 for rates the config accepts.
 */
#include "tollgate/rl_bucket.h"

#include <stdio.h>
#include <string.h>

static int64_t cap_units(const rl_rate_t *r)
{
    return (int64_t)r->burst * (int64_t)r->period_ms;
}

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static void rate_err(char *err, size_t errlen, const char *s, const char *why)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "bad rate \"%.64s\": %s", s, why);
}

/* "second" / "s" ... -> period in ms, 0 when unknown. */
static uint32_t period_of(const char *unit)
{
    static const struct {
        const char *long_name, *short_name;
        uint32_t ms;
    } units[] = {
        {"second", "s", 1000u},
        {"minute", "m", 60000u},
        {"hour", "h", 3600000u},
        {"day", "d", 86400000u},
    };
    size_t i;

    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(unit, units[i].long_name) == 0 || strcmp(unit, units[i].short_name) == 0)
            return units[i].ms;
    return 0;
}

int rl_rate_parse(const char *s, rl_rate_t *out, char *err, size_t errlen)
{
    const char *p = s;
    uint64_t n = 0;
    uint32_t period;

    if (s == NULL) {
        rate_err(err, errlen, "", "missing");
        return -1;
    }
    if (*p < '0' || *p > '9') {
        rate_err(err, errlen, s, "expected N/period, e.g. 60/minute");
        return -1;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (uint64_t)(*p - '0');
        if (n > RL_MAX_BURST) {
            rate_err(err, errlen, s, "N must be 1..10000000");
            return -1;
        }
    }
    if (n == 0) {
        rate_err(err, errlen, s, "N must be 1..10000000");
        return -1;
    }
    if (*p != '/') {
        rate_err(err, errlen, s, "expected N/period, e.g. 60/minute");
        return -1;
    }
    period = period_of(p + 1);
    if (period == 0) {
        rate_err(err, errlen, s, "period must be second|minute|hour|day (or s|m|h|d)");
        return -1;
    }
    out->n = (uint32_t)n;
    out->period_ms = period;
    out->burst = (uint32_t)n;
    return 0;
}

void rl_bucket_init(rl_bucket_t *b, const rl_rate_t *r, int64_t now_ms)
{
    b->level = cap_units(r);
    b->ts_ms = now_ms;
}

void rl_bucket_refill(rl_bucket_t *b, const rl_rate_t *r, int64_t now_ms)
{
    int64_t cap = cap_units(r);
    uint64_t need, elapsed;

    if (b->level >= cap) {
        b->level = cap;
    } else if (now_ms > b->ts_ms) {
        /* Compare before multiplying: elapsed * n may overflow after a
         * long idle time, but then the bucket is full anyway. */
        need = (uint64_t)(cap - b->level);
        elapsed = (uint64_t)now_ms - (uint64_t)b->ts_ms;
        if (elapsed >= ceil_div(need, r->n))
            b->level = cap;
        else
            b->level += (int64_t)(elapsed * r->n);
    }
    if (b->level < 0)
        b->level = 0;
    if (now_ms > b->ts_ms)
        b->ts_ms = now_ms;
}

bool rl_bucket_peek(const rl_bucket_t *b, const rl_rate_t *r, uint32_t cost,
                    rl_verdict_t *v)
{
    int64_t cap = cap_units(r);
    int64_t want = (int64_t)cost * (int64_t)r->period_ms;
    int64_t after = b->level;

    v->allowed = b->level >= want;
    if (v->allowed)
        after -= want;
    if (after > cap)
        after = cap;
    if (after < 0)
        after = 0;
    v->remaining = (uint64_t)after / r->period_ms;
    v->reset_ms = ceil_div((uint64_t)(cap - after), r->n);
    v->retry_after_ms = v->allowed ? 0 : ceil_div((uint64_t)(want - b->level), r->n);
    return v->allowed;
}

void rl_bucket_take(rl_bucket_t *b, const rl_rate_t *r, uint32_t cost)
{
    int64_t want = (int64_t)cost * (int64_t)r->period_ms;

    b->level = b->level >= want ? b->level - want : 0;
}

uint64_t rl_bucket_full_after_ms(const rl_bucket_t *b, const rl_rate_t *r)
{
    int64_t cap = cap_units(r);

    return b->level >= cap ? 0 : ceil_div((uint64_t)(cap - b->level), r->n);
}
