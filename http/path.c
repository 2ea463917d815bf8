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

/* A query name is read the way the frameworks behind tollgate read it, and
 * every reading that could make it a credential counts:
 *  - percent-decoded once, '+' as a space, IIS/ASP.NET's %uXXXX too;
 *  - letters compared case-insensitively, with the four non-ASCII letters
 *    that Java's equalsIgnoreCase and .NET's OrdinalIgnoreCase take for
 *    ASCII ones (U+0130 and U+0131 for i, U+017F for s, U+212A for k);
 *  - '-', '.', '_' and inner spaces equal (PHP turns ' ' and '.' into '_'),
 *    spaces around a name ignored (PHP drops leading ones);
 *  - the base name before the first '[' (PHP, Rails, qs: "token[]",
 *    "token[0]") and every part between '[', ']' and '.' ("user[password]",
 *    Spring's and qs's "user.password") are each a name;
 *  - a NUL ends the name (PHP). */
typedef struct name_rd {
    const char *p, *end;
} name_rd_t;

/* The ASCII letter a non-ASCII code point case-folds to in Java and .NET,
 * else 0x80 (which matches no name). */
static int fold_cp(unsigned cp)
{
    if (cp < 0x80)
        return (int)cp;
    if (cp == 0x130 || cp == 0x131)
        return 'i';
    if (cp == 0x17f)
        return 's';
    if (cp == 0x212a)
        return 'k';
    return 0x80;
}

/* The next byte of the name, decoded; -1 at its end. */
static int rd_byte(name_rd_t *r)
{
    const char *p = r->p;
    unsigned cp = 0;
    int i, h;

    if (p >= r->end)
        return -1;
    if (*p == '+') {
        r->p++;
        return ' ';
    }
    if (*p == '%' && r->end - p >= 6 && (p[1] == 'u' || p[1] == 'U')) {
        for (i = 2; i < 6 && (h = util_hexval((unsigned char)p[i])) >= 0; i++)
            cp = cp << 4 | (unsigned)h;
        if (i == 6) {
            r->p += 6;
            return fold_cp(cp);
        }
    }
    if (*p == '%' && r->end - p >= 3 && util_hexval((unsigned char)p[1]) >= 0 &&
        util_hexval((unsigned char)p[2]) >= 0) {
        r->p += 3;
        return util_hexval((unsigned char)p[1]) << 4 | util_hexval((unsigned char)p[2]);
    }
    r->p++;
    return (unsigned char)*p;
}

/* The next character of the name: decoded, the UTF-8 of U+0130, U+0131,
 * U+017F and U+212A folded, ASCII lower-cased; -1 at its end. */
