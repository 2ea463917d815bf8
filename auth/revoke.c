/* revoke.c — the local set of revoked JWTs; see auth_revoke.h.
 *
 * Three chained hash tables under one rwlock: jti -> exp, sub -> before
 * (every issuer) and "iss\x1fsub" -> before (one issuer; neither part may
 * hold a control character, so the key is unambiguous and no lookup of an
 * every-issuer subject can find it).  Every entry also sits in one of two
 * binary min-heaps ordered by its time (jtis by exp, subjects by before), so
 * that expired entries are purged on every write (each once: amortised
 * O(log n)) and the one that expires first is found at once when the set is
 * full.  Readers (the request path) never purge: an expired entry still
 * held is simply not revoked.
 *
 * When the set is full, a new entry evicts the jti entry that expires first;
 * when it holds only subjects, the subject with the smallest `before` (the
 * first to expire).
 */
#include "tollgate/auth_revoke.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REV_SLOTS_MIN 64
#define REV_SLOTS_MAX ((size_t)1 << 24)
#define FNV_SEED 14695981039346656037ull
#define REV_SEP '\x1f' /* between iss and sub in a scoped subject's key */
#define REV_KEY_MAX (2 * AUTH_REVOKE_MAX_ID + 1)

typedef struct rev_entry {
    struct rev_entry *hnext; /* hash chain */
    uint64_t hash;
    uint64_t gen;        /* auth_revoke_sync_begin's generation when last written */
    int64_t t;           /* jti: exp; subject: before (unix seconds) */
    size_t heap_idx;     /* position in its heap */
    unsigned char table; /* REV_T_* */
    size_t len;
    char id[]; /* NUL-terminated: jti, sub, or iss REV_SEP sub */
} rev_entry_t;

enum { REV_T_JTI, REV_T_SUB, REV_T_ISUB, REV_T_N };

typedef struct rev_table {
    rev_entry_t **slots;
    size_t nslots, max_slots; /* powers of two */
    size_t count;
} rev_table_t;

typedef struct rev_heap {
    rev_entry_t **a; /* earliest t first */
    size_t n, cap;
} rev_heap_t;

