/* ban.c — bans of an IP, a CIDR or a client id; see auth_ban.h.
 *
 * One hash table holds every ban under a binary key: a family byte ('4',
 * '6', or 'c' for a client), the prefix length, then the masked address (4
 * or 16 bytes) or the client id.  count4[] / count6[] count the bans of
 * each prefix length, so a check looks up only the lengths in use.  An
 * atomic count of entries lets a check skip the lock when there is none.
 */
#include "tollgate/auth_ban.h"
#include "tollgate/util_hash.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAN_KEY_MAX (2 + AUTH_BAN_TARGET_MAX)
#define BAN_SLOTS_MIN 16
#define BAN_SLOTS_MAX ((size_t)1 << 20)
#define BAN_ADDR_TEXT 64 /* longest address text looked at */

typedef struct ban_key {
    unsigned char b[BAN_KEY_MAX];
    size_t len;
    uint64_t hash;
} ban_key_t;

typedef struct ban_node {
    util_hnode_t hn;
    size_t klen;
    unsigned char key[BAN_KEY_MAX];
    auth_ban_entry_t e;
} ban_node_t;

struct auth_ban {
    pthread_rwlock_t lock;
    util_htab_t index;
    size_t cap;
    unsigned count4[33], count6[129]; /* bans per prefix length */
    atomic_size_t n;                  /* index.count, read without the lock */
};

/* A parsed target: an address (a host is a /32 or /128) or a client id. */
typedef struct ban_target {
    auth_ban_kind_t kind;
    int family; /* AF_INET, AF_INET6; 0 for a client */
    unsigned char addr[16];
    unsigned plen;
    const char *id; /* a client's id, decoded: idbuf */
    size_t idlen;
    char idbuf[AUTH_MAX_ID_LEN];
} ban_target_t;

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

/* ---- targets ---------------------------------------------------------- */

/* Address text `s` (n bytes) into t->family/addr; a v4-mapped IPv6 one
 * becomes IPv4, *mapped set.  0 or -1. */
static int parse_addr(const char *s, size_t n, ban_target_t *t, bool *mapped)
{
    static const unsigned char v4map[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char buf[BAN_ADDR_TEXT];

    *mapped = false;
    if (n == 0 || n >= sizeof buf || memchr(s, '\0', n) != NULL)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, t->addr) == 1) {
        t->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, t->addr) != 1)
        return -1;
    t->family = AF_INET6;
    if (memcmp(t->addr, v4map, 12) == 0) {
        memmove(t->addr, t->addr + 12, 4);
        t->family = AF_INET;
        *mapped = true;
    }
    return 0;
}

static unsigned full_len(int family)
{
    return family == AF_INET ? 32 : 128;
}

/* Zero the bits of `addr` past `plen`; true when one was set. */
static bool mask_addr(unsigned char *addr, int family, unsigned plen)
{
    unsigned nbytes = full_len(family) / 8, i;
    bool had = false;

    for (i = 0; i < nbytes; i++) {
        unsigned keep = plen >= 8 * (i + 1) ? 8 : plen > 8 * i ? plen - 8 * i : 0;
        unsigned char m = keep == 0 ? 0 : (unsigned char)(0xff << (8 - keep));

        had |= (addr[i] & (unsigned char)~m) != 0;
        addr[i] &= m;
    }
    return had;
}

