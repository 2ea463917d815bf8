/* conn.c — the connections of a main-listener worker: how many are open
 * (max_connections), and how long a request may take to arrive
 * (request_read_timeout_ms), against clients that send a byte every few
 * seconds (slowloris) and so never trip evhttp's idle timer.
 *
 * libevent 2.1's evhttp tells a server nothing between accept and a complete
 * request, and nothing when a connection goes, until one has a close
 * callback.  What it does allow:
 * - evhttp_set_bevcb: tollgate creates each connection's bufferevent (as
 *   evhttp would: a socket bufferevent, options 0, so evhttp still closes the
 *   fd itself) and puts a callback on its input buffer.  That callback runs
 *   on every read, with the bufferevent alive: the first read adopts the
 *   connection, the first read of each later request starts its clock.
 * - adopting a connection gives it a close callback at once: evhttp's
 *   bufferevent callbacks carry the evhttp_connection as their argument
 *   (bufferevent_getcb), and evhttp calls a connection's close callback
 *   exactly once, from evhttp_connection_free (or _reset_), before it frees
 *   the bufferevent and before it closes the fd (libevent 2.1 http.c).
 *
 * So an entry lives exactly as long as its connection, by construction: it
 * is removed before its fd can be handed to the next connection and before
 * its bufferevent's memory can be reused, and the table indexed by fd can
 * never give one connection another's entry (its state, its NUL flag, its
 * place in the max_connections count).  Before, a connection that went
 * before its first request was complete had no close callback, its entry
 * stayed until a once-a-second sweep, and a new connection on the same fd
 * whose bufferevent malloc had put at the same address was taken for it.
 *
 * The sweep cuts a connection whose request has been arriving for longer
 * than request_read_timeout_ms: shutdown(fd), so evhttp reads EOF and frees
 * it as for a client that left.
 *
 * The input callback also reads each request head (the request line and
 * header lines, up to the blank line) as it arrives, for NUL bytes: evhttp
 * keeps header values as C strings, so "X-API-Key: KEY\0junk" would reach
 * tollgate as "KEY".  RFC 9110 §5.5 says to refuse such a field; the
 * pipeline answers 400 (srv_conn_request tells it).
 *
 * Connections that never send a byte are not counted: evhttp's idle timer
 * (idle_timeout_ms) closes them, and file-descriptor exhaustion is
 * listener.c's.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "tollgate/http.h"
#include "tollgate/metrics.h"
#include "tollgate/util_clock.h"
#include "srv_process.h"

#define SRV_CONN_SWEEP_MS 1000

typedef enum {
    CONN_READING, /* a request is arriving: its clock runs */
    CONN_BUSY,    /* complete, being answered */
    CONN_IDLE,    /* kept alive between requests */
    CONN_CUT,     /* shut down; evhttp has not freed it yet */
} conn_state_t;

struct srv_conn {
    srv_worker_t *w;
    struct srv_conn *prev, *next; /* the worker's list */
    int fd;
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* evhttp's, whose close callback is ours */
    conn_state_t state;
    uint64_t since_ms;        /* CONN_READING: the request's first byte */
    http_head_scan_t head;    /* the current request's head, read for NUL */
    srv_conn_close_fn *watch; /* the pipeline's, while a step is pending */
    void *watch_arg;
};

/* The worker of this thread: the input callback only has the bufferevent. */
static _Thread_local srv_worker_t *tl_worker;

static void conn_forget(srv_conn_t *c)
{
    srv_worker_t *w = c->w;

    if ((size_t)c->fd < w->conn_cap && w->conn_by_fd[c->fd] == c)
        w->conn_by_fd[c->fd] = NULL;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conn_list = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    atomic_fetch_sub_explicit(&w->srv->open_conns, 1, memory_order_relaxed);
    metrics_conn_open(-1);
    free(c);
}

/* The entry of `bev`'s connection, or NULL (not adopted).  An entry is
 * removed by its connection's close callback, before the fd is closed, so
 * the entry at `fd` is this live connection's; the pointer check only
 * guards that invariant. */
