/* pipeline.c — the evhttp adapter of the main listener
 * (docs/architecture.md §5).
 *
 * One srv_req_t per request: the request becomes a dec_input_t (its
 * headers through an iterator over evhttp's list) and goes to the decision
 * core (dec_start, decide.h); while the decision waits, a client that leaves
 * cancels it (dec_cancel); its verdict (dec_done) becomes the answer, the
 * forward-auth allow, or the proxied request (proxied.c); the audit line and
 * metrics are written once, when the request ends (srv_req_finish).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "tollgate/util_clock.h"
#include "srv_req.h"

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

/* ---- the client-gone watch ----------------------------------------------- */

static void on_close(struct evhttp_connection *conn, void *arg);

/* libevent 2.1 stops reading a connection while its request is being
 * answered, so it never notices a client that leaves meanwhile (and turning
 * its reading back on would abort on pipelined input).  Like nginx's
 * ngx_http_test_reading, watch the socket ourselves and peek: 0 bytes is the
 * client gone (a half-close counts, as in nginx); data is a pipelined
 * request, after which we stop watching.  Most decisions take microseconds,
 * so only a timer is armed first (no syscall): the socket is watched once
 * the request has been pending for SRV_WATCH_AFTER_MS. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    srv_req_t *r = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK);

    (void)what;
    if (n > 0)
        return;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        event_add(&r->watch_ev, NULL);
        return;
    }
    evhttp_connection_free(r->conn); /* calls on_close(), which frees r */
}

static void watch_socket(evutil_socket_t fd, short what, void *arg)
{
    srv_req_t *r = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->conn);

    (void)fd;
    (void)what;
    if (bev == NULL || bufferevent_getfd(bev) < 0)
        return;
    event_assign(&r->watch_ev, r->w->base, bufferevent_getfd(bev), EV_READ, on_readable, r);
    event_add(&r->watch_ev, NULL);
}

void srv_req_watch(srv_req_t *r, bool on)
{
    static const struct timeval after = {0, SRV_WATCH_AFTER_MS * 1000};

    if (r->conn == NULL)
        return;
    if (!on) {
        srv_conn_watch(r->w, r->conn, NULL, NULL);
        if (r->watching) {
            event_del(&r->watch_ev);
            r->watching = false;
        }
        return;
    }
    srv_conn_watch(r->w, r->conn, on_close, r);
    if (!r->watching) {
        event_assign(&r->watch_ev, r->w->base, -1, 0, watch_socket, r);
        event_add(&r->watch_ev, &after);
        r->watching = true;
    }
}

/* ---- the audit line's "why" ------------------------------------------------ */

/* What the audit line keeps of a verdict beyond the snapshot's lifetime
 * and the request's: copies, cut to what audit.c writes. */
typedef struct srv_why {
    char iss[257], host[257], tier[129], peer[HTTP_IP_STRLEN];
    char *scopes[AUDIT_SCOPES_MAX];
    size_t nscopes;
    char scopebuf[AUDIT_SCOPES_MAX][129];
    audit_key_t keys[AUDIT_KEYS_MAX];
    size_t nkeys;
    char keyval[AUDIT_KEYS_MAX][257];
} srv_why_t;

/* `s` into dst[n], cut to fit; "" for NULL. */
static void copy(char *dst, size_t n, const char *s)
{
    size_t len = s != NULL ? strnlen(s, n - 1) : 0;

    memcpy(dst, s != NULL ? s : "", len);
    dst[len] = '\0';
}

static void keep_identity(srv_why_t *y, const auth_identity_t *id)
{
    const char *iss = id != NULL ? auth_identity_claim(id, "iss", NULL, 0) : NULL;

    copy(y->iss, sizeof y->iss, id != NULL && id->kind == AUTH_KIND_JWT ? iss : NULL);
    copy(y->tier, sizeof y->tier, id != NULL ? id->tier : NULL);
    y->nscopes = 0;
    for (size_t i = 0; id != NULL && i < id->nscopes && i < AUDIT_SCOPES_MAX; i++) {
        copy(y->scopebuf[i], sizeof y->scopebuf[i], id->scopes[i]);
        y->scopes[y->nscopes++] = y->scopebuf[i];
    }
}

/* The verdict's route, auth method, identity details, host, peer, mode and
 * limit keys, for the audit line (nothing when there is no audit log). */
static void keep_why(srv_req_t *r, const dec_verdict_t *v)
{
    srv_why_t *y = r->why;

    if (r->w->audit == NULL)
        return;
    if (y == NULL && (y = r->why = malloc(sizeof(*y))) == NULL)
        return; /* the line goes without them */
    r->route = v->route;
    r->auth_method = v->auth_method;
    r->mode = v->mode;
    r->decided_ms = v->decided_ms;
    keep_identity(y, v->id);
    copy(y->host, sizeof y->host, v->host);
    copy(y->peer, sizeof y->peer, v->peer);
    y->nkeys = 0;
    for (size_t i = 0; i < v->nkeys && i < AUDIT_KEYS_MAX; i++) {
        copy(y->keyval[i], sizeof y->keyval[i], v->keys[i].value);
        y->keys[y->nkeys++] = (audit_key_t){v->keys[i].claim, v->keys[i].name,
                                            v->keys[i].value != NULL ? y->keyval[i] : NULL};
    }
}