/* The prefix length text `s` (n bytes): 1 to 3 digits.  -1 when not. */
static int parse_plen(const char *s, size_t n)
{
    int v = 0;

    if (n == 0 || n > 3)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int parse_cidr(const char *s, size_t n, const auth_ban_rules_t *rules,
                      ban_target_t *t, char *err, size_t errlen)
{
    const char *slash = memchr(s, '/', n);
    bool mapped;
    int plen;
    unsigned min;
    char net[BAN_ADDR_TEXT], msg[160];

    if (slash == NULL) {
        set_err(err, errlen, "a cidr target is ADDRESS/PREFIX");
        return -1;
    }
    plen = parse_plen(slash + 1, (size_t)(s + n - slash - 1));
    if (parse_addr(s, (size_t)(slash - s), t, &mapped) != 0 || plen < 0) {
        set_err(err, errlen, "a cidr target is ADDRESS/PREFIX");
        return -1;
    }
    if (mapped) {
        if (plen < 96) {
            set_err(err, errlen, "an IPv4-mapped network needs a prefix of 96 or more");
            return -1;
        }
        plen -= 96;
    }
    if ((unsigned)plen > full_len(t->family)) {
        set_err(err, errlen, "the prefix is longer than the address");
        return -1;
    }
    if (plen == 0) {
        set_err(err, errlen, "a /0 would ban every client");
        return -1;
    }
    min = rules == NULL          ? 1
          : t->family == AF_INET ? rules->min_prefix_v4
                                 : rules->min_prefix_v6;
    if ((unsigned)plen < min) {
        snprintf(msg, sizeof msg, "the prefix is wider than auth.bans.min_prefix_v%c (/%u)",
                 t->family == AF_INET ? '4' : '6', min);
        set_err(err, errlen, msg);
        return -1;
    }
    t->plen = (unsigned)plen;
    if (mask_addr(t->addr, t->family, t->plen)) {
        inet_ntop(t->family, t->addr, net, sizeof net);
        snprintf(msg, sizeof msg, "host bits set: the network is cidr:%s/%u", net, t->plen);
        set_err(err, errlen, msg);
        return -1;
    }
    t->kind = t->plen == full_len(t->family) ? AUTH_BAN_IP : AUTH_BAN_CIDR;
    return 0;
}

static int hex_val(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* A byte written raw in a client target; any other is %XX. */
static bool id_raw(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != '%';
}

/* The id text s[0..n), raw visible ASCII and %XX escapes, decoded into
 * t->idbuf: 1 to AUTH_MAX_ID_LEN bytes, none a control byte (a JWT sub
 * may hold a space or UTF-8, never a control). */
static bool id_decode(const char *s, size_t n, ban_target_t *t)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= n || (hi = hex_val(s[i + 1])) < 0 || (lo = hex_val(s[i + 2])) < 0)
                return false;
            c = hi * 16 + lo;
            i += 2;
        } else if (!id_raw((unsigned char)c)) {
            return false;
        }
        if (c < 0x20 || c == 0x7f || o == AUTH_MAX_ID_LEN)
            return false;
        t->idbuf[o++] = (char)c;
    }
    t->id = t->idbuf;
    t->idlen = o;
    return o > 0;
}

static bool has_prefix(const char *s, size_t n, const char *p)
{
    size_t pl = strlen(p);

    return n >= pl && memcmp(s, p, pl) == 0;
}

static int parse_target(const char *in, size_t len, const auth_ban_rules_t *rules,
                        ban_target_t *t, char *err, size_t errlen)
{
    bool mapped;

    memset(t, 0, sizeof *t);
    if (in == NULL) {
        set_err(err, errlen, "no target");
        return -1;
    }
    if (has_prefix(in, len, "ip:")) {
        if (parse_addr(in + 3, len - 3, t, &mapped) != 0) {
            set_err(err, errlen, "an ip target is ip:ADDRESS (IPv4 or IPv6)");
            return -1;
        }
        t->kind = AUTH_BAN_IP;
        t->plen = full_len(t->family);
        return 0;
    }
    if (has_prefix(in, len, "cidr:"))
        return parse_cidr(in + 5, len - 5, rules, t, err, errlen);
    if (has_prefix(in, len, "client:")) {
        if (!id_decode(in + 7, len - 7, t)) {
            set_err(err, errlen,
                    "a client target is client:ID (1 to 128 visible ASCII bytes)");
            return -1;
        }
        t->kind = AUTH_BAN_CLIENT;
        return 0;
    }
    set_err(err, errlen, "a target is ip:ADDRESS, cidr:NETWORK/PREFIX or client:ID");
    return -1;
}

static int format_target(const ban_target_t *t, char *out, size_t outlen)
{
    char a[BAN_ADDR_TEXT];
    int n;

    if (t->kind == AUTH_BAN_CLIENT) {
        static const char hex[] = "0123456789ABCDEF";
        size_t o = 7;

        if (outlen < 8 + 3 * t->idlen)
            return -1;
        memcpy(out, "client:", 7);
        for (size_t i = 0; i < t->idlen; i++) {
            unsigned char c = (unsigned char)t->id[i];

            if (id_raw(c)) {
                out[o++] = (char)c;
            } else {
                out[o++] = '%';
                out[o++] = hex[c >> 4];
                out[o++] = hex[c & 15];
            }
        }
        out[o] = '\0';
        return 0;
    }
    if (inet_ntop(t->family, t->addr, a, sizeof a) == NULL)
        return -1;
    else if (t->kind == AUTH_BAN_IP)
        n = snprintf(out, outlen, "ip:%s", a);
    else
        n = snprintf(out, outlen, "cidr:%s/%u", a, t->plen);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int auth_ban_target_parse(const char *in, size_t len, const auth_ban_rules_t *rules,
                          char *out, size_t outlen, auth_ban_kind_t *kind, char *err,
                          size_t errlen)
{
    ban_target_t t;

    if (parse_target(in, len, rules, &t, err, errlen) != 0)
        return -1;
    if (format_target(&t, out, outlen) != 0) {
        set_err(err, errlen, "target too long");
        return -1;
    }
    if (kind != NULL)
        *kind = t.kind;
    return 0;
}

void auth_ban_reason_clean(const char *in, size_t len, char *out, size_t outlen)
{
    size_t i, n = len < AUTH_BAN_REASON_MAX ? len : AUTH_BAN_REASON_MAX;

    if (outlen == 0)
        return;
    if (n >= outlen)
        n = outlen - 1;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)in[i];

        out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    out[n] = '\0';
}

