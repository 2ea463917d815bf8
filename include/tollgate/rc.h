/* rc.h — tollgate's asynchronous Redis / Redis Cluster client.
 *
 * One rc_client_t per worker thread, bound to that thread's event_base; no
 * locks, every callback runs on that thread.  Connections are libevent
 * bufferevents (TLS through bufferevent_openssl); hiredis 0.14 is used only
 * for RESP (redisFormatCommandArgv, redisReader).
 *
 * Behaviour in short:
 *  - pipelining: many commands in flight per connection, replies matched FIFO;
 *  - per-command timeout (rc_opts_t.timeout_ms, counted from submission over
 *    every redirect and retry): the callback runs once with reply NULL and a
 *    late reply is read and discarded; a node that has answered nothing for
 *    max(1 s, 4 x timeout_ms) while commands wait is dropped and reconnected
 *    (a silent network partition never sends a reset);
 *  - AUTH (ACL user + password, or password only) and SELECT run on every
 *    (re)connect before any queued command; then SCRIPT LOAD of every
 *    registered script;
 *  - a node that fails is reconnected with capped exponential backoff and
 *    jitter; while it is down, commands for it fail fast (rc_command_argv
 *    returns NULL, or the callback gets NULL if the node went down later);
 *  - cluster: slot map from CLUSTER SLOTS via any seed, connections to
 *    primaries made lazily, MOVED updates the slot and retries (at most
 *    RC_MAX_REDIRECTS), ASK sends ASKING + the command to the target, the map
 *    is refreshed on MOVED (at most once a second), on connection loss and
 *    every RC_REFRESH_MS; a node no longer in the map is dropped once its
 *    in-flight commands are answered;
 *  - EVALSHA recovers from NOSCRIPT once (SCRIPT LOAD + EVALSHA on the node).
 *  - -BUSY, -LOADING, -TRYAGAIN, -CLUSTERDOWN and every other error reply are
 *    handed to the caller as REDIS_REPLY_ERROR replies (no retry: the caller's
 *    on_redis_error policy decides, and a retry would add latency).
 *
 * Callback contract: `fn` runs exactly once per successful rc_command_argv /
 * rc_evalsha, unless rc_cancel() was called first.  `reply` is borrowed (freed
 * after `fn` returns).  rc_client_free() runs every callback that is still
 * due with reply NULL and errstr "client closed" before it returns.  Inside a
 * callback it is safe to send commands, cancel other commands and call
 * rc_client_free() (the free is then deferred to the end of the dispatch).
 */
#ifndef TOLLGATE_RC_H
#define TOLLGATE_RC_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "tollgate/rc_proto.h"

struct event_base;

#define RC_MAX_REDIRECTS 5
#define RC_REFRESH_MS 10000

typedef struct rc_client rc_client_t;
typedef struct rc_cmd rc_pending_t;

/* A Lua script to register; the text is copied. */
typedef struct rc_script {
    const char *name;
    const char *text;
    size_t len;
} rc_script_t;

typedef struct rc_opts {
    int cluster;              /* 0 standalone, 1 Redis Cluster */
    const char *const *seeds; /* "host:port" or "[v6]:port"; standalone uses seeds[0] */
    size_t nseeds;
    const char *username;      /* ACL user, NULL = password-only AUTH */
    const char *password;      /* NULL = no AUTH */
    int db;                    /* SELECT db after AUTH when > 0 (standalone only) */
    int tls;                   /* connect with TLS */
    const char *tls_ca_file;   /* NULL = system default verify paths */
    const char *tls_cert_file; /* client certificate (optional, with key) */
    const char *tls_key_file;
    const char *tls_server_name; /* name to verify; NULL = the node's host */
    unsigned timeout_ms;         /* per command, 0 = none */
    unsigned connect_timeout_ms; /* connect + handshake; 0 = 1000 */
    unsigned backoff_max_ms;     /* reconnect backoff cap; 0 = 2000 (first: 50) */
    const rc_script_t *scripts;  /* registered scripts, index = script id */
    size_t nscripts;
} rc_opts_t;

/* `reply` NULL means no reply (timeout, disconnect, node down, client
 * closed); `errstr` then says why (never a secret) and is NULL otherwise.
 * Redis error replies arrive as reply->type == REDIS_REPLY_ERROR. */
typedef void (*rc_reply_fn)(rc_client_t *c, redisReply *reply, const char *errstr,
                            void *privdata);

/* A client on `base` (borrowed, outlives the client).  `o` and everything it
 * points to is copied.  Connecting starts at once, in the background.
 * NULL on bad options or out of memory, with the reason in `err`. */
rc_client_t *rc_client_new(struct event_base *base, const rc_opts_t *o, char *err,
                           size_t errlen);
/* Runs every callback still due with reply NULL, closes every connection.
 * NULL is a no-op.  Called inside a callback of `c`, the free is deferred until
 * that callback returns (the pending callbacks still run). */
void rc_client_free(rc_client_t *c);

/* Send argv (as redisFormatCommandArgv: argvlen NULL = strlen).  In cluster
 * mode `slot_key` (may be NULL: any primary) picks the node.  Returns a handle
 * valid until `fn` runs or rc_cancel(); NULL when the command cannot be sent
 * now (node down, no slot map, client closing, no memory): `fn` is then never
 * called and rc_client_errstr() says why. */
rc_pending_t *rc_command_argv(rc_client_t *c, const char *slot_key, size_t slot_key_len,
                              int argc, const char **argv, const size_t *argvlen,
                              rc_reply_fn fn, void *privdata);

/* EVALSHA of registered script `script` with `nkeys` keys then `nargs` args
 * (lens NULL = strlen).  keys[0] picks the slot: every key must share it. */
