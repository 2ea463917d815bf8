/* proxy.c — proxy mode's upstream client (see srv_proxy.h).
 *
 * Pool: per upstream host:port a list of evhttp_connection objects, each
 * carrying at most one request at a time; idle ones are reused LIFO, and
 * requests beyond the per-upstream limit wait in a queue.
 *
 * libevent 2.1 rules this file relies on:
 *  - an outgoing request is owned and freed by libevent after its callback;
 *    the callback runs with the request (code 0 when the connect failed),
 *    or with NULL after the error callback reported why;
 *  - evhttp_cancel_request() runs the error callback synchronously with
 *    EVREQ_HTTP_REQUEST_CANCEL and never the request callback;
 *  - evhttp_make_request() may run the callbacks before it returns (a
 *    connect that fails at once), so results seen while starting a request
 *    are parked and delivered from the loop;
 *  - an evhttp_connection is never freed inside one of its callbacks: a
 *    finished or failed connection goes back to the idle list (a reset one
 *    reconnects on its next request), and waiters are started from a
 *    separate "kick" event.
 *
 * An answer is only ever the answer to the request that was sent (the
 * upstream connection carries one request at a time, and libevent 2.1
 * would otherwise hand the next client what is left of this one):
 *  - interim answers (1xx other than 101) are read and dropped before
 *    libevent sees them (up_input): libevent takes a 103 Early Hints for the
 *    final answer, and the real one would then answer the next request;
 *  - an answer whose framing is ambiguous (two Content-Length headers,
 *    Content-Length beside Transfer-Encoding, a 101) is a 502, and so is an
 *    answer followed by more bytes than it framed (a body past its
 *    Content-Length, a body to HEAD): in every such case the connection is
 *    closed, never reused.
 *
 * Streaming (srv_proxy_forward_stream): libevent's header callback checks
 * the head (the framing checks above, plus what libevent would only fail
 * once the body is being read: a Content-Length that is not digits or over
 * SRV_PROXY_MAX_RESP_BODY, a Transfer-Encoding other than chunked) and hands
 * it on; its chunk callback hands on each piece of body as it is read.
 * Backpressure is the caller's: srv_proxy_pause() turns EV_READ off on the
 * upstream's bufferevent, so TCP holds the upstream back.  An answer cut
 * short, or abandoned by a client, closes its connection (evhttp resets it;
 * conn_kill frees it): what is left of it can never reach another client.
 *
 * Paused streams never starve the pool: a paused stream holds its
 * connection only while nobody else needs it.  When a request would wait
 * for one of its upstream's connections (the pool at its limit, none idle)
 * and some of them are held by paused streams, the kick takes the slot of
 * the stream paused longest (up->paused is in pause order): its request is
 * cancelled and its connection closed, never reused, and its `done` reports
 * SRV_PROXY_SLOW_CLIENT from the loop; the waiter is started on the freed
 * slot.  No cap on how many connections paused streams hold: without a
 * waiter they take nobody's place, and with one they give way at once.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "tollgate/log.h"
#include "tollgate/http.h"
#include "srv_proxy.h"

#define PROXY_HOST_MAX 255
#define PROXY_BACKSTOP_MS 1000       /* libevent's own inactivity timeout, past ours */
#define PROXY_MAX_TIMEOUT_MS 3600000 /* longer timeouts are clamped */

/* What stands in for an answer up_input refused, for libevent to parse; the
 * connection's `bad` flag makes it a 502. */
static const char bad_answer[] = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n";

struct proxy_upstream;

struct proxy_conn {
    struct proxy_conn *next_all;  /* every connection of the upstream */
    struct proxy_conn *next_idle; /* idle list, LIFO */
    struct proxy_conn *next_dead; /* p->dead: to be freed from the loop */
    struct proxy_upstream *up;
    struct evhttp_connection *evcon;
    struct bufferevent *bev; /* evcon's */
    unsigned served;         /* answers received on it */
    bool awaiting;           /* a request is out, its final answer's head not seen */
    bool gated;              /* libevent's read callback held back (up_input) */
    bool moving;             /* up_input itself changes the input */
    bool bad;                /* up_input refused the answer: 502, then closed */
    size_t interim;          /* bytes of interim answers dropped for this request */
};

TAILQ_HEAD(proxy_reqq, srv_proxy_req);

struct proxy_upstream {
    struct proxy_upstream *next;
    char *name;    /* the upstream string as given */
    char *host;    /* for connecting: no brackets */
    char *hosthdr; /* Host header value */
    uint16_t port;
    struct proxy_conn *all;
    struct proxy_conn *idle;
    unsigned nconn;
    struct proxy_reqq waiters; /* waiting for a connection, FIFO */
    struct proxy_reqq paused;  /* paused streams, longest paused first */
};

struct srv_proxy {
    struct event_base *base;
    struct evdns_base *dns;
    struct proxy_upstream *ups;
    struct proxy_conn *dead;    /* closed for good, freed by the kick */
    struct proxy_reqq inflight; /* requests holding a connection */
    struct event *kick;         /* starts waiters outside libevent callbacks */
    unsigned max_conns;
};

typedef enum { REQ_WAITING, REQ_SENT, REQ_PARKED } proxy_req_state_t;

