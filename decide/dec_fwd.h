/* dec_fwd.h — the forward-auth dialects (docs/forward-auth.md), read from
 * the scanned headers: which request is forward-auth asking about?
 * Private to decide/.
 */
#ifndef TOLLGATE_DEC_FWD_H
#define TOLLGATE_DEC_FWD_H

#include "dec_internal.h"

typedef enum {
    DEC_FWD_OK,
    DEC_FWD_BAD,       /* malformed original request */
    DEC_FWD_CONFLICT,  /* headers of two dialects, or URL and URI disagree */
    DEC_FWD_UNTRUSTED, /* dialect headers from a peer outside trusted_proxies */
    DEC_FWD_NOMEM,
} dec_fwd_result_t;

/* Fill mode/method/method_bit/target/host (and https) of `r` from the
 * forward-auth request whose own target is `own_target`, under
 * forward_auth.dialect (or the input's dialect view, when the transport
 * gave one).  Anything but DEC_FWD_OK comes with r->v.reason set. */
dec_fwd_result_t dec_fwd_parse(dec_req_t *r, const char *own_target);

/* Which dialect's own header `name` (canonical spelling) is, under
 * forward_auth.dialect and the request's other headers; NULL: none. */
const char *dec_fwd_repeat_dialect(const dec_req_t *r, const char *name);

#endif