/* A decimal of 1 to 18 digits into *v.  Returns what follows, or NULL. */
static const char *parse_ms(const char *s, const char *end, int64_t *v)
{
    const char *p = s;

    *v = 0;
    while (p < end && *p >= '0' && *p <= '9' && p - s < 18)
        *v = *v * 10 + (*p++ - '0');
    return p == s ? NULL : p;
}

int auth_ban_record_parse(const char *target, size_t tlen, const char *rec, size_t rlen,
                          auth_ban_entry_t *e)
{
    const char *end = rec + rlen, *p, *sp;
    ban_target_t t;

    memset(e, 0, sizeof *e);
    if (parse_target(target, tlen, NULL, &t, NULL, 0) != 0 ||
        format_target(&t, e->target, sizeof e->target) != 0 || strlen(e->target) != tlen ||
        memcmp(e->target, target, tlen) != 0)
        return -1; /* not canonical: never written by tollgate */
    p = parse_ms(rec, end, &e->until_ms);
    if (p == NULL || p >= end || *p != ' ')
        return -1;
    p = parse_ms(p + 1, end, &e->created_ms);
    if (p == NULL || p >= end || *p != ' ')
        return -1;
    p++;
    sp = memchr(p, ' ', (size_t)(end - p));
    if (sp == NULL)
        sp = end;
    if (sp == p || (size_t)(sp - p) > AUTH_BAN_ACTOR_MAX)
        return -1;
    auth_ban_reason_clean(p, (size_t)(sp - p), e->actor, sizeof e->actor);
    if (sp < end)
        auth_ban_reason_clean(sp + 1, (size_t)(end - sp - 1), e->reason, sizeof e->reason);
    return 0;
}

/* ---- the set ---------------------------------------------------------- */

static void key_of(const ban_target_t *t, ban_key_t *k)
{
    if (t->kind == AUTH_BAN_CLIENT) {
        k->b[0] = 'c';
        k->b[1] = 0;
        memcpy(k->b + 2, t->id, t->idlen);
        k->len = 2 + t->idlen;
    } else {
        k->b[0] = t->family == AF_INET ? '4' : '6';
        k->b[1] = (unsigned char)t->plen;
        memcpy(k->b + 2, t->addr, full_len(t->family) / 8);
        k->len = 2 + full_len(t->family) / 8;
    }
    k->hash = util_hash_bytes((const char *)k->b, k->len);
}

static ban_node_t *lookup(const auth_ban_t *b, const ban_key_t *k)
{
    util_hnode_t *n;
    ban_node_t *e;

    for (n = util_htab_chain(&b->index, k->hash); n != NULL; n = n->next) {
        e = UTIL_HNODE_ENTRY(n, ban_node_t, hn);
        if (n->hash == k->hash && e->klen == k->len && memcmp(e->key, k->b, k->len) == 0)
            return e;
    }
    return NULL;
}

static unsigned *plen_count(auth_ban_t *b, const ban_node_t *e)
{
    if (e->key[0] == '4')
        return &b->count4[e->key[1]];
    if (e->key[0] == '6')
        return &b->count6[e->key[1]];
    return NULL;
}

static void forget(auth_ban_t *b, ban_node_t *e)
{
    unsigned *c = plen_count(b, e);

    if (c != NULL)
        (*c)--;
    util_htab_del(&b->index, &e->hn);
    atomic_store(&b->n, b->index.count);
    free(e);
}

