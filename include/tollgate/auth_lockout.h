/* auth_lockout.h — auth-failure lockout (docs/operator-guide.md §8), in memory.
 *
 * After `max_failures` failed authentications within `window_ms` from one key
 * (the client ip), the key is locked for a backoff that starts at
 * `base_backoff_ms` and doubles with every further lockout (capped at
 * `max_backoff_ms`).  While locked, attempts are refused without looking at
 * their credentials.  A success may clear a key (auth_lockout_success;
 * tollgate does not call it for ip keys, so one valid key cannot keep
 * resetting the count while others are guessed).  The store is shared by all
 * worker threads (striped locks), bounded in size, and forgets idle keys.
 * The Redis variant (lua/lockout.lua) keeps the same rules.
 */
#ifndef TOLLGATE_AUTH_LOCKOUT_H
#define TOLLGATE_AUTH_LOCKOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct auth_lockout auth_lockout_t;

typedef struct auth_lockout_policy {
    unsigned max_failures;    /* 0 disables lockout */
    uint64_t window_ms;       /* failures older than this are forgotten */
    uint64_t base_backoff_ms; /* first lockout */
    uint64_t max_backoff_ms;  /* cap of the doubling */
} auth_lockout_policy_t;

/* At most `max_keys` keys (the least recently touched go first). */
auth_lockout_t *auth_lockout_new(size_t max_keys);
void auth_lockout_free(auth_lockout_t *l);

/* 0 when `key` may try now, else milliseconds until it may. */
uint64_t auth_lockout_check(auth_lockout_t *l, const char *key, int64_t now_ms);

/* Count a failure of `key`; returns the lockout it starts (ms), or 0. */
uint64_t auth_lockout_fail(auth_lockout_t *l, const char *key,
                           const auth_lockout_policy_t *p, int64_t now_ms);

/* Lock `key` until `until_ms` (a lockout decided elsewhere: another replica,
 * through Redis); a later lock already held is kept. */
void auth_lockout_lock(auth_lockout_t *l, const char *key, int64_t until_ms,
                       int64_t now_ms);

/* A success: forget `key`'s failures and backoff level. */
void auth_lockout_success(auth_lockout_t *l, const char *key);

size_t auth_lockout_count(auth_lockout_t *l);

/* Lift `key` (the admin API): forget its failures, backoff level and lock.
 * true when an entry was held. */
bool auth_lockout_unlock(auth_lockout_t *l, const char *key);

/* One locked key, as auth_lockout_locked() reports it. */
#define AUTH_LOCKOUT_KEY_MAX 128
typedef struct auth_lockout_info {
    char key[AUTH_LOCKOUT_KEY_MAX + 1];
    unsigned failures; /* in the current window */
    unsigned level;    /* lockouts so far */
    int64_t until_ms;  /* locked until */
} auth_lockout_info_t;

/* Up to `max` keys locked at `now_ms` into `out`, in no order; how many. */
size_t auth_lockout_locked(auth_lockout_t *l, int64_t now_ms, auth_lockout_info_t *out,
                           size_t max);

#endif