struct srv_proxy_req {
    TAILQ_ENTRY(srv_proxy_req) link;       /* in up->waiters or p->inflight */
    TAILQ_ENTRY(srv_proxy_req) pause_link; /* in up->paused while paused */
    srv_proxy_t *p;
    struct proxy_upstream *up;
    struct proxy_conn *conn;    /* while REQ_SENT */
    struct evhttp_request *out; /* while REQ_SENT; owned by libevent */
    struct evhttp_request *client;
    struct event *deadline; /* the timeout; also delivers parked results */
    struct evkeyvalq hdrs;  /* outgoing headers, kept for a retry */
    char *target;
    enum evhttp_cmd_type method;
    unsigned timeout_ms;
    srv_proxy_done_fn done;
    void *privdata;
    int error;                 /* last evhttp_request_error, -1 none */
    srv_proxy_status_t parked; /* result while REQ_PARKED */
    proxy_req_state_t state;
    bool starting, retried, in_done;
    /* Streaming (srv_proxy_forward_stream): */
    const srv_proxy_stream_t *ops; /* NULL: the answer is delivered whole */
    bool streaming;                /* the head went to ops->head */
    bool paused;                   /* srv_proxy_pause: not read; in up->paused */
    bool head_refused;             /* proxy_head_cb refused it: `refused` says why */
    srv_proxy_status_t refused;
};

static void proxy_kick_cb(evutil_socket_t fd, short what, void *arg);
static void proxy_deadline_cb(evutil_socket_t fd, short what, void *arg);

/* ---- hop-by-hop headers ---------------------------------------------- */

static bool hdr_is_hop_static(const char *name)
{
    static const char *const hop[] = {"Connection", "Keep-Alive",        "TE",
                                      "Trailer",    "Transfer-Encoding", "Upgrade"};
    size_t i;

    for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (strcasecmp(name, hop[i]) == 0)
            return true;
    return strncasecmp(name, "Proxy-", 6) == 0;
}

/* Does the comma-separated token list `list` contain `name`? */
static bool token_list_has(const char *list, const char *name)
{
    size_t nlen = strlen(name);
    const char *s = list;

    while (*s != '\0') {
        const char *end;
        size_t len;

        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        end = s;
        while (*end != '\0' && *end != ',')
            end++;
        len = (size_t)(end - s);
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len == nlen && len > 0 && strncasecmp(s, name, len) == 0)
            return true;
        s = end;
    }
    return false;
}

/* Is `name` hop-by-hop in a message whose headers are `h`? */
static bool hdr_is_hop(const struct evkeyvalq *h, const char *name)
{
    const struct evkeyval *kv;

    if (hdr_is_hop_static(name))
        return true;
    for (kv = TAILQ_FIRST(h); kv != NULL; kv = TAILQ_NEXT(kv, next)) {
        if (strcasecmp(kv->key, "Connection") == 0 && token_list_has(kv->value, name))
            return true;
    }
    return false;
}

void srv_proxy_copy_headers(const struct evkeyvalq *from, struct evkeyvalq *to)
{
    const struct evkeyval *kv;

    for (kv = TAILQ_FIRST(from); kv != NULL; kv = TAILQ_NEXT(kv, next)) {
        if (!hdr_is_hop(from, kv->key) && evhttp_add_header(to, kv->key, kv->value) != 0)
            log_warn("proxy: dropped header %s", kv->key);
    }
}

/* ---- upstreams --------------------------------------------------------- */