rc_pending_t *rc_evalsha(rc_client_t *c, size_t script, int nkeys, const char **keys,
                         const size_t *keylens, int nargs, const char **args,
                         const size_t *arglens, rc_reply_fn fn, void *privdata);

/* `fn` of `p` will not run; a late reply is discarded.  Only before `fn` ran. */
void rc_cancel(rc_pending_t *p);

/* true when commands can be sent: standalone, the connection is up; cluster,
 * the slot map covers every slot and no primary of it is known to be down. */
bool rc_client_up(const rc_client_t *c);
/* The last reason rc_command_argv returned NULL or a node went down. */
const char *rc_client_errstr(const rc_client_t *c);
/* Hex SHA1 of registered script `script` ("" when out of range). */
const char *rc_script_sha(const rc_client_t *c, size_t script);

/* The client's I/O as a small ops table, so a caller (the limiter's Redis
 * backend) can be tested against a fake without a socket.  `cl` is the
 * rc_client_t * for rc_client_ops; a fake passes its own object and gets it
 * back as the first argument of `fn`. */
typedef struct rc_ops {
    rc_pending_t *(*evalsha)(void *cl, size_t script, int nkeys, const char **keys,
                             const size_t *keylens, int nargs, const char **args,
                             const size_t *arglens, rc_reply_fn fn, void *privdata);
    rc_pending_t *(*command)(void *cl, const char *slot_key, size_t slot_key_len, int argc,
                             const char **argv, const size_t *argvlen, rc_reply_fn fn,
                             void *privdata);
    void (*cancel)(void *cl, rc_pending_t *p);
    bool (*up)(const void *cl);
} rc_ops_t;
extern const rc_ops_t rc_client_ops;

/* Counters since the client was made (this thread only), for metrics and
 * tests. */
typedef struct rc_stats {
    unsigned long long sent;    /* commands submitted */
    unsigned long long replies; /* replies delivered (error replies included) */
    unsigned long long failed;  /* callbacks with reply NULL, timeouts included */
    unsigned long long timeouts;
    unsigned long long moved, ask, noscript;
    unsigned long long connects;  /* successful (re)connects */
    unsigned long long refreshes; /* cluster maps applied */
} rc_stats_t;
void rc_client_stats(const rc_client_t *c, rc_stats_t *out);

/* ---- subscriber ------------------------------------------------------------
 *
 * A dedicated connection (never shared with commands) SUBSCRIBEd to a fixed
 * set of channels, on the client's event_base, with the client's AUTH, TLS,
 * connect timeout and reconnect backoff.  Standalone: on the client's node.
 * Cluster: on any node that answers (classic PUBLISH reaches every node of a
 * cluster), a ready one when there is one; after a failure the next attempt
 * goes to another node.  While subscribed, a PING is written whenever the
 * connection has been quiet for RC_SUB_PING_MS; a node that has sent nothing
 * for RC_SUB_DEAD_MS is dropped (DOWN) and reconnected: a silent node is
 * noticed within about RC_SUB_DEAD_MS + RC_SUB_TICK_MS.
 *
 * Events, in order UP (DOWN UP)*, each DOWN after an UP:
 *  - RC_SUB_UP: every channel is confirmed subscribed.  Messages may have been
 *    missed before (first UP) or while down, so the caller resyncs now;
 *  - RC_SUB_MESSAGE: `msg` (binary, msglen bytes) was published on `channel`;
 *  - RC_SUB_DOWN: the subscription is lost; reconnecting in the background.
 * `channel` and `msg` are borrowed for the call, NULL for UP and DOWN.
 * A reply that is not a well-formed pub/sub push (or an error reply, such as
 * NOAUTH) drops the connection and reconnects; unknown push kinds are ignored.
 */
#define RC_SUB_PING_MS 500
#define RC_SUB_DEAD_MS 2000
#define RC_SUB_TICK_MS 250

typedef struct rc_sub rc_sub_t;
enum { RC_SUB_MESSAGE, RC_SUB_UP, RC_SUB_DOWN };
typedef void (*rc_sub_fn)(rc_sub_t *s, int event, const char *channel, size_t chlen,
                          const char *msg, size_t msglen, void *privdata);

/* Subscribe to `n` channels (NUL-terminated names, copied); connecting starts
 * at once.  NULL (rc_client_errstr() says why) on bad arguments, a closing
 * client or no memory.  rc_client_free() frees every subscription still alive
 * without calling `fn`: the caller must not use them afterwards. */
rc_sub_t *rc_subscribe(rc_client_t *c, const char *const *channels, size_t n, rc_sub_fn fn,
                       void *privdata);
/* Close and free; `fn` is not called again.  NULL is a no-op.  Safe inside
 * any callback of the client, `s`'s own included (the memory goes when the
 * callback returns). */
void rc_sub_free(rc_sub_t *s);
/* true between UP and DOWN. */
bool rc_sub_up(const rc_sub_t *s);
/* "host:port" of the node the subscriber uses or tries now (for logs, tests). */
const char *rc_sub_node(const rc_sub_t *s);

/* A parsed redis:// or rediss:// URL:
 *   redis[s]://[[user][:password]@]host[:port][/db]
 * host may be [v6-literal]; user and password are percent-decoded. */
typedef struct rc_url {
    int tls;
    char host[256];
    unsigned port; /* default 6379 */
    char username[128];
    char password[512];
    int has_username, has_password;
    int db; /* default 0 */
} rc_url_t;

/* 0 ok, -1 with the reason in `err` (the password is never part of it). */
int rc_url_parse(const char *url, rc_url_t *out, char *err, size_t errlen);
/* Wipe the secrets of `u`. */
void rc_url_wipe(rc_url_t *u);

#endif