/* Every node, for `fn`; `fn` may forget the node it is given. */
static void each(auth_ban_t *b, void (*fn)(auth_ban_t *, ban_node_t *, void *), void *arg)
{
    util_hnode_t *n, *next;

    for (size_t i = 0; i < b->index.nslots; i++)
        for (n = b->index.slots[i]; n != NULL; n = next) {
            next = n->next;
            fn(b, UTIL_HNODE_ENTRY(n, ban_node_t, hn), arg);
        }
}

static void drop_if_over(auth_ban_t *b, ban_node_t *e, void *arg)
{
    if (e->e.until_ms <= *(const int64_t *)arg)
        forget(b, e);
}

static void drop(auth_ban_t *b, ban_node_t *e, void *arg)
{
    (void)arg;
    forget(b, e);
}

auth_ban_t *auth_ban_new(size_t max_entries)
{
    auth_ban_t *b = calloc(1, sizeof *b);

    if (b == NULL)
        return NULL;
    b->cap = max_entries > 0 ? max_entries : AUTH_BAN_DEFAULT_MAX;
    if (util_htab_init(&b->index, BAN_SLOTS_MIN,
                       util_pow2_at_least(b->cap, BAN_SLOTS_MAX)) != 0)
        goto out_free_set;
    if (pthread_rwlock_init(&b->lock, NULL) != 0)
        goto out_free_index;
    return b;

out_free_index:
    util_htab_destroy(&b->index);
out_free_set:
    free(b);
    return NULL;
}

void auth_ban_free(auth_ban_t *b)
{
    if (b == NULL)
        return;
    each(b, drop, NULL);
    util_htab_destroy(&b->index);
    pthread_rwlock_destroy(&b->lock);
    free(b);
}

/* Add or replace, the write lock held. */
static int put_locked(auth_ban_t *b, const auth_ban_entry_t *e, int64_t now)
{
    ban_target_t t;
    ban_key_t k;
    ban_node_t *n;
    unsigned *c;

    if (e->until_ms <= now || parse_target(e->target, strnlen(e->target, sizeof e->target),
                                           NULL, &t, NULL, 0) != 0)
        return -1;
    key_of(&t, &k);
    n = lookup(b, &k);
    if (n == NULL) {
        if (b->index.count >= b->cap)
            each(b, drop_if_over, &now);
        if (b->index.count >= b->cap)
            return -1;
        n = calloc(1, sizeof *n);
        if (n == NULL)
            return -1;
        n->hn.hash = k.hash;
        n->klen = k.len;
        memcpy(n->key, k.b, k.len);
        util_htab_add(&b->index, &n->hn);
        c = plen_count(b, n);
        if (c != NULL)
            (*c)++;
        atomic_store(&b->n, b->index.count);
    }
    n->e = *e;
    n->e.target[AUTH_BAN_TARGET_MAX] = '\0';
    n->e.actor[AUTH_BAN_ACTOR_MAX] = '\0';
    n->e.reason[AUTH_BAN_REASON_MAX] = '\0';
    return 0;
}

int auth_ban_put(auth_ban_t *b, const auth_ban_entry_t *e, int64_t now_ms)
{
    int rc;

    if (b == NULL || e == NULL)
        return -1;
    pthread_rwlock_wrlock(&b->lock);
    rc = put_locked(b, e, now_ms);
    pthread_rwlock_unlock(&b->lock);
    return rc;
}

bool auth_ban_remove(auth_ban_t *b, const char *target, int64_t now_ms)
{
    ban_target_t t;
    ban_key_t k;
    ban_node_t *n;
    bool live = false;

    if (b == NULL || target == NULL ||
        parse_target(target, strlen(target), NULL, &t, NULL, 0) != 0)
        return false;
    key_of(&t, &k);
    pthread_rwlock_wrlock(&b->lock);
    n = lookup(b, &k);
    if (n != NULL) {
        live = n->e.until_ms > now_ms;
        forget(b, n);
    }
    pthread_rwlock_unlock(&b->lock);
    return live;
}

size_t auth_ban_replace(auth_ban_t *b, const auth_ban_entry_t *e, size_t n, int64_t now_ms)
{
    size_t held;

    if (b == NULL)
        return 0;
    pthread_rwlock_wrlock(&b->lock);
    each(b, drop, NULL);
    for (size_t i = 0; i < n; i++)
        (void)put_locked(b, &e[i], now_ms);
    held = b->index.count;
    pthread_rwlock_unlock(&b->lock);
    return held;
}

/* The live ban under `k`, read lock held: its end, or 0. */
static int64_t live_until(const auth_ban_t *b, const ban_key_t *k, int64_t now)
{
    const ban_node_t *n = lookup(b, k);

    return n != NULL && n->e.until_ms > now ? n->e.until_ms : 0;
}