static bool host_chars_ok(const char *s, size_t len, bool bracketed)
{
    size_t i;

    if (len == 0 || len > PROXY_HOST_MAX)
        return false;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (bracketed ? !(isxdigit(c) || c == ':' || c == '.')
                      : !(isalnum(c) || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Split "http://host[:port][/]" into the fields of `up`.  0 or -1. */
static int upstream_parse(const char *s, bool have_dns, struct proxy_upstream *up)
{
    const char *h, *hend, *rest;
    bool br = false;
    unsigned long port = 80;
    char tmp[sizeof(struct in6_addr)];

    if (strncasecmp(s, "http://", 7) != 0)
        return -1;
    h = s + 7;
    if (*h == '[') {
        br = true;
        h++;
        hend = strchr(h, ']');
        if (hend == NULL)
            return -1;
        rest = hend + 1;
    } else {
        hend = h + strcspn(h, ":/");
        rest = hend;
    }
    if (!host_chars_ok(h, (size_t)(hend - h), br))
        return -1;
    if (*rest == ':') {
        char *end;

        if (!isdigit((unsigned char)rest[1]))
            return -1;
        port = strtoul(rest + 1, &end, 10);
        if (port == 0 || port > 65535)
            return -1;
        rest = end;
    }
    if (!(rest[0] == '\0' || (rest[0] == '/' && rest[1] == '\0')))
        return -1;
    up->host = strndup(h, (size_t)(hend - h));
    if (up->host == NULL)
        return -1;
    if ((br && evutil_inet_pton(AF_INET6, up->host, tmp) != 1) ||
        (!have_dns && !br && evutil_inet_pton(AF_INET, up->host, tmp) != 1))
        return -1;
    up->port = (uint16_t)port;
    {
        size_t n = (size_t)(hend - h) + 16;

        up->hosthdr = malloc(n);
        if (up->hosthdr == NULL)
            return -1;
        snprintf(up->hosthdr, n, "%s%s%s", br ? "[" : "", up->host, br ? "]" : "");
        if (port != 80)
            snprintf(up->hosthdr + strlen(up->hosthdr), 8, ":%lu", port);
    }
    return 0;
}

static void upstream_free(struct proxy_upstream *up)
{
    struct proxy_conn *c, *next;

    if (up == NULL)
        return;
    for (c = up->all; c != NULL; c = next) {
        next = c->next_all;
        evhttp_connection_free(c->evcon);
        free(c);
    }
    free(up->name);
    free(up->host);
    free(up->hosthdr);
    free(up);
}

/* The pool entry for `name`, parsed and created on first use. */
static struct proxy_upstream *upstream_get(srv_proxy_t *p, const char *name)
{
    struct proxy_upstream *up;

    for (up = p->ups; up != NULL; up = up->next)
        if (strcmp(up->name, name) == 0)
            return up;
    up = calloc(1, sizeof(*up));
    if (up == NULL)
        return NULL;
    TAILQ_INIT(&up->waiters);
    TAILQ_INIT(&up->paused);
    up->name = strdup(name);
    if (up->name == NULL || upstream_parse(name, p->dns != NULL, up) != 0) {
        log_warn("proxy: unusable upstream \"%.200s\"", name);
        upstream_free(up);
        return NULL;
    }
    up->next = p->ups;
    p->ups = up;
    return up;
}

/* ---- connections ------------------------------------------------------- */

/* An idle connection, a new one, or NULL when the upstream is at its limit. */
static void conn_gate(struct proxy_conn *c, bool on)
{
    if (c->gated != on)
        bufferevent_setwatermark(c->bev, EV_READ, on ? SIZE_MAX : 0, 0);
    c->gated = on;
}

/* Replace what the input holds with bad_answer: libevent parses that as the
 * answer, proxy_done_cb reports a 502 and closes the connection. */
static void up_refuse(struct proxy_conn *c, struct evbuffer *buf)
{
    c->bad = true;
    c->awaiting = false;
    c->moving = true;
    evbuffer_drain(buf, evbuffer_get_length(buf));
    evbuffer_unfreeze(buf, 0);
    evbuffer_add(buf, bad_answer, sizeof(bad_answer) - 1);
    evbuffer_freeze(buf, 0);
    c->moving = false;
    conn_gate(c, false);
}

/* The length of the answer head at the start of `buf` (its blank line
 * included: LF LF or LF CR LF, as libevent reads lines), 0 while it is not
 * whole. */
static size_t head_length(struct evbuffer *buf)
{
    struct evbuffer_ptr crlf = evbuffer_search(buf, "\n\r\n", 3, NULL);
    struct evbuffer_ptr lf = evbuffer_search(buf, "\n\n", 2, NULL);
    ev_ssize_t a = crlf.pos < 0 ? -1 : crlf.pos + 3, b = lf.pos < 0 ? -1 : lf.pos + 2;

    if (a < 0 && b < 0)
        return 0;
    return (size_t)(a < 0 ? b : b < 0 ? a : a < b ? a : b);
}

/* The upstream's bytes, before libevent reads them, while a request waits
 * for its final answer: hold libevent back until an answer's status line is
 * here; drop interim answers (1xx, 101 excepted) whole; refuse a 101 (an
 * upgrade tollgate never asked for) and a status line that is not one. */
static void up_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct proxy_conn *c = arg;
    char line[13];
    size_t head;

    if (info->n_added == 0 || c->moving || !c->awaiting)
        return;
    for (;;) {
        if (evbuffer_copyout(buf, line, 12) < 12) {
            conn_gate(c, true); /* not even a status line yet */
            return;
        }
        line[12] = '\0';
        if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[9]) ||
            !isdigit((unsigned char)line[10]) || !isdigit((unsigned char)line[11]) ||
            strncmp(line + 9, "101", 3) == 0) {
            up_refuse(c, buf);
            return;
        }
        if (line[9] != '1') { /* the final answer: libevent's from here */
            c->awaiting = false;
            conn_gate(c, false);
            return;
        }
        head = head_length(buf);
        if (head == 0 || c->interim + head > SRV_PROXY_MAX_RESP_HEADERS) {
            if (c->interim + evbuffer_get_length(buf) > SRV_PROXY_MAX_RESP_HEADERS)
                up_refuse(c, buf);
            else
                conn_gate(c, true);
            return;
        }
        c->interim += head;
        c->moving = true;
        evbuffer_drain(buf, head);
        c->moving = false;
    }
}

static struct proxy_conn *conn_get(srv_proxy_t *p, struct proxy_upstream *up)
{
    struct proxy_conn *c = up->idle;

    if (c != NULL) {
        up->idle = c->next_idle;
        c->next_idle = NULL;
        return c;
    }
    if (up->nconn >= p->max_conns)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    /* options 0, as libevent's own: evhttp closes the fd */
    c->bev = bufferevent_socket_new(p->base, -1, 0);
    if (c->bev == NULL ||
        evbuffer_add_cb(bufferevent_get_input(c->bev), up_input, c) == NULL)
        goto out_free;
    c->evcon =
        evhttp_connection_base_bufferevent_new(p->base, p->dns, c->bev, up->host, up->port);
    if (c->evcon == NULL)
        goto out_free;
    evhttp_connection_set_max_body_size(c->evcon, SRV_PROXY_MAX_RESP_BODY);
    evhttp_connection_set_max_headers_size(c->evcon, SRV_PROXY_MAX_RESP_HEADERS);
    evhttp_connection_set_retries(c->evcon, 0);
    c->up = up;
    c->next_all = up->all;
    up->all = c;
    up->nconn++;
    return c;

out_free:
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    free(c);
    return NULL;
}

/* Closed for good (an answer it cannot be trusted after): freed from the
 * kick, outside libevent's callbacks, never reused. */
static void conn_kill(srv_proxy_t *p, struct proxy_conn *c)
{
    c->next_dead = p->dead;
    p->dead = c;
    event_active(p->kick, EV_TIMEOUT, 1);
}

