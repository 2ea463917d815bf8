/* rc_conn.c — one connection to one Redis node: connect (TCP or TLS),
 * handshake (AUTH, SELECT, SCRIPT LOAD), pipelined writes, FIFO reply
 * matching, failure and reconnect with capped exponential backoff + jitter.
 * Also subscriber connections (rc_subscribe): the same connection with
 * `sub` set, whose replies after the handshake go to the subscriber instead
 * of the FIFO.  They live here, not in a file of their own, because they are
 * a mode of the connection and share its static helpers. */
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

#define RC_BACKOFF_FIRST_MS 50

static void conn_retry_cb(evutil_socket_t fd, short what, void *arg);
static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

void rc_conn_set_name(rc_conn_t *conn)
{
    snprintf(conn->name, sizeof(conn->name), strchr(conn->host, ':') ? "[%s]:%u" : "%s:%u",
             conn->host, conn->port);
}

/* A connection in no list (yet). */
rc_conn_t *rc_conn_alloc(rc_client_t *c, const char *host, unsigned port)
{
    rc_conn_t *conn = calloc(1, sizeof(*conn));

    if (conn == NULL)
        return NULL;
    conn->host = strdup(host);
    if (conn->host == NULL) {
        free(conn);
        return NULL;
    }
    conn->c = c;
    conn->port = port;
    rc_conn_set_name(conn);
    TAILQ_INIT(&conn->waitq);
    TAILQ_INIT(&conn->flight);
    evtimer_assign(&conn->retry, c->base, conn_retry_cb, conn);
    return conn;
}

rc_conn_t *rc_conn_new(rc_client_t *c, const char *host, unsigned port)
{
    rc_conn_t *conn = rc_conn_alloc(c, host, port);

    if (conn != NULL)
        TAILQ_INSERT_TAIL(&c->conns, conn, link);
    return conn;
}

rc_conn_t *rc_conn_find(rc_client_t *c, const char *host, unsigned port, bool create)
{
    rc_conn_t *conn;

    for (conn = TAILQ_FIRST(&c->conns); conn != NULL; conn = TAILQ_NEXT(conn, link))
        if (conn->port == port && strcmp(conn->host, host) == 0)
            return conn;
    return create ? rc_conn_new(c, host, port) : NULL;
}

bool rc_conn_usable(const rc_conn_t *conn)
{
    return conn->state != RC_CONN_BACKOFF && conn->state != RC_CONN_DEAD;
}

static void conn_arm(rc_conn_t *conn, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    event_add(&conn->retry, &tv);
    conn->retry_on = true;
}

static void conn_disarm(rc_conn_t *conn)
{
    if (conn->retry_on)
        event_del(&conn->retry);
    conn->retry_on = false;
}

/* SNI and hostname (or IP) verification for a new TLS session. */
static SSL *conn_ssl_new(rc_conn_t *conn)
{
    rc_client_t *c = conn->c;
    const char *name = c->tls_server_name != NULL ? c->tls_server_name : conn->host;
    unsigned char ip[16];
    SSL *ssl = SSL_new(c->ssl_ctx);

    if (ssl == NULL)
        return NULL;
    if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

        if (X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1)
            goto out_free;
    } else {
        if (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1)
            goto out_free;
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    return ssl;
out_free:
    SSL_free(ssl);
    return NULL;
}

static struct bufferevent *conn_bev_new(rc_conn_t *conn)
{
    rc_client_t *c = conn->c;
    SSL *ssl;

    if (!c->o.tls)
        return bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    ssl = conn_ssl_new(conn);
    if (ssl == NULL)
        return NULL;
    /* On failure libevent has not taken the SSL yet. */
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        SSL_free(ssl);
    return bev;
}

/* Connect: numeric addresses directly, names through evdns (never blocking). */
static int conn_connect(rc_conn_t *conn)
{
    rc_client_t *c = conn->c;
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    int sslen = 0;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, conn->host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)conn->port);
        sslen = sizeof(*sin);
    } else if (inet_pton(AF_INET6, conn->host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)conn->port);
        sslen = sizeof(*sin6);
    }
    if (sslen > 0)
        return bufferevent_socket_connect(conn->bev, (struct sockaddr *)&ss, sslen);
    if (c->dns == NULL) {
        c->dns = evdns_base_new(c->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        if (c->dns == NULL)
            return -1;
    }
    return bufferevent_socket_connect_hostname(conn->bev, c->dns, AF_UNSPEC, conn->host,
                                               (int)conn->port);
}

