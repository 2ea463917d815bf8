/* rl_fleet.c — the fleet roster in Redis and the last count of live
 * replicas; see rl_fleet.h.
 *
 * At most one call is in flight: a heartbeat or the leave.  A leave asked
 * while a heartbeat is in flight is sent when that heartbeat is answered, so
 * the removal always reaches Redis after the last renewal, whatever
 * connection either took.  A failed heartbeat keeps the count from before
 * (that is the point: it is what the fallback divides by while Redis is
 * away) and the next one is tried RL_FLEET_BEAT_MS after it was sent.
 */
#include "tollgate/rl_fleet.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/util_clock.h"
#include "tollgate/util_hash.h"

#define FLEET_KEY_SUFFIX "{fleet}:replicas"
#define FLEET_MAX_PREFIX 256

struct rl_fleet {
    const rc_ops_t *ops;
    void *client;
    size_t script;
    char *key; /* "<prefix>{fleet}:replicas" */
    char id[RL_FLEET_ID_HEX + 1];
    rc_pending_t *call; /* the heartbeat or leave in flight, NULL when none */
    bool leaving;       /* rl_fleet_leave called: no more heartbeats */
    uint64_t next_ms;   /* monotonic: the next heartbeat is due then */
    rl_fleet_observe_fn fn;
    void *ctx;
    atomic_uint count;        /* the count in force, 0: none yet */
    _Atomic uint64_t seen_ms; /* util_mono_ms() of the last good reply */
    uint64_t sent_ms;         /* rl_fleet_tick's now_ms of the call in flight */
    bool lowering;            /* replies below `count` since low_since_ms */
    uint64_t low_since_ms;
    unsigned low_max; /* the largest of those replies */
    atomic_bool left;
};

/* 128 random bits as hex into id; -1 when the kernel gives none. */
static int random_id(char *id)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[RL_FLEET_ID_HEX / 2];

    if (util_random(rnd, sizeof rnd) != 0)
        return -1;
    for (size_t i = 0; i < sizeof rnd; i++) {
        id[2 * i] = hex[rnd[i] >> 4];
        id[2 * i + 1] = hex[rnd[i] & 15];
    }
    id[RL_FLEET_ID_HEX] = '\0';
    return 0;
}

rl_fleet_t *rl_fleet_new(const rc_ops_t *ops, void *client, const char *prefix,
                         size_t script)
{
    size_t plen = strlen(prefix);
    rl_fleet_t *f;

    if (plen > FLEET_MAX_PREFIX)
        return NULL;
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->key = malloc(plen + sizeof FLEET_KEY_SUFFIX);
    if (f->key == NULL || random_id(f->id) != 0) {
        free(f->key);
        free(f);
        return NULL;
    }
    memcpy(f->key, prefix, plen);
    memcpy(f->key + plen, FLEET_KEY_SUFFIX, sizeof FLEET_KEY_SUFFIX);
    f->ops = ops;
    f->client = client;
    f->script = script;
    atomic_init(&f->count, 0);
    atomic_init(&f->seen_ms, 0);
    atomic_init(&f->left, false);
    return f;
}

void rl_fleet_free(rl_fleet_t *f)
{
    if (f == NULL)
        return;
    if (f->call != NULL)
        f->ops->cancel(f->client, f->call);
    free(f->key);
    free(f);
}

void rl_fleet_set_observer(rl_fleet_t *f, rl_fleet_observe_fn fn, void *ctx)
{
    f->fn = fn;
    f->ctx = ctx;
}

const char *rl_fleet_id(const rl_fleet_t *f)
{
    return f->id;
}

const char *rl_fleet_key(const rl_fleet_t *f)
{
    return f->key;
}

/* The count in a reply, or -1 (with *why set) when it is not one. */
static long reply_count(const redisReply *r, const char *errstr, const char **why)
{
    if (r == NULL) {
        *why = errstr != NULL ? errstr : "no reply";
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        *why = "error reply"; /* Redis's text may quote arguments: not logged */
        return -1;
    }
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0 ||
        r->integer > RL_FLEET_MAX_COUNT) {
        *why = "malformed reply";
        return -1;
    }
    return (long)r->integer;
}

static void observe(rl_fleet_t *f, bool ok, unsigned count, const char *why)
{
    if (f->fn != NULL)
        f->fn(f->ctx, ok, count, why);
}

