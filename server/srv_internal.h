/* srv_internal.h — private types of the server, for server/ sources only.
 *
 * srv_t is the process: config path, the current snapshot, worker threads,
 * the admin thread.  srv_worker_t is one event loop with its own listening
 * socket, limiter, proxy, audit buffer and metrics.  srv_req_t is one request
 * moving through the steps of DESIGN §6.
 */
#ifndef TOLLGATE_SRV_INTERNAL_H
#define TOLLGATE_SRV_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>

#include "tollgate/audit.h"
#include "tollgate/auth.h"
#include "tollgate/auth_lockout.h"
#include "tollgate/auth_revoke.h"
#include "tollgate/cfg.h"
#include "tollgate/metrics.h"
#include "tollgate/rl_limiter.h"
#include "tollgate/rl_memory.h"
#include "tollgate/srv.h"
#include "tollgate/srv_admin_req.h"
#include "tollgate/http.h"
#include "tollgate/srv_proxy.h"

#define SRV_MAX_WORKERS 256
#define SRV_READ_TIMEOUT_S 15 /* slow clients: headers and body must arrive in time */
#define SRV_DRAIN_TIMEOUT_MS 10000
#define SRV_WATCH_AFTER_MS 10 /* a step pending this long gets its socket watched */

typedef struct srv srv_t;

/* An event loop that serves the main listener (or the admin listener). */
typedef struct srv_worker {
    srv_t *srv;
    unsigned index;
    bool admin; /* the admin listener's thread */
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    cfg_t *cfg; /* this thread's snapshot (one reference) */
    /* Mailbox for a new snapshot (reload) and shutdown, posted by other threads. */
    pthread_mutex_t mbox_mu;
    cfg_t *mbox_cfg;
    bool mbox_stop;
    int mbox_fd; /* eventfd that wakes the loop */
    struct event *mbox_ev;
    struct event *drain_ev;
    int64_t drain_deadline_ms;
    rl_limiter_t *limiter;
    struct rc_client *rc;    /* this thread's Redis client, NULL without Redis */
    struct rl_redis *rr;     /* the limiter's Redis backend over `rc` */
    struct event *health_ev; /* samples rc_client_up() into redis_up */
    atomic_bool redis_up;
    atomic_bool redis_settled; /* the first connection attempt succeeded or failed */
    srv_proxy_t *proxy;
    audit_buf_t *audit;
    metrics_t *metrics;
    unsigned inflight;  /* requests not yet answered */
    unsigned unflushed; /* answers libevent has not finished writing */
} srv_worker_t;

struct srv {
    char *config_path;       /* NULL: built-in defaults */
    pthread_mutex_t cfg_mu;  /* guards `cfg` and reloads */
    cfg_t *cfg;              /* newest good snapshot (one reference) */
    rl_memory_t *memory;     /* the memory backend, shared by all workers */
    audit_t *audit;          /* NULL when audit is off */
    auth_lockout_t *lockout; /* auth-failure lockouts (this replica) */
    auth_revoke_t *revoked;  /* revoked JWTs (the store without Redis, else the cache) */
    srv_worker_t *workers;
    unsigned nworkers;
    srv_worker_t admin;
    /* Peers already warned about for untrusted dialect headers (bounded). */
    pthread_mutex_t warn_mu;
    char warned[64][HTTP_IP_STRLEN];
    unsigned nwarned;
    cfg_redis_mode_t cfg_redis_mode; /* as started: Redis settings need a restart */
    char *redis_prefix;              /* as started: keys and channels of every thread */
    struct {                         /* names built from redis_prefix once, at start */
        char revlog_j[256], revlog_s[256];  /* the revocation index */
        char chan_rev[256], chan_lock[256]; /* the channels */
    } rnames;
    atomic_bool degraded;    /* Redis unreachable: limits on on_redis_error */
    struct rc_sub *sub;      /* revocations + lockouts channels (admin thread) */
    struct event *resync_ev; /* revocation index reload while `sub` is down */
    atomic_bool draining;    /* SIGTERM seen: /readyz 503, answers close */
    atomic_bool ready;       /* the first Redis attempt settled (or start grace over) */
    int64_t start_ms;        /* main thread: when srv_run began */
    struct event *start_ev;  /* main thread: polls for readiness until ready */
    struct event *delay_ev;  /* main thread: shutdown_delay after SIGTERM */
    struct event_base *main_base; /* signals, config file watch */
};

/* Where the decision is asked from (DESIGN §6 forward-auth dialects). */
typedef enum {
    SRV_MODE_PROXY,
    SRV_MODE_FWD_ENVOY,
    SRV_MODE_FWD_NGINX,
    SRV_MODE_FWD_TRAEFIK,
} srv_mode_t;

