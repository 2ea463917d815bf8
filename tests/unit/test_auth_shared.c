/* test_auth_shared.c — the auth state shared through Redis (auth/shared.c):
 * key and channel names, the channel messages, and the calls made and the
 * replies read for revocations, lockouts and the resync, against a fake
 * rc_ops_t (no socket). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/auth_shared.h"
#include "tollgate/util_clock.h"
#include "unit.h"

/* ---- a fake Redis client ---------------------------------------------- */

#define FAKE_MAX 8
#define FAKE_ARGS 12

typedef struct fake {
    int ncalls;
    bool eval[FAKE_MAX];
    size_t script[FAKE_MAX];
    char argv[FAKE_MAX][FAKE_ARGS][300]; /* EVALSHA: keys then args */
    int argc[FAKE_MAX];
    rc_reply_fn fn[FAKE_MAX];
    void *priv[FAKE_MAX];
    int refuse; /* every call returns NULL */
} fake_t;

static rc_pending_t *record(fake_t *f, bool eval, size_t script, int n, const char **v,
                            const size_t *lens, rc_reply_fn fn, void *privdata)
{
    int i = f->ncalls;

    if (f->refuse || i >= FAKE_MAX)
        return NULL;
    f->eval[i] = eval;
    f->script[i] = script;
    f->argc[i] = n;
    for (int k = 0; k < n && k < FAKE_ARGS; k++)
        snprintf(f->argv[i][k], sizeof(f->argv[i][k]), "%.*s",
                 (int)(lens ? lens[k] : strlen(v[k])), v[k]);
    f->fn[i] = fn;
    f->priv[i] = privdata;
    f->ncalls++;
    return (rc_pending_t *)(intptr_t)(i + 1);
}

static rc_pending_t *fake_evalsha(void *cl, size_t script, int nkeys, const char **keys,
                                  const size_t *keylens, int nargs, const char **args,
                                  const size_t *arglens, rc_reply_fn fn, void *privdata)
{
    const char *v[FAKE_ARGS];
    size_t l[FAKE_ARGS];
    int n = 0;

    for (int k = 0; k < nkeys && n < FAKE_ARGS; k++, n++) {
        v[n] = keys[k];
        l[n] = keylens ? keylens[k] : strlen(keys[k]);
    }
    for (int a = 0; a < nargs && n < FAKE_ARGS; a++, n++) {
        v[n] = args[a];
        l[n] = arglens ? arglens[a] : strlen(args[a]);
    }
    return record(cl, true, script, n, v, l, fn, privdata);
}

static rc_pending_t *fake_command(void *cl, const char *slot_key, size_t slot_key_len,
                                  int argc, const char **argv, const size_t *argvlen,
                                  rc_reply_fn fn, void *privdata)
{
    (void)slot_key;
    (void)slot_key_len;
    return record(cl, false, 0, argc, argv, argvlen, fn, privdata);
}

static const rc_ops_t fake_ops = {.evalsha = fake_evalsha, .command = fake_command};

static void reply_int(fake_t *f, int i, long long v)
{
    redisReply r = {.type = REDIS_REPLY_INTEGER, .integer = v};

    f->fn[i](NULL, &r, NULL, f->priv[i]);
}

static void reply_status(fake_t *f, int i, int type)
{
    redisReply r = {.type = type, .str = (char *)(uintptr_t) "OK", .len = 2};

    f->fn[i](NULL, &r, NULL, f->priv[i]);
}

static void reply_ints(fake_t *f, int i, long long a, long long b)
{
    redisReply x = {.type = REDIS_REPLY_INTEGER, .integer = a};
    redisReply y = {.type = REDIS_REPLY_INTEGER, .integer = b};
    redisReply *el[2] = {&x, &y};
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = el};

    f->fn[i](NULL, &arr, NULL, f->priv[i]);
}

/* An array of bulk strings (n even: name, value, ...). */
static void reply_strings(fake_t *f, int i, const char *const *s, size_t n)
{
    redisReply el[8], *pel[8];
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = n, .element = pel};

    for (size_t k = 0; k < n; k++) {
        el[k] = (redisReply){.type = REDIS_REPLY_STRING,
                             .str = (char *)(uintptr_t)s[k],
                             .len = strlen(s[k])};
        pel[k] = &el[k];
    }
    f->fn[i](NULL, &arr, NULL, f->priv[i]);
}

/* ---- fixture -------------------------------------------------------------- */

typedef struct fx {
    auth_shared_t sh;
    auth_revoke_t *rev;
    auth_lockout_t *lock;
} fx_t;

static size_t last_count;
static int count_calls;

static void counted(size_t n)
{
    last_count = n;
    count_calls++;
}

static void fx_init(fx_t *x)
{
    x->rev = auth_revoke_new(100);
    x->lock = auth_lockout_new(100);
    CU_ASSERT_FATAL(x->rev != NULL && x->lock != NULL);
    CU_ASSERT_EQUAL_FATAL(auth_shared_init(&x->sh, "tg:", x->rev, x->lock, 3, 4), 0);
    x->sh.revocations_changed = counted;
    count_calls = 0;
}

static void fx_free(fx_t *x)
{
    auth_revoke_free(x->rev);
    auth_lockout_free(x->lock);
}

static const auth_lockout_policy_t policy = {
    .max_failures = 2, .window_ms = 60000, .base_backoff_ms = 1000, .max_backoff_ms = 8000};

typedef struct done {
    int calls;
    const char *err;
    int64_t when;
} done_t;

static void lock_done(void *privdata)
{
    ((done_t *)privdata)->calls++;
}

