/* shared.c — state every replica shares through Redis (DESIGN §7):
 * JWT revocations and auth-failure lockouts.
 *
 * Each replica keeps both in memory (s->revoked, s->lockout) so the request
 * path never waits on Redis for them.  Redis holds the truth and tells every
 * replica of a change on two channels:
 *   <prefix>revocations   "j <exp> <jti>", "s <before> <sub>"  (lua/revoke.lua)
 *   <prefix>lockouts      "l <until_ms> <ip>"                  (lua/lockout.lua)
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

static int64_t now_s(void)
{
    return util_wall_ms() / 1000;
}

/* ---- applying what Redis says ------------------------------------------ */

/* "j <exp> <jti>" | "s <before> <sub>" | "l <until_ms> <ip>" */
static void apply_message(srv_t *s, const char *msg, size_t len)
{
    char buf[600], *end;
    long long when;

    if (len < 5 || len >= sizeof(buf) || msg[1] != ' ')
        return;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    when = strtoll(buf + 2, &end, 10);
    if (*end != ' ' || end[1] == '\0' || when <= 0)
        return;
    switch (buf[0]) {
    case 'j':
        auth_revoke_jti(s->revoked, end + 1, when, now_s());
        break;
    case 's':
        auth_revoke_subject(s->revoked, end + 1, when);
        break;
    case 'l':
        auth_lockout_lock(s->lockout, end + 1, when, util_wall_ms());
        return;
    default:
        return;
    }
    metrics_set_revocations_cached((long)auth_revoke_count(s->revoked));
}

static void resync_jti(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    srv_t *s = privdata;
    int64_t now = now_s();

    (void)c;
    (void)errstr;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *id = r->element[i], *score = r->element[i + 1];

        if (id->type == REDIS_REPLY_STRING && score->type == REDIS_REPLY_STRING)
            auth_revoke_jti(s->revoked, id->str, strtoll(score->str, NULL, 10), now);
    }
    metrics_set_revocations_cached((long)auth_revoke_count(s->revoked));
}

static void resync_sub(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    srv_t *s = privdata;

    (void)c;
    (void)errstr;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *sub = r->element[i], *before = r->element[i + 1];

        if (sub->type == REDIS_REPLY_STRING && before->type == REDIS_REPLY_STRING)
            auth_revoke_subject(s->revoked, sub->str, strtoll(before->str, NULL, 10));
    }
    metrics_set_revocations_cached((long)auth_revoke_count(s->revoked));
}

/* Reload the revocation index (two reads in the {revlog} slot). */
static void resync(srv_t *s)
{
    const char *kj = s->rnames.revlog_j, *ks = s->rnames.revlog_s;
    char now[24];

    if (s->admin.rc == NULL || !rc_client_up(s->admin.rc))
        return;
    snprintf(now, sizeof(now), "%lld", (long long)now_s());
    const char *zr[] = {"ZRANGEBYSCORE", kj, now, "+inf", "WITHSCORES"};
    const char *hg[] = {"HGETALL", ks};
    rc_command_argv(s->admin.rc, kj, strlen(kj), 5, zr, NULL, resync_jti, s);
    rc_command_argv(s->admin.rc, ks, strlen(ks), 2, hg, NULL, resync_sub, s);
}

static void on_sub(rc_sub_t *sub, int event, const char *channel, size_t chlen,
                   const char *msg, size_t msglen, void *privdata)
{
    srv_t *s = privdata;

    (void)sub;
    (void)channel;
    (void)chlen;
    if (event == RC_SUB_MESSAGE)
        apply_message(s, msg, msglen);
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
    if (s->sub == NULL || !rc_sub_up(s->sub))
        resync(s);
}

/* ---- admin: revoke ------------------------------------------------------ */

typedef struct revoke_op {
    srv_t *s;
    srv_revoke_kind_t kind;
    char id[AUTH_REVOKE_MAX_ID + 1];
    long long when;
    srv_shared_done_fn done;
    void *privdata;
} revoke_op_t;

