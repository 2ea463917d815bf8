/* decide_ctx.c — a worker's decision context (decide.h dec_ctx_t): the
 * limiter, the real stores, this thread's JWKS copies, and the hooks through
 * which the core sets timers on the worker's event loop and reports what it
 * saw (metrics, forward-auth warnings, the /readyz body).
 */
#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "tollgate/auth_jwt.h"
#include "srv_req.h"

typedef struct dec_timer {
    struct event ev;
    dec_timer_fn *fn;
    void *arg;
} dec_timer_t;

static void timer_fire(evutil_socket_t fd, short what, void *arg)
{
    dec_timer_t *t = arg;
    dec_timer_fn *fn = t->fn;
    void *fn_arg = t->arg;

    (void)fd;
    (void)what;
    free(t);
    fn(fn_arg);
}

void *srv_dec_timer_add(struct event_base *base, unsigned ms, dec_timer_fn *fn,
                        void *fn_arg)
{
    dec_timer_t *t = malloc(sizeof(*t));
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    if (t == NULL)
        return NULL;
    t->fn = fn;
    t->arg = fn_arg;
    evtimer_assign(&t->ev, base, timer_fire, t);
    if (evtimer_add(&t->ev, &tv) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

void srv_dec_timer_cancel(void *timer)
{
    dec_timer_t *t = timer;

    evtimer_del(&t->ev);
    free(t);
}

static void *timer_add(void *arg, unsigned ms, dec_timer_fn *fn, void *fn_arg)
{
    return srv_dec_timer_add(((srv_worker_t *)arg)->base, ms, fn, fn_arg);
}

static void timer_cancel(void *arg, void *timer)
{
    (void)arg;
    srv_dec_timer_cancel(timer);
}

static int readyz(void *arg, const cfg_t *c, char *body, size_t len)
{
    srv_worker_t *w = arg;

    return srv_readyz(w->srv, c, false, body, len);
}

static void auth_failure(void *arg, const char *reason)
{
    metrics_auth_failure(((srv_worker_t *)arg)->metrics, reason);
}

static void jwt_cache(void *arg, bool hit)
{
    metrics_jwt_cache(((srv_worker_t *)arg)->metrics, hit);
}

static void limit(void *arg, const char *name, const char *outcome, const char *mode)
{
    metrics_limit(((srv_worker_t *)arg)->metrics, name, outcome, mode);
}

static void deprecated(void *arg, const char *client_id)
{
    metrics_deprecated(((srv_worker_t *)arg)->metrics, client_id);
}

static void untrusted(void *arg, const char *peer)
{
    srv_fwdauth_untrusted(arg, peer);
}

static void repeat(void *arg, const char *dialect, const char *name, const char *peer)
{
    srv_fwdauth_repeat(arg, dialect, name, peer);
}

int srv_pipeline_init(srv_worker_t *w)
{
    dec_ctx_cfg_t c = {
        .limiter = w->limiter,
        .stores = &dec_stores_real_ops,
        .store = &w->dec_stores,
        .revoked = w->srv->revoked,
        .jwt_local = w->jwt_local,
        .ticket_prefix = w->srv->redis_prefix,
        .hooks =
            {
                .arg = w,
                .timer_add = timer_add,
                .timer_cancel = timer_cancel,
                .readyz = readyz,
                .auth_failure = auth_failure,
                .jwt_cache = jwt_cache,
                .limit = limit,
                .deprecated = deprecated,
                .untrusted_forwarder = untrusted,
                .forwarded_repeat = repeat,
            },
        .bans = w->srv->bans,
    };

    w->dec_stores = (dec_stores_real_t){
        .lockout = w->srv->lockout,
        .shared = &w->srv->shared,
        .tickets = w->srv->tickets,
        .rc_ops = &rc_client_ops,
        .rc = w->rc,
    };
    w->dec = dec_ctx_new(&c);
    return w->dec != NULL ? 0 : -1;
}

void srv_pipeline_clear(srv_worker_t *w)
{
    dec_ctx_free(w->dec);
    w->dec = NULL;
}
