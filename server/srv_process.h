/* srv_process.h — the process half of the server's private types, for
 * server/ sources only: srv_t is the process (config path, the current
 * snapshot, worker threads, the admin thread); srv_worker_t is one event loop
 * with its own listening socket, limiter, proxy, audit buffer and metrics.
 * The request half is srv_req.h.
 */
#ifndef TOLLGATE_SRV_PROCESS_H
#define TOLLGATE_SRV_PROCESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "tollgate/audit.h"
#include "tollgate/auth.h"
#include "tollgate/auth_lockout.h"
#include "tollgate/auth_revoke.h"
#include "tollgate/auth_shared.h"
#include "tollgate/cfg.h"
#include "tollgate/decide.h"
#include "tollgate/log.h"
#include "tollgate/metrics.h"
#include "tollgate/rl_limiter.h"
#include "tollgate/rl_memory.h"
#include "tollgate/srv.h"
#include "srv_admin_req.h" /* srv_revoke_kind_t */
#include "tollgate/http.h"
#include "srv_proxy.h"

#define SRV_MAX_WORKERS 256
#define SRV_DRAIN_TIMEOUT_MS 10000
#define SRV_WATCH_AFTER_MS 10 /* a step pending this long gets its socket watched */

typedef struct srv srv_t;
typedef struct srv_conn srv_conn_t;
typedef void srv_conn_close_fn(struct evhttp_connection *conn, void *arg);

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
    bool mbox_leave;          /* admin thread: leave the fleet roster (fleet.c) */
    int mbox_fd;              /* eventfd that wakes the loop */
    uint64_t mbox_seq;        /* the reload mbox_cfg comes from */
    _Atomic uint64_t cfg_seq; /* the reload this thread serves (0: the first config) */
    struct event *mbox_ev;
    struct event *drain_ev;
    uint64_t drain_deadline_ms; /* monotonic */
    rl_limiter_t *limiter;
    /* decide_ctx.c: the decision core's context, and its stores (lockouts
     * and tickets) */
    dec_ctx_t *dec;
    dec_stores_real_t dec_stores;
    struct rc_client *rc;    /* this thread's Redis client, NULL without Redis */
    struct rl_redis *rr;     /* the limiter's Redis backend over `rc` */
    struct event *health_ev; /* samples rc_client_up() into redis_up */
    atomic_bool redis_up;
    atomic_bool redis_settled; /* the first connection attempt succeeded or failed */
    struct evdns_base *dns;    /* resolves upstream host names (resolv.conf, /etc/hosts) */
    srv_proxy_t *proxy;
    audit_buf_t *audit;
    metrics_t *metrics;
    struct auth_jwt_local *jwt_local; /* this thread's copies of remote key sets */
    unsigned inflight;                /* requests not yet answered */
    unsigned unflushed;               /* answers libevent has not finished writing */
    /* respond.c: the configuration-only headers of own answers, formatted
     * for the snapshot of version own_hdrs_version. */
    char *own_hdrs;
    size_t own_hdrs_len;
    char own_hdrs_version[17];
    time_t date_s; /* the second `date` was formatted for, 0: not yet */
    char date[32];
    /* listener.c: accept() failures pause the listener */
    struct event *accept_ev; /* re-enables it */
    uint64_t accept_failures, accept_logged_ms;
    /* conn.c: the connections that have sent something, by fd and listed */
    srv_conn_t **conn_by_fd;
    size_t conn_cap;
    srv_conn_t *conn_list;
    struct event *conn_sweep_ev;
    struct srv_top_worker *top; /* top.c: who is limited (main-listener workers) */
} srv_worker_t;

#define SRV_ADDR_STRLEN 128 /* "[v6%scope]:port" and its NUL */

