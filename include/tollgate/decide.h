/* decide.h — the decision on one request, without its transport.
 *
 * The door between the decision (who is asking, which route, lockout,
 * credential, scopes, limits) and whatever carries the request: the evhttp
 * listener (forward-auth and proxy, server/pipeline.c), and later a gRPC
 * ext_authz listener, `explain` (decide without spending anything) and
 * `replay` (recorded requests on simulated time, no sockets).  No transport
 * type crosses it: a request comes in as dec_input_t (strings and a header
 * iterator), the decision goes out as dec_verdict_t (a status, an error or
 * a body, headers to set and to remove, the identity, the limits report),
 * and only the adapter turns a verdict into an answer.
 *
 * Where it stands (issue 21):
 *  1. Done: every step records its answer in a dec_verdict_t and returns;
 *     one place turns a verdict into an answer (the adapter's dec_done).
 *  2. Done: the steps live in decide/ (between cfg/ and server/, one file
 *     per step group) on a dec_req_t of their own, taking a dec_ctx_t
 *     (limiter, stores, revocations, JWKS copies, timer and clock hooks)
 *     and the dec_input_t; headers are read through dec_headers_t only,
 *     the forward-auth dialects are parsed from them (decide/dec_fwd.c).
 *     Tickets and lockout counting sit behind dec_stores_ops_t; the unit
 *     tests (tests/unit/test_decide.c) use a fake.
 *  3. Done: dec_start() / dec_cancel() with the lifetime rule of
 *     rl_check(): `done` runs exactly once, later, on the caller's thread,
 *     with a verdict valid during the call — unless dec_cancel() came
 *     first.  server/pipeline.c is the evhttp adapter (the input, the
 *     client-gone watch, the answer, the audit line), server/proxied.c
 *     forwards an allowed request.
 *  4. Done: dry_run, on the same code path: the stores' writes are
 *     skipped (no failure counted, no ticket redeemed or issued) and the
 *     limiter decides without taking a token (rl_request_t.dry_run, set in
 *     dec_step_limits: docs/redis.md "Dry runs").
 *  5. Done: explain (POST /admin/v1/explain, server/admin_explain.c): a
 *     dry run with dec_input_t.explain set records what the steps saw
 *     (route, authentication, scopes, each limit with its bucket key) in a
 *     dec_explain_t; as_client decides as an API-key client by id, on
 *     such a dry run only.  The live path tests one NULL pointer per step.
 *  Left: a transport that carries the original request out of band (gRPC
 *  ext_authz) fills dialect/o_* of dec_input_t; the evhttp adapter leaves
 *  DEC_DIALECT_NONE and the core reads the dialect headers itself.
 */
#ifndef TOLLGATE_DECIDE_H
#define TOLLGATE_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth.h"
#include "tollgate/auth_lockout.h"
#include "tollgate/auth_revoke.h"
#include "tollgate/cfg.h"
#include "tollgate/rl_limiter.h"

/* One header: a name and a value, both borrowed. */
typedef struct dec_header {
    const char *name, *value;
} dec_header_t;

/* Called for each request header in order, repeated names included;
 * non-zero stops the walk. */
typedef int (*dec_header_fn)(void *arg, const char *name, const char *value);

/* The request's headers as the transport holds them (evhttp's list, a gRPC
 * header map, a recorded request).  Names compare case-insensitively. */
typedef struct dec_headers {
    void *ctx;
    /* The first value of `name`, or NULL. */
    const char *(*find)(void *ctx, const char *name);
    /* Walk every header with `fn` (see dec_header_fn). */
    void (*each)(void *ctx, dec_header_fn fn, void *arg);
} dec_headers_t;

/* How the request asks (docs/forward-auth.md): the request itself (proxy
 * mode, the Envoy dialect) or an ingress's description of the original. */
typedef enum {
    DEC_DIALECT_NONE,    /* proxy mode: the request is the original */
    DEC_DIALECT_ENVOY,   /* forward-auth, the original is the request under the prefix */
    DEC_DIALECT_NGINX,   /* X-Original-URI / X-Original-URL / X-Original-Method */
    DEC_DIALECT_TRAEFIK, /* X-Forwarded-Method / -Uri / -Host / -Proto */
} dec_dialect_t;

