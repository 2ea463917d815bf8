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
 *   connection (an entry indexed by fd, with the socket's inode), the first
 *   read of each later request starts its clock.
 * - once a request is complete (srv_conn_request), the connection gets a
 *   close callback, so its end is exact; the pipeline's own "client went
 *   away" watch goes through the entry (srv_conn_watch).
 * - a connection that goes before its first request is complete has no
 *   close callback: once a second, the sweep checks with fstat() that the fd
 *   still holds the socket it adopted, and forgets the entry when not.
 *
 * The sweep also cuts a connection whose request has been arriving for
 * longer than request_read_timeout_ms: shutdown(fd), so evhttp reads EOF and
 * frees it as for a client that left.  A connection is only ever shut down
 * after fstat() showed the same socket inode: an fd number is reused at once
 * after a close, and only this worker's thread closes this worker's
 * connections, so a matching inode is the same, live connection.
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
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

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
    ino_t ino;
    struct bufferevent *bev;
    conn_state_t state;
    uint64_t since_ms;        /* CONN_READING: the request's first byte */
    bool has_closecb;         /* its end will be reported */
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

/* The entry of `bev`'s connection, or NULL (not adopted, or an entry left
 * by an earlier connection on the same fd, which is then forgotten). */
static srv_conn_t *conn_of(srv_worker_t *w, struct bufferevent *bev)
{
    int fd = bufferevent_getfd(bev);
    srv_conn_t *c;

    if (fd < 0 || (size_t)fd >= w->conn_cap || (c = w->conn_by_fd[fd]) == NULL)
        return NULL;
    if (c->bev != bev) {
        conn_forget(c);
        return NULL;
    }
    return c;
}

static bool same_socket(const srv_conn_t *c)
{
    struct stat st;

    return fstat(c->fd, &st) == 0 && st.st_ino == c->ino;
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

/* First bytes of a connection: count it, or refuse it over the bound. */
static srv_conn_t *adopt(srv_worker_t *w, struct bufferevent *bev, uint64_t now)
{
    int fd = bufferevent_getfd(bev);
    unsigned max = w->cfg->max_connections;
    struct stat st;
    srv_conn_t *c;

    if (fd < 0)
        return NULL;
    if (atomic_fetch_add_explicit(&w->srv->open_conns, 1, memory_order_relaxed) >= max) {
        atomic_fetch_sub_explicit(&w->srv->open_conns, 1, memory_order_relaxed);
        metrics_conn_refused();
        shutdown(fd, SHUT_RDWR); /* evhttp reads EOF and frees it */
        return NULL;
    }
    if (((size_t)fd >= w->conn_cap && grow(w, fd) != 0) || fstat(fd, &st) != 0 ||
        (c = calloc(1, sizeof(*c))) == NULL) {
        atomic_fetch_sub_explicit(&w->srv->open_conns, 1, memory_order_relaxed);
        return NULL; /* untracked: evhttp's idle timer still applies */
    }
    metrics_conn_open(1);
    c->w = w;
    c->fd = fd;
    c->ino = st.st_ino;
    c->bev = bev;
    c->state = CONN_READING;
    c->since_ms = now;
    c->next = w->conn_list;
    if (c->next != NULL)
        c->next->prev = c;
    w->conn_list = c;
    w->conn_by_fd[fd] = c;
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

static srv_conn_t *conn_of_request(srv_worker_t *w, struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;

    return bev != NULL && w->conn_by_fd != NULL ? conn_of(w, bev) : NULL;
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
    if (!c->has_closecb) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_conn_close, c);
        c->has_closecb = true;
    }
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
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
    srv_conn_t *c = bev != NULL && w->conn_by_fd != NULL ? conn_of(w, bev) : NULL;

    if (c != NULL && c->has_closecb) {
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
        /* Without a close callback its end is not reported: look. */
        if (!c->has_closecb && !same_socket(c)) {
            conn_forget(c);
            continue;
        }
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

/* After evhttp_free (every connection is gone, without close callbacks for
 * those that never had one). */
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
