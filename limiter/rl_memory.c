/* rl_memory.c — in-process token buckets shared by all worker threads; see
 * rl_memory.h.
 *
 * The table is split into stripes (up to 64), each with its own mutex, hash
 * chains, LRU list and share of `max_buckets`.  A bucket's stripe is chosen
 * by hashing the *identity only*, so every limit of a group (one identity)
 * lives in one stripe and rl_memory_decide() takes exactly one lock.  The
 * ops table decides all groups of a request at once: it takes their stripes
 * in ascending index order (no deadlock) and charges nothing anywhere when
 * any enforced limit denies, so a rejected request consumes nothing even
 * across identities (the Redis backend, one script per group, cannot).
 *
 * Expiry is lazy, like nginx's limit_req: every decision first forgets up to
 * two buckets at the cold end of its stripe's LRU list that are full again
 * (idle past rl_bucket_full_after_ms; a full bucket is the same as no
 * bucket).  When a stripe is at its share of max_buckets, an insert evicts a
 * full bucket among the coldest few, else the coldest one.
 */
#include "tollgate/util_clock.h"
#include "tollgate/rl_memory.h"
#include "tollgate/util_hash.h"
#include "tollgate/util_lru.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#define MEM_STRIPES_MAX 64
#define MEM_SLOTS_MIN 64
#define MEM_SLOTS_MAX ((size_t)1 << (sizeof(size_t) * 8 - 2)) /* per stripe */
#define MEM_EXPIRE_STEP 2  /* full buckets forgotten per decision */
#define MEM_EVICT_SCAN 8   /* cold buckets looked at for a full one */
#define MEM_GROUP_STACK 16 /* limits per group without a heap scratch array */

typedef struct mem_entry {
    util_hnode_t hn;     /* hash chain, by key_hash() */
    util_lru_node_t lru; /* head is the most recently charged */
    int64_t full_at_ms;  /* bucket full again from then on: may be forgotten */
    rl_bucket_t b;
    uint16_t name_len, id_len; /* a bucket is ~100 bytes: every field counts */
    char key[];                /* limit name, '\0', identity, '\0' */
} mem_entry_t;

typedef struct mem_stripe {
    _Alignas(64) pthread_mutex_t lock;
    util_htab_t index; /* index.count: buckets held */
    util_lru_t lru;
    size_t cap; /* buckets held at most */
} mem_stripe_t;

struct rl_memory {
    mem_stripe_t *stripes;
    size_t nstripes; /* power of two */
    _Atomic unsigned delay_ms;
};

/* Async answer of rl_memory_ops.check: one allocation holding the event. */
typedef struct mem_token {
    rl_backend_done_fn done;
    void *privdata;
    max_align_t ev[]; /* struct event, event_get_struct_event_size() bytes */
} mem_token_t;

/* Index of the stripe of every bucket of `identity`. */
static size_t stripe_of(rl_memory_t *m, const char *identity, size_t id_len)
{
    return util_hash_bytes(identity, id_len) & (m->nstripes - 1);
}

static uint64_t key_hash(const char *name, size_t nlen, const char *id, size_t idlen)
{
    uint64_t h = util_fnv1a(UTIL_FNV_SEED, name, nlen + 1); /* with the '\0' separator */

    return util_mix64(util_fnv1a(h, id, idlen));
}

/* An empty stripe holding at most `cap` buckets; -1 when out of memory. */
static int stripe_init(mem_stripe_t *s, size_t cap)
{
    s->cap = cap;
    if (util_htab_init(&s->index, MEM_SLOTS_MIN, util_pow2_at_least(cap, MEM_SLOTS_MAX)) !=
        0)
        return -1;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        util_htab_destroy(&s->index);
        return -1;
    }
    return 0;
}

