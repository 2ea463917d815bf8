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
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "tollgate/http.h"
#include "tollgate/metrics.h"
#include "tollgate/rl_policy.h"
#include "tollgate/util_clock.h"
#include "srv_process.h"

#define SRV_CONN_SWEEP_MS 1000
/* After a 413 or 431, the client's further bytes are read and dropped for
 * this long at most (nginx: lingering_time 30 s, lingering_timeout 5 s), so
 * that closing with unread data does not send an RST that makes the
 * client's kernel drop the answer before it is read. */
#define SRV_CONN_LINGER_MS 5000
#define SRV_CONN_LINGER_IDLE_MS 2000

/* What a refused head is replaced with, for evhttp to hand to the pipeline
 * (srv_conn_request says it is a stand-in); Connection: close makes evhttp
 * close after the answer. */
static const char stand_in[] = "GET / HTTP/1.1\r\nConnection: close\r\n\r\n";

typedef enum {
    CONN_READING,  /* a request is arriving: its clock runs */
    CONN_REFUSING, /* its head was replaced by stand_in, not yet handed over */
    CONN_BUSY,     /* complete, being answered */
    CONN_IDLE,     /* kept alive between requests */
    CONN_CUT,      /* shut down; evhttp has not freed it yet */
    CONN_LINGER,   /* evhttp is done; `fd` is our dup, read and dropped */
} conn_state_t;

struct srv_conn {
    srv_worker_t *w;
    struct srv_conn *prev, *next; /* the worker's list */
    int fd;
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* evhttp's, whose close callback is ours */
    conn_state_t state;
    uint64_t since_ms;          /* CONN_READING: the request's first byte */
    http_head_scan_t head;      /* the current request's head, read for NUL */
    bool gated;                 /* evhttp's read callback waits for a whole head */
    bool head_eaten;            /* evhttp may have read some of this head (no `held`) */
    bool capped;                /* a read high watermark holds the client back */
    bool draining;              /* conn.c itself moves the input's bytes */
    struct evbuffer *held;      /* a pipelined head, kept from evhttp until whole */
    srv_conn_verdict_t refused; /* a 413/431 stand-in is on its way */
    bool writing;               /* an answer is counted in w->unflushed */
    srv_conn_close_fn *watch;   /* the pipeline's, while a step is pending */
    void *watch_arg;
    struct event *linger_ev; /* CONN_LINGER */
    uint64_t linger_until_ms;
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
    if (c->held != NULL)
        evbuffer_free(c->held);
    if (c->state == CONN_LINGER) {
        event_free(c->linger_ev);
        close(c->fd);
    }
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
    size_t total = evbuffer_get_length(buf);
    struct evbuffer_ptr pos;
    struct evbuffer_iovec v[8];
    int nv;

    while (c->head.in_head && from < total) {
        if (evbuffer_ptr_set(buf, &pos, from, EVBUFFER_PTR_SET) != 0)
            return;
        nv = evbuffer_peek(buf, -1, &pos, v, 8);
        if (nv <= 0)
            return;
        for (int i = 0; i < nv && i < 8 && c->head.in_head; i++) {
            http_head_scan_feed(&c->head, v[i].iov_base, v[i].iov_len);
            from += v[i].iov_len;
        }
    }
}

/* While a request is being answered, the most its connection's input holds
 * before reading pauses (a read high watermark).  evhttp keeps reading then
 * (to see a close) but parses nothing, so without it a client that sends
 * while its answer is written had 1.5 GiB buffered in 3 s.  Not set while a
 * request arrives: a head is refused past max_header_bytes and evhttp moves
 * a body out as it reads it; and a high watermark costs an event_add on
 * every change of the buffer (libevent's bufferevent_inbuf_wm_cb). */
static size_t read_cap(const srv_worker_t *w)
{
    return w->cfg->max_header_bytes + 65536;
}

static void set_marks(srv_conn_t *c, bool gated, bool capped)
{
    if (c->gated != gated || c->capped != capped)
        bufferevent_setwatermark(c->bev, EV_READ, gated ? SIZE_MAX : 0,
                                 capped ? read_cap(c->w) : 0);
    c->gated = gated;
    c->capped = capped;
}

/* While a head is incomplete, evhttp's read callback is held back (a low
 * watermark no buffer reaches), so evhttp parses a head only once it is
 * whole and within bounds, and a refused head is still whole in the buffer
 * to be replaced.  Read callbacks evhttp runs itself (a pipelined request
 * behind an answer) do not look at watermarks: such a head waits in `held`. */
static void gate(srv_conn_t *c, bool on)
{
    set_marks(c, on, c->capped);
}

static void head_starts(srv_conn_t *c)
{
    http_head_scan_start(&c->head);
    c->head_eaten = false;
}

