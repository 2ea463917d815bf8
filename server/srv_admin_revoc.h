/* srv_admin_revoc.h — the revocation endpoints of the admin API
 * (admin_revoc.c; docs/reference.md §4 *Revocations*): revoke a jti or a
 * subject (of one issuer or of every issuer), read one, list them page by
 * page, undo one.  The handlers are the admin route table's; the parsers
 * of outside input (the query, the cursor, Redis' replies) are pure and
 * fuzzed (tests/fuzz/fuzz_revoc.c).
 */
#ifndef TOLLGATE_SRV_ADMIN_REVOC_H
#define TOLLGATE_SRV_ADMIN_REVOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "tollgate/auth_revoke.h"

struct evhttp_request;
struct srv_worker;

/* POST /admin/v1/revocations, POST /admin/v1/revocations/subject */
void srv_admin_revoke_jti(struct srv_worker *w, struct evhttp_request *req);
void srv_admin_revoke_subject(struct srv_worker *w, struct evhttp_request *req);
/* GET /admin/v1/revocations?kind=jti|subject&cursor=&limit= */
void srv_admin_revocations_list(struct srv_worker *w, struct evhttp_request *req);
/* GET /admin/v1/revocations/{jti}, /admin/v1/revocations/subject/{sub}?iss= */
void srv_admin_revocation_get(struct srv_worker *w, struct evhttp_request *req);
void srv_admin_revocation_subject_get(struct srv_worker *w, struct evhttp_request *req);
/* DELETE /admin/v1/revocations/{jti}, /admin/v1/revocations/subject/{sub}?iss= */
void srv_admin_unrevoke_jti(struct srv_worker *w, struct evhttp_request *req);
void srv_admin_unrevoke_subject(struct srv_worker *w, struct evhttp_request *req);

/* Page sizes of the listing. */
#define SRV_REVOC_PAGE_DEFAULT 100
#define SRV_REVOC_PAGE_MAX 1000
#define SRV_REVOC_CURSOR_MAX 1200 /* bytes of a cursor, NUL included */

/* Where the next page starts.  Opaque to clients: "m<hex>" (this replica's
 * memory: the last entry listed), "j<exp>.<skip>" (Redis' jti index: the
 * last exp and how many of that exp were listed), "s<scan>.<off>" /
 * "i<scan>.<off>" (Redis' subject hashes, every issuer then one issuer:
 * HSCAN's cursor and how many of its batch were listed). */
typedef struct srv_revoc_cursor {
    char type;                /* 0: the first page; 'm', 'j', 's', 'i' */
    auth_revoke_item_t after; /* 'm' */
    int64_t exp;              /* 'j' */
    uint64_t scan, skip;      /* 'j': skip; 's', 'i': scan and skip */
} srv_revoc_cursor_t;

/* The listing's query: kind ("jti" or "subject", required), cursor (NULL:
 * the first page; else as srv_revoc_cursor_str wrote it), limit (NULL: the
 * default; 1..SRV_REVOC_PAGE_MAX).  0, or -1 with a message in err. */
int srv_revoc_parse_query(const char *kind, const char *cursor, const char *limit,
                          bool *subject, srv_revoc_cursor_t *cur, unsigned *count,
                          char *err, size_t errlen);

/* `c` as a cursor string; -1 when it does not fit. */
int srv_revoc_cursor_str(const srv_revoc_cursor_t *c, char *out, size_t outlen);

/* One subject revocation as the API shows it. */
json_t *srv_revoc_subject_json(const char *iss, const char *sub, int64_t before,
                               int64_t lifetime);

/* ZRANGEBYSCORE ... WITHSCORES's reply (outside input) for the jti page that
 * started at `cur` ('j' or the first page) and asked for `max`: the entries
 * {"jti","exp"} and in `next` the next page's cursor ("" when this was the
 * last).  NULL, with err, when the reply is not a flat array of pairs. */
json_t *srv_revoc_jti_entries(const redisReply *rep, const srv_revoc_cursor_t *cur,
                              size_t max, char *next, size_t nextlen, char *err,
                              size_t errlen);

/* HSCAN's reply [cursor, [field, value, ...]] over the subject hash of
 * `cur` ('s' or 'i'; the first page is 's' 0): at most `max` entries after
 * cur->skip of the batch, those not expired at `now`, and the next cursor
 * ("" when this was the last).  NULL, with err, when malformed. */
json_t *srv_revoc_subject_entries(const redisReply *rep, const srv_revoc_cursor_t *cur,
                                  size_t max, int64_t lifetime, int64_t now, char *next,
                                  size_t nextlen, char *err, size_t errlen);

#endif