rl_memory_t *rl_memory_new(size_t max_buckets)
{
    rl_memory_t *m;
    size_t i = 0, ns;

    if (max_buckets == 0)
        max_buckets = 1;
    ns = util_pow2_at_most(max_buckets, MEM_STRIPES_MAX);
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    atomic_init(&m->delay_ms, 0);
    m->stripes = aligned_alloc(64, ns * sizeof(mem_stripe_t));
    if (m->stripes == NULL)
        goto out_free_memory;
    memset(m->stripes, 0, ns * sizeof(mem_stripe_t));
    for (i = 0; i < ns; i++)
        if (stripe_init(&m->stripes[i], max_buckets / ns) != 0)
            goto out_free_memory;
    m->nstripes = ns;
    return m;

out_free_memory:
    m->nstripes = i; /* the stripes initialised so far */
    rl_memory_free(m);
    return NULL;
}

void rl_memory_free(rl_memory_t *m)
{
    size_t i;
    util_lru_node_t *n, *next;

    if (m == NULL)
        return;
    for (i = 0; i < m->nstripes; i++) {
        for (n = m->stripes[i].lru.head; n != NULL; n = next) {
            next = n->next;
            free(UTIL_LRU_ENTRY(n, mem_entry_t, lru));
        }
        util_htab_destroy(&m->stripes[i].index);
        pthread_mutex_destroy(&m->stripes[i].lock);
    }
    free(m->stripes);
    free(m);
}

void rl_memory_set_delay_ms(rl_memory_t *m, unsigned ms)
{
    atomic_store_explicit(&m->delay_ms, ms, memory_order_relaxed);
}

size_t rl_memory_count(rl_memory_t *m)
{
    size_t i, n = 0;

    for (i = 0; i < m->nstripes; i++) {
        pthread_mutex_lock(&m->stripes[i].lock);
        n += m->stripes[i].index.count;
        pthread_mutex_unlock(&m->stripes[i].lock);
    }
    return n;
}

/* --- one stripe; the caller holds its lock ------------------------------ */

static mem_entry_t *lookup(mem_stripe_t *s, uint64_t h, const char *name, size_t nlen,
                           const char *id, size_t idlen)
{
    util_hnode_t *n;
    mem_entry_t *e;

    for (n = util_htab_chain(&s->index, h); n != NULL; n = n->next) {
        e = UTIL_HNODE_ENTRY(n, mem_entry_t, hn);
        if (n->hash == h && e->name_len == nlen && e->id_len == idlen &&
            memcmp(e->key, name, nlen) == 0 && memcmp(e->key + nlen + 1, id, idlen) == 0)
            return e;
    }
    return NULL;
}

/* The coldest bucket, NULL when none; then the next warmer one. */
static mem_entry_t *coldest(const mem_stripe_t *s)
{
    return UTIL_LRU_ENTRY(s->lru.tail, mem_entry_t, lru);
}

static mem_entry_t *warmer(const mem_entry_t *e)
{
    return UTIL_LRU_ENTRY(e->lru.prev, mem_entry_t, lru);
}

static void forget(mem_stripe_t *s, mem_entry_t *e)
{
    util_htab_del(&s->index, &e->hn);
    util_lru_unlink(&s->lru, &e->lru);
    free(e);
}

/* Forget up to `max` full buckets at the cold end. */
static void expire(mem_stripe_t *s, int64_t now, int max)
{
    while (max-- > 0 && coldest(s) != NULL && coldest(s)->full_at_ms <= now)
        forget(s, coldest(s));
}

/* Make room for one bucket: a full one among the coldest, else the coldest. */
static void evict_one(mem_stripe_t *s, int64_t now)
{
    mem_entry_t *e = coldest(s);
    int i;

    for (i = 0; e != NULL && i < MEM_EVICT_SCAN; i++, e = warmer(e))
        if (e->full_at_ms <= now) {
            forget(s, e);
            return;
        }
    if (coldest(s) != NULL)
        forget(s, coldest(s));
}

