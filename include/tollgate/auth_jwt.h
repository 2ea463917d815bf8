/* auth_jwt.h — JWT verification (libjwt 1.x + our own checks, RFC 8725).
 *
 * libjwt 1.x takes `alg` from the token header, skips the signature when
 * given no key, and checks no claim; so the verifier picks the key itself
 * (by configuration and `kid`, never by the header's alg), requires
 * jwt_get_alg() to equal the key's algorithm, verifies HMAC signatures with
 * CRYPTO_memcmp, and checks exp/nbf/iat/iss/aud itself.  A verifier is
 * immutable once built and may be used by many threads at once.
 */
#ifndef TOLLGATE_AUTH_JWT_H
#define TOLLGATE_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth.h"

#define AUTH_JWT_MAX_LEN 8192 /* bytes of a token; longer is refused */
#define AUTH_JWT_MAX_KID_LEN 128
#define AUTH_JWT_MIN_HS_SECRET 32 /* bytes, enforced in production */

typedef enum {
    AUTH_JWT_OK = 0,
    AUTH_JWT_MALFORMED, /* not three base64url parts, bad JSON, ... */
    AUTH_JWT_TOO_LARGE,
    AUTH_JWT_BAD_ALG, /* none, not allowed, or not the key's alg */
    AUTH_JWT_UNKNOWN_KID,
    AUTH_JWT_BAD_SIGNATURE,
    AUTH_JWT_EXPIRED,
    AUTH_JWT_MISSING_EXP,
    AUTH_JWT_NOT_YET_VALID, /* nbf in the future */
    AUTH_JWT_IAT_FUTURE,
    AUTH_JWT_BAD_ISSUER,
    AUTH_JWT_BAD_AUDIENCE,
    AUTH_JWT_CRIT, /* a crit header: refused */
} auth_jwt_status_t;

typedef struct auth_jwt_opts {
    const char *const *algorithms; /* allowed algs, e.g. {"HS256"}; nalgorithms entries */
    size_t nalgorithms;
    const unsigned char *hs_secret; /* JWT_SECRET, NULL when none; copied */
    size_t hs_secret_len;
    const char *issuer;       /* required `iss`, NULL = not checked */
    const char *audience;     /* required in `aud`, NULL = not checked */
    unsigned leeway_s;        /* for exp, nbf, iat */
    const char *scopes_claim; /* default "scope" */
    const char *tier_claim;   /* NULL = none */
} auth_jwt_opts_t;

typedef struct auth_jwt auth_jwt_t;

/* NULL with a message in err when the options are unusable (no key for any
 * allowed alg, unknown alg name, ...). */
auth_jwt_t *auth_jwt_new(const auth_jwt_opts_t *opts, char *err, size_t errlen);
void auth_jwt_free(auth_jwt_t *v);

/* Verify `token` (the part after "Bearer ") at unix time `now`.  On AUTH_JWT_OK
 * fills `out` (kind JWT, client_id = subject = sub, scopes, tier, jti, exp,
 * iat, claims).  Revocation is the caller's next step. */
auth_jwt_status_t auth_jwt_verify(const auth_jwt_t *v, const char *token, size_t len,
                                  int64_t now, auth_identity_t *out);

/* Short stable name for logs and the metric label: "expired", "bad_signature"... */
const char *auth_jwt_status_str(auth_jwt_status_t s);

#endif