static void conn_free_dead(srv_proxy_t *p)
{
    struct proxy_conn *c, **pp;

    while ((c = p->dead) != NULL) {
        p->dead = c->next_dead;
        for (pp = &c->up->all; *pp != NULL; pp = &(*pp)->next_all)
            if (*pp == c) {
                *pp = c->next_all;
                break;
            }
        c->up->nconn--;
        evhttp_connection_free(c->evcon);
        free(c);
    }
}

/* Back to the idle list; wake a waiter (later, from the loop). */
static void conn_put(srv_proxy_t *p, struct proxy_upstream *up, struct proxy_conn *c)
{
    c->next_idle = up->idle;
    up->idle = c;
    if (!TAILQ_EMPTY(&up->waiters))
        event_active(p->kick, EV_TIMEOUT, 1);
}

/* ---- requests ---------------------------------------------------------- */

static bool method_idempotent(enum evhttp_cmd_type m)
{
    return m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD || m == EVHTTP_REQ_PUT ||
           m == EVHTTP_REQ_DELETE || m == EVHTTP_REQ_OPTIONS;
}

static void req_free(srv_proxy_req_t *r)
{
    if (r->deadline != NULL)
        event_free(r->deadline);
    evhttp_clear_headers(&r->hdrs);
    free(r->target);
    free(r);
}

/* No longer paused: out of up->paused (reading is the caller's). */
static void pause_clear(srv_proxy_req_t *r)
{
    if (!r->paused)
        return;
    TAILQ_REMOVE(&r->up->paused, r, pause_link);
    r->paused = false;
}

/* Take `r` out of whichever queue holds it. */
static void req_unlink(srv_proxy_req_t *r)
{
    pause_clear(r);
    if (r->state == REQ_WAITING)
        TAILQ_REMOVE(&r->up->waiters, r, link);
    else if (r->state == REQ_SENT)
        TAILQ_REMOVE(&r->p->inflight, r, link);
    r->state = REQ_PARKED;
}

/* Abort the outgoing request, if any; libevent calls back only into
 * proxy_error_cb (CANCEL), which ignores it. */
static void req_abort(srv_proxy_req_t *r)
{
    struct evhttp_request *out = r->out;

    if (out == NULL)
        return;
    r->out = NULL;
    evhttp_cancel_request(out); /* resets (closes) the connection if it was in use */
    if (r->streaming)
        conn_kill(r->p, r->conn); /* an answer left half read: never reused */
    else
        conn_put(r->p, r->up, r->conn);
    r->conn = NULL;
}

/* Report `status` (with the answer `in` on OK) and free `r`. */
static void req_finish(srv_proxy_req_t *r, srv_proxy_status_t status,
                       struct evhttp_request *in)
{
    srv_proxy_resp_t resp = {.status = status};
    struct evkeyvalq hdrs;

    TAILQ_INIT(&hdrs);
    if (status == SRV_PROXY_OK && !r->streaming) {
        const char *reason = evhttp_request_get_response_code_line(in);

        srv_proxy_copy_headers(evhttp_request_get_input_headers(in), &hdrs);
        resp.code = evhttp_request_get_response_code(in);
        resp.reason = reason != NULL ? reason : "";
        resp.headers = &hdrs;
        if (r->ops == NULL)
            resp.body = evhttp_request_get_input_buffer(in);
    }
    r->in_done = true;
    if (r->ops != NULL)
        r->ops->done(&resp, r->privdata);
    else
        r->done(&resp, r->privdata);
    evhttp_clear_headers(&hdrs);
    req_free(r);
}

static srv_proxy_status_t classify(const srv_proxy_req_t *r, struct evhttp_request *in)
{
    if (in != NULL)
        return evhttp_request_get_response_code(in) != 0 ? SRV_PROXY_OK : SRV_PROXY_CONNECT;
    switch (r->error) {
    case EVREQ_HTTP_TIMEOUT:
        return SRV_PROXY_TIMEOUT;
    case EVREQ_HTTP_EOF:
        return SRV_PROXY_CONNECT;
    default:
        return SRV_PROXY_ERROR;
    }
}

static void proxy_error_cb(enum evhttp_request_error err, void *arg)
{
    srv_proxy_req_t *r = arg;

    /* CANCEL comes only from req_abort, with `r` still ours. */
    r->error = (int)err;
}

/* Requeue `r` at the head of its upstream's waiters for one more try. */
static void req_retry(srv_proxy_req_t *r)
{
    r->retried = true;
    r->error = -1;
    r->state = REQ_WAITING;
    TAILQ_INSERT_HEAD(&r->up->waiters, r, link);
    event_active(r->p->kick, EV_TIMEOUT, 1);
}

/* Is the answer's framing ambiguous: more than one Content-Length, or one
 * beside Transfer-Encoding (RFC 9112 §6.3: a sender must not, and a proxy
 * that forwards it can be made to disagree with its client)? */
static bool framing_bad(struct evhttp_request *in)
{
    const struct evkeyval *kv;
    unsigned ncl = 0, nte = 0;

    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(in), next)
    {
        if (strcasecmp(kv->key, "Content-Length") == 0)
            ncl++;
        else if (strcasecmp(kv->key, "Transfer-Encoding") == 0)
            nte++;
    }
    return ncl > 1 || nte > 1 || (ncl > 0 && nte > 0);
}

/* (Re)start r->deadline: `ms` from now.  0 or -1. */
static int deadline_arm(srv_proxy_req_t *r, unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    return evtimer_add(r->deadline, &tv);
}

