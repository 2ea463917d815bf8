/* olcache.c — see olcache_internal.h. */
#include "olcache_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/util_hash.h"
#include "tollgate/util_lru.h"

typedef struct entry {
    util_hnode_t hnode;
    util_lru_node_t lru;
    uint64_t until_ms;  /* monotonic: denied until then */
    uint64_t stored_ms; /* monotonic: when the verdicts were true */
    size_t n;
    rl_verdict_t *v; /* n verdicts */
    size_t keylen;
    char key[]; /* keylen bytes + NUL */
} entry_t;

struct olcache {
    util_htab_t tab;
    util_lru_t lru;
    size_t max;
};

olcache_t *olcache_new(size_t max_entries)
{
    olcache_t *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->max = max_entries;
    if (util_htab_init(
            &c->tab, 64,
            util_pow2_at_least(max_entries ? max_entries : 1, (size_t)1 << 22)) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void drop(olcache_t *c, entry_t *e)
{
    util_htab_del(&c->tab, &e->hnode);
    util_lru_unlink(&c->lru, &e->lru);
    free(e->v);
    free(e);
}

void olcache_free(olcache_t *c)
{
    if (c == NULL)
        return;
    while (c->lru.tail != NULL)
        drop(c, UTIL_LRU_ENTRY(c->lru.tail, entry_t, lru));
    util_htab_destroy(&c->tab);
    free(c);
}

int olcache_key(const rl_group_t *g, char *out, size_t outlen)
{
    size_t used;
    int n = snprintf(out, outlen, "%u|%s", g->cost, g->identity);

    if (n < 0 || (size_t)n >= outlen)
        return -1;
    used = (size_t)n;
    for (size_t i = 0; i < g->n; i++) {
        n = snprintf(out + used, outlen - used, "|%s:%u:%u:%u:%d", g->limits[i]->name,
                     g->rates[i].n, g->rates[i].period_ms, g->rates[i].burst,
                     g->limits[i]->mode == RL_MODE_SHADOW);
        if (n < 0 || (size_t)n >= outlen - used)
            return -1;
        used += (size_t)n;
    }
    return (int)used;
}

static entry_t *find(const olcache_t *c, const char *key, size_t keylen, uint64_t h)
{
    for (util_hnode_t *n = util_htab_chain(&c->tab, h); n != NULL; n = n->next) {
        entry_t *e = UTIL_HNODE_ENTRY(n, entry_t, hnode);

        if (n->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
            return e;
    }
    return NULL;
}

static uint64_t minus(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

bool olcache_answer(olcache_t *c, const char *key, size_t keylen, rl_group_t *g,
                    uint64_t now_ms)
{
    entry_t *e;
    uint64_t elapsed;

    if (c == NULL || c->max == 0)
        return false;
    e = find(c, key, keylen, util_hash_bytes(key, keylen));
    if (e == NULL)
        return false;
    if (now_ms >= e->until_ms || e->n != g->n) {
        if (!g->dry_run) /* a dry run leaves even a stale entry alone */
            drop(c, e);
        return false;
    }
    elapsed = now_ms - e->stored_ms;
    for (size_t i = 0; i < g->n; i++) {
        rl_limit_result_t *res = &g->results[i];

        res->v = e->v[i];
        res->v.reset_ms = minus(e->v[i].reset_ms, elapsed);
        if (!e->v[i].allowed)
            res->v.retry_after_ms = minus(e->v[i].retry_after_ms, elapsed);
        res->fallback = false;
        res->failed = false;
    }
    return true;
}

/* The earliest time a denying enforce bucket of `g` could fit; 0 when the
 * call was allowed (every enforce bucket fits). */
static uint64_t denied_for(const rl_group_t *g)
{
    uint64_t best = 0;

    for (size_t i = 0; i < g->n; i++) {
        const rl_verdict_t *v = &g->results[i].v;

        if (g->limits[i]->mode == RL_MODE_SHADOW || v->allowed)
            continue;
        if (best == 0 || v->retry_after_ms < best)
            best = v->retry_after_ms;
    }
    return best;
}

void olcache_store(olcache_t *c, const char *key, size_t keylen, const rl_group_t *g,
                   uint64_t sent_ms)
{
    uint64_t h = util_hash_bytes(key, keylen), wait = denied_for(g);
    entry_t *e;

    if (c == NULL || c->max == 0 || wait == 0 || g->dry_run)
        return;
    e = find(c, key, keylen, h);
    if (e != NULL)
        drop(c, e);
    while (c->tab.count >= c->max && c->lru.tail != NULL)
        drop(c, UTIL_LRU_ENTRY(c->lru.tail, entry_t, lru));
    e = calloc(1, sizeof(*e) + keylen + 1);
    if (e == NULL)
        return;
    e->v = calloc(g->n, sizeof(*e->v));
    if (e->v == NULL) {
        free(e);
        return;
    }
    for (size_t i = 0; i < g->n; i++)
        e->v[i] = g->results[i].v;
    e->n = g->n;
    e->stored_ms = sent_ms;
    e->until_ms = sent_ms + wait;
    e->keylen = keylen;
    memcpy(e->key, key, keylen);
    e->hnode.hash = h;
    util_htab_add(&c->tab, &e->hnode);
    util_lru_push(&c->lru, &e->lru);
}

size_t olcache_count(const olcache_t *c)
{
    return c != NULL ? c->tab.count : 0;
}
