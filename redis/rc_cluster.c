/* rc_cluster.c — Redis Cluster routing: the slot map from CLUSTER SLOTS and
 * its refresh (the pure parsers are rc_proto.c).  See include/tollgate/rc.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rc_internal.h"
#include "tollgate/util_clock.h"
#include "tollgate/log.h"

/* One CLUSTER SLOTS entry: [start, end, [host, port, id...], replicas...]. */
static int slots_entry_ok(const redisReply *e)
{
    const redisReply *m;

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3)
        return 0;
    if (e->element[0]->type != REDIS_REPLY_INTEGER ||
        e->element[1]->type != REDIS_REPLY_INTEGER)
        return 0;
    if (e->element[0]->integer < 0 || e->element[1]->integer >= RC_NSLOTS ||
        e->element[0]->integer > e->element[1]->integer)
        return 0;
    m = e->element[2];
    if (m->type != REDIS_REPLY_ARRAY || m->elements < 2)
        return 0;
    if (m->element[0]->type != REDIS_REPLY_STRING && m->element[0]->type != REDIS_REPLY_NIL)
        return 0;
    if (m->element[0]->type == REDIS_REPLY_STRING && m->element[0]->len >= 256)
        return 0;
    return m->element[1]->type == REDIS_REPLY_INTEGER && m->element[1]->integer > 0 &&
           m->element[1]->integer <= 65535;
}

/* Nodes that no longer own slots: drop now when idle, else once drained. */
static void retire_unmapped(rc_client_t *c)
{
    rc_conn_t *conn, *next;

    for (conn = TAILQ_FIRST(&c->conns); conn != NULL; conn = next) {
        next = TAILQ_NEXT(conn, link);
        if (conn->in_map || conn->seed)
            continue;
        conn->retired = true;
        if (TAILQ_EMPTY(&conn->flight) && TAILQ_EMPTY(&conn->waitq)) {
            log_info("redis %s left the cluster map: dropped", conn->name);
            rc_conn_fail(conn, "left the cluster", true);
        }
    }
}

int rc_cluster_apply_slots(rc_client_t *c, rc_conn_t *from, const redisReply *r)
{
    rc_conn_t **map, *conn;
    size_t covered = 0;
    rc_cmd_t *cmd;

    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        return -1;
    for (size_t i = 0; i < r->elements; i++)
        if (!slots_entry_ok(r->element[i]))
            return -1;
    map = calloc(RC_NSLOTS, sizeof(*map));
    if (map == NULL)
        return -1;
    for (conn = TAILQ_FIRST(&c->conns); conn != NULL; conn = TAILQ_NEXT(conn, link))
        conn->in_map = false;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *m = e->element[2];
        const char *host = from->host;

        if (m->element[0]->type == REDIS_REPLY_STRING && m->element[0]->len > 0 &&
            strcmp(m->element[0]->str, "?") != 0)
            host = m->element[0]->str;
        conn = rc_conn_find(c, host, (unsigned)m->element[1]->integer, true);
        if (conn == NULL)
            continue; /* out of memory: those slots stay unmapped */
        conn->in_map = true;
        conn->retired = false;
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++) {
            covered += map[s] == NULL;
            map[s] = conn;
        }
    }
    free(c->slots);
    c->slots = map;
    c->map_ok = covered == RC_NSLOTS;
    c->stats.refreshes++;
    retire_unmapped(c);
    /* Commands that waited for a map go now (or fail: no node). */
    while ((cmd = TAILQ_FIRST(&c->waitq)) != NULL) {
        TAILQ_REMOVE(&c->waitq, cmd, link);
        cmd->where = RC_WHERE_NONE;
        c->events->route(c, cmd, true);
    }
    return 0;
}

