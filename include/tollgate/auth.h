/* auth.h — who made a request: the result of authentication.
 *
 * An identity is built by the API key store or the JWT verifier and owned by
 * the request that authenticated.  It never holds the credential itself.
 */
#ifndef TOLLGATE_AUTH_H
#define TOLLGATE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define AUTH_MAX_ID_LEN 128 /* key ids, JWT sub */

typedef enum {
    AUTH_KIND_NONE,
    AUTH_KIND_API_KEY,
    AUTH_KIND_JWT,
    AUTH_KIND_TICKET
} auth_kind_t;

/* A header an identity adds to an allowed answer (JWT claim_to_headers). */
typedef struct auth_hdr {
    char *name;  /* e.g. "X-Auth-Email" */
    char *value; /* checked: no control bytes, length-capped */
} auth_hdr_t;

typedef struct auth_identity {
    auth_kind_t kind;
    char *client_id; /* key id, or JWT sub; never a key or a token */
    char *subject;   /* JWT sub, or the key id */
    char **scopes;   /* nscopes strings */
    size_t nscopes;
    char *tier;       /* NULL when none */
    char *jti;        /* JWT only, else NULL */
    int64_t exp;      /* JWT exp (unix s), 0 when none */
    int64_t iat;      /* JWT iat (unix s), 0 when none */
    json_t *claims;   /* JWT payload (one reference owned), NULL for API keys */
    auth_hdr_t *hdrs; /* claim_to_headers values, nhdrs entries */
    size_t nhdrs;
    bool ticket;     /* restored from a one-time ticket (kind is the original's) */
    bool deprecated; /* a credential marked deprecated (API key file) */
    /* API keys: SHA-256 of the key that authenticated (as the key file has
     * it), so a ticket binds to that key among the id's keys; else zeros */
    unsigned char key_sha256[32];
} auth_identity_t;

/* Free what the identity holds and zero it; the struct itself is the caller's. */
void auth_identity_clear(auth_identity_t *id);

/* Copy `src` into `dst` (deep). 0, or -1 when out of memory. */
int auth_identity_copy(auth_identity_t *dst, const auth_identity_t *src);

/* A string claim of a JWT identity (numbers spelled in decimal), NULL if absent. */
const char *auth_identity_claim(const auth_identity_t *id, const char *name, char *buf,
                                size_t buflen);

/* True when every one of `need` is among the identity's scopes. */
bool auth_identity_has_scopes(const auth_identity_t *id, char *const *need, size_t n);

/* Scopes joined with single spaces into `out` (truncated to fit). */
void auth_identity_scopes_str(const auth_identity_t *id, char *out, size_t outlen);

/* Constant-time equality of two byte strings (the admin token): their
 * SHA-256 digests are compared with CRYPTO_memcmp, so the time taken shows
 * neither where they differ nor whether their lengths do. */
bool auth_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
