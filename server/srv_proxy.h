/* srv_proxy.h — proxy mode's upstream client: forwards an allowed client
 * request to its route's upstream over a per-thread pool of keep-alive
 * connections and hands the upstream's answer back through a callback.
 *
 * One srv_proxy_t per worker thread, used only on that thread's event_base.
 * Everything is asynchronous: `done` always runs later from the event loop,
 * never before srv_proxy_forward() returns, and exactly once unless the
 * request is cancelled.  Plain http:// upstreams only (no TLS yet).
 */
#ifndef TOLLGATE_SRV_PROXY_H
#define TOLLGATE_SRV_PROXY_H

#include <stddef.h>

struct event_base;
struct evdns_base;
struct evhttp_request;
struct evkeyvalq;
struct evbuffer;

#define SRV_PROXY_MAX_CONNS 256                /* default, per upstream */
#define SRV_PROXY_MAX_RESP_BODY (64u << 20)    /* bytes; larger -> ERROR */
#define SRV_PROXY_MAX_RESP_HEADERS (64u << 10) /* bytes; larger -> ERROR */

typedef struct srv_proxy srv_proxy_t;
typedef struct srv_proxy_req srv_proxy_req_t;

/* srv_proxy_forward() flags. */
#define SRV_PROXY_PEER_TRUSTED 1u     /* the client is in trusted_proxies */
#define SRV_PROXY_HIDE_CREDENTIALS 2u /* drop X-API-Key, Authorization: Bearer */

typedef struct srv_proxy_hdr {
    const char *name, *value;
} srv_proxy_hdr_t;

typedef enum {
    SRV_PROXY_OK,         /* the upstream answered (any status code) */
    SRV_PROXY_TIMEOUT,    /* no complete answer within timeout_ms (-> 504) */
    SRV_PROXY_CONNECT,    /* refused, reset or closed before an answer (-> 502) */
    SRV_PROXY_ERROR,      /* bad or oversized answer, other failures (-> 502) */
    SRV_PROXY_BAD_ANSWER, /* ambiguous framing, an unasked-for 101 (-> 502); closed */
    SRV_PROXY_SLOW_CLIENT /* streamed, paused: its connection went to a waiting request */
} srv_proxy_status_t;

/* The outcome of one forward.  On SRV_PROXY_OK: the upstream's status `code`
 * and `reason`, its `headers` with the hop-by-hop ones already removed, and
 * its whole `body`; otherwise code is 0 and the pointers NULL.  Everything is
 * valid only during the callback; the callee may drain `body` (e.g. with
 * evbuffer_add_buffer into its reply). */
typedef struct srv_proxy_resp {
    srv_proxy_status_t status;
    int code;
    const char *reason;
    struct evkeyvalq *headers;
    struct evbuffer *body;
} srv_proxy_resp_t;

typedef void (*srv_proxy_done_fn)(const srv_proxy_resp_t *resp, void *privdata);

/* Streaming (srv_proxy_forward_stream): the answer is handed on as it
 * arrives instead of whole.
 *   head: once, at the final answer's head, after the framing checks:
 *         resp->status SRV_PROXY_OK with code, reason and headers (hop-by-hop
 *         removed; Content-Length kept when the upstream sent one), body NULL.
 *         An answer refused at its head (ambiguous framing, a Content-Length
 *         over SRV_PROXY_MAX_RESP_BODY) never gets here: `done` reports it.
 *   body: each piece of the body as libevent reads it (Content-Length and
 *         chunked alike, de-chunked); the callee takes the bytes out of
 *         `piece` (evbuffer_add_buffer / evhttp_send_reply_chunk).
 *   done: last, exactly once (unless cancelled).  Before any head: as for
 *         srv_proxy_forward (no body; code 0 unless OK).  After the head:
 *         SRV_PROXY_OK when the whole body has been handed on, anything else
 *         when the answer was cut short (the upstream closed or reset, went
 *         silent for timeout_ms, or overran SRV_PROXY_MAX_RESP_BODY); its
 *         connection is closed then, never reused.
 * srv_proxy_cancel() must not be called from inside head, body or done;
 * srv_proxy_pause() may be called from inside body. */
typedef struct srv_proxy_stream {
    void (*head)(const srv_proxy_resp_t *resp, void *privdata);
    void (*body)(struct evbuffer *piece, void *privdata);
    srv_proxy_done_fn done;
} srv_proxy_stream_t;

/* A client for the thread that runs `base`.  `dns` resolves host names; when
 * NULL only numeric upstream hosts are accepted (no blocking lookups).  Both
 * stay the caller's and must outlive the proxy.  NULL on out of memory. */
srv_proxy_t *srv_proxy_new(struct event_base *base, struct evdns_base *dns);

