/* srv_explain_req.h — the body of POST /admin/v1/explain (docs/reference.md
 * §4 "Explain"): a request as tollgate would see it, parsed and bounded.
 *
 * A pure function over outside input (the admin listener's body), kept
 * apart from the handler (admin_explain.c) so it can be unit-tested and
 * fuzzed (tests/fuzz/fuzz_explain_json.c).
 */
#ifndef TOLLGATE_SRV_EXPLAIN_REQ_H
#define TOLLGATE_SRV_EXPLAIN_REQ_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "tollgate/decide.h"

#define SRV_EXPLAIN_MAX_BODY 65536  /* bytes of the body */
#define SRV_EXPLAIN_MAX_HEADERS 100 /* entries of "headers" */
#define SRV_EXPLAIN_MAX_PATH 8192   /* bytes of "path" (path and query) */
#define SRV_EXPLAIN_MAX_VALUE 8192  /* bytes of one header value */
#define SRV_EXPLAIN_MAX_NAME 256    /* bytes of one header name */

/* The request to explain.  Every string is borrowed from `root` (kept by
 * the struct: srv_explain_req_clear releases it). */
typedef struct srv_explain_req {
    json_t *root;
    const char *method;    /* [A-Z]{1,16} */
    const char *path;      /* '/' then no space or control byte */
    const char *host;      /* NULL: none given */
    const char *peer;      /* an IP address, "" when not given */
    const char *as_client; /* an API key id, or NULL */
    bool tls;
    dec_dialect_t dialect; /* DEC_DIALECT_NONE: the request itself */
    size_t nheaders;
    dec_header_t headers[SRV_EXPLAIN_MAX_HEADERS];
} srv_explain_req_t;

/* Parse `body` (len bytes, NUL not needed).  0, or -1 with a message in
 * `err` that never echoes a value of the body (a header may hold a
 * credential); `out` is then cleared. */
int srv_explain_parse(const char *body, size_t len, srv_explain_req_t *out, char *err,
                      size_t errlen);
void srv_explain_req_clear(srv_explain_req_t *rq);

/* true when the request carries a credential tollgate would check: an
 * X-API-Key, an Authorization or Proxy-Authorization, a Cookie, or a
 * `ticket` in the path's query.  Explaining one tells whether the
 * credential is good — with no failure counted and no lockout (a dry
 * run) — so it needs a write token; a read token names the client with
 * as_client instead. */
bool srv_explain_carries_credential(const srv_explain_req_t *rq);

#endif