struct srv {
    char *config_path;       /* NULL: built-in defaults */
    pthread_mutex_t cfg_mu;  /* guards `cfg` and reloads */
    cfg_t *cfg;              /* newest good snapshot (one reference) */
    uint64_t reload_seq;     /* under cfg_mu: reloads taken so far */
    rl_memory_t *memory;     /* the memory backend, shared by all workers */
    audit_t *audit;          /* NULL when audit is off */
    auth_lockout_t *lockout; /* auth-failure lockouts (this replica) */
    auth_revoke_t *revoked;  /* revoked JWTs (the store without Redis, else the cache) */
    struct auth_tickets *tickets; /* one-time tickets without Redis */
    srv_worker_t *workers;
    unsigned nworkers;
    srv_worker_t admin;
    /* Peers already warned about for untrusted dialect headers (bounded). */
    pthread_mutex_t warn_mu;
    char warned[64][HTTP_IP_STRLEN];
    unsigned nwarned;
    /* Repeated dialect headers from a proxy: one warning per interval. */
    log_ratelimit_t repeat_log;
    cfg_redis_mode_t cfg_redis_mode; /* as started: Redis settings need a restart */
    char *redis_prefix;              /* as started: keys and channels of every thread */
    auth_shared_t shared;            /* revocations + lockouts through Redis */
    atomic_bool degraded;            /* Redis unreachable: limits on on_redis_error */
    struct rc_sub *sub;              /* revocations + lockouts channels (admin thread) */
    struct event *resync_ev;         /* revocation index reload while `sub` is down */
    struct rl_fleet *fleet;          /* fleet.c: roster + live count (admin thread) */
    struct srv_trail *trail;         /* trail.c: the admin trail (srv_trail.h) */
    struct event *fleet_ev;          /* its heartbeat timer (admin thread) */
    atomic_bool fleet_settled;       /* the first heartbeat was answered or failed */
    bool fleet_failing;              /* admin thread: the last heartbeat failed */
    unsigned fleet_logged;           /* admin thread: the count last logged */
    struct srv_top *top;             /* top.c: the replica's top lists (admin thread) */
    struct explain_op *explains;     /* admin_explain.c: explain requests not yet freed */
    atomic_bool draining;            /* SIGTERM seen: /readyz 503, answers close */
    atomic_uint open_conns;          /* conn.c: counted connections, all workers */
    atomic_bool ready;      /* the first Redis attempt settled (or start grace over) */
    uint64_t start_ms;      /* main thread: when srv_run began (monotonic) */
    struct event *start_ev; /* main thread: polls for readiness until ready */
    struct event *delay_ev; /* main thread: shutdown_delay after SIGTERM */
    struct event_base *main_base; /* signals, config file watch */
    /* The addresses bound at start, port 0 resolved (listener.c); a reload
     * never rebinds, so they hold for the life of the process. */
    char listen_bound[SRV_ADDR_STRLEN];
    char admin_bound[SRV_ADDR_STRLEN];
    unsigned proxy_max_conns; /* 0: SRV_PROXY_MAX_CONNS; tests set it (development) */
    auth_ban_t *bans; /* bans (this replica's set; with Redis a copy of the index) */
};

/* server.c */
#define SRV_ADMIN_IDLE_MS 15000 /* the admin listener's idle timer */
void srv_set_idle_timeout(srv_worker_t *w, unsigned ms);

/* conn.c (main listener workers): see there */
int srv_conns_init(srv_worker_t *w);
void srv_conns_clear(srv_worker_t *w);
/* What conn.c saw of a complete request's head before evhttp read it. */
typedef enum {
    SRV_CONN_OK,
    SRV_CONN_NUL,            /* a NUL byte in the head: 400 */
    SRV_CONN_HEAD_TOO_LARGE, /* head over max_header_bytes: 431 */
    SRV_CONN_BODY_TOO_LARGE, /* Content-Length over max_body_bytes: 413 */
    SRV_CONN_METHOD,         /* a method evhttp does not parse (PURGE, get): 405 */
} srv_conn_verdict_t;
/* gencb: the request is complete.  For the last three, the request evhttp
 * hands over is a stand-in (conn.c): answer the verdict, nothing else. */
srv_conn_verdict_t srv_conn_request(srv_worker_t *w, struct evhttp_request *req);
/* The method of the request's head as conn.c read it (its first 15 bytes,
 * a token), for SRV_CONN_METHOD's audit line; "" when untracked. */
void srv_conn_method(srv_worker_t *w, struct evhttp_request *req, char *out, size_t len);
/* An answer is being written (w->unflushed counts it until it is, or until
 * its connection goes: a client that leaves mid-answer no longer holds a
 * drain for its full length), and it was. */
void srv_conn_writing(srv_worker_t *w, struct evhttp_request *req);
void srv_conn_answered(srv_worker_t *w, struct evhttp_request *req);
/* The pipeline's "client went away" callback (NULL: none), in place of
 * evhttp_connection_set_closecb, which conn.c owns. */
void srv_conn_watch(srv_worker_t *w, struct evhttp_connection *conn, srv_conn_close_fn *fn,
                    void *arg);

/* listener.c */
typedef enum {
    SRV_LISTEN_SHARED,    /* SO_REUSEPORT: one socket per worker */
    SRV_LISTEN_EXCLUSIVE, /* the admin listener */
    SRV_LISTEN_PROBE,     /* 0 when the address is free, else -1 (EADDRINUSE: taken) */
} srv_listen_t;
int srv_listen_on(const char *addr, srv_listen_t how, char *err, size_t errlen);
/* Is `addr` host:0 (the kernel picks the port)? */
bool srv_listen_any_port(const char *addr);
/* The address `fd` is bound to, numeric ("127.0.0.1:41234", "[::1]:41234");
 * -1 when it does not fit in `outlen` or getsockname fails. */
int srv_bound_name(int fd, char *out, size_t outlen);
int srv_listener_guard(srv_worker_t *w); /* after w->bound exists */
void srv_listener_unguard(srv_worker_t *w);

