/* path.c — the request target: path normalization (RFC 3986) and the
 * redaction of credential query parameters for the audit log.  Nothing here
 * allocates.
 */
#include "tollgate/http.h"
#include "tollgate/util_fmt.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* ---- path normalization --------------------------------------------------- */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* Output cursor of the normalizer; `cap` leaves room for the NUL. */
typedef struct pbuf {
    char *p;
    size_t n, cap;
} pbuf_t;

static int pbuf_put(pbuf_t *b, char c)
{
    if (b->n >= b->cap)
        return -1;
    b->p[b->n++] = c;
    return 0;
}

/* Decode the segment in[0..len) into b: unreserved escapes decoded, others
 * kept upper-cased.  -1 on a bad escape, %00, %2F, %5C, a raw '\\', a
 * control byte or NUL; SRV_PATH_* bits into *flags. */
static int segment_decode(const char *in, size_t len, pbuf_t *b, unsigned *flags)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    int hi, lo, v;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            return -1;
        if (c == ';')
            *flags |= HTTP_PATH_SEMICOLON;
        if (c != '%') {
            if (pbuf_put(b, (char)c) != 0)
                return -1;
            continue;
        }
        if (len - i < 3 || (hi = util_hexval((unsigned char)in[i + 1])) < 0 ||
            (lo = util_hexval((unsigned char)in[i + 2])) < 0)
            return -1;
        v = hi << 4 | lo;
        i += 2;
        if (v == 0 || v == '/' || v == '\\')
            return -1;
        if (v == '%' && len - i >= 3 && util_hexval((unsigned char)in[i + 1]) >= 0 &&
            util_hexval((unsigned char)in[i + 2]) >= 0)
            *flags |= HTTP_PATH_PCT25;
        if (unreserved((unsigned char)v)) {
            if (pbuf_put(b, (char)v) != 0)
                return -1;
        } else if (pbuf_put(b, '%') != 0 || pbuf_put(b, hex[hi]) != 0 ||
                   pbuf_put(b, hex[lo]) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Drop the last segment of b (which ends with '/'); -1 at the root. */
static int segment_pop(pbuf_t *b)
{
    if (b->n <= 1)
        return -1;
    b->n--; /* the '/' closing the last segment */
    while (b->p[b->n - 1] != '/')
        b->n--;
    return 0;
}

/* Is the decoded segment s[0..n) "." or ".." with ';' parameters? */
static bool dot_with_params(const char *s, size_t n)
{
    const char *semi = memchr(s, ';', n);
    size_t k = semi ? (size_t)(semi - s) : n;

    return semi != NULL && k >= 1 && k <= 2 && s[0] == '.' && s[k - 1] == '.';
}

/* One pass over the segments: each is decoded into `out` and then, when it
 * turns out to be "." or "..", taken back (so "%2E%2E" is a dot segment
 * too).  Before each segment the output ends with '/'. */
int http_path_normalize(const char *in, size_t len, char *out, size_t outlen,
                        unsigned *flags)
{
    pbuf_t b = {out, 0, outlen > 0 ? outlen - 1 : 0};
    size_t i = 1, j, seg;
    unsigned dummy = 0;

    if (flags == NULL)
        flags = &dummy;
    *flags = 0;
    if (in == NULL || len == 0 || in[0] != '/' || pbuf_put(&b, '/') != 0)
        return -1;
    while (i <= len) {
        for (j = i; j < len && in[j] != '/'; j++)
            ;
        seg = b.n;
        if (segment_decode(in + i, j - i, &b, flags) != 0 ||
            dot_with_params(out + seg, b.n - seg))
            return -1;
        if (b.n - seg == 1 && out[seg] == '.') {
            b.n = seg;
            *flags |= HTTP_PATH_DOTSEG;
        } else if (b.n - seg == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            b.n = seg;
            *flags |= HTTP_PATH_DOTSEG;
            if (segment_pop(&b) != 0)
                return -1;
        } else if (b.n > seg && j < len && pbuf_put(&b, '/') != 0) {
            return -1;
        } else if (b.n == seg && j < len) {
            *flags |= HTTP_PATH_EMPTYSEG;
        }
        i = j + 1;
    }
    out[b.n] = '\0';
    return (int)b.n;
}

/* ---- query redaction ------------------------------------------------------ */

/* Is the parameter name name[0..len) a credential?  The name is compared
 * after percent-decoding, ASCII case-insensitively, because the server's
 * query parser (evhttp_parse_query_str) decodes names too: "tick%65t" must
 * not slip a ticket into the log. */
static bool secret_param(const char *name, size_t len, char *const *extra, size_t nextra)
{
    static const char *const names[] = {
        "token",         "access_token", "id_token",      "refresh_token", "api_key",
        "apikey",        "api-key",      "x-api-key",     "key",           "jwt",
        "ticket",        "password",     "passwd",        "pwd",           "secret",
        "client_secret", "auth",         "authorization", "sig",           "signature"};
    char dec[HTTP_REDACT_NAME_MAX + 1];
    size_t i, n = 0;
    int hi, lo;

    for (i = 0; i < len; i++) {
        if (n >= sizeof(dec) - 1)
            return false;
        if (name[i] == '%' && len - i >= 3 &&
            (hi = util_hexval((unsigned char)name[i + 1])) >= 0 &&
            (lo = util_hexval((unsigned char)name[i + 2])) >= 0) {
            dec[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            dec[n++] = name[i];
        }
    }
    dec[n] = '\0';
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(dec, names[i]) == 0)
            return true;
    for (i = 0; i < nextra; i++)
        if (strcasecmp(dec, extra[i]) == 0)
            return true;
    return false;
}

/* Append src[0..len) to out, truncating; returns false once out is full. */
static bool put(char *out, size_t outlen, size_t *o, const char *src, size_t len)
{
    size_t room = outlen - 1 - *o;

    if (len > room)
        len = room;
    memcpy(out + *o, src, len);
    *o += len;
    return *o < outlen - 1;
}

void http_redact_target(const char *target, char *const *extra, size_t nextra, char *out,
                        size_t outlen)
{
    const char *q, *p, *amp, *eq;
    size_t o = 0;

    if (out == NULL || outlen == 0)
        return;
    out[0] = '\0';
    if (target == NULL)
        return;
    q = strchr(target, '?');
    if (!put(out, outlen, &o, target, q ? (size_t)(q - target) + 1 : strlen(target)) || !q)
        goto out_terminate;
    for (p = q + 1;; p = amp + 1) {
        amp = strchr(p, '&');
        if (amp == NULL)
            amp = p + strlen(p);
        eq = memchr(p, '=', (size_t)(amp - p));
        if (eq != NULL && secret_param(p, (size_t)(eq - p), extra, nextra)) {
            if (!put(out, outlen, &o, p, (size_t)(eq - p) + 1) ||
                !put(out, outlen, &o, "REDACTED", 8))
                break;
        } else if (!put(out, outlen, &o, p, (size_t)(amp - p))) {
            break;
        }
        if (*amp == '\0' || !put(out, outlen, &o, "&", 1))
            break;
    }
out_terminate:
    out[o] = '\0';
}