void rc_conn_start(rc_conn_t *conn)
{
    rc_client_t *c = conn->c;
    struct bufferevent *bev;

    conn_disarm(conn);
    if (conn->reader != NULL)
        redisReaderFree(conn->reader);
    conn->reader = rc_reader_new();
    bev = conn->reader != NULL ? conn_bev_new(conn) : NULL;
    if (bev == NULL) {
        rc_conn_fail(conn, "out of memory or TLS setup failed", conn->retired);
        return;
    }
    conn->bev = bev;
    conn->state = RC_CONN_CONNECTING;
    bufferevent_setcb(bev, conn_read_cb, NULL, conn_event_cb, conn);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    conn_arm(conn, c->o.connect_timeout_ms);
    /* A synchronous failure may already have run conn_event_cb. */
    if (conn_connect(conn) != 0 && conn->bev == bev)
        rc_conn_fail(conn, "connect failed", conn->retired);
}

/* Write `cmd` (and ASKING before it when asked) and queue it for its reply. */
static void conn_write(rc_conn_t *conn, rc_cmd_t *cmd)
{
    struct evbuffer *out = bufferevent_get_output(conn->bev);

    if (cmd->asking) {
        static const char *asking[] = {"ASKING"};
        rc_cmd_t *a = rc_cmd_new(conn->c, 1, asking, NULL, NULL, NULL);

        /* Without memory for ASKING the node answers MOVED: still correct. */
        if (a != NULL) {
            evbuffer_add(out, a->buf, a->len);
            a->where = RC_WHERE_CONN_FLIGHT;
            a->conn = conn;
            TAILQ_INSERT_TAIL(&conn->flight, a, link);
        }
        cmd->asking = false;
    }
    evbuffer_add(out, cmd->buf, cmd->len);
    if (TAILQ_EMPTY(&conn->flight))
        conn->progress_ms = util_mono_ms();
    cmd->where = RC_WHERE_CONN_FLIGHT;
    cmd->conn = conn;
    TAILQ_INSERT_TAIL(&conn->flight, cmd, link);
}

int rc_conn_send(rc_conn_t *conn, rc_cmd_t *cmd)
{
    switch (conn->state) {
    case RC_CONN_IDLE:
        rc_conn_start(conn);
        if (conn->state != RC_CONN_CONNECTING)
            return -1;
        /* fall through */
    case RC_CONN_CONNECTING:
    case RC_CONN_HANDSHAKE:
        cmd->where = RC_WHERE_CONN_WAIT;
        cmd->conn = conn;
        TAILQ_INSERT_TAIL(&conn->waitq, cmd, link);
        return 0;
    case RC_CONN_READY:
        conn_write(conn, cmd);
        return 0;
    case RC_CONN_BACKOFF:
    case RC_CONN_DEAD:
        break;
    }
    return -1;
}

/* Write an internal command (handshake step, script load) now. */
static void conn_internal(rc_conn_t *conn, int argc, const char **argv, rc_internal_fn ifn,
                          const char *label)
{
    rc_cmd_t *cmd = rc_cmd_new(conn->c, argc, argv, NULL, NULL, (void *)label);

    if (cmd == NULL) {
        if (ifn != NULL)
            rc_conn_fail(conn, "out of memory", conn->retired);
        return;
    }
    cmd->ifn = ifn;
    conn_write(conn, cmd);
}

static void script_load_reply(rc_conn_t *conn, redisReply *reply, void *privdata)
{
    const rc_script_t *s = privdata;

    if (reply->type == REDIS_REPLY_ERROR)
        log_warn("redis %s: SCRIPT LOAD %s: %.*s", conn->name, s->name, (int)reply->len,
                 reply->str);
}

void rc_conn_load_script(rc_conn_t *conn, size_t id)
{
    rc_script_t *s = &conn->c->scripts[id];
    const char *argv[] = {"SCRIPT", "LOAD", s->text};
    size_t lens[] = {6, 4, s->len};
    rc_cmd_t *cmd = rc_cmd_new(conn->c, 3, argv, lens, NULL, s);

    if (cmd == NULL)
        return; /* EVALSHA will meet NOSCRIPT and load it then */
    cmd->ifn = script_load_reply;
    conn_write(conn, cmd);
}

static void conn_ready(rc_conn_t *conn)
{
    rc_cmd_t *cmd;

    conn_disarm(conn);
    conn->state = RC_CONN_READY;
    if (conn->sub != NULL) { /* attempts reset at UP: a bad node backs off */
        conn->c->events->ready(conn);
        return;
    }
    conn->attempts = 0;
    conn->c->stats.connects++;
    if (!conn->was_up)
        log_info("redis %s up", conn->name);
    conn->was_up = true;
    for (size_t i = 0; i < conn->c->o.nscripts; i++)
        rc_conn_load_script(conn, i);
    while ((cmd = TAILQ_FIRST(&conn->waitq)) != NULL) {
        TAILQ_REMOVE(&conn->waitq, cmd, link);
        conn_write(conn, cmd);
    }
    conn->c->events->ready(conn);
}

