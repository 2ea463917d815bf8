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
 * Where it stands, and how the rest moves behind this door:
 *  1. Done: every step of server/pipeline.c records its answer in a
 *     dec_verdict_t and returns; one function there (answer()) sends it,
 *     writes the audit line and frees the request.  Steps add no header to
 *     the answer themselves.
 *  2. Next: the steps move to decide/ (between cfg/ and server/), one file
 *     per step group, taking a dec_ctx_t (config snapshot reference,
 *     limiter, stores, clock) and the dec_input_t instead of srv_req_t;
 *     evhttp_find_header becomes dec_headers_t.find, the peer address and
 *     the dialect's view come in the input.  Tickets and lockout counting
 *     sit behind an ops table, like rl_backend_ops_t, so a fake serves the
 *     unit tests and dry runs.
 *  3. Then: the door's functions, with the lifetime rule of rl_check():
 *       dec_pending_t *dec_start(dec_ctx_t *ctx, const cfg_t *snapshot,
 *                                const dec_input_t *in, dec_done_fn *done,
 *                                void *arg);
 *       void dec_cancel(dec_pending_t *p);  (the client left: no `done`)
 *     `done` runs exactly once, later, on the caller's thread, with a
 *     verdict valid during the call — unless dec_cancel() came first.
 *     pipeline.c keeps the transport: the client-gone watch, the answer,
 *     the proxy, the audit line.
 *  4. dry_run: a decision that consumes no token, counts no failure and
 *     redeems no ticket (explain, replay), through the same code path.
 */
#ifndef TOLLGATE_DECIDE_H
#define TOLLGATE_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth.h"

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

/* One request, transport-neutral.  Everything is borrowed for the length of
 * the decision (until `done`, or dec_cancel()). */
typedef struct dec_input {
    const char *method; /* as sent: "GET"; NULL when the transport could not tell */
    const char *target; /* raw request target (path?query) */
    const char *host;   /* Host / :authority, NULL when none */
    const char *peer;   /* TCP peer address, "" when unknown (replay) */
    bool tls;           /* the request came over TLS to tollgate */
    dec_headers_t headers;
    /* The forward-auth dialect's view of the original request, as the
     * adapter parsed it (DEC_DIALECT_NONE: method/target/host above). */
    dec_dialect_t dialect;
    const char *o_method, *o_target, *o_host;
    bool dry_run; /* consume no token, count no failure, redeem no ticket */
} dec_input_t;

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

/* What the decision answers.  Zeroed at the start; the owner of the request
 * frees `body`, `limits.policy` and `limits.state`. */
#define DEC_VERDICT_HDRS 4 /* headers a step sets: a preflight's three is the most */
#define DEC_VERDICT_VAL 80 /* a copied value: an Allow list, a Retry-After */
typedef struct dec_verdict {
    int status;          /* 0 until decided */
    const char *code;    /* the error envelope's code; NULL: `body` instead */
    const char *message; /* its message, a fixed text (never request data) */
    char *body;          /* without `code`: the JSON body (malloc'd) or NULL */
    bool close;          /* Connection: close with whatever answer ends it */
    /* Headers to set on the answer (Retry-After, Allow, CORS): each value
     * borrowed (static, config or request text) or copied into `vals`. */
    size_t nset;
    dec_header_t set[DEC_VERDICT_HDRS];
    char vals[DEC_VERDICT_HDRS][DEC_VERDICT_VAL];
    /* Request headers the upstream must not see (credentials, when
     * proxy.hide_credentials), borrowed; empty until the allow step moves
     * behind this door (proxy.c drops them by flag meanwhile). */
    const char *const *remove;
    size_t nremove;
    /* The identity that was decided on, borrowed from the decision; NULL
     * when anonymous or refused.  Set on an allow. */
    const auth_identity_t *id;
    dec_limits_t limits;
} dec_verdict_t;

/* The decision is ready: `v` is valid during the call only. */
typedef void dec_done_fn(const dec_verdict_t *v, void *arg);

#endif