cfg_t *srv_current_cfg(srv_t *s); /* a new reference */
/* Load the config again and hand it to every thread.  Returns once every
 * main-listener worker serves it (at most SRV_RELOAD_WAIT_MS), and only then
 * gives it to the admin thread: a 200 from POST /admin/v1/reload, or a new
 * config_version on the admin port's /readyz, means requests get the new
 * config.  0, or -1 with err set (the old config stays).  Either way one
 * admin trail line (srv_trail.h) records it: `actor` is the admin token's id
 * or "signal" / "watch"; `request_id` the admin request's, else NULL. */
#define SRV_RELOAD_WAIT_MS 2000
int srv_reload(srv_t *s, const char *actor, const char *request_id, char *err,
               size_t errlen);

/* health.c: the /readyz body into `body`; returns the HTTP status. */
int srv_readyz(srv_t *s, const cfg_t *c, bool admin, char *body, size_t len);
/* health.c: tollgate_jwks_* of /metrics. */
struct evbuffer;
void srv_jwks_metrics(struct evbuffer *out);

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

/* fleet.c: fleet membership (admin thread), after srv_shared_start. */
#define SRV_FLEET_LEAVE_WAIT_MS 1000 /* longest the drain waits for the roster removal */
int srv_fleet_start(srv_t *s, char *err, size_t errlen);
void srv_fleet_leave(srv_t *s);   /* admin thread */
bool srv_fleet_settled(srv_t *s); /* any thread */
bool srv_fleet_left(srv_t *s);    /* any thread */
void srv_fleet_stop(srv_t *s);

/* shared.c: revocations and lockouts shared by every replica through Redis. */
typedef auth_shared_done_fn srv_shared_done_fn;
int srv_shared_start(srv_t *s, char *err, size_t errlen);
void srv_shared_stop(srv_t *s);
/* Revoke everywhere (Redis, then this replica); `done` runs once, later or
 * at once without Redis.  -1: not started (out of memory, Redis down). */
int srv_shared_revoke(srv_t *s, srv_revoke_kind_t kind, const char *iss, const char *id,
                      int64_t when, srv_shared_done_fn done, void *privdata);
/* Undo a jti's or (`subject`) a subject's revocation (of issuer `iss`, NULL:
 * the every-issuer one) everywhere; `done` gets the `when` removed, 0 when
 * there was none.  -1: not started. */
int srv_shared_unrevoke(srv_t *s, bool subject, const char *iss, const char *id,
                        srv_shared_done_fn done, void *privdata);
/* Count a refused credential of `ip` (Redis: lua/lockout.lua, which tells
 * every replica when a lockout starts; else this replica's memory).  Returns
 * NULL when counted already (`done` not called); else `done` runs once the
 * count is stored, so the 401 goes out only after the lock, if any, exists. */
typedef auth_lock_op_t srv_lock_op_t;
typedef auth_lock_done_fn srv_lock_done_fn;
srv_lock_op_t *srv_shared_lockout_fail(srv_worker_t *w, const char *ip,
                                       const auth_lockout_policy_t *p,
                                       srv_lock_done_fn done, void *privdata);
/* The request went away: `done` will not run, the count still completes. */
void srv_shared_lockout_detach(srv_lock_op_t *op);

/* pipeline.c: the main listener's request handler. */
void srv_pipeline_handle(struct evhttp_request *req, void *arg);
/* decide_ctx.c: the worker's decision context (w->dec), once its limiter
 * exists; cleared before the limiter goes. */
int srv_pipeline_init(srv_worker_t *w);
/* decide_ctx.c: a one-shot timer of the decision core (dec_ctx_hooks_t
 * timer_add/timer_cancel) on `base`; admin_explain.c's context uses it on
 * the admin loop. */
void *srv_dec_timer_add(struct event_base *base, unsigned ms, dec_timer_fn *fn,
                        void *fn_arg);
void srv_dec_timer_cancel(void *timer);
void srv_pipeline_clear(srv_worker_t *w);

/* admin.c: the admin listener's request handler. */
void srv_admin_handle(struct evhttp_request *req, void *arg);
void srv_send_plain_json(struct evhttp_request *req, int status, const char *body);
/* The admin API's JSON error envelope, with the request's X-Request-ID. */
void srv_admin_error(struct evhttp_request *req, int status, const char *code,
                     const char *msg);
/* Answer `o` (taken, may be NULL) as JSON; a 500 envelope when it cannot be
 * written. */
void srv_admin_send_json(struct evhttp_request *req, int status, json_t *o);
/* The trail's line (srv_trail.h) for an answered write: the result follows
 * `status` (ok < 400 <= refused < 500 <= error), `code` the envelope's. */
void srv_admin_trail_answer(srv_worker_t *w, struct evhttp_request *req, const char *actor,
                            const char *action, const char *target, int status,
                            const char *code);
const char *srv_status_reason(int status);

#endif
