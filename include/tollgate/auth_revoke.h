/* auth_revoke.h — the local set of revoked JWTs (docs/redis.md).
 *
 * Two kinds of entry: one token by `jti` (until its `exp`), and every token
 * of a subject issued before a time (`sub`, `before`: tokens with iat <
 * before are refused).  A subject revocation is either scoped to one issuer
 * (`iss`: only that issuer's tokens of `sub`) or applies to every issuer
 * (iss NULL: the single-issuer form, where HS subject "erin" and an IdP's
 * subject "erin" are the same entry).  A subject revocation expires at
 * before + the max token lifetime (auth_revoke_set_lifetime; 0: never): by
 * then every token it could match has expired, if no token lives longer.
 * With Redis this set is the replica's cache, fed by the `tg:revocations`
 * channel; with `redis.mode: none` it is the store.
 * Thread-safe (a rwlock: many readers on the request path, rare writers);
 * expired entries are dropped lazily (on writes); bounded in size.
 */
#ifndef TOLLGATE_AUTH_REVOKE_H
#define TOLLGATE_AUTH_REVOKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_REVOKE_MAX_ID 256 /* bytes of a jti, sub or iss */
/* The latest exp / before held: 9999-12-31T23:59:59Z (later ones are
 * refused: no sum of times can overflow). */
#define AUTH_REVOKE_MAX_TIME 253402300799LL

typedef struct auth_revoke auth_revoke_t;

typedef enum { AUTH_REVOKE_JTI, AUTH_REVOKE_SUBJECT } auth_revoke_kind_t;

/* One entry, as listed (and a listing's cursor). */
typedef struct auth_revoke_item {
    int64_t t;                        /* jti: exp; subject: before (unix s) */
    bool scoped;                      /* subject of one issuer (iss), else every issuer */
    char iss[AUTH_REVOKE_MAX_ID + 1]; /* "" unless scoped */
    char id[AUTH_REVOKE_MAX_ID + 1];  /* the jti or sub */
} auth_revoke_item_t;

/* At most `max_entries` entries; adding past it evicts the entry that expires first. */
auth_revoke_t *auth_revoke_new(size_t max_entries);
void auth_revoke_free(auth_revoke_t *r);

/* Subject revocations expire at before + `seconds` (0: never, the default). */
void auth_revoke_set_lifetime(auth_revoke_t *r, int64_t seconds);
int64_t auth_revoke_lifetime(auth_revoke_t *r);

/* Revoke token `jti` until unix time `exp` (seconds).  0, or -1 when `jti`
 * is empty/too long or `exp` is not in the future relative to `now` or is
 * past AUTH_REVOKE_MAX_TIME. */
int auth_revoke_jti(auth_revoke_t *r, const char *jti, int64_t exp, int64_t now);

/* Revoke every token of `sub` (of issuer `iss`; NULL: of every issuer)
 * whose iat < `before` (unix seconds); a later call with a larger `before`
 * replaces it, a smaller one is ignored.  0 / -1 (bad iss/sub/before, or
 * already expired at `now`). */
int auth_revoke_subject(auth_revoke_t *r, const char *iss, const char *sub, int64_t before,
                        int64_t now);

/* Is a token with these claims revoked at `now`?  jti/iss/sub may be NULL;
 * a token without iss matches only subject revocations of every issuer. */
bool auth_revoke_check(auth_revoke_t *r, const char *jti, const char *iss, const char *sub,
                       int64_t iat, int64_t now);

/* The revocation of `jti`: true and its exp, or false. */
bool auth_revoke_get(auth_revoke_t *r, const char *jti, int64_t now, int64_t *exp);

/* The revocation of `sub` of `iss` exactly (NULL: the every-issuer entry),
 * not expired at `now`: true and its before, or false. */
bool auth_revoke_subject_get(auth_revoke_t *r, const char *iss, const char *sub,
                             int64_t now, int64_t *before);

/* Undo: forget the entry.  True when there was one. */
bool auth_revoke_unjti(auth_revoke_t *r, const char *jti);
bool auth_revoke_unsubject(auth_revoke_t *r, const char *iss, const char *sub);

/* One page of the live entries of `kind` at `now`, in order of (t, iss, id),
 * those after `after` (NULL: from the first): at most `max` copied into
 * `out`; returns how many.  A snapshot under the lock: an entry added or
 * removed between pages is listed or not, nothing is listed twice. */
size_t auth_revoke_list(auth_revoke_t *r, auth_revoke_kind_t kind,
                        const auth_revoke_item_t *after, auth_revoke_item_t *out,
                        size_t max, int64_t now);

/* An authoritative reload: every entry written after sync_begin() is kept;
 * sync_end(gen) forgets the entries not written since (they left the
 * source of truth: an undo this replica missed). */
uint64_t auth_revoke_sync_begin(auth_revoke_t *r);
void auth_revoke_sync_end(auth_revoke_t *r, uint64_t gen);

/* Entries held (jtis + subjects), for the tollgate_revocations_cached gauge. */
size_t auth_revoke_count(auth_revoke_t *r);

#endif