static void revoke_done(const char *err, int64_t when, void *privdata)
{
    done_t *d = privdata;

    d->calls++;
    d->err = err;
    d->when = when;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_names(void)
{
    fx_t x;
    char longp[300];

    fx_init(&x);
    CU_ASSERT_STRING_EQUAL(x.sh.revlog_j, "tg:{revlog}:j");
    CU_ASSERT_STRING_EQUAL(x.sh.revlog_s, "tg:{revlog}:s");
    CU_ASSERT_STRING_EQUAL(x.sh.chan_rev, "tg:revocations");
    CU_ASSERT_STRING_EQUAL(x.sh.chan_lock, "tg:lockouts");
    memset(longp, 'p', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    CU_ASSERT_EQUAL(auth_shared_init(&x.sh, longp, x.rev, x.lock, 0, 0), -1);
    fx_free(&x);
}

static void test_messages(void)
{
    fx_t x;
    int64_t now = util_wall_ms(), exp = now / 1000 + 3600, e = 0;
    char msg[64];
    static const char *const bad[] = {"x 5 a", "j abc def", "j 5",  "j -1 a",
                                      "j 5 ",  "",          "j5 a", "s 0 bob"};

    fx_init(&x);
    snprintf(msg, sizeof(msg), "j %lld tok-1", (long long)exp);
    CU_ASSERT_EQUAL(auth_shared_apply(&x.sh, msg, strlen(msg), now), 0);
    CU_ASSERT_TRUE(auth_revoke_get(x.rev, "tok-1", now / 1000, &e));
    CU_ASSERT_EQUAL(e, exp);
    CU_ASSERT_EQUAL(count_calls, 1);
    CU_ASSERT_EQUAL(last_count, 1);
    snprintf(msg, sizeof(msg), "s %lld bob", (long long)(now / 1000));
    CU_ASSERT_EQUAL(auth_shared_apply(&x.sh, msg, strlen(msg), now), 0);
    CU_ASSERT_TRUE(
        auth_revoke_check(x.rev, NULL, NULL, "bob", now / 1000 - 10, now / 1000));
    CU_ASSERT_FALSE(
        auth_revoke_check(x.rev, NULL, NULL, "bob", now / 1000 + 10, now / 1000));
    snprintf(msg, sizeof(msg), "l %lld 10.0.0.9", (long long)(now + 5000));
    CU_ASSERT_EQUAL(auth_shared_apply(&x.sh, msg, strlen(msg), now), 0);
    CU_ASSERT_TRUE(auth_lockout_check(x.lock, "10.0.0.9", now) > 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_EQUAL(auth_shared_apply(&x.sh, bad[i], strlen(bad[i]), now), -1);
    CU_ASSERT_EQUAL(auth_revoke_count(x.rev), 2);
    fx_free(&x);
}

static void test_lockout_through_redis(void)
{
    fx_t x;
    fake_t f = {0};
    done_t d = {0};
    int64_t now = util_wall_ms();
    auth_lock_op_t *op;

    fx_init(&x);
    op = auth_shared_lockout_fail(&x.sh, &fake_ops, &f, "10.1.2.3", &policy, now, lock_done,
                                  &d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CU_ASSERT_EQUAL_FATAL(f.ncalls, 1);
    CU_ASSERT_TRUE(f.eval[0]);
    CU_ASSERT_EQUAL(f.script[0], 4);
    CU_ASSERT_EQUAL(f.argc[0], 6);
    CU_ASSERT_STRING_EQUAL(f.argv[0][0], "tg:{lock:10.1.2.3}");
    CU_ASSERT_STRING_EQUAL(f.argv[0][1], "2");
    CU_ASSERT_STRING_EQUAL(f.argv[0][2], "60000");
    CU_ASSERT_STRING_EQUAL(f.argv[0][3], "1000");
    CU_ASSERT_STRING_EQUAL(f.argv[0][4], "8000");
    CU_ASSERT_STRING_EQUAL(f.argv[0][5], "tg:lockouts");
    CU_ASSERT_EQUAL(d.calls, 0); /* the 401 waits for the count */
    CU_ASSERT_EQUAL(auth_lockout_check(x.lock, "10.1.2.3", now), 0);
    reply_ints(&f, 0, 4000, 2); /* locked for 4 s */
    CU_ASSERT_EQUAL(d.calls, 1);
    CU_ASSERT_TRUE(auth_lockout_check(x.lock, "10.1.2.3", util_wall_ms()) > 3000);

    /* Counted but not (yet) locked: nothing in the store. */
    op = auth_shared_lockout_fail(&x.sh, &fake_ops, &f, "10.1.2.4", &policy, now, lock_done,
                                  &d);
    CU_ASSERT_PTR_NOT_NULL(op);
    reply_ints(&f, 1, 0, 1);
    CU_ASSERT_EQUAL(d.calls, 2);
    CU_ASSERT_EQUAL(auth_lockout_check(x.lock, "10.1.2.4", util_wall_ms()), 0);

    /* Detached: the count completes, `done` is not called. */
    op = auth_shared_lockout_fail(&x.sh, &fake_ops, &f, "10.1.2.5", &policy, now, lock_done,
                                  &d);
    auth_shared_lockout_detach(op);
    reply_ints(&f, 2, 4000, 2);
    CU_ASSERT_EQUAL(d.calls, 2);
    CU_ASSERT_TRUE(auth_lockout_check(x.lock, "10.1.2.5", util_wall_ms()) > 0);
    fx_free(&x);
}

/* Redis could not count it: counted in memory, as without Redis. */
static void test_lockout_fallbacks(void)
{
    fx_t x;
    fake_t f = {0};
    done_t d = {0};
    int64_t now = util_wall_ms();

    fx_init(&x);
    /* an error reply, twice: the memory store reaches max_failures */
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_PTR_NOT_NULL(auth_shared_lockout_fail(&x.sh, &fake_ops, &f, "10.2.0.1",
                                                        &policy, now, lock_done, &d));
        reply_status(&f, i, REDIS_REPLY_ERROR);
    }
    CU_ASSERT_EQUAL(d.calls, 2);
    CU_ASSERT_TRUE(auth_lockout_check(x.lock, "10.2.0.1", util_wall_ms()) > 0);
    /* the call cannot be sent, and no Redis at all: counted at once */
    f.refuse = 1;
    CU_ASSERT_PTR_NULL(auth_shared_lockout_fail(&x.sh, &fake_ops, &f, "10.2.0.2", &policy,
                                                now, lock_done, &d));
    CU_ASSERT_PTR_NULL(auth_shared_lockout_fail(&x.sh, NULL, NULL, "10.2.0.2", &policy, now,
                                                lock_done, &d));
    CU_ASSERT_EQUAL(d.calls, 2);
    CU_ASSERT_TRUE(auth_lockout_check(x.lock, "10.2.0.2", now) > 0);
    fx_free(&x);
}

static void test_revoke_through_redis(void)
{
    fx_t x;
    fake_t f = {0};
    done_t d = {0};
    int64_t now = util_wall_ms(), exp = now / 1000 + 600, e = 0;
    char w[24];

    fx_init(&x);
    snprintf(w, sizeof(w), "%lld", (long long)exp);
    CU_ASSERT_EQUAL(auth_shared_revoke(&x.sh, &fake_ops, &f, AUTH_SHARED_JTI, NULL, "jti-7",
                                       exp, now, revoke_done, &d),
                    0);
    CU_ASSERT_EQUAL_FATAL(f.ncalls, 1);
    CU_ASSERT_EQUAL(f.script[0], 3);
    CU_ASSERT_EQUAL(f.argc[0], 9); /* four keys, five arguments */
    CU_ASSERT_STRING_EQUAL(f.argv[0][0], "tg:{revlog}:j");
    CU_ASSERT_STRING_EQUAL(f.argv[0][1], "tg:{revlog}:s");
    CU_ASSERT_STRING_EQUAL(f.argv[0][2], "tg:{revlog}:si");
    CU_ASSERT_STRING_EQUAL(f.argv[0][3], "tg:{revlog}:sx");
    CU_ASSERT_STRING_EQUAL(f.argv[0][4], "j");
    CU_ASSERT_STRING_EQUAL(f.argv[0][5], "jti-7");
    CU_ASSERT_STRING_EQUAL(f.argv[0][6], w);
    CU_ASSERT_STRING_EQUAL(f.argv[0][7], "tg:revocations");
    CU_ASSERT_STRING_EQUAL(f.argv[0][8], "0"); /* lifetime: never */
    reply_int(&f, 0, exp);
    /* then the per-token key, until exp */
    CU_ASSERT_EQUAL_FATAL(f.ncalls, 2);
    CU_ASSERT_FALSE(f.eval[1]);
    CU_ASSERT_EQUAL(f.argc[1], 5);
    CU_ASSERT_STRING_EQUAL(f.argv[1][0], "SET");
    CU_ASSERT_STRING_EQUAL(f.argv[1][1], "tg:{rev:jti-7}");
    CU_ASSERT_STRING_EQUAL(f.argv[1][3], "EXAT");
    CU_ASSERT_EQUAL(d.calls, 0);
    CU_ASSERT_FALSE(auth_revoke_get(x.rev, "jti-7", now / 1000, &e));
    reply_status(&f, 1, REDIS_REPLY_STATUS);
    CU_ASSERT_EQUAL(d.calls, 1);
    CU_ASSERT_PTR_NULL(d.err);
    CU_ASSERT_TRUE(auth_revoke_get(x.rev, "jti-7", now / 1000, &e));

    /* A subject: the cut-off in force comes back from the script. */
    CU_ASSERT_EQUAL(auth_shared_revoke(&x.sh, &fake_ops, &f, AUTH_SHARED_SUBJECT, NULL,
                                       "carol", now / 1000, now, revoke_done, &d),
                    0);
    CU_ASSERT_STRING_EQUAL(f.argv[2][4], "s");
    reply_int(&f, 2, now / 1000 + 5);
    CU_ASSERT_EQUAL(f.argc[3], 3);
    CU_ASSERT_STRING_EQUAL(f.argv[3][1], "tg:{revsub:carol}");
    reply_status(&f, 3, REDIS_REPLY_STATUS);
    CU_ASSERT_EQUAL(d.calls, 2);
    CU_ASSERT_EQUAL(d.when, now / 1000 + 5);

    /* The script fails: an error, nothing stored here. */
    CU_ASSERT_EQUAL(auth_shared_revoke(&x.sh, &fake_ops, &f, AUTH_SHARED_JTI, NULL, "jti-8",
                                       exp, now, revoke_done, &d),
                    0);
    reply_status(&f, 4, REDIS_REPLY_ERROR);
    CU_ASSERT_EQUAL(d.calls, 3);
    CU_ASSERT_PTR_NOT_NULL(d.err);
    CU_ASSERT_FALSE(auth_revoke_get(x.rev, "jti-8", now / 1000, &e));

    /* Not sent: -1 and no callback. */
    f.refuse = 1;
    CU_ASSERT_EQUAL(auth_shared_revoke(&x.sh, &fake_ops, &f, AUTH_SHARED_JTI, NULL, "jti-9",
                                       exp, now, revoke_done, &d),
                    -1);
    CU_ASSERT_EQUAL(d.calls, 3);
    fx_free(&x);
}

static void test_revoke_without_redis(void)
{
    fx_t x;
    done_t d = {0};
    int64_t now = util_wall_ms(), e = 0;

    fx_init(&x);
    CU_ASSERT_EQUAL(auth_shared_revoke(&x.sh, NULL, NULL, AUTH_SHARED_JTI, NULL, "local",
                                       now / 1000 + 60, now, revoke_done, &d),
                    0);
    CU_ASSERT_EQUAL(d.calls, 1);
    CU_ASSERT_PTR_NULL(d.err);
    CU_ASSERT_TRUE(auth_revoke_get(x.rev, "local", now / 1000, &e));
    /* already expired: refused, said so */
    CU_ASSERT_EQUAL(auth_shared_revoke(&x.sh, NULL, NULL, AUTH_SHARED_JTI, NULL, "old",
                                       now / 1000 - 60, now, revoke_done, &d),
                    0);
    CU_ASSERT_EQUAL(d.calls, 2);
    CU_ASSERT_PTR_NOT_NULL(d.err);
    fx_free(&x);
}

static void test_resync(void)
{
    fx_t x;
    fake_t f = {0};
    int64_t now = util_wall_ms(), e = 0;
    char exp[24], before[24];

    fx_init(&x);
    snprintf(exp, sizeof(exp), "%lld", (long long)(now / 1000 + 100));
    snprintf(before, sizeof(before), "%lld", (long long)(now / 1000));
    CU_ASSERT_EQUAL(auth_shared_resync(&x.sh, &fake_ops, &f, now), 0);
    CU_ASSERT_EQUAL_FATAL(f.ncalls, 3);
    CU_ASSERT_STRING_EQUAL(f.argv[2][0], "HGETALL");
    CU_ASSERT_STRING_EQUAL(f.argv[2][1], "tg:{revlog}:si");
    CU_ASSERT_STRING_EQUAL(f.argv[0][0], "ZRANGEBYSCORE");
    CU_ASSERT_STRING_EQUAL(f.argv[0][1], "tg:{revlog}:j");
    CU_ASSERT_STRING_EQUAL(f.argv[0][4], "WITHSCORES");
    CU_ASSERT_STRING_EQUAL(f.argv[1][0], "HGETALL");
    CU_ASSERT_STRING_EQUAL(f.argv[1][1], "tg:{revlog}:s");
    const char *jtis[] = {"a", exp, "b", exp};
    const char *subs[] = {"dave", before};
    CU_ASSERT_FALSE(auth_shared_synced(&x.sh));
    reply_strings(&f, 0, jtis, 4);
    CU_ASSERT_FALSE(auth_shared_synced(&x.sh)); /* half of it */
    reply_strings(&f, 1, subs, 2);
    CU_ASSERT_FALSE(auth_shared_synced(&x.sh)); /* two thirds */
    reply_strings(&f, 2, NULL, 0);
    CU_ASSERT_TRUE(auth_shared_synced(&x.sh));
    CU_ASSERT_TRUE(auth_revoke_get(x.rev, "a", now / 1000, &e));
    CU_ASSERT_TRUE(auth_revoke_get(x.rev, "b", now / 1000, &e));
    CU_ASSERT_TRUE(
        auth_revoke_check(x.rev, NULL, NULL, "dave", now / 1000 - 1, now / 1000));
    CU_ASSERT_EQUAL(last_count, auth_revoke_count(x.rev));
    f.refuse = 1;
    CU_ASSERT_EQUAL(auth_shared_resync(&x.sh, &fake_ops, &f, now), -1);
    fx_free(&x);

    /* the jti half lost (disconnect): not synced, whatever the rest says */
    fx_init(&x);
    f = (fake_t){0};
    CU_ASSERT_EQUAL(auth_shared_resync(&x.sh, &fake_ops, &f, now), 0);
    f.fn[0](NULL, NULL, "disconnected", f.priv[0]);
    reply_strings(&f, 1, subs, 2);
    reply_strings(&f, 2, NULL, 0);
    CU_ASSERT_FALSE(auth_shared_synced(&x.sh));
    fx_free(&x);
}

/* ---- bans and lifting lockouts ------------------------------------------- */

typedef struct ban_seen {
    int calls;
    auth_shared_result_t res;
    auth_ban_entry_t e;
    bool had_entry;
} ban_seen_t;

static void ban_cb(auth_shared_result_t res, const auth_ban_entry_t *e, void *privdata)
{
    ban_seen_t *b = privdata;

    b->calls++;
    b->res = res;
    b->had_entry = e != NULL;
    if (e != NULL)
        b->e = *e;
}

static auth_ban_entry_t ban_req(const char *target)
{
    auth_ban_entry_t e = {0};

    snprintf(e.target, sizeof e.target, "%s", target);
    snprintf(e.actor, sizeof e.actor, "ops");
    snprintf(e.reason, sizeof e.reason, "why not");
    return e;
}

static void test_bans_through_redis(void)
{
    fx_t x;
    fake_t f = {0};
    auth_ban_t *b = auth_ban_new(10);
    auth_ban_entry_t e = ban_req("ip:192.0.2.1");
    ban_seen_t seen = {0};
    int64_t now = util_wall_ms();
    redisReply err = {.type = REDIS_REPLY_ERROR,
                      .str = (char *)(uintptr_t) "ERR tollgate ban: full",
                      .len = 22};

    fx_init(&x);
    CU_ASSERT_EQUAL(auth_shared_init_bans(&x.sh, b, 5, 10, 100), 0);
    CU_ASSERT_STRING_EQUAL(x.sh.bans_key, "tg:{bans}");
    CU_ASSERT_STRING_EQUAL(x.sh.chan_ban, "tg:bans");
    CU_ASSERT_STRING_EQUAL(x.sh.lock_index, "tg:{lockouts}");
    CU_ASSERT_EQUAL(auth_shared_ban(&x.sh, &fake_ops, &f, &e, 60000, now, ban_cb, &seen),
                    0);
    CU_ASSERT_EQUAL(f.ncalls, 1);
    CU_ASSERT_TRUE(f.eval[0]);
    CU_ASSERT_EQUAL(f.script[0], 5);
    CU_ASSERT_STRING_EQUAL(x.sh.bans_until, "tg:{bans}:until");
    CU_ASSERT_STRING_EQUAL(f.argv[0][0], "tg:{bans}");
    CU_ASSERT_STRING_EQUAL(f.argv[0][1], "tg:{bans}:until"); /* same slot */
    CU_ASSERT_STRING_EQUAL(f.argv[0][2], "b");
    CU_ASSERT_STRING_EQUAL(f.argv[0][3], "ip:192.0.2.1");
    CU_ASSERT_STRING_EQUAL(f.argv[0][4], "60000");
    CU_ASSERT_STRING_EQUAL(f.argv[0][6], "why not");
    CU_ASSERT_STRING_EQUAL(f.argv[0][8], "tg:bans");
    CU_ASSERT_EQUAL(seen.calls, 0); /* not before Redis answered */
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "192.0.2.1", now, NULL));
    reply_ints(&f, 0, now + 60000, now);
    CU_ASSERT_EQUAL(seen.calls, 1);
    CU_ASSERT_EQUAL(seen.res, AUTH_SHARED_DONE);
    CU_ASSERT_TRUE(seen.had_entry);
    CU_ASSERT_EQUAL(seen.e.until_ms, now + 60000);
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "192.0.2.1", now, NULL));
    /* full */
    e = ban_req("ip:192.0.2.2");
    CU_ASSERT_EQUAL(auth_shared_ban(&x.sh, &fake_ops, &f, &e, 1000, now, ban_cb, &seen), 0);
    f.fn[1](NULL, &err, NULL, f.priv[1]);
    CU_ASSERT_EQUAL(seen.res, AUTH_SHARED_FULL);
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "192.0.2.2", now, NULL));
    /* no reply */
    CU_ASSERT_EQUAL(auth_shared_ban(&x.sh, &fake_ops, &f, &e, 1000, now, ban_cb, &seen), 0);
    f.fn[2](NULL, NULL, "timeout", f.priv[2]);
    CU_ASSERT_EQUAL(seen.res, AUTH_SHARED_UNAVAILABLE);
    /* unban: 1 lifted, 0 none */
    CU_ASSERT_EQUAL(
        auth_shared_unban(&x.sh, &fake_ops, &f, "ip:192.0.2.1", now, ban_cb, &seen), 0);
    CU_ASSERT_STRING_EQUAL(f.argv[3][1], "tg:{bans}:until");
    CU_ASSERT_STRING_EQUAL(f.argv[3][2], "u");
    reply_int(&f, 3, 1);
    CU_ASSERT_EQUAL(seen.res, AUTH_SHARED_DONE);
    CU_ASSERT_FALSE(seen.had_entry);
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "192.0.2.1", now, NULL));
    CU_ASSERT_EQUAL(
        auth_shared_unban(&x.sh, &fake_ops, &f, "ip:192.0.2.1", now, ban_cb, &seen), 0);
    reply_int(&f, 4, 0);
    CU_ASSERT_EQUAL(seen.res, AUTH_SHARED_NONE);
    /* refused at once: `done` not called */
    f.refuse = 1;
    seen.calls = 0;
    CU_ASSERT_EQUAL(auth_shared_ban(&x.sh, &fake_ops, &f, &e, 1000, now, ban_cb, &seen),
                    -1);
    CU_ASSERT_EQUAL(seen.calls, 0);
    /* without Redis: the set is the state */
    CU_ASSERT_EQUAL(auth_shared_ban(&x.sh, NULL, NULL, &e, 1000, now, ban_cb, &seen), 0);
    CU_ASSERT_EQUAL(seen.res, AUTH_SHARED_DONE);
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "192.0.2.2", now, NULL));
    CU_ASSERT_EQUAL(
        auth_shared_unban(&x.sh, NULL, NULL, "ip:192.0.2.2", now, ban_cb, &seen), 0);
    CU_ASSERT_EQUAL(seen.res, AUTH_SHARED_DONE);
    CU_ASSERT_EQUAL(
        auth_shared_unban(&x.sh, NULL, NULL, "ip:192.0.2.2", now, ban_cb, &seen), 0);
    CU_ASSERT_EQUAL(seen.res, AUTH_SHARED_NONE);
    fx_free(&x);
    auth_ban_free(b);
}

