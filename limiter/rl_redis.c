/* rl_redis.c — see include/tollgate/rl_redis.h.
 *
 * Script contract (lua/bucket.lua): KEYS = the group's buckets; ARGV[1] =
 * cost, then per key n, period_ms, burst, mode (0 enforce, 1 shadow).  Reply:
 * [allowed, retry_after_ms, then per key fits, remaining, reset_ms,
 * retry_after_ms] — 2 + 4*K integers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate/util_clock.h"
#include "tollgate/rl_redis.h"
#include "olcache_internal.h"

#define ARG_LEN 24           /* one decimal uint64 + NUL */
#define OL_KEY_MAX 4096      /* bytes of an over-limit cache key */
#define OL_MAX_ENTRIES 10000 /* denied calls remembered per worker */

struct rl_redis {
    const rc_ops_t *ops;
    void *client;
    char *prefix;
    size_t script;
    rl_redis_observe_fn observe;
    void *observe_ctx;
    olcache_t *ol; /* denied calls answered locally until they could fit */
    void (*ol_hit)(void *ctx);
    void *ol_ctx;
};

typedef struct rr_pending rr_pending_t;

typedef struct rr_call {
    rr_pending_t *p;
    rl_group_t *g;
    rc_pending_t *h; /* NULL once answered */
    char *olkey;     /* its over-limit cache key, NULL when too long */
    size_t olkeylen;
    uint64_t sent_ms; /* monotonic */
} rr_call_t;

struct rr_pending {
    rl_redis_t *r;
    rl_backend_done_fn done;
    void *privdata;
    struct timespec t0;
    size_t n, left, nfailed;
    const char *errstr;
    rr_call_t calls[];
};

int rl_redis_key(const char *prefix, const char *identity, const char *limit, char *out,
                 size_t outlen)
{
    int n = snprintf(out, outlen, "%s{%s}:b:%s", prefix, identity, limit);

    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

rl_redis_t *rl_redis_new(const rc_ops_t *ops, void *client, const char *prefix,
                         size_t script)
{
    rl_redis_t *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->prefix = strdup(prefix != NULL ? prefix : "");
    r->ol = olcache_new(OL_MAX_ENTRIES);
    if (r->prefix == NULL || r->ol == NULL) {
        free(r->prefix);
        olcache_free(r->ol);
        free(r);
        return NULL;
    }
    r->ops = ops;
    r->client = client;
    r->script = script;
    return r;
}

void rl_redis_free(rl_redis_t *r)
{
    if (r == NULL)
        return;
    free(r->prefix);
    olcache_free(r->ol);
    free(r);
}

void rl_redis_set_local_observer(rl_redis_t *r, void (*fn)(void *ctx), void *ctx)
{
    r->ol_hit = fn;
    r->ol_ctx = ctx;
}

size_t rl_redis_overlimit_count(const rl_redis_t *r)
{
    return olcache_count(r->ol);
}

void rl_redis_set_observer(rl_redis_t *r, rl_redis_observe_fn fn, void *ctx)
{
    r->observe = fn;
    r->observe_ctx = ctx;
}

static long long int_at(const redisReply *a, size_t i)
{
    return a->element[i]->integer;
}

/* Fill the group's results from the script's reply; -1 when malformed. */
static int parse_reply(rl_group_t *g, const redisReply *rep)
{
    size_t i;

    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 + 4 * g->n)
        return -1;
    for (i = 0; i < rep->elements; i++)
        if (rep->element[i]->type != REDIS_REPLY_INTEGER || rep->element[i]->integer < 0)
            return -1;
    for (i = 0; i < g->n; i++) {
        rl_limit_result_t *res = &g->results[i];
        size_t at = 2 + 4 * i;

        res->v.allowed = int_at(rep, at) == 1;
        res->v.remaining = (uint64_t)int_at(rep, at + 1);
        res->v.reset_ms = (uint64_t)int_at(rep, at + 2);
        res->v.retry_after_ms = (uint64_t)int_at(rep, at + 3);
        res->fallback = false;
        res->failed = false;
    }
    return 0;
}

static void pending_free(rr_pending_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->calls[i].olkey);
    free(p);
}

static void call_done(rc_client_t *c, redisReply *reply, const char *errstr, void *privdata)
{
    rr_call_t *call = privdata;
    rr_pending_t *p = call->p;
    const char *result = "ok";

    (void)c;
    call->h = NULL;
    if (reply == NULL) {
        result = errstr != NULL && strstr(errstr, "timeout") != NULL ? "timeout" : "error";
        p->errstr = "redis unavailable";
    } else if (reply->type == REDIS_REPLY_ERROR || parse_reply(call->g, reply) != 0) {
        result = "error";
        p->errstr = "redis error reply";
    } else if (call->olkey != NULL) {
        olcache_store(p->r->ol, call->olkey, call->olkeylen, call->g, call->sent_ms);
    }
    if (strcmp(result, "ok") != 0) {
        call->g->failed = true;
        p->nfailed++;
    }
    if (p->r->observe != NULL)
        p->r->observe(p->r->observe_ctx, result, util_elapsed_s(&p->t0));
    if (--p->left > 0)
        return;
    p->done(p->nfailed == p->n ? -1 : 0, p->errstr, p->privdata);
    pending_free(p);
}

