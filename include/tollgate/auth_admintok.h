/* auth_admintok.h — the admin API's tokens: each with an id and a scope.
 *
 * A token is given as `ID SCOPE TOKEN` lines in a file (admin_tokens_file /
 * ADMIN_TOKENS_FILE, a mounted Secret; `#` comments, blank lines ignored)
 * or as ADMIN_TOKEN, which stands for the line `admin write TOKEN`.  Only the
 * SHA-256 of a token is kept.  A presented token is hashed once and compared
 * (CRYPTO_memcmp) with every entry, all of them whatever matched, so the time
 * taken says neither which entry matched nor how much of a token was right.
 *
 * The id is what logs, the audit trail and answers name: it is never secret,
 * and it is checked ([A-Za-z0-9._-]{1,64}) because it reaches JSON and logs.
 * Messages never hold a token's bytes.
 */
#ifndef TOLLGATE_AUTH_ADMINTOK_H
#define TOLLGATE_AUTH_ADMINTOK_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_ADMINTOK_ID_MAX 64      /* bytes of an id */
#define AUTH_ADMINTOK_MAX_LEN 512    /* bytes of a token */
#define AUTH_ADMINTOK_MIN_PROD 32    /* shortest token production accepts */
#define AUTH_ADMINTOK_MAX 1000       /* tokens in one store */
#define AUTH_ADMINTOK_LINE_MAX 1024  /* bytes of one file line */
#define AUTH_ADMINTOK_ENV_ID "admin" /* ADMIN_TOKEN's id */

/* What a token may do: read = GET endpoints; write = everything (a write
 * token also reads). */
typedef enum { AUTH_ADMIN_READ = 1, AUTH_ADMIN_WRITE = 2 } auth_admin_scope_t;

typedef struct auth_admintok auth_admintok_t;

typedef struct auth_admin_id {
    char id[AUTH_ADMINTOK_ID_MAX + 1];
    auth_admin_scope_t scope;
    size_t token_len; /* for the strength rule at load time */
} auth_admin_id_t;

auth_admintok_t *auth_admintok_new(void);
void auth_admintok_free(auth_admintok_t *t); /* wipes; NULL is a no-op */

/* Add one token.  0, or -1 with a message in err (a bad id, an id or a
 * token already present, a token out of 1..AUTH_ADMINTOK_MAX_LEN visible
 * ASCII bytes, the store full); nothing is added on -1. */
int auth_admintok_add(auth_admintok_t *t, const char *id, auth_admin_scope_t scope,
                      const char *token, size_t len, char *err, size_t errlen);

/* One line of a tokens file (no newline; a trailing '\r' is ignored).
 * Blank and comment lines add nothing and return 0.  On -1 err reads
 * "<where>: message".  Exposed for the fuzz target and tests. */
int auth_admintok_add_line(auth_admintok_t *t, const char *line, size_t len,
                           const char *where, char *err, size_t errlen);

/* Every line of `path` (at most 1 MiB).  0, or -1 with "PATH:LINE: message". */
int auth_admintok_load_file(auth_admintok_t *t, const char *path, char *err, size_t errlen);

size_t auth_admintok_count(const auth_admintok_t *t);
/* Entry i (load order), or NULL. */
const auth_admin_id_t *auth_admintok_get(const auth_admintok_t *t, size_t i);
bool auth_admintok_valid_id(const char *id);

/* The entry `token` belongs to, or NULL; constant time in the number of
 * entries (see above).  `t` NULL: NULL. */
const auth_admin_id_t *auth_admintok_match(const auth_admintok_t *t, const char *token,
                                           size_t len);

/* SHA-256 over every entry's id, scope and digest, in order (for
 * secrets_version).  0 or -1. */
int auth_admintok_fingerprint(const auth_admintok_t *t, unsigned char out[32]);

#endif
