/* rc_sub.c — the subscriber: one SUBSCRIBE connection of a client, moved to
 * another node when its node goes down (cluster), resubscribed on reconnect,
 * with a PING tick that notices a silent node.  See include/tollgate/rc.h
 * (rc_subscribe); rc_conn.c tells it of its connection's state through the
 * rc_sub_on_* functions of rc_internal.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "rc_internal.h"
#include "tollgate/util_clock.h"
#include "tollgate/log.h"

/* ---- subscriber connections ------------------------------------------------ */

static void sub_tick_cb(evutil_socket_t fd, short what, void *arg);

static void sub_emit(rc_sub_t *s, int event, const redisReply *ch, const redisReply *msg)
{
    if (s->dead)
        return;
    s->fn(s, event, ch != NULL ? ch->str : NULL, ch != NULL ? ch->len : 0,
          msg != NULL ? msg->str : NULL, msg != NULL ? msg->len : 0, s->privdata);
}

static void sub_tick_stop(rc_sub_t *s)
{
    if (s->tick_on)
        event_del(&s->tick);
    s->tick_on = false;
}

/* Connected and authenticated: SUBSCRIBE, watch for silence. */
void rc_sub_on_ready(rc_sub_t *s)
{
    static const struct timeval tv = {0, RC_SUB_TICK_MS * 1000};
    rc_conn_t *conn = s->conn;

    s->confirmed = 0;
    conn->progress_ms = s->ping_ms = util_mono_ms();
    evbuffer_add(bufferevent_get_output(conn->bev), s->subcmd, s->subcmd_len);
    event_add(&s->tick, &tv);
    s->tick_on = true;
}

void rc_sub_on_down(rc_sub_t *s)
{
    sub_tick_stop(s);
    s->confirmed = 0;
    if (!s->up)
        return;
    s->up = false;
    sub_emit(s, RC_SUB_DOWN, NULL, NULL);
}

static bool is_kind(const redisReply *k, const char *kind)
{
    size_t n = strlen(kind);

    return k->len == n && strncasecmp(k->str, kind, n) == 0;
}

static bool is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

/* One push on a subscribed connection: ["subscribe", ch, n], ["message", ch,
 * payload], ["pong", ""]; other kinds are ignored, anything else drops it. */
void rc_sub_on_reply(rc_sub_t *s, const redisReply *r)
{
    rc_conn_t *conn = s->conn;
    const redisReply *k;
    char why[200];

    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "SUBSCRIBE failed: %.*s",
                 (int)(r->len > 120 ? 120 : r->len), r->str);
        rc_conn_fail(conn, why, false);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !is_str(r->element[0]))
        goto out_malformed;
    k = r->element[0];
    if (is_kind(k, "message")) {
        if (r->elements != 3 || !is_str(r->element[1]) || !is_str(r->element[2]))
            goto out_malformed;
        sub_emit(s, RC_SUB_MESSAGE, r->element[1], r->element[2]);
    } else if (is_kind(k, "subscribe")) {
        if (r->elements != 3 || !is_str(r->element[1]) ||
            r->element[2]->type != REDIS_REPLY_INTEGER)
            goto out_malformed;
        if (!s->up && ++s->confirmed >= s->nchannels) {
            s->up = true;
            conn->was_up = true;
            conn->attempts = 0;
            log_info("redis subscriber %s up", conn->name);
            sub_emit(s, RC_SUB_UP, NULL, NULL);
        }
    }
    return;
out_malformed:
    rc_conn_fail(conn, "malformed pub/sub reply", false);
}

static void sub_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    rc_sub_t *s = arg;
    rc_conn_t *conn = s->conn;
    rc_client_t *c = s->c;
    uint64_t now = util_mono_ms(), idle;
    char why[64];

    (void)fd;
    (void)what;
    rc_enter(c);
    idle = now - conn->progress_ms;
    if (conn->state != RC_CONN_READY) {
        sub_tick_stop(s);
    } else if (idle >= RC_SUB_DEAD_MS) {
        snprintf(why, sizeof(why), "no reply for %llu ms", (unsigned long long)idle);
        rc_conn_fail(conn, why, false);
    } else if (idle >= RC_SUB_PING_MS && now - s->ping_ms >= RC_SUB_PING_MS) {
        evbuffer_add(bufferevent_get_output(conn->bev), ping, sizeof(ping) - 1);
        s->ping_ms = now;
    }
    rc_leave(c);
}

