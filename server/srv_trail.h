/* srv_trail.h — the trail of privileged actions (docs/reference.md, "Admin
 * trail"), for server/ sources only.
 *
 * Every admin action and every config reload, however triggered, calls
 * srv_admin_trail() once with its outcome.  That writes one `"kind":"admin"`
 * line to the local audit log at once (the log when audit is off), counts
 * tollgate_admin_actions_total{action,result}, and queues the entry for the
 * fleet's capped Redis stream `<prefix>{audit}:admin` (XADD MAXLEN ~
 * audit.admin_stream_max), written by the admin thread.  The stream write
 * never blocks the caller and never queues without bound: with Redis down,
 * the queue full or too many writes in flight, the entry is counted in
 * tollgate_admin_trail_stream_failures_total and dropped (the local line
 * stays).
 */
#ifndef TOLLGATE_SRV_TRAIL_H
#define TOLLGATE_SRV_TRAIL_H

#include <stdbool.h>
#include <stddef.h>

struct srv;
struct evbuffer;

#define SRV_TRAIL_TARGET_MAX 128 /* bytes of a target kept; the rest is cut */
#define SRV_TRAIL_QUEUE 64       /* entries waiting for the admin thread */
#define SRV_TRAIL_INFLIGHT 64    /* XADDs awaiting a reply */

/* Actors of reloads that no admin token asked for. */
#define SRV_TRAIL_SIGNAL "signal"
#define SRV_TRAIL_WATCH "watch"

/* One action.  Strings are borrowed for the call; NULL = not applicable. */
typedef struct srv_trail_rec {
    const char *action; /* reload | revoke_jti | revoke_token | revoke_subject |
                           unrevoke | bucket_reset | ban | unban | unlock */
    const char *target; /* what it acted on: never a secret nor a raw token;
                           cut to SRV_TRAIL_TARGET_MAX, control bytes as '?' */
    const char *result; /* ok | refused | error */
    int status;         /* HTTP status answered; 0: none (signal, watch) */
    const char *code;   /* the envelope's error code when not ok */
    const char *actor;  /* the admin token's id, or SRV_TRAIL_SIGNAL / _WATCH */
    const char *request_id;
    const char *config_before, *config_after;   /* reloads: config_version */
    const char *secrets_before, *secrets_after; /* reloads: secrets_version */
} srv_trail_rec_t;

/* admin.c: the id of the admin token whose request is being dispatched
 * ("-" outside a dispatch).  Valid during the handler's call only: a
 * handler that answers later copies it. */
const char *srv_admin_actor(void);
/* admin.c: the dispatched request's token has the write scope. */
bool srv_admin_actor_writes(void);

/* Any thread. */
void srv_admin_trail(struct srv *s, const srv_trail_rec_t *r);

/* Set up the queue's wake-up on the admin thread's loop (after the admin
 * Redis client exists, if any).  0 or -1 with err. */
int srv_trail_start(struct srv *s, char *err, size_t errlen);
/* Before the admin loop goes: no more stream writes. */
void srv_trail_stop(struct srv *s);
/* After the admin Redis client is freed (its callbacks have run). */
void srv_trail_free(struct srv *s);

/* tollgate_admin_actions_total and tollgate_admin_trail_stream_*; `s` NULL:
 * the families with no samples (the docs suite lists them). */
void srv_trail_metrics(struct srv *s, struct evbuffer *out);

/* The key of the fleet's stream for `prefix` into out; its length or -1. */
int srv_trail_key(const char *prefix, char *out, size_t outlen);

#endif