static int rd_char(name_rd_t *r)
{
    static const struct {
        unsigned char utf8[3];
        size_t n;
        char ascii;
    } folds[] = {{{0xc4, 0xb0}, 2, 'i'},
                 {{0xc4, 0xb1}, 2, 'i'},
                 {{0xc5, 0xbf}, 2, 's'},
                 {{0xe2, 0x84, 0xaa}, 3, 'k'}};
    int c = rd_byte(r);
    size_t i, k;

    for (i = 0; c >= 0xc4 && i < sizeof(folds) / sizeof(folds[0]); i++) {
        name_rd_t ahead = *r;

        if (c != folds[i].utf8[0])
            continue;
        for (k = 1; k < folds[i].n && rd_byte(&ahead) == folds[i].utf8[k]; k++)
            ;
        if (k == folds[i].n) {
            *r = ahead;
            return folds[i].ascii;
        }
    }
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* '-', '.' and ' ' as '_', ASCII lower-cased. */
static char fold_char(char c)
{
    if (c == '-' || c == '.' || c == ' ')
        return '_';
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* One reading of a name, folded; spaces at either end dropped. */
typedef struct name_word {
    char s[HTTP_REDACT_NAME_MAX];
    size_t n;      /* bytes in s */
    size_t spaces; /* spaces read after s, placed only if more follows */
    bool over;     /* longer than any name in a list: matches none */
} name_word_t;

static void word_put(name_word_t *w, int c)
{
    if (c == ' ') {
        w->spaces += w->n > 0;
        return;
    }
    if (w->over || w->n + w->spaces + 1 > sizeof(w->s)) {
        w->over = true;
        return;
    }
    memset(w->s + w->n, '_', w->spaces);
    w->n += w->spaces;
    w->spaces = 0;
    w->s[w->n++] = fold_char((char)c);
}

static bool word_is(const name_word_t *w, const char *name)
{
    size_t i;

    for (i = 0; i < w->n && name[i] != '\0'; i++)
        if (w->s[i] != fold_char(name[i]))
            return false;
    return i == w->n && name[i] == '\0';
}

static bool word_secret(const name_word_t *w, char *const *extra, size_t nextra)
{
    static const char *const names[] = {
        "token",         "access_token", "id_token",      "refresh_token", "api_key",
        "apikey",        "api-key",      "x-api-key",     "key",           "jwt",
        "ticket",        "password",     "passwd",        "pwd",           "secret",
        "client_secret", "auth",         "authorization", "sig",           "signature"};
    size_t i;

    if (w->over || w->n == 0)
        return false;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (word_is(w, names[i]))
            return true;
    for (i = 0; i < nextra; i++)
        if (word_is(w, extra[i]))
            return true;
    return false;
}

/* Is the parameter name name[0..len) a credential under any reading above? */
static bool secret_param(const char *name, size_t len, char *const *extra, size_t nextra)
{
    name_rd_t r = {name, name + len};
    name_word_t base = {.n = 0}, part = {.n = 0};
    bool in_base = true;
    int c;

    while ((c = rd_char(&r)) > 0) {
        if (c == '[')
            in_base = false;
        if (in_base)
            word_put(&base, c);
        if (c != '[' && c != ']' && c != '.') {
            word_put(&part, c);
            continue;
        }
        if (word_secret(&part, extra, nextra))
            return true;
        memset(&part, 0, sizeof(part));
    }
    return word_secret(&base, extra, nextra) || word_secret(&part, extra, nextra);
}

/* Is the base of parameter name name[0..len) `want`, read as above? */
static bool param_is(const char *name, size_t len, const char *want)
{
    name_rd_t r = {name, name + len};
    name_word_t base = {.n = 0};
    int c;

    while ((c = rd_char(&r)) > 0 && c != '[')
        word_put(&base, c);
    return !base.over && word_is(&base, want);
}

/* Bytes of s[0..len) before the first of `stop` (or NUL). */
static size_t span_until(const char *s, size_t len, const char *stop)
{
    size_t n = 0;

    while (n < len && s[n] != '\0' && strchr(stop, s[n]) == NULL)
        n++;
    return n;
}

static bool params_have(const char *p, size_t len, const char *name)
{
    const char *end = p + len;
    size_t nlen;

    while (p < end && *p != '\0') {
        nlen = span_until(p, (size_t)(end - p), "&;=");
        if (param_is(p, nlen, name))
            return true;
        p += nlen;
        p += span_until(p, (size_t)(end - p), "&;");
        if (p < end && *p != '\0')
            p++;
    }
    return false;
}

bool http_query_has(const char *query, const char *name)
{
    return query != NULL && params_have(query, strlen(query), name);
}

/* Does `s` (len bytes) hold `word` at `i`, in any case? */
static bool has_word_at(const char *s, size_t len, size_t i, const char *word)
{
    size_t n = strlen(word);

    return i + n <= len && strncasecmp(s + i, word, n) == 0;
}

typedef enum { BODY_NONE, BODY_FORM, BODY_MULTIPART, BODY_JSON } body_kind_t;

static body_kind_t body_kind(const char *ctype)
{
    size_t clen = ctype != NULL ? strlen(ctype) : 0;

    if (has_word_at(ctype, clen, 0, "application/x-www-form-urlencoded"))
        return BODY_FORM;
    if (has_word_at(ctype, clen, 0, "multipart/form-data"))
        return BODY_MULTIPART;
    if (has_word_at(ctype, clen, 0, "application/json") ||
        (clen > 5 && memmem(ctype, clen, "+json", 5) != NULL))
        return BODY_JSON;
    return BODY_NONE;
}

bool http_body_type_has_params(const char *ctype)
{
    return body_kind(ctype) != BODY_NONE;
}

bool http_body_has_param(const char *ctype, const char *body, size_t len, const char *name)
{
    body_kind_t kind = body_kind(ctype);

    if (body == NULL || len == 0)
        return false;
    if (kind == BODY_FORM)
        return params_have(body, len, name);
    if (kind == BODY_MULTIPART) {
        /* every name="..." (or name=token) of a part's headers; a
         * filename= matches too, which only refuses more */
        for (size_t i = 0; i + 5 <= len; i++) {
            size_t v, n;

            if (!has_word_at(body, len, i, "name="))
                continue;
            v = i + 5;
            if (v < len && (body[v] == '"' || body[v] == '\'')) {
                char q[2] = {body[v], '\0'};

                v++;
                n = span_until(body + v, len - v, q);
            } else {
                n = span_until(body + v, len - v, "; \t\r\n");
            }
            if (param_is(body + v, n, name))
                return true;
        }
        return false;
    }
    if (kind == BODY_JSON) {
        /* a key spelled "name" anywhere (Laravel reads _method from a JSON
         * body): a plain scan, so a value spelled so refuses too */
        size_t n = strlen(name);

        for (size_t i = 0; i + n + 2 <= len; i++)
            if (body[i] == '"' && strncasecmp(body + i + 1, name, n) == 0 &&
                body[i + 1 + n] == '"')
                return true;
        return false;
    }
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

/* A name may start after any of these: '&' everywhere, ';' for Rack < 3,
 * Go < 1.17, Python < 3.9.2, Bottle and Perl's CGI; '?' and '#' for a
 * credential inside another value ("next=/cb?token=..") or a fragment a
 * client should not have sent.  A value ends only at '&': that is where
 * every reader ends it ("token=a;b" is "a;b" to PHP). */
#define NAME_STOP "=&;?#"

void http_redact_target(const char *target, char *const *extra, size_t nextra, char *out,
                        size_t outlen)
{
    const char *p;
    size_t o = 0, nlen, vlen;

    if (out == NULL || outlen == 0)
        return;
    out[0] = '\0';
    if (target == NULL)
        return;
    p = target + strcspn(target, "?#");
    if (!put(out, outlen, &o, target, (size_t)(p - target) + (*p != '\0')) || *p == '\0')
        goto out_terminate;
    for (p++; *p != '\0';) {
        nlen = strcspn(p, NAME_STOP);
        if (p[nlen] == '=' && secret_param(p, nlen, extra, nextra)) {
            if (!put(out, outlen, &o, p, nlen + 1) || !put(out, outlen, &o, "REDACTED", 8))
                break;
            p += nlen + 1 + strcspn(p + nlen + 1, "&");
        } else {
            vlen = p[nlen] == '=' ? 1 + strcspn(p + nlen + 1, NAME_STOP + 1) : 0;
            if (!put(out, outlen, &o, p, nlen + vlen))
                break;
            p += nlen + vlen;
        }
        if (*p != '\0' && !put(out, outlen, &o, p++, 1))
            break;
    }
out_terminate:
    out[o] = '\0';
}
