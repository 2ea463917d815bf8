/* auth_apikey.h — API keys: the key file, ALLOWED_API_KEYS, lookup, gen-key.
 *
 * Keys are kept only as SHA-256 digests.  A presented key is hashed and found
 * by digest; the final comparison is constant-time (CRYPTO_memcmp).  A store
 * is immutable once built and may be read by many threads at once.
 *
 * Key file: one key per line, whitespace-separated, `#` starts a comment:
 *     ID SHA256HEX [scopes=a:read,b:write] [tier=NAME] [not_after=TIME] [deprecated]
 * An id may have several lines (rotation: old and new key, one identity);
 * the same key (digest) twice is refused.  TIME is RFC 3339 UTC,
 * YYYY-MM-DDTHH:MM:SSZ: after it the key is refused (key_expired).
 */
#ifndef TOLLGATE_AUTH_APIKEY_H
#define TOLLGATE_AUTH_APIKEY_H

#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth.h"

#define AUTH_APIKEY_MAX_LEN 256 /* bytes of a presented key; longer is refused */

typedef struct auth_keystore auth_keystore_t;

typedef struct auth_apikey {
    char *id;
    unsigned char sha256[32];
    char **scopes;
    size_t nscopes;
    char *tier;        /* NULL when none */
    bool deprecated;   /* `deprecated` in the key file: allowed, with Deprecation headers */
    int64_t not_after; /* unix s; refused after it; 0 = no end */
    unsigned long line; /* of the key file (for config checks); 0 = not from one */
} auth_apikey_t;

auth_keystore_t *auth_keystore_new(void);
void auth_keystore_free(auth_keystore_t *ks);

/* Add every line of the key file `path`.  On error returns -1 and writes
 * "PATH:LINE: message" into err (the message never contains key material). */
int auth_keystore_load_file(auth_keystore_t *ks, const char *path, char *err,
                            size_t errlen);

/* Parse one line of the key file format (text, no newline); a blank or
 * comment line adds nothing.  `where` prefixes errors ("PATH:LINE"). */
int auth_keystore_add_line(auth_keystore_t *ks, const char *line, const char *where,
                           char *err, size_t errlen);

/* Add a plaintext key (ALLOWED_API_KEYS); it is hashed at once and its id is
 * "key-" + the first 8 hex digits of its digest.  No scopes, no tier. */
int auth_keystore_add_plain(auth_keystore_t *ks, const char *key, size_t keylen, char *err,
                            size_t errlen);

/* A duplicate digest (the same key twice) is refused by the add functions;
 * the same id may come several times. */
size_t auth_keystore_count(const auth_keystore_t *ks);

/* Entry `i` (0 <= i < count) in the order added, or NULL. */
const auth_apikey_t *auth_keystore_get(const auth_keystore_t *ks, size_t i);

/* The entry whose digest matches `key`, or NULL. */
const auth_apikey_t *auth_keystore_lookup(const auth_keystore_t *ks, const char *key,
                                          size_t keylen);

/* An entry of key id `id` (the first of its keys), or NULL. */
const auth_apikey_t *auth_keystore_find_id(const auth_keystore_t *ks, const char *id);

/* The next entry with prev's id after `prev`, or NULL: with find_id, walks
 * every key of one id. */
const auth_apikey_t *auth_keystore_next_of_id(const auth_keystore_t *ks,
                                              const auth_apikey_t *prev);

/* The entry of SHA-256 `digest`, or NULL (a ticket finds the very key it
 * was issued for). */
const auth_apikey_t *auth_keystore_find_digest(const auth_keystore_t *ks,
                                               const unsigned char digest[32]);

/* True when `now_s` (unix s) is past the key's not_after. */
bool auth_apikey_expired(const auth_apikey_t *k, int64_t now_s);

/* SHA-256 over every key's digest, sorted (for secrets_version): the same
 * keys in any order give the same value.  0, or -1 when out of memory. */
int auth_keystore_fingerprint(const auth_keystore_t *ks, unsigned char out[32]);

/* "YYYY-MM-DDTHH:MM:SSZ" (exactly `n` bytes) as unix seconds.  0, or -1. */
int auth_apikey_parse_time(const char *s, size_t n, int64_t *out);

/* Fill `out` (kind API_KEY, client_id = subject = id, scopes, tier, and the
 * key's digest, for tickets). */
int auth_apikey_identity(const auth_apikey_t *k, auth_identity_t *out);

/* `tollgate hash-key`: the key file line for (id, key, scopes, tier) —
 * scopes/tier may be NULL.  Returns 0, -1 when `id` is not a valid id
 * ([A-Za-z0-9._:@-]{1,128}) or `out` is too small. */
int auth_apikey_format_line(const char *id, const char *key, const char *scopes,
                            const char *tier, char *out, size_t outlen);

/* `tollgate gen-key`: a new random key ("tg_" + 43 base64url chars, 256 bits
 * from RAND_bytes) into out (>= 64 bytes).  0 or -1. */
int auth_apikey_generate(char *out, size_t outlen);

#endif
