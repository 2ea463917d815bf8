/* revoke.c — the local set of revoked JWTs; see auth_revoke.h.
 *
 * Two chained hash tables under one rwlock: jti -> exp and sub -> before.
 * The jti entries also sit in a binary min-heap ordered by exp, so that the
 * expired ones are purged (on every write, each entry once: amortised
 * O(log n)) and the one that expires first is found at once when the set
 * is full.  Readers (the request path) never purge: an expired jti entry
 * still held is simply not revoked.
 *
 * When the set is full, a new entry evicts the jti entry that expires first;
 * when it holds only subjects, the subject with the smallest `before` (the
 * oldest revocation, whose tokens are the likeliest to have expired).
 */
#include "tollgate/auth_revoke.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REV_SLOTS_MIN 64
#define REV_SLOTS_MAX ((size_t)1 << 24)
#define FNV_SEED 14695981039346656037ull

typedef struct rev_entry {
    struct rev_entry *hnext; /* hash chain */
    uint64_t hash;
    int64_t t;       /* jti: exp; subject: before (unix seconds) */
    size_t heap_idx; /* jti only: position in the expiry heap */
    size_t len;
    char id[]; /* NUL-terminated */
} rev_entry_t;

typedef struct rev_table {
    rev_entry_t **slots;
    size_t nslots, max_slots; /* powers of two */
    size_t count;
} rev_table_t;

struct auth_revoke {
    pthread_rwlock_t lock;
    rev_table_t jtis, subs;
    rev_entry_t **heap; /* the jti entries, earliest exp first; jtis.count of them */
    size_t heap_cap;
    size_t max_entries;
};

