/* test_rl_topk.c — Space-Saving summaries (exactness under capacity, the
 * error bounds over a skewed stream, merging), the minute ring and its
 * windows, bounded limits, identity spelling (redaction, shortening) and
 * the wire form (round trip, every refusal). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/rl_topk.h"
#include "unit.h"

#define NIDS 1000

/* Every listed entry bounds the truth; the floor bounds the unlisted and
 * is at most N / CAP; anything above N / CAP is listed. */
static void assert_bounds(const rl_topk_sum_t *s, const uint64_t *truth, uint64_t n)
{
    bool listed[NIDS] = {false};
    uint64_t floor = rl_topk_sum_floor(s);

    CU_ASSERT_EQUAL(s->total, n);
    CU_ASSERT(floor <= n / RL_TOPK_CAP);
    for (uint32_t i = 0; i < s->n; i++) {
        int id = atoi(s->e[i].id + 1);

        CU_ASSERT_FATAL(id >= 0 && id < NIDS);
        listed[id] = true;
        CU_ASSERT(s->e[i].err <= s->e[i].count);
        CU_ASSERT(s->e[i].count >= truth[id]);
        CU_ASSERT(s->e[i].count - s->e[i].err <= truth[id]);
    }
    for (int id = 0; id < NIDS; id++) {
        if (!listed[id])
            CU_ASSERT(truth[id] <= floor);
        if (truth[id] > n / RL_TOPK_CAP)
            CU_ASSERT(listed[id]);
    }
}

/* A skewed stream: id i drawn with weight ~ 1/(i+1), from a fixed LCG. */
static uint64_t feed(rl_topk_sum_t *s, uint64_t *truth, int count, uint32_t seed)
{
    char id[16];

    for (int k = 0; k < count; k++) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 8) % NIDS);

        i = (int)((seed >> 4) % 4 == 0 ? (unsigned)i : (unsigned)i % ((seed >> 20) % 40 + 1));
        snprintf(id, sizeof id, "u%d", i);
        rl_topk_sum_add(s, id, 1);
        truth[i]++;
    }
    return (uint64_t)count;
}

static void test_exact_under_capacity(void)
{
    rl_topk_sum_t s;
    const rl_topk_entry_t *top[RL_TOPK_CAP];

    rl_topk_sum_init(&s);
    for (int i = 0; i < 10; i++)
        for (int k = 0; k <= i; k++) {
            char id[8];

            snprintf(id, sizeof id, "u%d", i);
            rl_topk_sum_add(&s, id, 1);
        }
    CU_ASSERT_EQUAL(s.n, 10);
    CU_ASSERT_EQUAL(s.total, 55);
    CU_ASSERT_EQUAL(rl_topk_sum_floor(&s), 0);
    CU_ASSERT_EQUAL(rl_topk_sum_sorted(&s, top, 3), 3);
    CU_ASSERT_STRING_EQUAL(top[0]->id, "u9");
    CU_ASSERT_EQUAL(top[0]->count, 10);
    CU_ASSERT_EQUAL(top[0]->err, 0);
    CU_ASSERT_STRING_EQUAL(top[2]->id, "u7");
}

static void test_bounds_over_capacity(void)
{
    rl_topk_sum_t s;
    uint64_t truth[NIDS] = {0}, n;

    rl_topk_sum_init(&s);
    n = feed(&s, truth, 20000, 7);
    CU_ASSERT_EQUAL(s.n, RL_TOPK_CAP);
    CU_ASSERT(rl_topk_sum_floor(&s) > 0);
    assert_bounds(&s, truth, n);
}