/* Cancel every request still pending (their `done` never runs) and close all
 * connections.  Not from inside a `done` callback.  NULL is a no-op. */
void srv_proxy_free(srv_proxy_t *p);

/* At most `n` (>= 1) connections per upstream host:port; requests beyond
 * that wait (their timeout running) for a connection to come free. */
void srv_proxy_set_max_conns(srv_proxy_t *p, unsigned n);

/* Forward `client` (an evhttp server request) to `upstream` ("http://host",
 * "http://host:port", "http://[v6]:port", optional trailing '/').
 *   - method and body come from `client`; the body is copied from its input
 *     buffer, which is left untouched.  CONNECT and TRACE are refused.
 *   - `target` is the origin-form path?query to send (already normalized;
 *     no spaces or control bytes).
 *   - headers: the client's, minus hop-by-hop ones (Connection and those it
 *     lists, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade),
 *     Expect, Host, Content-Length, and every name http_hdr_class() puts in
 *     a class ('-', '_' and '.' alike): X-Auth-*, X-Request-ID,
 *     X-Forwarded-For/-Proto/-Host, X-Real-IP always; Forwarded,
 *     X-Original-* and the other X-Forwarded-* unless `flags` has
 *     SRV_PROXY_PEER_TRUSTED (and never in a '_'/'.' spelling); with
 *     SRV_PROXY_HIDE_CREDENTIALS also X-API-Key and Authorization: Bearer.
 *     Then Host is the upstream's, Content-Length is recomputed, the `nadd`
 *     headers of `add` replace any same-named ones (identity headers,
 *     X-Request-ID, X-Real-IP, X-Forwarded-Proto/-Host the pipeline vouches
 *     for), X-Forwarded-For is the client's exact X-Forwarded-For lines with
 *     `client_ip` appended, and X-Forwarded-Proto ("http") /
 *     X-Forwarded-Host (the client's Host) are set when still absent.
 *     `add`, `target` and `client_ip` are copied.
 *   - `timeout_ms` bounds the whole exchange, waiting for a connection
 *     included: the route's upstream_timeout_ms (its default is the
 *     config's, cfg_yaml.c); 0 is refused.
 * A request that fails on a reused keep-alive connection before any answer
 * (the upstream closed it meanwhile) is retried once on a fresh connection
 * when its method is idempotent.
 * `client` must stay alive, its input buffer unchanged, until `done` runs or
 * srv_proxy_cancel() is called.  Returns a handle, or NULL (bad upstream or
 * target, refused method, timeout_ms 0, out of memory) in which case `done`
 * never runs. */
srv_proxy_req_t *srv_proxy_forward(srv_proxy_t *p, struct evhttp_request *client,
                                   const char *upstream, const char *target,
                                   const srv_proxy_hdr_t *add, size_t nadd,
                                   const char *client_ip, unsigned flags,
                                   unsigned timeout_ms, srv_proxy_done_fn done,
                                   void *privdata);

/* As srv_proxy_forward, but the answer is streamed through `ops` (kept by
 * the caller; it must outlive the request).  timeout_ms bounds the exchange
 * up to the answer's head; from then on it is an idle timeout: timeout_ms
 * without a byte of body (while not paused) ends the answer as cut short. */
srv_proxy_req_t *srv_proxy_forward_stream(srv_proxy_t *p, struct evhttp_request *client,
                                          const char *upstream, const char *target,
                                          const srv_proxy_hdr_t *add, size_t nadd,
                                          const char *client_ip, unsigned flags,
                                          unsigned timeout_ms,
                                          const srv_proxy_stream_t *ops, void *privdata);

/* Backpressure for a streamed answer: `on` stops reading the upstream (TCP
 * then holds it back) and stops the idle timeout; off reads on and restarts
 * it.  A no-op before the head and after `done`.
 * A paused stream keeps its connection only while no other request needs
 * it: when a request would wait for a connection to its upstream (the pool
 * at its limit, none idle), the stream paused longest is cut short for it:
 * its connection is closed and its `done` (from the loop) reports
 * SRV_PROXY_SLOW_CLIENT. */
void srv_proxy_pause(srv_proxy_req_t *r, int on);

/* The client went away: abort the request; `done` will not run and `r` is
 * freed.  A streamed answer is abandoned: its upstream connection is closed.  Safe at any
 * time before `done` runs; a no-op when called from inside `done` (the handle dies when
 * `done` returns).  NULL is a no-op. */
void srv_proxy_cancel(srv_proxy_req_t *r);

/* Append the headers of `from` to `to`, skipping hop-by-hop ones (as above,
 * including the names listed in any Connection header). */
void srv_proxy_copy_headers(const struct evkeyvalq *from, struct evkeyvalq *to);

#endif
