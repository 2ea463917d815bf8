/* topk.c — Space-Saving summaries, their merge, the per-minute ring of each
 * limit and the wire form; see rl_topk.h.
 *
 * Choices where the header is silent:
 *  - a counter is found by a 32-bit hash of its identity first, then the
 *    bytes: one pass over RL_TOPK_CAP integers on the request path;
 *  - ties in the sorted order go to the smaller identity (bytewise), so two
 *    replicas that hold the same numbers list them the same way;
 *  - a slice is reused when its minute comes round again: it is emptied
 *    first, so a window never holds a minute older than it says.
 */
#include "tollgate/rl_topk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/util_hash.h"

const unsigned rl_topk_windows[RL_TOPK_NWIN] = {1, 5, 15};

int rl_topk_window_index(unsigned minutes)
{
    for (int i = 0; i < RL_TOPK_NWIN; i++)
        if (rl_topk_windows[i] == minutes)
            return i;
    return -1;
}

static uint32_t id_hash(const char *id, size_t len)
{
    return (uint32_t)util_fnv1a(UTIL_FNV_SEED, id, len);
}

/* --- one summary ------------------------------------------------------------ */

void rl_topk_sum_init(rl_topk_sum_t *s)
{
    s->n = 0;
    s->total = 0;
}

static int find(const rl_topk_sum_t *s, uint32_t h, const char *id)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (s->hash[i] == h && strcmp(s->e[i].id, id) == 0)
            return (int)i;
    return -1;
}

static uint32_t min_index(const rl_topk_sum_t *s)
{
    uint32_t m = 0;

    for (uint32_t i = 1; i < s->n; i++)
        if (s->e[i].count < s->e[m].count)
            m = i;
    return m;
}

static void put(rl_topk_sum_t *s, uint32_t at, uint32_t h, const char *id, size_t len)
{
    if (len >= RL_TOPK_ID_LEN)
        len = RL_TOPK_ID_LEN - 1;
    memcpy(s->e[at].id, id, len);
    s->e[at].id[len] = '\0';
    s->hash[at] = h;
}

void rl_topk_sum_add(rl_topk_sum_t *s, const char *id, uint64_t inc)
{
    size_t len = strnlen(id, RL_TOPK_ID_LEN - 1);
    uint32_t h = id_hash(id, len), at;
    char cut[RL_TOPK_ID_LEN];
    int i;

    if (id[len] != '\0') { /* compare what would be kept */
        memcpy(cut, id, len);
        cut[len] = '\0';
        id = cut;
    }
    s->total += inc;
    i = find(s, h, id);
    if (i >= 0) {
        s->e[i].count += inc;
        return;
    }
    if (s->n < RL_TOPK_CAP) {
        at = s->n++;
        s->e[at].count = inc;
        s->e[at].err = 0;
    } else {
        at = min_index(s);
        s->e[at].err = s->e[at].count;
        s->e[at].count += inc;
    }
    put(s, at, h, id, len);
}

void rl_topk_sum_rehash(rl_topk_sum_t *s)
{
    for (uint32_t i = 0; i < s->n; i++)
        s->hash[i] = id_hash(s->e[i].id, strlen(s->e[i].id));
}

uint64_t rl_topk_sum_floor(const rl_topk_sum_t *s)
{
    return s->n < RL_TOPK_CAP ? 0 : s->e[min_index(s)].count;
}

static int by_count(const void *a, const void *b)
{
    const rl_topk_entry_t *x = *(const rl_topk_entry_t *const *)a;
    const rl_topk_entry_t *y = *(const rl_topk_entry_t *const *)b;

    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->id, y->id);
}

size_t rl_topk_sum_sorted(const rl_topk_sum_t *s, const rl_topk_entry_t **out, size_t max)
{
    const rl_topk_entry_t *all[RL_TOPK_CAP];
    size_t n = s->n;

    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        all[i] = &s->e[i];
    qsort(all, n, sizeof(all[0]), by_count);
    if (n > max)
        n = max;
    memcpy(out, all, n * sizeof(all[0]));
    return n;
}

/* The union with floors filled in, before cutting to RL_TOPK_CAP. */
typedef struct {
    size_t n;
    rl_topk_entry_t e[2 * RL_TOPK_CAP];
    const rl_topk_entry_t *p[2 * RL_TOPK_CAP];
} merge_buf_t;