/* What the transport refused of the head before it parsed it. */
typedef enum {
    DEC_HEAD_OK,
    DEC_HEAD_NUL,            /* a NUL byte in the head: 400, the headers unreliable */
    DEC_HEAD_TOO_LARGE,      /* over max_header_bytes: 431 */
    DEC_HEAD_BODY_TOO_LARGE, /* Content-Length over max_body_bytes: 413 */
    DEC_HEAD_METHOD,         /* a method the transport cannot parse: 405 */
} dec_head_t;

/* The request body as far as it was read, contiguous; NULL when none. */
typedef const char *(*dec_body_fn)(void *ctx, size_t *len);

/* One request, transport-neutral.  Everything is borrowed for the length of
 * the decision (until `done`, or dec_cancel()). */
struct dec_explain;
typedef struct dec_input {
    const char *method; /* as sent: "GET"; NULL when the transport could not tell */
    const char *target; /* raw request target (path?query) */
    const char *host;   /* :authority; NULL: the Host header, if any */
    const char *peer;   /* TCP peer address, "" when unknown (replay) */
    bool tls;           /* the request came over TLS to tollgate */
    dec_headers_t headers;
    /* The original request, when the transport carries it out of band (a
     * gRPC CheckRequest): believed as given.  DEC_DIALECT_NONE: a request
     * at forward_auth.path is read in its dialect's headers (decide/dec_fwd.c). */
    dec_dialect_t dialect;
    const char *o_method, *o_target, *o_host;
    bool dry_run; /* consume no token, count no failure, redeem no ticket */
    /* Explain (dry runs only; the live adapter leaves both NULL): the steps
     * record what they saw in `explain`, and `as_client` names an API-key
     * client by id to decide as, without its secret.  Both are ignored
     * unless dry_run is set and explain is not NULL. */
    struct dec_explain *explain;
    const char *as_client;
    dec_head_t head;  /* DEC_HEAD_OK, or the refusal: nothing else is read then
                         (method: the refused method's name, or NULL) */
    dec_body_fn body; /* read only for a POST whose Content-Type carries
                         parameters (a _method field); NULL: no body */
    void *body_ctx;
    /* Replay (server/replay.c): decide as this recorded identity instead of
     * reading a credential.  Honoured only on a context made by
     * dec_ctx_new_replay(); every other context (the listeners, explain)
     * ignores it, whatever the input says. */
    const struct dec_replay_id *replay_as;
    /* Fill dec_verdict_t.keys (the audit line's `keys`): a walk of every
     * limit's `by` per decision, so only an adapter that writes them asks. */
    bool want_keys;
} dec_input_t;

/* A recorded identity (an audit line's auth_method, client_id, iss, scopes,
 * tier): its secret is not in the log, so replay decides as it.  Borrowed. */
typedef struct dec_replay_id {
    const char *method;    /* "api_key", "jwt", "ticket"; anything else: none */
    const char *client_id; /* NULL: the credential was refused (`refused` says why) */
    const char *refused;   /* the recorded reason of a refused credential */
    const char *iss;       /* JWT (and a ticket issued for one): the issuer */
    const char *scopes;    /* held scopes, space-separated; NULL: none */
    const char *tier;      /* NULL: none */
    /* Claim values a limit keyed on (by: claim:NAME), as recorded. */
    const dec_header_t *claims;
    size_t nclaims;
} dec_replay_id_t;

/* The limit the answer reports (docs/reference.md §5.2): decimal strings,
 * empty when no enforced limit was decided. */
#define DEC_NUM_MAX 24 /* >= UTIL_FMT_U64_MAX */
typedef struct dec_limits {
    char limit[DEC_NUM_MAX];     /* X-RateLimit-Limit */
    char remaining[DEC_NUM_MAX]; /* X-RateLimit-Remaining */
    char reset[DEC_NUM_MAX];     /* X-RateLimit-Reset, seconds */
    char retry[DEC_NUM_MAX];     /* Retry-After of a rate_limited denial, else "" */
    char *policy;                /* RateLimit-Policy value, malloc'd, or NULL */
    char *state;                 /* RateLimit value, malloc'd, or NULL */
} dec_limits_t;

/* A value a limit keys on (audit "keys"): header:NAME or claim:NAME. */
typedef struct dec_key {
    bool claim;        /* claim:NAME, else header:NAME */
    const char *name;  /* the limit's (snapshot) */
    const char *value; /* NULL: absent */
} dec_key_t;