static void revoke_finish(revoke_op_t *op, const char *err)
{
    if (err == NULL) {
        if (op->kind == SRV_REVOKE_SUBJECT)
            auth_revoke_subject(op->s->revoked, op->id, op->when);
        else
            auth_revoke_jti(op->s->revoked, op->id, op->when, now_s());
        metrics_set_revocations_cached((long)auth_revoke_count(op->s->revoked));
    }
    op->done(err, op->when, op->privdata);
    free(op);
}

static void revoke_key_done(rc_client_t *c, redisReply *r, const char *errstr,
                            void *privdata)
{
    (void)c;
    (void)errstr;
    revoke_finish(privdata, r == NULL || r->type == REDIS_REPLY_ERROR
                                ? "redis did not store the revocation"
                                : NULL);
}

/* revoke.lua answered with the `when` in force: write DESIGN §7's per-token key. */
static void revoke_index_done(rc_client_t *c, redisReply *r, const char *errstr,
                              void *privdata)
{
    revoke_op_t *op = privdata;
    char key[512], when[24];

    (void)errstr;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        revoke_finish(op, "redis did not store the revocation");
        return;
    }
    op->when = r->integer;
    snprintf(when, sizeof(when), "%lld", op->when);
    snprintf(key, sizeof(key), "%s{%s:%s}", op->s->redis_prefix,
             op->kind == SRV_REVOKE_SUBJECT ? "revsub" : "rev", op->id);
    const char *set_jti[] = {"SET", key, when, "EXAT", when};
    const char *set_sub[] = {"SET", key, when};
    if (rc_command_argv(c, key, strlen(key), op->kind == SRV_REVOKE_SUBJECT ? 3 : 5,
                        op->kind == SRV_REVOKE_SUBJECT ? set_sub : set_jti, NULL,
                        revoke_key_done, op) == NULL)
        revoke_finish(op, "redis unavailable");
}

int srv_shared_revoke(srv_t *s, srv_revoke_kind_t kind, const char *id, int64_t when,
                      srv_shared_done_fn done, void *privdata)
{
    revoke_op_t *op;
    char w[24];

    if (s->admin.rc == NULL) { /* redis.mode none: this replica is the store */
        int rc = kind == SRV_REVOKE_SUBJECT
                     ? auth_revoke_subject(s->revoked, id, when)
                     : auth_revoke_jti(s->revoked, id, when, now_s());

        metrics_set_revocations_cached((long)auth_revoke_count(s->revoked));
        done(rc == 0 ? NULL : "not revoked: already expired, or out of room", when,
             privdata);
        return 0;
    }
    op = calloc(1, sizeof(*op));
    if (op == NULL)
        return -1;
    *op = (revoke_op_t){
        .s = s, .kind = kind, .when = when, .done = done, .privdata = privdata};
    snprintf(op->id, sizeof(op->id), "%s", id);
    snprintf(w, sizeof(w), "%lld", (long long)when);
    const char *keys[] = {s->rnames.revlog_j, s->rnames.revlog_s};
    const char *args[] = {kind == SRV_REVOKE_SUBJECT ? "s" : "j", op->id, w,
                          s->rnames.chan_rev};
    if (rc_evalsha(s->admin.rc, srv_script_index("revoke"), 2, keys, NULL, 4, args, NULL,
                   revoke_index_done, op) == NULL) {
        free(op);
        return -1;
    }
    return 0;
}

/* ---- workers: lockouts ------------------------------------------------- */

struct srv_lock_op {
    srv_t *s;
    auth_lockout_policy_t p;
    char ip[HTTP_IP_STRLEN];
    srv_lock_done_fn done; /* NULL once detached */
    void *privdata;
};

