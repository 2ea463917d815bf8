/* lockout.c — auth-failure lockout shared by all worker threads; see
 * auth_lockout.h.
 *
 * The table is split into stripes (up to 16), each with its own mutex, hash
 * chains, LRU list and share of `max_keys`.  A key's entry counts its
 * failures in the current window and remembers how many lockouts it has had
 * (`level`), so the backoff doubles: base << (level - 1), capped.
 *
 * Keys longer than LO_KEY_MAX bytes are stored as their first LO_KEY_PREFIX
 * bytes, '~' and 16 hex digits of a hash of the whole key: deterministic,
 * bounded, and two long keys with a common prefix stay apart.
 *
 * Expiry is lazy: an entry idle for max(window, max_backoff) since its last
 * failure (and no longer locked) is forgotten when it is looked up, and every
 * call first drops up to LO_EXPIRE_STEP such entries at the cold end of its
 * stripe's LRU list.  When a stripe is at its share of max_keys, an insert
 * evicts an unlocked entry among the coldest few, else the coldest one:
 * a key that is locked out is worth more than one with a few failures.
 */
#include "tollgate/auth_lockout.h"
#include "tollgate/util_hash.h"
#include "tollgate/util_lru.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LO_STRIPES_MAX 16
#define LO_KEY_MAX 128                  /* bytes of a stored key */
#define LO_KEY_PREFIX (LO_KEY_MAX - 17) /* kept of a longer key, then '~' + 16 hex */
#define LO_SLOTS_MIN 16
#define LO_SLOTS_MAX ((size_t)1 << 20) /* per stripe */
#define LO_EXPIRE_STEP 2               /* idle entries forgotten per call */
#define LO_EVICT_SCAN 8                /* cold entries looked at for an unlocked one */

typedef struct lo_entry {
    util_hnode_t hn;         /* hash chain, by the stored key's hash */
    util_lru_node_t lru;     /* head is the most recently touched */
    int64_t window_start_ms; /* first failure of the current window */
    int64_t locked_until_ms; /* refused before then */
    int64_t last_touch_ms;   /* last failure */
    int64_t forget_at_ms;    /* idle from then on: may be forgotten */
    unsigned failures;       /* in the current window */
    unsigned level;          /* lockouts so far */
    size_t klen;
    char key[LO_KEY_MAX + 1];
} lo_entry_t;

typedef struct lo_stripe {
    _Alignas(64) pthread_mutex_t lock;
    util_htab_t index; /* index.count: entries held */
    util_lru_t lru;
    size_t cap; /* entries held at most */
} lo_stripe_t;

struct auth_lockout {
    lo_stripe_t *stripes;
    size_t nstripes; /* power of two */
};

/* A key as stored: at most LO_KEY_MAX bytes, and its hash. */
typedef struct lo_key {
    char s[LO_KEY_MAX + 1];
    size_t len;
    uint64_t hash;
} lo_key_t;

static void key_make(lo_key_t *k, const char *key)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(key);
    uint64_t h;
    int i;

    if (n <= LO_KEY_MAX) {
        memcpy(k->s, key, n + 1);
        k->len = n;
    } else {
        h = util_hash_bytes(key, n);
        memcpy(k->s, key, LO_KEY_PREFIX);
        k->s[LO_KEY_PREFIX] = '~';
        for (i = 0; i < 16; i++)
            k->s[LO_KEY_PREFIX + 1 + i] = hex[(h >> (60 - 4 * i)) & 0xf];
        k->s[LO_KEY_MAX] = '\0';
        k->len = LO_KEY_MAX;
    }
    k->hash = util_hash_bytes(k->s, k->len);
}

/* t + ms without overflow (saturates at INT64_MAX). */
static int64_t add_ms(int64_t t, uint64_t ms)
{
    if (ms > (uint64_t)INT64_MAX)
        ms = (uint64_t)INT64_MAX;
    if (t > 0 && (int64_t)ms > INT64_MAX - t)
        return INT64_MAX;
    return t + (int64_t)ms;
}

/* b - a in ms when b > a, else 0. */
static uint64_t diff_ms(int64_t a, int64_t b)
{
    return b > a ? (uint64_t)b - (uint64_t)a : 0;
}

/* min(base << (level - 1), max), without shifting bits out. */
static uint64_t backoff_ms(const auth_lockout_policy_t *p, unsigned level)
{
    unsigned shift = level > 0 ? level - 1 : 0;

    if (p->base_backoff_ms == 0)
        return 0;
    if (shift >= 64 || p->base_backoff_ms > (p->max_backoff_ms >> shift))
        return p->max_backoff_ms;
    return p->base_backoff_ms << shift;
}

/* An empty stripe holding at most `cap` keys; -1 when out of memory. */
static int stripe_init(lo_stripe_t *s, size_t cap)
{
    s->cap = cap;
    if (util_htab_init(&s->index, LO_SLOTS_MIN, util_pow2_at_least(cap, LO_SLOTS_MAX)) != 0)
        return -1;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        util_htab_destroy(&s->index);
        return -1;
    }
    return 0;
}

