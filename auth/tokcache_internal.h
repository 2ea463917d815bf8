/* tokcache_internal.h — the verified-token cache of one thread (jwt.c).
 *
 * Keyed by the SHA-256 of the whole token (all 32 bytes compared: a token
 * crafted to collide with a cached one would need a SHA-256 collision), an
 * entry holds the identity decoded from it, valid while the verifier that
 * made it is the current one (`epoch`), the key set it was checked with is
 * the same generation (`gen`), and until the token's exp (+ leeway).
 * Bounded by entries and by (estimated) bytes; least recently used first
 * out.  Owned by one thread: no locks.
 */
#ifndef TOLLGATE_AUTH_TOKCACHE_INTERNAL_H
#define TOLLGATE_AUTH_TOKCACHE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth.h"

#define TOKCACHE_DIGEST 32

typedef struct tokcache tokcache_t;

/* max_entries 0: a cache that never holds anything. */
tokcache_t *tokcache_new(size_t max_entries, size_t max_bytes);
void tokcache_free(tokcache_t *c);

/* The cached identity of `digest` when its epoch and tag are these and it
 * is still valid at `now` (unix s); a stale entry is dropped.  The pointer
 * lives until the next put or free.  `*tag_out` is the entry's tag (the
 * caller checks a remote set's generation). */
const auth_identity_t *tokcache_get(tokcache_t *c, const unsigned char *digest,
                                    uint64_t epoch, int64_t now, const void **tag_out,
                                    uint64_t *gen_out);

/* Cache a copy of `id` (deep), valid before `until` (unix s).  `tag` and
 * `gen` are the caller's (the provider and its set generation); `bytes`
 * estimates its size.  Silently skipped when out of memory or too big. */
void tokcache_put(tokcache_t *c, const unsigned char *digest, uint64_t epoch,
                  const void *tag, uint64_t gen, int64_t until, const auth_identity_t *id,
                  size_t bytes);

/* Drop the entry of `digest`, if any. */
void tokcache_del(tokcache_t *c, const unsigned char *digest);

size_t tokcache_count(const tokcache_t *c);

#endif
