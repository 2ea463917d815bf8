/* srv_req.h — the request half of the server's private types, for
 * server/ sources only: srv_req_t is one request moving through the steps of
 * docs/architecture.md §5 (pipeline.c), with the headers it reads (hdrs.c), the
 * forward-auth dialects (fwdauth.c) and the answers (respond.c).
 */
#ifndef TOLLGATE_SRV_REQ_H
#define TOLLGATE_SRV_REQ_H

#include <stdbool.h>
#include <time.h>

#include <event2/event_struct.h>
#include <event2/http.h>

#include "tollgate/auth.h"
#include "tollgate/auth_ticket.h"
#include "tollgate/decide.h"
#include "tollgate/http.h"
#include "srv_proxy.h"
#include "srv_process.h"

/* Where the decision is asked from (docs/forward-auth.md). */
typedef enum {
    SRV_MODE_PROXY,
    SRV_MODE_FWD_ENVOY,
    SRV_MODE_FWD_NGINX,
    SRV_MODE_FWD_TRAEFIK,
    SRV_MODE_TICKET, /* POST tickets.path: issue a one-time ticket */
} srv_mode_t;

/* The request headers the pipeline reads (borrowed from the request). */
typedef struct srv_hdrs {
    const char *host, *origin, *api_key, *real_ip, *request_id, *sent_from, *authorization;
    const char *o_uri, *o_url, *o_method; /* nginx dialect */
    const char *o_host; /* X-Original-Host: ingress-nginx's $host, when configured */
    const char *f_uri, *f_host, *f_proto, *f_method; /* Traefik dialect, X-Forwarded-* */
    const char *acrm, *acrh;                         /* CORS preflight */
    const char *content_length, *transfer_encoding;  /* framing */
    const char *xff;                                 /* the first X-Forwarded-For line */
    int nxff;                                        /* how many there are */
    /* Names spelled like tollgate's own headers (http_hdr_class). */
    bool identity_exact;   /* an X-Auth-* header */
    bool identity_variant; /* an X_Auth_*, X.Auth.* ... */
    bool reserved_variant; /* a '_'/'.' spelling of any reserved name (these too) */
    bool method_override;  /* X-HTTP-Method-Override or a sibling (http.h) */
    const char *bad;       /* why srv_hdrs_scan() refused, for the audit reason */
    const char *dup_name;  /* duplicate_header: the name repeated (canonical spelling) */
} srv_hdrs_t;

/* hdrs.c: fill `h` (zeroed by the caller) from the request headers.  -1 when
 * the headers must be refused (400, connection closed): h->bad says why. */
int srv_hdrs_scan(srv_hdrs_t *h, const struct evkeyvalq *in);

/* What the decision answers (decide.h): recorded by a step (pipeline.c
 * verdict()), sent by the one answer path (pipeline.c answer()), which
 * alone writes to the client. */
typedef dec_verdict_t srv_verdict_t;

/* One request in flight on a worker; owns everything of the request. */
typedef struct srv_req {
    srv_worker_t *w;
    cfg_t *cfg; /* reference kept until the request is done */
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    srv_hdrs_t h;
    struct timespec start;
    srv_mode_t mode;
    char reqid[HTTP_REQID_MAX + 1];
    char ip[HTTP_IP_STRLEN];         /* client ip */
    char ip_key[HTTP_IP_KEY_STRLEN]; /* its key in limits and lockouts (http_ip_key) */
    char peer[HTTP_IP_STRLEN];       /* TCP peer */
    bool peer_trusted;
    bool https;         /* TLS, or X-Forwarded-Proto: https from a trusted peer */
    const char *method; /* original method name */
    unsigned method_bit;
    char method_own[16];      /* the method of a head conn.c refused (SRV_CONN_METHOD) */
    bool route_method_denied; /* the route has other_methods: deny and not this method */
    const char *target;       /* original target (path?query), raw */
    const char *host;         /* original host, may be NULL */
    char hostbuf[256];        /* host taken from X-Original-URL */
    char *target_own;         /* target built by tollgate (malloc'd) or NULL */
    char *path;               /* normalized original path (malloc'd) */
    unsigned path_flags;      /* HTTP_PATH_* seen while normalizing */
    const char *query;        /* points into target, NULL when none */
    const char *origin;       /* Origin header when allowed by CORS, else NULL */
    const cfg_route_t *route; /* matched route, or &cfg->default_route */
    auth_identity_t id;
    bool bearer_failed; /* a presented JWT was refused */
    char claimbuf[64];
    /* The pipeline (pipeline.c) runs its steps in order from `step`.  State
     * invariant: at most one of rl_pending, lock_pending and proxy_pending is
     * set, and only while its step (limits, authenticate, the answer) waits
     * for it; the callback clears it before it does anything else, and
     * on_close cancels it.  No step runs while one is set. */
    unsigned step;
    rl_pending_t *rl_pending;
    auth_lock_op_t *lock_pending; /* a refused credential being counted */
    struct event watch_ev;        /* client-gone watch while a step is pending */
    bool watching;                /* watch_ev is assigned and may be pending */
    srv_proxy_req_t *proxy_pending;
    bool streaming;  /* the upstream's answer is being streamed: its head is sent */
    bool deprecated; /* allowed with a deprecated credential: headers */
    auth_ticket_op_t *tkt_pending; /* a ticket being issued or redeemed in Redis */
    char ticket[AUTH_TICKET_LEN + 1];
    /* Authentication waits for a JWKS fetch (unknown kid): polled. */
    struct event jwks_ev;
    bool jwks_waiting;
    uint64_t jwks_deadline_ms; /* monotonic; 0 = not waited yet */
    srv_verdict_t verdict;     /* what a step decided; its rate-limit report */
    /* Outcome, for the audit line and metrics. */
    int status;
    const char *decision;
    const char *reason;
    srv_conn_verdict_t size_verdict; /* conn.c refused the head: 431 / 413 */
    const char *limit;
    int upstream_status;
} srv_req_t;

/* What srv_fwdauth_parse() found; the pipeline turns it into an answer. */
typedef enum {
    SRV_FWD_OK,
    SRV_FWD_BAD,       /* malformed original request */
    SRV_FWD_CONFLICT,  /* headers of two dialects, or URL and URI disagree */
    SRV_FWD_UNTRUSTED, /* dialect headers from a peer outside trusted_proxies */
    SRV_FWD_NOMEM,
} srv_fwd_result_t;

/* fwdauth.c: fill mode/method/target/host of `r` from the forward-auth
 * request under forward_auth.dialect.  Anything but SRV_FWD_OK comes with
 * r->reason set. */
srv_fwd_result_t srv_fwdauth_parse(srv_req_t *r, const char *own_target);

/* Proxy mode: the most bytes of a streamed upstream answer queued for one
 * client before the upstream is no longer read (pipeline.c proxy_body). */
#define SRV_PROXY_STREAM_BUFFER (256u << 10)
/* fwdauth.c: a forward-auth request from a trusted proxy whose headers were
 * refused for a repeated dialect header (r->h.dup_name): counted in
 * tollgate_forwarded_header_repeats_total{dialect} and warned about at most
 * once per SRV_REPEAT_LOG_MS per process, naming the header, never a value.
 * Other refusals are left alone. */
#define SRV_REPEAT_LOG_MS 10000
void srv_fwdauth_note_repeat(srv_req_t *r);

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
