/* auth_jwt.h — JWT verification (libjwt 1.x + our own checks, RFC 8725).
 *
 * libjwt 1.x takes `alg` from the token header, skips the signature when
 * given no key, and checks no claim; so the verifier picks the key itself
 * (by `iss` → provider, then `kid` → key, never by the header's alg), and
 * the key's pinned algorithm decides (auth_jwks.h).  Signatures are checked
 * by auth_jwk_verify (OpenSSL EVP; HMAC with CRYPTO_memcmp); libjwt confirms
 * HS tokens of typ JWT.  exp/nbf/iat/iss/aud are checked here.  A verifier
 * is immutable once built and may be used by many threads at once.
 */
#ifndef TOLLGATE_AUTH_JWT_H
#define TOLLGATE_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth.h"

#define AUTH_JWT_MAX_LEN 8192 /* bytes of a token; longer is refused */
#define AUTH_JWT_MAX_KID_LEN 128
#define AUTH_JWT_MIN_HS_SECRET 32  /* bytes, enforced in production */
#define AUTH_JWT_MAX_CLAIM_HDRS 32 /* claim_to_headers names, all providers together */

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
    AUTH_JWT_CRIT,         /* a crit header: refused */
    AUTH_JWT_BAD_TYP,      /* typ other than JWT or at+jwt */
    AUTH_JWT_NO_KEYS,      /* the provider has no key loaded (yet) */
    AUTH_JWT_KEYS_PENDING, /* a JWKS fetch that may bring its key is running:
                              verify again when it is done */
} auth_jwt_status_t;

/* A claim copied into a header of an allowed answer (claim_to_headers). */
typedef struct auth_jwt_claim_hdr {
    const char *claim;  /* e.g. "email" */
    const char *header; /* e.g. "X-Auth-Email" (the caller checks the name) */
} auth_jwt_claim_hdr_t;

/* One identity provider: tokens whose `iss` is `issuer`, checked with its
 * keys, audiences and algorithms. */
typedef struct auth_jwt_provider_opts {
    const char *name;             /* for logs and metric labels; NULL: "default" */
    const char *issuer;           /* required `iss`; NULL: any (one such provider) */
    const char *const *audiences; /* one of them must be in `aud`; none: not checked */
    size_t naudiences;
    const char *const *algorithms; /* allowed algs, e.g. {"RS256"}; none is refused */
    size_t nalgorithms;
    const unsigned char *hs_secret; /* JWT_SECRET for this provider, NULL = none; copied */
    size_t hs_secret_len;
    const char *keys_json; /* a JWKS document (keys_file contents), NULL = none */
    size_t keys_len;
    const char *jwks_uri; /* remote keys (auth_jwks_fetch.h), NULL = none */
    bool discovery;       /* jwks_uri from the issuer's discovery document */
    const char *ca_file;  /* CA bundle for the fetch, NULL = system */
    unsigned refresh_s, min_refresh_s, max_stale_s, fetch_timeout_s;
    const char *scopes_claim; /* NULL: "scope", then "scp", then "scopes" */
    const char *tier_claim;   /* NULL = none */
    const auth_jwt_claim_hdr_t *claim_hdrs;
    size_t nclaim_hdrs;
} auth_jwt_provider_opts_t;

typedef struct auth_jwt_opts {
    const auth_jwt_provider_opts_t *providers;
    size_t nproviders;
    unsigned leeway_s; /* for exp, nbf, iat */
} auth_jwt_opts_t;

typedef struct auth_jwt auth_jwt_t;

/* One thread's state: its view of remote key sets (a copy per set
 * generation, so the request path takes no lock) and its verified-token
 * cache (keyed by the token's SHA-256, bounded by entries and bytes, an
 * entry living until the token's exp and only while the verifier and its
 * key set are the ones that checked it).  Owned by one thread; NULL may be
 * passed to auth_jwt_verify instead (no cache; the source's mutex per call). */
typedef struct auth_jwt_local auth_jwt_local_t;

/* cache_entries 0: no cache. */
auth_jwt_local_t *auth_jwt_local_new(size_t cache_entries, size_t cache_bytes);
void auth_jwt_local_free(auth_jwt_local_t *l);

/* The last auth_jwt_verify on `l` was answered from the cache. */
bool auth_jwt_local_last_hit(const auth_jwt_local_t *l);
size_t auth_jwt_local_cached(const auth_jwt_local_t *l);

/* NULL with a message in err when the options are unusable (unknown alg
 * name, an HS secret with several HS algorithms, a bad JWKS, two providers
 * of one issuer, ...).  A note about skipped JWKS keys is logged. */
auth_jwt_t *auth_jwt_new(const auth_jwt_opts_t *opts, char *err, size_t errlen);
void auth_jwt_free(auth_jwt_t *v);

/* Verify `token` (the part after "Bearer ") at unix time `now`.  The
 * provider is found by `iss` first; the key by `kid` in its set; the
 * algorithm is the key's.  On AUTH_JWT_OK fills `out` (kind JWT, client_id =
 * subject = sub, scopes, tier, jti, exp, iat, claims, claim headers).
 * Revocation is the caller's next step. */
auth_jwt_status_t auth_jwt_verify(const auth_jwt_t *v, auth_jwt_local_t *loc,
                                  const char *token, size_t len, int64_t now,
                                  auth_identity_t *out);

/* Longest a caller should wait on AUTH_JWT_KEYS_PENDING (ms): the slowest
 * provider's discovery + JWKS fetch, plus a second. */
unsigned auth_jwt_max_wait_ms(const auth_jwt_t *v);

/* Short stable name for logs and the metric label: "expired", "bad_signature"... */
const char *auth_jwt_status_str(auth_jwt_status_t s);

/* Every header name of claim_to_headers over all providers (for
 * forward-auth, which sends each one, empty when unset); *n set. */
const char *const *auth_jwt_claim_headers(const auth_jwt_t *v, size_t *n);

/* The configured issuer that `iss` misses only by ASCII case or a trailing
 * '/' ("https://idp/" for "https://IdP"), when no provider would take a
 * token of `iss` (none names it exactly, none takes any issuer): a scoped
 * revocation of `iss` could match nothing.  NULL otherwise.  Borrowed. */
const char *auth_jwt_issuer_near_miss(const auth_jwt_t *v, const char *iss);

/* Providers and their key counts, for /admin/v1/config and metrics. */
size_t auth_jwt_nproviders(const auth_jwt_t *v);
const char *auth_jwt_provider_name(const auth_jwt_t *v, size_t i);
size_t auth_jwt_provider_keys(const auth_jwt_t *v, size_t i);

#endif
