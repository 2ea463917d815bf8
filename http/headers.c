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

void http_head_scan_start(http_head_scan_t *s)
{
    s->in_head = true;
    s->st = 0;
    s->nul = false;
}

void http_head_scan_feed(http_head_scan_t *s, const char *p, size_t n)
{
    const char *end = p + n, *nl;

    while (s->in_head && p < end) {
        if (s->st != 0) {
            if (*p == '\n') {
                s->in_head = false;
                return;
            }
            if (*p == '\r' && s->st == 1) {
                s->st = 2;
                p++;
                continue;
            }
            s->st = 0;
        }
        nl = memchr(p, '\n', (size_t)(end - p));
        if (memchr(p, '\0', (size_t)((nl != NULL ? nl : end) - p)) != NULL)
            s->nul = true;
        if (nl == NULL)
            return;
        p = nl + 1;
        s->st = 1;
    }
}