static void lockout_done(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    srv_lock_op_t *op = privdata;
    int64_t now = util_wall_ms();

    (void)c;
    (void)errstr;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER) {
        if (r->element[0]->integer > 0) {
            auth_lockout_lock(op->s->lockout, op->ip, now + r->element[0]->integer, now);
            log_warn("lockout: client %s locked out for %lld ms", op->ip,
                     r->element[0]->integer);
        }
    } else {
        /* Redis could not count it: count it here, as without Redis. */
        auth_lockout_fail(op->s->lockout, op->ip, &op->p, now);
    }
    if (op->done != NULL)
        op->done(op->privdata);
    free(op);
}

/* Count the failure here, in memory (no Redis, or Redis refused the call). */
static void count_locally(srv_t *s, const char *ip, const auth_lockout_policy_t *p)
{
    if (auth_lockout_fail(s->lockout, ip, p, util_wall_ms()) > 0)
        log_warn("lockout: client %s locked out after %u failed authentications", ip,
                 p->max_failures);
}

srv_lock_op_t *srv_shared_lockout_fail(srv_worker_t *w, const char *ip,
                                       const auth_lockout_policy_t *p,
                                       srv_lock_done_fn done, void *privdata)
{
    srv_lock_op_t *op;
    char key[256], a[4][24];

    if (w->rc == NULL || (op = calloc(1, sizeof(*op))) == NULL) {
        count_locally(w->srv, ip, p);
        return NULL;
    }
    op->s = w->srv;
    op->p = *p;
    op->done = done;
    op->privdata = privdata;
    snprintf(op->ip, sizeof(op->ip), "%s", ip);
    snprintf(key, sizeof(key), "%s{lock:%s}", w->srv->redis_prefix, ip);
    snprintf(a[0], sizeof(a[0]), "%u", p->max_failures);
    snprintf(a[1], sizeof(a[1]), "%llu", (unsigned long long)p->window_ms);
    snprintf(a[2], sizeof(a[2]), "%llu", (unsigned long long)p->base_backoff_ms);
    snprintf(a[3], sizeof(a[3]), "%llu", (unsigned long long)p->max_backoff_ms);
    const char *keys[] = {key};
    const char *args[] = {a[0], a[1], a[2], a[3], w->srv->rnames.chan_lock};
    if (rc_evalsha(w->rc, srv_script_index("lockout"), 1, keys, NULL, 5, args, NULL,
                   lockout_done, op) == NULL) {
        free(op);
        count_locally(w->srv, ip, p);
        return NULL;
    }
    return op;
}

void srv_shared_lockout_detach(srv_lock_op_t *op)
{
    op->done = NULL;
}

/* ---- lifecycle (admin thread's loop; called before it runs) ------------- */

int srv_shared_start(srv_t *s, char *err, size_t errlen)
{
    const cfg_t *c = s->cfg;
    const char *chans[2] = {s->rnames.chan_rev, s->rnames.chan_lock};
    struct timeval tick = {RESYNC_MS / 1000, (RESYNC_MS % 1000) * 1000};

    /* Before any thread runs: fixed for the life of the process. */
    snprintf(s->rnames.revlog_j, sizeof(s->rnames.revlog_j), "%s{revlog}:j",
             s->redis_prefix);
    snprintf(s->rnames.revlog_s, sizeof(s->rnames.revlog_s), "%s{revlog}:s",
             s->redis_prefix);
    snprintf(s->rnames.chan_rev, sizeof(s->rnames.chan_rev), "%srevocations",
             s->redis_prefix);
    snprintf(s->rnames.chan_lock, sizeof(s->rnames.chan_lock), "%slockouts",
             s->redis_prefix);
    if (c->redis.mode == CFG_REDIS_NONE)
        return 0;
    s->admin.rc = srv_backend_client_new(s->admin.base, c, err, errlen);
    if (s->admin.rc == NULL)
        return -1;
    s->sub = rc_subscribe(s->admin.rc, chans, 2, on_sub, s);
    s->resync_ev = event_new(s->admin.base, -1, EV_PERSIST, resync_tick, s);
    if (s->sub == NULL || s->resync_ev == NULL || event_add(s->resync_ev, &tick) != 0) {
        snprintf(err, errlen, "cannot subscribe to %s", s->rnames.chan_rev);
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
