/* http.h — pure HTTP helpers of the request path, no I/O: addresses (CIDR
 * lists, the client IP from X-Forwarded-For, host:port), request ids, path
 * normalization, CORS origins, query redaction, header names and identity
 * values.  Implemented in http/: net.c, reqid.c, path.c, cors.c, headers.c.
 */
#ifndef TOLLGATE_HTTP_H
#define TOLLGATE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- addresses (net.c) ---- */

#define HTTP_IP_STRLEN 46 /* INET6_ADDRSTRLEN */

typedef struct http_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order; 4 bytes used for AF_INET */
    unsigned prefix;  /* bits */
} http_cidr_t;

typedef struct http_cidr_list {
    http_cidr_t *v;
    size_t n;
} http_cidr_list_t;

/* "10.0.0.0/8", "fc00::/7", "127.0.0.1" (= /32).  Host bits must be zero.
 * 0 or -1. */
int http_cidr_parse(const char *s, http_cidr_t *out);

/* Append; 0 or -1 (out of memory). */
int http_cidr_list_add(http_cidr_list_t *l, const http_cidr_t *c);

/* The default trusted_proxies: 127.0.0.0/8, ::1, 10/8, 172.16/12, 192.168/16, fc00::/7. */
int http_cidr_list_default(http_cidr_list_t *l);
void http_cidr_list_clear(http_cidr_list_t *l);

/* Is the textual address `ip` (v4, v6, or v4-mapped v6) in the list? */
bool http_cidr_list_contains(const http_cidr_list_t *l, const char *ip);

/* The client address of a request that arrived from `peer_ip` with the
 * X-Forwarded-For value `xff` (may be NULL).  When the peer is trusted, walk
 * XFF from the right and take the first hop that is not trusted (or the
 * left-most when all are trusted); a malformed hop ends the walk and the last
 * good address is used.  Writes a normalized address into `out`
 * (>= HTTP_IP_STRLEN). */
void http_client_ip(const char *peer_ip, const char *xff, const http_cidr_list_t *trusted,
                    char *out, size_t outlen);

/* Do hosts `a` and `b` name the same host: ASCII case-insensitively,
 * without a ":port" and one trailing dot ("[v6]:port" keeps its brackets)?
 * NULL matches nothing. */
bool http_host_equal(const char *a, const char *b);

/* The key of client address `ip` for per-IP limits and lockouts: an IPv4
 * address (a v4-mapped IPv6 one too) as it is; an IPv6 address cut to its
 * first `v6_prefix` bits and spelled "NET/LEN" ("2001:db8:1:2::/64"), or as
 * it is when `v6_prefix` is 128 or more — one host owns a whole /64, so the
 * full address would give it 2^64 buckets.  Text that is not an address is
 * copied (truncated).  `out` >= HTTP_IP_KEY_STRLEN. */
#define HTTP_IP_KEY_STRLEN (HTTP_IP_STRLEN + 4) /* "/128" */
void http_ip_key(const char *ip, unsigned v6_prefix, char *out, size_t outlen);

/* Split "0.0.0.0:8080", "[::]:8080", ":8080" into host (default "0.0.0.0")
 * and port.  0 or -1. */
int http_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

/* ---- requests (reqid.c, path.c, cors.c, headers.c) ---- */

#define HTTP_REQID_MAX 64
#define HTTP_MAX_PATH 8192

/* An inbound X-Request-ID is kept when it is [A-Za-z0-9_-]{1,64}. */
bool http_reqid_valid(const char *s);

/* A new UUIDv4 (36 chars + NUL) from a fast per-thread CSPRNG-seeded source. */
void http_reqid_new(char out[37]);

/* What http_path_normalize() saw that only some routes accept. */
#define HTTP_PATH_PCT25 1u     /* "%25" followed by two hex digits: double encoding */
#define HTTP_PATH_SEMICOLON 2u /* a raw ';' (Tomcat/Spring path parameters) */
#define HTTP_PATH_DOTSEG 4u    /* a "." or ".." segment (raw or %2E) was removed */
#define HTTP_PATH_EMPTYSEG 8u  /* an empty segment ("//") was merged */

/* Normalize the path part of a request target (no query, no fragment):
 * percent-decode unreserved characters (RFC 3986 §2.3), keep other escapes
 * with upper-case hex, remove dot segments (§5.2.4), merge repeated '/'.
 * Refused (-1): not starting with '/', %2F/%2f, %00, a raw control byte or
 * NUL, a bad escape, a path that climbs above '/', a raw '\' or %5C (read
 * as '/' by IIS and some Node stacks), a dot segment with a ';' parameter
 * ("..;" is ".." to Tomcat), or an output over `outlen`-1 bytes.  `flags`
 * (may be NULL) gets SRV_PATH_* bits for what the caller decides on per
 * route.  Returns the output length. */
int http_path_normalize(const char *in, size_t len, char *out, size_t outlen,
                        unsigned *flags);

/* CORS origin from the config: "https://app.example.com[:port]", lower-case
 * scheme and host, no path/query/userinfo, no wildcard.  0 valid, -1 with a
 * reason in err. */
int http_cors_origin_check(const char *origin, char *err, size_t errlen);

/* Is `origin` (the request's Origin header) one of the `n` allowed origins?
 * Exact match, ASCII case-insensitive. */
bool http_cors_origin_allowed(const char *origin, char *const *allowed, size_t n);

