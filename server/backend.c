/* backend.c — which store a worker's limiter decides with (docs/redis.md).
 *
 * redis.mode none: the shared memory backend.  standalone / cluster: each
 * worker thread gets its own Redis client (its own connections) and an
 * rl_redis backend over it, with the shared memory store as the `local`
 * fallback at rate / expected_replicas.  A timer on each worker samples
 * whether its client can send; the main thread turns that into /readyz,
 * tollgate_fallback and one log line per change of state.
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "tollgate/log.h"
#include "tollgate/lua_scripts.h"
#include "tollgate/rc.h"
#include "tollgate/rl_redis.h"
#include "srv_process.h"

#define HEALTH_TICK_MS 50
#define MAX_SCRIPTS 16

/* The embedded scripts in rc's form, and the index of lua/bucket.lua. */
static size_t scripts(rc_script_t *out, size_t *bucket)
{
    size_t n = 0;

    *bucket = (size_t)-1;
    for (; n < MAX_SCRIPTS && tg_lua_scripts[n].name != NULL; n++) {
        out[n] = (rc_script_t){tg_lua_scripts[n].name, tg_lua_scripts[n].text,
                               tg_lua_scripts[n].len};
        if (strcmp(tg_lua_scripts[n].name, "bucket") == 0)
            *bucket = n;
    }
    return n;
}

size_t srv_script_index(const char *name)
{
    for (size_t i = 0; tg_lua_scripts[i].name != NULL; i++)
        if (strcmp(tg_lua_scripts[i].name, name) == 0)
            return i;
    return (size_t)-1;
}

/* A Redis client for `c` on `base`; NULL with a message in err. */
static rc_client_t *client_new(struct event_base *base, const cfg_t *c, size_t *bucket,
                               char *err, size_t errlen)
{
    rc_script_t sc[MAX_SCRIPTS];
    size_t n = scripts(sc, bucket);
    rc_opts_t o = {
        .cluster = c->redis.mode == CFG_REDIS_CLUSTER,
        .seeds = (const char *const *)c->redis.nodes.v,
        .nseeds = c->redis.nodes.n,
        .username = c->redis.username,
        .password = c->redis.password,
        .db = (int)c->redis.db,
        .tls = c->redis.tls,
        .tls_ca_file = c->redis.tls_ca_file,
        .tls_cert_file = c->redis.tls_cert_file,
        .tls_key_file = c->redis.tls_key_file,
        .timeout_ms = c->redis.timeout_ms,
        .scripts = sc,
        .nscripts = n,
    };

    if (*bucket == (size_t)-1) {
        snprintf(err, errlen, "lua/bucket.lua is not embedded in this binary");
        return NULL;
    }
    return rc_client_new(base, &o, err, errlen);
}

rc_client_t *srv_backend_client_new(struct event_base *base, const cfg_t *c, char *err,
                                    size_t errlen)
{
    size_t bucket;

    return client_new(base, c, &bucket, err, errlen);
}

static void observe(void *ctx, const char *result, double seconds)
{
    metrics_redis(((srv_worker_t *)ctx)->metrics, result, seconds);
}

static void overlimit_hit(void *ctx)
{
    metrics_overlimit_hit(((srv_worker_t *)ctx)->metrics);
}

static void lease_hit(void *ctx)
{
    metrics_lease_hit(((srv_worker_t *)ctx)->metrics);
}

static void redis_shed(void *ctx)
{
    metrics_redis_shed(((srv_worker_t *)ctx)->metrics);
}

static void health_tick(evutil_socket_t fd, short what, void *arg)
{
    srv_worker_t *w = arg;

    bool up = rc_client_up(w->rc);
    const char *why;

    (void)fd;
    (void)what;
    atomic_store(&w->redis_up, up);
    if (atomic_load(&w->redis_settled))
        return;
    why = rc_client_errstr(w->rc);
    if (up || (why != NULL && why[0] != '\0')) /* connected, or an attempt failed */
        atomic_store(&w->redis_settled, true);
}

