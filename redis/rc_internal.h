/* rc_internal.h — private structures of the Redis client (the files of redis/).
 *
 * Ownership: a command (rc_cmd_t) sits in exactly one queue at a time — the
 * client's wait queue (cluster map not known yet), a connection's wait queue
 * (connecting / handshaking) or a connection's in-flight FIFO (written, reply
 * due).  A command whose callback has run or was cancelled (fn == NULL) that
 * is still in flight stays there as a placeholder until its reply is read,
 * so that FIFO matching stays right; then it is freed.
 *
 * Re-entrancy: every entry from libevent (read, event, timer callbacks) goes
 * through rc_enter()/rc_leave().  Connections that die are moved to the
 * client's graveyard and freed, like a client freed inside a callback, only
 * when the outermost rc_leave() runs.
 */
#ifndef TOLLGATE_RC_INTERNAL_H
#define TOLLGATE_RC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include "tollgate/rc.h"
#include "tollgate/rc_proto.h"

struct bufferevent;
struct evdns_base;

typedef struct rc_conn rc_conn_t;
typedef struct rc_cmd rc_cmd_t;

typedef enum {
    RC_WHERE_NONE,
    RC_WHERE_CLIENT_WAIT,
    RC_WHERE_CONN_WAIT,
    RC_WHERE_CONN_FLIGHT,
} rc_where_t;

/* Internal reply handler (handshake steps); runs instead of `fn`. */
typedef void (*rc_internal_fn)(rc_conn_t *conn, redisReply *reply, void *privdata);

struct rc_cmd {
    TAILQ_ENTRY(rc_cmd) link;
    rc_client_t *c;
    rc_reply_fn fn; /* NULL once delivered or cancelled */
    void *privdata;
    rc_internal_fn ifn; /* handshake step, or NULL */
    char *buf;          /* formatted RESP, kept for retries */
    size_t len;
    int slot;       /* -1: no slot (any node, or `pin`) */
    rc_conn_t *pin; /* send to this node only (refresh), or NULL */
    rc_where_t where;
    rc_conn_t *conn; /* the queue owner when where is CONN_* */
    int redirects;
    int script; /* registered script id for NOSCRIPT recovery, or -1 */
    bool noscript_retried;
    bool asking; /* send ASKING right before this command */
    bool timer_on;
    struct event timer;
};
TAILQ_HEAD(rc_cmdq, rc_cmd);

typedef enum {
    RC_CONN_IDLE,       /* never connected (lazy) */
    RC_CONN_CONNECTING, /* TCP/TLS connect */
    RC_CONN_HANDSHAKE,  /* AUTH / SELECT in flight */
    RC_CONN_READY,
    RC_CONN_BACKOFF, /* down, reconnect timer armed: commands fail fast */
    RC_CONN_DEAD,    /* in the graveyard */
} rc_conn_state_t;

struct rc_conn {
    TAILQ_ENTRY(rc_conn) link;
    rc_client_t *c;
    char *host;
    unsigned port;
    char name[300]; /* "host:port" for logs and lookups */
    rc_conn_state_t state;
    struct bufferevent *bev;
    redisReader *reader;
    struct rc_cmdq waitq;
    struct rc_cmdq flight;
    unsigned hs_pending;  /* handshake replies still due */
    unsigned attempts;    /* failed connects in a row */
    bool seed;            /* from the options: kept for map refreshes */
    bool in_map;          /* owns slots in the current map */
    bool retired;         /* left the map: drop once drained */
    bool was_up;          /* for one log line per up/down change */
    uint64_t progress_ms; /* last read, or when `flight` became non-empty */
    struct event retry;   /* reconnect timer, also connect timeout */
    bool retry_on;
    rc_sub_t *sub; /* a subscriber's connection (not in c->conns), or NULL */
};
TAILQ_HEAD(rc_connq, rc_conn);

/* A subscriber owns its connection; once freed (dead) it waits, with the
 * connection, in the graveyard and goes with it (rc_conn_destroy). */
struct rc_sub {
    TAILQ_ENTRY(rc_sub) link; /* in the client's subs while alive */
    rc_client_t *c;
    rc_conn_t *conn;
    char *subcmd; /* SUBSCRIBE ch..., formatted RESP */
    size_t subcmd_len;
    size_t nchannels;
    size_t confirmed; /* subscribe confirmations on this connection */
    rc_sub_fn fn;
    void *privdata;
    bool up;
    bool dead;         /* rc_sub_free'd: no more callbacks */
    uint64_t ping_ms;  /* last PING written */
    struct event tick; /* liveness check while subscribed */
    bool tick_on;
};
TAILQ_HEAD(rc_subq, rc_sub);

/* How the layers below rc.c (rc_conn, rc_cluster, rc_sub) report upward:
 * filled by rc_client_new(), so no file calls a file above it. */
typedef struct rc_events {
    void (*ready)(rc_conn_t *conn); /* handshake done (a subscriber's too) */
    void (*down)(rc_conn_t *conn);  /* failed or closed */
    /* The reply to `cmd`, popped from conn's flight: redirects, NOSCRIPT,
     * delivery, freeing. */
    void (*reply)(rc_conn_t *conn, rc_cmd_t *cmd, redisReply *reply);
    void (*sub_reply)(rc_conn_t *conn, const redisReply *r); /* on a subscriber's conn */
    void (*sub_retry)(rc_conn_t *conn); /* a subscriber's conn retries: maybe elsewhere */
    int (*route)(rc_client_t *c, rc_cmd_t *cmd, bool deliver); /* see rc_route */
    void (*settle)(rc_client_t *c); /* the outermost rc_leave() */
} rc_events_t;

