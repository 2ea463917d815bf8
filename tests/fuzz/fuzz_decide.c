/* fuzz_decide.c — libFuzzer target for the decision core (decide.h) on
 * outside input: the request target, the peer, and the headers, through
 * every step (header scan, client address, the forward-auth dialects,
 * normalization, route, CORS, authentication on the demo keys, limits on
 * the memory backend).
 * Run from build-fuzz/decide (scripts/fuzz.sh): the demo key file is
 * ../../config/demo-api-keys from there.
 * Input: the first byte picks the peer (even: a trusted proxy, odd: not),
 * the first line is the target, the next is the method, then lines
 * "name:value".
 *
 * Checks: `done` runs exactly once and never inside dec_start; every
 * verdict has a status of 200..599, a reason and a decision; an error
 * envelope has a message; a forward-auth allow has the identity headers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "tollgate/decide.h"
#include "tollgate/rl_memory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXH 32

typedef struct input {
    const char *names[MAXH], *values[MAXH];
    size_t n;
} input_t;

static const char *find(void *ctx, const char *name)
{
    const input_t *in = ctx;

    for (size_t i = 0; i < in->n; i++)
        if (strcasecmp(in->names[i], name) == 0)
            return in->values[i];
    return NULL;
}

static void each(void *ctx, dec_header_fn fn, void *arg)
{
    const input_t *in = ctx;

    for (size_t i = 0; i < in->n; i++)
        if (fn(arg, in->names[i], in->values[i]) != 0)
            return;
}

typedef struct t_timer {
    struct event ev;
    dec_timer_fn *fn;
    void *arg;
} t_timer_t;

static void fire(evutil_socket_t fd, short what, void *arg)
{
    t_timer_t *t = arg;

    (void)fd;
    (void)what;
    t->fn(t->arg);
    free(t);
}

static void *timer_add(void *arg, unsigned ms, dec_timer_fn *fn, void *fn_arg)
{
    t_timer_t *t = calloc(1, sizeof(*t));
    struct timeval tv = {0, (ms % 1000) * 1000};

    if (t == NULL)
        return NULL;
    t->fn = fn;
    t->arg = fn_arg;
    evtimer_assign(&t->ev, arg, fire, t);
    evtimer_add(&t->ev, &tv);
    return t;
}

static void timer_cancel(void *arg, void *timer)
{
    (void)arg;
    evtimer_del(&((t_timer_t *)timer)->ev);
    free(timer);
}

static uint64_t lk_check(void *st, const char *k, int64_t now)
{
    (void)st;
    (void)k;
    (void)now;
    return 0;
}

static void *lk_fail(void *st, const char *k, const auth_lockout_policy_t *p, int64_t now,
                     dec_count_done_fn *done, void *arg)
{
    (void)st, (void)k, (void)p, (void)now, (void)done, (void)arg;
    return NULL;
}

static void lk_detach(void *op)
{
    (void)op;
    abort(); /* never pending */
}

static dec_store_status_t t_redeem(void *st, const char *key, int64_t now, char **val,
                                   void **op, dec_ticket_done_fn *done, void *arg)
{
    (void)st, (void)key, (void)now, (void)op, (void)done, (void)arg;
    *val = NULL;
    return DEC_STORE_NOW;
}

static dec_store_status_t t_issue(void *st, const char *key, const char *val, unsigned ttl,
                                  int64_t now, void **op, dec_ticket_done_fn *done, void *arg)
{
    (void)st, (void)key, (void)val, (void)ttl, (void)now, (void)op, (void)done, (void)arg;
    return DEC_STORE_NOW;
}

static void t_cancel(void *op)
{
    (void)op;
    abort();
}

static const dec_stores_ops_t stores = {lk_check, lk_fail, lk_detach, t_redeem, t_issue, t_cancel};

static const char yaml[] =
    "environment: development\n"
    "redis: {mode: none}\n"
    "trusted_proxies: [\"10.0.0.0/8\"]\n"
    "auth: {mode: api_key, api_keys_file: ../../config/demo-api-keys}\n"
    "limits: [{name: l, match: {}, by: [client], rate: 1000000/second}]\n"
    "tiers: {gold: {l: 1000000/second}}\n"
    "routes:\n"
    "  - {name: pub, match: {path_prefix: /pub}, auth: none}\n"
    "  - {name: ws, match: {path_prefix: /ws}, tickets: true}\n"
    "  - {name: api, match: {path_prefix: /api}, upstream: \"http://127.0.0.1:9\"}\n"
    "cors: {allowed_origins: [\"http://app.example\"]}\n";

static int calls;
static int starting;

static void done(const dec_verdict_t *v, void *arg)
{
    (void)arg;
    calls++;
    if (starting || v->status < 200 || v->status > 599 || v->reason == NULL ||
        v->decision == NULL || (v->kind == DEC_ANSWER && v->code != NULL && !v->message))
        abort();
    if (v->kind == DEC_ALLOW && v->nset < 4)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_base *base;
    static rl_memory_t *mem;
    static rl_limiter_t *lim;
    static dec_ctx_t *ctx;
    static cfg_t *cfg;
    input_t hdrs = {0};
    char *buf, *line, *save = NULL, *target, *method;
    dec_pending_t *p;

    if (base == NULL) {
        char err[256];
        dec_ctx_cfg_t c = {.stores = &stores, .ticket_prefix = "tg:"};

        base = event_base_new();
        mem = rl_memory_new(10000);
        lim = rl_limiter_new(base, &rl_memory_ops, mem);
        cfg = cfg_load_string(yaml, strlen(yaml), "fuzz.yaml", err, sizeof err);
        if (base == NULL || lim == NULL || cfg == NULL) {
            fprintf(stderr, "fuzz_decide: %s (run from build-fuzz/decide)\n", err);
            abort();
        }
        c.limiter = lim;
        c.hooks = (dec_hooks_t){.arg = base, .timer_add = timer_add, .timer_cancel = timer_cancel};
        ctx = dec_ctx_new(&c);
    }
    if (size < 1 || (buf = malloc(size)) == NULL)
        return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    target = strtok_r(buf, "\n", &save);
    method = target != NULL ? strtok_r(NULL, "\n", &save) : NULL;
    while (method != NULL && hdrs.n < MAXH && (line = strtok_r(NULL, "\n", &save)) != NULL) {
        char *colon = strchr(line, ':');

        if (colon == NULL)
            continue;
        *colon = '\0';
        hdrs.names[hdrs.n] = line;
        hdrs.values[hdrs.n++] = colon + 1;
    }
    dec_input_t in = {
        .method = method,
        .target = target != NULL ? target : "/",
        .peer = data[0] % 2 == 0 ? "10.1.2.3" : "192.0.2.1",
        .headers = {&hdrs, find, each},
        .dry_run = data[0] & 2,
    };
    calls = 0;
    starting = 1;
    p = dec_start(ctx, cfg, &in, done, NULL);
    starting = 0;
    while (p != NULL && calls == 0)
        event_base_loop(base, EVLOOP_ONCE);
    if (p != NULL && calls != 1)
        abort();
    free(buf);
    return 0;
}
