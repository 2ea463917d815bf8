/* auth_ticket.h — one-time tickets: a short-lived bearer string that stands
 * for an authenticated identity once (a browser's WebSocket upgrade, which
 * cannot send an Authorization header, carries it as `?ticket=`).
 *
 * A ticket is 256 bits from the OS CSPRNG (getrandom(2)), spelled base64url
 * (43 characters).  It is stored only hashed: under `<prefix>{tkt:<sha256
 * hex>}` with Redis (SET ... EX ttl NX on issue, GETDEL on use, so exactly
 * one use on any replica wins), or in this replica's memory store without
 * Redis.  The stored value is the identity as JSON (never a credential).
 */
#ifndef TOLLGATE_AUTH_TICKET_H
#define TOLLGATE_AUTH_TICKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth.h"
#include "tollgate/rc.h"

#define AUTH_TICKET_LEN 43 /* characters of a ticket */
#define AUTH_TICKET_KEY_MAX 320

/* A fresh ticket into out (AUTH_TICKET_LEN + 1 bytes).  0, or -1 when the
 * CSPRNG failed. */
int auth_ticket_make(char *out);

/* Is `s` (n bytes) shaped like a ticket (43 base64url characters)? */
bool auth_ticket_wellformed(const char *s, size_t n);

/* The storage key of a ticket: "<prefix>{tkt:<sha256 hex>}". -1 when it does
 * not fit. */
int auth_ticket_key(const char *prefix, const char *ticket, size_t n, char *key,
                    size_t keylen);

/* The identity as stored (JSON, malloc'd), NULL when out of memory; and
 * back (0, or -1 when the stored text is not one of ours). The decoded
 * identity has `ticket` set. */
char *auth_ticket_encode(const auth_identity_t *id);
int auth_ticket_decode(const char *json, size_t len, auth_identity_t *out);

/* ---- without Redis: this replica's store (locked; any thread) ---------- */

typedef struct auth_tickets auth_tickets_t;

auth_tickets_t *auth_tickets_new(size_t max);
void auth_tickets_free(auth_tickets_t *t);

/* Store `val` under `key` until `expire_ms` (wall clock).  0; -1 when the
 * key exists, the store is full or out of memory. */
int auth_tickets_put(auth_tickets_t *t, const char *key, const char *val,
                     int64_t expire_ms);

/* Take (get and delete) the value of `key`: malloc'd, NULL when absent or
 * expired. */
char *auth_tickets_take(auth_tickets_t *t, const char *key, int64_t now_ms);

/* ---- with Redis ----------------------------------------------------------- */

/* `value` NULL: no such ticket (issue: not stored); `failed`: Redis could not
 * answer (timeout, down, error reply). */
typedef void (*auth_ticket_done_fn)(const char *value, size_t len, bool failed,
                                    void *privdata);

typedef struct auth_ticket_op auth_ticket_op_t;

/* SET key val EX ttl NX; `done` gets value "OK" when stored.  NULL when not
 * sent (`done` not called). */
auth_ticket_op_t *auth_ticket_issue(const rc_ops_t *ops, void *cl, const char *key,
                                    const char *val, unsigned ttl_s,
                                    auth_ticket_done_fn done, void *privdata);

/* GETDEL key (Redis >= 6.2): the value, and the ticket is gone. */
auth_ticket_op_t *auth_ticket_redeem(const rc_ops_t *ops, void *cl, const char *key,
                                     auth_ticket_done_fn done, void *privdata);

/* `done` will not run (the request went away).  Only before it ran. */
void auth_ticket_cancel(auth_ticket_op_t *op);

#endif