auth_lockout_t *auth_lockout_new(size_t max_keys)
{
    auth_lockout_t *l;
    size_t i = 0, ns;

    if (max_keys == 0)
        max_keys = 1;
    ns = util_pow2_at_most(max_keys, LO_STRIPES_MAX);
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->stripes = aligned_alloc(64, ns * sizeof(lo_stripe_t));
    if (l->stripes == NULL)
        goto out_free_lockout;
    memset(l->stripes, 0, ns * sizeof(lo_stripe_t));
    /* the shares add up to max_keys exactly */
    for (i = 0; i < ns; i++)
        if (stripe_init(&l->stripes[i], max_keys / ns + (i < max_keys % ns)) != 0)
            goto out_free_lockout;
    l->nstripes = ns;
    return l;

out_free_lockout:
    l->nstripes = i; /* the stripes initialised so far */
    auth_lockout_free(l);
    return NULL;
}

void auth_lockout_free(auth_lockout_t *l)
{
    size_t i;
    util_lru_node_t *n, *next;

    if (l == NULL)
        return;
    for (i = 0; i < l->nstripes; i++) {
        for (n = l->stripes[i].lru.head; n != NULL; n = next) {
            next = n->next;
            free(UTIL_LRU_ENTRY(n, lo_entry_t, lru));
        }
        util_htab_destroy(&l->stripes[i].index);
        pthread_mutex_destroy(&l->stripes[i].lock);
    }
    free(l->stripes);
    free(l);
}

size_t auth_lockout_count(auth_lockout_t *l)
{
    size_t i, n = 0;

    if (l == NULL)
        return 0;
    for (i = 0; i < l->nstripes; i++) {
        pthread_mutex_lock(&l->stripes[i].lock);
        n += l->stripes[i].index.count;
        pthread_mutex_unlock(&l->stripes[i].lock);
    }
    return n;
}

/* --- one stripe; the caller holds its lock ------------------------------ */

static lo_stripe_t *stripe_of(auth_lockout_t *l, const lo_key_t *k)
{
    return &l->stripes[k->hash & (l->nstripes - 1)];
}

static lo_entry_t *lookup(lo_stripe_t *s, const lo_key_t *k)
{
    util_hnode_t *n;
    lo_entry_t *e;

    for (n = util_htab_chain(&s->index, k->hash); n != NULL; n = n->next) {
        e = UTIL_HNODE_ENTRY(n, lo_entry_t, hn);
        if (n->hash == k->hash && e->klen == k->len && memcmp(e->key, k->s, k->len) == 0)
            return e;
    }
    return NULL;
}

/* The coldest entry, NULL when none; then the next warmer one. */
static lo_entry_t *coldest(const lo_stripe_t *s)
{
    return UTIL_LRU_ENTRY(s->lru.tail, lo_entry_t, lru);
}

static lo_entry_t *warmer(const lo_entry_t *e)
{
    return UTIL_LRU_ENTRY(e->lru.prev, lo_entry_t, lru);
}

static void lru_touch(lo_stripe_t *s, lo_entry_t *e)
{
    util_lru_touch(&s->lru, &e->lru);
}

static void forget(lo_stripe_t *s, lo_entry_t *e)
{
    util_htab_del(&s->index, &e->hn);
    util_lru_unlink(&s->lru, &e->lru);
    free(e);
}

static bool idle(const lo_entry_t *e, int64_t now)
{
    return now >= e->forget_at_ms;
}

/* Forget up to LO_EXPIRE_STEP idle entries at the cold end. */
static void expire(lo_stripe_t *s, int64_t now)
{
    int n = LO_EXPIRE_STEP;

    while (n-- > 0 && coldest(s) != NULL && idle(coldest(s), now))
        forget(s, coldest(s));
}

/* Make room for one key: an unlocked one among the coldest, else the coldest. */
static void evict_one(lo_stripe_t *s, int64_t now)
{
    lo_entry_t *e = coldest(s);
    int i;

    for (i = 0; e != NULL && i < LO_EVICT_SCAN; i++, e = warmer(e))
        if (e->locked_until_ms <= now) {
            forget(s, e);
            return;
        }
    if (coldest(s) != NULL)
        forget(s, coldest(s));
}

/* A new entry for `k` with no failures; NULL when out of memory. */
static lo_entry_t *insert(lo_stripe_t *s, const lo_key_t *k, int64_t now)
{
    lo_entry_t *e;

    while (s->index.count >= s->cap && s->index.count > 0)
        evict_one(s, now);
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->hn.hash = k->hash;
    e->klen = k->len;
    memcpy(e->key, k->s, k->len + 1);
    util_htab_add(&s->index, &e->hn);
    util_lru_push(&s->lru, &e->lru);
    return e;
}

/* The live entry of `k`, forgetting it when idle; NULL when none. */
static lo_entry_t *find_live(lo_stripe_t *s, const lo_key_t *k, int64_t now)
{
    lo_entry_t *e;

    expire(s, now);
    e = lookup(s, k);
    if (e != NULL && idle(e, now)) {
        forget(s, e);
        return NULL;
    }
    return e;
}