static void test_merge(void)
{
    rl_topk_sum_t a, b, c, empty;
    uint64_t ta[NIDS] = {0}, tb[NIDS] = {0}, all[NIDS];
    uint64_t na, nb;
    const rl_topk_entry_t *x[RL_TOPK_CAP], *y[RL_TOPK_CAP];

    rl_topk_sum_init(&a);
    rl_topk_sum_init(&b);
    rl_topk_sum_init(&empty);
    na = feed(&a, ta, 15000, 1);
    nb = feed(&b, tb, 9000, 99);
    for (int i = 0; i < NIDS; i++)
        all[i] = ta[i] + tb[i];
    c = a;
    rl_topk_sum_merge(&c, &b);
    assert_bounds(&c, all, na + nb);
    /* b + a lists the same counts in the same order */
    rl_topk_sum_merge(&b, &a);
    CU_ASSERT_EQUAL(rl_topk_sum_sorted(&b, x, RL_TOPK_CAP), rl_topk_sum_sorted(&c, y, RL_TOPK_CAP));
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_STRING_EQUAL(x[i]->id, y[i]->id);
        CU_ASSERT_EQUAL(x[i]->count, y[i]->count);
        CU_ASSERT_EQUAL(x[i]->err, y[i]->err);
    }
    /* empty is neutral both ways */
    c = a;
    rl_topk_sum_merge(&c, &empty);
    CU_ASSERT_EQUAL_FATAL(c.n, a.n);
    for (uint32_t i = 0; i < a.n; i++) { /* the bytes after each id's NUL are not set */
        CU_ASSERT_STRING_EQUAL(c.e[i].id, a.e[i].id);
        CU_ASSERT_EQUAL(c.e[i].count, a.e[i].count);
        CU_ASSERT_EQUAL(c.e[i].err, a.e[i].err);
    }
    rl_topk_sum_merge(&empty, &a);
    assert_bounds(&empty, ta, na);
    /* two small summaries merge exactly */
    rl_topk_sum_init(&a);
    rl_topk_sum_init(&b);
    rl_topk_sum_add(&a, "u1", 5);
    rl_topk_sum_add(&b, "u1", 2);
    rl_topk_sum_add(&b, "u2", 4);
    rl_topk_sum_merge(&a, &b);
    CU_ASSERT_EQUAL(rl_topk_sum_sorted(&a, x, 5), 2);
    CU_ASSERT_STRING_EQUAL(x[0]->id, "u1");
    CU_ASSERT_EQUAL(x[0]->count, 7);
    CU_ASSERT_EQUAL(x[1]->count, 4);
    CU_ASSERT_EQUAL(x[1]->err, 0);
}

static char n_tenant[] = "x-tenant", n_hot[] = "hot";
static rl_by_t by_tenant[1] = {{RL_BY_HEADER, n_tenant}};
static rl_limit_t lim_hot = {.name = n_hot, .by = by_tenant, .nby = 1};

static const rl_topk_entry_t *first(const rl_topk_view_t *v, const char *lim, int w, int k)
{
    const rl_topk_lview_t *lv = rl_topk_view_find(v, lim);
    const rl_topk_entry_t *top[1];

    if (lv == NULL || rl_topk_sum_sorted(&lv->w[w][k], top, 1) == 0)
        return NULL;
    return top[0];
}