/* A Content-Length value libevent will read as such: digits only (it
 * refuses anything else, which after the head would cut the answer). */
static bool clen_parse(const char *v, uint64_t *n)
{
    uint64_t x = 0;

    if (*v == '\0' || strlen(v) > 19)
        return false;
    for (; *v != '\0'; v++) {
        if (!isdigit((unsigned char)*v))
            return false;
        x = x * 10 + (uint64_t)(*v - '0');
    }
    *n = x;
    return true;
}

/* Why a streamed answer's head is refused (SRV_PROXY_OK: it is not):
 * what would otherwise only fail once part of it was sent on.  The size
 * bound is for bodies libevent reads: not to HEAD, nor in a 204 or 304,
 * whose Content-Length describes a body that is not sent. */
static srv_proxy_status_t head_verdict(const srv_proxy_req_t *r, struct evhttp_request *in)
{
    const struct evkeyvalq *h = evhttp_request_get_input_headers(in);
    const char *cl = evhttp_find_header(h, "Content-Length");
    const char *te = evhttp_find_header(h, "Transfer-Encoding");
    const struct proxy_conn *c = r->conn;
    int code = evhttp_request_get_response_code(in);
    bool body = r->method != EVHTTP_REQ_HEAD && code != 204 && code != 304;
    uint64_t n;

    if (c->bad || framing_bad(in))
        return SRV_PROXY_BAD_ANSWER;
    /* libevent de-chunks only a lone "chunked" and would pass any other
     * coding's framing on as body bytes */
    if (te != NULL && strcasecmp(te, "chunked") != 0)
        return SRV_PROXY_BAD_ANSWER;
    if (cl != NULL && !clen_parse(cl, &n))
        return SRV_PROXY_BAD_ANSWER;
    if (cl != NULL && body && n > SRV_PROXY_MAX_RESP_BODY)
        return SRV_PROXY_ERROR; /* oversized: libevent would fail it after the head */
    return SRV_PROXY_OK;
}

/* libevent's header callback (streaming): the final answer's head is here.
 * Refuse it (-1: libevent closes the connection and calls back with NULL)
 * or hand it on; from now the deadline is an idle timeout. */
static int proxy_head_cb(struct evhttp_request *in, void *arg)
{
    srv_proxy_req_t *r = arg;
    srv_proxy_resp_t resp = {.status = SRV_PROXY_OK};
    struct evkeyvalq hdrs;
    const char *reason = evhttp_request_get_response_code_line(in);
    srv_proxy_status_t v = head_verdict(r, in);

    if (v != SRV_PROXY_OK) {
        r->head_refused = true;
        r->refused = v;
        return -1;
    }
    TAILQ_INIT(&hdrs);
    srv_proxy_copy_headers(evhttp_request_get_input_headers(in), &hdrs);
    resp.code = evhttp_request_get_response_code(in);
    resp.reason = reason != NULL ? reason : "";
    resp.headers = &hdrs;
    r->streaming = true;
    (void)deadline_arm(r, r->timeout_ms); /* re-adding a pending timer: no allocation */
    r->ops->head(&resp, r->privdata);
    evhttp_clear_headers(&hdrs);
    return 0;
}

/* libevent's chunk callback (streaming): a piece of the body. */
static void proxy_chunk_cb(struct evhttp_request *in, void *arg)
{
    srv_proxy_req_t *r = arg;

    if (!r->streaming)
        return; /* cannot happen: the head comes first */
    if (!r->paused)
        (void)deadline_arm(r, r->timeout_ms);
    r->ops->body(evhttp_request_get_input_buffer(in), r->privdata);
}

/* libevent's request callback: the answer, or a failure. */
static void proxy_done_cb(struct evhttp_request *in, void *arg)
{
    srv_proxy_req_t *r = arg;
    struct proxy_conn *c = r->conn;
    srv_proxy_status_t st = classify(r, in);
    /* a reused connection the upstream had closed: nothing was answered */
    bool stale = c->served > 0 && in == NULL && r->error == EVREQ_HTTP_EOF &&
                 !r->head_refused && !r->streaming;
    bool reuse = true;

    TAILQ_REMOVE(&r->p->inflight, r, link);
    r->state = REQ_PARKED;
    r->out = NULL;
    r->conn = NULL;
    c->awaiting = false;
    conn_gate(c, false);
    if (r->paused) { /* a failure while paused: the connection is reset anyway */
        bufferevent_enable(c->bev, EV_READ);
        pause_clear(r);
    }
    if (r->head_refused) {
        st = r->refused;
        reuse = false;
    } else if (st == SRV_PROXY_OK && (c->bad || framing_bad(in))) {
        st = SRV_PROXY_BAD_ANSWER;
        reuse = false;
    } else if (r->streaming && st != SRV_PROXY_OK) {
        reuse = false; /* cut short: closed by libevent, never reused */
    }
    /* Bytes past the answer (a body longer than its Content-Length, a body
     * to HEAD) would be read as the next request's answer: delivered as
     * framed, like nginx, but the connection is not used again.  Answers
     * that have no body by definition (to HEAD, 204, 304) close it too: an
     * upstream that sends one anyway may send it a moment later, after the
     * next request went out on the connection.  (A body past its
     * Content-Length that comes later still cannot be told from the next
     * answer: nginx has the same window; docs/security.md.) */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 ||
        r->method == EVHTTP_REQ_HEAD ||
        (in != NULL && (evhttp_request_get_response_code(in) == 204 ||
                        evhttp_request_get_response_code(in) == 304)))
        reuse = false;
    if (st == SRV_PROXY_OK)
        c->served++;
    if (reuse)
        conn_put(r->p, r->up, c);
    else
        conn_kill(r->p, c);
    if (stale && !r->retried && method_idempotent(r->method)) {
        req_retry(r);
        return;
    }
    if (r->starting) {
        /* inside evhttp_make_request(): deliver from the loop */
        r->parked = st;
        event_active(r->deadline, EV_TIMEOUT, 1);
        return;
    }
    req_finish(r, st, in);
}