static void handshake_reply(rc_conn_t *conn, redisReply *reply, void *privdata)
{
    char why[200];

    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "%s failed: %.*s", (const char *)privdata,
                 (int)(reply->len > 120 ? 120 : reply->len), reply->str);
        rc_conn_fail(conn, why, conn->retired);
        return;
    }
    if (--conn->hs_pending == 0)
        conn_ready(conn);
}

static void conn_on_connected(rc_conn_t *conn)
{
    rc_client_t *c = conn->c;
    evutil_socket_t fd = bufferevent_getfd(conn->bev);
    int one = 1;

    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn->state = RC_CONN_HANDSHAKE;
    conn->hs_pending = 0;
    if (c->password != NULL) {
        const char *argv[] = {"AUTH", c->username, c->password};

        conn->hs_pending++;
        if (c->username != NULL)
            conn_internal(conn, 3, argv, handshake_reply, "AUTH");
        else
            conn_internal(conn, 2, (const char *[]){"AUTH", c->password}, handshake_reply,
                          "AUTH");
    }
    if (conn->state == RC_CONN_HANDSHAKE && c->o.db > 0) {
        char db[16];

        snprintf(db, sizeof(db), "%d", c->o.db);
        conn->hs_pending++;
        conn_internal(conn, 2, (const char *[]){"SELECT", db}, handshake_reply, "SELECT");
    }
    if (conn->state == RC_CONN_HANDSHAKE && conn->hs_pending == 0) {
        /* Nothing to authenticate: still ask once, so a server that wants a
         * password (-NOAUTH) fails the handshake instead of every command. */
        conn->hs_pending++;
        conn_internal(conn, 1, (const char *[]){"PING"}, handshake_reply, "PING");
    }
}

/* Feed what arrived to the reader, then answer every complete reply. */
static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    rc_conn_t *conn = arg;
    rc_client_t *c = conn->c;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v;
    void *r;
    rc_cmd_t *cmd;

    rc_enter(c);
    conn->progress_ms = util_mono_ms();
    while (evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
        redisReaderFeed(conn->reader, v.iov_base, v.iov_len);
        evbuffer_drain(in, v.iov_len);
    }
    while (conn->bev == bev) {
        if (redisReaderGetReply(conn->reader, &r) != REDIS_OK) {
            rc_conn_fail(conn, "protocol error", conn->retired);
            break;
        }
        if (r == NULL)
            break;
        if (conn->sub != NULL && conn->state == RC_CONN_READY) {
            c->events->sub_reply(conn, r);
            freeReplyObject(r);
            continue;
        }
        cmd = TAILQ_FIRST(&conn->flight);
        if (cmd == NULL) {
            freeReplyObject(r);
            rc_conn_fail(conn, "reply without a command", conn->retired);
            break;
        }
        TAILQ_REMOVE(&conn->flight, cmd, link);
        cmd->where = RC_WHERE_NONE;
        if (cmd->ifn != NULL) {
            cmd->ifn(conn, r, cmd->privdata);
            rc_cmd_free(cmd);
        } else {
            c->events->reply(conn, cmd, r);
        }
        freeReplyObject(r);
    }
    if (conn->retired && conn->state == RC_CONN_READY && TAILQ_EMPTY(&conn->flight) &&
        TAILQ_EMPTY(&conn->waitq)) {
        log_info("redis %s left the cluster map: dropped", conn->name);
        rc_conn_fail(conn, "left the cluster", true);
    }
    rc_leave(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    rc_conn_t *conn = arg;
    rc_client_t *c = conn->c;
    char why[160];
    unsigned long ssl_err;
    int dns_err;

    rc_enter(c);
    if (what & BEV_EVENT_CONNECTED) {
        conn_on_connected(conn);
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        int err = EVUTIL_SOCKET_ERROR();

        dns_err = bufferevent_socket_get_dns_error(bev);
        ssl_err = c->o.tls ? bufferevent_get_openssl_error(bev) : 0;
        if (dns_err != 0) {
            snprintf(why, sizeof(why), "cannot resolve: %s", evutil_gai_strerror(dns_err));
        } else if (ssl_err != 0) {
            char buf[120];

            ERR_error_string_n(ssl_err, buf, sizeof(buf));
            snprintf(why, sizeof(why), "TLS: %s", buf);
        } else if (what & BEV_EVENT_EOF) {
            snprintf(why, sizeof(why), "connection closed by the server");
        } else {
            snprintf(why, sizeof(why), "%s",
                     err != 0 ? evutil_socket_error_to_string(err) : "connection error");
        }
        rc_conn_fail(conn, why, conn->retired);
    }
    rc_leave(c);
}

