/* test_decide.c — the decision core (decide.h) without sockets.
 *
 * decide.h stays a door no transport type crosses: included first and
 * alone, it must compile without libevent (checked by the preprocessor
 * below), and its code — comments left out — names no evhttp, evbuffer,
 * bufferevent, evkeyval or event2 type; no decide/ source includes one.
 *
 * Then a table of (config, request) -> (status, audit reason, identity,
 * headers set / removed) run through dec_start() on the memory backend,
 * with a fake store behind dec_stores_ops_t and an event loop of the test's
 * own (the limiter and the core's timers need one; decide/ has none).
 */
#include "tollgate/decide.h"

#if defined(EVENT2_EVENT_H_INCLUDED_) || defined(EVENT2_HTTP_H_INCLUDED_) ||               \
    defined(EVENT2_BUFFER_H_INCLUDED_) || defined(EVENT2_UTIL_H_INCLUDED_)
#error "decide.h pulls in libevent"
#endif

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <time.h>

#include "tollgate/auth_ban.h"
#include "tollgate/auth_ticket.h"
#include "tollgate/util_clock.h"
#include "tollgate/rl_memory.h"
#include "tollgate/rl_redis.h"
#include "tollgate/util_b64.h"
#include "tollgate/rl_policy.h"
#include "unit.h"

/* The header's text with its comments blanked out; NULL on error. */
static char *code_of(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = calloc(1, (size_t)n + 1)) != NULL &&
        fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    for (char *p = buf; p != NULL && (p = strstr(p, "/*")) != NULL;) {
        char *end = strstr(p + 2, "*/");

        end = end != NULL ? end + 2 : p + strlen(p);
        memset(p, ' ', (size_t)(end - p));
        p = end;
    }
    return buf;
}

static void test_no_transport_names(void)
{
    static const char *const banned[] = {
        "event2", "evhttp", "evbuffer", "bufferevent", "evkeyval", "event_base", "nghttp2",
    };
    char *code = code_of("../../include/tollgate/decide.h");

    CU_ASSERT_PTR_NOT_NULL_FATAL(code);
    CU_ASSERT_PTR_NOT_NULL(strstr(code, "dec_verdict_t")); /* the code is there */
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (strstr(code, banned[i]) != NULL)
            CU_FAIL(banned[i]);
    free(code);
}

/* A verdict holds what the evhttp adapter wrote before: the longest Allow
 * list and a Retry-After fit a copied value, a preflight's headers fit. */
static void test_verdict_room(void)
{
    static const char all[] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE";
    dec_verdict_t v;

    /* rl_method_list cuts a list that does not fit: every method must. */
    CU_ASSERT_EQUAL(rl_method_list(~0u, v.vals[0], sizeof v.vals[0]), strlen(all));
    CU_ASSERT_STRING_EQUAL(v.vals[0], all);
    CU_ASSERT(sizeof v.limits.retry >= sizeof "18446744073709551615");
    CU_ASSERT(DEC_VERDICT_HDRS >= 3);
}

/* No decide/ source includes a transport's header or a server/ one. */
static void test_core_includes(void)
{
    DIR *d = opendir("../../decide");
    struct dirent *e;
    char path[512], line[512];
    int files = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        FILE *f;

        if (n < 3 || (strcmp(e->d_name + n - 2, ".c") != 0 && strcmp(e->d_name + n - 2, ".h")))
            continue;
        snprintf(path, sizeof path, "../../decide/%s", e->d_name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(f = fopen(path, "r"));
        files++;
        while (fgets(line, sizeof line, f) != NULL)
            if (strncmp(line, "#include", 8) == 0 &&
                (strstr(line, "event2") || strstr(line, "server/") || strstr(line, "srv_")))
                CU_FAIL(path);
        fclose(f);
    }
    closedir(d);
    CU_ASSERT(files >= 5);
}

/* ---- the table's world: a config, a limiter, a fake store, a loop -------- */

#define ALICE "demo-key-alice-0123456789abcdef"
#define BOB "demo-key-bob-fedcba9876543210"

static const char base_yaml[] =
    "environment: development\n"
    "redis: {mode: none}\n"
    "trusted_proxies: [\"10.0.0.0/8\"]\n"
    "forward_auth: {path: /auth, dialect: auto}\n"
    "default_route: {auth: required}\n"
    "proxy: {hide_credentials: true}\n"
    "auth:\n"
    "  mode: api_key\n"
    "  api_keys_file: ../../config/demo-api-keys\n"
    "  lockout: {max_failures: 2, window: 1m, base_backoff: 30s, max_backoff: 1m}\n"
    "limits:\n"
    "  - {name: tight, match: {path_prefix: /tight}, by: [client], rate: 2/minute}\n"
    "routes:\n"
    "  - {name: admin, match: {path_prefix: /admin}, scopes: [\"demo:write\"]}\n"
    "  - {name: pub, match: {path_prefix: /pub}, auth: none}\n"
    "  - {name: opt, match: {path_prefix: /opt}, auth: optional}\n"
    "  - {name: ws, match: {path_prefix: /ws}, tickets: true}\n"
    "  - {name: only-get, match: {path_prefix: /only-get, methods: [GET]},"
    " other_methods: deny}\n"
    "  - {name: enc, match: {path_prefix: /enc}, allow_encoded_percent: true, auth: none}\n"
    "  - {name: api, match: {path_prefix: /api}, upstream: \"http://127.0.0.1:9\"}\n"
    "cors: {allowed_origins: [\"http://app.example\"]}\n"
    "tiers: {gold: {tight: 2/minute}}\n";

/* auth.mode any with an HS256 secret (JWT_SECRET while the config loads),
 * a route that takes API keys only, and a key past its not_after. */
#define JWT_SECRET_TEXT "decide-test-secret-0123456789abcdef"
static const char jwt_yaml[] = "environment: development\n"
                               "redis: {mode: none}\n"
                               "auth:\n"
                               "  mode: any\n"
                               "  api_keys_file: fixtures/decide-keys.txt\n"
                               "  jwt: {algorithms: [HS256]}\n"
                               "routes:\n"
                               "  - {name: keys, match: {path_prefix: /keys}, auth_methods: [api_key]}\n";
/* auth.mode any, no JWT key: a bearer token cannot be checked. */
static const char nojwt_yaml[] = "environment: development\n"
                                 "redis: {mode: none}\n"
                                 "auth: {mode: any, api_keys_file: fixtures/decide-keys.txt}\n";

/* HS256 tokens for JWT_SECRET_TEXT, made by make_tokens(). */
static char tok_good[512], tok_expired[512], tok_badsig[512];
#define BEARER(t) "Authorization", t

typedef struct fake_ticket {
    char key[AUTH_TICKET_KEY_MAX];
    char *val;
} fake_ticket_t;

/* The fake store: lockouts in a real in-memory auth_lockout_t, tickets in
 * a small table answered later from the loop; every write counted. */
typedef struct fake {
    auth_lockout_t *lockout;
    fake_ticket_t tickets[4];
    unsigned fails, redeems, issues;
    struct event_base *base;
} fake_t;

typedef struct fake_op {
    struct event ev;
    fake_t *f;
    char *val;
    dec_ticket_done_fn *done;
    void *arg;
} fake_op_t;

