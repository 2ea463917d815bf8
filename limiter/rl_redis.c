/* rl_redis.c — see include/tollgate/rl_redis.h.
 *
 * Script contract (lua/bucket.lua): KEYS = the group's buckets; ARGV[1] =
 * cost, then per key n, period_ms, burst, mode (0 enforce, 1 shadow).  Reply:
 * [allowed, retry_after_ms, then per key fits, remaining, reset_ms,
 * retry_after_ms] — 2 + 4*K integers.  A dry group's arguments start with
 * 'D' (in a batch: before its k), and the script writes nothing for it.
 *
 * Dry groups (rl_group_t.dry_run) change no state here either: they may be
 * answered from the over-limit cache (its answer is exact, and reading it
 * changes nothing — an expired entry is left for a real call to drop) but
 * never stored in it; they may be admitted by reading a live lease (what a
 * real check on this worker would get: admitted from it, the same numbers)
 * but take no token from it and add no demand; without such a lease they go
 * to Redis as an exact dry call at their own cost, never asking for a
 * lease.  The allowed/denied verdict is then the real one (a real check
 * asks for k >= cost tokens and, refused, for its own cost); its
 * `remaining` is the level after the check's own cost, where a real check
 * granted a lease of k would report the level after k.  The local-answer
 * counters (ol_hit, lease_hit) do not count dry groups; the Redis call
 * observer does (it measures Redis, and a dry call is a real call).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "tollgate/rc_proto.h"

#include "tollgate/util_clock.h"
#include "tollgate/rl_redis.h"
#include "lease_internal.h"
#include "olcache_internal.h"

#define ARG_LEN 24           /* one decimal uint64 + NUL */
#define OL_KEY_MAX 4096      /* bytes of an over-limit cache key */
#define OL_MAX_ENTRIES 10000 /* denied calls remembered per worker */
#define BATCH_MAX 256        /* requests of one batched script call */
#define BATCH_OPEN 16        /* batches being filled at once (cluster: one per slot) */

struct rl_redis {
    const rc_ops_t *ops;
    void *client;
    char *prefix;
    size_t script;
    rl_redis_observe_fn observe;
    void *observe_ctx;
    olcache_t *ol; /* denied calls answered locally until they could fit */
    void (*ol_hit)(void *ctx);
    void (*lease_hit)(void *ctx); /* ctx: ol_ctx */
    void *ol_ctx;
    /* Batching: the calls of one loop turn go out as one script call per
     * node (standalone) or per hash slot (cluster). */
    lease_tab_t *leases; /* limits with consistency: leased */
    size_t batch_max;    /* 0/1: every call on its own */
    bool cluster;
    struct rr_batch *open[BATCH_OPEN];
    size_t nopen;
    struct event *flush_ev;
    /* Backpressure: checks waiting on Redis, and the most allowed. */
    size_t waiting, max_waiting; /* 0: no bound */
    void (*shed)(void *ctx);     /* ctx: ol_ctx */
};

typedef struct rr_batch rr_batch_t;

typedef struct rr_pending rr_pending_t;

typedef struct rr_call {
    rr_pending_t *p;
    rl_group_t *g;
    rc_pending_t *h;                 /* NULL once answered */
    rr_batch_t *batch;               /* or queued in / sent with this batch */
    size_t bidx;                     /* its place there */
    uint32_t lease_want, lease_cost; /* 0: an exact call */
    uint64_t sent_ms;                /* monotonic */
} rr_call_t;

/* Calls sent as one batched script call (lua/bucket.lua, batch form). */
struct rr_batch {
    rl_redis_t *r;
    rc_pending_t *h;             /* NULL until sent */
    unsigned slot;               /* cluster: the slot of every key */
    size_t n, live;              /* calls, and those not cancelled */
    rr_call_t *calls[BATCH_MAX]; /* NULL: cancelled */
};

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
    r->leases = lease_new(OL_MAX_ENTRIES);
    if (r->prefix == NULL || r->ol == NULL || r->leases == NULL) {
        free(r->prefix);
        olcache_free(r->ol);
        lease_free(r->leases);
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
    lease_free(r->leases);
    /* Open batches hold only calls of requests the limiter cancelled. */
    for (size_t i = 0; i < r->nopen; i++)
        free(r->open[i]);
    if (r->flush_ev != NULL)
        event_free(r->flush_ev);
    free(r);
}

