/* shared.c — the wiring of the auth state every replica shares through
 * Redis (JWT revocations, auth-failure lockouts; auth/shared.c owns the keys,
 * the messages and what the replies mean): which client each call uses, the
 * subscription and the resync timer.
 *
 * The subscription lives on the admin thread.  Whenever it (re)starts, and
 * every second while it is down, the replica reloads the revocation index
 * (<prefix>{revlog}:j, <prefix>{revlog}:s), so a revocation missed while
 * disconnected is picked up within a second of Redis being reachable.
 * Without Redis (redis.mode none) the memory stores are the state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "tollgate/util_clock.h"
#include "tollgate/log.h"
#include "tollgate/rc.h"
#include "srv_process.h"

#define RESYNC_MS 1000
#define LOCKOUT_INDEX_MAX 10000 /* entries of <prefix>{lockouts} kept */

/* A thread's client as the ops of an rc_ops_t pair; NULL without Redis. */
static const rc_ops_t *ops_of(const rc_client_t *rc)
{
    return rc != NULL ? &rc_client_ops : NULL;
}

static void resync(srv_t *s)
{
    if (s->admin.rc == NULL || !rc_client_up(s->admin.rc))
        return;
    auth_shared_resync(&s->shared, &rc_client_ops, s->admin.rc, util_wall_ms());
    auth_shared_resync_bans(&s->shared, &rc_client_ops, s->admin.rc);
}

static bool is_channel(const char *channel, size_t chlen, const char *name)
{
    return chlen == strlen(name) && memcmp(channel, name, chlen) == 0;
}

/* A message of the bans channel, or "u <ip key>" of the lockouts one. */
static bool apply_ban_or_unlock(srv_t *s, const char *channel, size_t chlen,
                                const char *msg, size_t msglen)
{
    if (is_channel(channel, chlen, s->shared.chan_ban)) {
        auth_shared_apply_ban(&s->shared, msg, msglen, util_wall_ms());
        return true;
    }
    if (is_channel(channel, chlen, s->shared.chan_lock) && msglen > 0 && msg[0] == 'u') {
        auth_shared_apply_unlock(&s->shared, msg, msglen);
        return true;
    }
    return false;
}

static void on_sub(rc_sub_t *sub, int event, const char *channel, size_t chlen,
                   const char *msg, size_t msglen, void *privdata)
{
    srv_t *s = privdata;

    (void)sub;
    if (event == RC_SUB_MESSAGE && apply_ban_or_unlock(s, channel, chlen, msg, msglen))
        return;
    if (event == RC_SUB_MESSAGE)
        auth_shared_apply(&s->shared, msg, msglen, util_wall_ms());
    else if (event == RC_SUB_UP)
        resync(s); /* whatever was published while we were away */
    else
        log_warn(
            "redis subscription lost: revocations resync every second until it is back");
}

static void resync_tick(evutil_socket_t fd, short what, void *arg)
{
    srv_t *s = arg;

    (void)fd;
    (void)what;
    /* bans that ended leave the set (and the gauge) */
    metrics_set_bans_active((long)auth_ban_expire(s->bans, util_wall_ms()));
    /* also until one resync was read whole: the one on (re)subscribe is
     * skipped when the admin client is not up yet */
    if (s->sub == NULL || !rc_sub_up(s->sub) || !auth_shared_synced(&s->shared))
        resync(s);
}

/* ---- admin: revoke; workers: lockouts ------------------------------------ */

int srv_shared_revoke(srv_t *s, srv_revoke_kind_t kind, const char *iss, const char *id,
                      int64_t when, srv_shared_done_fn done, void *privdata)
{
    return auth_shared_revoke(&s->shared, ops_of(s->admin.rc), s->admin.rc,
                              kind == SRV_REVOKE_SUBJECT ? AUTH_SHARED_SUBJECT
                                                         : AUTH_SHARED_JTI,
                              iss, id, when, util_wall_ms(), done, privdata);
}

int srv_shared_unrevoke(srv_t *s, bool subject, const char *iss, const char *id,
                        srv_shared_done_fn done, void *privdata)
{
    return auth_shared_unrevoke(&s->shared, ops_of(s->admin.rc), s->admin.rc,
                                subject ? AUTH_SHARED_SUBJECT : AUTH_SHARED_JTI, iss, id,
                                util_wall_ms(), done, privdata);
}

srv_lock_op_t *srv_shared_lockout_fail(srv_worker_t *w, const char *ip,
                                       const auth_lockout_policy_t *p,
                                       srv_lock_done_fn done, void *privdata)
{
    return auth_shared_lockout_fail(&w->srv->shared, ops_of(w->rc), w->rc, ip, p,
                                    util_wall_ms(), done, privdata);
}

void srv_shared_lockout_detach(srv_lock_op_t *op)
{
    auth_shared_lockout_detach(op);
}

static void revocations_changed(size_t n)
{
    metrics_set_revocations_cached((long)n);
}

static void bans_changed(size_t n)
{
    metrics_set_bans_active((long)n);
}

/* ---- lifecycle (admin thread's loop; called before it runs) ------------- */

int srv_shared_start(srv_t *s, char *err, size_t errlen)
{
    const cfg_t *c = s->cfg;
    const char *chans[3] = {s->shared.chan_rev, s->shared.chan_lock, s->shared.chan_ban};
    struct timeval tick = {RESYNC_MS / 1000, (RESYNC_MS % 1000) * 1000};

    /* Before any thread runs: fixed for the life of the process. */
    if (auth_shared_init(&s->shared, s->redis_prefix, s->revoked, s->lockout,
                         srv_script_index("revoke"), srv_script_index("lockout")) != 0) {
        snprintf(err, errlen, "redis.key_prefix too long");
        return -1;
    }
    s->shared.revocations_changed = revocations_changed;
    if (auth_shared_init_bans(&s->shared, s->bans, srv_script_index("ban"),
                              c->auth.bans.max_entries, LOCKOUT_INDEX_MAX) != 0) {
        snprintf(err, errlen, "redis.key_prefix too long");
        return -1;
    }
    s->shared.bans_changed = bans_changed;
    s->shared.script_unrevoke = srv_script_index("unrevoke");
    auth_revoke_set_lifetime(s->revoked, (int64_t)c->revocation_max_token_lifetime_s);
    if (c->redis.mode == CFG_REDIS_NONE)
        return 0;
    s->admin.rc = srv_backend_client_new(s->admin.base, c, err, errlen);
    if (s->admin.rc == NULL)
        return -1;
    s->sub = rc_subscribe(s->admin.rc, chans, 3, on_sub, s);
    s->resync_ev = event_new(s->admin.base, -1, EV_PERSIST, resync_tick, s);
    if (s->sub == NULL || s->resync_ev == NULL || event_add(s->resync_ev, &tick) != 0) {
        snprintf(err, errlen, "cannot subscribe to %s", s->shared.chan_rev);
        return -1;
    }
    return 0;
}

void srv_shared_stop(srv_t *s)
{
    if (s->resync_ev != NULL)
        event_free(s->resync_ev);
    rc_sub_free(s->sub);
    rc_client_free(s->admin.rc);
    s->resync_ev = NULL;
    s->sub = NULL;
    s->admin.rc = NULL;
}