static void store(mem_stripe_t *s, mem_entry_t *e, const rl_bucket_t *b, const rl_rate_t *r)
{
    e->b = *b;
    e->full_at_ms = b->ts_ms + (int64_t)rl_bucket_full_after_ms(b, r);
    util_lru_touch(&s->lru, &e->lru);
}

/* Add a bucket for (name, id); NULL when out of memory. */
static mem_entry_t *insert(mem_stripe_t *s, uint64_t h, const char *name, size_t nlen,
                           const char *id, size_t idlen, int64_t now)
{
    mem_entry_t *e;

    if (nlen > UINT16_MAX || idlen > UINT16_MAX)
        return NULL; /* never: names are short, identities bounded */
    while (s->index.count >= s->cap && s->index.count > 0)
        evict_one(s, now);
    e = malloc(sizeof(*e) + nlen + idlen + 2);
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->hn.hash = h;
    e->name_len = (uint16_t)nlen;
    e->id_len = (uint16_t)idlen;
    memcpy(e->key, name, nlen + 1);
    memcpy(e->key + nlen + 1, id, idlen + 1);
    util_htab_add(&s->index, &e->hn);
    util_lru_push(&s->lru, &e->lru);
    return e;
}

/* --- decisions ------------------------------------------------------------ */

/* The bucket of limit i refilled to now (a full new one when unknown). */
static void current(const mem_entry_t *e, const rl_rate_t *r, int64_t now, rl_bucket_t *b)
{
    if (e != NULL)
        *b = e->b;
    else
        rl_bucket_init(b, r, now);
    rl_bucket_refill(b, r, now);
}

/* Look up and peek every limit of `g` (its stripe locked); true when every
 * enforced limit fits.  ent[i] caches each limit's bucket, NULL when new. */
static bool check_group(mem_stripe_t *s, rl_group_t *g, mem_entry_t **ent, int64_t now)
{
    size_t i, idlen = strlen(g->identity);
    bool all = true;
    rl_bucket_t b;

    for (i = 0; i < g->n; i++) {
        const char *name = g->limits[i]->name;
        size_t nlen = strlen(name);

        ent[i] = lookup(s, key_hash(name, nlen, g->identity, idlen), name, nlen,
                        g->identity, idlen);
        current(ent[i], &g->rates[i], now, &b);
        if (!rl_bucket_peek(&b, &g->rates[i], g->cost, &g->results[i].v) &&
            g->limits[i]->mode == RL_MODE_ENFORCE)
            all = false;
        g->results[i].fallback = false;
        g->results[i].failed = false;
    }
    return all;
}

/* Charge the buckets that exist when `all`; otherwise a limit that would
 * fit reports its untouched level.  No insert here: an eviction would leave
 * dangling pointers in ent[] (of this or another group).  A dry group only
 * reports: check_group's peek already holds what a charge would report. */
static void charge_existing(mem_stripe_t *s, rl_group_t *g, mem_entry_t **ent, int64_t now,
                            bool all)
{
    rl_bucket_t b;
    size_t i;

    for (i = 0; i < g->n; i++) {
        rl_verdict_t *v = &g->results[i].v;

        if (!v->allowed)
            continue;
        current(ent[i], &g->rates[i], now, &b);
        if (!all) { /* would fit, but another limit denies: nothing taken */
            v->remaining = (uint64_t)b.level / g->rates[i].period_ms;
            v->reset_ms = rl_bucket_full_after_ms(&b, &g->rates[i]);
        } else if (ent[i] != NULL && !g->dry_run) {
            rl_bucket_take(&b, &g->rates[i], g->cost);
            store(s, ent[i], &b, &g->rates[i]);
        }
    }
}