struct rc_client {
    const rc_events_t *events;
    struct event_base *base;
    struct evdns_base *dns;
    rc_opts_t o; /* strings below are owned copies */
    char **seeds;
    char *username, *password;
    char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name;
    SSL_CTX *ssl_ctx;
    rc_script_t *scripts;
    char (*shas)[41];
    const struct timeval *cmd_tv; /* common timeout for commands, or NULL */

    struct rc_connq conns;
    struct rc_connq graveyard;
    struct rc_subq subs;  /* live subscribers */
    struct rc_cmdq waitq; /* cluster: waiting for the slot map */
    rc_conn_t **slots;    /* cluster slot map, RC_NSLOTS entries, or NULL */
    bool map_ok;          /* the map covers every slot */
    bool refreshing;      /* a CLUSTER SLOTS is in flight */
    uint64_t last_refresh_ms;
    struct event refresh_timer;

    unsigned depth;  /* nesting of libevent callbacks / user callbacks */
    bool free_asked; /* rc_client_free inside a callback */
    bool closing;
    uint64_t rng;
    rc_stats_t stats;
    char errstr[512];
};

/* rc_cmd.c */
void rc_enter(rc_client_t *c);
void rc_leave(rc_client_t *c);
void rc_seterr(rc_client_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t rc_rand(rc_client_t *c);
/* Run `fn` (if any) once with (reply, errstr), stop the timer; the caller
 * frees or keeps the command by its location. */
void rc_cmd_deliver(rc_cmd_t *cmd, redisReply *reply, const char *errstr);
void rc_cmd_free(rc_cmd_t *cmd);
/* A command for argv (formatted now), no timer yet; NULL when out of memory. */
rc_cmd_t *rc_cmd_new(rc_client_t *c, int argc, const char **argv, const size_t *argvlen,
                     rc_reply_fn fn, void *privdata);
/* Handle one reply to `cmd` (popped from conn's flight): redirects, NOSCRIPT,
 * delivery, freeing. */
void rc_cmd_on_reply(rc_conn_t *conn, rc_cmd_t *cmd, redisReply *reply);
/* Route a command to its node (slot map / pin / the only node); on failure the
 * command gets reply NULL (when `deliver`) and is freed, return -1. */
int rc_route(rc_client_t *c, rc_cmd_t *cmd, bool deliver);

/* rc_conn.c */
rc_conn_t *rc_conn_new(rc_client_t *c, const char *host, unsigned port);
/* Find a node by host and port, creating it (idle) when `create`. */
rc_conn_t *rc_conn_find(rc_client_t *c, const char *host, unsigned port, bool create);
/* Queue or write `cmd`; -1 when the node is down (cmd untouched). */
int rc_conn_send(rc_conn_t *conn, rc_cmd_t *cmd);
/* Fail every command of `conn` with `why`, close it, then back off or (when
 * `bury`) move it to the graveyard. */
void rc_conn_fail(rc_conn_t *conn, const char *why, bool bury);
void rc_conn_destroy(rc_conn_t *conn);
/* A command of `conn` timed out: drop the connection when it has read
 * nothing for a long while with commands in flight (a silent partition). */
void rc_conn_check_stall(rc_conn_t *conn);
/* Start connecting an idle node now. */
void rc_conn_start(rc_conn_t *conn);
bool rc_conn_usable(const rc_conn_t *conn);
/* rc_conn.c, for rc_sub.c: a connection in no list (the subscriber's own),
 * and its "host:port" display name. */
rc_conn_t *rc_conn_alloc(rc_client_t *c, const char *host, unsigned port);
void rc_conn_set_name(rc_conn_t *conn);
/* rc_sub.c: what rc_conn.c tells a subscriber of its connection. */
void rc_sub_on_ready(rc_sub_t *s);
void rc_sub_on_reply(rc_sub_t *s, const redisReply *r);
void rc_sub_on_down(rc_sub_t *s);
/* Move `s` to a usable node (`rotate`: another one than now). */
void rc_sub_pick_node(rc_sub_t *s, bool rotate);
/* Close subscriber `s` without callbacks; freed at the next reap. */
void rc_sub_kill(rc_sub_t *s);
/* Write SCRIPT LOAD of registered script `id` (conn must be ready). */
void rc_conn_load_script(rc_conn_t *conn, size_t id);

/* rc_cluster.c */
/* Send CLUSTER SLOTS to some node unless one is in flight or (unless
 * `force`) the last was less than a second ago. */
void rc_cluster_refresh(rc_client_t *c, bool force);
/* Apply a CLUSTER SLOTS reply got from `from`; 0 ok, -1 malformed. */
int rc_cluster_apply_slots(rc_client_t *c, rc_conn_t *from, const redisReply *r);
/* A node for a command without slot: a ready primary, else any node. */
rc_conn_t *rc_cluster_any(rc_client_t *c);
void rc_cluster_on_conn_ready(rc_conn_t *conn);
void rc_cluster_on_conn_down(rc_conn_t *conn);
void rc_cluster_start(rc_client_t *c);

#endif