static srv_conn_t *conn_of(srv_worker_t *w, struct bufferevent *bev)
{
    int fd = bufferevent_getfd(bev);
    srv_conn_t *c;

    if (fd < 0 || (size_t)fd >= w->conn_cap || (c = w->conn_by_fd[fd]) == NULL)
        return NULL;
    return c->bev == bev ? c : NULL;
}

static int grow(srv_worker_t *w, int fd)
{
    size_t cap = w->conn_cap ? w->conn_cap : 256;
    srv_conn_t **v;

    while (cap <= (size_t)fd)
        cap *= 2;
    v = realloc(w->conn_by_fd, cap * sizeof(*v));
    if (v == NULL)
        return -1;
    memset(v + w->conn_cap, 0, (cap - w->conn_cap) * sizeof(*v));
    w->conn_by_fd = v;
    w->conn_cap = cap;
    return 0;
}

/* Scan the bytes of `buf` from `from` (its new data, or all of it). */
static void scan_buffer(srv_conn_t *c, struct evbuffer *buf, size_t from)
{
    struct evbuffer_ptr pos;
    struct evbuffer_iovec v[8];
    int nv;

    if (!c->head.in_head || evbuffer_ptr_set(buf, &pos, from, EVBUFFER_PTR_SET) != 0)
        return;
    nv = evbuffer_peek(buf, -1, &pos, v, 8);
    for (int i = 0; i < nv && i < 8 && c->head.in_head; i++)
        http_head_scan_feed(&c->head, v[i].iov_base, v[i].iov_len);
}

static void head_starts(srv_conn_t *c)
{
    http_head_scan_start(&c->head);
}

static void on_conn_close(struct evhttp_connection *conn, void *arg);

/* First bytes of a connection: count it, or refuse it over the bound. */
static srv_conn_t *adopt(srv_worker_t *w, struct bufferevent *bev, uint64_t now)
{
    int fd = bufferevent_getfd(bev);
    unsigned max = w->cfg->max_connections;
    void *evcon = NULL;
    srv_conn_t *c;

    bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
    if (fd < 0 || evcon == NULL)
        return NULL; /* not evhttp's yet, or no more: leave it alone */
    if (atomic_fetch_add_explicit(&w->srv->open_conns, 1, memory_order_relaxed) >= max) {
        atomic_fetch_sub_explicit(&w->srv->open_conns, 1, memory_order_relaxed);
        metrics_conn_refused();
        shutdown(fd, SHUT_RDWR); /* evhttp reads EOF and frees it */
        return NULL;
    }
    if (((size_t)fd >= w->conn_cap && grow(w, fd) != 0) ||
        (c = calloc(1, sizeof(*c))) == NULL) {
        atomic_fetch_sub_explicit(&w->srv->open_conns, 1, memory_order_relaxed);
        return NULL; /* untracked: evhttp's idle timer still applies */
    }
    metrics_conn_open(1);
    c->w = w;
    c->fd = fd;
    c->bev = bev;
    c->evcon = evcon;
    c->state = CONN_READING;
    c->since_ms = now;
    c->next = w->conn_list;
    if (c->next != NULL)
        c->next->prev = c;
    w->conn_list = c;
    w->conn_by_fd[fd] = c;
    evhttp_connection_set_closecb(c->evcon, on_conn_close, c);
    head_starts(c);
    return c;
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct bufferevent *bev = arg;
    srv_worker_t *w = tl_worker;
    srv_conn_t *c;

    if (info->n_added == 0 || w == NULL)
        return;
    c = conn_of(w, bev);
    if (c == NULL) {
        c = adopt(w, bev, util_mono_ms());
    } else if (c->state == CONN_IDLE) {
        c->state = CONN_READING;
        c->since_ms = util_mono_ms();
        head_starts(c);
    }
    if (c != NULL && c->state == CONN_READING)
        scan_buffer(c, buf, info->orig_size);
}