/* What the verdict asks of the adapter. */
typedef enum {
    DEC_ANSWER,  /* answer with status and the error envelope (code) or `body` */
    DEC_ALLOW,   /* forward-auth allow: 200, `set` are the identity headers */
    DEC_FORWARD, /* proxy mode allow: send the request to `forward`, adding `set`
                    and leaving out `remove` */
} dec_kind_t;

/* Where a proxy-mode allow goes. */
typedef struct dec_forward {
    const char *upstream; /* the route's, borrowed from the snapshot */
    const char *target;   /* normalized path and the query as sent */
    unsigned timeout_ms;  /* the route's upstream_timeout */
    bool peer_trusted;    /* the TCP peer is in trusted_proxies */
} dec_forward_t;

/* What the decision answers.  Everything it points to is the decision's
 * (or the snapshot's, or the input's) and valid during `done` only: the
 * adapter copies what it keeps. */
#define DEC_VERDICT_HDRS (8 + AUTH_JWT_MAX_CLAIM_HDRS) /* an allow's is the most */
#define DEC_VERDICT_VALS 4 /* copied values: a preflight's three is the most */
#define DEC_VERDICT_VAL 80 /* a copied value: an Allow list, a Retry-After */
#define DEC_VERDICT_KEYS 8 /* limit key values recorded (audit "keys") */
typedef struct dec_verdict {
    dec_kind_t kind;
    int status;          /* 0 until decided */
    const char *code;    /* the error envelope's code; NULL: `body` instead */
    const char *message; /* its message, a fixed text (never request data) */
    char *body;          /* without `code`: the JSON body or NULL */
    bool close;          /* Connection: close with whatever answer ends it */
    size_t nset;         /* entries of set[] */
    size_t nvals;        /* entries of vals[] */
    /* Request headers the upstream must not see (proxy.hide_credentials):
     * X-API-Key, and Authorization when it is a Bearer token. */
    const char *remove[2];
    size_t nremove;
    dec_forward_t forward; /* DEC_FORWARD */
    /* The identity authenticated, also when a later step refused the
     * request (scopes, limits); NULL when anonymous or its credential was
     * refused. */
    const auth_identity_t *id;
    dec_limits_t limits;
    /* The account of the decision: the audit line and the answer's own
     * headers.  reason and decision are static text; limit is the
     * snapshot's. */
    const char *reason;     /* the audit reason: "ok", "invalid_api_key"... */
    const char *decision;   /* "allow", "deny", "error" */
    const char *limit;      /* the limit that denied, or a shadow one that would have */
    const char *request_id; /* X-Request-ID: the client's when valid, else new */
    const char *client_ip;  /* "" when unknown */
    const char *method;     /* the original request's (forward-auth: the dialect's) */
    const char *target;
    const char *host;
    const char *origin; /* an allowed CORS Origin, or NULL */
    bool https;         /* TLS, or X-Forwarded-Proto: https from a trusted peer */
    bool deprecated;    /* allowed with a deprecated API key */
    bool bearer_failed; /* a presented JWT was refused (WWW-Authenticate) */
    /* The audit line's "why" (issue 22 item 6), and what replay needs:
     * all borrowed like the rest, valid during `done` only. */
    const cfg_route_t *route; /* the route matched (the snapshot's), or NULL */
    const char *auth_method;  /* "api_key", "jwt", "ticket", "none"; NULL: not reached */
    int64_t decided_ms;       /* unix ms (the wall hook) when the decision started */
    const char *peer;         /* the TCP peer, "" when unknown */
    const char *mode;         /* "proxy", "envoy", "nginx", "traefik", "ticket" */
    /* The values the snapshot's limits key on besides client, ip and route
     * (by: header:NAME, claim:NAME), each once, the first DEC_VERDICT_KEYS;
     * none unless dec_input_t.want_keys.  A credential-bearing header
     * (dec_header_is_credential) is never among them. */
    dec_key_t keys[DEC_VERDICT_KEYS];
    size_t nkeys;
    /* Last, so a decision zeroes only what comes before (nset, nvals say
     * how much of these is used).  Headers to set: on the answer
     * (Retry-After, Allow, CORS), on the forward-auth allow (X-Auth-*), on
     * the forwarded request (DEC_FORWARD). */
    dec_header_t set[DEC_VERDICT_HDRS];
    char vals[DEC_VERDICT_VALS][DEC_VERDICT_VAL];
} dec_verdict_t;

/* ---- explain: what a dry run saw ----------------------------------- */