static void test_ban_messages_and_resync(void)
{
    fx_t x;
    fake_t f = {0};
    auth_ban_t *b = auth_ban_new(10);
    int64_t now = util_wall_ms();
    char msg[200], rec[64];
    static const char *const bad[] = {"b",
                                      "b ",
                                      "x ip:1.2.3.4",
                                      "b ip:1.2.3.4",
                                      "b ip:1.2.3.4 nope 1 a r",
                                      "u ",
                                      "u ip:1.2.3.4 extra",
                                      "b cidr:1.2.3.4/24 99999999999999 1 a r"};

    fx_init(&x);
    CU_ASSERT_EQUAL(auth_shared_init_bans(&x.sh, b, 5, 10, 100), 0);
    snprintf(msg, sizeof msg, "b ip:10.0.0.1 %lld %lld ops some reason",
             (long long)now + 60000, (long long)now);
    CU_ASSERT_EQUAL(auth_shared_apply_ban(&x.sh, msg, strlen(msg), now), 0);
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "10.0.0.1", now, NULL));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(auth_shared_apply_ban(&x.sh, bad[i], strlen(bad[i]), now), -1);
    CU_ASSERT_EQUAL(auth_shared_apply_ban(&x.sh, "u ip:10.0.0.1", 13, now), 0);
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "10.0.0.1", now, NULL));
    /* the resync replaces the set and makes the replica synced */
    CU_ASSERT_EQUAL(auth_shared_apply_ban(&x.sh, msg, strlen(msg), now), 0);
    snprintf(rec, sizeof rec, "%lld 1 ops r", (long long)now + 60000);
    const char *hash[] = {"client:svc-1", rec, "not a target", rec};
    CU_ASSERT_EQUAL(auth_shared_resync_bans(&x.sh, &fake_ops, &f), 0);
    CU_ASSERT_STRING_EQUAL(f.argv[0][0], "HGETALL");
    CU_ASSERT_STRING_EQUAL(f.argv[0][1], "tg:{bans}");
    CU_ASSERT_FALSE(atomic_load(&x.sh.bans_synced));
    reply_strings(&f, 0, hash, 4);
    CU_ASSERT_TRUE(atomic_load(&x.sh.bans_synced));
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "10.0.0.1", now, NULL)); /* not in the index */
    CU_ASSERT_TRUE(auth_ban_check_client(b, "svc-1", now, NULL));
    CU_ASSERT_EQUAL(auth_ban_count(b, now), 1);
    /* synced needs the revocation index too */
    CU_ASSERT_FALSE(auth_shared_synced(&x.sh));
    fx_free(&x);
    auth_ban_free(b);
}

