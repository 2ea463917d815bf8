/* audit.h — the audit log: one JSON line per request.
 *
 * An audit_t is the sink (a file reopened on SIGUSR1, or stdout for "-"),
 * shared by all threads.  Each worker thread writes through its own
 * audit_buf_t, which batches lines and hands them to the sink in whole lines
 * (flushed every 100 ms by a timer on the thread's event_base, when 32 KiB
 * are buffered, and on free), so the request path makes no syscall.
 */
#ifndef TOLLGATE_AUDIT_H
#define TOLLGATE_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct audit audit_t;
typedef struct audit_buf audit_buf_t;

/* Every field of a line; NULL strings and negative numbers are written as
 * JSON null.  `target` is the raw path?query: the values of credential query
 * parameters (http_redact_target's list, plus `redact`) are redacted when
 * written. */
typedef struct audit_rec {
    int64_t ts_ms; /* unix ms, written as RFC 3339 with ms, UTC */
    const char *request_id;
    const char *client_id; /* key id or JWT sub, never a credential */
    const char *method;
    const char *target;
    int status;
    double duration_ms;
    const char *ip;
    const char *decision; /* allow | deny | error */
    const char *reason;
    const char *limit;
    int upstream_status; /* < 0: null */
    /* Query names redacted in `target` besides the built-in ones (borrowed). */
    char *const *redact;
    size_t nredact;
    /* Why (issue 22 item 6), and what `tollgate replay` needs; appended, so
     * the fields above keep their place and meaning.  NULL / < 0: null. */
    const char *route;       /* the route's name */
    const char *auth_method; /* api_key | jwt | ticket | none; NULL: not reached */
    const char *iss;         /* a JWT's issuer */
    char *const *scopes;     /* the identity's scopes (the first AUDIT_SCOPES_MAX) */
    size_t nscopes;
    char *const *scopes_required; /* the route's, written on a 403 (the caller's rule) */
    size_t nscopes_required;
    int64_t decided_ms; /* unix ms the decision started; <= 0: null */
    const char *host;   /* the (original) request's host */
    const char *tier;   /* the identity's tier */
    const char *peer;   /* the TCP peer (ip is the client, behind trusted proxies) */
    const char *mode;   /* proxy | envoy | nginx | traefik | ticket */
    /* The values the config's limits key on (by: header:NAME / claim:NAME),
     * written as an object {"header:name": value, "claim:NAME": value};
     * never a credential-bearing header (the caller's rule). */
    const struct audit_key *keys;
    size_t nkeys;
} audit_rec_t;

#define AUDIT_SCOPES_MAX 16 /* scopes written of a list; each cut to 128 bytes */
#define AUDIT_KEYS_MAX 8    /* key values written */

/* One value a limit keys on. */
typedef struct audit_key {
    bool claim;        /* claim:NAME, else header:NAME (lower-cased when written) */
    const char *name;  /* cut to 80 bytes */
    const char *value; /* NULL: absent */
} audit_key_t;

/* Open `path` ("-" = stdout) for appending.  NULL with a message on error. */
audit_t *audit_open(const char *path, char *err, size_t errlen);
void audit_close(audit_t *a);

/* Reopen the file (log rotation, SIGUSR1).  0 or -1 (old fd kept). */
int audit_reopen(audit_t *a);

/* audit.flush: when a buffered line reaches the file (Redis' appendfsync,
 * for an audit log).  INTERVAL: every 100 ms or 32 KiB, lost on a crash;
 * EVERY: written (write(2)) before the answer it records leaves, so a crash
 * of tollgate loses nothing; FSYNC: also fdatasync'ed, so a crash of the
 * machine loses nothing, at a disk flush per request. */
typedef enum { AUDIT_FLUSH_INTERVAL, AUDIT_FLUSH_EVERY, AUDIT_FLUSH_FSYNC } audit_flush_t;

audit_buf_t *audit_buf_new(audit_t *a, struct event_base *base);
void audit_buf_free(audit_buf_t *b); /* flushes first */
void audit_buf_flush(audit_buf_t *b);
void audit_buf_set_flush(audit_buf_t *b, audit_flush_t mode); /* flushes first */

/* Format and buffer one line. */
void audit_log(audit_buf_t *b, const audit_rec_t *r);

/* Format one line (with '\n') into out; returns its length, or -1 when it
 * does not fit. Exposed for tests. */
int audit_format(const audit_rec_t *r, char *out, size_t outlen);

/* A privileged action (admin API, config reload): a line of its own kind,
 * `"kind":"admin"` first after ts, so it is told apart from request lines
 * (which have no `kind`).  Every string is cut to 256 bytes and escaped;
 * NULL strings and negative numbers are null. */
typedef struct audit_admin_rec {
    int64_t ts_ms;
    const char *action;  /* reload, revoke_jti, revoke_subject, bucket_reset, ... */
    const char *target;  /* what it acted on, never a secret (the caller's rule) */
    const char *result;  /* ok | refused | error */
    int status;          /* the HTTP status answered; < 0: null (signal, watch) */
    const char *code;    /* the error code when not ok */
    const char *actor;   /* the admin token's id, or signal | watch */
    const char *replica; /* host:pid */
    const char *request_id;
    const char *config_version_before, *config_version_after;
    const char *secrets_version_before, *secrets_version_after;
} audit_admin_rec_t;

int audit_format_admin(const audit_admin_rec_t *r, char *out, size_t outlen);

/* Format and write one admin line at once (not buffered: rare, and wanted
 * on disk before the answer), from any thread.  0, or -1 when it was not
 * written (a is NULL, or the write failed). */
int audit_write_admin(audit_t *a, const audit_admin_rec_t *r);

#endif