static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0); /* as evhttp's own */

    tl_worker = arg;
    if (bev != NULL && evbuffer_add_cb(bufferevent_get_input(bev), on_input, bev) == NULL) {
        bufferevent_free(bev);
        return NULL; /* evhttp makes its own: the connection goes untracked */
    }
    return bev;
}

static void on_conn_close(struct evhttp_connection *conn, void *arg)
{
    srv_conn_t *c = arg;
    srv_conn_close_fn *watch = c->watch;
    void *watch_arg = c->watch_arg;

    conn_forget(c);
    if (watch != NULL)
        watch(conn, watch_arg);
}

static srv_conn_t *conn_of_evcon(srv_worker_t *w, struct evhttp_connection *conn)
{
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    srv_conn_t *c = bev != NULL && w->conn_by_fd != NULL ? conn_of(w, bev) : NULL;

    return c != NULL && c->evcon == conn ? c : NULL;
}

static srv_conn_t *conn_of_request(srv_worker_t *w, struct evhttp_request *req)
{
    return conn_of_evcon(w, evhttp_request_get_connection(req));
}

bool srv_conn_request(srv_worker_t *w, struct evhttp_request *req)
{
    srv_conn_t *c = conn_of_request(w, req);
    bool nul;

    if (c == NULL)
        return false;
    nul = c->head.nul;
    c->head.nul = false;
    c->head.in_head = false;
    c->state = CONN_BUSY;
    return nul;
}

void srv_conn_answered(srv_worker_t *w, struct evhttp_request *req)
{
    srv_conn_t *c = conn_of_request(w, req);

    if (c == NULL || c->state == CONN_CUT)
        return;
    /* A pipelined request already read starts its clock now. */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        c->state = CONN_READING;
        c->since_ms = util_mono_ms();
        head_starts(c);
        scan_buffer(c, bufferevent_get_input(c->bev), 0);
    } else {
        c->state = CONN_IDLE;
    }
}

void srv_conn_watch(srv_worker_t *w, struct evhttp_connection *conn, srv_conn_close_fn *fn,
                    void *arg)
{
    srv_conn_t *c = conn_of_evcon(w, conn);

    if (c != NULL) {
        c->watch = fn;
        c->watch_arg = arg;
        return;
    }
    evhttp_connection_set_closecb(conn, fn, arg); /* untracked connection */
}

static void sweep(evutil_socket_t fd, short what, void *arg)
{
    srv_worker_t *w = arg;
    uint64_t now = util_mono_ms(), limit = w->cfg->request_read_timeout_ms;
    srv_conn_t *c, *next;

    (void)fd;
    (void)what;
    for (c = w->conn_list; c != NULL; c = next) {
        next = c->next;
        if (c->state == CONN_READING && now - c->since_ms > limit) {
            c->state = CONN_CUT;
            metrics_read_timeout();
            shutdown(c->fd, SHUT_RDWR);
        }
    }
}

int srv_conns_init(srv_worker_t *w)
{
    static const struct timeval every = {SRV_CONN_SWEEP_MS / 1000,
                                         (SRV_CONN_SWEEP_MS % 1000) * 1000};

    w->conn_sweep_ev = event_new(w->base, -1, EV_PERSIST, sweep, w);
    if (w->conn_sweep_ev == NULL || event_add(w->conn_sweep_ev, &every) != 0)
        return -1;
    evhttp_set_bevcb(w->http, new_bev, w);
    return 0;
}

/* After evhttp_free (every connection is gone: their close callbacks have
 * run; the loop is a guard). */
void srv_conns_clear(srv_worker_t *w)
{
    if (w->conn_sweep_ev != NULL)
        event_free(w->conn_sweep_ev);
    w->conn_sweep_ev = NULL;
    while (w->conn_list != NULL)
        conn_forget(w->conn_list);
    free(w->conn_by_fd);
    w->conn_by_fd = NULL;
    w->conn_cap = 0;
}
