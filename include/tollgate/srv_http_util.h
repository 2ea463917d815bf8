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

/* What srv_path_normalize() saw that only some routes accept. */
#define SRV_PATH_PCT25 1u     /* "%25" followed by two hex digits: double encoding */
#define SRV_PATH_SEMICOLON 2u /* a raw ';' (Tomcat/Spring path parameters) */

/* Normalize the path part of a request target (no query, no fragment):
 * percent-decode unreserved characters (RFC 3986 §2.3), keep other escapes
 * with upper-case hex, remove dot segments (§5.2.4), merge repeated '/'.
 * Refused (-1): not starting with '/', %2F/%2f, %00, a raw control byte or
 * NUL, a bad escape, a path that climbs above '/', a raw '\' or %5C (read
 * as '/' by IIS and some Node stacks), a dot segment with a ';' parameter
 * ("..;" is ".." to Tomcat), or an output over `outlen`-1 bytes.  `flags`
 * (may be NULL) gets SRV_PATH_* bits for what the caller decides on per
 * route.  Returns the output length. */
int srv_path_normalize(const char *in, size_t len, char *out, size_t outlen,
                       unsigned *flags);

/* CORS origin from the config: "https://app.example.com[:port]", lower-case
 * scheme and host, no path/query/userinfo, no wildcard.  0 valid, -1 with a
 * reason in err. */
int srv_cors_origin_check(const char *origin, char *err, size_t errlen);

/* Is `origin` (the request's Origin header) one of the `n` allowed origins?
 * Exact match, ASCII case-insensitive. */
bool srv_cors_origin_allowed(const char *origin, char *const *allowed, size_t n);

#define SRV_REDACT_NAME_MAX 63 /* bytes of a query name in a redaction list */

/* Copy `target` (path?query) into out with the values of credential query
 * parameters replaced by "REDACTED": the built-in names (token,
 * access_token, id_token, refresh_token, api_key, apikey, api-key, key, jwt,
 * ticket, password, secret, client_secret, ...) and the `nextra` names of
 * `extra`, all compared case-insensitively after percent-decoding.
 * Truncated to fit `outlen`. */
void srv_redact_target(const char *target, char *const *extra, size_t nextra, char *out,
                       size_t outlen);

/* How a header name relates to the headers tollgate sets or vouches for,
 * compared ASCII case-insensitively with '-', '_' and '.' treated as equal
 * (CGI/WSGI servers merge X_Auth_Scopes into X-Auth-Scopes). */
typedef enum {
    SRV_HDR_PLAIN,     /* none of them */
    SRV_HDR_IDENTITY,  /* X-Auth-*: set by tollgate on allow */
    SRV_HDR_VOUCHED,   /* X-Request-ID, X-Forwarded-For/-Proto/-Host, X-Real-IP */
    SRV_HDR_FORWARDER, /* Forwarded, X-Original-*, other X-Forwarded-*: a proxy's */
} srv_hdr_class_t;

/* The class of `name`; *variant (may be NULL) is true when the name is in
 * a class but not spelled with '-' only (an X_Auth_Scopes, X.Real.IP). */
srv_hdr_class_t srv_hdr_class(const char *name, bool *variant);

/* An identity header value: bytes of `in` that are visible ASCII other than
 * ',' and '%' are copied, every other byte is written %XX, so a value never
 * splits into a list or carries bytes an upstream could read differently;
 * `keep_space` copies ' ' (the scope list separator).  Truncated to whole
 * escapes to fit `outlen`; returns the output length. */
size_t srv_hdr_value_encode(const char *in, bool keep_space, char *out, size_t outlen);

/* Is `name` an RFC 9110 token (the only legal field names)? */
bool srv_hdr_name_ok(const char *name);

#endif
