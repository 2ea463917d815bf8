/* tokcache.c — see tokcache_internal.h. */
#include "tokcache_internal.h"

#include <stdlib.h>
#include <string.h>

#include "tollgate/util_hash.h"
#include "tollgate/util_lru.h"

typedef struct entry {
    util_hnode_t hnode;
    util_lru_node_t lru;
    unsigned char digest[TOKCACHE_DIGEST];
    uint64_t epoch, gen;
    const void *tag;
    int64_t until;
    size_t bytes;
    auth_identity_t id;
} entry_t;

struct tokcache {
    util_htab_t tab;
    util_lru_t lru;
    size_t max_entries, max_bytes, bytes;
};

tokcache_t *tokcache_new(size_t max_entries, size_t max_bytes)
{
    tokcache_t *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->max_entries = max_entries;
    c->max_bytes = max_bytes;
    if (util_htab_init(
            &c->tab, 64,
            util_pow2_at_least(max_entries > 0 ? max_entries : 1, (size_t)1 << 24)) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

static uint64_t digest_hash(const unsigned char *d)
{
    uint64_t h;

    memcpy(&h, d, sizeof h); /* already uniform: SHA-256 */
    return h;
}

static void drop(tokcache_t *c, entry_t *e)
{
    util_htab_del(&c->tab, &e->hnode);
    util_lru_unlink(&c->lru, &e->lru);
    c->bytes -= e->bytes;
    auth_identity_clear(&e->id);
    free(e);
}

void tokcache_free(tokcache_t *c)
{
    if (c == NULL)
        return;
    while (c->lru.tail != NULL)
        drop(c, UTIL_LRU_ENTRY(c->lru.tail, entry_t, lru));
    util_htab_destroy(&c->tab);
    free(c);
}

static entry_t *find(const tokcache_t *c, const unsigned char *digest)
{
    uint64_t h = digest_hash(digest);

    for (util_hnode_t *n = util_htab_chain(&c->tab, h); n != NULL; n = n->next) {
        entry_t *e = UTIL_HNODE_ENTRY(n, entry_t, hnode);

        if (n->hash == h && memcmp(e->digest, digest, TOKCACHE_DIGEST) == 0)
            return e;
    }
    return NULL;
}

const auth_identity_t *tokcache_get(tokcache_t *c, const unsigned char *digest,
                                    uint64_t epoch, int64_t now, const void **tag_out,
                                    uint64_t *gen_out)
{
    entry_t *e = c != NULL ? find(c, digest) : NULL;

    if (e == NULL)
        return NULL;
    if (e->epoch != epoch || now >= e->until) {
        drop(c, e);
        return NULL;
    }
    util_lru_touch(&c->lru, &e->lru);
    *tag_out = e->tag;
    *gen_out = e->gen;
    return &e->id;
}

void tokcache_del(tokcache_t *c, const unsigned char *digest)
{
    entry_t *e = c != NULL ? find(c, digest) : NULL;

    if (e != NULL)
        drop(c, e);
}

void tokcache_put(tokcache_t *c, const unsigned char *digest, uint64_t epoch,
                  const void *tag, uint64_t gen, int64_t until, const auth_identity_t *id,
                  size_t bytes)
{
    entry_t *e;

    if (c == NULL || c->max_entries == 0)
        return;
    bytes += sizeof(entry_t);
    if (bytes > c->max_bytes)
        return;
    tokcache_del(c, digest);
    while (c->lru.tail != NULL &&
           (c->tab.count >= c->max_entries || c->bytes + bytes > c->max_bytes))
        drop(c, UTIL_LRU_ENTRY(c->lru.tail, entry_t, lru));
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return;
    if (auth_identity_copy(&e->id, id) != 0) {
        free(e);
        return;
    }
    memcpy(e->digest, digest, TOKCACHE_DIGEST);
    e->hnode.hash = digest_hash(digest);
    e->epoch = epoch;
    e->tag = tag;
    e->gen = gen;
    e->until = until;
    e->bytes = bytes;
    util_htab_add(&c->tab, &e->hnode);
    util_lru_push(&c->lru, &e->lru);
    c->bytes += bytes;
}

size_t tokcache_count(const tokcache_t *c)
{
    return c != NULL ? c->tab.count : 0;
}