/* One limit that applied (rl_check's report), with its bucket's key. */
typedef struct dec_explain_limit {
    const rl_limit_t *limit;       /* the snapshot's */
    char key[RL_MAX_IDENTITY_LEN]; /* the identity, as rl_policy_identity spells it
                                      ("%L" when it does not fit) */
    rl_rate_t rate;                /* effective: tier applied */
    rl_verdict_t v;                /* what a real check would get now */
    bool fallback;                 /* decided by the local fallback */
    bool failed;                   /* the backend failed, on_redis_error open */
} dec_explain_limit_t;

/* Filled by the steps of a dry run whose dec_input_t.explain points here
 * (zeroed by the caller); read it in `done`, then dec_explain_clear().  A
 * field stays zero when the decision ended before its step. */
typedef struct dec_explain {
    bool routed;              /* the route step matched a route */
    const cfg_route_t *route; /* the route (the snapshot's), or NULL */
    /* Authentication: NULL when not reached; "ok" (identity in the
     * verdict), "anonymous" (no credential, allowed), "not_required" (auth
     * none), or the failure reason (the verdict's). */
    const char *authn;
    const char *authn_method;    /* "api_key", "jwt", "ticket", "none" */
    bool authz_checked;          /* the scopes step ran: */
    bool authz_ok;               /* ...and every scope of the route is held */
    bool limits_checked;         /* the limiter answered */
    dec_explain_limit_t *limits; /* nlimits, config order; malloc'd */
    size_t nlimits;
    const char *banned; /* a ban stopped it: "ip" or "client"; else NULL */
} dec_explain_t;

/* Free what the steps put in `e` (not `e` itself). */
void dec_explain_clear(dec_explain_t *e);

/* The decision is ready: `v` is valid during the call only. */
typedef void dec_done_fn(const dec_verdict_t *v, void *arg);

/* ---- stores: lockout counting and tickets ---------------------------- */

/* A ticket operation's answer: `val` (len bytes) the stored value (redeem;
 * NULL: no such ticket) or "OK" (issue: stored); `failed`: the store could
 * not answer. */
typedef void dec_ticket_done_fn(const char *val, size_t len, bool failed, void *arg);
typedef void dec_count_done_fn(void *arg);

typedef enum {
    DEC_STORE_NOW,    /* answered in the call: see the function */
    DEC_STORE_LATER,  /* *op set; `done` runs once, later, unless cancelled */
    DEC_STORE_FAILED, /* could not start; `done` will not run */
} dec_store_status_t;

/* The stores the decision reads and writes, like rl_backend_ops_t: the real
 * one (dec_stores_real_ops) wraps auth_lockout_*, auth_shared_lockout_* and
 * auth_ticket_* / auth_tickets_*; a fake serves the unit tests.  Every
 * write is skipped on a dry run: the core never calls lockout_fail,
 * ticket_redeem or ticket_issue for one. */
typedef struct dec_stores_ops {
    /* 0 when `ip_key` may try now, else ms until it may. */
    uint64_t (*lockout_check)(void *st, const char *ip_key, int64_t now_ms);
    /* Count a refused credential.  NULL: counted already (`done` not
     * called); else `done` runs once, later, unless lockout_detach(). */
    void *(*lockout_fail)(void *st, const char *ip_key, const auth_lockout_policy_t *p,
                          int64_t now_ms, dec_count_done_fn *done, void *arg);
    void (*lockout_detach)(void *op);
    /* Take the value stored under `key` once.  DEC_STORE_NOW: *val is the
     * value (malloc'd; NULL: none), `done` not called. */
    dec_store_status_t (*ticket_redeem)(void *st, const char *key, int64_t now_ms,
                                        char **val, void **op, dec_ticket_done_fn *done,
                                        void *arg);
    /* Store `val` under `key` for ttl_s unless the key exists.  DEC_STORE_NOW:
     * stored, `done` not called. */
    dec_store_status_t (*ticket_issue)(void *st, const char *key, const char *val,
                                       unsigned ttl_s, int64_t now_ms, void **op,
                                       dec_ticket_done_fn *done, void *arg);
    /* `done` of a DEC_STORE_LATER ticket operation will not run. */
    void (*ticket_cancel)(void *op);
} dec_stores_ops_t;

/* The real stores (decide/dec_stores.c): this replica's lockouts and,
 * without Redis, its tickets; with Redis (`rc` set) lockout counting goes
 * through `shared` and tickets through Redis.  All borrowed. */