static void test_unlock(void)
{
    fx_t x;
    fake_t f = {0};
    auth_ban_t *b = auth_ban_new(10);
    ban_seen_t seen = {0};
    int64_t now = util_wall_ms();

    fx_init(&x);
    CU_ASSERT_EQUAL(auth_shared_init_bans(&x.sh, b, 5, 10, 100), 0);
    auth_lockout_lock(x.lock, "192.0.2.9", now + 60000, now);
    CU_ASSERT_EQUAL(auth_shared_unlock(&x.sh, &fake_ops, &f, "192.0.2.9", ban_cb, &seen),
                    0);
    CU_ASSERT_EQUAL(auth_lockout_check(x.lock, "192.0.2.9", now),
                    0); /* lifted here at once */
    CU_ASSERT_STRING_EQUAL(f.argv[0][0], "DEL");
    CU_ASSERT_STRING_EQUAL(f.argv[0][1], "tg:{lock:192.0.2.9}");
    reply_int(&f, 0, 0);
    CU_ASSERT_STRING_EQUAL(f.argv[1][0], "ZREM");
    CU_ASSERT_STRING_EQUAL(f.argv[1][1], "tg:{lockouts}");
    reply_int(&f, 1, 0);
    CU_ASSERT_STRING_EQUAL(f.argv[2][0], "PUBLISH");
    CU_ASSERT_STRING_EQUAL(f.argv[2][1], "tg:lockouts");
    CU_ASSERT_STRING_EQUAL(f.argv[2][2], "u 192.0.2.9");
    CU_ASSERT_EQUAL(seen.calls, 0);
    reply_int(&f, 2, 2);
    CU_ASSERT_EQUAL(seen.calls, 1);
    CU_ASSERT_EQUAL(seen.res, AUTH_SHARED_DONE); /* this replica held it */
    /* held nowhere: none */
    CU_ASSERT_EQUAL(auth_shared_unlock(&x.sh, NULL, NULL, "192.0.2.9", ban_cb, &seen), 0);
    CU_ASSERT_EQUAL(seen.res, AUTH_SHARED_NONE);
    /* "u <ip key>" from another replica */
    auth_lockout_lock(x.lock, "192.0.2.8", now + 60000, now);
    CU_ASSERT_EQUAL(auth_shared_apply_unlock(&x.sh, "u 192.0.2.8", 11), 0);
    CU_ASSERT_EQUAL(auth_lockout_check(x.lock, "192.0.2.8", now), 0);
    CU_ASSERT_EQUAL(auth_shared_apply_unlock(&x.sh, "u ", 2), -1);
    CU_ASSERT_EQUAL(auth_shared_apply_unlock(&x.sh, "l 1 192.0.2.8", 13), -1);
    fx_free(&x);
    auth_ban_free(b);
}