void rl_redis_set_batching(rl_redis_t *r, size_t max, bool cluster)
{
    r->batch_max = max > BATCH_MAX ? BATCH_MAX : max;
    r->cluster = cluster;
}

void rl_redis_set_max_pending(rl_redis_t *r, size_t max, void (*shed_fn)(void *ctx))
{
    r->max_waiting = max;
    r->shed = shed_fn;
}

void rl_redis_set_local_observer(rl_redis_t *r, void (*fn)(void *ctx),
                                 void (*lease_fn)(void *ctx), void *ctx)
{
    r->ol_hit = fn;
    r->lease_hit = lease_fn;
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
    p->r->waiting--;
    free(p);
}

static bool group_allowed(const rl_group_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->limits[i]->mode == RL_MODE_ENFORCE && !g->results[i].v.allowed)
            return false;
    return true;
}

static rc_pending_t *send_group(rl_redis_t *r, rr_call_t *call);
static void call_unsent(rr_call_t *call);

/* Redis denied the call: the over-limit cache answers it until its buckets
 * could fit (the key is spelled again from the group: only denials pay). */
static void remember_denial(rl_redis_t *r, const rr_call_t *call)
{
    char key[OL_KEY_MAX];
    int len;

    if (call->g->dry_run)
        return; /* a dry run stores nothing */
    len = olcache_key(call->g, key, sizeof key);
    if (len >= 0)
        olcache_store(r->ol, key, (size_t)len, call->g, call->sent_ms);
}

/* A lease call answered: keep the lease, or — when Redis could not give
 * that many — ask again for the check's own cost.  true when the call is
 * still on its way (asked again). */
static bool lease_answered(rr_call_t *call, bool parsed)
{
    rl_redis_t *r = call->p->r;
    uint32_t want = call->lease_want;
    char key[OL_KEY_MAX];
    int len;

    call->g->cost = call->lease_cost; /* the check's own cost again */
    call->lease_want = 0;
    if (!parsed || (len = lease_key(call->g, key, sizeof key)) < 0)
        return false;
    if (group_allowed(call->g)) {
        lease_granted(r->leases, key, (size_t)len, call->g, want, call->lease_cost,
                      call->sent_ms);
        return false;
    }
    lease_refused(r->leases, key, (size_t)len, want);
    call->sent_ms = util_mono_ms();
    call->h = send_group(r, call);
    if (call->h == NULL)
        call_unsent(call);
    return true;
}