static void drain(srv_conn_t *c, struct evbuffer *buf)
{
    c->draining = true;
    evbuffer_drain(buf, evbuffer_get_length(buf));
    if (c->held != NULL)
        evbuffer_drain(c->held, evbuffer_get_length(c->held));
    c->draining = false;
}

/* A pipelined head that is not whole when the answer before it is sent:
 * evhttp will read the input once that answer is written, whatever the
 * gate says, so its bytes (and those that follow until the head is whole)
 * wait in `held`, out of evhttp's sight.  -1: no memory (gated only). */
static int hold(srv_conn_t *c, struct evbuffer *buf)
{
    if (c->held == NULL && (c->held = evbuffer_new()) == NULL)
        return -1;
    c->draining = true;
    evbuffer_add_buffer(c->held, buf);
    c->draining = false;
    return 0;
}

/* The held head is whole: give it back, in front of what came since. */
static void unhold(srv_conn_t *c, struct evbuffer *buf)
{
    c->draining = true;
    evbuffer_prepend_buffer(buf, c->held);
    c->draining = false;
}

/* A head over max_header_bytes, or declaring a body over max_body_bytes:
 * replace it (and whatever followed) with the stand-in request, which the
 * pipeline answers 431 / 413 with the envelope, the request id, an audit
 * line and Connection: close.  When evhttp has read part of the head
 * already, its own limits answer (plain HTML), as before. */
static void refuse(srv_conn_t *c, struct evbuffer *buf, srv_conn_verdict_t v)
{
    if (c->head_eaten) {
        gate(c, false);
        return;
    }
    c->refused = v;
    c->state = CONN_REFUSING;
    drain(c, buf);
    c->draining = true;
    evbuffer_unfreeze(buf, 0); /* the input's end is frozen outside reads */
    evbuffer_add(buf, stand_in, sizeof(stand_in) - 1);
    evbuffer_freeze(buf, 0);
    c->draining = false;
    gate(c, false);
}

/* A method evhttp would answer with its own 501 (it parses only the
 * registered ones it knows): an extension method (PURGE), another spelling
 * ("get") or CONNECT.  The pipeline answers it 405 with Allow instead, like
 * a known method allowed_methods leaves out. */
static bool method_unknown(const http_head_scan_t *h)
{
    unsigned bit;

    if (h->mstate != HTTP_HEAD_METHOD_TOKEN)
        return false; /* a malformed request line: evhttp's 400 */
    bit = h->mlen < HTTP_HEAD_METHOD_MAX ? rl_method_bit(h->method) : 0;
    return bit == 0 || bit == RL_METHOD_CONNECT;
}