static void test_windows(void)
{
    rl_topk_t *t = rl_topk_new();
    rl_topk_view_t *v = malloc(sizeof(*v));
    const int64_t m = RL_TOPK_SLICE_MS, t0 = 100 * m + 5;
    const rl_topk_entry_t *e;

    CU_ASSERT_FATAL(t != NULL && v != NULL);
    rl_topk_record(t, t0, &lim_hot, "h:x-tenant=a", true);
    rl_topk_record(t, t0, &lim_hot, "h:x-tenant=a", false);
    rl_topk_view(t, t0, v);
    e = first(v, "hot", 0, RL_TOPK_REQUESTS);
    CU_ASSERT_FATAL(e != NULL);
    CU_ASSERT_EQUAL(e->count, 2);
    CU_ASSERT_EQUAL(first(v, "hot", 0, RL_TOPK_DENIED)->count, 1);
    /* next minute: still in 1m (current + the one before) */
    rl_topk_view(t, t0 + m, v);
    CU_ASSERT_EQUAL(first(v, "hot", 0, RL_TOPK_REQUESTS)->count, 2);
    /* two minutes on: out of 1m, in 5m and 15m */
    rl_topk_view(t, t0 + 2 * m, v);
    CU_ASSERT_PTR_NULL(first(v, "hot", 0, RL_TOPK_REQUESTS));
    CU_ASSERT_EQUAL(first(v, "hot", 1, RL_TOPK_REQUESTS)->count, 2);
    rl_topk_view(t, t0 + 6 * m, v);
    CU_ASSERT_PTR_NULL(first(v, "hot", 1, RL_TOPK_REQUESTS));
    CU_ASSERT_EQUAL(first(v, "hot", 2, RL_TOPK_REQUESTS)->count, 2);
    rl_topk_view(t, t0 + 15 * m, v);
    CU_ASSERT_EQUAL(first(v, "hot", 2, RL_TOPK_REQUESTS)->count, 2);
    /* 16 minutes on the slot is idle: left out of the view */
    rl_topk_view(t, t0 + 16 * m, v);
    CU_ASSERT_EQUAL(v->n, 0);
    /* a slice whose minute comes round again starts empty */
    rl_topk_record(t, t0 + 16 * m, &lim_hot, "h:x-tenant=b", false);
    rl_topk_view(t, t0 + 16 * m, v);
    CU_ASSERT_STRING_EQUAL(first(v, "hot", 2, RL_TOPK_REQUESTS)->id, "h:x-tenant=b");
    CU_ASSERT_EQUAL(v->lim[0].w[2][RL_TOPK_REQUESTS].total, 1);
    free(v);
    rl_topk_free(t);
}

static void test_limits_bounded(void)
{
    rl_topk_t *t = rl_topk_new();
    rl_limit_t lims[RL_TOPK_MAX_LIMITS + 1];
    char names[RL_TOPK_MAX_LIMITS + 1][16];
    rl_topk_view_t *v = malloc(sizeof(*v));

    CU_ASSERT_FATAL(t != NULL && v != NULL);
    for (int i = 0; i <= RL_TOPK_MAX_LIMITS; i++) {
        snprintf(names[i], sizeof names[i], "l%d", i);
        lims[i] = lim_hot;
        lims[i].name = names[i];
        rl_topk_record(t, 0, &lims[i], "h:x-tenant=a", false);
    }
    CU_ASSERT_EQUAL(rl_topk_dropped(t), 1);
    rl_topk_view(t, 0, v);
    CU_ASSERT_EQUAL(v->n, RL_TOPK_MAX_LIMITS);
    /* once every other limit is idle for the whole ring, a new one fits */
    rl_topk_record(t, RL_TOPK_SLICES * (int64_t)RL_TOPK_SLICE_MS, &lims[RL_TOPK_MAX_LIMITS],
                   "h:x-tenant=a", false);
    CU_ASSERT_EQUAL(rl_topk_dropped(t), 1);
    rl_topk_view(t, RL_TOPK_SLICES * (int64_t)RL_TOPK_SLICE_MS, v);
    CU_ASSERT_EQUAL(v->n, 1);
    free(v);
    rl_topk_free(t);
    rl_topk_free(NULL);
}

static void test_spell(void)
{
    char auth[] = "authorization", tenant[] = "x-tenant", apikey[] = "x-api-key", l[] = "l";
    rl_by_t by[3] = {{RL_BY_CLIENT, NULL}, {RL_BY_HEADER, auth}, {RL_BY_HEADER, tenant}};
    rl_by_t key[1] = {{RL_BY_HEADER, apikey}};
    rl_limit_t lim = {.name = l, .by = by, .nby = 3};
    char out[RL_TOPK_ID_LEN], out2[RL_TOPK_ID_LEN], longid[400];

    rl_topk_spell(&lim, "c=k:orders|h:authorization=Bearer%20abc|h:x-tenant=acme", out);
    CU_ASSERT_STRING_EQUAL(out, "c=k:orders|h:authorization=*|h:x-tenant=acme");
    rl_topk_spell(&lim, "c=-|h:authorization=-|h:x-tenant=-", out);
    CU_ASSERT_STRING_EQUAL(out, "c=-|h:authorization=*|h:x-tenant=-");
    rl_topk_spell(&lim, "%L", out);
    CU_ASSERT_STRING_EQUAL(out, "%L");
    lim.by = key;
    lim.nby = 1;
    rl_topk_spell(&lim, "h:x-api-key=s3cr3t", out);
    CU_ASSERT_STRING_EQUAL(out, "h:x-api-key=*");
    lim.by = by_tenant;
    rl_topk_spell(&lim, "h:x-tenant=acme", out);
    CU_ASSERT_STRING_EQUAL(out, "h:x-tenant=acme");
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    rl_topk_spell(&lim, longid, out);
    CU_ASSERT_EQUAL(strlen(out), 38 + 1 + 16);
    CU_ASSERT_EQUAL(out[38], '~');
    longid[300] = 'b';
    rl_topk_spell(&lim, longid, out2);
    CU_ASSERT_STRING_NOT_EQUAL(out, out2); /* same prefix, different identity */
}