/* The audit line's fields of issue 22 item 6 (see keep_why). */
static void audit_why(const srv_req_t *r, audit_rec_t *a)
{
    const srv_why_t *y = r->why;

    a->route = r->route != NULL ? r->route->name : NULL;
    a->auth_method = r->auth_method;
    a->mode = r->mode;
    a->decided_ms = r->decided_ms;
    if (r->status == 403 && r->route != NULL) {
        a->scopes_required = r->route->scopes.v;
        a->nscopes_required = r->route->scopes.n;
    }
    if (y == NULL)
        return;
    a->iss = y->iss[0] ? y->iss : NULL;
    a->tier = y->tier[0] ? y->tier : NULL;
    a->host = y->host[0] ? y->host : NULL;
    a->peer = y->peer[0] ? y->peer : NULL;
    a->scopes = r->auth_method != NULL && r->client_id[0] ? y->scopes : NULL;
    a->nscopes = y->nscopes;
    a->keys = y->keys;
    a->nkeys = y->nkeys;
}

/* ---- the end of a request -------------------------------------------------- */

void srv_req_finish(srv_req_t *r)
{
    double secs = util_elapsed_s(&r->start);
    srv_worker_t *w = r->w;

    if (r->decision == NULL)
        r->decision = r->status < 400 ? "allow" : r->status >= 500 ? "error" : "deny";
    if (r->reason == NULL)
        r->reason = r->status < 400 ? "ok" : "error";
    metrics_request(w->metrics, r->decision, r->reason, secs);
    if (w->audit != NULL) {
        audit_rec_t a = {
            .ts_ms = util_wall_ms(),
            .request_id = r->reqid,
            .client_id = r->client_id[0] ? r->client_id : NULL,
            .method = r->method,
            .target = r->target,
            .status = r->status,
            .duration_ms = secs * 1000.0,
            .ip = r->ip[0] ? r->ip : NULL,
            .decision = r->decision,
            .reason = r->reason,
            .limit = r->limit,
            .upstream_status = r->upstream_status,
            .redact = r->cfg->audit_redact.v,
            .nredact = r->cfg->audit_redact.n,
        };
        audit_why(r, &a);
        audit_log(w->audit, &a);
    }
    free(r->why);
    if (r->watching)
        event_del(&r->watch_ev);
    if (r->limits_owned) {
        free(r->limits.policy);
        free(r->limits.state);
    }
    cfg_unref(r->cfg);
    free(r);
    w->inflight--;
}

void srv_req_fail(srv_req_t *r, int status, const char *code, const char *message)
{
    srv_req_watch(r, false);
    srv_send_error(r, status, code, message);
    srv_req_finish(r);
}

/* Who asked for what: copied, but method and target borrowed from the
 * verdict (valid until the request's audit line). */
static void keep_who(srv_req_t *r, const dec_verdict_t *v)
{
    if (v->method != NULL)
        r->method = v->method;
    if (v->target != NULL)
        r->target = v->target;
    copy(r->reqid, sizeof r->reqid, v->request_id != NULL ? v->request_id : "");
    copy(r->ip, sizeof r->ip, v->client_ip != NULL ? v->client_ip : "");
    if (v->id != NULL && v->id->client_id != NULL)
        copy(r->client_id, sizeof r->client_id, v->id->client_id);
    keep_why(r, v);
}

/* The client went away while something was pending: cancel it.  Either
 * libevent saw it and detached the request from the dying connection (then
 * the request is ours to free), or on_readable() freed the connection (then
 * libevent frees the request right after this callback). */
static void on_close(struct evhttp_connection *conn, void *arg)
{
    srv_req_t *r = arg;
    struct evhttp_request *orphan;
    dec_pending_t *pending;

    (void)conn;
    pending = r->dec;
    r->dec = NULL;
    if (pending != NULL) /* who and what, for the audit line */
        keep_who(r, dec_progress(pending));
    if (r->proxy_pending != NULL) {
        srv_proxy_cancel(r->proxy_pending);
        r->proxy_pending = NULL;
    }
    srv_req_watch(r, false);
    if (!r->streaming) { /* else: the upstream's status was sent, decision allow */
        r->status = 499; /* nginx's "client closed request" */
        r->decision = "error";
    }
    r->reason = "client_closed";
    /* r->target points into the request: freed after the audit line */
    orphan = evhttp_request_get_connection(r->req) == NULL ? r->req : NULL;
    r->req = NULL;
    srv_req_finish(r);
    dec_cancel(pending); /* after the audit line, which borrowed its account */
    if (orphan != NULL)
        evhttp_request_free(orphan);
}

/* ---- the verdict ------------------------------------------------------------ */