/* The new messages (scoped subject, undo), and what an old replica does with
 * them: apply ignores a kind it does not know, so a replica of this version
 * ignores any future one the same way. */
static void test_scoped_and_undo_messages(void)
{
    fx_t x;
    int64_t now = util_wall_ms(), b = now / 1000, e = 0;
    char msg[128];
    static const char *const bad[] = {"i 5 nosep",
                                      "i 5 \x1fsub",
                                      "i 5 iss\x1f",
                                      "i 5 a\x1f"
                                      "b\x1f"
                                      "c",
                                      "I 5 nosep",
                                      "Z 5 a"};

    fx_init(&x);
    snprintf(msg, sizeof msg,
             "i %lld https://idp\x1f"
             "erin",
             (long long)b);
    CU_ASSERT_EQUAL(auth_shared_apply(&x.sh, msg, strlen(msg), now), 0);
    CU_ASSERT_TRUE(auth_revoke_check(x.rev, NULL, "https://idp", "erin", b - 1, b));
    CU_ASSERT_FALSE(auth_revoke_check(x.rev, NULL, "hs", "erin", b - 1, b));
    CU_ASSERT_FALSE(auth_revoke_check(x.rev, NULL, NULL, "erin", b - 1, b));
    snprintf(msg, sizeof msg, "j %lld tok", (long long)(b + 60));
    CU_ASSERT_EQUAL(auth_shared_apply(&x.sh, msg, strlen(msg), now), 0);
    CU_ASSERT_EQUAL(auth_revoke_count(x.rev), 2);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(auth_shared_apply(&x.sh, bad[i], strlen(bad[i]), now), -1);
    CU_ASSERT_EQUAL(auth_revoke_count(x.rev), 2);
    /* the undos */
    snprintf(msg, sizeof msg,
             "I %lld https://idp\x1f"
             "erin",
             (long long)b);
    CU_ASSERT_EQUAL(auth_shared_apply(&x.sh, msg, strlen(msg), now), 0);
    CU_ASSERT_FALSE(auth_revoke_check(x.rev, NULL, "https://idp", "erin", b - 1, b));
    CU_ASSERT_EQUAL(auth_shared_apply(&x.sh, "J 1 tok", 7, now), 0);
    CU_ASSERT_FALSE(auth_revoke_get(x.rev, "tok", b, &e));
    CU_ASSERT_EQUAL(last_count, 0); /* the gauge follows the undo */
    snprintf(msg, sizeof msg, "s %lld erin", (long long)b);
    CU_ASSERT_EQUAL(auth_shared_apply(&x.sh, msg, strlen(msg), now), 0);
    CU_ASSERT_TRUE(auth_revoke_check(x.rev, NULL, "hs", "erin", b - 1, b));
    CU_ASSERT_EQUAL(auth_shared_apply(&x.sh, "S 1 erin", 8, now), 0);
    CU_ASSERT_FALSE(auth_revoke_check(x.rev, NULL, "hs", "erin", b - 1, b));
    fx_free(&x);
}

