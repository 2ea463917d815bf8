/* auth_jwks.h — JOSE algorithms, JWK sets and signature checks.
 *
 * A key set is parsed once (a JWKS file, a document fetched from an identity
 * provider, or one HS secret) into ready keys: RSA, EC and Ed25519 public
 * keys become OpenSSL EVP_PKEYs (EVP_PKEY_fromdata / raw public keys), `oct`
 * keys are kept as secret bytes.  Each key is pinned to exactly one
 * algorithm when the set is loaded (RFC 8725 §3.1): the JWK's `alg` when
 * present, else its kty/crv and the configured list.  A token's header never
 * chooses the algorithm; it can only name a key (kid).
 *
 * A set is immutable once built and shared between threads by reference
 * counting (auth_jwks_ref / auth_jwks_unref, atomic).
 */
#ifndef TOLLGATE_AUTH_JWKS_H
#define TOLLGATE_AUTH_JWKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_JWKS_MAX_KEYS 64
#define AUTH_JWKS_MAX_DOC (256 * 1024) /* bytes of a JWKS document */
#define AUTH_JWK_MIN_RSA_BITS 2048
#define AUTH_JWK_MAX_RSA_BITS 8192

typedef enum {
    AUTH_ALG_NONE = 0,
    AUTH_ALG_HS256,
    AUTH_ALG_HS384,
    AUTH_ALG_HS512,
    AUTH_ALG_RS256,
    AUTH_ALG_RS384,
    AUTH_ALG_RS512,
    AUTH_ALG_ES256,
    AUTH_ALG_ES384,
    AUTH_ALG_ES512,
    AUTH_ALG_PS256,
    AUTH_ALG_PS384,
    AUTH_ALG_PS512,
    AUTH_ALG_EDDSA,
    AUTH_ALG_COUNT
} auth_alg_t;

/* Exact, case-sensitive (RFC 7515 §4.1.1); AUTH_ALG_NONE when unknown
 * (and for "none", which is never an algorithm here). */
auth_alg_t auth_alg_from_name(const char *name);
const char *auth_alg_name(auth_alg_t a);
bool auth_alg_is_hs(auth_alg_t a);

typedef struct auth_jwk auth_jwk_t;
typedef struct auth_jwks auth_jwks_t;

/* Parse a JWKS document ({"keys":[...]}) of `len` bytes.  `allowed` is a
 * bit mask (1u << auth_alg_t) of the configured algorithms.  Keys that are
 * not for signatures (`use` other than "sig"), of an unknown kty or curve,
 * or pinned to an algorithm outside `allowed` are skipped and counted in
 * *skipped (may be NULL), the first reason written to `note` (may be NULL).
 * A key of a known type that is malformed or weak (RSA under 2048 or over
 * 8192 bits, an EC point off its curve, an `oct` key shorter than its hash,
 * a duplicate kid) refuses the whole document: NULL with the reason in `err`
 * (never any key material), as does a document whose every key is skipped.
 * An empty "keys" list is valid (no key: every token is refused). */
auth_jwks_t *auth_jwks_parse(const char *doc, size_t len, unsigned allowed,
                             unsigned *skipped, char *note, size_t notelen, char *err,
                             size_t errlen);

/* A set of one HS secret (JWT_SECRET), without a kid, pinned to `alg`.
 * The secret is copied. NULL when out of memory or `alg` is not HS*. */
auth_jwks_t *auth_jwks_from_secret(const unsigned char *secret, size_t len, auth_alg_t alg);

/* A new set holding the keys of `a` then those of `b` (either may be NULL);
 * NULL when out of memory or a kid appears in both (err says which). */
auth_jwks_t *auth_jwks_merge(const auth_jwks_t *a, const auth_jwks_t *b, char *err,
                             size_t errlen);

auth_jwks_t *auth_jwks_ref(auth_jwks_t *s);
void auth_jwks_unref(auth_jwks_t *s); /* NULL is a no-op */

size_t auth_jwks_count(const auth_jwks_t *s);

/* The algorithms the set's keys are pinned to (1u << auth_alg_t each). */
unsigned auth_jwks_alg_mask(const auth_jwks_t *s);

/* The key a token names.  With a kid: the key of that kid, or — when the
 * set is one key without a kid (a lone JWT_SECRET) — that key.  Without a
 * kid: the only kid-less key pinned to `alg` (JWT_SECRET), else the only
 * key pinned to `alg`.  NULL when none (or, without a kid, several) fit.  The caller still
 * checks that the key's alg is the token's. */
const auth_jwk_t *auth_jwks_find(const auth_jwks_t *s, const char *kid, size_t kidlen,
                                 auth_alg_t alg);

auth_alg_t auth_jwk_alg(const auth_jwk_t *k);
const char *auth_jwk_kid(const auth_jwk_t *k); /* NULL when none */

/* The secret of an HS key (*len set), NULL for public keys. */
const unsigned char *auth_jwk_secret(const auth_jwk_t *k, size_t *len);

/* Verify a JWS signature (`sig`, already base64url-decoded) over `input`
 * with key `k` and its pinned algorithm: HMAC compared with CRYPTO_memcmp,
 * RSA PKCS#1 v1.5 / PSS (salt = hash length, RFC 7518 §3.5), ECDSA (raw
 * R||S, RFC 7518 §3.4) or Ed25519.  True only when it matches. */
bool auth_jwk_verify(const auth_jwk_t *k, const unsigned char *input, size_t inlen,
                     const unsigned char *sig, size_t siglen);

/* Largest decoded signature of any algorithm (RSA 8192 bits). */
#define AUTH_JWS_MAX_SIG (AUTH_JWK_MAX_RSA_BITS / 8)

#endif
