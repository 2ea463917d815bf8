/* headers.c — header names and values: RFC 9110 tokens, the classes of
 * names tollgate sets or vouches for, identity value encoding.
 */
#include "tollgate/http.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* ---- header names --------------------------------------------------------- */

bool http_hdr_name_ok(const char *name)
{
    const unsigned char *p = (const unsigned char *)name;

    if (*p == '\0')
        return false;
    for (; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || strchr("!#$%&'*+.^_`|~", *p)))
            return false;
    return true;
}

/* Does `name` start with (or, `whole`, equal) the lower-case, dash-spelled
 * `lit` under the equivalence of http_hdr_class()?  *odd notes a '_'/'.'. */
static bool canon_match(const char *name, const char *lit, bool whole, bool *odd)
{
    for (; *lit != '\0'; name++, lit++) {
        char c = *name;

        if (c == '_' || c == '.') {
            *odd = true;
            c = '-';
        } else if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != *lit)
            return false;
    }
    if (whole && *name != '\0')
        return false;
    for (; *name != '\0'; name++)
        if (*name == '_' || *name == '.')
            *odd = true;
    return true;
}

bool http_hdr_method_override(const char *name)
{
    static const char *const names[] = {"x-http-method-override", "x-http-method",
                                        "x-method-override"};
    bool odd = false;

    if ((name[0] | 0x20) != 'x')
        return false;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (canon_match(name, names[i], true, &odd))
            return true;
    return false;
}

http_hdr_class_t http_hdr_class(const char *name, bool *variant)
{
    static const char *const vouched[] = {"x-request-id", "x-forwarded-for",
                                          "x-forwarded-proto", "x-forwarded-host",
                                          "x-real-ip"};
    http_hdr_class_t cls = HTTP_HDR_PLAIN;
    bool odd = false;

    /* Every reserved name starts with 'x' or 'f': most names stop here. */
    if ((name[0] | 0x20) != 'x' && (name[0] | 0x20) != 'f') {
        if (variant != NULL)
            *variant = false;
        return HTTP_HDR_PLAIN;
    }
    if (canon_match(name, "x-auth-", false, &odd)) {
        cls = HTTP_HDR_IDENTITY;
    } else {
        for (size_t i = 0; i < sizeof(vouched) / sizeof(vouched[0]) && cls == 0; i++) {
            odd = false;
            if (canon_match(name, vouched[i], true, &odd))
                cls = HTTP_HDR_VOUCHED;
        }
        if (cls == HTTP_HDR_PLAIN) {
            odd = false;
            if (canon_match(name, "forwarded", true, &odd) ||
                canon_match(name, "x-original-", false, &odd) ||
                canon_match(name, "x-forwarded-", false, &odd))
                cls = HTTP_HDR_FORWARDER;
        }
    }
    if (variant != NULL)
        *variant = cls != HTTP_HDR_PLAIN && odd;
    return cls;
}

size_t http_hdr_value_encode(const char *in, bool keep_space, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    if (out == NULL || outlen == 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)in; p != NULL && *p != '\0'; p++) {
        bool plain =
            (*p > 0x20 && *p < 0x7f && *p != ',' && *p != '%') || (keep_space && *p == ' ');

        if (o + (plain ? 1 : 3) >= outlen)
            break;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return o;
}

/* Reading a Content-Length line (http_head_scan_t.cl): 0..14 is how much of
 * the name and ':' matched so far; then OWS and digits; CL_NONE when the
 * line is something else or not a plain "Content-Length: digits" (libevent
 * and dec_hdrs_scan in decide/dec_identify.c judge those; max_body_size
 * stays libevent's backstop). */
enum { CL_NAME_END = 15, CL_DIGITS, CL_AFTER, CL_CR, CL_NONE };

static const char cl_name[] = "content-length:";

void http_head_scan_start(http_head_scan_t *s)
{
    memset(s, 0, sizeof(*s));
    s->in_head = true;
    s->cl = CL_NONE; /* the request line */
}

/* Read the bytes of a Content-Length line from p on, up to its LF (not
 * consumed) or the end of the piece; return where it stopped: there, or at
 * the first byte that makes it another kind of line. */
static const char *clen_feed(http_head_scan_t *s, const char *p, const char *end)
{
    for (; p < end && *p != '\n'; p++) {
        unsigned char ch = (unsigned char)*p;

        if (s->cl < CL_NAME_END) {
            if ((ch >= 'A' && ch <= 'Z' ? ch + 32 : ch) != (unsigned char)cl_name[s->cl])
                break;
            s->cl++;
        } else if ((ch == ' ' || ch == '\t') && s->cl != CL_CR) {
            if (s->cl == CL_DIGITS)
                s->cl = CL_AFTER;
        } else if (ch >= '0' && ch <= '9' && (s->cl == CL_NAME_END || s->cl == CL_DIGITS)) {
            s->cl = CL_DIGITS;
            s->cl_cur = s->cl_cur > (UINT64_MAX - 9) / 10 ? UINT64_MAX
                                                          : s->cl_cur * 10 + (ch - '0');
        } else if (ch == '\r' && (s->cl == CL_DIGITS || s->cl == CL_AFTER)) {
            s->cl = CL_CR;
        } else {
            break;
        }
    }
    if (p < end && *p != '\n')
        s->cl = CL_NONE;
    return p;
}

/* A line ends: keep its Content-Length if it was one. */
static void line_ends(http_head_scan_t *s)
{
    if (s->cl == CL_DIGITS || s->cl == CL_AFTER || s->cl == CL_CR) {
        if (!s->has_clen || s->cl_cur > s->clen)
            s->clen = s->cl_cur;
        s->has_clen = true;
    }
    s->cl = CL_NONE;
}

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The method: the request line's bytes up to its first SP. */
static void method_feed(http_head_scan_t *s, const char *p, const char *end)
{
    for (; p < end && s->mstate == HTTP_HEAD_METHOD_READING; p++) {
        unsigned char c = (unsigned char)*p;

        if (c == ' ' && s->mlen > 0) {
            s->mstate = HTTP_HEAD_METHOD_TOKEN;
        } else if (!tchar(c)) {
            s->mstate = HTTP_HEAD_METHOD_BAD;
        } else {
            if (s->mlen < HTTP_HEAD_METHOD_MAX - 1)
                s->method[s->mlen] = (char)c;
            if (s->mlen < 255)
                s->mlen++;
        }
    }
}

void http_head_scan_feed(http_head_scan_t *s, const char *p, size_t n)
{
    const char *start = p, *end = p + n, *nl;

    if (s->in_head && s->mstate == HTTP_HEAD_METHOD_READING)
        method_feed(s, p, end);

    while (s->in_head && p < end) {
        if (s->st != 0) {
            if (*p == '\n') {
                s->in_head = false;
                p++;
                break;
            }
            if (*p == '\r' && s->st == 1) {
                s->st = 2;
                p++;
                continue;
            }
            /* a header line starts (one that starts with CR is no field) */
            s->cl = s->st == 1 ? 0 : CL_NONE;
            s->cl_cur = 0;
            s->st = 0;
        }
        if (s->cl != CL_NONE)
            p = clen_feed(s, p, end);
        nl = memchr(p, '\n', (size_t)(end - p));
        if (memchr(p, '\0', (size_t)((nl != NULL ? nl : end) - p)) != NULL)
            s->nul = true;
        if (nl == NULL) {
            p = end;
            break;
        }
        line_ends(s);
        p = nl + 1;
        s->st = 1;
    }
    s->len += (size_t)(p - start);
}