/* A scoped subject: kind "i", id "iss\x1fsub", its own per-token key. */
static void test_scoped_through_redis(void)
{
    fx_t x;
    fake_t f = {0};
    done_t d = {0};
    int64_t now = util_wall_ms(), b = now / 1000;

    fx_init(&x);
    auth_revoke_set_lifetime(x.rev, 3600);
    CU_ASSERT_EQUAL(auth_shared_revoke(&x.sh, &fake_ops, &f, AUTH_SHARED_SUBJECT,
                                       "https://idp", "erin", b, now, revoke_done, &d),
                    0);
    CU_ASSERT_EQUAL_FATAL(f.ncalls, 1);
    CU_ASSERT_STRING_EQUAL(f.argv[0][4], "i");
    CU_ASSERT_STRING_EQUAL(f.argv[0][5], "https://idp\x1f"
                                         "erin");
    CU_ASSERT_STRING_EQUAL(f.argv[0][8], "3600");
    reply_int(&f, 0, b);
    CU_ASSERT_EQUAL_FATAL(f.ncalls, 2);
    CU_ASSERT_EQUAL(f.argc[1], 5); /* SET key before EXAT before+lifetime */
    CU_ASSERT_STRING_EQUAL(f.argv[1][1], "tg:{revsub:erin}:https://idp");
    reply_status(&f, 1, REDIS_REPLY_STATUS);
    CU_ASSERT_EQUAL(d.calls, 1);
    CU_ASSERT_TRUE(auth_revoke_check(x.rev, NULL, "https://idp", "erin", b - 1, b));
    CU_ASSERT_FALSE(auth_revoke_check(x.rev, NULL, "other", "erin", b - 1, b));
    fx_free(&x);
}

