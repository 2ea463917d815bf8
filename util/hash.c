/* hash.c — hashing and the chained hash table; see util_hash.h. */
#include "tollgate/util_hash.h"

#include <errno.h>
#include <pthread.h>
#include <sys/random.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

uint64_t util_fnv1a(uint64_t h, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t util_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

uint64_t util_hash_bytes(const char *s, size_t n)
{
    return util_mix64(util_fnv1a(UTIL_FNV_SEED, s, n));
}

/* OpenSSL 3's one-shot SHA256() looks the algorithm up on every call
 * (EVP_Q_digest); fetching it once makes a digest several times cheaper. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int util_sha256(const void *data, size_t n, unsigned char out[UTIL_SHA256_LEN])
{
    pthread_once(&sha256_once, sha256_fetch);
    if (sha256_md != NULL && EVP_Digest(data, n, out, NULL, sha256_md, NULL) == 1)
        return 0;
    return SHA256(data, n, out) != NULL ? 0 : -1;
}

int util_random(void *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom((unsigned char *)buf + got, n - got, 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

size_t util_pow2_at_least(size_t n, size_t max)
{
    size_t p = 1;

    while (p < n && p < max)
        p <<= 1;
    return p;
}

size_t util_pow2_at_most(size_t n, size_t max)
{
    size_t p = 1;

    while (p * 2 <= max && p * 2 <= n)
        p *= 2;
    return p;
}

/* The slot of `hash`: its high half first, so that an owner may pick a
 * stripe from the low bits of the same hash and still fill every slot. */
static size_t slot_of(size_t nslots, uint64_t hash)
{
    return (size_t)(hash >> 32 | hash << 32) & (nslots - 1);
}

int util_htab_init(util_htab_t *t, size_t min_slots, size_t max_slots)
{
    t->max_slots = max_slots;
    t->nslots = max_slots < min_slots ? max_slots : min_slots;
    t->count = 0;
    t->slots = calloc(t->nslots, sizeof(*t->slots));
    return t->slots != NULL ? 0 : -1;
}

void util_htab_destroy(util_htab_t *t)
{
    free(t->slots);
    t->slots = NULL;
    t->nslots = t->count = 0;
}

util_hnode_t *util_htab_chain(const util_htab_t *t, uint64_t hash)
{
    return t->slots[slot_of(t->nslots, hash)];
}

/* Double the slot array (up to max_slots); on failure keep the old one. */
static void grow(util_htab_t *t)
{
    size_t i, n = t->nslots * 2;
    util_hnode_t **slots, *e, *next;

    if (n > t->max_slots || (slots = calloc(n, sizeof(*slots))) == NULL)
        return;
    for (i = 0; i < t->nslots; i++)
        for (e = t->slots[i]; e != NULL; e = next) {
            next = e->next;
            e->next = slots[slot_of(n, e->hash)];
            slots[slot_of(n, e->hash)] = e;
        }
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
}

void util_htab_add(util_htab_t *t, util_hnode_t *n)
{
    util_hnode_t **slot;

    if (t->count >= t->nslots)
        grow(t);
    slot = &t->slots[slot_of(t->nslots, n->hash)];
    n->next = *slot;
    *slot = n;
    t->count++;
}

void util_htab_del(util_htab_t *t, util_hnode_t *n)
{
    util_hnode_t **pp = &t->slots[slot_of(t->nslots, n->hash)];

    while (*pp != n)
        pp = &(*pp)->next;
    *pp = n->next;
    t->count--;
}