#define HTTP_REDACT_NAME_MAX 63 /* bytes of a query name in a redaction list */

/* Copy `target` (path?query) into out with the values of credential query
 * parameters replaced by "REDACTED": the built-in names (token,
 * access_token, id_token, refresh_token, api_key, apikey, api-key, key, jwt,
 * ticket, password, secret, client_secret, ...) and the `nextra` names of
 * `extra`, however a common framework reads a name: after percent-decoding
 * (also %uXXXX and '+'), in any case, '-', '.', '_' and spaces alike, as
 * the base of "name[...]" or any part of "a[b].c", after '&', ';', '?' or
 * '#'.  A redacted value runs to the next '&'.  Truncated to fit `outlen`
 * (a truncated output never holds more of a value than the full one). */
void http_redact_target(const char *target, char *const *extra, size_t nextra, char *out,
                        size_t outlen);

/* Does `query` (after '?', without a fragment; NULL: none) have a parameter
 * named `name`, read the way http_redact_target reads names (decoded, any
 * case, '-', '.', '_' alike, the base of "name[...]"; after '&' or ';')? */
bool http_query_has(const char *query, const char *name);

/* Does a request body (len bytes, not NUL-terminated) of Content-Type
 * `ctype` (NULL: none) carry a parameter `name` the way frameworks read
 * one: an application/x-www-form-urlencoded field (as http_query_has reads
 * names), a multipart/form-data part's name="...", or a key spelled
 * "name" in a JSON body (application/json, +json)?  Other types: false. */
bool http_body_has_param(const char *ctype, const char *body, size_t len, const char *name);

/* Is `ctype` one of the body types http_body_has_param reads (so a caller
 * need not make the body contiguous for any other)? */
bool http_body_type_has_params(const char *ctype);

/* How a header name relates to the headers tollgate sets or vouches for,
 * compared ASCII case-insensitively with '-', '_' and '.' treated as equal
 * (CGI/WSGI servers merge X_Auth_Scopes into X-Auth-Scopes). */
typedef enum {
    HTTP_HDR_PLAIN,     /* none of them */
    HTTP_HDR_IDENTITY,  /* X-Auth-*: set by tollgate on allow */
    HTTP_HDR_VOUCHED,   /* X-Request-ID, X-Forwarded-For/-Proto/-Host, X-Real-IP */
    HTTP_HDR_FORWARDER, /* Forwarded, X-Original-*, other X-Forwarded-*: a proxy's */
} http_hdr_class_t;

/* The class of `name`; *variant (may be NULL) is true when the name is in
 * a class but not spelled with '-' only (an X_Auth_Scopes, X.Real.IP). */
http_hdr_class_t http_hdr_class(const char *name, bool *variant);

/* An identity header value: bytes of `in` that are visible ASCII other than
 * ',' and '%' are copied, every other byte is written %XX, so a value never
 * splits into a list or carries bytes an upstream could read differently;
 * `keep_space` copies ' ' (the scope list separator).  Truncated to whole
 * escapes to fit `outlen`; returns the output length. */
size_t http_hdr_value_encode(const char *in, bool keep_space, char *out, size_t outlen);

/* A request head (request line and header lines, up to the blank line that
 * ends it: LF LF or LF CR LF, as libevent accepts both) read in pieces as it
 * arrives: for NUL bytes (libevent keeps header values as C strings, so a
 * NUL would cut a value short unseen), for its length, and for the body
 * length it declares (so a head over max_header_bytes, or a Content-Length
 * over max_body_bytes, is refused before libevent reads either).  Start it
 * at the first byte of a request; feed() ignores what follows the head (a
 * body, the next request). */
typedef struct http_head_scan {
    bool in_head;     /* the blank line has not been seen yet */
    unsigned char st; /* 0 in a line, 1 after its LF, 2 after CR at a line start */
    bool nul;         /* a NUL was seen in the head */
    bool has_clen;    /* a well-formed Content-Length line was seen */
    unsigned char cl; /* the current line's Content-Length reading (headers.c) */
    size_t len;       /* bytes of the head so far, its last LF included */
    uint64_t clen;    /* the largest Content-Length declared (saturates) */
    uint64_t cl_cur;  /* the value being read */
    /* The request line's method: its first HTTP_HEAD_METHOD_MAX - 1 bytes,
     * and how far it was read (HTTP_HEAD_METHOD_*). */
    char method[16];
    unsigned char mlen; /* bytes of the method so far (saturates at 255) */
    unsigned char mstate;
} http_head_scan_t;
#define HTTP_HEAD_METHOD_MAX 16
enum {
    HTTP_HEAD_METHOD_READING, /* no SP yet */
    HTTP_HEAD_METHOD_TOKEN,   /* a token ended by SP: `method` (cut when mlen >= 16) */
    HTTP_HEAD_METHOD_BAD,     /* not a token: the request line is libevent's to refuse */
};
void http_head_scan_start(http_head_scan_t *s);
void http_head_scan_feed(http_head_scan_t *s, const char *p, size_t n);

/* Is `name` a method override header (X-HTTP-Method-Override, X-HTTP-Method,
 * X-Method-Override; '-', '_', '.' alike, any case)?  Rails (Rack::
 * MethodOverride), Symfony, Laravel and others execute the method it names
 * instead of the request's. */
bool http_hdr_method_override(const char *name);

/* Is `name` an RFC 9110 token (the only legal field names)? */
bool http_hdr_name_ok(const char *name);

#endif
