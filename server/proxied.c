/* proxied.c — proxy mode after an allow: the request goes to the route's
 * upstream with the verdict's headers (srv_proxy_forward_stream), and the
 * upstream's answer streams back to the client with tollgate's own headers;
 * the audit line is written when the answer ends (srv_req_finish).
 */
#include <stdio.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "srv_req.h"

static void proxy_head(const srv_proxy_resp_t *resp, void *privdata);
static void proxy_body(struct evbuffer *piece, void *privdata);
static void proxy_done(const srv_proxy_resp_t *resp, void *privdata);

static const srv_proxy_stream_t proxy_stream = {proxy_head, proxy_body, proxy_done};

void srv_proxied_start(srv_req_t *r, const dec_verdict_t *v)
{
    srv_proxy_hdr_t add[DEC_VERDICT_HDRS];
    unsigned flags = 0;

    for (size_t i = 0; i < v->nset; i++)
        add[i] = (srv_proxy_hdr_t){v->set[i].name, v->set[i].value};
    if (v->forward.peer_trusted)
        flags |= SRV_PROXY_PEER_TRUSTED;
    /* proxy.c leaves out X-API-Key and a Bearer Authorization by flag: the
     * verdict's `remove` names exactly those (dec_allow.c) */
    if (v->nremove > 0)
        flags |= SRV_PROXY_HIDE_CREDENTIALS;
    srv_req_watch(r, true);
    r->proxy_pending = srv_proxy_forward_stream(
        r->w->proxy, r->req, v->forward.upstream, v->forward.target, add, v->nset, r->ip,
        flags, v->forward.timeout_ms, &proxy_stream, r);
    if (r->proxy_pending == NULL)
        srv_req_fail(r, 502, "bad_gateway", "upstream unavailable");
}

/* The upstream's answer head: send ours.  From here evhttp reads the client
 * socket itself (to see a close), so the peek watch stops; the close
 * callback stays, for a client that leaves mid-answer. */
static void proxy_head(const srv_proxy_resp_t *resp, void *privdata)
{
    srv_req_t *r = privdata;
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);

    if (r->watching) {
        event_del(&r->watch_ev);
        r->watching = false;
    }
    r->streaming = true;
    r->upstream_status = resp->code;
    r->status = resp->code;
    srv_proxy_copy_headers(resp->headers, out);
    srv_add_proxied_headers(r, out);
    srv_reply_start(r, resp->code, resp->reason ? resp->reason : "");
}

/* The client has written everything queued: read the upstream again. */
static void client_drained(struct evhttp_connection *conn, void *arg)
{
    srv_req_t *r = arg;

    (void)conn;
    srv_proxy_pause(r->proxy_pending, 0);
}

/* A piece of the upstream's body: on to the client.  Past
 * SRV_PROXY_STREAM_BUFFER bytes waiting for the client, the upstream is not
 * read until the client has taken all of them (evhttp's write callback), so
 * a slow client holds at most about that much here whatever the answer's
 * size; TCP holds the upstream back meanwhile. */
static void proxy_body(struct evbuffer *piece, void *privdata)
{
    srv_req_t *r = privdata;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->conn);
    size_t queued = bev != NULL ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;

    if (queued + evbuffer_get_length(piece) <= SRV_PROXY_STREAM_BUFFER) {
        evhttp_send_reply_chunk(r->req, piece);
        return;
    }
    srv_proxy_pause(r->proxy_pending, 1);
    evhttp_send_reply_chunk_with_cb(r->req, piece, client_drained, r);
}

/* The end of a streamed answer: complete, or cut short by the upstream or
 * for a client too slow to keep its upstream connection (its status line
 * was sent, so the client must see a truncated answer: the connection is
 * closed without the last chunk, or short of the Content-Length, never
 * ended as if the body were whole). */
static void stream_done(srv_req_t *r, srv_proxy_status_t status)
{
    struct evhttp_connection *conn = r->conn;

    srv_req_watch(r, false);
    if (status == SRV_PROXY_OK) {
        struct evhttp_request *req = r->req;

        /* finish first: r->target points into the request, which
         * evhttp_send_reply_end frees at once when nothing is left to write
         * and no last chunk is due (a Content-Length or close-delimited
         * answer, e.g. to HTTP/1.0) — ASan caught the audit line reading it */
        srv_req_finish(r);
        evhttp_send_reply_end(req);
        return;
    }
    if (status == SRV_PROXY_SLOW_CLIENT)
        r->reason = "client_too_slow"; /* its upstream connection went to a waiter */
    else
        r->reason = "upstream_truncated";
    r->req = NULL;
    srv_req_finish(r);            /* first: r->target points into the request */
    evhttp_connection_free(conn); /* frees the request; conn.c counts the answer done */
}

static void proxy_done(const srv_proxy_resp_t *resp, void *privdata)
{
    srv_req_t *r = privdata;
    struct evkeyvalq *out;

    r->proxy_pending = NULL;
    if (r->streaming) {
        stream_done(r, resp->status);
        return;
    }
    if (resp->status == SRV_PROXY_TIMEOUT) {
        r->reason = "upstream_timeout";
        srv_req_fail(r, 504, "bad_gateway", "upstream timed out");
        return;
    }
    if (resp->status == SRV_PROXY_BAD_ANSWER) {
        r->reason = "upstream_bad_answer";
        srv_req_fail(r, 502, "bad_gateway", "upstream answer refused");
        return;
    }
    if (resp->status != SRV_PROXY_OK) {
        r->reason = "upstream_error";
        srv_req_fail(r, 502, "bad_gateway", "upstream unavailable");
        return;
    }
    srv_req_watch(r, false);
    r->upstream_status = resp->code;
    r->status = resp->code;
    out = evhttp_request_get_output_headers(r->req);
    srv_proxy_copy_headers(resp->headers, out);
    srv_add_proxied_headers(r, out);
    srv_reply(r, resp->code, resp->reason ? resp->reason : "", resp->body);
    srv_req_finish(r);
}