int srv_backend_init(srv_t *s, srv_worker_t *w, char *err, size_t errlen)
{
    const cfg_t *c = s->cfg;
    struct timeval tick = {0, HEALTH_TICK_MS * 1000};
    size_t bucket;

    if (c->redis.mode == CFG_REDIS_NONE) {
        atomic_store(&w->redis_settled, true);
        w->limiter = rl_limiter_new(w->base, &rl_memory_ops, s->memory);
        return w->limiter ? 0 : -1;
    }
    w->rc = client_new(w->base, c, &bucket, err, errlen);
    if (w->rc == NULL)
        return -1;
    w->rr = rl_redis_new(&rc_client_ops, w->rc, s->redis_prefix, bucket);
    w->limiter = w->rr ? rl_limiter_new(w->base, &rl_redis_ops, w->rr) : NULL;
    w->health_ev = event_new(w->base, -1, EV_PERSIST, health_tick, w);
    if (w->limiter == NULL || w->health_ev == NULL || event_add(w->health_ev, &tick) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rl_redis_set_observer(w->rr, observe, w);
    rl_redis_set_local_observer(w->rr, overlimit_hit, lease_hit, w);
    rl_redis_set_batching(w->rr, c->redis.batch_max, c->redis.mode == CFG_REDIS_CLUSTER);
    rl_redis_set_max_pending(w->rr, c->redis.max_pending, redis_shed);
    rl_limiter_set_fallback(w->limiter, s->memory, c->expected_replicas);
    return 0;
}

/* A new snapshot reached worker `w`. */
void srv_backend_reconfigure(srv_worker_t *w)
{
    if (w->rr != NULL) {
        rl_limiter_set_fallback(w->limiter, w->srv->memory, w->cfg->expected_replicas);
        rl_redis_set_max_pending(w->rr, w->cfg->redis.max_pending, redis_shed);
    }
}

void srv_backend_clear(srv_worker_t *w)
{
    if (w->health_ev != NULL)
        event_free(w->health_ev);
    rl_limiter_free(w->limiter);
    rl_redis_free(w->rr);
    rc_client_free(w->rc);
    w->health_ev = NULL;
    w->limiter = NULL;
    w->rr = NULL;
    w->rc = NULL;
}

/* "disabled", "ok" or "down" for /readyz. */
const char *srv_backend_state(srv_t *s)
{
    if (s->cfg_redis_mode == CFG_REDIS_NONE)
        return "disabled";
    for (unsigned i = 0; i < s->nworkers; i++)
        if (!atomic_load(&s->workers[i].redis_up))
            return "down";
    return "ok";
}

/* true once every worker's first Redis connection attempt has succeeded or
 * failed (at once without Redis): /readyz says "starting" until then. */
bool srv_backend_settled(srv_t *s)
{
    for (unsigned i = 0; i < s->nworkers; i++)
        if (!atomic_load(&s->workers[i].redis_settled))
            return false;
    return true;
}

/* Main thread, once the replica is ready and then every second: log and
 * publish entering / leaving degraded mode. */
void srv_backend_watch(srv_t *s)
{
    bool down = strcmp(srv_backend_state(s), "down") == 0;

    if (down == atomic_load(&s->degraded))
        return;
    atomic_store(&s->degraded, down);
    metrics_set_fallback(down);
    if (down)
        log_warn("redis unreachable: degraded mode, every limit follows its on_redis_error "
                 "(local: this replica's buckets at rate / expected_replicas)");
    else
        log_info("redis reachable again: leaving degraded mode");
}

/* redis.required: wait (bounded) for Redis before serving. 0 when it answers. */
int srv_backend_probe(const cfg_t *c, unsigned wait_ms, char *err, size_t errlen)
{
    struct event_base *base = event_base_new();
    struct timeval step = {0, 20000};
    rc_client_t *rc;
    size_t bucket;
    int up = 0;

    if (base == NULL)
        return -1;
    rc = client_new(base, c, &bucket, err, errlen);
    for (unsigned t = 0; rc != NULL && t < wait_ms && !up; t += 20) {
        event_base_loopexit(base, &step);
        event_base_dispatch(base);
        up = rc_client_up(rc);
    }
    if (rc != NULL && !up)
        snprintf(err, errlen, "redis is required and did not answer within %u ms: %s",
                 wait_ms, rc_client_errstr(rc) ? rc_client_errstr(rc) : "no connection");
    rc_client_free(rc);
    event_base_free(base);
    return up ? 0 : -1;
}