/* The head read so far: within bounds, or refused. */
static void judge(srv_conn_t *c, struct evbuffer *buf)
{
    const cfg_t *cfg = c->w->cfg;
    bool held = c->held != NULL && evbuffer_get_length(c->held) > 0;

    if (c->head.len > cfg->max_header_bytes)
        refuse(c, buf, SRV_CONN_HEAD_TOO_LARGE);
    else if (!c->head.in_head && c->head.has_clen && c->head.clen > cfg->max_body_bytes)
        refuse(c, buf, SRV_CONN_BODY_TOO_LARGE);
    else if (!c->head.in_head && method_unknown(&c->head))
        refuse(c, buf, SRV_CONN_METHOD);
    else if (held && c->head.in_head)
        (void)hold(c, buf); /* appends to an existing buffer: cannot fail */
    else if (held)
        unhold(c, buf);
    gate(c, c->state == CONN_READING && c->head.in_head);
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
        /* evhttp must not parse what it has read (its read callback runs
         * right after this one): it reads EOF next and frees it */
        bufferevent_setwatermark(bev, EV_READ, SIZE_MAX, 0);
        evbuffer_drain(bufferevent_get_input(bev),
                       evbuffer_get_length(bufferevent_get_input(bev)));
        shutdown(fd, SHUT_RDWR);
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

    if (w == NULL || info->n_added == 0)
        return;
    c = conn_of(w, bev);
    if (c != NULL && c->draining)
        return; /* conn.c's own move */
    if (c == NULL) {
        if ((c = adopt(w, bev, util_mono_ms())) == NULL)
            return;
    } else if (c->refused != SRV_CONN_OK) {
        if (c->state != CONN_REFUSING) /* answered or answering: drop the rest */
            drain(c, buf);
        return;
    } else if (c->state == CONN_IDLE) {
        c->state = CONN_READING;
        c->since_ms = util_mono_ms();
        head_starts(c);
    }
    if (c->state == CONN_READING) {
        scan_buffer(c, buf, info->orig_size);
        judge(c, buf);
    }
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

static void linger_read(evutil_socket_t fd, short what, void *arg)
{
    srv_conn_t *c = arg;
    uint64_t now = util_mono_ms(), left;
    char sink[16384];
    ssize_t n = -1;

    for (int i = 0; i < 16 && (what & EV_READ); i++)
        if ((n = recv(fd, sink, sizeof(sink), 0)) <= 0)
            break;
    if ((what & EV_TIMEOUT) || n == 0 ||
        (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
        now >= c->linger_until_ms) {
        conn_forget(c);
        return;
    }
    left = c->linger_until_ms - now;
    if (left > SRV_CONN_LINGER_IDLE_MS)
        left = SRV_CONN_LINGER_IDLE_MS;
    event_add(c->linger_ev,
              &(struct timeval){(time_t)(left / 1000), (long)(left % 1000) * 1000});
}

/* evhttp is freeing a connection it answered 413/431 on, and is about to
 * close its fd: keep the socket open on a dup of ours and read what the
 * client still sends, until it closes or SRV_CONN_LINGER_MS pass.  The
 * entry stays counted (max_connections) until then.  False: not done. */
static bool linger(srv_conn_t *c)
{
    srv_worker_t *w = c->w;
    int fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);

    if (fd < 0)
        return false;
    c->linger_ev = event_new(w->base, fd, EV_READ, linger_read, c);
    if (c->linger_ev == NULL ||
        event_add(c->linger_ev, &(struct timeval){SRV_CONN_LINGER_IDLE_MS / 1000, 0}) !=
            0) {
        if (c->linger_ev != NULL)
            event_free(c->linger_ev);
        close(fd);
        return false;
    }
    if ((size_t)c->fd < w->conn_cap && w->conn_by_fd[c->fd] == c)
        w->conn_by_fd[c->fd] = NULL;
    shutdown(fd, SHUT_WR); /* the answer is in the socket: FIN after it */
    c->fd = fd;
    c->bev = NULL;
    c->evcon = NULL;
    c->state = CONN_LINGER;
    c->linger_until_ms = util_mono_ms() + SRV_CONN_LINGER_MS;
    return true;
}

static void on_conn_close(struct evhttp_connection *conn, void *arg)
{
    srv_conn_t *c = arg;
    srv_conn_close_fn *watch = c->watch;
    void *watch_arg = c->watch_arg;

    if (c->writing) { /* it went before its answer was written */
        c->writing = false;
        c->w->unflushed--;
    }
    if (c->refused == SRV_CONN_OK || !linger(c))
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

void srv_conn_method(srv_worker_t *w, struct evhttp_request *req, char *out, size_t len)
{
    srv_conn_t *c = conn_of_request(w, req);

    if (len == 0)
        return;
    snprintf(out, len, "%s", c != NULL ? c->head.method : "");
}

srv_conn_verdict_t srv_conn_request(srv_worker_t *w, struct evhttp_request *req)
{
    srv_conn_t *c = conn_of_request(w, req);
    srv_conn_verdict_t v;

    if (c == NULL)
        return SRV_CONN_OK;
    v = c->refused != SRV_CONN_OK ? c->refused : c->head.nul ? SRV_CONN_NUL : SRV_CONN_OK;
    c->head.nul = false;
    c->head.in_head = false;
    c->state = CONN_BUSY;
    if (c->refused != SRV_CONN_OK) /* what came after the stand-in */
        drain(c, bufferevent_get_input(c->bev));
    set_marks(c, false, true); /* read_cap: evhttp parses nothing until answered */
    return v;
}

void srv_conn_writing(srv_worker_t *w, struct evhttp_request *req)
{
    srv_conn_t *c = conn_of_request(w, req);

    w->unflushed++;
    if (c != NULL)
        c->writing = true;
}

void srv_conn_answered(srv_worker_t *w, struct evhttp_request *req)
{
    srv_conn_t *c = conn_of_request(w, req);

    if (c == NULL || c->writing) /* untracked connections: counted all the same */
        w->unflushed--;
    if (c != NULL)
        c->writing = false;

    if (c == NULL || c->state == CONN_CUT || c->refused != SRV_CONN_OK)
        return;
    set_marks(c, c->gated, false);
    /* A pipelined request already read starts its clock now; evhttp reads
     * it once this answer is written, whatever our gate says. */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        c->state = CONN_READING;
        c->since_ms = util_mono_ms();
        head_starts(c);
        scan_buffer(c, bufferevent_get_input(c->bev), 0);
        judge(c, bufferevent_get_input(c->bev));
        /* without memory for `held`, evhttp may read part of it: its own
         * limits answer then (refuse()) */
        if (c->state == CONN_READING && c->head.in_head &&
            hold(c, bufferevent_get_input(c->bev)) != 0)
            c->head_eaten = true;
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