bool auth_ban_check_ip(auth_ban_t *b, const char *ip, int64_t now_ms, int64_t *until_ms)
{
    ban_target_t t = {.kind = AUTH_BAN_CIDR};
    unsigned char addr[16];
    const unsigned *counts;
    ban_key_t k;
    int64_t until = 0;
    bool mapped;

    if (b == NULL || ip == NULL || atomic_load(&b->n) == 0 ||
        parse_addr(ip, strlen(ip), &t, &mapped) != 0)
        return false;
    memcpy(addr, t.addr, sizeof addr);
    pthread_rwlock_rdlock(&b->lock);
    counts = t.family == AF_INET ? b->count4 : b->count6;
    for (int plen = (int)full_len(t.family); plen > 0 && until == 0; plen--) {
        if (counts[plen] == 0)
            continue;
        memcpy(t.addr, addr, sizeof addr);
        t.plen = (unsigned)plen;
        mask_addr(t.addr, t.family, t.plen);
        key_of(&t, &k);
        until = live_until(b, &k, now_ms);
    }
    pthread_rwlock_unlock(&b->lock);
    if (until_ms != NULL)
        *until_ms = until;
    return until != 0;
}

bool auth_ban_check_client(auth_ban_t *b, const char *id, int64_t now_ms, int64_t *until_ms)
{
    ban_target_t t = {.kind = AUTH_BAN_CLIENT};
    ban_key_t k;
    int64_t until;

    if (b == NULL || id == NULL || atomic_load(&b->n) == 0)
        return false;
    t.id = id;
    t.idlen = strlen(id);
    if (t.idlen > AUTH_MAX_ID_LEN)
        return false;
    key_of(&t, &k);
    pthread_rwlock_rdlock(&b->lock);
    until = live_until(b, &k, now_ms);
    pthread_rwlock_unlock(&b->lock);
    if (until_ms != NULL)
        *until_ms = until;
    return until != 0;
}

size_t auth_ban_expire(auth_ban_t *b, int64_t now_ms)
{
    size_t n;

    if (b == NULL)
        return 0;
    pthread_rwlock_wrlock(&b->lock);
    each(b, drop_if_over, &now_ms);
    n = b->index.count;
    pthread_rwlock_unlock(&b->lock);
    return n;
}

typedef struct count_arg {
    int64_t now;
    size_t n;
} count_arg_t;

static void count_live(auth_ban_t *b, ban_node_t *e, void *arg)
{
    count_arg_t *c = arg;

    (void)b;
    c->n += e->e.until_ms > c->now;
}

size_t auth_ban_count(auth_ban_t *b, int64_t now_ms)
{
    count_arg_t c = {.now = now_ms};

    if (b == NULL)
        return 0;
    pthread_rwlock_rdlock(&b->lock);
    each(b, count_live, &c);
    pthread_rwlock_unlock(&b->lock);
    return c.n;
}

typedef struct list_arg {
    int64_t now;
    const char *after;
    const auth_ban_entry_t **v;
    size_t n;
} list_arg_t;

static void collect(auth_ban_t *b, ban_node_t *e, void *arg)
{
    list_arg_t *l = arg;

    (void)b;
    if (e->e.until_ms > l->now && (l->after == NULL || strcmp(e->e.target, l->after) > 0))
        l->v[l->n++] = &e->e;
}

static int by_target(const void *a, const void *b)
{
    return strcmp((*(const auth_ban_entry_t *const *)a)->target,
                  (*(const auth_ban_entry_t *const *)b)->target);
}

size_t auth_ban_list(auth_ban_t *b, int64_t now_ms, const char *after,
                     auth_ban_entry_t *out, size_t max, bool *more)
{
    list_arg_t l = {.now = now_ms, .after = after != NULL && *after ? after : NULL};
    size_t i;
    bool ok;

    *more = false;
    if (b == NULL || max == 0)
        return 0;
    pthread_rwlock_rdlock(&b->lock);
    l.v = malloc((b->index.count + 1) * sizeof *l.v);
    ok = l.v != NULL;
    if (ok) {
        each(b, collect, &l);
        qsort(l.v, l.n, sizeof *l.v, by_target);
        for (i = 0; i < l.n && i < max; i++)
            out[i] = *l.v[i];
        *more = l.n > max;
        l.n = i;
    }
    pthread_rwlock_unlock(&b->lock);
    free(l.v);
    return ok ? l.n : 0;
}
