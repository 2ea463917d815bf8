/* lease.c — see lease_internal.h. */
#include "lease_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/util_hash.h"
#include "tollgate/util_lru.h"

typedef struct entry {
    util_hnode_t hnode;
    util_lru_node_t lru;
    uint64_t expires_ms; /* monotonic */
    uint64_t granted_ms;
    uint32_t tokens;   /* left in the lease */
    uint32_t demand;   /* tokens asked for since the last lease */
    uint32_t cap_next; /* after a refused lease: the next one at most; 0 = none */
    size_t n;
    rl_verdict_t *v; /* the reply of the lease call, per bucket */
    size_t keylen;
    char key[];
} entry_t;

struct lease_tab {
    util_htab_t tab;
    util_lru_t lru;
    size_t max;
};

lease_tab_t *lease_new(size_t max_entries)
{
    lease_tab_t *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->max = max_entries;
    if (util_htab_init(
            &t->tab, 16,
            util_pow2_at_least(max_entries ? max_entries : 1, (size_t)1 << 20)) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

static void drop(lease_tab_t *t, entry_t *e)
{
    util_htab_del(&t->tab, &e->hnode);
    util_lru_unlink(&t->lru, &e->lru);
    free(e->v);
    free(e);
}

void lease_free(lease_tab_t *t)
{
    if (t == NULL)
        return;
    while (t->lru.tail != NULL)
        drop(t, UTIL_LRU_ENTRY(t->lru.tail, entry_t, lru));
    util_htab_destroy(&t->tab);
    free(t);
}

bool lease_applies(const rl_group_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->limits[i]->consistency != RL_CONSISTENCY_LEASED ||
            g->limits[i]->mode != RL_MODE_ENFORCE)
            return false;
    return g->n > 0 && g->cost > 0;
}

int lease_key(const rl_group_t *g, char *out, size_t outlen)
{
    size_t used;
    int n = snprintf(out, outlen, "%s", g->identity);

    if (n < 0 || (size_t)n >= outlen)
        return -1;
    used = (size_t)n;
    for (size_t i = 0; i < g->n; i++) {
        n = snprintf(out + used, outlen - used, "|%s:%u:%u:%u", g->limits[i]->name,
                     g->rates[i].n, g->rates[i].period_ms, g->rates[i].burst);
        if (n < 0 || (size_t)n >= outlen - used)
            return -1;
        used += (size_t)n;
    }
    return (int)used;
}

static entry_t *find(const lease_tab_t *t, const char *key, size_t keylen)
{
    uint64_t h = util_hash_bytes(key, keylen);

    for (util_hnode_t *n = util_htab_chain(&t->tab, h); n != NULL; n = n->next) {
        entry_t *e = UTIL_HNODE_ENTRY(n, entry_t, hnode);

        if (n->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
            return e;
    }
    return NULL;
}

/* The group's smallest lease_max and lease_ttl_ms. */
static void limits_of(const rl_group_t *g, uint32_t *max, uint32_t *ttl)
{
    *max = UINT32_MAX;
    *ttl = UINT32_MAX;
    for (size_t i = 0; i < g->n; i++) {
        if (g->limits[i]->lease_max < *max)
            *max = g->limits[i]->lease_max;
        if (g->limits[i]->lease_ttl_ms < *ttl)
            *ttl = g->limits[i]->lease_ttl_ms;
    }
}

bool lease_take(lease_tab_t *t, const char *key, size_t keylen, rl_group_t *g,
                uint64_t now_ms)
{
    entry_t *e = find(t, key, keylen);

    if (e == NULL)
        return false;
    if (!g->dry_run)
        e->demand += g->cost;
    if (now_ms >= e->expires_ms || e->tokens < g->cost || e->n != g->n)
        return false;
    if (!g->dry_run)
        e->tokens -= g->cost;
    for (size_t i = 0; i < g->n; i++) {
        rl_limit_result_t *res = &g->results[i];
        uint64_t gone = now_ms - e->granted_ms;

        res->v = e->v[i];
        res->v.allowed = true;
        res->v.retry_after_ms = 0;
        res->v.reset_ms = e->v[i].reset_ms > gone ? e->v[i].reset_ms - gone : 0;
        res->fallback = false;
        res->failed = false;
    }
    return true;
}

uint32_t lease_want(lease_tab_t *t, const char *key, size_t keylen, const rl_group_t *g)
{
    const entry_t *e = find(t, key, keylen);
    uint32_t max, ttl;
    uint64_t want;

    limits_of(g, &max, &ttl);
    if (e == NULL)
        return g->cost; /* no demand seen yet: exact */
    want = 2 * (uint64_t)e->demand;
    if (e->cap_next != 0 && want > e->cap_next)
        want = e->cap_next;
    if (want > max)
        want = max;
    if (want < g->cost)
        want = g->cost;
    return (uint32_t)want;
}

void lease_refused(lease_tab_t *t, const char *key, size_t keylen, uint32_t want)
{
    entry_t *e = find(t, key, keylen);

    if (e != NULL) {
        e->cap_next = want / 2 > 0 ? want / 2 : 1;
        e->tokens = 0;
    }
}

void lease_granted(lease_tab_t *t, const char *key, size_t keylen, const rl_group_t *g,
                   uint32_t got, uint32_t cost, uint64_t sent_ms)
{
    entry_t *e = find(t, key, keylen);
    uint32_t max, ttl;

    limits_of(g, &max, &ttl);
    if (e == NULL) {
        while (t->tab.count >= t->max && t->lru.tail != NULL)
            drop(t, UTIL_LRU_ENTRY(t->lru.tail, entry_t, lru));
        e = calloc(1, sizeof(*e) + keylen + 1);
        if (e == NULL)
            return;
        memcpy(e->key, key, keylen);
        e->keylen = keylen;
        e->hnode.hash = util_hash_bytes(key, keylen);
        util_htab_add(&t->tab, &e->hnode);
        util_lru_push(&t->lru, &e->lru);
    } else {
        util_lru_touch(&t->lru, &e->lru);
    }
    if (e->n != g->n) {
        free(e->v);
        e->v = calloc(g->n, sizeof(*e->v));
        e->n = e->v != NULL ? g->n : 0;
    }
    for (size_t i = 0; i < e->n; i++)
        e->v[i] = g->results[i].v;
    e->tokens = got > cost ? got - cost : 0;
    e->demand = 0;
    e->cap_next = 0;
    e->granted_ms = sent_ms;
    e->expires_ms = sent_ms + ttl; /* from the send: never outlives the ttl */
}