/* Send one group's script call. */
static rc_pending_t *send_group(rl_redis_t *r, rr_call_t *call)
{
    rl_group_t *g = call->g;
    size_t nargs = 1 + 4 * g->n, i;
    const char **keys = calloc(g->n, sizeof(*keys));
    size_t *keylens = calloc(g->n, sizeof(*keylens));
    char *keybuf = malloc(g->n * RL_REDIS_MAX_KEY);
    const char **args = calloc(nargs, sizeof(*args));
    size_t *arglens = calloc(nargs, sizeof(*arglens));
    char(*argbuf)[ARG_LEN] = calloc(nargs, ARG_LEN);
    rc_pending_t *h = NULL;

    if (keys == NULL || keylens == NULL || keybuf == NULL || args == NULL ||
        arglens == NULL || argbuf == NULL)
        goto out_free;
    for (i = 0; i < g->n; i++) {
        char *k = keybuf + i * RL_REDIS_MAX_KEY;
        int len =
            rl_redis_key(r->prefix, g->identity, g->limits[i]->name, k, RL_REDIS_MAX_KEY);

        if (len < 0)
            goto out_free;
        keys[i] = k;
        keylens[i] = (size_t)len;
    }
    snprintf(argbuf[0], ARG_LEN, "%u", g->cost);
    for (i = 0; i < g->n; i++) {
        snprintf(argbuf[1 + 4 * i], ARG_LEN, "%u", g->rates[i].n);
        snprintf(argbuf[2 + 4 * i], ARG_LEN, "%u", g->rates[i].period_ms);
        snprintf(argbuf[3 + 4 * i], ARG_LEN, "%u", g->rates[i].burst);
        snprintf(argbuf[4 + 4 * i], ARG_LEN, "%d", g->limits[i]->mode == RL_MODE_SHADOW);
    }
    for (i = 0; i < nargs; i++) {
        args[i] = argbuf[i];
        arglens[i] = strlen(argbuf[i]);
    }
    h = r->ops->evalsha(r->client, r->script, (int)g->n, keys, keylens, (int)nargs, args,
                        arglens, call_done, call);
out_free:
    free(keys);
    free(keylens);
    free(keybuf);
    free(args);
    free(arglens);
    free(argbuf);
    return h;
}

/* A call Redis denied a moment ago and that could not fit yet is answered
 * from the over-limit cache (olcache_internal.h says why that is exact). */
static bool over_limit(rl_redis_t *r, rr_call_t *call)
{
    char key[OL_KEY_MAX];
    int len = olcache_key(call->g, key, sizeof key);

    if (len < 0)
        return false;
    if (olcache_answer(r->ol, key, (size_t)len, call->g, util_mono_ms())) {
        if (r->ol_hit != NULL)
            r->ol_hit(r->ol_ctx);
        return true;
    }
    call->olkey = malloc((size_t)len + 1);
    if (call->olkey != NULL) {
        memcpy(call->olkey, key, (size_t)len + 1);
        call->olkeylen = (size_t)len;
    }
    return false;
}

static void *rr_check(void *be, struct event_base *base, rl_group_t *groups, size_t n,
                      rl_backend_done_fn done, void *privdata)
{
    rl_redis_t *r = be;
    rr_pending_t *p = calloc(1, sizeof(*p) + n * sizeof(rr_call_t));
    size_t i;

    (void)base;
    if (p == NULL)
        return NULL;
    p->r = r;
    p->done = done;
    p->privdata = privdata;
    p->n = n;
    p->left = n + 1; /* +1: held until every call is out */
    util_mono_now(&p->t0);
    for (i = 0; i < n; i++) {
        p->calls[i].p = p;
        p->calls[i].g = &groups[i];
        groups[i].failed = false;
    }
    for (i = 0; i < n; i++) {
        if (over_limit(r, &p->calls[i])) {
            p->left--; /* denied again, locally: nothing sent */
            continue;
        }
        p->calls[i].sent_ms = util_mono_ms();
        p->calls[i].h = send_group(r, &p->calls[i]);
        if (p->calls[i].h == NULL) {
            /* Not sent (node down, no slot map): its callback never runs. */
            groups[i].failed = true;
            p->nfailed++;
            p->errstr = "redis unavailable";
            p->left--;
            if (r->observe != NULL)
                r->observe(r->observe_ctx, "error", 0.0);
        }
    }
    if (--p->left == 0) {
        /* Every answer came inside this call: the limiter copes with an
         * answer given before check() returns. */
        done(p->nfailed == n ? -1 : 0, p->errstr, privdata);
        pending_free(p);
        return NULL;
    }
    return p;
}

static void rr_cancel(void *be, void *token)
{
    rl_redis_t *r = be;
    rr_pending_t *p = token;

    for (size_t i = 0; i < p->n; i++)
        if (p->calls[i].h != NULL)
            r->ops->cancel(r->client, p->calls[i].h);
    pending_free(p);
}

const rl_backend_ops_t rl_redis_ops = {
    .name = "redis",
    .check = rr_check,
    .cancel = rr_cancel,
};
