/* auth_revoke.h — the local set of revoked JWTs (docs/redis.md).
 *
 * Two kinds of entry: one token by `jti` (until its `exp`), and every token
 * of a subject issued before a time (`sub`, `before`: tokens with iat <
 * before are refused).  With Redis this set is the replica's cache, fed by
 * the `tg:revocations` channel; with `redis.mode: none` it is the store.
 * Thread-safe (a rwlock: many readers on the request path, rare writers);
 * expired jti entries are dropped lazily; bounded in size.
 */
#ifndef TOLLGATE_AUTH_REVOKE_H
#define TOLLGATE_AUTH_REVOKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_REVOKE_MAX_ID 256 /* bytes of a jti or sub */

typedef struct auth_revoke auth_revoke_t;

/* At most `max_entries` entries; adding past it evicts the entry that expires first. */
auth_revoke_t *auth_revoke_new(size_t max_entries);
void auth_revoke_free(auth_revoke_t *r);

/* Revoke token `jti` until unix time `exp` (seconds).  0, or -1 when `jti`
 * is empty/too long or `exp` is not in the future relative to `now`. */
int auth_revoke_jti(auth_revoke_t *r, const char *jti, int64_t exp, int64_t now);

/* Revoke every token of `sub` whose iat < `before` (unix seconds); a later
 * call with a larger `before` replaces it, a smaller one is ignored. 0 / -1. */
int auth_revoke_subject(auth_revoke_t *r, const char *sub, int64_t before);

/* Is a token with these claims revoked at `now`?  jti/sub may be NULL. */
bool auth_revoke_check(auth_revoke_t *r, const char *jti, const char *sub, int64_t iat,
                       int64_t now);

/* The revocation of `jti`: true and its exp, or false. */
bool auth_revoke_get(auth_revoke_t *r, const char *jti, int64_t now, int64_t *exp);

/* Entries held (jti + subjects), for the tollgate_revocations_cached gauge. */
size_t auth_revoke_count(auth_revoke_t *r);

#endif