/* Undo: unrevoke.lua, then DEL of the per-token key, then the store; a 0
 * from the script is "no such revocation" (no DEL, store untouched). */
static void test_undo_through_redis(void)
{
    fx_t x;
    fake_t f = {0};
    done_t d = {0};
    int64_t now = util_wall_ms(), b = now / 1000, e = 0;

    fx_init(&x);
    x.sh.script_unrevoke = 9;
    CU_ASSERT_EQUAL(auth_revoke_jti(x.rev, "t1", b + 60, b), 0);
    CU_ASSERT_EQUAL(auth_shared_unrevoke(&x.sh, &fake_ops, &f, AUTH_SHARED_JTI, NULL, "t1",
                                         now, revoke_done, &d),
                    0);
    CU_ASSERT_EQUAL_FATAL(f.ncalls, 1);
    CU_ASSERT_EQUAL(f.script[0], 9);
    CU_ASSERT_EQUAL(f.argc[0], 8);
    CU_ASSERT_STRING_EQUAL(f.argv[0][4], "j");
    CU_ASSERT_STRING_EQUAL(f.argv[0][5], "t1");
    CU_ASSERT_STRING_EQUAL(f.argv[0][6], "tg:revocations");
    reply_int(&f, 0, b + 60);
    CU_ASSERT_EQUAL_FATAL(f.ncalls, 2);
    CU_ASSERT_STRING_EQUAL(f.argv[1][0], "DEL");
    CU_ASSERT_STRING_EQUAL(f.argv[1][1], "tg:{rev:t1}");
    CU_ASSERT_TRUE(auth_revoke_get(x.rev, "t1", b, &e)); /* not before Redis said so */
    reply_int(&f, 1, 1);
    CU_ASSERT_EQUAL(d.calls, 1);
    CU_ASSERT_PTR_NULL(d.err);
    CU_ASSERT_EQUAL(d.when, b + 60);
    CU_ASSERT_FALSE(auth_revoke_get(x.rev, "t1", b, &e));
    /* none: 0, nothing else sent */
    CU_ASSERT_EQUAL(auth_shared_unrevoke(&x.sh, &fake_ops, &f, AUTH_SHARED_SUBJECT, "idp",
                                         "nobody", now, revoke_done, &d),
                    0);
    CU_ASSERT_STRING_EQUAL(f.argv[2][4], "i");
    reply_int(&f, 2, 0);
    CU_ASSERT_EQUAL(f.ncalls, 3);
    CU_ASSERT_EQUAL(d.calls, 2);
    CU_ASSERT_EQUAL(d.when, 0);
    /* the script fails: an error */
    CU_ASSERT_EQUAL(auth_shared_unrevoke(&x.sh, &fake_ops, &f, AUTH_SHARED_JTI, NULL, "t2",
                                         now, revoke_done, &d),
                    0);
    reply_status(&f, 3, REDIS_REPLY_ERROR);
    CU_ASSERT_EQUAL(d.calls, 3);
    CU_ASSERT_PTR_NOT_NULL(d.err);
    fx_free(&x);
}

