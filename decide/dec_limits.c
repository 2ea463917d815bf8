/* dec_limits.c — step 7: every matching limit through rl_check(); the
 * answer shows the limiter's report (rl_result_t.report, one rule for every
 * caller) in X-RateLimit-*, RateLimit-Policy and RateLimit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tollgate/util_fmt.h"
#include "dec_internal.h"
#include "tollgate/rl_topk.h"

static const char *req_header(void *ctx, const char *name)
{
    dec_req_t *r = ctx;

    return r->in.headers.find(r->in.headers.ctx, name);
}

static const char *req_claim(void *ctx, const char *name)
{
    dec_req_t *r = ctx;

    return auth_identity_claim(&r->id, name, r->claimbuf, sizeof(r->claimbuf));
}

/* The `client` of a limit's identity: API key ids and JWT subjects live in
 * separate namespaces ("k:ID", "j:ISS|SUB"), so a user whose `sub` is named
 * like a service never spends that service's buckets.  NULL: anonymous. */
static const char *bucket_client(const dec_req_t *r, char *buf, size_t len)
{
    const char *iss;
    int n;

    if (r->id.client_id == NULL)
        return NULL;
    if (r->id.kind == AUTH_KIND_JWT) {
        iss = auth_identity_claim(&r->id, "iss", NULL, 0);
        n = snprintf(buf, len, "j:%s|%s", iss != NULL ? iss : "", r->id.client_id);
    } else {
        n = snprintf(buf, len, "k:%s", r->id.client_id);
    }
    return n >= 0 && (size_t)n < len ? buf : NULL;
}

/* A growing string (the RateLimit fields); `s` NULL once out of memory. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *p, size_t n)
{
    if (b->s == NULL)
        return;
    if (b->len + n + 1 > b->cap) {
        char *t;

        while (b->len + n + 1 > b->cap)
            b->cap *= 2;
        if ((t = realloc(b->s, b->cap)) == NULL) {
            free(b->s);
            b->s = NULL;
            return;
        }
        b->s = t;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(sbuf_t *b, const char *p)
{
    sb_add(b, p, strlen(p));
}

static void sb_u64(sbuf_t *b, uint64_t v)
{
    char d[UTIL_FMT_U64_MAX];

    sb_add(b, d, util_fmt_u64(d, v));
}

/* RateLimit-Policy (`"name";q=N;w=W`, every enforced limit) or RateLimit
 * (`"name";r=R;t=T`, the limit `only`) as RFC 8941 list items; limit names
 * are validated by the config to need no escaping.  NULL when empty. */