/* One call's answer (`reply` its own script reply, NULL when none). */
static void call_finish(rr_call_t *call, const redisReply *reply, const char *errstr)
{
    rr_pending_t *p = call->p;
    const char *result = "ok";

    call->h = NULL;
    call->batch = NULL;
    if (reply == NULL) {
        result = errstr != NULL && strstr(errstr, "timeout") != NULL ? "timeout" : "error";
        p->errstr = "redis unavailable";
    } else if (reply->type == REDIS_REPLY_ERROR || parse_reply(call->g, reply) != 0) {
        result = "error";
        p->errstr = "redis error reply";
    } else if (call->lease_want != 0) {
        if (lease_answered(call, true))
            return; /* asked again with its own cost */
    } else if (!group_allowed(call->g)) {
        remember_denial(p->r, call);
    }
    if (call->lease_want != 0)
        lease_answered(call, false);
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

static void call_done(rc_client_t *c, redisReply *reply, const char *errstr, void *privdata)
{
    (void)c;
    call_finish(privdata, reply, errstr);
}

/* KEYS and ARGV of one script call, filled by sa_group() and friends. */
typedef struct script_args {
    const char **keys, **args;
    size_t *keylens, *arglens;
    char *keybuf;
    char (*argbuf)[ARG_LEN];
    size_t nkeys, nargs; /* filled so far */
} script_args_t;

static void sa_free(script_args_t *sa)
{
    free(sa->keys);
    free(sa->keylens);
    free(sa->keybuf);
    free(sa->args);
    free(sa->arglens);
    free(sa->argbuf);
}

/* Room for `nkeys` keys and `nargs` arguments; -1 when out of memory. */
static int sa_init(script_args_t *sa, size_t nkeys, size_t nargs)
{
    memset(sa, 0, sizeof(*sa));
    sa->keys = calloc(nkeys, sizeof(*sa->keys));
    sa->keylens = calloc(nkeys, sizeof(*sa->keylens));
    sa->keybuf = malloc(nkeys * RL_REDIS_MAX_KEY);
    sa->args = calloc(nargs, sizeof(*sa->args));
    sa->arglens = calloc(nargs, sizeof(*sa->arglens));
    sa->argbuf = calloc(nargs, ARG_LEN);
    if (sa->keys != NULL && sa->keylens != NULL && sa->keybuf != NULL && sa->args != NULL &&
        sa->arglens != NULL && sa->argbuf != NULL)
        return 0;
    sa_free(sa);
    return -1;
}

/* One argument: `lit`, or the number `v` when lit is NULL. */
static void sa_put(script_args_t *sa, const char *lit, unsigned long long v)
{
    char *a = sa->argbuf[sa->nargs];
    int n = lit != NULL ? snprintf(a, ARG_LEN, "%s", lit) : snprintf(a, ARG_LEN, "%llu", v);

    sa->args[sa->nargs] = a;
    sa->arglens[sa->nargs++] = n > 0 ? (size_t)n : 0;
}

static void sa_num(script_args_t *sa, unsigned long long v)
{
    sa_put(sa, NULL, v);
}

/* One group: its keys, then its cost and four rate arguments per key (the
 * script's single-call ARGV, which the batch form repeats per request; the
 * caller puts a dry group's 'D' first). */
static int sa_group(script_args_t *sa, const rl_redis_t *r, const rl_group_t *g)
{
    sa_num(sa, g->cost);
    for (size_t i = 0; i < g->n; i++) {
        char *k = sa->keybuf + sa->nkeys * RL_REDIS_MAX_KEY;
        int len =
            rl_redis_key(r->prefix, g->identity, g->limits[i]->name, k, RL_REDIS_MAX_KEY);

        if (len < 0)
            return -1;
        sa->keys[sa->nkeys] = k;
        sa->keylens[sa->nkeys++] = (size_t)len;
        sa_num(sa, g->rates[i].n);
        sa_num(sa, g->rates[i].period_ms);
        sa_num(sa, g->rates[i].burst);
        sa_num(sa, g->limits[i]->mode == RL_MODE_SHADOW);
    }
    return 0;
}

static rc_pending_t *sa_send(rl_redis_t *r, script_args_t *sa, rc_reply_fn fn, void *priv)
{
    return r->ops->evalsha(r->client, r->script, (int)sa->nkeys, sa->keys, sa->keylens,
                           (int)sa->nargs, sa->args, sa->arglens, fn, priv);
}

/* Send one group's script call. */
static rc_pending_t *send_group(rl_redis_t *r, rr_call_t *call)
{
    script_args_t sa;
    rc_pending_t *h = NULL;

    if (sa_init(&sa, call->g->n, 2 + 4 * call->g->n) != 0)
        return NULL;
    if (call->g->dry_run)
        sa_put(&sa, "D", 0);
    if (sa_group(&sa, r, call->g) == 0)
        h = sa_send(r, &sa, call_done, call);
    sa_free(&sa);
    return h;
}

/* ---- batching ------------------------------------------------------------ */

static void batch_done(rc_client_t *c, redisReply *reply, const char *errstr,
                       void *privdata)
{
    rr_batch_t *b = privdata;
    bool whole =
        reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == b->n;

    (void)c;
    b->h = NULL;
    for (size_t i = 0; i < b->n; i++) {
        rr_call_t *call = b->calls[i];

        if (call == NULL)
            continue; /* its request went away */
        if (whole)
            call_finish(call, reply->element[i], NULL);
        else if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
            call_finish(call, reply, NULL); /* an error reply fails each call */
        else
            call_finish(call, NULL, reply == NULL ? errstr : "malformed batch reply");
    }
    free(b);
}

/* The batch's KEYS and ARGV ('B', R, then per call ['D'], k and its
 * group's). */
static rc_pending_t *send_batch(rl_redis_t *r, rr_batch_t *b)
{
    size_t nkeys = 0, nargs = 2;
    script_args_t sa;
    rc_pending_t *h = NULL;

    for (size_t i = 0; i < b->n; i++) {
        nkeys += b->calls[i]->g->n;
        nargs += 3 + 4 * b->calls[i]->g->n; /* with room for 'D' */
    }
    if (sa_init(&sa, nkeys, nargs) != 0)
        return NULL;
    sa_put(&sa, "B", 0);
    sa_num(&sa, b->n);
    for (size_t i = 0; i < b->n; i++) {
        if (b->calls[i]->g->dry_run)
            sa_put(&sa, "D", 0);
        sa_num(&sa, b->calls[i]->g->n);
        if (sa_group(&sa, r, b->calls[i]->g) != 0)
            goto out_free;
    }
    h = sa_send(r, &sa, batch_done, b);
out_free:
    sa_free(&sa);
    return h;
}

/* A call that could not be sent (node down, no slot map): it fails now. */
static void call_unsent(rr_call_t *call)
{
    rl_redis_t *r = call->p->r;

    call->batch = NULL;
    call->h = NULL;
    call->g->failed = true;
    call->p->nfailed++;
    call->p->errstr = "redis unavailable";
    if (r->observe != NULL)
        r->observe(r->observe_ctx, "error", 0.0);
    if (--call->p->left == 0) {
        rr_pending_t *p = call->p;

        p->done(p->nfailed == p->n ? -1 : 0, p->errstr, p->privdata);
        pending_free(p);
    }
}

/* Send a filled batch: one call alone goes in the single form. */
static void batch_send(rl_redis_t *r, rr_batch_t *b)
{
    size_t live = 0;

    for (size_t i = 0; i < b->n; i++) /* drop cancelled calls */
        if (b->calls[i] != NULL) {
            b->calls[live] = b->calls[i];
            b->calls[live]->bidx = live;
            live++;
        }
    b->n = b->live = live;
    if (live == 1) {
        rr_call_t *call = b->calls[0];

        call->batch = NULL;
        call->sent_ms = util_mono_ms();
        call->h = send_group(r, call);
        free(b);
        if (call->h == NULL)
            call_unsent(call);
        return;
    }
    if (live > 1) {
        for (size_t i = 0; i < live; i++)
            b->calls[i]->sent_ms = util_mono_ms();
        b->h = send_batch(r, b);
        if (b->h != NULL)
            return;
        for (size_t i = 0; i < live; i++)
            call_unsent(b->calls[i]);
    }
    free(b);
}

/* End of the loop turn: every open batch goes out. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    rl_redis_t *r = arg;
    size_t n = r->nopen;
    rr_batch_t *open[BATCH_OPEN];

    (void)fd;
    (void)what;
    memcpy(open, r->open, n * sizeof(open[0]));
    r->nopen = 0;
    for (size_t i = 0; i < n; i++)
        batch_send(r, open[i]);
}

/* The slot of a group's keys (one hash tag: its identity). */
static unsigned group_slot(const rl_redis_t *r, const rl_group_t *g)
{
    char k[RL_REDIS_MAX_KEY];
    int len = rl_redis_key(r->prefix, g->identity, g->limits[0]->name, k, sizeof k);

    return len > 0 ? rc_slot(k, (size_t)len) : 0;
}

/* Queue `call` for this loop turn's batch of its node (or slot).  false when
 * batching is off or impossible (the caller sends it alone). */
static bool batch_add(rl_redis_t *r, struct event_base *base, rr_call_t *call)
{
    static const struct timeval now = {0, 0};
    unsigned slot = r->cluster ? group_slot(r, call->g) : 0;
    rr_batch_t *b = NULL;
    size_t i;

    if (r->batch_max < 2 || base == NULL)
        return false;
    if (r->flush_ev == NULL && (r->flush_ev = evtimer_new(base, flush_cb, r)) == NULL)
        return false;
    for (i = 0; i < r->nopen; i++)
        if (r->open[i]->slot == slot) {
            b = r->open[i];
            break;
        }
    if (b == NULL) {
        if (r->nopen == BATCH_OPEN)
            return false;
        b = calloc(1, sizeof(*b));
        if (b == NULL)
            return false;
        b->r = r;
        b->slot = slot;
        r->open[r->nopen++] = b;
    }
    call->batch = b;
    call->bidx = b->n;
    b->calls[b->n++] = call;
    b->live++;
    if (b->n >= r->batch_max || b->n == BATCH_MAX) {
        r->open[i] = r->open[--r->nopen]; /* full: out now */
        batch_send(r, b);
    } else if (!evtimer_pending(r->flush_ev, NULL)) {
        evtimer_add(r->flush_ev, &now);
    }
    return true;
}

/* A request went away: its calls leave their batches (a sent batch whose
 * every call left is cancelled). */
static void batch_forget(rl_redis_t *r, rr_call_t *call)
{
    rr_batch_t *b = call->batch;

    b->calls[call->bidx] = NULL;
    call->batch = NULL;
    if (--b->live > 0 || b->h == NULL)
        return; /* others wait, or not sent yet (flush skips it) */
    r->ops->cancel(r->client, b->h);
    free(b);
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
        if (r->ol_hit != NULL && !call->g->dry_run)
            r->ol_hit(r->ol_ctx);
        return true;
    }
    return false;
}