/* rl_topk_redact: the bucket reset's trail target — redacted, never cut or
 * hashed while it fits; a part that does not fit is left out whole. */
static void test_redact(void)
{
    char auth[] = "authorization", tenant[] = "x-tenant", l[] = "l";
    rl_by_t by[3] = {{RL_BY_CLIENT, NULL}, {RL_BY_HEADER, auth}, {RL_BY_HEADER, tenant}};
    rl_limit_t lim = {.name = l, .by = by, .nby = 3};
    char out[RL_MAX_IDENTITY_LEN + 8], small[26], longid[400];

    CU_ASSERT_EQUAL(rl_topk_redact(&lim, "c=k:a|h:authorization=Bearer%20abc|h:x-tenant=t",
                                   out, sizeof out),
                    strlen("c=k:a|h:authorization=*|h:x-tenant=t"));
    CU_ASSERT_STRING_EQUAL(out, "c=k:a|h:authorization=*|h:x-tenant=t");
    memset(longid, 'a', sizeof longid - 1);
    memcpy(longid, "c=", 2);
    memcpy(longid + 300, "|h:authorization=", 17);
    memcpy(longid + 380, "|h:x-tenant=", 12);
    longid[sizeof longid - 1] = '\0';
    rl_topk_redact(&lim, longid, out, sizeof out);
    CU_ASSERT_EQUAL(strlen(out), 300 + 17 + 1 + 12 + 7);
    CU_ASSERT_PTR_NULL(strstr(out, "=aaa|")); /* the credential's bytes */
    rl_topk_redact(&lim, "c=k:a|h:authorization=Bearer%20abc|h:x-tenant=t", small,
                   sizeof small);
    /* no room for the rest: cut at a part, the credential never shown */
    CU_ASSERT_EQUAL(strncmp(small, "c=k:a|h:authorization=*", 23), 0);
    CU_ASSERT_PTR_NULL(strstr(small, "Bearer"));
    CU_ASSERT(strlen(small) < sizeof small);
}

/* The secret-name rule ignores case: a limit keyed on header:Authorization
 * (as an operator may write it) is redacted like header:authorization, and
 * names that carry a signature or a credential by another word are too. */
static void test_redact_any_case(void)
{
    char auth[] = "Authorization", hub[] = "X-Hub-Signature", amz[] = "X-Amz-Credential",
         l[] = "l";
    rl_by_t by[3] = {{RL_BY_HEADER, auth}, {RL_BY_HEADER, hub}, {RL_BY_HEADER, amz}};
    rl_limit_t lim = {.name = l, .by = by, .nby = 3};
    char out[RL_MAX_IDENTITY_LEN + 8], id[RL_TOPK_ID_LEN];

    rl_topk_redact(&lim, "h:authorization=Bearer%20abc|h:x-hub-signature=sha256%3Dff|"
                         "h:x-amz-credential=AKIA",
                   out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out,
                           "h:authorization=*|h:x-hub-signature=*|h:x-amz-credential=*");
    rl_topk_spell(&lim, "h:authorization=Bearer%20abc|h:x-hub-signature=x|h:x-amz-credential=y",
                  id);
    CU_ASSERT_PTR_NULL(strstr(id, "Bearer"));
    CU_ASSERT(rl_name_may_be_credential("PROXY-AUTHORIZATION"));
    CU_ASSERT(rl_name_may_be_credential("X-Csrf"));
    CU_ASSERT(rl_name_may_be_credential("x-goog-iap-jwt-assertion"));
    CU_ASSERT_FALSE(rl_name_may_be_credential("X-Tenant"));
}