void rc_conn_check_stall(rc_conn_t *conn)
{
    uint64_t limit = 4ULL * conn->c->o.timeout_ms, idle;
    char why[64];

    if (limit < 1000)
        limit = 1000;
    if (conn->state != RC_CONN_READY || TAILQ_EMPTY(&conn->flight))
        return;
    idle = util_mono_ms() - conn->progress_ms;
    if (idle < limit)
        return;
    snprintf(why, sizeof(why), "no reply for %llu ms", (unsigned long long)idle);
    rc_conn_fail(conn, why, conn->retired);
}

static void conn_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    rc_conn_t *conn = arg;
    rc_client_t *c = conn->c;

    (void)fd;
    (void)what;
    rc_enter(c);
    conn->retry_on = false;
    if (conn->state == RC_CONN_BACKOFF) {
        if (conn->sub != NULL)
            c->events->sub_retry(conn);
        rc_conn_start(conn);
    } else if (conn->state == RC_CONN_CONNECTING || conn->state == RC_CONN_HANDSHAKE)
        rc_conn_fail(conn, "connect timeout", conn->retired);
    rc_leave(c);
}

/* Fail every command of one queue with `why`. */
static void fail_queue(struct rc_cmdq *q, const char *why)
{
    rc_cmd_t *cmd;

    while ((cmd = TAILQ_FIRST(q)) != NULL) {
        TAILQ_REMOVE(q, cmd, link);
        cmd->where = RC_WHERE_NONE;
        rc_cmd_deliver(cmd, NULL, why);
        rc_cmd_free(cmd);
    }
}

static unsigned backoff_ms(rc_conn_t *conn)
{
    rc_client_t *c = conn->c;
    uint64_t ms = RC_BACKOFF_FIRST_MS;

    for (unsigned i = 1; i < conn->attempts && ms < c->o.backoff_max_ms; i++)
        ms *= 2;
    if (ms > c->o.backoff_max_ms)
        ms = c->o.backoff_max_ms;
    /* Jitter: between half and all of it, so replicas do not reconnect in step. */
    return (unsigned)(ms / 2 + rc_rand(c) % (ms / 2 + 1));
}

void rc_conn_fail(rc_conn_t *conn, const char *why, bool bury)
{
    rc_client_t *c = conn->c;
    char msg[sizeof(c->errstr) - 64];

    if (conn->state == RC_CONN_DEAD)
        return;
    snprintf(msg, sizeof(msg), "redis%s %s: %s", conn->sub != NULL ? " subscriber" : "",
             conn->name, why);
    conn_disarm(conn);
    if (conn->bev != NULL) {
        bufferevent_free(conn->bev);
        conn->bev = NULL;
    }
    if (!c->closing && (conn->sub == NULL || !conn->sub->dead)) {
        if (conn->was_up)
            log_warn("%s (down)", msg);
        else if (conn->attempts == 0)
            log_warn("%s", msg);
        if (conn->sub == NULL) /* the client's errstr is about commands */
            rc_seterr(c, "%s", msg);
    }
    conn->was_up = false;
    conn->attempts++;
    conn->state = bury || c->closing ? RC_CONN_DEAD : RC_CONN_BACKOFF;
    if (conn->state == RC_CONN_BACKOFF)
        conn_arm(conn, backoff_ms(conn));
    fail_queue(&conn->flight, msg);
    fail_queue(&conn->waitq, msg);
    if (conn->state == RC_CONN_DEAD) {
        if (c->slots != NULL)
            for (size_t i = 0; i < RC_NSLOTS; i++)
                if (c->slots[i] == conn) {
                    c->slots[i] = NULL;
                    c->map_ok = false;
                }
        if (conn->sub == NULL)
            TAILQ_REMOVE(&c->conns, conn, link);
        TAILQ_INSERT_TAIL(&c->graveyard, conn, link);
    }
    c->events->down(conn);
}

void rc_conn_destroy(rc_conn_t *conn)
{
    conn_disarm(conn);
    if (conn->bev != NULL)
        bufferevent_free(conn->bev);
    if (conn->reader != NULL)
        redisReaderFree(conn->reader);
    if (conn->sub != NULL) {
        redisFreeCommand(conn->sub->subcmd);
        free(conn->sub);
    }
    free(conn->host);
    free(conn);
}