void rl_topk_sum_merge(rl_topk_sum_t *dst, const rl_topk_sum_t *src)
{
    uint64_t fd = rl_topk_sum_floor(dst), fs = rl_topk_sum_floor(src);
    merge_buf_t *m;
    uint32_t i;

    if (src->n == 0) {
        dst->total += src->total;
        return;
    }
    m = malloc(sizeof(*m));
    if (m == NULL)
        return; /* dst stays what it was: an undercount, never garbage */
    m->n = 0;
    for (i = 0; i < dst->n; i++) {
        int j = find(src, dst->hash[i], dst->e[i].id);

        m->e[m->n] = dst->e[i];
        m->e[m->n].count += j >= 0 ? src->e[j].count : fs;
        m->e[m->n].err += j >= 0 ? src->e[j].err : fs;
        m->n++;
    }
    for (i = 0; i < src->n; i++) {
        if (find(dst, src->hash[i], src->e[i].id) >= 0)
            continue;
        m->e[m->n] = src->e[i];
        m->e[m->n].count += fd;
        m->e[m->n].err += fd;
        m->n++;
    }
    for (i = 0; i < m->n; i++)
        m->p[i] = &m->e[i];
    qsort(m->p, m->n, sizeof(m->p[0]), by_count);
    dst->n = m->n < RL_TOPK_CAP ? (uint32_t)m->n : RL_TOPK_CAP;
    for (i = 0; i < dst->n; i++)
        dst->e[i] = *m->p[i];
    rl_topk_sum_rehash(dst);
    dst->total += src->total;
    free(m);
}

/* --- spelling --------------------------------------------------------------- */

bool rl_name_may_be_credential(const char *name)
{
    static const char *const words[] = {"auth",       "token",   "key",  "secret",
                                        "cookie",     "session", "pass", "signature",
                                        "credential", "csrf",    "xsrf", "jwt"};

    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasestr(name, words[i]) != NULL) /* as written: "Authorization" */
            return true;
    return false;
}

/* Copy `identity` with each secret header part's value replaced by '*'
 * (parts are '|'-separated in `by` order; a value never holds a raw '|'). */
size_t rl_topk_redact(const rl_limit_t *lim, const char *identity, char *out, size_t outlen)
{
    size_t o = 0, part = 0;
    const char *p = identity;

    for (;;) {
        const char *end = strchr(p, '|'), *eq;
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool hide = part < lim->nby && lim->by[part].kind == RL_BY_HEADER &&
                    lim->by[part].name != NULL &&
                    rl_name_may_be_credential(lim->by[part].name);

        eq = memchr(p, '=', len);
        if (hide && eq != NULL)
            len = (size_t)(eq - p) + 1;
        if (o + len + 2 >= outlen)
            break; /* cannot happen: redaction only shortens */
        memcpy(out + o, p, len);
        o += len;
        if (hide && eq != NULL)
            out[o++] = '*';
        if (end == NULL)
            break;
        out[o++] = '|';
        p = end + 1;
        part++;
    }
    out[o] = '\0';
    return o;
}

void rl_topk_spell(const rl_limit_t *lim, const char *identity, char *out)
{
    char buf[RL_MAX_IDENTITY_LEN + 8];
    bool any = false;
    size_t len;

    for (size_t i = 0; i < lim->nby; i++)
        any |= lim->by[i].kind == RL_BY_HEADER;
    if (!any) { /* the common case: no copy unless it is too long */
        len = strnlen(identity, sizeof(buf) - 1);
        if (len < RL_TOPK_ID_LEN) {
            memcpy(out, identity, len);
            out[len] = '\0';
            return;
        }
        memcpy(buf, identity, len);
        buf[len] = '\0';
    } else {
        len = rl_topk_redact(lim, identity, buf, sizeof(buf));
    }
    if (len < RL_TOPK_ID_LEN) {
        memcpy(out, buf, len + 1);
        return;
    }
    snprintf(out, RL_TOPK_ID_LEN, "%.38s~%016llx", buf,
             (unsigned long long)util_hash_bytes(buf, len));
}

/* --- the recorder ----------------------------------------------------------- */

typedef struct slice {
    int64_t minute; /* -1: never used */
    rl_topk_sum_t s[RL_TOPK_NKIND];
} slice_t;

typedef struct slot {
    char name[RL_TOPK_NAME_LEN];
    uint32_t hash;
    int64_t last_minute;
    slice_t ring[RL_TOPK_SLICES];
} slot_t;

struct rl_topk {
    size_t n;
    uint64_t dropped;
    slot_t *slot[RL_TOPK_MAX_LIMITS];
};

rl_topk_t *rl_topk_new(void)
{
    return calloc(1, sizeof(rl_topk_t));
}

void rl_topk_free(rl_topk_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->slot[i]);
    free(t);
}

uint64_t rl_topk_dropped(const rl_topk_t *t)
{
    return t->dropped;
}

static void slot_init(slot_t *sl, const char *name, uint32_t h, int64_t minute)
{
    snprintf(sl->name, sizeof(sl->name), "%s", name);
    sl->hash = h;
    sl->last_minute = minute;
    for (int i = 0; i < RL_TOPK_SLICES; i++)
        sl->ring[i].minute = -1;
}