/* The request headers the pipeline reads (borrowed from the request). */
typedef struct srv_hdrs {
    const char *host, *origin, *api_key, *real_ip, *request_id, *sent_from, *authorization;
    const char *o_uri, *o_url, *o_method;            /* nginx dialect */
    const char *f_uri, *f_host, *f_proto, *f_method; /* Traefik dialect, X-Forwarded-* */
    const char *acrm, *acrh;                         /* CORS preflight */
    const char *content_length, *transfer_encoding;  /* framing */
    const char *xff;                                 /* the first X-Forwarded-For line */
    int nxff;                                        /* how many there are */
    /* Names spelled like tollgate's own headers (http_hdr_class). */
    bool identity_exact;   /* an X-Auth-* header */
    bool identity_variant; /* an X_Auth_*, X.Auth.* ... */
    bool reserved_variant; /* a '_'/'.' spelling of any reserved name (these too) */
    const char *bad;       /* why srv_hdrs_scan() refused, for the audit reason */
} srv_hdrs_t;

/* hdrs.c: fill `h` (zeroed by the caller) from the request headers.  -1 when
 * the headers must be refused (400, connection closed): h->bad says why. */
int srv_hdrs_scan(srv_hdrs_t *h, const struct evkeyvalq *in);

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
    char ip[HTTP_IP_STRLEN];   /* client ip */
    char peer[HTTP_IP_STRLEN]; /* TCP peer */
    bool peer_trusted;
    bool https;         /* TLS, or X-Forwarded-Proto: https from a trusted peer */
    const char *method; /* original method name */
    unsigned method_bit;
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
    struct srv_lock_op *lock_pending; /* a refused credential being counted */
    struct event watch_ev;            /* client-gone watch while a step is pending */
    bool watching;                    /* watch_ev is assigned and may be pending */
    srv_proxy_req_t *proxy_pending;
    /* Outcome, for the audit line and metrics. */
    int status;
    const char *decision;
    const char *reason;
    const char *limit;
    int upstream_status;
    /* Rate-limit headers of the decision (empty when no limit applied). */
    char rl_limit[24], rl_remaining[24], rl_reset[24],
        rl_retry[24]; /* >= UTIL_FMT_U64_MAX */
    char *rl_policy;  /* RateLimit-Policy value, malloc'd or NULL */
    char *rl_state;   /* RateLimit value */
} srv_req_t;

/* server.c */
cfg_t *srv_current_cfg(srv_t *s); /* a new reference */
int srv_reload(srv_t *s, char *err, size_t errlen);
/* The /readyz body into `body`; returns the HTTP status. */
int srv_readyz(srv_t *s, const cfg_t *c, char *body, size_t len);

/* backend.c: the limiter's store for each worker. */
int srv_backend_init(srv_t *s, srv_worker_t *w, char *err, size_t errlen);
void srv_backend_reconfigure(srv_worker_t *w);
void srv_backend_clear(srv_worker_t *w);
const char *srv_backend_state(srv_t *s);
void srv_backend_watch(srv_t *s);
bool srv_backend_settled(srv_t *s);
int srv_backend_probe(const cfg_t *c, unsigned wait_ms, char *err, size_t errlen);

struct rc_client *srv_backend_client_new(struct event_base *base, const cfg_t *c, char *err,
                                         size_t errlen);
size_t srv_script_index(const char *name);

/* shared.c: revocations and lockouts shared by every replica through Redis. */
typedef void (*srv_shared_done_fn)(const char *err, int64_t when, void *privdata);
int srv_shared_start(srv_t *s, char *err, size_t errlen);
void srv_shared_stop(srv_t *s);
/* Revoke everywhere (Redis, then this replica); `done` runs once, later or
 * at once without Redis.  -1: not started (out of memory, Redis down). */
int srv_shared_revoke(srv_t *s, srv_revoke_kind_t kind, const char *id, int64_t when,
                      srv_shared_done_fn done, void *privdata);
/* Count a refused credential of `ip` (Redis: lua/lockout.lua, which tells
 * every replica when a lockout starts; else this replica's memory).  Returns
 * NULL when counted already (`done` not called); else `done` runs once the
 * count is stored, so the 401 goes out only after the lock, if any, exists. */
typedef struct srv_lock_op srv_lock_op_t;
typedef void (*srv_lock_done_fn)(void *privdata);
srv_lock_op_t *srv_shared_lockout_fail(srv_worker_t *w, const char *ip,
                                       const auth_lockout_policy_t *p,
                                       srv_lock_done_fn done, void *privdata);
/* The request went away: `done` will not run, the count still completes. */
void srv_shared_lockout_detach(srv_lock_op_t *op);

/* pipeline.c: the main listener's request handler. */
void srv_pipeline_handle(struct evhttp_request *req, void *arg);

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

/* respond.c */
/* `own`: tollgate's answer (no-store, nothing to replace), else a proxied one. */
void srv_add_common_headers(srv_req_t *r, struct evkeyvalq *out, bool own);
void srv_add_rl_headers(srv_req_t *r, struct evkeyvalq *out, bool own);
void srv_reply(srv_req_t *r, int code, const char *reason, struct evbuffer *body);
void srv_send_json(srv_req_t *r, int status, const char *body);
void srv_send_error(srv_req_t *r, int status, const char *code, const char *message);
const char *srv_status_reason(int status);

/* admin.c: the admin listener's request handler. */
void srv_admin_handle(struct evhttp_request *req, void *arg);
void srv_send_plain_json(struct evhttp_request *req, int status, const char *body);

/* Monotonic and wall clocks. */
int64_t srv_now_ms(void);
double srv_elapsed_s(const struct timespec *since);

#endif
