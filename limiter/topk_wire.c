/* topk_wire.c — one limit's top lists as text, and back; see rl_topk.h.
 *
 * The decoder reads what another replica wrote into Redis: anyone who can
 * write to Redis can write anything there, so it trusts no length, number
 * or character, and it never reads past `len` (the input need not be
 * NUL-terminated).
 */
#include "tollgate/rl_topk.h"

#include <stdio.h>
#include <string.h>

static const char kind_char[RL_TOPK_NKIND] = {'r', 'd'};

int rl_topk_encode(const rl_topk_lview_t *lv, char *out, size_t outlen)
{
    size_t o = 0;
    int n;

#define EMIT(...)                                                                          \
    do {                                                                                   \
        n = snprintf(out + o, outlen - o, __VA_ARGS__);                                    \
        if (n < 0 || (size_t)n >= outlen - o)                                              \
            return -1;                                                                     \
        o += (size_t)n;                                                                    \
    } while (0)

    if (outlen == 0)
        return -1;
    EMIT("tg-top 1\n");
    for (int w = 0; w < RL_TOPK_NWIN; w++)
        for (int k = 0; k < RL_TOPK_NKIND; k++) {
            const rl_topk_sum_t *s = &lv->w[w][k];

            EMIT("%u %c %u %llu\n", rl_topk_windows[w], kind_char[k], (unsigned)s->n,
                 (unsigned long long)s->total);
            for (uint32_t i = 0; i < s->n; i++)
                EMIT("%llu %llu %s\n", (unsigned long long)s->e[i].count,
                     (unsigned long long)s->e[i].err, s->e[i].id);
        }
#undef EMIT
    return (int)o;
}

typedef struct {
    const char *p, *end;
    char *err;
    size_t errlen;
} rd_t;

static int fail(rd_t *r, const char *why)
{
    snprintf(r->err, r->errlen, "%s", why);
    return -1;
}

/* A decimal of 1..15 digits (no sign, no leading zero but "0"). */
static int rd_num(rd_t *r, uint64_t *v)
{
    const char *s = r->p;
    uint64_t x = 0;

    while (r->p < r->end && *r->p >= '0' && *r->p <= '9' && r->p - s < 16)
        x = x * 10 + (uint64_t)(*r->p++ - '0');
    if (r->p == s || r->p - s > 15 || (*s == '0' && r->p - s > 1) || x > RL_TOPK_COUNT_MAX)
        return fail(r, "bad number");
    *v = x;
    return 0;
}

static int rd_char(rd_t *r, char c)
{
    if (r->p >= r->end || *r->p != c)
        return fail(r, c == '\n' ? "expected end of line" : "expected a separator");
    r->p++;
    return 0;
}

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("._:@=%|~*-", c) != NULL); /* strchr finds the NUL */
}

static int rd_id(rd_t *r, char *out)
{
    size_t n = 0;

    while (r->p < r->end && *r->p != '\n') {
        if (!id_char(*r->p) || n + 1 >= RL_TOPK_ID_LEN)
            return fail(r, "bad identity");
        out[n++] = *r->p++;
    }
    if (n == 0)
        return fail(r, "empty identity");
    out[n] = '\0';
    return 0;
}

static int rd_section(rd_t *r, int w, int k, rl_topk_sum_t *s)
{
    uint64_t win, n, total, count, err;
    rl_topk_entry_t *e;

    if (rd_num(r, &win) || rd_char(r, ' ') || rd_char(r, kind_char[k]) || rd_char(r, ' ') ||
        rd_num(r, &n) || rd_char(r, ' ') || rd_num(r, &total) || rd_char(r, '\n'))
        return -1;
    if (win != rl_topk_windows[w])
        return fail(r, "windows out of order");
    if (n > RL_TOPK_CAP)
        return fail(r, "too many entries");
    rl_topk_sum_init(s);
    s->total = total;
    for (uint64_t i = 0; i < n; i++) {
        e = &s->e[s->n];
        if (rd_num(r, &count) || rd_char(r, ' ') || rd_num(r, &err) || rd_char(r, ' ') ||
            rd_id(r, e->id) || rd_char(r, '\n'))
            return -1;
        if (err > count)
            return fail(r, "error above count");
        for (uint32_t j = 0; j < s->n; j++)
            if (strcmp(s->e[j].id, e->id) == 0)
                return fail(r, "identity listed twice");
        e->count = count;
        e->err = err;
        s->n++;
    }
    return 0;
}

int rl_topk_decode(const char *buf, size_t len, rl_topk_lview_t *out, char *err,
                   size_t errlen)
{
    static const char magic[] = "tg-top 1\n";
    rd_t r = {buf, buf + len, err, errlen};

    rl_topk_lview_init(out, "");
    if (len > RL_TOPK_WIRE_MAX)
        return fail(&r, "too long");
    if (len < sizeof(magic) - 1 || memcmp(buf, magic, sizeof(magic) - 1) != 0)
        return fail(&r, "not a top list");
    r.p += sizeof(magic) - 1;
    for (int w = 0; w < RL_TOPK_NWIN; w++)
        for (int k = 0; k < RL_TOPK_NKIND; k++)
            if (rd_section(&r, w, k, &out->w[w][k]) != 0) {
                rl_topk_lview_init(out, "");
                return -1;
            }
    if (r.p != r.end) {
        rl_topk_lview_init(out, "");
        return fail(&r, "data after the last section");
    }
    for (int w = 0; w < RL_TOPK_NWIN; w++)
        for (int k = 0; k < RL_TOPK_NKIND; k++)
            rl_topk_sum_rehash(&out->w[w][k]);
    return 0;
}