static char *join_items(const rl_result_t *res, bool policy, int only)
{
    sbuf_t b = {malloc(128), 0, 128};

    if (b.s == NULL)
        return NULL;
    b.s[0] = '\0';
    for (size_t i = 0; i < res->n; i++) {
        const rl_limit_result_t *lr = &res->limits[i];

        if (lr->limit->mode == RL_MODE_SHADOW || (only >= 0 && (size_t)only != i))
            continue;
        if (b.len > 0)
            sb_str(&b, ", ");
        sb_str(&b, "\"");
        sb_str(&b, lr->limit->name);
        sb_str(&b, policy ? "\";q=" : "\";r=");
        sb_u64(&b, policy ? lr->rate.n : lr->v.remaining);
        sb_str(&b, policy ? ";w=" : ";t=");
        sb_u64(&b, policy ? lr->rate.period_ms / 1000 : (lr->v.reset_ms + 999) / 1000);
    }
    if (b.s != NULL && b.len == 0) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* The limit whose numbers the answer shows: the limiter's report, when it
 * is an enforced limit that was decided; -1 otherwise (a shadow limit is
 * reported only when no enforced one has numbers, a `failed` one has none). */
static int shown_limit(const rl_result_t *res)
{
    const rl_limit_result_t *lr;

    if (res->report < 0 || (size_t)res->report >= res->n)
        return -1;
    lr = &res->limits[res->report];
    return lr->limit->mode == RL_MODE_SHADOW || lr->failed ? -1 : res->report;
}

_Static_assert(DEC_NUM_MAX >= UTIL_FMT_U64_MAX, "a u64 fits a dec_limits_t field");

static void record_limits(dec_req_t *r, const rl_result_t *res)
{
    dec_limits_t *l = &r->v.limits;
    int best = shown_limit(res);
    const rl_limit_result_t *b;

    for (size_t i = 0; i < res->n; i++) {
        const rl_limit_result_t *lr = &res->limits[i];

        DEC_HOOK(r, limit, lr->limit->name,
                 lr->failed      ? "error"
                 : lr->v.allowed ? "allow"
                                 : "deny",
                 lr->limit->mode == RL_MODE_SHADOW ? "shadow" : "enforce");
        if (lr->limit->mode == RL_MODE_SHADOW && !lr->v.allowed && r->v.limit == NULL) {
            r->v.limit = lr->limit->name; /* audit: a shadow limit would have denied */
            r->v.reason = "shadow_rate_limited";
        }
    }
    if (best < 0)
        return;
    b = &res->limits[best];
    util_fmt_u64(l->limit, b->rate.n);
    util_fmt_u64(l->remaining, b->v.remaining);
    util_fmt_u64(l->reset, (b->v.reset_ms + 999) / 1000);
    if (res->status == RL_DENIED) {
        uint64_t ra = (b->v.retry_after_ms + 999) / 1000;

        util_fmt_u64(l->retry, ra < 1 ? 1 : ra);
        r->v.limit = b->limit->name;
    }
    l->policy = join_items(res, true, -1);
    l->state = join_items(res, false, best);
}

static dec_step_t limits_verdict(dec_req_t *r, rl_status_t status)
{
    switch (status) {
    case RL_DENIED:
        r->v.reason = "rate_limited";
        return dec_verdict(r,
                           r->mode == DEC_MODE_FWD_NGINX
                               ? r->cfg->forward_auth.nginx_rate_limited_status
                               : 429,
                           "rate_limited", "rate limit exceeded");
    case RL_ERR:
        r->v.reason = "limiter_unavailable";
        return dec_verdict(r, 503, "unavailable", "rate limiter unavailable");
    case RL_OK:
    default:
        return DEC_NEXT;
    }
}

static void limits_request(dec_req_t *r, rl_request_t *q, char *client, size_t len);

/* Explain: every limit of the report with its bucket's key, spelled from
 * the same request the limiter was given. */
static void explain_limits(dec_req_t *r, const rl_result_t *res)
{
    dec_explain_t *e = r->in.explain;
    char client[2048];
    rl_request_t q;

    e->limits_checked = true;
    free(e->limits);
    e->nlimits = 0;
    if (res->n == 0 || (e->limits = calloc(res->n, sizeof(*e->limits))) == NULL)
        return;
    limits_request(r, &q, client, sizeof client);
    for (size_t i = 0; i < res->n; i++) {
        const rl_limit_result_t *lr = &res->limits[i];
        dec_explain_limit_t *x = &e->limits[i];

        x->limit = lr->limit;
        if (rl_policy_identity(lr->limit, &q, x->key, sizeof x->key) < 0)
            memcpy(x->key, "%L", 3); /* as the limiter spells it (rl_limiter.c) */
        x->rate = lr->rate;
        x->v = lr->v;
        x->fallback = lr->fallback;
        x->failed = lr->failed;
    }
    e->nlimits = res->n;
}

static void limits_done(const rl_result_t *res, void *privdata)
{
    dec_req_t *r = privdata;

    r->rl_pending = NULL;
    if (r->in.explain != NULL)
        explain_limits(r, res);
    record_limits(r, res);
    dec_step_done(r, limits_verdict(r, res->status));
}

/* The one place the request to the limiter is built (`client`: room for
 * its client id). */
static void limits_request(dec_req_t *r, rl_request_t *q, char *client, size_t len)
{
    *q = (rl_request_t){
        .method = r->method_bit,
        .path = r->path,
        .host = r->host,
        .client_id = bucket_client(r, client, len),
        .ip = r->ip_key,
        .route = r->route->name,
        .tier = r->id.tier,
        .cost = 1,
        .header = req_header,
        .claim = req_claim,
        .ctx = r,
        .dry_run = r->in.dry_run, /* decide, take no token (explain, replay) */
    };
}

dec_step_t dec_step_limits(dec_req_t *r)
{
    char client[2048];
    rl_request_t q;

    limits_request(r, &q, client, sizeof client);
    r->rl_pending = rl_check(r->ctx->c.limiter, &r->cfg->policy, &q, limits_done, r);
    if (r->rl_pending != NULL)
        return DEC_PENDING;
    r->v.reason = "limiter_unavailable";
    return dec_verdict(r, 503, "unavailable", "rate limiter unavailable");
}

/* The rule of the top lists (rl_name_may_be_credential): such a header's
 * or claim's value is never written. */
bool dec_header_is_credential(const char *name)
{
    return rl_name_may_be_credential(name);
}

/* Is (claim, name) among the first n keys already?  Header names compare
 * case-insensitively, claim names exactly. */
static bool key_seen(const dec_verdict_t *v, bool claim, const char *name)
{
    for (size_t i = 0; i < v->nkeys; i++)
        if (v->keys[i].claim == claim && (claim ? strcmp(v->keys[i].name, name)
                                                : strcasecmp(v->keys[i].name, name)) == 0)
            return true;
    return false;
}

/* A refused head has no headers to believe; a claim needs a JWT identity. */
static const char *key_value(dec_req_t *r, const rl_by_t *by, size_t i)
{
    if (by->kind == RL_BY_HEADER)
        return r->in.head == DEC_HEAD_OK ? r->in.headers.find(r->in.headers.ctx, by->name)
                                         : NULL;
    if (r->id.kind != AUTH_KIND_JWT)
        return NULL;
    return auth_identity_claim(&r->id, by->name, r->keybuf[i], sizeof r->keybuf[i]);
}

void dec_limits_keys(dec_req_t *r)
{
    const rl_policy_set_t *ps = &r->cfg->policy;
    dec_verdict_t *v = &r->v;

    v->nkeys = 0;
    for (size_t l = 0; l < ps->nlimits; l++) {
        const rl_limit_t *lim = &ps->limits[l];

        for (size_t b = 0; b < lim->nby && v->nkeys < DEC_VERDICT_KEYS; b++) {
            const rl_by_t *by = &lim->by[b];
            bool claim = by->kind == RL_BY_CLAIM;

            if ((by->kind != RL_BY_HEADER && !claim) || by->name == NULL ||
                dec_header_is_credential(by->name) || key_seen(v, claim, by->name))
                continue;
            v->keys[v->nkeys] = (dec_key_t){claim, by->name, key_value(r, by, v->nkeys)};
            v->nkeys++;
        }
    }
}