/* Create and charge the buckets that did not exist (may evict others). */
static void charge_new(mem_stripe_t *s, rl_group_t *g, mem_entry_t *const *ent, int64_t now)
{
    size_t i, idlen = strlen(g->identity);
    rl_bucket_t b;

    for (i = 0; i < g->n; i++) {
        const char *name = g->limits[i]->name;
        size_t nlen = strlen(name);
        uint64_t h = key_hash(name, nlen, g->identity, idlen);
        mem_entry_t *e;

        if (ent[i] != NULL || !g->results[i].v.allowed || g->dry_run)
            continue;
        e = lookup(s, h, name, nlen, g->identity, idlen); /* duplicate limit name */
        if (e != NULL) {
            current(e, &g->rates[i], now, &b);
        } else {
            e = insert(s, h, name, nlen, g->identity, idlen, now);
            if (e == NULL)
                continue; /* out of memory: the bucket stays full */
            rl_bucket_init(&b, &g->rates[i], now);
        }
        rl_bucket_take(&b, &g->rates[i], g->cost);
        store(s, e, &b, &g->rates[i]);
    }
}

/* Out of memory for scratch space: answer like on_redis_error: open. */
static void decide_oom(rl_group_t *gs, size_t n)
{
    size_t g, i;

    for (g = 0; g < n; g++)
        for (i = 0; i < gs[g].n; i++) {
            memset(&gs[g].results[i].v, 0, sizeof(gs[g].results[i].v));
            gs[g].results[i].v.allowed = true;
            gs[g].results[i].failed = true;
        }
}

/* Lock the distinct stripes in `sidx` in ascending order (no deadlock);
 * with `expire_full`, forget a few full buckets in each. */
static size_t lock_stripes(rl_memory_t *m, const size_t *sidx, size_t n, size_t *held,
                           int64_t now, bool expire_full)
{
    size_t i, j, nh = 0;

    for (i = 0; i < n; i++) {
        for (j = nh; j > 0 && held[j - 1] > sidx[i]; j--)
            ;
        if (j > 0 && held[j - 1] == sidx[i])
            continue;
        memmove(&held[j + 1], &held[j], (nh - j) * sizeof(*held));
        held[j] = sidx[i];
        nh++;
    }
    for (i = 0; i < nh; i++) {
        pthread_mutex_lock(&m->stripes[held[i]].lock);
        if (expire_full)
            expire(&m->stripes[held[i]], now, MEM_EXPIRE_STEP);
    }
    return nh;
}

/* Decide all groups of a request atomically: if any enforced limit of any
 * group denies, nothing is charged anywhere ("rejected requests consume
 * nothing").  Dry groups are decided the same way and change nothing: no
 * charge, no new bucket, and — when every group is dry — no expiry either
 * (a dry run leaves the table exactly as it found it). */
static void decide_groups(rl_memory_t *m, rl_group_t *gs, size_t n, int64_t now)
{
    mem_entry_t *ent_stack[MEM_GROUP_STACK], **ent = ent_stack;
    size_t idx_stack[2 * MEM_GROUP_STACK], *sidx = idx_stack, *held, *off;
    size_t g, total = 0, nh;
    void *heap = NULL;
    bool all = true, writes = false;

    for (g = 0; g < n; g++) {
        total += gs[g].n;
        writes = writes || !gs[g].dry_run;
    }
    if (total == 0)
        return;
    if (total > MEM_GROUP_STACK || n > MEM_GROUP_STACK / 2) {
        heap = malloc(total * sizeof(*ent) + 3 * n * sizeof(size_t));
        if (heap == NULL) {
            decide_oom(gs, n);
            return;
        }
        ent = heap;
        sidx = (size_t *)(ent + total);
    }
    held = sidx + n;
    off = held + n;
    for (g = 0, total = 0; g < n; g++) {
        sidx[g] = stripe_of(m, gs[g].identity, strlen(gs[g].identity));
        off[g] = total;
        total += gs[g].n;
    }
    nh = lock_stripes(m, sidx, n, held, now, writes);
    for (g = 0; g < n; g++)
        if (!check_group(&m->stripes[sidx[g]], &gs[g], ent + off[g], now))
            all = false;
    for (g = 0; g < n; g++)
        charge_existing(&m->stripes[sidx[g]], &gs[g], ent + off[g], now, all);
    for (g = 0; all && g < n; g++)
        charge_new(&m->stripes[sidx[g]], &gs[g], ent + off[g], now);
    while (nh-- > 0)
        pthread_mutex_unlock(&m->stripes[held[nh]].lock);
    free(heap);
}