static void test_undo_without_redis(void)
{
    fx_t x;
    done_t d = {0};
    int64_t now = util_wall_ms(), b = now / 1000;

    fx_init(&x);
    CU_ASSERT_EQUAL(auth_revoke_subject(x.rev, "idp", "erin", b, b), 0);
    CU_ASSERT_EQUAL(auth_shared_unrevoke(&x.sh, NULL, NULL, AUTH_SHARED_SUBJECT, NULL,
                                         "erin", now, revoke_done, &d),
                    0);
    CU_ASSERT_EQUAL(d.when, 0); /* the every-issuer one: there is none */
    CU_ASSERT_EQUAL(auth_shared_unrevoke(&x.sh, NULL, NULL, AUTH_SHARED_SUBJECT, "idp",
                                         "erin", now, revoke_done, &d),
                    0);
    CU_ASSERT_EQUAL(d.when, b);
    CU_ASSERT_EQUAL(d.calls, 2);
    CU_ASSERT_EQUAL(auth_revoke_count(x.rev), 0);
    fx_free(&x);
}

/* A resync replaces: what the index no longer holds (an undo this replica
 * missed) is forgotten; a partial resync forgets nothing. */
static void test_resync_is_authoritative(void)
{
    fx_t x;
    fake_t f = {0};
    int64_t now = util_wall_ms(), b = now / 1000, e = 0;
    char exp[24], before[24];

    fx_init(&x);
    snprintf(exp, sizeof(exp), "%lld", (long long)(b + 100));
    snprintf(before, sizeof(before), "%lld", (long long)b);
    CU_ASSERT_EQUAL(auth_revoke_jti(x.rev, "gone", b + 100, b), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(x.rev, NULL, "gone-sub", b, b), 0);
    CU_ASSERT_EQUAL(auth_revoke_subject(x.rev, "idp", "gone-isub", b, b), 0);
    /* partial: the jti reply lost */
    CU_ASSERT_EQUAL(auth_shared_resync(&x.sh, &fake_ops, &f, now), 0);
    f.fn[0](NULL, NULL, "disconnected", f.priv[0]);
    reply_strings(&f, 1, NULL, 0);
    reply_strings(&f, 2, NULL, 0);
    CU_ASSERT_EQUAL(auth_revoke_count(x.rev), 3);
    /* whole */
    const char *jtis[] = {"kept", exp};
    const char *isubs[] = {"idp\x1f"
                           "kept-isub",
                           before, "bad-no-sep", before};
    CU_ASSERT_EQUAL(auth_shared_resync(&x.sh, &fake_ops, &f, now), 0);
    reply_strings(&f, 3, jtis, 2);
    reply_strings(&f, 4, NULL, 0);
    reply_strings(&f, 5, isubs, 4);
    CU_ASSERT_TRUE(auth_shared_synced(&x.sh));
    CU_ASSERT_EQUAL(auth_revoke_count(x.rev), 2);
    CU_ASSERT_FALSE(auth_revoke_get(x.rev, "gone", b, &e));
    CU_ASSERT_TRUE(auth_revoke_get(x.rev, "kept", b, &e));
    CU_ASSERT_TRUE(auth_revoke_check(x.rev, NULL, "idp", "kept-isub", b - 1, b));
    CU_ASSERT_FALSE(auth_revoke_check(x.rev, NULL, "idp", "gone-isub", b - 1, b));
    CU_ASSERT_FALSE(auth_revoke_check(x.rev, NULL, NULL, "gone-sub", b - 1, b));
    CU_ASSERT_EQUAL(last_count, 2);
    fx_free(&x);
}

int test_auth_shared_add(void)
{
    static const unit_test_t tests[] = {
        {"key and channel names", test_names},
        {"channel messages, malformed ones ignored", test_messages},
        {"lockout counted in Redis, answered after the count", test_lockout_through_redis},
        {"lockout counted in memory when Redis cannot", test_lockout_fallbacks},
        {"revocation: script, then key, then the store", test_revoke_through_redis},
        {"revocation without Redis", test_revoke_without_redis},
        {"resync of the revocation index", test_resync},
        {"bans: script, set, full, unavailable, unban, no Redis", test_bans_through_redis},
        {"ban messages; the ban index resync is authoritative",
         test_ban_messages_and_resync},
        {"lifting a lockout: DEL, ZREM, PUBLISH", test_unlock},
        {"scoped subject and undo messages; unknown kinds ignored",
         test_scoped_and_undo_messages},
        {"scoped subject: script, then its own key", test_scoped_through_redis},
        {"undo: script, then DEL, then the store; none is 0", test_undo_through_redis},
        {"undo without Redis", test_undo_without_redis},
        {"resync replaces the set (an undo missed is forgotten)",
         test_resync_is_authoritative},
        {NULL, NULL},
    };

    return unit_add_suite("auth_shared", tests);
}
