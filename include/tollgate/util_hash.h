/* util_hash.h — hashing (FNV-1a and a mixer for in-process tables, SHA-256
 * where an outsider must not be able to make two inputs meet) and the
 * chained hash table under the striped in-process tables (auth/lockout.c,
 * limiter/rl_memory.c).
 *
 * The table is intrusive: an entry embeds a util_hnode_t and the owner
 * allocates, compares keys and frees; the table only chains nodes by hash and
 * doubles its slot array (up to a cap) as it fills.  Not thread-safe: the
 * owner holds its own lock.
 */
#ifndef TOLLGATE_UTIL_HASH_H
#define TOLLGATE_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define UTIL_FNV_SEED 14695981039346656037ull

/* FNV-1a of `n` bytes of `s` continued from `h` (UTIL_FNV_SEED to start). */
uint64_t util_fnv1a(uint64_t h, const char *s, size_t n);

/* Finalizer of MurmurHash3: every input bit reaches every output bit. */
uint64_t util_mix64(uint64_t h);

/* util_mix64(util_fnv1a(UTIL_FNV_SEED, s, n)). */
uint64_t util_hash_bytes(const char *s, size_t n);

#define UTIL_SHA256_LEN 32 /* bytes of a SHA-256 digest */

/* SHA-256 of `n` bytes of `data` into `out`; -1 only when OpenSSL fails
 * (out of memory).  Thread-safe. */
int util_sha256(const void *data, size_t n, unsigned char out[UTIL_SHA256_LEN]);

/* `n` bytes from the kernel's CSPRNG (getrandom(2), retried on EINTR and
 * short reads) into `buf`; -1 when it gives none (then `buf` may hold some). */
int util_random(void *buf, size_t n);

/* The least power of two >= n, but at most `max` (itself a power of two). */
size_t util_pow2_at_least(size_t n, size_t max);

/* The greatest power of two <= n, but at most `max`; 1 when n is 0. */
size_t util_pow2_at_most(size_t n, size_t max);

typedef struct util_hnode {
    struct util_hnode *next; /* chain */
    uint64_t hash;
} util_hnode_t;

/* The entry of type `type` whose member `member` is the node `n` (or NULL). */
#define UTIL_HNODE_ENTRY(n, type, member)                                                  \
    ((n) != NULL ? (type *)(void *)((char *)(n)-offsetof(type, member)) : (type *)NULL)

typedef struct util_htab {
    util_hnode_t **slots;
    size_t nslots, max_slots; /* powers of two */
    size_t count;             /* nodes chained */
} util_htab_t;

/* An empty table of min(min_slots, max_slots) slots that grows up to
 * `max_slots` (powers of two); -1 when out of memory. */
int util_htab_init(util_htab_t *t, size_t min_slots, size_t max_slots);

/* Frees the slot array, not the nodes (the owner's). */
void util_htab_destroy(util_htab_t *t);

/* The first node of the chain `hash` falls in; follow ->next, compare ->hash
 * and the key. */
util_hnode_t *util_htab_chain(const util_htab_t *t, uint64_t hash);

/* Chains `n` (n->hash set); grows the slot array first when it is full. */
void util_htab_add(util_htab_t *t, util_hnode_t *n);

/* Unchains `n`, which the table holds. */
void util_htab_del(util_htab_t *t, util_hnode_t *n);

#endif