/* Append a copy of the client's body to `to`; the client's stays as is. */
static int copy_body(struct evhttp_request *client, struct evbuffer *to)
{
    struct evbuffer *from = evhttp_request_get_input_buffer(client);
    size_t off = 0, len = evbuffer_get_length(from);
    struct evbuffer_iovec v[8];
    struct evbuffer_ptr pos;

    while (off < len) {
        int n, i;

        if (evbuffer_ptr_set(from, &pos, off, EVBUFFER_PTR_SET) != 0)
            return -1;
        n = evbuffer_peek(from, -1, &pos, v, 8);
        if (n <= 0)
            return -1;
        for (i = 0; i < n && i < 8 && off < len; i++) {
            size_t k = v[i].iov_len < len - off ? v[i].iov_len : len - off;

            if (evbuffer_add(to, v[i].iov_base, k) != 0)
                return -1;
            off += k;
        }
    }
    return 0;
}

/* Send `r` on `c`.  0, or -1 with `c` back in the pool. */
static int req_start(srv_proxy_req_t *r, struct proxy_conn *c)
{
    struct evhttp_request *out = evhttp_request_new(proxy_done_cb, r);
    struct evkeyvalq *oh;
    struct timeval tv;
    const struct evkeyval *kv;
    int rc;

    if (out == NULL)
        goto out_put_conn;
    evhttp_request_set_error_cb(out, proxy_error_cb);
    if (r->ops != NULL) {
        evhttp_request_set_header_cb(out, proxy_head_cb);
        evhttp_request_set_chunked_cb(out, proxy_chunk_cb);
    }
    oh = evhttp_request_get_output_headers(out);
    for (kv = TAILQ_FIRST(&r->hdrs); kv != NULL; kv = TAILQ_NEXT(kv, next)) {
        if (evhttp_add_header(oh, kv->key, kv->value) != 0)
            goto out_free_req;
    }
    if (copy_body(r->client, evhttp_request_get_output_buffer(out)) != 0)
        goto out_free_req;
    tv.tv_sec = (r->timeout_ms + PROXY_BACKSTOP_MS) / 1000;
    tv.tv_usec = (suseconds_t)((r->timeout_ms + PROXY_BACKSTOP_MS) % 1000) * 1000;
    evhttp_connection_set_timeout_tv(c->evcon, &tv);
    r->error = -1;
    r->conn = c;
    r->out = out;
    c->awaiting = true;
    c->bad = false;
    c->interim = 0;
    r->state = REQ_SENT;
    TAILQ_INSERT_TAIL(&r->p->inflight, r, link);
    r->starting = true;
    rc = evhttp_make_request(c->evcon, out, r->method, r->target);
    r->starting = false;
    if (rc != 0 && r->state == REQ_SENT) {
        /* libevent freed `out` without calling back */
        TAILQ_REMOVE(&r->p->inflight, r, link);
        r->state = REQ_PARKED;
        r->out = NULL;
        r->conn = NULL;
        goto out_put_conn;
    }
    return 0;

out_free_req:
    evhttp_request_free(out);
out_put_conn:
    conn_put(r->p, r->up, c);
    return -1;
}

/* A request waits and `up` is at its limit: give it the slot of the stream
 * paused longest.  That one is cut short (SRV_PROXY_SLOW_CLIENT, delivered
 * from the loop) and its connection closed and freed at once.  False when
 * no stream of `up` is paused.  Only from the kick, outside libevent's
 * callbacks. */
static bool evict_paused(srv_proxy_t *p, struct proxy_upstream *up)
{
    srv_proxy_req_t *v = TAILQ_FIRST(&up->paused);

    if (v == NULL || up->nconn < p->max_conns)
        return false;
    req_abort(v); /* resets its connection and queues it on p->dead */
    req_unlink(v);
    v->parked = SRV_PROXY_SLOW_CLIENT;
    event_active(v->deadline, EV_TIMEOUT, 1);
    conn_free_dead(p);
    return true;
}

/* Start waiters of every upstream while connections are available, taking
 * those of paused streams when none are. */
static void proxy_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    srv_proxy_t *p = arg;
    struct proxy_upstream *up;

    (void)fd;
    (void)what;
    conn_free_dead(p);
    for (up = p->ups; up != NULL; up = up->next) {
        srv_proxy_req_t *r;
        struct proxy_conn *c;

        while ((r = TAILQ_FIRST(&up->waiters)) != NULL) {
            c = conn_get(p, up);
            if (c == NULL) {
                if (evict_paused(p, up))
                    continue;
                break;
            }
            TAILQ_REMOVE(&up->waiters, r, link);
            r->state = REQ_PARKED;
            if (req_start(r, c) != 0)
                req_finish(r, SRV_PROXY_ERROR, NULL);
        }
    }
}

/* Timeout, or delivery of a result parked by proxy_done_cb. */
static void proxy_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    srv_proxy_req_t *r = arg;
    srv_proxy_status_t st = SRV_PROXY_TIMEOUT;

    (void)fd;
    (void)what;
    if (r->state == REQ_PARKED)
        st = r->parked;
    req_abort(r);
    req_unlink(r);
    req_finish(r, st, NULL);
}