static rc_pending_t *fleet_send(rl_fleet_t *f, const char *ttl, rc_reply_fn fn)
{
    const char *keys[1] = {f->key}, *args[2] = {f->id, ttl};
    size_t keylens[1] = {strlen(f->key)}, arglens[2] = {RL_FLEET_ID_HEX, strlen(ttl)};

    return f->ops->evalsha(f->client, f->script, 1, keys, keylens, 2, args, arglens, fn, f);
}

static void on_leave(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    rl_fleet_t *f = privdata;

    (void)c;
    (void)r;
    (void)errstr;
    f->call = NULL;
    atomic_store(&f->left, true); /* removed, or left to expire: either way, done */
}

static void send_leave(rl_fleet_t *f)
{
    f->call = fleet_send(f, "0", on_leave);
    if (f->call == NULL) /* Redis down: the entry expires by itself */
        atomic_store(&f->left, true);
}

/* A higher count is taken at once (limits only tighten); a lower one only
 * once every reply for RL_FLEET_TTL_MS has been lower, and then the largest
 * of them.  An entry lives RL_FLEET_TTL_MS, so a replica that really left
 * is out of every count by then; but a roster that vanished (a Redis
 * restart without persistence, a failover to a lagging replica, FLUSHALL)
 * is rebuilt one heartbeat at a time, and replicas answered 1, 2, ... N on
 * the way must not divide by those if Redis fails in the middle: they
 * would admit rate × (1 + 1/2 + ... + 1/N) together. */
static void take_count(rl_fleet_t *f, unsigned n)
{
    if (n >= atomic_load(&f->count)) {
        atomic_store(&f->count, n);
        f->lowering = false;
        return;
    }
    if (!f->lowering) {
        f->lowering = true;
        f->low_since_ms = f->sent_ms;
        f->low_max = n;
    } else if (n > f->low_max) {
        f->low_max = n;
    }
    if (f->sent_ms - f->low_since_ms >= RL_FLEET_TTL_MS) {
        atomic_store(&f->count, f->low_max);
        f->lowering = false;
    }
}

static void on_beat(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    rl_fleet_t *f = privdata;
    const char *why = NULL;
    long n = reply_count(r, errstr, &why);

    (void)c;
    f->call = NULL;
    if (n == 0) /* our own entry was just renewed: 0 cannot be right */
        why = "malformed reply";
    if (why == NULL) {
        atomic_store(&f->seen_ms, util_mono_ms());
        take_count(f, (unsigned)n);
    }
    observe(f, why == NULL, atomic_load(&f->count), why);
    if (f->leaving)
        send_leave(f);
}

bool rl_fleet_tick(rl_fleet_t *f, uint64_t now_ms)
{
    char ttl[16];

    if (f->leaving || f->call != NULL || now_ms < f->next_ms)
        return false;
    /* Not up: tried again next tick, so the first beat follows the connection. */
    if (f->ops->up != NULL && !f->ops->up(f->client))
        return false;
    f->next_ms = now_ms + RL_FLEET_BEAT_MS;
    f->sent_ms = now_ms;
    snprintf(ttl, sizeof ttl, "%u", (unsigned)RL_FLEET_TTL_MS);
    f->call = fleet_send(f, ttl, on_beat);
    if (f->call == NULL) {
        observe(f, false, atomic_load(&f->count), "cannot send");
        return false;
    }
    return true;
}

void rl_fleet_leave(rl_fleet_t *f)
{
    if (f->leaving)
        return;
    f->leaving = true;
    if (f->call == NULL) /* else: sent when the heartbeat in flight is answered */
        send_leave(f);
}

bool rl_fleet_left(const rl_fleet_t *f)
{
    return atomic_load(&f->left);
}

unsigned rl_fleet_count(const rl_fleet_t *f)
{
    return atomic_load(&f->count);
}

uint64_t rl_fleet_seen_ms(const rl_fleet_t *f)
{
    return atomic_load(&f->seen_ms);
}

unsigned rl_fleet_divisor(const rl_fleet_t *f, unsigned expected)
{
    unsigned n = f != NULL ? atomic_load_explicit(&f->count, memory_order_relaxed) : 0;

    if (n == 0)
        n = expected;
    return n > 0 ? n : 1;
}