static uint64_t f_lockout_check(void *st, const char *ip_key, int64_t now_ms)
{
    return auth_lockout_check(((fake_t *)st)->lockout, ip_key, now_ms);
}

static void *f_lockout_fail(void *st, const char *ip_key, const auth_lockout_policy_t *p,
                            int64_t now_ms, dec_count_done_fn *done, void *arg)
{
    fake_t *f = st;

    (void)done;
    (void)arg;
    f->fails++;
    auth_lockout_fail(f->lockout, ip_key, p, now_ms);
    return NULL; /* counted at once, like the memory store */
}

static void f_lockout_detach(void *op)
{
    (void)op;
    CU_FAIL("nothing to detach");
}

static void op_fire(evutil_socket_t fd, short what, void *arg)
{
    fake_op_t *op = arg;

    (void)fd;
    (void)what;
    op->done(op->val, op->val != NULL ? strlen(op->val) : 0, false, op->arg);
    free(op->val);
    free(op);
}

static dec_store_status_t later(fake_t *f, char *val, void **op, dec_ticket_done_fn *done,
                                void *arg)
{
    static const struct timeval now = {0, 0};
    fake_op_t *o = calloc(1, sizeof(*o));

    o->f = f;
    o->val = val;
    o->done = done;
    o->arg = arg;
    evtimer_assign(&o->ev, f->base, op_fire, o);
    evtimer_add(&o->ev, &now);
    *op = o;
    return DEC_STORE_LATER;
}

static dec_store_status_t f_redeem(void *st, const char *key, int64_t now_ms, char **val,
                                   void **op, dec_ticket_done_fn *done, void *arg)
{
    fake_t *f = st;
    char *v = NULL;

    (void)now_ms;
    (void)val;
    f->redeems++;
    for (size_t i = 0; i < 4; i++)
        if (f->tickets[i].val != NULL && strcmp(f->tickets[i].key, key) == 0) {
            v = f->tickets[i].val; /* taken: once */
            f->tickets[i].val = NULL;
        }
    return later(f, v, op, done, arg);
}

static dec_store_status_t f_issue(void *st, const char *key, const char *val, unsigned ttl_s,
                                  int64_t now_ms, void **op, dec_ticket_done_fn *done,
                                  void *arg)
{
    fake_t *f = st;

    (void)ttl_s;
    (void)now_ms;
    f->issues++;
    for (size_t i = 0; i < 4; i++)
        if (f->tickets[i].val == NULL) {
            snprintf(f->tickets[i].key, sizeof f->tickets[i].key, "%s", key);
            f->tickets[i].val = strdup(val);
            return later(f, strdup("OK"), op, done, arg);
        }
    return DEC_STORE_FAILED;
}

static void f_ticket_cancel(void *op)
{
    fake_op_t *o = op;

    evtimer_del(&o->ev);
    free(o->val);
    free(o);
}

static const dec_stores_ops_t fake_ops = {
    f_lockout_check, f_lockout_fail, f_lockout_detach, f_redeem, f_issue, f_ticket_cancel,
};

typedef struct t_timer {
    struct event ev;
    dec_timer_fn *fn;
    void *arg;
} t_timer_t;

static void t_fire(evutil_socket_t fd, short what, void *arg)
{
    t_timer_t *t = arg;

    (void)fd;
    (void)what;
    t->fn(t->arg);
    free(t);
}

static void *t_add(void *arg, unsigned ms, dec_timer_fn *fn, void *fn_arg)
{
    t_timer_t *t = calloc(1, sizeof(*t));
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    t->fn = fn;
    t->arg = fn_arg;
    evtimer_assign(&t->ev, arg, t_fire, t);
    evtimer_add(&t->ev, &tv);
    return t;
}

static void t_cancel(void *arg, void *timer)
{
    (void)arg;
    evtimer_del(&((t_timer_t *)timer)->ev);
    free(timer);
}

/* A Redis behind the limiter's rc_ops_t (rl_redis.c, lua/bucket.lua's
 * reply): each EVALSHA is answered from a zero-delay event, as a socket
 * would, with what `mode` says. */
typedef enum {
    FR_DENY, /* every bucket empty: retry after 7 s */
    FR_DOWN, /* no reply: the connection failed */
} fr_mode_t;

#define FR_MAX 8
typedef struct fredis {
    struct event_base *base;
    fr_mode_t mode;
    int calls, cancelled;
    bool dry; /* the last call was a dry one ('D' before its arguments) */
    struct fr_call {
        struct event *ev;
        rc_reply_fn fn;
        void *priv;
        int nkeys;
        struct fredis *f_owner;
    } call[FR_MAX];
} fredis_t;

static void fr_answer(evutil_socket_t fd, short what, void *arg)
{
    struct fr_call *c = arg;
    fredis_t *f = c->f_owner;
    redisReply *el[2 + 4 * 4], ints[2 + 4 * 4];
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .element = el};
    rc_reply_fn fn = c->fn;
    void *priv = c->priv;

    (void)fd;
    (void)what;
    event_free(c->ev);
    c->ev = NULL;
    if (f->mode == FR_DOWN) {
        fn(NULL, NULL, "connection refused", priv);
        return;
    }
    arr.elements = 2 + 4 * (size_t)c->nkeys;
    for (size_t k = 0; k < arr.elements; k++) {
        /* per key: allowed, remaining, reset ms, retry-after ms */
        long long v = k < 2 ? 0 : (k - 2) % 4 == 2 ? 60000 : (k - 2) % 4 == 3 ? 7000 : 0;
        ints[k] = (redisReply){.type = REDIS_REPLY_INTEGER, .integer = v};
        el[k] = &ints[k];
    }
    fn(NULL, &arr, NULL, priv);
}

static rc_pending_t *fr_evalsha(void *cl, size_t script, int nkeys, const char **keys,
                                const size_t *keylens, int nargs, const char **args,
                                const size_t *arglens, rc_reply_fn fn, void *privdata)
{
    fredis_t *f = cl;
    struct fr_call *c = NULL;

    (void)script;
    (void)keys;
    (void)keylens;
    for (size_t i = 0; i < FR_MAX && c == NULL; i++)
        if (f->call[i].ev == NULL)
            c = &f->call[i];
    if (c == NULL || nkeys > 4)
        return NULL;
    f->calls++;
    f->dry = nargs > 0 && arglens[0] == 1 && args[0][0] == 'D';
    *c = (struct fr_call){.fn = fn, .priv = privdata, .nkeys = nkeys, .f_owner = f};
    c->ev = event_new(f->base, -1, 0, fr_answer, c);
    event_active(c->ev, 0, 0);
    return (rc_pending_t *)c;
}

static void fr_cancel(void *cl, rc_pending_t *p)
{
    struct fr_call *c = (struct fr_call *)p;

    ((fredis_t *)cl)->cancelled++;
    event_free(c->ev);
    c->ev = NULL;
}

static const rc_ops_t fr_ops = {.evalsha = fr_evalsha, .cancel = fr_cancel};

typedef struct world {
    struct event_base *base;
    rl_memory_t *mem;
    rl_limiter_t *limiter;
    fake_t fake;
    dec_ctx_t *ctx;
    cfg_t *cfg;
    rl_redis_t *redis; /* world_new_redis: the shared backend, `mem` the fallback */
    auth_ban_t *bans;  /* the context's bans, or NULL */
} world_t;

static void world_ctx(world_t *w);

