/* util_clock.h — the one clock of the process (util/clock.c).
 *
 * Wall time (CLOCK_REALTIME) for everything another replica or Redis must
 * agree on: bucket timestamps, lockouts, JWT exp/nbf/iat, revocations.
 * Monotonic time (CLOCK_MONOTONIC) for durations and local timeouts, which
 * must not jump when the wall clock is stepped.
 */
#ifndef TOLLGATE_UTIL_CLOCK_H
#define TOLLGATE_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch. */
int64_t util_wall_ms(void);

/* Milliseconds on the monotonic clock (an arbitrary origin). */
uint64_t util_mono_ms(void);

/* A monotonic timestamp to measure a duration from. */
void util_mono_now(struct timespec *t);

/* Seconds since `t0` (a util_mono_now() timestamp). */
double util_elapsed_s(const struct timespec *t0);

#endif
