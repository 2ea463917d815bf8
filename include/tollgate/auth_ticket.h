/* auth_ticket.h — one-time tickets: a short-lived bearer string that stands
 * for an authenticated identity once (a browser's WebSocket upgrade, which
 * cannot send an Authorization header, carries it as `?ticket=`).
 *
 * A ticket is 256 bits from the OS CSPRNG (getrandom(2)), spelled base64url
 * (43 characters).  It is stored only hashed: under `<prefix>{tkt:<sha256
 * hex>}` with Redis (SET ... EX ttl NX on issue, GETDEL on use, so exactly
 * one use on any replica wins), or in this replica's memory store without
 * Redis.  The stored value is the identity as JSON (never a credential).
 *
 * A ticket never outlives the credential it was issued for: when it is used,
 * auth_ticket_restore() checks that credential again against the config in
 * force — an API key must still be in the key store (the very key: the
 * stored identity carries a fingerprint of it), a JWT must be unexpired and
 * unrevoked, and the kind of credential must still be accepted.
 */
#ifndef TOLLGATE_AUTH_TICKET_H
#define TOLLGATE_AUTH_TICKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth.h"
#include "tollgate/auth_apikey.h"
#include "tollgate/auth_revoke.h"
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

/* The identity as stored for `ticket` (JSON, malloc'd); NULL when out of
 * memory, or for an API key identity whose key is not in `keys` (the store
 * it was authenticated with).  An API key identity is stored with "kfp",
 * HMAC-SHA256 keyed with the ticket over the key's digest: it names that
 * very key, and tells nothing about it to a reader of Redis, who never sees
 * the ticket.  And back, unchecked (0, or -1 when the stored text is not one
 * of ours); the decoded identity has `ticket` set. */
char *auth_ticket_encode(const auth_identity_t *id, const char *ticket,
                         const auth_keystore_t *keys);
int auth_ticket_decode(const char *json, size_t len, auth_identity_t *out);

/* What a ticket is checked against when it is used: the credentials in
 * force now (the caller's config snapshot). */
typedef struct auth_ticket_check {
    const char *ticket;          /* as presented: the key fingerprint's key */
    const auth_keystore_t *keys; /* API keys accepted now; NULL: none are */
    bool jwt;                    /* JWTs accepted now */
    auth_revoke_t *revoked;      /* JWT revocations; NULL: not checked */
    unsigned leeway_s;           /* auth.jwt.leeway_seconds, as for a bearer JWT */
    int64_t now_s;               /* unix time */
} auth_ticket_check_t;

/* The stored value `val` (NULL: no such ticket) back into `out`, if the
 * credential it was issued for is still good.  NULL: `out` is the identity
 * (an API key's scopes, tier and deprecation as its key file line says
 * now), `ticket` set.  Else the audit reason, `out` left empty:
 *   invalid_ticket              unknown, used, expired, or not ours
 *   ticket_credential_disabled  its kind (API key / JWT) is not accepted now
 *   ticket_key_removed          no API key of that id in `keys`
 *   ticket_key_rotated          the id names another key now
 *   ticket_token_expired        the JWT's exp (+ leeway) has passed
 *   revoked                     the JWT, or its subject, is revoked */
const char *auth_ticket_restore(const char *val, size_t len, const auth_ticket_check_t *chk,
                                auth_identity_t *out);

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