static void test_wire_round_trip(void)
{
    rl_topk_lview_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    uint64_t truth[NIDS] = {0};
    char *buf = malloc(RL_TOPK_WIRE_MAX + 1), err[64];
    int len;

    CU_ASSERT_FATAL(a != NULL && b != NULL && buf != NULL);
    rl_topk_lview_init(a, "hot");
    feed(&a->w[2][RL_TOPK_REQUESTS], truth, 5000, 3);
    feed(&a->w[0][RL_TOPK_DENIED], truth, 10, 4);
    len = rl_topk_encode(a, buf, RL_TOPK_WIRE_MAX + 1);
    CU_ASSERT_FATAL(len > 0);
    CU_ASSERT_EQUAL(rl_topk_decode(buf, (size_t)len, b, err, sizeof err), 0);
    for (int w = 0; w < RL_TOPK_NWIN; w++)
        for (int k = 0; k < RL_TOPK_NKIND; k++) {
            CU_ASSERT_EQUAL(a->w[w][k].n, b->w[w][k].n);
            CU_ASSERT_EQUAL(a->w[w][k].total, b->w[w][k].total);
            CU_ASSERT_EQUAL(rl_topk_sum_floor(&a->w[w][k]), rl_topk_sum_floor(&b->w[w][k]));
            for (uint32_t i = 0; i < a->w[w][k].n; i++) {
                CU_ASSERT_STRING_EQUAL(a->w[w][k].e[i].id, b->w[w][k].e[i].id);
                CU_ASSERT_EQUAL(a->w[w][k].e[i].count, b->w[w][k].e[i].count);
                CU_ASSERT_EQUAL(a->w[w][k].hash[i], b->w[w][k].hash[i]);
            }
        }
    CU_ASSERT_EQUAL(rl_topk_encode(a, buf, 20), -1);
    free(a);
    free(b);
    free(buf);
}

#define EMPTY5 "5 r 0 0\n5 d 0 0\n15 r 0 0\n15 d 0 0\n"

