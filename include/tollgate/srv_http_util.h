/* srv_http_util.h — small pure functions of the request pipeline: request
 * ids, path normalization, CORS origins, query redaction.  No I/O.
 */
#ifndef TOLLGATE_SRV_HTTP_UTIL_H
#define TOLLGATE_SRV_HTTP_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#define SRV_REQID_MAX 64
#define SRV_MAX_PATH 8192

/* An inbound X-Request-ID is kept when it is [A-Za-z0-9_-]{1,64}. */
bool srv_reqid_valid(const char *s);

/* A new UUIDv4 (36 chars + NUL) from a fast per-thread CSPRNG-seeded source. */
void srv_reqid_new(char out[37]);

/* Normalize the path part of a request target (no query, no fragment):
 * percent-decode unreserved characters (RFC 3986 §2.3), keep other escapes
 * with upper-case hex, remove dot segments (§5.2.4), merge repeated '/'.
 * Refused (-1): not starting with '/', %2F/%2f, %00, a raw control byte or
 * NUL, a bad escape, a path that climbs above '/', or an output over
 * `outlen`-1 bytes.  Returns the output length. */
int srv_path_normalize(const char *in, size_t len, char *out, size_t outlen);

/* CORS origin from the config: "https://app.example.com[:port]", lower-case
 * scheme and host, no path/query/userinfo, no wildcard.  0 valid, -1 with a
 * reason in err. */
int srv_cors_origin_check(const char *origin, char *err, size_t errlen);

/* Is `origin` (the request's Origin header) one of the `n` allowed origins?
 * Exact match, ASCII case-insensitive. */
bool srv_cors_origin_allowed(const char *origin, char *const *allowed, size_t n);

/* Copy `target` (path?query) into out with the values of the query
 * parameters token, access_token, api_key, ticket, password (any case)
 * replaced by "REDACTED"; truncated to fit `outlen`. */
void srv_redact_target(const char *target, char *out, size_t outlen);

#endif