/* The slot of `name`: found, new, or an idle one reused; NULL when none. */
static slot_t *slot_of(rl_topk_t *t, const char *name, int64_t minute)
{
    size_t len = strlen(name), i;
    uint32_t h = id_hash(name, len);
    slot_t *sl;

    if (len >= RL_TOPK_NAME_LEN)
        return NULL;
    for (i = 0; i < t->n; i++)
        if (t->slot[i]->hash == h && strcmp(t->slot[i]->name, name) == 0)
            return t->slot[i];
    if (t->n < RL_TOPK_MAX_LIMITS) {
        sl = malloc(sizeof(*sl));
        if (sl == NULL)
            return NULL;
        t->slot[t->n++] = sl;
        slot_init(sl, name, h, minute);
        return sl;
    }
    for (i = 0; i < t->n; i++)
        if (t->slot[i]->last_minute + RL_TOPK_SLICES <= minute) {
            slot_init(t->slot[i], name, h, minute);
            return t->slot[i];
        }
    return NULL;
}

void rl_topk_record(rl_topk_t *t, int64_t now_ms, const rl_limit_t *lim,
                    const char *identity, bool denied)
{
    int64_t minute = now_ms / RL_TOPK_SLICE_MS;
    slot_t *sl = slot_of(t, lim->name, minute);
    char id[RL_TOPK_ID_LEN];
    slice_t *sc;

    if (sl == NULL) {
        t->dropped++;
        return;
    }
    sc = &sl->ring[minute % RL_TOPK_SLICES];
    if (sc->minute != minute) {
        sc->minute = minute;
        rl_topk_sum_init(&sc->s[RL_TOPK_REQUESTS]);
        rl_topk_sum_init(&sc->s[RL_TOPK_DENIED]);
    }
    sl->last_minute = minute;
    rl_topk_spell(lim, identity, id);
    rl_topk_sum_add(&sc->s[RL_TOPK_REQUESTS], id, 1);
    if (denied)
        rl_topk_sum_add(&sc->s[RL_TOPK_DENIED], id, 1);
}

void rl_topk_lview_init(rl_topk_lview_t *lv, const char *name)
{
    snprintf(lv->name, sizeof(lv->name), "%s", name);
    for (int w = 0; w < RL_TOPK_NWIN; w++)
        for (int k = 0; k < RL_TOPK_NKIND; k++)
            rl_topk_sum_init(&lv->w[w][k]);
}

void rl_topk_lview_merge(rl_topk_lview_t *dst, const rl_topk_lview_t *src)
{
    for (int w = 0; w < RL_TOPK_NWIN; w++)
        for (int k = 0; k < RL_TOPK_NKIND; k++)
            rl_topk_sum_merge(&dst->w[w][k], &src->w[w][k]);
}

/* Slices of ages 0..W into each window W, in one pass over the ring. */
static void slot_view(const slot_t *sl, int64_t minute, rl_topk_lview_t *lv)
{
    rl_topk_sum_t acc[RL_TOPK_NKIND];
    int w = 0;

    rl_topk_lview_init(lv, sl->name);
    rl_topk_sum_init(&acc[0]);
    rl_topk_sum_init(&acc[1]);
    for (int64_t age = 0; age < RL_TOPK_SLICES && w < RL_TOPK_NWIN; age++) {
        const slice_t *sc;

        if (minute - age >= 0) {
            sc = &sl->ring[(minute - age) % RL_TOPK_SLICES];
            if (sc->minute == minute - age)
                for (int k = 0; k < RL_TOPK_NKIND; k++)
                    rl_topk_sum_merge(&acc[k], &sc->s[k]);
        }
        if (age == (int64_t)rl_topk_windows[w]) {
            lv->w[w][0] = acc[0];
            lv->w[w][1] = acc[1];
            w++;
        }
    }
}

void rl_topk_view_reset(rl_topk_view_t *v)
{
    v->n = 0;
}

void rl_topk_view(const rl_topk_t *t, int64_t now_ms, rl_topk_view_t *out)
{
    int64_t minute = now_ms / RL_TOPK_SLICE_MS;

    out->n = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->slot[i]->last_minute + RL_TOPK_SLICES <= minute)
            continue; /* nothing left in any window */
        slot_view(t->slot[i], minute, &out->lim[out->n++]);
    }
}

const rl_topk_lview_t *rl_topk_view_find(const rl_topk_view_t *v, const char *name)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->lim[i].name, name) == 0)
            return &v->lim[i];
    return NULL;
}

void rl_topk_view_merge(rl_topk_view_t *dst, const rl_topk_view_t *src)
{
    for (size_t i = 0; i < src->n; i++) {
        rl_topk_lview_t *d = (rl_topk_lview_t *)rl_topk_view_find(dst, src->lim[i].name);

        if (d == NULL) {
            if (dst->n == RL_TOPK_MAX_LIMITS)
                continue;
            d = &dst->lim[dst->n++];
            rl_topk_lview_init(d, src->lim[i].name);
        }
        rl_topk_lview_merge(d, &src->lim[i]);
    }
}