static void test_wire_refusals(void)
{
    static const char *const bad[] = {
        "",
        "tg-top 2\n1 r 0 0\n1 d 0 0\n" EMPTY5,
        "tg-top 1\n1 r 0 0\n1 d 0 0\n5 r 0 0\n5 d 0 0\n15 r 0 0\n", /* missing one */
        "tg-top 1\n1 r 0 0\n1 d 0 0\n" EMPTY5 "x",                  /* trailing */
        "tg-top 1\n5 r 0 0\n1 d 0 0\n" EMPTY5,                      /* order */
        "tg-top 1\n1 d 0 0\n1 r 0 0\n" EMPTY5,                      /* kinds */
        "tg-top 1\n1 r 1 5\n4 3 a\n1 d 0 0\n" EMPTY5 "",            /* ok: below */
        "tg-top 1\n1 r 1 5\n4 3 a\n1 d 0 0\n" EMPTY5 "\n",          /* trailing \n */
        "tg-top 1\n1 r 1 5\n4 3 \n1 d 0 0\n" EMPTY5,                /* empty id */
        "tg-top 1\n1 r 1 5\n4 3 a b\n1 d 0 0\n" EMPTY5,             /* space in id */
        "tg-top 1\n1 r 1 5\n4 3 a\"\n1 d 0 0\n" EMPTY5,             /* quote */
        "tg-top 1\n1 r 1 5\n3 9 a\n1 d 0 0\n" EMPTY5,               /* err > count */
        "tg-top 1\n1 r 2 5\n3 0 a\n2 0 a\n1 d 0 0\n" EMPTY5,        /* twice */
        "tg-top 1\n1 r 49 5\n1 d 0 0\n" EMPTY5,                     /* over CAP */
        "tg-top 1\n1 r 0 05\n1 d 0 0\n" EMPTY5,                     /* leading 0 */
        "tg-top 1\n1 r 0 1000000000000000\n1 d 0 0\n" EMPTY5,       /* 16 digits */
        "tg-top 1\n1 r 0 -1\n1 d 0 0\n" EMPTY5,                     /* sign */
        "tg-top 1\n1 r 2 5\n3 0 a\n",                               /* truncated */
        "tg-top 1\n1  r 0 0\n1 d 0 0\n" EMPTY5,                     /* two spaces */
    };
    rl_topk_lview_t *lv = malloc(sizeof(*lv));
    char err[64], idlong[200];

    CU_ASSERT_FATAL(lv != NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int want = i == 6 ? 0 : -1;

        err[0] = '\0';
        CU_ASSERT_EQUAL(rl_topk_decode(bad[i], strlen(bad[i]), lv, err, sizeof err), want);
        if (want != 0) {
            CU_ASSERT(err[0] != '\0');
            CU_ASSERT_EQUAL(lv->w[0][0].n, 0);
        }
    }
    /* an identity of RL_TOPK_ID_LEN bytes does not fit */
    memset(idlong, 'a', RL_TOPK_ID_LEN);
    idlong[RL_TOPK_ID_LEN] = '\0';
    {
        char buf[512];
        int n = snprintf(buf, sizeof buf, "tg-top 1\n1 r 1 1\n1 0 %s\n1 d 0 0\n" EMPTY5,
                         idlong);

        CU_ASSERT_EQUAL(rl_topk_decode(buf, (size_t)n, lv, err, sizeof err), -1);
        CU_ASSERT_STRING_EQUAL(err, "bad identity");
        /* one byte shorter is fine */
        n = snprintf(buf, sizeof buf, "tg-top 1\n1 r 1 1\n1 0 %.63s\n1 d 0 0\n" EMPTY5,
                     idlong);
        CU_ASSERT_EQUAL(rl_topk_decode(buf, (size_t)n, lv, err, sizeof err), 0);
        /* a NUL inside an identity is refused (the fuzzer found it taken) */
        n = snprintf(buf, sizeof buf, "tg-top 1\n1 r 1 1\n1 0 ab\n1 d 0 0\n" EMPTY5);
        buf[22] = '\0';
        CU_ASSERT_EQUAL(rl_topk_decode(buf, (size_t)n, lv, err, sizeof err), -1);
        n = snprintf(buf, sizeof buf, "tg-top 1\n1 r 1 1\n1 0 %.63s\n1 d 0 0\n" EMPTY5,
                     idlong);
        /* no NUL needed, nothing read past len */
        CU_ASSERT_EQUAL(rl_topk_decode(buf, (size_t)n - 1, lv, err, sizeof err), -1);
    }
    CU_ASSERT_EQUAL(rl_topk_decode("tg-top 1\n", RL_TOPK_WIRE_MAX + 1, lv, err, sizeof err),
                    -1); /* the length is refused before anything is read */
    free(lv);
}

int test_rl_topk_add(void)
{
    static const unit_test_t tests[] = {
        {"exact under capacity", test_exact_under_capacity},
        {"error bounds over a skewed stream", test_bounds_over_capacity},
        {"merge: bounds of the union, order-free, empty neutral", test_merge},
        {"windows over the minute ring", test_windows},
        {"limits tracked are bounded, idle ones reused", test_limits_bounded},
        {"spelling: credential headers redacted, long ids hashed", test_spell},
        {"redact: credential headers only, nothing hashed", test_redact},
        {"redact: the secret-name rule ignores case", test_redact_any_case},
        {"wire: round trip", test_wire_round_trip},
        {"wire: refusals", test_wire_refusals},
        {NULL, NULL},
    };

    return unit_add_suite("rl_topk", tests);
}