/* ---- outgoing headers -------------------------------------------------- */

/* Is inbound header kv not to be forwarded?  Besides hop-by-hop and framing
 * headers: anything spelled like a header tollgate sets or vouches for
 * ('-', '_', '.' alike: a WSGI server merges X_Auth_Scopes into
 * X-Auth-Scopes), a proxy's headers from a peer outside trusted_proxies, and
 * with hide_credentials the credential itself. */
static bool hdr_skip_request(const struct evkeyvalq *h, const struct evkeyval *kv,
                             unsigned flags)
{
    const char *name = kv->key;
    bool variant;

    if (hdr_is_hop(h, name) || strcasecmp(name, "Host") == 0 ||
        strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Expect") == 0 ||
        http_hdr_method_override(name))
        return true; /* the upstream executes the method tollgate decided on */
    switch (http_hdr_class(name, &variant)) {
    case HTTP_HDR_IDENTITY:
    case HTTP_HDR_VOUCHED:
        return true; /* X-Forwarded-For is rebuilt by hdr_add_xff() */
    case HTTP_HDR_FORWARDER:
        return variant || !(flags & SRV_PROXY_PEER_TRUSTED);
    case HTTP_HDR_PLAIN:
    default:
        break;
    }
    if (flags & SRV_PROXY_HIDE_CREDENTIALS)
        return strcasecmp(name, "X-API-Key") == 0 ||
               (strcasecmp(name, "Authorization") == 0 &&
                strncasecmp(kv->value, "Bearer ", 7) == 0);
    return false;
}

static void hdr_remove_all(struct evkeyvalq *h, const char *name)
{
    while (evhttp_remove_header(h, name) == 0)
        ;
}

/* X-Forwarded-For: the client's values joined, then `ip`. */
static int hdr_add_xff(const struct evkeyvalq *in, struct evkeyvalq *out, const char *ip)
{
    struct evbuffer *b = evbuffer_new();
    const struct evkeyval *kv;
    int rc = -1;

    if (b == NULL)
        return -1;
    for (kv = TAILQ_FIRST(in); kv != NULL; kv = TAILQ_NEXT(kv, next)) {
        if (strcasecmp(kv->key, "X-Forwarded-For") == 0 && kv->value[0] != '\0')
            evbuffer_add_printf(b, "%s%s", evbuffer_get_length(b) ? ", " : "", kv->value);
    }
    if (ip != NULL && ip[0] != '\0')
        evbuffer_add_printf(b, "%s%s", evbuffer_get_length(b) ? ", " : "", ip);
    if (evbuffer_get_length(b) == 0) {
        rc = 0;
        goto out_free_buf;
    }
    if (evbuffer_add(b, "", 1) != 0)
        goto out_free_buf;
    rc = evhttp_add_header(out, "X-Forwarded-For", (const char *)evbuffer_pullup(b, -1));
out_free_buf:
    evbuffer_free(b);
    return rc;
}

/* Fill r->hdrs from the client's headers and the caller's.  0 or -1. */
static int build_headers(srv_proxy_req_t *r, const srv_proxy_hdr_t *add, size_t nadd,
                         const char *client_ip, unsigned flags)
{
    const struct evkeyvalq *in = evhttp_request_get_input_headers(r->client);
    const struct evkeyval *kv;
    const char *chost = evhttp_find_header(in, "Host");
    size_t blen = evbuffer_get_length(evhttp_request_get_input_buffer(r->client));
    size_t i;

    for (kv = TAILQ_FIRST(in); kv != NULL; kv = TAILQ_NEXT(kv, next)) {
        if (!hdr_skip_request(in, kv, flags) &&
            evhttp_add_header(&r->hdrs, kv->key, kv->value) != 0)
            return -1;
    }
    if (evhttp_add_header(&r->hdrs, "Host", r->up->hosthdr) != 0)
        return -1;
    if (blen > 0 || r->method == EVHTTP_REQ_POST || r->method == EVHTTP_REQ_PUT ||
        r->method == EVHTTP_REQ_PATCH) {
        char len[24];

        snprintf(len, sizeof(len), "%zu", blen);
        if (evhttp_add_header(&r->hdrs, "Content-Length", len) != 0)
            return -1;
    }
    for (i = 0; i < nadd; i++) {
        if (add[i].name == NULL || add[i].value == NULL)
            return -1;
        hdr_remove_all(&r->hdrs, add[i].name);
        if (evhttp_add_header(&r->hdrs, add[i].name, add[i].value) != 0)
            return -1;
    }
    if (evhttp_find_header(&r->hdrs, "X-Forwarded-For") == NULL &&
        hdr_add_xff(in, &r->hdrs, client_ip) != 0)
        return -1;
    if (evhttp_find_header(&r->hdrs, "X-Forwarded-Proto") == NULL &&
        evhttp_add_header(&r->hdrs, "X-Forwarded-Proto", "http") != 0)
        return -1;
    if (chost != NULL && evhttp_find_header(&r->hdrs, "X-Forwarded-Host") == NULL &&
        evhttp_add_header(&r->hdrs, "X-Forwarded-Host", chost) != 0)
        return -1;
    return 0;
}

/* ---- public ------------------------------------------------------------ */

