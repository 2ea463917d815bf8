/* fleet.c — the wiring of this replica's fleet membership (limiter/rl_fleet.c
 * owns the roster and the count): the heartbeat timer on the admin thread,
 * the metrics, one log line per change of state, and every worker's
 * limiter dividing its `local` fallback by the live count.
 *
 * The heartbeat runs on the admin thread's loop and client, never on a
 * worker: it adds nothing to the request path.  Its failures are logged
 * once when they start and once when they end (Redis down means a failure
 * every RL_FLEET_BEAT_MS); the count is logged when it changes.
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "tollgate/log.h"
#include "tollgate/rl_fleet.h"
#include "tollgate/util_clock.h"
#include "srv_process.h"

#define FLEET_TICK_MS 100 /* how soon the first heartbeat follows the connection */

static void observe(void *ctx, bool ok, unsigned count, const char *errstr)
{
    srv_t *s = ctx;

    atomic_store(&s->fleet_settled, true);
    if (ok) {
        metrics_set_fleet(count, rl_fleet_seen_ms(s->fleet));
        if (s->fleet_failing)
            log_info("fleet heartbeat answered again: %u replicas live", count);
        else if (count != s->fleet_logged)
            log_info("fleet: %u replicas live (the local fallback divides each rate by %u)",
                     count, count);
        s->fleet_failing = false;
        s->fleet_logged = count;
        return;
    }
    if (s->fleet_failing)
        return;
    s->fleet_failing = true;
    if (count > 0)
        log_warn("fleet heartbeat failing (%s): keeping the last count, %u replicas",
                 errstr, count);
    else
        log_warn("fleet heartbeat failing (%s): no count yet, the local fallback divides "
                 "by expected_replicas",
                 errstr);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    srv_t *s = arg;

    (void)fd;
    (void)what;
    rl_fleet_tick(s->fleet, util_mono_ms());
}

int srv_fleet_start(srv_t *s, char *err, size_t errlen)
{
    struct timeval tv = {0, FLEET_TICK_MS * 1000};

    if (s->cfg_redis_mode == CFG_REDIS_NONE || s->admin.rc == NULL)
        return 0;
    s->fleet = rl_fleet_new(&rc_client_ops, s->admin.rc, s->redis_prefix,
                            srv_script_index("fleet"));
    s->fleet_ev = event_new(s->admin.base, -1, EV_PERSIST, tick, s);
    if (s->fleet == NULL || s->fleet_ev == NULL || event_add(s->fleet_ev, &tv) != 0) {
        snprintf(err, errlen,
                 "cannot set up the fleet heartbeat (out of memory or no "
                 "random bytes)");
        return -1;
    }
    rl_fleet_set_observer(s->fleet, observe, s);
    for (unsigned i = 0; i < s->nworkers; i++)
        rl_limiter_set_fleet(s->workers[i].limiter, s->fleet);
    log_info("fleet: instance %s heartbeats on %s", rl_fleet_id(s->fleet),
             rl_fleet_key(s->fleet));
    return 0;
}

/* Admin thread (its mailbox): leave the roster. */
void srv_fleet_leave(srv_t *s)
{
    if (s->fleet != NULL)
        rl_fleet_leave(s->fleet);
}

/* The first heartbeat was answered or failed, or Redis is down (then it
 * would only fail): /readyz waits for this, so a replica does not start
 * serving while the fallback would still divide by expected_replicas. */
bool srv_fleet_settled(srv_t *s)
{
    return s->fleet == NULL || atomic_load(&s->fleet_settled) ||
           strcmp(srv_backend_state(s), "down") == 0;
}

bool srv_fleet_left(srv_t *s)
{
    return s->fleet == NULL || rl_fleet_left(s->fleet);
}

void srv_fleet_stop(srv_t *s)
{
    if (s->fleet_ev != NULL)
        event_free(s->fleet_ev);
    rl_fleet_free(s->fleet);
    s->fleet_ev = NULL;
    s->fleet = NULL;
}