struct auth_revoke {
    pthread_rwlock_t lock;
    rev_table_t tables[REV_T_N];
    rev_heap_t jheap, sheap; /* jti entries; subject entries (both tables) */
    size_t max_entries;
    int64_t lifetime; /* seconds a subject revocation lasts past before; 0: ever */
    uint64_t gen;
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

/* Length of a valid jti/sub/iss (1..AUTH_REVOKE_MAX_ID bytes, no control
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

/* The key of a subject entry into key[REV_KEY_MAX + 1]: `sub`, or (iss not
 * NULL) iss REV_SEP sub; its table in *table.  Its length, or 0 when iss or
 * sub could not be held (`strict`: as written, else as looked up). */
static size_t subject_key(const char *iss, const char *sub, bool strict, char *key,
                          int *table)
{
    size_t ilen = 0, slen = strict ? id_valid(sub) : id_len(sub);

    if (slen == 0)
        return 0;
    if (iss == NULL) {
        *table = REV_T_SUB;
        memcpy(key, sub, slen + 1);
        return slen;
    }
    /* a scoped entry never holds a control character: a lookup of one that
     * does could only find a wrong entry */
    if ((ilen = id_valid(iss)) == 0 || (!strict && id_valid(sub) == 0))
        return 0;
    *table = REV_T_ISUB;
    memcpy(key, iss, ilen);
    key[ilen] = REV_SEP;
    memcpy(key + ilen + 1, sub, slen + 1);
    return ilen + 1 + slen;
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

/* --- the expiry heaps ------------------------------------------------------ */

static void heap_set(rev_heap_t *hp, size_t i, rev_entry_t *e)
{
    hp->a[i] = e;
    e->heap_idx = i;
}

static void sift_up(rev_heap_t *hp, size_t i)
{
    rev_entry_t *e = hp->a[i];

    while (i > 0 && hp->a[(i - 1) / 2]->t > e->t) {
        heap_set(hp, i, hp->a[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(hp, i, e);
}

static void sift_down(rev_heap_t *hp, size_t i)
{
    rev_entry_t *e = hp->a[i];
    size_t c;

    while ((c = 2 * i + 1) < hp->n) {
        if (c + 1 < hp->n && hp->a[c + 1]->t < hp->a[c]->t)
            c++;
        if (hp->a[c]->t >= e->t)
            break;
        heap_set(hp, i, hp->a[c]);
        i = c;
    }
    heap_set(hp, i, e);
}

/* Add `e`; -1 when out of memory. */
static int heap_push(rev_heap_t *hp, rev_entry_t *e)
{
    if (hp->n == hp->cap) {
        size_t cap = hp->cap ? hp->cap * 2 : 64;
        rev_entry_t **a = realloc(hp->a, cap * sizeof(*a));

        if (a == NULL)
            return -1;
        hp->a = a;
        hp->cap = cap;
    }
    heap_set(hp, hp->n++, e);
    sift_up(hp, hp->n - 1);
    return 0;
}

static void heap_remove(rev_heap_t *hp, rev_entry_t *e)
{
    size_t i = e->heap_idx, last = --hp->n;

    if (i != last) {
        heap_set(hp, i, hp->a[last]);
        sift_up(hp, i);
        sift_down(hp, hp->a[i]->heap_idx);
    }
}

static rev_heap_t *heap_of(auth_revoke_t *r, const rev_entry_t *e)
{
    return e->table == REV_T_JTI ? &r->jheap : &r->sheap;
}

/* Drop entry `e` from its heap and table, and free it. */
static void forget(auth_revoke_t *r, rev_entry_t *e)
{
    heap_remove(heap_of(r, e), e);
    table_del(&r->tables[e->table], e);
    free(e);
}

/* before + lifetime <= now, written so that no sum can overflow */
static bool subject_expired(const auth_revoke_t *r, int64_t before, int64_t now)
{
    return r->lifetime > 0 && before <= now - r->lifetime;
}

/* Forget the entries that have expired at `now`. */
static void purge(auth_revoke_t *r, int64_t now)
{
    while (r->jheap.n > 0 && r->jheap.a[0]->t <= now)
        forget(r, r->jheap.a[0]);
    while (r->sheap.n > 0 && subject_expired(r, r->sheap.a[0]->t, now))
        forget(r, r->sheap.a[0]);
}

static size_t held(const auth_revoke_t *r)
{
    return r->jheap.n + r->sheap.n;
}

/* Make room for one entry when the set is full. */
static void make_room(auth_revoke_t *r)
{
    while (held(r) >= r->max_entries)
        forget(r, r->jheap.n > 0 ? r->jheap.a[0] : r->sheap.a[0]);
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

/* Add or update entry `id` of `table` to time `t`, the later one winning. */
static int upsert(auth_revoke_t *r, int table, const char *id, size_t len, int64_t t)
{
    uint64_t h = hash_id(id, len);
    rev_entry_t *e = table_find(&r->tables[table], id, len, h);

    if (e != NULL) {
        e->gen = r->gen;
        if (t > e->t) {
            e->t = t;
            sift_down(heap_of(r, e), e->heap_idx);
        }
        return 0;
    }
    make_room(r);
    if ((e = entry_new(id, len, h, t)) == NULL)
        return -1;
    e->table = (unsigned char)table;
    e->gen = r->gen;
    if (heap_push(table == REV_T_JTI ? &r->jheap : &r->sheap, e) != 0) {
        free(e);
        return -1;
    }
    table_add(&r->tables[table], e);
    return 0;
}

/* --- the interface --------------------------------------------------------- */

auth_revoke_t *auth_revoke_new(size_t max_entries)
{
    auth_revoke_t *r = calloc(1, sizeof(*r));
    pthread_rwlockattr_t attr;
    int rc, i;

    if (r == NULL)
        return NULL;
    r->max_entries = max_entries > 0 ? max_entries : 1;
    for (i = 0; i < REV_T_N; i++)
        if (table_init(&r->tables[i], r->max_entries) != 0)
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
    for (i = 0; i < REV_T_N; i++)
        table_free(&r->tables[i]);
    free(r);
    return NULL;
}

void auth_revoke_free(auth_revoke_t *r)
{
    int i;

    if (r == NULL)
        return;
    for (i = 0; i < REV_T_N; i++)
        table_free(&r->tables[i]);
    free(r->jheap.a);
    free(r->sheap.a);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

void auth_revoke_set_lifetime(auth_revoke_t *r, int64_t seconds)
{
    if (r == NULL)
        return;
    pthread_rwlock_wrlock(&r->lock);
    r->lifetime =
        seconds > 0 ? (seconds < AUTH_REVOKE_MAX_TIME ? seconds : AUTH_REVOKE_MAX_TIME) : 0;
    pthread_rwlock_unlock(&r->lock);
}

int64_t auth_revoke_lifetime(auth_revoke_t *r)
{
    int64_t s;

    if (r == NULL)
        return 0;
    pthread_rwlock_rdlock(&r->lock);
    s = r->lifetime;
    pthread_rwlock_unlock(&r->lock);
    return s;
}

int auth_revoke_jti(auth_revoke_t *r, const char *jti, int64_t exp, int64_t now)
{
    size_t len = id_valid(jti);
    int rc;

    if (r == NULL || len == 0 || exp <= now || exp > AUTH_REVOKE_MAX_TIME)
        return -1;
    pthread_rwlock_wrlock(&r->lock);
    purge(r, now);
    rc = upsert(r, REV_T_JTI, jti, len, exp);
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int auth_revoke_subject(auth_revoke_t *r, const char *iss, const char *sub, int64_t before,
                        int64_t now)
{
    char key[REV_KEY_MAX + 1];
    int table = REV_T_SUB;
    size_t len = subject_key(iss, sub, true, key, &table);
    int rc = -1;

    if (r == NULL || len == 0 || before <= 0 || before > AUTH_REVOKE_MAX_TIME)
        return -1;
    pthread_rwlock_wrlock(&r->lock);
    purge(r, now);
    if (!subject_expired(r, before, now))
        rc = upsert(r, table, key, len, before);
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

/* A subject entry of `table` that revokes a token issued at `iat`. */
static bool subject_revokes(const auth_revoke_t *r, int table, const char *key, size_t len,
                            int64_t iat, int64_t now)
{
    const rev_entry_t *e = table_find(&r->tables[table], key, len, hash_id(key, len));

    return e != NULL && iat < e->t && !subject_expired(r, e->t, now);
}

bool auth_revoke_check(auth_revoke_t *r, const char *jti, const char *iss, const char *sub,
                       int64_t iat, int64_t now)
{
    size_t jlen = id_len(jti), slen = id_len(sub), klen;
    char key[REV_KEY_MAX + 1];
    const rev_entry_t *e;
    bool revoked = false;
    int table = REV_T_SUB;

    if (r == NULL || (jlen == 0 && slen == 0))
        return false;
    pthread_rwlock_rdlock(&r->lock);
    if (jlen > 0) {
        e = table_find(&r->tables[REV_T_JTI], jti, jlen, hash_id(jti, jlen));
        revoked = e != NULL && e->t > now;
    }
    if (!revoked && slen > 0)
        revoked = subject_revokes(r, REV_T_SUB, sub, slen, iat, now);
    if (!revoked && slen > 0 && iss != NULL && r->tables[REV_T_ISUB].count > 0 &&
        (klen = subject_key(iss, sub, false, key, &table)) > 0)
        revoked = subject_revokes(r, table, key, klen, iat, now);
    pthread_rwlock_unlock(&r->lock);
    return revoked;
}

bool auth_revoke_get(auth_revoke_t *r, const char *jti, int64_t now, int64_t *exp)
{
    size_t len = id_len(jti);
    const rev_entry_t *e;
    bool found = false;

    if (r == NULL || len == 0)
        return false;
    pthread_rwlock_rdlock(&r->lock);
    e = table_find(&r->tables[REV_T_JTI], jti, len, hash_id(jti, len));
    if (e != NULL && e->t > now) {
        found = true;
        if (exp != NULL)
            *exp = e->t;
    }
    pthread_rwlock_unlock(&r->lock);
    return found;
}

bool auth_revoke_subject_get(auth_revoke_t *r, const char *iss, const char *sub,
                             int64_t now, int64_t *before)
{
    char key[REV_KEY_MAX + 1];
    int table = REV_T_SUB;
    size_t len = subject_key(iss, sub, false, key, &table);
    const rev_entry_t *e;
    bool found = false;

    if (r == NULL || len == 0)
        return false;
    pthread_rwlock_rdlock(&r->lock);
    e = table_find(&r->tables[table], key, len, hash_id(key, len));
    if (e != NULL && !subject_expired(r, e->t, now)) {
        found = true;
        if (before != NULL)
            *before = e->t;
    }
    pthread_rwlock_unlock(&r->lock);
    return found;
}

/* Forget entry `key` of `table`; true when it was held. */
static bool unrevoke(auth_revoke_t *r, int table, const char *key, size_t len)
{
    rev_entry_t *e;

    pthread_rwlock_wrlock(&r->lock);
    e = table_find(&r->tables[table], key, len, hash_id(key, len));
    if (e != NULL)
        forget(r, e);
    pthread_rwlock_unlock(&r->lock);
    return e != NULL;
}

bool auth_revoke_unjti(auth_revoke_t *r, const char *jti)
{
    size_t len = id_len(jti);

    return r != NULL && len > 0 && unrevoke(r, REV_T_JTI, jti, len);
}

bool auth_revoke_unsubject(auth_revoke_t *r, const char *iss, const char *sub)
{
    char key[REV_KEY_MAX + 1];
    int table = REV_T_SUB;
    size_t len = subject_key(iss, sub, false, key, &table);

    return r != NULL && len > 0 && unrevoke(r, table, key, len);
}

/* --- listing --------------------------------------------------------------- */

/* An entry or a cursor as the listing orders them: (t, iss, id). */
typedef struct rev_view {
    int64_t t;
    const char *iss, *id;
    size_t isslen, idlen;
} rev_view_t;

static rev_view_t view_of_entry(const rev_entry_t *e)
{
    rev_view_t v = {.t = e->t, .iss = "", .id = e->id, .idlen = e->len};
    const char *sep;

    if (e->table == REV_T_ISUB && (sep = memchr(e->id, REV_SEP, e->len)) != NULL) {
        v.iss = e->id;
        v.isslen = (size_t)(sep - e->id);
        v.id = sep + 1;
        v.idlen = e->len - v.isslen - 1;
    }
    return v;
}

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int view_cmp(const rev_view_t *a, const rev_view_t *b)
{
    int c;

    if (a->t != b->t)
        return a->t < b->t ? -1 : 1;
    if ((c = bytes_cmp(a->iss, a->isslen, b->iss, b->isslen)) != 0)
        return c;
    return bytes_cmp(a->id, a->idlen, b->id, b->idlen);
}

static int entry_cmp(const rev_entry_t *a, const rev_entry_t *b)
{
    rev_view_t va = view_of_entry(a), vb = view_of_entry(b);

    return view_cmp(&va, &vb);
}

/* The selection: a max-heap of the `max` smallest entries seen so far. */
typedef struct rev_sel {
    const rev_entry_t **a;
    size_t n, max;
} rev_sel_t;

static void sel_down(rev_sel_t *s, size_t i)
{
    size_t c;
    const rev_entry_t *tmp;

    while ((c = 2 * i + 1) < s->n) {
        if (c + 1 < s->n && entry_cmp(s->a[c + 1], s->a[c]) > 0)
            c++;
        if (entry_cmp(s->a[c], s->a[i]) <= 0)
            break;
        tmp = s->a[i];
        s->a[i] = s->a[c];
        s->a[c] = tmp;
        i = c;
    }
}

static void sel_offer(rev_sel_t *s, const rev_entry_t *e)
{
    size_t i;
    const rev_entry_t *tmp;

    if (s->n < s->max) {
        for (i = s->n++, s->a[i] = e; i > 0 && entry_cmp(s->a[(i - 1) / 2], s->a[i]) < 0;
             i = (i - 1) / 2) {
            tmp = s->a[i];
            s->a[i] = s->a[(i - 1) / 2];
            s->a[(i - 1) / 2] = tmp;
        }
    } else if (entry_cmp(e, s->a[0]) < 0) {
        s->a[0] = e;
        sel_down(s, 0);
    }
}

static int sel_sort_cmp(const void *a, const void *b)
{
    return entry_cmp(*(const rev_entry_t *const *)a, *(const rev_entry_t *const *)b);
}

static void item_of(const rev_entry_t *e, auth_revoke_item_t *it)
{
    rev_view_t v = view_of_entry(e);

    memset(it, 0, sizeof(*it));
    it->t = e->t;
    it->scoped = e->table == REV_T_ISUB;
    memcpy(it->iss, v.iss, v.isslen);
    memcpy(it->id, v.id, v.idlen);
}

static bool live(const auth_revoke_t *r, const rev_entry_t *e, int64_t now)
{
    return e->table == REV_T_JTI ? e->t > now : !subject_expired(r, e->t, now);
}

static void select_table(const auth_revoke_t *r, const rev_table_t *t,
                         const rev_view_t *after, rev_sel_t *s, int64_t now)
{
    const rev_entry_t *e;
    rev_view_t v;
    size_t i;

    for (i = 0; i < t->nslots; i++)
        for (e = t->slots[i]; e != NULL; e = e->hnext) {
            v = view_of_entry(e);
            if (live(r, e, now) && (after == NULL || view_cmp(&v, after) > 0))
                sel_offer(s, e);
        }
}

size_t auth_revoke_list(auth_revoke_t *r, auth_revoke_kind_t kind,
                        const auth_revoke_item_t *after, auth_revoke_item_t *out,
                        size_t max, int64_t now)
{
    rev_sel_t s = {.max = max};
    rev_view_t av;
    size_t i;

    if (r == NULL || max == 0 || (s.a = malloc(max * sizeof(*s.a))) == NULL)
        return 0;
    if (after != NULL)
        av = (rev_view_t){.t = after->t,
                          .iss = after->iss,
                          .isslen = strnlen(after->iss, sizeof after->iss),
                          .id = after->id,
                          .idlen = strnlen(after->id, sizeof after->id)};
    pthread_rwlock_rdlock(&r->lock);
    if (kind == AUTH_REVOKE_JTI) {
        select_table(r, &r->tables[REV_T_JTI], after ? &av : NULL, &s, now);
    } else {
        select_table(r, &r->tables[REV_T_SUB], after ? &av : NULL, &s, now);
        select_table(r, &r->tables[REV_T_ISUB], after ? &av : NULL, &s, now);
    }
    qsort(s.a, s.n, sizeof(*s.a), sel_sort_cmp);
    for (i = 0; i < s.n; i++)
        item_of(s.a[i], &out[i]);
    pthread_rwlock_unlock(&r->lock);
    free(s.a);
    return s.n;
}

/* --- authoritative reload -------------------------------------------------- */

uint64_t auth_revoke_sync_begin(auth_revoke_t *r)
{
    uint64_t g;

    if (r == NULL)
        return 0;
    pthread_rwlock_wrlock(&r->lock);
    g = ++r->gen;
    pthread_rwlock_unlock(&r->lock);
    return g;
}

void auth_revoke_sync_end(auth_revoke_t *r, uint64_t gen)
{
    rev_entry_t *e, *next;
    size_t i;
    int t;

    if (r == NULL)
        return;
    pthread_rwlock_wrlock(&r->lock);
    for (t = 0; t < REV_T_N; t++)
        for (i = 0; i < r->tables[t].nslots; i++)
            for (e = r->tables[t].slots[i]; e != NULL; e = next) {
                next = e->hnext;
                if (e->gen < gen)
                    forget(r, e);
            }
    pthread_rwlock_unlock(&r->lock);
}

size_t auth_revoke_count(auth_revoke_t *r)
{
    size_t n;

    if (r == NULL)
        return 0;
    pthread_rwlock_rdlock(&r->lock);
    n = held(r);
    pthread_rwlock_unlock(&r->lock);
    return n;
}
