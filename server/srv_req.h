/* srv_req.h — the request half of the server's private types, for server/
 * sources only: srv_req_t is one request on the main listener while the
 * decision core (decide.h) decides it and the adapter (pipeline.c) answers
 * it or forwards it (proxied.c), with the answers of respond.c.  It holds
 * the transport and what the adapter copied out of the verdict; the
 * decision's own state is the core's (decide/dec_internal.h).
 */
#ifndef TOLLGATE_SRV_REQ_H
#define TOLLGATE_SRV_REQ_H

#include <stdbool.h>
#include <time.h>

#include <event2/event_struct.h>
#include <event2/http.h>

#include "tollgate/auth.h"
#include "tollgate/decide.h"
#include "tollgate/http.h"
#include "srv_proxy.h"
#include "srv_process.h"

/* One request in flight on a worker; owns everything of the request. */
typedef struct srv_req {
    srv_worker_t *w;
    cfg_t *cfg; /* reference kept until the request is done */
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct timespec start;
    /* State invariant: at most one of dec and proxy_pending is set; the
     * callback clears it before anything else, and on_close cancels it. */
    dec_pending_t *dec; /* the decision, until its verdict */
    srv_proxy_req_t *proxy_pending;
    struct event watch_ev; /* client-gone watch while something is pending */
    bool watching;         /* watch_ev is assigned and may be pending */
    bool streaming;        /* the upstream's answer is being streamed */
    char method_own[16];   /* the method of a head conn.c refused */
    /* From the verdict (copied: it lives during dec_done only), for the
     * answer's headers (respond.c), the audit line and metrics. */
    const char *method; /* static, method_own, or the request's */
    const char *target; /* the request's own (proxy mode) */
    char reqid[HTTP_REQID_MAX + 1];
    char ip[HTTP_IP_STRLEN];
    char client_id[AUTH_MAX_ID_LEN + 1];
    const char *origin; /* a request header: lives with the request */
    bool https, deprecated, bearer_failed;
    dec_limits_t limits; /* policy and state borrowed from the verdict, */
    bool limits_owned;   /* or copies (a forwarded request's answer comes later) */
    int status;
    const char *decision, *reason, *limit;
    int upstream_status;
    /* The audit line's "why" (pipeline.c keep_why): route, auth method and
     * mode are the snapshot's or static; the rest copied into `why`
     * (malloc'd when there is an audit log, else NULL). */
    const cfg_route_t *route;
    const char *auth_method, *mode;
    int64_t decided_ms;
    struct srv_why *why;
} srv_req_t;

/* pipeline.c */
/* Audit line, metrics, free: the reply has been sent (or the client left). */
void srv_req_finish(srv_req_t *r);
/* Watch (or stop watching) for the client leaving while something waits. */
void srv_req_watch(srv_req_t *r, bool on);
/* The error envelope, then srv_req_finish. */
void srv_req_fail(srv_req_t *r, int status, const char *code, const char *message);

/* proxied.c: forward an allowed request (DEC_FORWARD) and stream the
 * upstream's answer back; the request ends there. */
void srv_proxied_start(srv_req_t *r, const dec_verdict_t *v);
/* Proxy mode: the most bytes of a streamed upstream answer queued for one
 * client before the upstream is no longer read (proxied.c proxy_body). */
#define SRV_PROXY_STREAM_BUFFER (256u << 10)

/* fwdauth.c: the decision's observations about forward-auth peers. */
/* Dialect headers from a peer outside trusted_proxies: warned about once
 * per peer and process (a bounded set). */
void srv_fwdauth_untrusted(srv_worker_t *w, const char *peer);
/* A repeated dialect header from a trusted proxy: counted in
 * tollgate_forwarded_header_repeats_total{dialect} and warned about at most
 * once per SRV_REPEAT_LOG_MS per process, naming the header, never a value. */
#define SRV_REPEAT_LOG_MS 10000
void srv_fwdauth_repeat(srv_worker_t *w, const char *dialect, const char *name,
                        const char *peer);

/* respond.c */
/* The headers tollgate sets on a proxied answer, replacing the upstream's. */
void srv_add_proxied_headers(srv_req_t *r, struct evkeyvalq *out);
void srv_reply(srv_req_t *r, int code, const char *reason, struct evbuffer *body);
void srv_reply_start(srv_req_t *r, int code, const char *reason);
void srv_send_json(srv_req_t *r, int status, const char *body);
void srv_send_json_with(srv_req_t *r, int status, const char *body,
                        const srv_proxy_hdr_t *extra, size_t nextra);
void srv_send_error(srv_req_t *r, int status, const char *code, const char *message);

#endif
