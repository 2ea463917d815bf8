/* test_rl_fleet.c — the fleet roster's client side against a fake rc_ops_t:
 * the call it makes, when it makes one, what it keeps of each reply, the
 * leave, and what the local fallback divides by. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/rl_fleet.h"
#include "unit.h"

#define FAKE_MAX 16

typedef struct fake {
    int ncalls, cancelled;
    bool down;   /* up() says false */
    bool refuse; /* evalsha returns NULL */
    char key[FAKE_MAX][128], id[FAKE_MAX][64], ttl[FAKE_MAX][16];
    rc_reply_fn fn[FAKE_MAX];
    void *priv[FAKE_MAX];
} fake_t;

static rc_pending_t *fake_evalsha(void *cl, size_t script, int nkeys, const char **keys,
                                  const size_t *keylens, int nargs, const char **args,
                                  const size_t *arglens, rc_reply_fn fn, void *privdata)
{
    fake_t *f = cl;
    int i = f->ncalls;

    CU_ASSERT_EQUAL(script, 7);
    CU_ASSERT_EQUAL(nkeys, 1);
    CU_ASSERT_EQUAL(nargs, 2);
    if (f->refuse || i >= FAKE_MAX)
        return NULL;
    snprintf(f->key[i], sizeof f->key[i], "%.*s", (int)keylens[0], keys[0]);
    snprintf(f->id[i], sizeof f->id[i], "%.*s", (int)arglens[0], args[0]);
    snprintf(f->ttl[i], sizeof f->ttl[i], "%.*s", (int)arglens[1], args[1]);
    f->fn[i] = fn;
    f->priv[i] = privdata;
    f->ncalls++;
    return (rc_pending_t *)(intptr_t)(i + 1);
}

static void fake_cancel(void *cl, rc_pending_t *p)
{
    (void)p;
    ((fake_t *)cl)->cancelled++;
}

static bool fake_up(const void *cl)
{
    return !((const fake_t *)cl)->down;
}

static const rc_ops_t fake_ops = {
    .evalsha = fake_evalsha, .cancel = fake_cancel, .up = fake_up};

static void reply_int(fake_t *f, int i, long long v)
{
    redisReply r = {.type = REDIS_REPLY_INTEGER, .integer = v};

    f->fn[i](NULL, &r, NULL, f->priv[i]);
}

static void reply_err(fake_t *f, int i)
{
    char msg[] = "ERR tollgate fleet: bad arguments";
    redisReply r = {.type = REDIS_REPLY_ERROR, .str = msg, .len = sizeof msg - 1};

    f->fn[i](NULL, &r, NULL, f->priv[i]);
}

static void reply_none(fake_t *f, int i)
{
    f->fn[i](NULL, NULL, "timeout", f->priv[i]);
}

typedef struct seen {
    int calls, fails;
    unsigned count;
    char why[64];
} seen_t;

static void on_observe(void *ctx, bool ok, unsigned count, const char *errstr)
{
    seen_t *s = ctx;

    s->calls++;
    s->fails += !ok;
    s->count = count;
    snprintf(s->why, sizeof s->why, "%s", errstr ? errstr : "");
}

static void test_new(void)
{
    fake_t fk = {0};
    rl_fleet_t *a = rl_fleet_new(&fake_ops, &fk, "tg:", 7);
    rl_fleet_t *b = rl_fleet_new(&fake_ops, &fk, "other:", 7);
    char longp[400];

    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_STRING_EQUAL(rl_fleet_key(a), "tg:{fleet}:replicas");
    CU_ASSERT_STRING_EQUAL(rl_fleet_key(b), "other:{fleet}:replicas");
    CU_ASSERT_EQUAL(strlen(rl_fleet_id(a)), RL_FLEET_ID_HEX);
    CU_ASSERT_EQUAL(strspn(rl_fleet_id(a), "0123456789abcdef"), RL_FLEET_ID_HEX);
    CU_ASSERT_STRING_NOT_EQUAL(rl_fleet_id(a), rl_fleet_id(b));
    CU_ASSERT_EQUAL(rl_fleet_count(a), 0);
    CU_ASSERT_EQUAL(rl_fleet_seen_ms(a), 0);
    CU_ASSERT_FALSE(rl_fleet_left(a));
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    CU_ASSERT_PTR_NULL(rl_fleet_new(&fake_ops, &fk, longp, 7));
    rl_fleet_free(a);
    rl_fleet_free(b);
    rl_fleet_free(NULL);
    CU_ASSERT_EQUAL(fk.ncalls, 0);
}

static void test_divisor(void)
{
    fake_t fk = {0};
    rl_fleet_t *f = rl_fleet_new(&fake_ops, &fk, "tg:", 7);

    CU_ASSERT_EQUAL(rl_fleet_divisor(NULL, 3), 3);
    CU_ASSERT_EQUAL(rl_fleet_divisor(NULL, 0), 1);
    CU_ASSERT_EQUAL(rl_fleet_divisor(f, 12), 12); /* no count yet */
    CU_ASSERT_TRUE(rl_fleet_tick(f, 1));
    reply_int(&fk, 0, 3);
    CU_ASSERT_EQUAL(rl_fleet_divisor(f, 12), 3); /* the count wins both ways */
    CU_ASSERT_EQUAL(rl_fleet_divisor(f, 1), 3);
    CU_ASSERT_EQUAL(rl_fleet_divisor(f, 0), 3);
    rl_fleet_free(f);
}