/* Count one failure of `e` at `now`; the lockout it starts (ms), or 0. */
static uint64_t account(lo_entry_t *e, const auth_lockout_policy_t *p, int64_t now)
{
    uint64_t backoff = 0, keep;

    if (e->failures == 0 || diff_ms(e->window_start_ms, now) >= p->window_ms) {
        e->failures = 0;
        e->window_start_ms = now;
    }
    e->failures++;
    e->last_touch_ms = now;
    if (e->failures >= p->max_failures) {
        if (e->level < (unsigned)-1)
            e->level++;
        backoff = backoff_ms(p, e->level);
        e->locked_until_ms = add_ms(now, backoff);
        e->failures = 0;
    }
    keep = p->window_ms > p->max_backoff_ms ? p->window_ms : p->max_backoff_ms;
    e->forget_at_ms = add_ms(now, keep);
    if (e->forget_at_ms < e->locked_until_ms)
        e->forget_at_ms = e->locked_until_ms;
    return backoff;
}

/* --- the interface --------------------------------------------------------- */

uint64_t auth_lockout_check(auth_lockout_t *l, const char *key, int64_t now_ms)
{
    lo_key_t k;
    lo_stripe_t *s;
    lo_entry_t *e;
    uint64_t left = 0;

    if (l == NULL || key == NULL)
        return 0;
    key_make(&k, key);
    s = stripe_of(l, &k);
    pthread_mutex_lock(&s->lock);
    e = find_live(s, &k, now_ms);
    if (e != NULL && e->locked_until_ms > now_ms) {
        left = diff_ms(now_ms, e->locked_until_ms);
        lru_touch(s, e); /* a key being refused stays among the hot ones */
    }
    pthread_mutex_unlock(&s->lock);
    return left;
}

uint64_t auth_lockout_fail(auth_lockout_t *l, const char *key,
                           const auth_lockout_policy_t *p, int64_t now_ms)
{
    lo_key_t k;
    lo_stripe_t *s;
    lo_entry_t *e;
    uint64_t backoff = 0;

    if (l == NULL || key == NULL || p == NULL || p->max_failures == 0)
        return 0;
    key_make(&k, key);
    s = stripe_of(l, &k);
    pthread_mutex_lock(&s->lock);
    e = find_live(s, &k, now_ms);
    if (e != NULL)
        lru_touch(s, e);
    else
        e = insert(s, &k, now_ms);
    if (e != NULL) /* out of memory: this failure goes uncounted */
        backoff = account(e, p, now_ms);
    pthread_mutex_unlock(&s->lock);
    return backoff;
}

void auth_lockout_success(auth_lockout_t *l, const char *key)
{
    lo_key_t k;
    lo_stripe_t *s;
    lo_entry_t *e;

    if (l == NULL || key == NULL)
        return;
    key_make(&k, key);
    s = stripe_of(l, &k);
    pthread_mutex_lock(&s->lock);
    e = lookup(s, &k);
    if (e != NULL)
        forget(s, e);
    pthread_mutex_unlock(&s->lock);
}

void auth_lockout_lock(auth_lockout_t *l, const char *key, int64_t until_ms, int64_t now_ms)
{
    lo_key_t k;
    lo_stripe_t *s;
    lo_entry_t *e;

    if (l == NULL || key == NULL || until_ms <= now_ms)
        return;
    key_make(&k, key);
    s = stripe_of(l, &k);
    pthread_mutex_lock(&s->lock);
    e = find_live(s, &k, now_ms);
    if (e != NULL)
        lru_touch(s, e);
    else
        e = insert(s, &k, now_ms);
    if (e != NULL && e->locked_until_ms < until_ms) {
        e->locked_until_ms = until_ms;
        if (e->forget_at_ms < until_ms)
            e->forget_at_ms = until_ms;
    }
    pthread_mutex_unlock(&s->lock);
}

bool auth_lockout_unlock(auth_lockout_t *l, const char *key)
{
    lo_key_t k;
    lo_stripe_t *s;
    lo_entry_t *e;
    bool had;

    if (l == NULL || key == NULL)
        return false;
    key_make(&k, key);
    s = stripe_of(l, &k);
    pthread_mutex_lock(&s->lock);
    e = lookup(s, &k);
    had = e != NULL;
    if (had)
        forget(s, e);
    pthread_mutex_unlock(&s->lock);
    return had;
}

size_t auth_lockout_locked(auth_lockout_t *l, int64_t now_ms, auth_lockout_info_t *out,
                           size_t max)
{
    size_t i, n = 0;
    const lo_entry_t *e;

    if (l == NULL)
        return 0;
    for (i = 0; i < l->nstripes && n < max; i++) {
        pthread_mutex_lock(&l->stripes[i].lock);
        for (e = coldest(&l->stripes[i]); e != NULL && n < max; e = warmer(e)) {
            if (e->locked_until_ms <= now_ms)
                continue;
            memcpy(out[n].key, e->key, e->klen + 1);
            out[n].failures = e->failures;
            out[n].level = e->level;
            out[n].until_ms = e->locked_until_ms;
            n++;
        }
        pthread_mutex_unlock(&l->stripes[i].lock);
    }
    return n;
}