void rl_memory_decide(rl_memory_t *m, rl_group_t *group, int64_t now_ms_)
{
    decide_groups(m, group, 1, now_ms_);
}

void rl_memory_decide_groups(rl_memory_t *m, rl_group_t *groups, size_t n, int64_t now_ms_)
{
    decide_groups(m, groups, n, now_ms_);
}

int rl_memory_peek(rl_memory_t *m, const char *limit, const char *identity,
                   const rl_rate_t *rate, int64_t now, rl_bucket_t *out)
{
    size_t nlen = strlen(limit), idlen = strlen(identity);
    mem_stripe_t *s = &m->stripes[stripe_of(m, identity, idlen)];
    mem_entry_t *e;
    int rc = -1;

    pthread_mutex_lock(&s->lock);
    e = lookup(s, key_hash(limit, nlen, identity, idlen), limit, nlen, identity, idlen);
    if (e != NULL) {
        *out = e->b;
        rl_bucket_refill(out, rate, now);
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int rl_memory_reset(rl_memory_t *m, const char *limit, const char *identity)
{
    size_t nlen = strlen(limit), idlen = strlen(identity);
    mem_stripe_t *s = &m->stripes[stripe_of(m, identity, idlen)];
    mem_entry_t *e;

    pthread_mutex_lock(&s->lock);
    e = lookup(s, key_hash(limit, nlen, identity, idlen), limit, nlen, identity, idlen);
    if (e != NULL)
        forget(s, e);
    pthread_mutex_unlock(&s->lock);
    return e != NULL ? 0 : -1;
}

/* --- the asynchronous ops table ------------------------------------------- */

static void mem_fire(evutil_socket_t fd, short what, void *arg)
{
    mem_token_t *tok = arg;
    rl_backend_done_fn done = tok->done;
    void *privdata = tok->privdata;

    (void)fd;
    (void)what;
    free(tok); /* the event fired and is no longer pending */
    done(0, NULL, privdata);
}

/* Decide now, answer from an event made active now (or after set_delay_ms). */
static void *mem_check(void *be, struct event_base *base, rl_group_t *groups, size_t n,
                       rl_backend_done_fn done, void *privdata)
{
    rl_memory_t *m = be;
    unsigned delay = atomic_load_explicit(&m->delay_ms, memory_order_relaxed);
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000};
    mem_token_t *tok;
    int64_t now = util_mono_ms(); /* the store's clock: never steps back (NTP) */

    tok = malloc(sizeof(*tok) + event_get_struct_event_size());
    if (tok == NULL)
        return NULL;
    tok->done = done;
    tok->privdata = privdata;
    if (event_assign((struct event *)tok->ev, base, -1, 0, mem_fire, tok) != 0) {
        free(tok);
        return NULL;
    }
    /* No delay: made active, so it runs later in this same pass of the loop
     * (a zero timeout would wait for the next pass, and an epoll_wait). */
    if (delay == 0) {
        event_active((struct event *)tok->ev, EV_TIMEOUT, 1);
    } else if (event_add((struct event *)tok->ev, &tv) != 0) {
        free(tok);
        return NULL;
    }
    decide_groups(m, groups, n, now);
    return tok;
}

static void mem_cancel(void *be, void *token)
{
    mem_token_t *tok = token;

    (void)be;
    if (tok == NULL)
        return;
    event_del((struct event *)tok->ev);
    free(tok);
}

const rl_backend_ops_t rl_memory_ops = {
    .name = "memory",
    .check = mem_check,
    .cancel = mem_cancel,
};