static void test_heartbeat(void)
{
    fake_t fk = {0};
    seen_t s = {0};
    rl_fleet_t *f = rl_fleet_new(&fake_ops, &fk, "tg:", 7);
    char ttl[16];

    rl_fleet_set_observer(f, on_observe, &s);
    snprintf(ttl, sizeof ttl, "%u", (unsigned)RL_FLEET_TTL_MS);
    /* client not up: nothing sent, and tried again at the next tick */
    fk.down = true;
    CU_ASSERT_FALSE(rl_fleet_tick(f, 1000));
    fk.down = false;
    CU_ASSERT_TRUE(rl_fleet_tick(f, 1001));
    CU_ASSERT_STRING_EQUAL(fk.key[0], "tg:{fleet}:replicas");
    CU_ASSERT_STRING_EQUAL(fk.id[0], rl_fleet_id(f));
    CU_ASSERT_STRING_EQUAL(fk.ttl[0], ttl);
    /* one call in flight at most */
    CU_ASSERT_FALSE(rl_fleet_tick(f, 1001 + RL_FLEET_BEAT_MS));
    reply_int(&fk, 0, 3);
    CU_ASSERT_EQUAL(rl_fleet_count(f), 3);
    CU_ASSERT_NOT_EQUAL(rl_fleet_seen_ms(f), 0);
    CU_ASSERT_EQUAL(s.calls, 1);
    CU_ASSERT_EQUAL(s.fails, 0);
    /* not due before RL_FLEET_BEAT_MS after the last was sent */
    CU_ASSERT_FALSE(rl_fleet_tick(f, 1000 + RL_FLEET_BEAT_MS));
    CU_ASSERT_TRUE(rl_fleet_tick(f, 1001 + RL_FLEET_BEAT_MS));
    /* a failure keeps the last count (what the fallback divides by) */
    reply_none(&fk, 1);
    CU_ASSERT_EQUAL(rl_fleet_count(f), 3);
    CU_ASSERT_EQUAL(s.fails, 1);
    CU_ASSERT_EQUAL(s.count, 3);
    CU_ASSERT_STRING_EQUAL(s.why, "timeout");
    CU_ASSERT_TRUE(rl_fleet_tick(f, 1001 + 2 * RL_FLEET_BEAT_MS));
    reply_err(&fk, 2);
    CU_ASSERT_EQUAL(rl_fleet_count(f), 3);
    CU_ASSERT_STRING_EQUAL(s.why, "error reply"); /* Redis's text is not passed on */
    /* malformed: 0 (we were just added), negative, huge */
    CU_ASSERT_TRUE(rl_fleet_tick(f, 1001 + 3 * RL_FLEET_BEAT_MS));
    reply_int(&fk, 3, 0);
    CU_ASSERT_TRUE(rl_fleet_tick(f, 1001 + 4 * RL_FLEET_BEAT_MS));
    reply_int(&fk, 4, -2);
    CU_ASSERT_TRUE(rl_fleet_tick(f, 1001 + 5 * RL_FLEET_BEAT_MS));
    reply_int(&fk, 5, (long long)RL_FLEET_MAX_COUNT + 1);
    CU_ASSERT_EQUAL(rl_fleet_count(f), 3);
    CU_ASSERT_EQUAL(s.fails, 5);
    CU_ASSERT_STRING_EQUAL(s.why, "malformed reply");
    /* the count follows the fleet up at once, down only after a TTL */
    CU_ASSERT_TRUE(rl_fleet_tick(f, 1001 + 6 * RL_FLEET_BEAT_MS));
    reply_int(&fk, 6, 12);
    CU_ASSERT_EQUAL(rl_fleet_count(f), 12);
    CU_ASSERT_TRUE(rl_fleet_tick(f, 1001 + 7 * RL_FLEET_BEAT_MS));
    reply_int(&fk, 7, 2);
    CU_ASSERT_EQUAL(rl_fleet_count(f), 12);
    /* a refused send is reported and retried a beat later */
    fk.refuse = true;
    CU_ASSERT_FALSE(rl_fleet_tick(f, 1001 + 8 * RL_FLEET_BEAT_MS));
    CU_ASSERT_STRING_EQUAL(s.why, "cannot send");
    fk.refuse = false;
    CU_ASSERT_FALSE(rl_fleet_tick(f, 1001 + 8 * RL_FLEET_BEAT_MS));
    CU_ASSERT_TRUE(rl_fleet_tick(f, 1001 + 9 * RL_FLEET_BEAT_MS));
    /* freed with a call in flight: cancelled, never answered */
    rl_fleet_free(f);
    CU_ASSERT_EQUAL(fk.cancelled, 1);
}

/* A roster rebuilt after it vanished answers 1, 2, 3 to the replicas in
 * turn: none of those lowers the count before a whole TTL of lower
 * replies, a real shrink does after one, and a rise is taken at once. */
