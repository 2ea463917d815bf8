/* srv_admin_req.h — parsing the admin API's JSON bodies (docs/reference.md §4).
 *
 * Pure functions over outside input (the admin listener's request bodies),
 * kept apart from the I/O so they can be unit-tested and fuzzed.
 */
#ifndef TOLLGATE_SRV_ADMIN_REQ_H
#define TOLLGATE_SRV_ADMIN_REQ_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#define SRV_ADMIN_MAX_BODY 65536
/* The latest time a revocation may name: 9999-12-31T23:59:59Z.  Later ones
 * are refused (and a token's exp is cut to it): Redis keeps script numbers
 * as doubles, printed "%.17g", so 1e18 came back from a resync as 1, and
 * SET EXAT refused times past 2^53 ms. */
#define SRV_ADMIN_MAX_TIME 253402300799LL

typedef enum { SRV_REVOKE_JTI, SRV_REVOKE_TOKEN, SRV_REVOKE_SUBJECT } srv_revoke_kind_t;

typedef struct srv_revoke_req {
    srv_revoke_kind_t kind;
    char id[257];  /* jti or sub */
    int64_t when;  /* exp (jti) or before (subject; 0 = now) */
    char *token;   /* SRV_REVOKE_TOKEN: the JWT (malloc'd), else NULL */
    char iss[257]; /* SRV_REVOKE_SUBJECT: the issuer it is scoped to; "": every issuer */
} srv_revoke_req_t;

/* POST /admin/v1/revocations: {"jti":"..","exp":<unix>} or {"token":"<jwt>"}.
 * POST /admin/v1/revocations/subject: {"iss":"..","sub":"..","before":<unix>}
 * (iss optional: without it the revocation applies to every issuer; before
 * optional).  `subject` picks the second form.  0, or -1 with a message in
 * err (never echoing the body), `out` then cleared.  Unknown members are
 * refused. */
int srv_admin_parse_revoke(const char *body, size_t len, int subject, srv_revoke_req_t *out,
                           char *err, size_t errlen);
void srv_revoke_req_clear(srv_revoke_req_t *r);

/* GET /admin/v1/audit's page size: default and largest. */
#define SRV_AUDIT_PAGE_DEFAULT 100
#define SRV_AUDIT_PAGE_MAX 1000
#define SRV_AUDIT_ID_MAX 41 /* "MS-SEQ": two u64 and a '-' */

/* `since` (a stream id "MS-SEQ", exclusive: the `next` of a page; or unix
 * ms "MS", inclusive; NULL: the oldest) as XRANGE's start into out
 * ("(MS-SEQ", "MS-0" or "-").  `limit` (NULL: the default) as 1..MAX.
 * 0, or -1 with a message in err. */
int srv_admin_parse_audit_query(const char *since, const char *limit, char *start,
                                size_t startlen, unsigned *count, char *err, size_t errlen);

/* XRANGE's reply (outside input: whatever the server sent) as a JSON array
 * of at most `max` entries, each {"id":..} plus the trail's known fields
 * (ts and status as integers, the rest as strings of printable ASCII;
 * unknown fields dropped, oversized values cut).  The last entry's id goes
 * into `last` ("" when none).  NULL, with err, when the reply is not an
 * array of [id, [field, value, ...]] entries. */
json_t *srv_admin_trail_entries(const redisReply *rep, size_t max, char *last,
                                size_t lastlen, char *err, size_t errlen);

#endif