struct auth_shared;
struct auth_tickets;
struct rc_ops;
typedef struct dec_stores_real {
    auth_lockout_t *lockout;
    struct auth_shared *shared;
    struct auth_tickets *tickets;
    const struct rc_ops *rc_ops;
    void *rc; /* NULL: no Redis */
} dec_stores_real_t;
extern const dec_stores_ops_t dec_stores_real_ops; /* st: a dec_stores_real_t */

/* ---- the context: one per worker thread ------------------------------ */

typedef void dec_timer_fn(void *arg);

/* What the decision needs from the thread that runs it: a timer (the
 * decision answers later even when it is decided at once, and polls for a
 * JWKS fetch), and where its observations go (metrics, warnings).  Every
 * function runs on that thread; `arg` is the adapter's. */
typedef struct dec_hooks {
    void *arg;
    /* Run fn(fn_arg) once after `ms`; returns a handle for timer_cancel,
     * NULL when out of memory. */
    void *(*timer_add)(void *arg, unsigned ms, dec_timer_fn *fn, void *fn_arg);
    void (*timer_cancel)(void *arg, void *timer);
    /* The health answer: the /readyz body into `body`, its status; NULL: 200 ok. */
    int (*readyz)(void *arg, const cfg_t *c, char *body, size_t len);
    /* Observations; any may be NULL. */
    void (*auth_failure)(void *arg, const char *reason);
    void (*jwt_cache)(void *arg, bool hit);
    void (*limit)(void *arg, const char *name, const char *outcome, const char *mode);
    void (*deprecated)(void *arg, const char *client_id);
    void (*untrusted_forwarder)(void *arg, const char *peer);
    void (*forwarded_repeat)(void *arg, const char *dialect, const char *name,
                             const char *peer);
    /* The clocks (ms); NULL: util_wall_ms / util_mono_ms. */
    int64_t (*wall_ms)(void *arg);
    uint64_t (*mono_ms)(void *arg);
} dec_hooks_t;

typedef struct dec_ctx_cfg {
    rl_limiter_t *limiter;
    const dec_stores_ops_t *stores;
    void *store;
    auth_revoke_t *revoked;           /* NULL: no revocation check */
    struct auth_jwt_local *jwt_local; /* this thread's remote key sets, or NULL */
    const char *ticket_prefix;        /* key prefix of tickets ("tg:") */
    dec_hooks_t hooks;
    struct auth_ban *bans; /* NULL: no ban check (auth_ban.h) */
} dec_ctx_cfg_t;

typedef struct dec_ctx dec_ctx_t;

/* A context for one thread; everything in `cfg` is borrowed and outlives it. */
dec_ctx_t *dec_ctx_new(const dec_ctx_cfg_t *cfg);

/* A replay context (server/replay.c): the same, and dec_input_t.replay_as
 * is honoured.  Only the replay subcommand makes one; it has no listener. */
dec_ctx_t *dec_ctx_new_replay(const dec_ctx_cfg_t *cfg);

/* Whether a header or claim may carry a credential: the top lists' rule,
 * rl_name_may_be_credential (auth, token, key, secret, cookie, session,
 * pass, signature, credential, csrf, xsrf, jwt in the name, any case).  A
 * limit keyed on one is never recorded in the audit line, and replay
 * reports it as not exactly replayable. */
bool dec_header_is_credential(const char *name);
void dec_ctx_free(dec_ctx_t *ctx);

/* ---- the door -------------------------------------------------------- */

typedef struct dec_pending dec_pending_t;

/* Decide `in` under `snapshot` (the caller holds a reference until `done`
 * or dec_cancel).  `done` runs exactly once, later (never inside
 * dec_start), on the context's thread — unless dec_cancel() came first.
 * NULL only when out of memory (`done` then not called). */
dec_pending_t *dec_start(dec_ctx_t *ctx, const cfg_t *snapshot, const dec_input_t *in,
                         dec_done_fn *done, void *arg);

/* A pending decision's account so far, for the audit line of a client that
 * left: request id, client ip, the original method, target and host, the
 * identity when one authenticated (status, decision and reason are not
 * decided).  Valid until dec_cancel(p). */
const dec_verdict_t *dec_progress(dec_pending_t *p);

/* The client left: `done` will not run; whatever the decision waits for is
 * cancelled (a lockout count already sent still completes). */
void dec_cancel(dec_pending_t *p);

#endif