static void world_new(world_t *w, const char *yaml)
{
    char err[512] = "";

    memset(w, 0, sizeof(*w));
    if (yaml == jwt_yaml)
        setenv("JWT_SECRET", JWT_SECRET_TEXT, 1);
    w->cfg = cfg_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof err);
    unsetenv("JWT_SECRET");
    if (w->cfg == NULL)
        fprintf(stderr, "%s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w->cfg);
    w->base = event_base_new();
    w->mem = rl_memory_new(1000);
    w->limiter = rl_limiter_new(w->base, &rl_memory_ops, w->mem);
    w->fake.lockout = auth_lockout_new(100);
    w->fake.base = w->base;
    world_ctx(w);
}

/* The decision context over the world's limiter and fake stores. */
static void world_ctx(world_t *w)
{
    dec_ctx_cfg_t c = {0};

    c.limiter = w->limiter;
    c.stores = &fake_ops;
    c.store = &w->fake;
    c.ticket_prefix = "tg:";
    c.hooks.arg = w->base;
    c.hooks.timer_add = t_add;
    c.hooks.timer_cancel = t_cancel;
    c.bans = w->bans;
    w->ctx = dec_ctx_new(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w->ctx);
}

/* The same world with the limiter on Redis (`f`, behind rc_ops_t) and the
 * local fallback of on_redis_error: local on `mem`. */
static void world_new_redis(world_t *w, const char *yaml, fredis_t *f)
{
    world_new(w, yaml);
    rl_limiter_free(w->limiter);
    f->base = w->base;
    w->redis = rl_redis_new(&fr_ops, f, "tg:", 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w->redis);
    w->limiter = rl_limiter_new(w->base, &rl_redis_ops, w->redis);
    rl_limiter_set_fallback(w->limiter, w->mem, 1);
    dec_ctx_free(w->ctx);
    world_ctx(w);
}

static void world_free(world_t *w)
{
    dec_ctx_free(w->ctx);
    rl_limiter_free(w->limiter);
    rl_redis_free(w->redis);
    rl_memory_free(w->mem);
    auth_lockout_free(w->fake.lockout);
    for (size_t i = 0; i < 4; i++)
        free(w->fake.tickets[i].val);
    event_base_free(w->base);
    cfg_unref(w->cfg);
}

/* ---- one request ------------------------------------------------------------ */

#define MAXH 12
typedef struct req {
    const char *method, *target, *peer;
    const char *hdrs[2 * MAXH + 1]; /* name, value, ..., NULL */
    const char *body;
    bool dry_run;
    dec_head_t head;
    dec_explain_t *explain; /* explain's sink, or NULL */
    const char *as_client;
    const dec_replay_id_t *replay_as;
} req_t;

/* What `done` saw, copied. */
typedef struct seen {
    int calls;
    bool during_start;
    dec_kind_t kind;
    int status;
    char reason[64], client_id[160], ip[64], reqid[80], body[256], target[256];
    char set[DEC_VERDICT_HDRS][2][256];
    size_t nset, nremove;
    bool close;
    dec_limits_t limits;
    char policy[128];
} seen_t;

static bool starting;

static const char *h_find(void *ctx, const char *name)
{
    const req_t *q = ctx;

    for (size_t i = 0; q->hdrs[i] != NULL; i += 2)
        if (strcasecmp(q->hdrs[i], name) == 0)
            return q->hdrs[i + 1];
    return NULL;
}

static void h_each(void *ctx, dec_header_fn fn, void *arg)
{
    const req_t *q = ctx;

    for (size_t i = 0; q->hdrs[i] != NULL; i += 2)
        if (fn(arg, q->hdrs[i], q->hdrs[i + 1]) != 0)
            return;
}

static const char *h_body(void *ctx, size_t *len)
{
    const req_t *q = ctx;

    *len = q->body != NULL ? strlen(q->body) : 0;
    return q->body;
}

static void cp(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s != NULL ? s : "");
}

static void on_done(const dec_verdict_t *v, void *arg)
{
    seen_t *s = arg;

    s->calls++;
    s->during_start = starting;
    s->kind = v->kind;
    s->status = v->status;
    s->close = v->close;
    cp(s->reason, sizeof s->reason, v->reason);
    cp(s->client_id, sizeof s->client_id, v->id != NULL ? v->id->client_id : NULL);
    cp(s->ip, sizeof s->ip, v->client_ip);
    cp(s->reqid, sizeof s->reqid, v->request_id);
    cp(s->body, sizeof s->body, v->body);
    cp(s->target, sizeof s->target, v->kind == DEC_FORWARD ? v->forward.target : NULL);
    s->nset = v->nset;
    for (size_t i = 0; i < v->nset; i++) {
        cp(s->set[i][0], sizeof s->set[i][0], v->set[i].name);
        cp(s->set[i][1], sizeof s->set[i][1], v->set[i].value);
    }
    s->nremove = v->nremove;
    s->limits = v->limits;
    cp(s->policy, sizeof s->policy, v->limits.policy);
    s->limits.policy = s->limits.state = NULL;
}

static const char *seen_header(const seen_t *s, const char *name)
{
    for (size_t i = 0; i < s->nset; i++)
        if (strcasecmp(s->set[i][0], name) == 0)
            return s->set[i][1];
    return NULL;
}

/* Decide `q` in `w`; `done` must come once, never inside dec_start. */
static void decide(world_t *w, const req_t *q, seen_t *s)
{
    dec_input_t in = {
        .method = q->method != NULL ? q->method : "GET",
        .target = q->target,
        .peer = q->peer != NULL ? q->peer : "192.0.2.1",
        .headers = {(void *)q, h_find, h_each},
        .dry_run = q->dry_run,
        .head = q->head,
        .explain = q->explain,
        .as_client = q->as_client,
        .replay_as = q->replay_as,
        .body = h_body,
        .body_ctx = (void *)q,
    };
    dec_pending_t *p;

    memset(s, 0, sizeof(*s));
    starting = true;
    p = dec_start(w->ctx, w->cfg, &in, on_done, s);
    starting = false;
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(s->calls, 0);
    for (int i = 0; i < 1000 && s->calls == 0; i++)
        event_base_loop(w->base, EVLOOP_ONCE);
    CU_ASSERT_EQUAL(s->calls, 1);
    CU_ASSERT_FALSE(s->during_start);
}

/* ---- the table ---------------------------------------------------------------- */

typedef struct row {
    const char *name;
    req_t q;
    unsigned repeat; /* the same request this often before the one checked */
    int status;
    const char *reason;
    const char *client_id; /* "" anonymous */
    const char *hdr, *val; /* a header the verdict sets, and its value ("*": any) */
    const char *ip;        /* the client ip decided, or NULL */
    unsigned fails;        /* failures counted in the store, all requests */
    dec_kind_t kind;
    const char *yaml; /* NULL: base_yaml */
} row_t;

#define H(...) .hdrs = {__VA_ARGS__, NULL}
#define KEY(k) "X-API-Key", k
#define TRUSTED "10.0.0.5"