static uint64_t hash_id(const char *s, size_t n)
{
    uint64_t h = FNV_SEED;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* Length of a valid jti/sub (1..AUTH_REVOKE_MAX_ID bytes, no control
 * characters), else 0. */
static size_t id_valid(const char *s)
{
    size_t i, n;

    if (s == NULL)
        return 0;
    n = strnlen(s, AUTH_REVOKE_MAX_ID + 1);
    if (n > AUTH_REVOKE_MAX_ID)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return n;
}

/* Length of `s` when it could be held (lookups need no more), else 0. */
static size_t id_len(const char *s)
{
    size_t n;

    if (s == NULL)
        return 0;
    n = strnlen(s, AUTH_REVOKE_MAX_ID + 1);
    return n <= AUTH_REVOKE_MAX_ID ? n : 0;
}

/* --- hash tables; the caller holds the lock -------------------------------- */

static int table_init(rev_table_t *t, size_t max_entries)
{
    size_t p = 1;

    while (p < max_entries && p < REV_SLOTS_MAX)
        p <<= 1;
    t->max_slots = p;
    t->nslots = p < REV_SLOTS_MIN ? p : REV_SLOTS_MIN;
    t->slots = calloc(t->nslots, sizeof(*t->slots));
    return t->slots != NULL ? 0 : -1;
}

static void table_free(rev_table_t *t)
{
    size_t i;
    rev_entry_t *e, *next;

    if (t->slots == NULL)
        return;
    for (i = 0; i < t->nslots; i++)
        for (e = t->slots[i]; e != NULL; e = next) {
            next = e->hnext;
            free(e);
        }
    free(t->slots);
}

static rev_entry_t *table_find(const rev_table_t *t, const char *id, size_t len, uint64_t h)
{
    rev_entry_t *e;

    for (e = t->slots[h & (t->nslots - 1)]; e != NULL; e = e->hnext)
        if (e->hash == h && e->len == len && memcmp(e->id, id, len) == 0)
            return e;
    return NULL;
}

/* Double the slot array (up to max_slots); on failure keep the old one. */
static void table_grow(rev_table_t *t)
{
    size_t i, n = t->nslots * 2;
    rev_entry_t **slots, *e, *next;

    if (n > t->max_slots || (slots = calloc(n, sizeof(*slots))) == NULL)
        return;
    for (i = 0; i < t->nslots; i++)
        for (e = t->slots[i]; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = slots[e->hash & (n - 1)];
            slots[e->hash & (n - 1)] = e;
        }
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
}

static void table_add(rev_table_t *t, rev_entry_t *e)
{
    if (t->count >= t->nslots)
        table_grow(t);
    e->hnext = t->slots[e->hash & (t->nslots - 1)];
    t->slots[e->hash & (t->nslots - 1)] = e;
    t->count++;
}

/* Unlink `e` from `t` (the caller frees it). */
static void table_del(rev_table_t *t, rev_entry_t *e)
{
    rev_entry_t **pp = &t->slots[e->hash & (t->nslots - 1)];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    t->count--;
}

/* --- the expiry heap of jti entries ---------------------------------------- */

static void heap_set(auth_revoke_t *r, size_t i, rev_entry_t *e)
{
    r->heap[i] = e;
    e->heap_idx = i;
}

static void sift_up(auth_revoke_t *r, size_t i)
{
    rev_entry_t *e = r->heap[i];

    while (i > 0 && r->heap[(i - 1) / 2]->t > e->t) {
        heap_set(r, i, r->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(r, i, e);
}

/* `n` entries in the heap. */
static void sift_down(auth_revoke_t *r, size_t i, size_t n)
{
    rev_entry_t *e = r->heap[i];
    size_t c;

    while ((c = 2 * i + 1) < n) {
        if (c + 1 < n && r->heap[c + 1]->t < r->heap[c]->t)
            c++;
        if (r->heap[c]->t >= e->t)
            break;
        heap_set(r, i, r->heap[c]);
        i = c;
    }
    heap_set(r, i, e);
}

/* Room in the heap for one more jti entry; -1 when out of memory. */
static int heap_reserve(auth_revoke_t *r)
{
    size_t cap = r->heap_cap ? r->heap_cap * 2 : 64;
    rev_entry_t **h;

    if (r->jtis.count < r->heap_cap)
        return 0;
    h = realloc(r->heap, cap * sizeof(*h));
    if (h == NULL)
        return -1;
    r->heap = h;
    r->heap_cap = cap;
    return 0;
}

/* Drop jti entry `e` from the heap and its table, and free it. */
static void jti_forget(auth_revoke_t *r, rev_entry_t *e)
{
    size_t i = e->heap_idx, last = r->jtis.count - 1;

    table_del(&r->jtis, e); /* jtis.count is now the heap's new size */
    if (i != last) {
        heap_set(r, i, r->heap[last]);
        sift_up(r, i);
        sift_down(r, r->heap[i]->heap_idx, last);
    }
    free(e);
}

/* Forget the jti entries whose exp has passed at `now`. */
static void purge(auth_revoke_t *r, int64_t now)
{
    while (r->jtis.count > 0 && r->heap[0]->t <= now)
        jti_forget(r, r->heap[0]);
}

/* The subject whose `before` is the smallest. */
static rev_entry_t *oldest_subject(const rev_table_t *t)
{
    rev_entry_t *best = NULL, *e;
    size_t i;

    for (i = 0; i < t->nslots; i++)
        for (e = t->slots[i]; e != NULL; e = e->hnext)
            if (best == NULL || e->t < best->t)
                best = e;
    return best;
}

/* Make room for one entry when the set is full. */
static void make_room(auth_revoke_t *r)
{
    rev_entry_t *e;

    while (r->jtis.count + r->subs.count >= r->max_entries) {
        if (r->jtis.count > 0) {
            jti_forget(r, r->heap[0]);
        } else {
            e = oldest_subject(&r->subs);
            table_del(&r->subs, e);
            free(e);
        }
    }
}

static rev_entry_t *entry_new(const char *id, size_t len, uint64_t h, int64_t t)
{
    rev_entry_t *e = malloc(sizeof(*e) + len + 1);

    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->hash = h;
    e->t = t;
    e->len = len;
    memcpy(e->id, id, len);
    e->id[len] = '\0';
    return e;
}

/* --- the interface --------------------------------------------------------- */

auth_revoke_t *auth_revoke_new(size_t max_entries)
{
    auth_revoke_t *r = calloc(1, sizeof(*r));
    pthread_rwlockattr_t attr;
    int rc;

    if (r == NULL)
        return NULL;
    r->max_entries = max_entries > 0 ? max_entries : 1;
    if (table_init(&r->jtis, r->max_entries) != 0 ||
        table_init(&r->subs, r->max_entries) != 0)
        goto out_free_tables;
    if (pthread_rwlockattr_init(&attr) != 0)
        goto out_free_tables;
#if defined(__GLIBC__)
    /* the request path reads all the time: let the rare writer in */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    rc = pthread_rwlock_init(&r->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0)
        goto out_free_tables;
    return r;

out_free_tables:
    table_free(&r->jtis);
    table_free(&r->subs);
    free(r);
    return NULL;
}

void auth_revoke_free(auth_revoke_t *r)
{
    if (r == NULL)
        return;
    table_free(&r->jtis);
    table_free(&r->subs);
    free(r->heap);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

int auth_revoke_jti(auth_revoke_t *r, const char *jti, int64_t exp, int64_t now)
{
    size_t len = id_valid(jti);
    uint64_t h;
    rev_entry_t *e;
    int rc = 0;

    if (r == NULL || len == 0 || exp <= now)
        return -1;
    h = hash_id(jti, len);
    pthread_rwlock_wrlock(&r->lock);
    purge(r, now);
    e = table_find(&r->jtis, jti, len, h);
    if (e != NULL) {
        if (exp > e->t) { /* the later exp wins */
            e->t = exp;
            sift_down(r, e->heap_idx, r->jtis.count);
        }
        goto out_unlock;
    }
    make_room(r);
    if (heap_reserve(r) != 0 || (e = entry_new(jti, len, h, exp)) == NULL) {
        rc = -1;
        goto out_unlock;
    }
    table_add(&r->jtis, e);
    heap_set(r, r->jtis.count - 1, e);
    sift_up(r, r->jtis.count - 1);

out_unlock:
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int auth_revoke_subject(auth_revoke_t *r, const char *sub, int64_t before)
{
    size_t len = id_valid(sub);
    uint64_t h;
    rev_entry_t *e;
    int rc = 0;

    if (r == NULL || len == 0 || before <= 0)
        return -1;
    h = hash_id(sub, len);
    pthread_rwlock_wrlock(&r->lock);
    e = table_find(&r->subs, sub, len, h);
    if (e != NULL) {
        if (before > e->t) /* a smaller one is ignored */
            e->t = before;
        goto out_unlock;
    }
    make_room(r);
    e = entry_new(sub, len, h, before);
    if (e == NULL) {
        rc = -1;
        goto out_unlock;
    }
    table_add(&r->subs, e);

out_unlock:
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

bool auth_revoke_check(auth_revoke_t *r, const char *jti, const char *sub, int64_t iat,
                       int64_t now)
{
    size_t jlen = id_len(jti), slen = id_len(sub);
    uint64_t jh = jlen ? hash_id(jti, jlen) : 0, sh = slen ? hash_id(sub, slen) : 0;
    const rev_entry_t *e;
    bool revoked = false;

    if (r == NULL || (jlen == 0 && slen == 0))
        return false;
    pthread_rwlock_rdlock(&r->lock);
    if (jlen > 0) {
        e = table_find(&r->jtis, jti, jlen, jh);
        revoked = e != NULL && e->t > now;
    }
    if (!revoked && slen > 0) {
        e = table_find(&r->subs, sub, slen, sh);
        revoked = e != NULL && iat < e->t;
    }
    pthread_rwlock_unlock(&r->lock);
    return revoked;
}

bool auth_revoke_get(auth_revoke_t *r, const char *jti, int64_t now, int64_t *exp)
{
    size_t len = id_len(jti);
    uint64_t h = len ? hash_id(jti, len) : 0;
    const rev_entry_t *e;
    bool found = false;

    if (r == NULL || len == 0)
        return false;
    pthread_rwlock_rdlock(&r->lock);
    e = table_find(&r->jtis, jti, len, h);
    if (e != NULL && e->t > now) {
        found = true;
        if (exp != NULL)
            *exp = e->t;
    }
    pthread_rwlock_unlock(&r->lock);
    return found;
}

size_t auth_revoke_count(auth_revoke_t *r)
{
    size_t n;

    if (r == NULL)
        return 0;
    pthread_rwlock_rdlock(&r->lock);
    n = r->jtis.count + r->subs.count;
    pthread_rwlock_unlock(&r->lock);
    return n;
}