srv_proxy_t *srv_proxy_new(struct event_base *base, struct evdns_base *dns)
{
    srv_proxy_t *p;

    if (base == NULL)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->base = base;
    p->dns = dns;
    p->max_conns = SRV_PROXY_MAX_CONNS;
    TAILQ_INIT(&p->inflight);
    p->kick = event_new(base, -1, 0, proxy_kick_cb, p);
    if (p->kick == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

void srv_proxy_set_max_conns(srv_proxy_t *p, unsigned n)
{
    p->max_conns = n > 0 ? n : 1;
}

void srv_proxy_free(srv_proxy_t *p)
{
    struct proxy_upstream *up, *next;
    srv_proxy_req_t *r;

    if (p == NULL)
        return;
    while ((r = TAILQ_FIRST(&p->inflight)) != NULL)
        srv_proxy_cancel(r);
    for (up = p->ups; up != NULL; up = next) {
        next = up->next;
        while ((r = TAILQ_FIRST(&up->waiters)) != NULL)
            srv_proxy_cancel(r);
        upstream_free(up);
    }
    event_free(p->kick);
    free(p);
}

static bool target_ok(const char *t)
{
    if (t[0] != '/')
        return false;
    for (; *t != '\0'; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t == 0x7f)
            return false;
    return true;
}

/* srv_proxy_forward and _stream: exactly one of `done` and `ops` is set. */
static srv_proxy_req_t *forward(srv_proxy_t *p, struct evhttp_request *client,
                                const char *upstream, const char *target,
                                const srv_proxy_hdr_t *add, size_t nadd,
                                const char *client_ip, unsigned flags, unsigned timeout_ms,
                                srv_proxy_done_fn done, const srv_proxy_stream_t *ops,
                                void *privdata)
{
    srv_proxy_req_t *r;
    struct proxy_upstream *up;
    struct proxy_conn *c;
    enum evhttp_cmd_type m;

    if (p == NULL || client == NULL || upstream == NULL || target == NULL ||
        timeout_ms == 0 || (done == NULL) == (ops == NULL) || !target_ok(target))
        return NULL;
    if (ops != NULL && (ops->head == NULL || ops->body == NULL || ops->done == NULL))
        return NULL;
    m = evhttp_request_get_command(client);
    if (m == EVHTTP_REQ_CONNECT || m == EVHTTP_REQ_TRACE)
        return NULL;
    up = upstream_get(p, upstream);
    if (up == NULL)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    TAILQ_INIT(&r->hdrs);
    r->p = p;
    r->up = up;
    r->client = client;
    r->method = m;
    r->timeout_ms = timeout_ms;
    if (r->timeout_ms > PROXY_MAX_TIMEOUT_MS)
        r->timeout_ms = PROXY_MAX_TIMEOUT_MS;
    r->done = done;
    r->ops = ops;
    r->privdata = privdata;
    r->error = -1;
    r->state = REQ_PARKED;
    r->target = strdup(target);
    r->deadline = evtimer_new(p->base, proxy_deadline_cb, r);
    if (r->target == NULL || r->deadline == NULL ||
        build_headers(r, add, nadd, client_ip, flags) != 0)
        goto out_free_req;
    if (deadline_arm(r, r->timeout_ms) != 0)
        goto out_free_req;
    c = conn_get(p, up);
    if (c == NULL) {
        r->state = REQ_WAITING;
        TAILQ_INSERT_TAIL(&up->waiters, r, link);
        if (!TAILQ_EMPTY(&up->paused))
            event_active(p->kick, EV_TIMEOUT, 1); /* takes a paused stream's slot */
        return r;
    }
    if (req_start(r, c) != 0)
        goto out_free_req;
    return r;

out_free_req:
    req_free(r);
    return NULL;
}

srv_proxy_req_t *srv_proxy_forward(srv_proxy_t *p, struct evhttp_request *client,
                                   const char *upstream, const char *target,
                                   const srv_proxy_hdr_t *add, size_t nadd,
                                   const char *client_ip, unsigned flags,
                                   unsigned timeout_ms, srv_proxy_done_fn done,
                                   void *privdata)
{
    return forward(p, client, upstream, target, add, nadd, client_ip, flags, timeout_ms,
                   done, NULL, privdata);
}

srv_proxy_req_t *srv_proxy_forward_stream(srv_proxy_t *p, struct evhttp_request *client,
                                          const char *upstream, const char *target,
                                          const srv_proxy_hdr_t *add, size_t nadd,
                                          const char *client_ip, unsigned flags,
                                          unsigned timeout_ms,
                                          const srv_proxy_stream_t *ops, void *privdata)
{
    return forward(p, client, upstream, target, add, nadd, client_ip, flags, timeout_ms,
                   NULL, ops, privdata);
}

void srv_proxy_pause(srv_proxy_req_t *r, int on)
{
    if (r == NULL || !r->streaming || r->state != REQ_SENT || r->paused == (on != 0))
        return;
    if (on) {
        r->paused = true;
        TAILQ_INSERT_TAIL(&r->up->paused, r, pause_link);
        bufferevent_disable(r->conn->bev, EV_READ);
        evtimer_del(r->deadline);
        if (!TAILQ_EMPTY(&r->up->waiters))
            event_active(r->p->kick, EV_TIMEOUT, 1); /* a waiter takes this slot */
    } else {
        pause_clear(r);
        bufferevent_enable(r->conn->bev, EV_READ);
        (void)deadline_arm(r, r->timeout_ms);
    }
}

void srv_proxy_cancel(srv_proxy_req_t *r)
{
    if (r == NULL || r->in_done)
        return;
    req_abort(r);
    req_unlink(r);
    req_free(r);
}