/* consistency: leased — admit from this worker's lease, or make the call
 * ask for a lease's worth of tokens.  true when answered locally. */
static bool leased(rl_redis_t *r, rr_call_t *call)
{
    char key[OL_KEY_MAX];
    rl_group_t *g = call->g;
    int len;
    uint32_t want;

    if (!lease_applies(g) || (len = lease_key(g, key, sizeof key)) < 0)
        return false;
    if (lease_take(r->leases, key, (size_t)len, g, util_mono_ms())) {
        if (r->lease_hit != NULL && !g->dry_run)
            r->lease_hit(r->ol_ctx);
        return true;
    }
    if (g->dry_run)
        return false; /* an exact dry call: a lease is never asked for */
    want = lease_want(r->leases, key, (size_t)len, g);
    call->lease_cost = g->cost;
    call->lease_want = want;
    g->cost = want; /* restored in lease_answered() */
    return false;
}

static void *rr_check(void *be, struct event_base *base, rl_group_t *groups, size_t n,
                      rl_backend_done_fn done, void *privdata)
{
    rl_redis_t *r = be;
    rr_pending_t *p;
    size_t i;

    if (r->max_waiting > 0 && r->waiting >= r->max_waiting) {
        /* Redis is slow or gone and the queue is full: the limits' degraded
         * answer now, rather than one more request waiting for a timeout. */
        for (i = 0; i < n; i++)
            groups[i].failed = true;
        if (r->shed != NULL)
            r->shed(r->ol_ctx);
        done(-1, "redis backlog full", privdata);
        return NULL;
    }
    p = calloc(1, sizeof(*p) + n * sizeof(rr_call_t));
    if (p == NULL)
        return NULL;
    r->waiting++;
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
        if (over_limit(r, &p->calls[i]) || leased(r, &p->calls[i])) {
            p->left--; /* denied again, or admitted from a lease: nothing sent */
            continue;
        }
        if (batch_add(r, base, &p->calls[i]))
            continue; /* answered by batch_done */
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

    for (size_t i = 0; i < p->n; i++) {
        if (p->calls[i].h != NULL)
            r->ops->cancel(r->client, p->calls[i].h);
        else if (p->calls[i].batch != NULL)
            batch_forget(r, &p->calls[i]);
    }
    pending_free(p);
}

const rl_backend_ops_t rl_redis_ops = {
    .name = "redis",
    .check = rr_check,
    .cancel = rr_cancel,
};