static void on_slots(rc_client_t *c, redisReply *reply, const char *errstr, void *privdata)
{
    rc_conn_t *from = privdata;

    c->refreshing = false;
    if (reply == NULL) {
        log_debug("redis cluster map refresh failed: %s", errstr);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        log_warn("redis cluster map refresh via %s: %.*s", from->name, (int)reply->len,
                 reply->str);
        return;
    }
    if (rc_cluster_apply_slots(c, from, reply) != 0)
        log_warn("redis cluster map from %s: malformed CLUSTER SLOTS reply", from->name);
}

/* Pick a node to ask: a ready one at random, else any that can connect. */
static rc_conn_t *refresh_node(rc_client_t *c)
{
    rc_conn_t *conn, *pick = NULL;
    unsigned n = 0;

    for (conn = TAILQ_FIRST(&c->conns); conn != NULL; conn = TAILQ_NEXT(conn, link))
        if (conn->state == RC_CONN_READY && rc_rand(c) % ++n == 0)
            pick = conn;
    if (pick != NULL)
        return pick;
    for (conn = TAILQ_FIRST(&c->conns); conn != NULL; conn = TAILQ_NEXT(conn, link))
        if (rc_conn_usable(conn) && rc_rand(c) % ++n == 0)
            pick = conn;
    return pick;
}

void rc_cluster_refresh(rc_client_t *c, bool force)
{
    static const char *argv[] = {"CLUSTER", "SLOTS"};
    uint64_t now = util_mono_ms();
    rc_conn_t *node;
    rc_cmd_t *cmd;

    if (!c->o.cluster || c->closing || c->refreshing)
        return;
    if (!force && now - c->last_refresh_ms < 1000)
        return;
    node = refresh_node(c);
    if (node == NULL)
        return;
    cmd = rc_cmd_new(c, 2, argv, NULL, on_slots, node);
    if (cmd == NULL)
        return;
    cmd->pin = node;
    c->refreshing = true;
    c->last_refresh_ms = now;
    if (c->events->route(c, cmd, true) != 0)
        c->refreshing = false;
}

rc_conn_t *rc_cluster_any(rc_client_t *c)
{
    rc_conn_t *conn, *usable = NULL;

    for (conn = TAILQ_FIRST(&c->conns); conn != NULL; conn = TAILQ_NEXT(conn, link)) {
        if (!conn->in_map)
            continue;
        if (conn->state == RC_CONN_READY)
            return conn;
        if (usable == NULL && rc_conn_usable(conn))
            usable = conn;
    }
    return usable;
}

static void refresh_rearm(rc_client_t *c)
{
    unsigned ms = RC_REFRESH_MS;
    struct timeval tv;
    rc_conn_t *conn;

    if (!c->map_ok) {
        ms = 250;
    } else {
        for (conn = TAILQ_FIRST(&c->conns); conn != NULL; conn = TAILQ_NEXT(conn, link))
            if (conn->in_map && conn->state == RC_CONN_BACKOFF)
                ms = 1000; /* a primary is down: look for its successor */
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    event_add(&c->refresh_timer, &tv);
}

static void refresh_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    rc_client_t *c = arg;

    (void)fd;
    (void)what;
    rc_enter(c);
    rc_cluster_refresh(c, false);
    refresh_rearm(c);
    rc_leave(c);
}

void rc_cluster_on_conn_ready(rc_conn_t *conn)
{
    rc_client_t *c = conn->c;

    if (c->o.cluster && !c->map_ok)
        rc_cluster_refresh(c, true);
}

void rc_cluster_on_conn_down(rc_conn_t *conn)
{
    rc_client_t *c = conn->c;

    if (!c->o.cluster || c->closing)
        return;
    /* A failover may be under way: ask again soon (rate-limited). */
    rc_cluster_refresh(c, false);
    refresh_rearm(c);
}

void rc_cluster_start(rc_client_t *c)
{
    rc_conn_t *conn;

    evtimer_assign(&c->refresh_timer, c->base, refresh_timer_cb, c);
    for (conn = TAILQ_FIRST(&c->conns); conn != NULL; conn = TAILQ_NEXT(conn, link))
        if (conn->state == RC_CONN_IDLE)
            rc_conn_start(conn);
    refresh_rearm(c);
}