static void test_lower_only_after_ttl(void)
{
    fake_t fk = {0};
    rl_fleet_t *f = rl_fleet_new(&fake_ops, &fk, "tg:", 7);
    uint64_t t = 5000;
    int i = 0;

    CU_ASSERT_TRUE(rl_fleet_tick(f, t));
    reply_int(&fk, i++, 3);
    CU_ASSERT_EQUAL(rl_fleet_count(f), 3);
    /* the roster vanished: 1, then 2, then 3 again within the TTL */
    for (long long n = 1; n <= 3; n++) {
        t += RL_FLEET_BEAT_MS;
        CU_ASSERT_TRUE(rl_fleet_tick(f, t));
        reply_int(&fk, i++, n);
        CU_ASSERT_EQUAL(rl_fleet_count(f), 3);
    }
    /* a real shrink to 2 (and a 1 on the way): taken once lower for a TTL,
     * as the largest lower reply */
    uint64_t since = t + RL_FLEET_BEAT_MS;
    const long long shrink[] = {2, 1, 2, 2};
    for (size_t k = 0; k < sizeof shrink / sizeof shrink[0]; k++) {
        t += RL_FLEET_BEAT_MS;
        CU_ASSERT_TRUE(rl_fleet_tick(f, t));
        reply_int(&fk, i++, shrink[k]);
        CU_ASSERT_EQUAL(rl_fleet_count(f), t - since >= RL_FLEET_TTL_MS ? 2u : 3u);
    }
    CU_ASSERT_EQUAL(rl_fleet_count(f), 2);
    /* up at once */
    t += RL_FLEET_BEAT_MS;
    CU_ASSERT_TRUE(rl_fleet_tick(f, t));
    reply_int(&fk, i++, 5);
    CU_ASSERT_EQUAL(rl_fleet_count(f), 5);
    CU_ASSERT(i <= FAKE_MAX);
    rl_fleet_free(f);
}

static void test_leave(void)
{
    fake_t fk = {0};
    rl_fleet_t *f = rl_fleet_new(&fake_ops, &fk, "tg:", 7);

    /* idle: the leave goes at once, then no heartbeat any more */
    rl_fleet_leave(f);
    CU_ASSERT_EQUAL(fk.ncalls, 1);
    CU_ASSERT_STRING_EQUAL(fk.ttl[0], "0");
    CU_ASSERT_STRING_EQUAL(fk.id[0], rl_fleet_id(f));
    CU_ASSERT_FALSE(rl_fleet_left(f));
    rl_fleet_leave(f); /* twice: still one */
    CU_ASSERT_EQUAL(fk.ncalls, 1);
    reply_int(&fk, 0, 2);
    CU_ASSERT_TRUE(rl_fleet_left(f));
    CU_ASSERT_FALSE(rl_fleet_tick(f, 1u << 30));
    CU_ASSERT_EQUAL(fk.ncalls, 1);
    rl_fleet_free(f);
    CU_ASSERT_EQUAL(fk.cancelled, 0);

    /* a heartbeat in flight: the leave waits for its answer, so the
     * removal reaches Redis after the last renewal */
    memset(&fk, 0, sizeof fk);
    f = rl_fleet_new(&fake_ops, &fk, "tg:", 7);
    CU_ASSERT_TRUE(rl_fleet_tick(f, 5));
    rl_fleet_leave(f);
    CU_ASSERT_EQUAL(fk.ncalls, 1);
    reply_none(&fk, 0);
    CU_ASSERT_EQUAL(fk.ncalls, 2);
    CU_ASSERT_STRING_EQUAL(fk.ttl[1], "0");
    CU_ASSERT_FALSE(rl_fleet_left(f));
    reply_err(&fk, 1); /* a failed leave: done all the same (the entry expires) */
    CU_ASSERT_TRUE(rl_fleet_left(f));
    rl_fleet_free(f);

    /* Redis down: left at once */
    memset(&fk, 0, sizeof fk);
    f = rl_fleet_new(&fake_ops, &fk, "tg:", 7);
    fk.refuse = true;
    rl_fleet_leave(f);
    CU_ASSERT_TRUE(rl_fleet_left(f));
    rl_fleet_free(f);

    /* freed while the leave is in flight: cancelled */
    memset(&fk, 0, sizeof fk);
    f = rl_fleet_new(&fake_ops, &fk, "tg:", 7);
    rl_fleet_leave(f);
    rl_fleet_free(f);
    CU_ASSERT_EQUAL(fk.cancelled, 1);
}

int test_rl_fleet_add(void)
{
    static const unit_test_t tests[] = {
        {"new: key under the prefix, random hex ids", test_new},
        {"divisor: the count, expected_replicas only before it", test_divisor},
        {"heartbeat: when sent, what a reply keeps", test_heartbeat},
        {"a lower count only after a TTL of lower replies", test_lower_only_after_ttl},
        {"leave: after the heartbeat in flight, then silence", test_leave},
        {NULL, NULL},
    };

    return unit_add_suite("rl_fleet", tests);
}