static bool same_node(const rc_conn_t *a, const rc_conn_t *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* Move the (closed) subscriber connection to `to`'s address. */
static void sub_move(rc_sub_t *s, const rc_conn_t *to)
{
    char *host = strdup(to->host);

    if (host == NULL)
        return; /* stay where we are */
    free(s->conn->host);
    s->conn->host = host;
    s->conn->port = to->port;
    rc_conn_set_name(s->conn);
}

/* Cluster: a ready node other than the current one, at random; else, when
 * `rotate`, the node after the current one in the client's list. */
void rc_sub_pick_node(rc_sub_t *s, bool rotate)
{
    rc_client_t *c = s->c;
    rc_conn_t *n, *pick = NULL;
    unsigned k = 0;

    if (!c->o.cluster)
        return;
    for (n = TAILQ_FIRST(&c->conns); n != NULL; n = TAILQ_NEXT(n, link))
        if (n->state == RC_CONN_READY && !same_node(n, s->conn) && rc_rand(c) % ++k == 0)
            pick = n;
    if (pick == NULL && rotate) {
        for (n = TAILQ_FIRST(&c->conns); n != NULL; n = TAILQ_NEXT(n, link))
            if (same_node(n, s->conn))
                break;
        n = n != NULL ? TAILQ_NEXT(n, link) : NULL;
        pick = n != NULL ? n : TAILQ_FIRST(&c->conns);
    }
    if (pick != NULL && !same_node(pick, s->conn))
        sub_move(s, pick);
}

void rc_sub_kill(rc_sub_t *s)
{
    rc_client_t *c = s->c;

    s->dead = true;
    TAILQ_REMOVE(&c->subs, s, link);
    sub_tick_stop(s);
    rc_conn_fail(s->conn, "unsubscribed", true);
}

/* SUBSCRIBE ch... formatted once; -1 on a NULL channel or no memory. */
static int sub_format(rc_sub_t *s, const char *const *channels, size_t n)
{
    const char **argv = calloc(n + 1, sizeof(*argv));
    int len = -1;

    if (argv == NULL || n > 1000000)
        goto out_free_argv;
    argv[0] = "SUBSCRIBE";
    for (size_t i = 0; i < n; i++) {
        if (channels[i] == NULL)
            goto out_free_argv;
        argv[i + 1] = channels[i];
    }
    len = redisFormatCommandArgv(&s->subcmd, (int)n + 1, argv, NULL);
    s->subcmd_len = len > 0 ? (size_t)len : 0;
out_free_argv:
    free(argv);
    return len > 0 && s->subcmd != NULL ? 0 : -1;
}

rc_sub_t *rc_subscribe(rc_client_t *c, const char *const *channels, size_t n, rc_sub_fn fn,
                       void *privdata)
{
    rc_conn_t *first = TAILQ_FIRST(&c->conns);
    rc_sub_t *s;

    if (c->closing || fn == NULL || channels == NULL || n == 0 || first == NULL) {
        rc_seterr(c, c->closing ? "redis client closed" : "redis: bad SUBSCRIBE call");
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL || sub_format(s, channels, n) != 0 ||
        (s->conn = rc_conn_alloc(c, first->host, first->port)) == NULL) {
        if (s != NULL)
            redisFreeCommand(s->subcmd);
        free(s);
        rc_seterr(c, "redis: SUBSCRIBE: bad channel or out of memory");
        return NULL;
    }
    s->c = c;
    s->nchannels = n;
    s->fn = fn;
    s->privdata = privdata;
    s->conn->sub = s;
    event_assign(&s->tick, c->base, -1, EV_PERSIST, sub_tick_cb, s);
    TAILQ_INSERT_TAIL(&c->subs, s, link);
    rc_enter(c);
    rc_sub_pick_node(s, false);
    rc_conn_start(s->conn);
    rc_leave(c);
    return s;
}

void rc_sub_free(rc_sub_t *s)
{
    rc_client_t *c;

    if (s == NULL || s->dead)
        return;
    c = s->c;
    rc_enter(c);
    rc_sub_kill(s);
    rc_leave(c);
}

bool rc_sub_up(const rc_sub_t *s)
{
    return s->up;
}

const char *rc_sub_node(const rc_sub_t *s)
{
    return s->conn->name;
}