static const row_t rows[] = {
    /* forward-auth (Envoy form: the original under the prefix) */
    {"envoy allow", {.target = "/auth/demo/x", H(KEY(ALICE))}, 0, 200, "ok", "demo-alice",
     "X-Auth-Method", "api_key", NULL, 0, DEC_ALLOW, NULL},
    {"identity headers", {.target = "/auth/demo/x", H(KEY(BOB))}, 0, 200, "ok", "demo-bob",
     "X-Auth-Scopes", "demo:read", NULL, 0, DEC_ALLOW, NULL},
    {"missing credentials", {.target = "/auth/demo/x", H("Accept", "*/*")}, 0, 401,
     "missing_credentials", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"invalid key counted", {.target = "/auth/demo/x", H(KEY("nope"))}, 0, 401,
     "invalid_api_key", "", NULL, NULL, NULL, 1, DEC_ANSWER, NULL},
    {"bearer where auth.mode takes API keys only",
     {.target = "/auth/x", H("Authorization", "Bearer a.b.c")}, 0, 401, "missing_credentials",
     "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"scope denied", {.target = "/auth/admin/x", H(KEY(BOB))}, 0, 403,
     "insufficient_scope", "demo-bob", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"scope held", {.target = "/auth/admin/x", H(KEY(ALICE))}, 0, 200, "ok", "demo-alice",
     NULL, NULL, NULL, 0, DEC_ALLOW, NULL},
    {"auth none: anonymous", {.target = "/auth/pub/x", H("Accept", "*/*")}, 0, 200, "ok", "",
     "X-Auth-Method", "none", NULL, 0, DEC_ALLOW, NULL},
    {"optional: anonymous", {.target = "/auth/opt/x", H("Accept", "*/*")}, 0, 200, "ok", "",
     "X-Auth-Client-Id", "", NULL, 0, DEC_ALLOW, NULL},
    {"optional: a bad key still refused", {.target = "/auth/opt/x", H(KEY("nope"))}, 0, 401,
     "invalid_api_key", "", NULL, NULL, NULL, 1, DEC_ANSWER, NULL},
    /* paths */
    {"dot segment in the original", {.target = "/auth/pub/../admin", H(KEY(ALICE))}, 0, 400,
     "bad_path", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"double encoding refused", {.target = "/auth/pub/%252e", H(KEY(ALICE))}, 0, 400,
     "bad_path", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"double encoding where allowed", {.target = "/auth/enc/%252e", H("Accept", "*/*")}, 0,
     200, "ok", "", NULL, NULL, NULL, 0, DEC_ALLOW, NULL},
    {"prefix reached through ..", {.target = "/x/../auth/y", H(KEY(ALICE))}, 0, 400,
     "bad_path", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"not a path", {.target = "nope", H(KEY(ALICE))}, 0, 400, "bad_path", "", NULL, NULL,
     NULL, 0, DEC_ANSWER, NULL},
    /* forged and refused headers */
    {"forged identity header", {.target = "/auth/pub/x", H("X_Auth_Client_Id", "admin")}, 0,
     400, "reserved_header", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"method override header", {.target = "/auth/pub/x", H("X-HTTP-Method-Override", "DELETE")},
     0, 400, "method_override", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"_method in the query", {.target = "/auth/pub/x?_method=DELETE", H("Accept", "*/*")}, 0,
     400, "method_override", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"_method in a form body",
     {.method = "POST", .target = "/auth/pub/x", .body = "a=1&_method=DELETE",
      H("Content-Type", "application/x-www-form-urlencoded")},
     0, 400, "method_override", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"duplicate credential", {.target = "/auth/x", H(KEY(ALICE), KEY(BOB))}, 0, 400,
     "duplicate_header", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"control byte in a value", {.target = "/auth/x", H("X-Foo", "a\001b")}, 0, 400,
     "bad_header_value", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"Content-Length not digits", {.target = "/auth/x", H("Content-Length", "+5")}, 0, 400,
     "bad_content_length", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"NUL in the head", {.target = "/auth/x", .head = DEC_HEAD_NUL, H(KEY(ALICE))}, 0, 400,
     "nul_in_header", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"head too large", {.target = "/auth/x", .head = DEC_HEAD_TOO_LARGE, H(KEY(ALICE))}, 0,
     431, "headers_too_large", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"body too large", {.target = "/auth/x", .head = DEC_HEAD_BODY_TOO_LARGE, H(KEY(ALICE))},
     0, 413, "body_too_large", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"unparsed method", {.method = "PURGE", .target = "/", .head = DEC_HEAD_METHOD,
                         H("Accept", "*/*")},
     0, 405, "method_not_allowed", "", "Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
     NULL, 0, DEC_ANSWER, NULL},
    /* forward-auth dialects and who may speak them */
    {"nginx headers from an untrusted peer",
     {.target = "/auth", H("X-Original-URI", "/demo/x", KEY(ALICE))}, 0, 403,
     "untrusted_forwarder", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"nginx from a trusted proxy",
     {.target = "/auth", .peer = TRUSTED,
      H("X-Original-URI", "/admin/x", "X-Original-Method", "POST", KEY(ALICE))},
     0, 200, "ok", "demo-alice", NULL, NULL, NULL, 0, DEC_ALLOW, NULL},
    {"nginx without the original",
     {.target = "/auth", .peer = TRUSTED, H("X-Original-Method", "GET", KEY(ALICE))}, 0, 400,
     "bad_original", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"two dialects",
     {.target = "/auth", .peer = TRUSTED,
      H("X-Original-URI", "/a", "X-Forwarded-Uri", "/b", KEY(ALICE))},
     0, 400, "dialect_conflict", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"traefik from a trusted proxy",
     {.target = "/auth", .peer = TRUSTED,
      H("X-Forwarded-Uri", "/admin/y", "X-Forwarded-Method", "GET", KEY(BOB))},
     0, 403, "insufficient_scope", "demo-bob", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"nginx: a method not served is 403",
     {.target = "/auth", .peer = TRUSTED,
      H("X-Original-URI", "/x", "X-Original-Method", "TRACE", KEY(ALICE))},
     0, 403, "method_not_allowed", "", "Allow", "*", NULL, 0, DEC_ANSWER, NULL},
    /* client address */
    {"X-Forwarded-For from an untrusted peer is ignored",
     {.target = "/auth/pub/x", .peer = "192.0.2.7", H("X-Forwarded-For", "203.0.113.9")}, 0,
     200, "ok", "", NULL, NULL, "192.0.2.7", 0, DEC_ALLOW, NULL},
    {"X-Forwarded-For from a trusted proxy",
     {.target = "/auth/pub/x", .peer = TRUSTED,
      H("X-Forwarded-For", "198.51.100.1", "X-Forwarded-For", "203.0.113.9")},
     0, 200, "ok", "", NULL, NULL, "203.0.113.9", 0, DEC_ALLOW, NULL},
    {"X-Real-IP from a trusted proxy",
     {.target = "/auth/pub/x", .peer = TRUSTED, H("X-Real-IP", "203.0.113.8")}, 0, 200, "ok",
     "", NULL, NULL, "203.0.113.8", 0, DEC_ALLOW, NULL},
    /* methods and CORS */
    {"TRACE not served", {.method = "TRACE", .target = "/auth/x", H(KEY(ALICE))}, 0, 405,
     "method_not_allowed", "", "Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", NULL,
     0, DEC_ANSWER, NULL},
    {"route's list is final", {.method = "POST", .target = "/auth/only-get", H(KEY(ALICE))},
     0, 405, "method_not_allowed", "", "Allow", "GET", NULL, 0, DEC_ANSWER, NULL},
    {"preflight allowed",
     {.method = "OPTIONS", .target = "/api/x",
      H("Origin", "http://app.example", "Access-Control-Request-Method", "GET")},
     0, 204, "preflight", "", "Access-Control-Max-Age", "600", NULL, 0, DEC_ANSWER, NULL},
    {"preflight from another origin",
     {.method = "OPTIONS", .target = "/api/x",
      H("Origin", "http://evil.example", "Access-Control-Request-Method", "GET")},
     0, 403, "cors_origin", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    /* proxy mode and own paths */
    {"proxy: no route", {.target = "/nowhere", H(KEY(ALICE))}, 0, 404, "no_route", "", NULL,
     NULL, NULL, 0, DEC_ANSWER, NULL},
    {"proxy: forward", {.target = "/api/./x?q=1", H(KEY(ALICE))}, 0, 200, "ok", "demo-alice",
     "X-Auth-Client-Id", "demo-alice", NULL, 0, DEC_FORWARD, NULL},
    {"proxy: vouched headers", {.target = "/api/x", .peer = "192.0.2.9", H(KEY(ALICE))}, 0,
     200, "ok", "demo-alice", "X-Real-IP", "192.0.2.9", NULL, 0, DEC_FORWARD, NULL},
    {"health", {.target = "/healthz", H("Accept", "*/*")}, 0, 200, "health", "", NULL, NULL,
     NULL, 0, DEC_ANSWER, NULL},
    {"tickets only by POST", {.target = "/v1/tickets", H(KEY(ALICE))}, 0, 405,
     "method_not_allowed", "", "Allow", "POST", NULL, 0, DEC_ANSWER, NULL},
    /* lockout, limits, dry runs */
    {"locked out after two failures", {.target = "/auth/x", H(KEY("nope"))}, 2, 429,
     "locked_out", "", "Retry-After", "30", NULL, 2, DEC_ANSWER, NULL},
    {"a dry run counts no failure", {.target = "/auth/x", .dry_run = true, H(KEY("nope"))}, 3,
     401, "invalid_api_key", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"rate limited", {.target = "/auth/tight", H(KEY(BOB))}, 2, 429, "rate_limited",
     "demo-bob", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"a dry run redeems no ticket",
     {.target = "/auth/ws/x?ticket=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", .dry_run = true,
      H("Accept", "*/*")},
     0, 401, "ticket_not_redeemed", "", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"a dry run issues no ticket",
     {.method = "POST", .target = "/v1/tickets", .dry_run = true, H(KEY(ALICE))}, 0, 200,
     "ticket_issued", "demo-alice", NULL, NULL, NULL, 0, DEC_ANSWER, NULL},
    {"an unknown ticket", {.target = "/auth/ws/x?ticket=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                          H("Accept", "*/*")},
     0, 401, "invalid_ticket", "", NULL, NULL, NULL, 1, DEC_ANSWER, NULL},
    /* each authentication failure (JWT ones with the HS256 config) */
    {"a key past its not_after", {.target = "/auth/x", H(KEY("old-key-0123456789abcdef0123"))},
     0, 401, "key_expired", "", NULL, NULL, NULL, 1, DEC_ANSWER, jwt_yaml},
    {"a JWT allowed", {.target = "/auth/x", H(BEARER(tok_good))}, 0, 200, "ok", "u1",
     "X-Auth-Method", "jwt", NULL, 0, DEC_ALLOW, jwt_yaml},
    {"an expired JWT", {.target = "/auth/x", H(BEARER(tok_expired))}, 0, 401, "expired", "",
     NULL, NULL, NULL, 1, DEC_ANSWER, jwt_yaml},
    {"a JWT with a bad signature", {.target = "/auth/x", H(BEARER(tok_badsig))}, 0, 401,
     "bad_signature", "", NULL, NULL, NULL, 1, DEC_ANSWER, jwt_yaml},
    {"a malformed JWT", {.target = "/auth/x", H("Authorization", "Bearer abc")}, 0, 401,
     "malformed", "", NULL, NULL, NULL, 1, DEC_ANSWER, jwt_yaml},
    {"a JWT where the route takes keys only", {.target = "/auth/keys/x", H(BEARER(tok_good))},
     0, 401, "auth_method", "", NULL, NULL, NULL, 1, DEC_ANSWER, jwt_yaml},
    {"a bearer token and no key to check it",
     {.target = "/auth/x", H("Authorization", "Bearer a.b.c")}, 0, 401, "no_key", "", NULL,
     NULL, NULL, 0, DEC_ANSWER, nojwt_yaml},
};

static void b64(const void *in, size_t n, char *out)
{
    util_b64url_encode(in, n, out);
}

/* "Bearer " + an HS256 token of `payload`, signed with `secret`. */
static void make_token(char *out, size_t len, const char *payload, const char *secret)
{
    static const char head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char h[128], p[512], signing[700], sig[64];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;

    b64(head, strlen(head), h);
    b64(payload, strlen(payload), p);
    snprintf(signing, sizeof signing, "%s.%s", h, p);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)signing,
         strlen(signing), mac, &maclen);
    b64(mac, maclen, sig);
    snprintf(out, len, "Bearer %s.%s", signing, sig);
}

static void make_tokens(void)
{
    char payload[256];
    long long now = (long long)time(NULL);

    snprintf(payload, sizeof payload, "{\"sub\":\"u1\",\"exp\":%lld,\"scope\":\"demo:read\"}",
             now + 3600);
    make_token(tok_good, sizeof tok_good, payload, JWT_SECRET_TEXT);
    make_token(tok_badsig, sizeof tok_badsig, payload, "another-secret-0123456789abcdef0");
    snprintf(payload, sizeof payload, "{\"sub\":\"u1\",\"exp\":%lld}", now - 3600);
    make_token(tok_expired, sizeof tok_expired, payload, JWT_SECRET_TEXT);
}

static void check_row(const row_t *row)
{
    world_t w;
    seen_t s;
    char what[160];
    const char *v;

    world_new(&w, row->yaml != NULL ? row->yaml : base_yaml);
    for (unsigned i = 0; i <= row->repeat; i++)
        decide(&w, &row->q, &s);
    snprintf(what, sizeof what, "%s: status %d reason %s", row->name, s.status, s.reason);
    if (s.status != row->status || strcmp(s.reason, row->reason) != 0 ||
        strcmp(s.client_id, row->client_id) != 0 || s.kind != row->kind ||
        w.fake.fails != row->fails) {
        fprintf(stderr, "\n%s: client %s kind %d fails %u\n", what, s.client_id, s.kind,
                w.fake.fails);
        CU_FAIL("a row's verdict (see stderr)");
    }
    if (row->hdr != NULL) {
        v = seen_header(&s, row->hdr);
        if (v == NULL || (strcmp(row->val, "*") != 0 && strcmp(v, row->val) != 0)) {
            fprintf(stderr, "\n%s: %s: %s\n", row->name, row->hdr, v ? v : "(none)");
            CU_FAIL("a row's header (see stderr)");
        }
    }
    if (row->ip != NULL && strcmp(s.ip, row->ip) != 0) {
        fprintf(stderr, "\n%s: ip %s\n", row->name, s.ip);
        CU_FAIL("a row's client ip (see stderr)");
    }
    CU_ASSERT_EQUAL(w.fake.issues, 0);
    world_free(&w);
}

static void test_table(void)
{
    make_tokens();
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(&rows[i]);
    CU_ASSERT(sizeof rows / sizeof rows[0] >= 40);
}

/* Bans: an IP or CIDR ban refuses before the credential is looked at (a
 * wrong key counts no failure), on an auth: none route too; a client ban
 * after authentication; explain records which ban. */
static void ban_of(world_t *w, const char *target)
{
    auth_ban_entry_t e = {.until_ms = util_wall_ms() + 60000, .created_ms = 1};

    snprintf(e.target, sizeof e.target, "%s", target);
    CU_ASSERT_EQUAL(auth_ban_put(w->bans, &e, util_wall_ms()), 0);
}

static void test_bans(void)
{
    world_t w;
    seen_t s;
    dec_explain_t ex = {0};
    req_t alice = {.target = "/auth/demo/x", H(KEY(ALICE))};
    req_t wrong = {.target = "/auth/demo/x", H(KEY("nope"))};
    req_t bob = {.target = "/auth/demo/x", .peer = "192.0.2.2", H(KEY(BOB))};
    req_t pub = {.target = "/auth/pub/x", H("Accept", "*/*")};
    req_t via = {.target = "/auth/demo/x", .peer = TRUSTED,
                 H(KEY(ALICE), "X-Forwarded-For", "203.0.113.9")};
    req_t via2 = {.target = "/auth/demo/x", .peer = TRUSTED,
                  H(KEY(ALICE), "X-Forwarded-For", "198.51.100.9")};
    req_t dry = {.target = "/auth/demo/x", .dry_run = true, .explain = &ex,
                 H(KEY(ALICE))};

    world_new(&w, base_yaml);
    w.bans = auth_ban_new(10);
    dec_ctx_free(w.ctx);
    world_ctx(&w);
    ban_of(&w, "ip:192.0.2.1"); /* the rows' default peer */
    ban_of(&w, "cidr:203.0.113.0/24");
    ban_of(&w, "client:demo-bob");
    decide(&w, &alice, &s);
    CU_ASSERT_EQUAL(s.status, 403);
    CU_ASSERT_STRING_EQUAL(s.reason, "banned");
    CU_ASSERT_STRING_EQUAL(s.client_id, ""); /* refused before authentication */
    CU_ASSERT_PTR_NULL(seen_header(&s, "Retry-After"));
    for (int i = 0; i < 5; i++) {
        decide(&w, &wrong, &s);
        CU_ASSERT_EQUAL(s.status, 403);
    }
    CU_ASSERT_EQUAL(w.fake.fails, 0);
    decide(&w, &pub, &s);
    CU_ASSERT_EQUAL(s.status, 403);
    decide(&w, &via, &s);
    CU_ASSERT_EQUAL(s.status, 403);
    decide(&w, &via2, &s);
    CU_ASSERT_EQUAL(s.status, 200);
    decide(&w, &bob, &s);
    CU_ASSERT_EQUAL(s.status, 403);
    CU_ASSERT_STRING_EQUAL(s.reason, "banned");
    CU_ASSERT_STRING_EQUAL(s.client_id, "demo-bob"); /* refused once known */
    decide(&w, &dry, &s);
    CU_ASSERT_EQUAL(s.status, 403);
    CU_ASSERT_STRING_EQUAL(ex.banned, "ip");
    CU_ASSERT_PTR_NULL(ex.authn);
    dec_explain_clear(&ex);
    CU_ASSERT_TRUE(auth_ban_remove(w.bans, "ip:192.0.2.1", util_wall_ms()));
    decide(&w, &alice, &s);
    CU_ASSERT_EQUAL(s.status, 200);
    world_free(&w);
    auth_ban_free(w.bans);
}

/* The 429's numbers: Retry-After and the limit's report, and the remaining
 * count of the allows before it. */
static void test_rate_limit_report(void)
{
    static const req_t q = {.target = "/auth/tight", H(KEY(BOB))};
    world_t w;
    seen_t s;

    world_new(&w, base_yaml);
    decide(&w, &q, &s);
    CU_ASSERT_EQUAL(s.status, 200);
    CU_ASSERT_STRING_EQUAL(s.limits.limit, "2");
    CU_ASSERT_STRING_EQUAL(s.limits.remaining, "1");
    CU_ASSERT_STRING_EQUAL(s.limits.retry, "");
    CU_ASSERT_STRING_EQUAL(s.policy, "\"tight\";q=2;w=60");
    decide(&w, &q, &s);
    decide(&w, &q, &s);
    CU_ASSERT_EQUAL(s.status, 429);
    CU_ASSERT_STRING_EQUAL(s.limits.remaining, "0");
    CU_ASSERT(atoi(s.limits.retry) >= 1 && atoi(s.limits.retry) <= 30);
    world_free(&w);
}

/* A dry run answers what the next real request would get and takes no
 * token: three dry runs on a fresh 2/minute bucket all see remaining 1, the
 * two real requests after them are still allowed, and once the bucket is
 * empty a dry run is refused like a real one. */
static void test_dry_run_limits(void)
{
    static const req_t q = {.target = "/auth/tight", H(KEY(BOB))};
    static const req_t dry = {.target = "/auth/tight", .dry_run = true, H(KEY(BOB))};
    world_t w;
    seen_t s;

    world_new(&w, base_yaml);
    for (int i = 0; i < 3; i++) {
        decide(&w, &dry, &s);
        CU_ASSERT_EQUAL(s.status, 200);
        CU_ASSERT_STRING_EQUAL(s.limits.remaining, "1");
    }
    decide(&w, &q, &s);
    CU_ASSERT_EQUAL(s.status, 200);
    CU_ASSERT_STRING_EQUAL(s.limits.remaining, "1");
    decide(&w, &q, &s);
    CU_ASSERT_EQUAL(s.status, 200);
    CU_ASSERT_STRING_EQUAL(s.limits.remaining, "0");
    decide(&w, &dry, &s);
    CU_ASSERT_EQUAL(s.status, 429);
    CU_ASSERT_STRING_EQUAL(s.reason, "rate_limited");
    CU_ASSERT(atoi(s.limits.retry) >= 1 && atoi(s.limits.retry) <= 30);
    world_free(&w);
}

/* The limiter on Redis (a fake behind rc_ops_t): Redis's denial is the
 * 429 and its retry-after the Retry-After; a dry run sends bucket.lua's 'D'
 * form; with Redis down each limit takes its on_redis_error answer —
 * closed 503, open allowed, local the in-memory bucket (2/minute: the
 * third request is refused). */
static const char redis_yaml[] =
    "environment: development\n"
    "redis: {mode: standalone, nodes: [\"127.0.0.1:1\"]}\n"
    "forward_auth: {path: /auth, dialect: auto}\n"
    "auth: {mode: api_key, api_keys_file: ../../config/demo-api-keys}\n"
    "limits:\n"
    "  - {name: closed, match: {path_prefix: /closed}, by: [client], rate: 2/minute,"
    " on_redis_error: closed}\n"
    "  - {name: open, match: {path_prefix: /open}, by: [client], rate: 2/minute,"
    " on_redis_error: open}\n"
    "  - {name: local, match: {path_prefix: /local}, by: [client], rate: 2/minute,"
    " on_redis_error: local}\n";

static void test_redis_backend(void)
{
    static const req_t closed_bob = {.target = "/auth/closed", H(KEY(BOB))};
    static const req_t open_dry = {.target = "/auth/open", .dry_run = true, H(KEY(BOB))};
    static const req_t closed = {.target = "/auth/closed", H(KEY(ALICE))};
    static const req_t open = {.target = "/auth/open", H(KEY(ALICE))};
    static const req_t local = {.target = "/auth/local", H(KEY(ALICE))};
    fredis_t f = {0};
    world_t w;
    seen_t s;

    world_new_redis(&w, redis_yaml, &f);
    f.mode = FR_DENY;
    decide(&w, &closed_bob, &s);
    CU_ASSERT_EQUAL(s.status, 429);
    CU_ASSERT_STRING_EQUAL(s.reason, "rate_limited");
    CU_ASSERT_STRING_EQUAL(s.limits.retry, "7");
    CU_ASSERT_EQUAL(f.calls, 1);
    CU_ASSERT_FALSE(f.dry);
    decide(&w, &open_dry, &s);
    CU_ASSERT_EQUAL(s.status, 429);
    CU_ASSERT_EQUAL(f.calls, 2);
    CU_ASSERT_TRUE(f.dry);

    f.mode = FR_DOWN;
    decide(&w, &closed, &s);
    CU_ASSERT_EQUAL(s.status, 503);
    CU_ASSERT_STRING_EQUAL(s.reason, "limiter_unavailable");
    decide(&w, &open, &s);
    CU_ASSERT_EQUAL(s.status, 200);
    for (int i = 0; i < 2; i++) {
        decide(&w, &local, &s);
        CU_ASSERT_EQUAL(s.status, 200);
    }
    decide(&w, &local, &s);
    CU_ASSERT_EQUAL(s.status, 429);
    CU_ASSERT_STRING_EQUAL(s.reason, "rate_limited");
    CU_ASSERT_EQUAL(f.cancelled, 0);
    world_free(&w);
}

/* Explain: one dry run fills the sink — route, authentication, scopes,
 * the limit with its bucket key and tokens — and leaves the bucket as it
 * was: the real request after it gets what it would have without it. */
static void test_explain_sink(void)
{
    dec_explain_t ex = {0};
    req_t q = {.target = "/auth/tight", H(KEY(BOB))};
    req_t dry = {.target = "/auth/tight", .dry_run = true, .explain = &ex, H(KEY(BOB))};
    world_t w;
    seen_t s;

    world_new(&w, base_yaml);
    decide(&w, &dry, &s);
    CU_ASSERT_EQUAL(s.status, 200);
    CU_ASSERT(ex.routed);
    CU_ASSERT_PTR_EQUAL(ex.route, &w.cfg->default_route);
    CU_ASSERT_STRING_EQUAL(ex.authn, "ok");
    CU_ASSERT_STRING_EQUAL(ex.authn_method, "api_key");
    CU_ASSERT(ex.authz_checked && ex.authz_ok);
    CU_ASSERT(ex.limits_checked);
    CU_ASSERT_EQUAL_FATAL(ex.nlimits, 1);
    CU_ASSERT_STRING_EQUAL(ex.limits[0].limit->name, "tight");
    CU_ASSERT_STRING_EQUAL(ex.limits[0].key, "c=k:demo-bob");
    CU_ASSERT(ex.limits[0].v.allowed);
    CU_ASSERT_EQUAL(ex.limits[0].v.remaining, 1);
    CU_ASSERT_EQUAL(ex.limits[0].rate.n, 2);
    dec_explain_clear(&ex);
    CU_ASSERT_PTR_NULL(ex.limits);
    decide(&w, &q, &s); /* the bucket is untouched: 2 -> 1 */
    CU_ASSERT_EQUAL(s.status, 200);
    CU_ASSERT_STRING_EQUAL(s.limits.remaining, "1");
    decide(&w, &q, &s);
    decide(&w, &dry, &s); /* empty now: explained as the 429 it would be */
    CU_ASSERT_EQUAL(s.status, 429);
    CU_ASSERT_FALSE(ex.limits[0].v.allowed);
    CU_ASSERT(ex.limits[0].v.retry_after_ms > 0);
    dec_explain_clear(&ex);
    world_free(&w);
}

/* Explained failures are not counted (the lockout does not advance), and
 * a scope denial says the scopes were checked and not held. */
static void test_explain_failures(void)
{
    dec_explain_t ex = {0};
    req_t bad = {.target = "/auth/x", .dry_run = true, .explain = &ex, H(KEY("nope"))};
    req_t good = {.target = "/auth/x", H(KEY(BOB))};
    req_t scope = {.target = "/auth/admin/x", .dry_run = true, .explain = &ex, H(KEY(BOB))};
    world_t w;
    seen_t s;

    world_new(&w, base_yaml); /* lockout after 2 failures */
    for (int i = 0; i < 4; i++) {
        memset(&ex, 0, sizeof ex);
        decide(&w, &bad, &s);
        CU_ASSERT_EQUAL(s.status, 401);
        CU_ASSERT_STRING_EQUAL(ex.authn, "invalid_api_key");
        CU_ASSERT_FALSE(ex.authz_checked);
        CU_ASSERT_FALSE(ex.limits_checked);
    }
    CU_ASSERT_EQUAL(w.fake.fails, 0);
    decide(&w, &good, &s);
    CU_ASSERT_EQUAL(s.status, 200); /* not locked out */
    memset(&ex, 0, sizeof ex);
    decide(&w, &scope, &s);
    CU_ASSERT_EQUAL(s.status, 403);
    CU_ASSERT_STRING_EQUAL(ex.route->name, "admin");
    CU_ASSERT(ex.authz_checked);
    CU_ASSERT_FALSE(ex.authz_ok);
    CU_ASSERT_FALSE(ex.limits_checked);
    world_free(&w);
}

/* as_client decides as that client, only on a dry run with a sink: a real
 * request, or a dry run without one, is anonymous (the live listener sets
 * neither, but the core does not rely on it). */
static void test_explain_as_client(void)
{
    dec_explain_t ex = {0};
    req_t q = {.target = "/auth/demo/x", .dry_run = true, .explain = &ex,
               .as_client = "demo-bob", H("Accept", "*/*")};
    world_t w;
    seen_t s;

    world_new(&w, base_yaml);
    decide(&w, &q, &s);
    CU_ASSERT_EQUAL(s.status, 200);
    CU_ASSERT_STRING_EQUAL(s.client_id, "demo-bob");
    CU_ASSERT_STRING_EQUAL(ex.authn, "ok");
    CU_ASSERT_STRING_EQUAL(ex.authn_method, "api_key");
    q.as_client = "nobody";
    decide(&w, &q, &s);
    CU_ASSERT_EQUAL(s.status, 401);
    CU_ASSERT_STRING_EQUAL(s.reason, "invalid_api_key");
    q.as_client = "demo-bob";
    q.dry_run = false;
    decide(&w, &q, &s);
    CU_ASSERT_EQUAL(s.status, 401);
    CU_ASSERT_STRING_EQUAL(s.reason, "missing_credentials");
    q.dry_run = true;
    q.explain = NULL;
    decide(&w, &q, &s);
    CU_ASSERT_EQUAL(s.status, 401);
    CU_ASSERT_STRING_EQUAL(s.reason, "missing_credentials");
    CU_ASSERT_EQUAL(w.fake.fails, 0);
    dec_explain_clear(&ex);
    world_free(&w);
}

/* replay_as decides as a recorded identity on a replay context only: the
 * listeners' and explain's contexts (dec_ctx_new) ignore it, dry run and
 * explain sink or not, so no request can choose who it is decided as. */
static void test_replay_as_only_on_replay_ctx(void)
{
    static const dec_replay_id_t bob = {.method = "api_key", .client_id = "demo-bob",
                                        .scopes = "demo:read"};
    dec_explain_t ex = {0};
    req_t q = {.target = "/auth/demo/x", .replay_as = &bob, H("Accept", "*/*")};
    dec_ctx_cfg_t c = {0};
    dec_ctx_t *live;
    world_t w;
    seen_t s;

    world_new(&w, base_yaml);
    decide(&w, &q, &s);
    CU_ASSERT_EQUAL(s.status, 401);
    CU_ASSERT_STRING_EQUAL(s.reason, "missing_credentials");
    q.dry_run = true;
    q.explain = &ex;
    decide(&w, &q, &s);
    CU_ASSERT_EQUAL(s.status, 401);
    CU_ASSERT_STRING_EQUAL(s.client_id, "");
    dec_explain_clear(&ex);
    /* the same world, a replay context */
    live = w.ctx;
    c.limiter = w.limiter;
    c.stores = &fake_ops;
    c.store = &w.fake;
    c.ticket_prefix = "tg:";
    c.hooks.arg = w.base;
    c.hooks.timer_add = t_add;
    c.hooks.timer_cancel = t_cancel;
    w.ctx = dec_ctx_new_replay(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w.ctx);
    q.dry_run = false;
    q.explain = NULL;
    decide(&w, &q, &s);
    CU_ASSERT_EQUAL(s.status, 200);
    CU_ASSERT_STRING_EQUAL(s.client_id, "demo-bob");
    /* a refused credential stays refused, with its recorded reason */
    {
        static const dec_replay_id_t refused = {.method = "api_key",
                                                .refused = "invalid_api_key"};

        q.replay_as = &refused;
        decide(&w, &q, &s);
        CU_ASSERT_EQUAL(s.status, 401);
        CU_ASSERT_STRING_EQUAL(s.reason, "invalid_api_key");
    }
    dec_ctx_free(w.ctx);
    w.ctx = live;
    world_free(&w);
}

/* Proxy mode: the target forwarded is the normalized path and the query;
 * hide_credentials removes the key; the request id is vouched for. */
static void test_forward_verdict(void)
{
    static const req_t q = {.target = "/api/a/./b?x=1", H(KEY(ALICE), "X-Request-ID", "rid-42")};
    world_t w;
    seen_t s;

    world_new(&w, base_yaml);
    decide(&w, &q, &s);
    CU_ASSERT_EQUAL(s.kind, DEC_FORWARD);
    CU_ASSERT_STRING_EQUAL(s.target, "/api/a/b?x=1");
    CU_ASSERT_EQUAL(s.nremove, 1);
    CU_ASSERT_STRING_EQUAL(s.reqid, "rid-42");
    CU_ASSERT_PTR_NOT_NULL(seen_header(&s, "X-Request-ID"));
    CU_ASSERT_STRING_EQUAL(seen_header(&s, "X-Forwarded-Proto"), "http");
    world_free(&w);
}

/* Issue a ticket (the fake store, answered later), redeem it once. */
static void test_ticket_round_trip(void)
{
    static const req_t post = {.method = "POST", .target = "/v1/tickets", H(KEY(BOB))};
    req_t get = {.target = NULL, H("Accept", "*/*")};
    char target[128];
    world_t w;
    seen_t s;
    const char *t;

    world_new(&w, base_yaml);
    decide(&w, &post, &s);
    CU_ASSERT_EQUAL_FATAL(s.status, 200);
    CU_ASSERT_EQUAL(w.fake.issues, 1);
    t = strstr(s.body, "\"ticket\":\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    snprintf(target, sizeof target, "/auth/ws/a?ticket=%.43s", t + 10);
    get.target = target;
    decide(&w, &get, &s);
    CU_ASSERT_EQUAL(s.status, 200);
    CU_ASSERT_STRING_EQUAL(s.client_id, "demo-bob");
    CU_ASSERT_STRING_EQUAL(seen_header(&s, "X-Auth-Method"), "ticket");
    decide(&w, &get, &s); /* used up */
    CU_ASSERT_EQUAL(s.status, 401);
    CU_ASSERT_STRING_EQUAL(s.reason, "invalid_ticket");
    CU_ASSERT_EQUAL(w.fake.redeems, 2);
    world_free(&w);
}

/* A client that leaves: dec_cancel before the limiter answered; `done`
 * never runs, and the store's pending ticket operation is cancelled. */
static void test_cancel(void)
{
    static const req_t q = {.target = "/auth/tight", H(KEY(BOB))};
    static const req_t post = {.method = "POST", .target = "/v1/tickets", H(KEY(BOB))};
    dec_input_t in = {.method = "GET", .target = q.target, .peer = "192.0.2.1",
                      .headers = {(void *)&q, h_find, h_each}};
    world_t w;
    seen_t s = {0};
    dec_pending_t *p;

    world_new(&w, base_yaml);
    p = dec_start(w.ctx, w.cfg, &in, on_done, &s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    dec_cancel(p);
    for (int i = 0; i < 5; i++)
        event_base_loop(w.base, EVLOOP_NONBLOCK);
    CU_ASSERT_EQUAL(s.calls, 0);
    in.method = "POST";
    in.target = post.target;
    in.headers.ctx = (void *)&post;
    p = dec_start(w.ctx, w.cfg, &in, on_done, &s);
    while (w.fake.issues == 0 && s.calls == 0)
        event_base_loop(w.base, EVLOOP_ONCE); /* until the store was asked */
    dec_cancel(p);
    for (int i = 0; i < 5; i++)
        event_base_loop(w.base, EVLOOP_NONBLOCK);
    CU_ASSERT_EQUAL(s.calls, 0);
    world_free(&w);
}

int test_decide_add(void)
{
    static const unit_test_t tests[] = {
        {"decide.h names no transport type", test_no_transport_names},
        {"a verdict has room for the adapter's headers", test_verdict_room},
        {"decide/ includes no transport or server header", test_core_includes},
        {"the table: (config, request) -> verdict", test_table},
        {"rate limit report on allow and 429", test_rate_limit_report},
        {"a dry run takes no token", test_dry_run_limits},
        {"the limiter on Redis (fake rc_ops_t): deny, dry, down", test_redis_backend},
        {"explain: the sink of one dry run", test_explain_sink},
        {"explain: failures not counted, scopes", test_explain_failures},
        {"explain: as_client only on a dry run with a sink", test_explain_as_client},
        {"replay_as only on a replay context", test_replay_as_only_on_replay_ctx},
        {"proxy mode: the forward verdict", test_forward_verdict},
        {"ticket issued, redeemed once (fake store)", test_ticket_round_trip},
        {"dec_cancel: done never runs", test_cancel},
        {"bans: ip and cidr before the credential, client after", test_bans},
        {NULL, NULL},
    };

    return unit_add_suite("decide", tests);
}