/* What the answer and the audit line need after the verdict is gone. */
static void keep(srv_req_t *r, const dec_verdict_t *v)
{
    r->decision = v->decision;
    r->reason = v->reason;
    r->limit = v->limit;
    keep_who(r, v);
    r->origin = v->origin;
    r->https = v->https;
    r->deprecated = v->deprecated;
    r->bearer_failed = v->bearer_failed;
    r->limits = v->limits; /* policy and state borrowed until the answer */
}

static void dec_done(const dec_verdict_t *v, void *arg)
{
    srv_req_t *r = arg;
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    srv_proxy_hdr_t add[DEC_VERDICT_HDRS];

    r->dec = NULL;
    keep(r, v);
    if (v->close)
        evhttp_add_header(out, "Connection", "close");
    if (v->kind == DEC_FORWARD) {
        /* the answer comes later: the RateLimit fields are copied; method
         * and target are the request's own in proxy mode */
        r->limits_owned = true;
        r->limits.policy = v->limits.policy != NULL ? strdup(v->limits.policy) : NULL;
        r->limits.state = v->limits.state != NULL ? strdup(v->limits.state) : NULL;
        srv_proxied_start(r, v);
        return;
    }
    srv_req_watch(r, false);
    if (v->kind == DEC_ALLOW) {
        for (size_t i = 0; i < v->nset; i++)
            add[i] = (srv_proxy_hdr_t){v->set[i].name, v->set[i].value};
        srv_send_json_with(r, 200, NULL, add, v->nset);
    } else {
        for (size_t i = 0; i < v->nset; i++)
            evhttp_add_header(out, v->set[i].name, v->set[i].value);
        if (v->code != NULL)
            srv_send_error(r, v->status, v->code, v->message);
        else
            srv_send_json(r, v->status, v->body);
    }
    srv_req_finish(r); /* while the verdict's method and target are valid */
}

/* ---- the input ---------------------------------------------------------------- */

static const char *hdr_find(void *ctx, const char *name)
{
    return evhttp_find_header(ctx, name);
}

static void hdr_each(void *ctx, dec_header_fn fn, void *arg)
{
    const struct evkeyvalq *q = ctx;

    for (const struct evkeyval *kv = q->tqh_first; kv != NULL; kv = kv->next.tqe_next)
        if (fn(arg, kv->key, kv->value) != 0)
            return;
}

static const char *body_of(void *ctx, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(ctx);

    *len = in != NULL ? evbuffer_get_length(in) : 0;
    return *len > 0 ? (const char *)evbuffer_pullup(in, -1) : NULL;
}

/* conn.c's verdict on the head, as the decision reads it. */
static dec_head_t head_of(srv_conn_verdict_t v)
{
    switch (v) {
    case SRV_CONN_NUL:
        return DEC_HEAD_NUL;
    case SRV_CONN_HEAD_TOO_LARGE:
        return DEC_HEAD_TOO_LARGE;
    case SRV_CONN_BODY_TOO_LARGE:
        return DEC_HEAD_BODY_TOO_LARGE;
    case SRV_CONN_METHOD:
        return DEC_HEAD_METHOD;
    case SRV_CONN_OK:
    default:
        return DEC_HEAD_OK;
    }
}

void srv_pipeline_handle(struct evhttp_request *req, void *arg)
{
    srv_worker_t *w = arg;
    srv_req_t *r = calloc(1, sizeof(*r));
    srv_conn_verdict_t cv = srv_conn_request(w, req);
    char *peer = NULL;
    ev_uint16_t port = 0;
    dec_input_t in = {
        .headers = {evhttp_request_get_input_headers(req), hdr_find, hdr_each},
        .head = head_of(cv),
        .body = body_of,
        .body_ctx = req,
        .want_keys = w->audit != NULL, /* keep_why's only reader */
    };

    if (r == NULL) {
        evhttp_send_error(req, 503, "Service Unavailable");
        return;
    }
    util_mono_now(&r->start);
    r->w = w;
    r->cfg = cfg_ref(w->cfg);
    r->req = req;
    r->conn = evhttp_request_get_connection(req);
    r->upstream_status = -1;
    r->method = method_name(evhttp_request_get_command(req));
    if (cv == SRV_CONN_METHOD) {
        srv_conn_method(w, req, r->method_own, sizeof r->method_own);
        r->method = r->method_own[0] != '\0' ? r->method_own : NULL;
    }
    if (cv == SRV_CONN_OK || cv == SRV_CONN_NUL)
        r->target = evhttp_request_get_uri(req);
    if (r->conn != NULL)
        evhttp_connection_get_peer(r->conn, &peer, &port);
    in.method = r->method;
    in.target = r->target != NULL ? r->target : "/";
    in.peer = peer != NULL ? peer : "";
    w->inflight++;
    r->dec = dec_start(w->dec, r->cfg, &in, dec_done, r);
    if (r->dec == NULL) {
        r->reason = "out_of_memory";
        srv_req_fail(r, 503, "unavailable", "out of memory");
        return;
    }
    srv_req_watch(r, true);
}
