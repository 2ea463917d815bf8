/* http_util.c — request ids, path normalization, CORS origins and query
 * redaction.  See include/tollgate/srv_http_util.h.  Nothing here allocates.
 *
 * Request ids: UUIDv4 from a per-thread xoshiro256** generator seeded with
 * getrandom(2).  Ids are not secrets, only unique: 122 random bits from a
 * 256-bit state seeded independently in each thread.  A fork bumps a
 * generation counter so a child never repeats its parent's sequence.
 */
#include "tollgate/srv_http_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- request ids ---------------------------------------------------------- */

static bool reqid_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

bool srv_reqid_valid(const char *s)
{
    size_t i;

    if (s == NULL)
        return false;
    for (i = 0; s[i] != '\0'; i++)
        if (i >= SRV_REQID_MAX || !reqid_char((unsigned char)s[i]))
            return false;
    return i > 0;
}

typedef struct prng {
    uint64_t s[4];
    unsigned gen; /* fork generation this state was seeded in */
    bool seeded;
} prng_t;

static _Thread_local prng_t tl_prng;
static atomic_uint fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}

static void register_atfork(void)
{
    (void)pthread_atfork(NULL, NULL, on_fork_child);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Seed from getrandom; if that is unavailable, from time, pid and the
 * state's address (unique per thread) through splitmix64. */
static void prng_seed(prng_t *p)
{
    size_t got = 0;
    ssize_t r;
    struct timespec ts;
    uint64_t x;
    int i;

    while (got < sizeof(p->s)) {
        r = getrandom((char *)p->s + got, sizeof(p->s) - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got < sizeof(p->s)) {
        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        x ^= (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)p;
        for (i = 0; i < 4; i++)
            p->s[i] ^= splitmix64(&x);
    }
    if ((p->s[0] | p->s[1] | p->s[2] | p->s[3]) == 0)
        p->s[0] = 1; /* xoshiro's one forbidden state */
    p->seeded = true;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman & Vigna). */
static uint64_t prng_next(prng_t *p)
{
    uint64_t *s = p->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

void srv_reqid_new(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    prng_t *p = &tl_prng;
    unsigned gen;
    uint8_t b[16];
    uint64_t hi, lo;
    int i, o = 0;

    pthread_once(&atfork_once, register_atfork);
    gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);
    if (!p->seeded || p->gen != gen) {
        prng_seed(p);
        p->gen = gen;
    }
    hi = prng_next(p);
    lo = prng_next(p);
    for (i = 0; i < 8; i++) {
        b[i] = (uint8_t)(hi >> (56 - 8 * i));
        b[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* variant 10 */
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

/* ---- path normalization --------------------------------------------------- */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

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
            *flags |= SRV_PATH_SEMICOLON;
        if (c != '%') {
            if (pbuf_put(b, (char)c) != 0)
                return -1;
            continue;
        }
        if (len - i < 3 || (hi = hexval((unsigned char)in[i + 1])) < 0 ||
            (lo = hexval((unsigned char)in[i + 2])) < 0)
            return -1;
        v = hi << 4 | lo;
        i += 2;
        if (v == 0 || v == '/' || v == '\\')
            return -1;
        if (v == '%' && len - i >= 3 && hexval((unsigned char)in[i + 1]) >= 0 &&
            hexval((unsigned char)in[i + 2]) >= 0)
            *flags |= SRV_PATH_PCT25;
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
int srv_path_normalize(const char *in, size_t len, char *out, size_t outlen,
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
        } else if (b.n - seg == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            b.n = seg;
            if (segment_pop(&b) != 0)
                return -1;
        } else if (b.n > seg && j < len && pbuf_put(&b, '/') != 0) {
            return -1;
        }
        i = j + 1;
    }
    out[b.n] = '\0';
    return (int)b.n;
}

/* ---- CORS ----------------------------------------------------------------- */

#define ERR(...)                                                                           \
    do {                                                                                   \
        if (errlen > 0)                                                                    \
            snprintf(err, errlen, __VA_ARGS__);                                            \
    } while (0)

/* A DNS host in lower case: dot-separated labels of [a-z0-9-], no label
 * empty or starting/ending with '-', at most 253 bytes. */
static bool host_ok(const char *h, size_t len)
{
    size_t i, label = 0;

    if (len == 0 || len > 253)
        return false;
    for (i = 0; i < len; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0 || h[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && h[len - 1] != '-';
}

/* "[v6]" in lower case. */
static bool host6_ok(const char *h, size_t len)
{
    size_t i;

    if (len < 4 || h[0] != '[' || h[len - 1] != ']' || len > 2 + 45)
        return false;
    for (i = 1; i < len - 1; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'f') || (c >= '0' && c <= '9') || c == ':' || c == '.'))
            return false;
    }
    return memchr(h, ':', len) != NULL;
}

static bool port_ok(const char *p)
{
    unsigned long v = 0;
    size_t i;

    if (p[0] == '\0' || p[0] == '0' || strlen(p) > 5)
        return false;
    for (i = 0; p[i] != '\0'; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    return v <= 65535;
}

int srv_cors_origin_check(const char *origin, char *err, size_t errlen)
{
    const char *host, *end, *colon;

    if (origin == NULL || origin[0] == '\0') {
        ERR("empty CORS origin");
        return -1;
    }
    if (strchr(origin, '*') != NULL) {
        ERR("CORS origin \"%s\": wildcards are not allowed", origin);
        return -1;
    }
    if (strncmp(origin, "https://", 8) == 0) {
        host = origin + 8;
    } else if (strncmp(origin, "http://", 7) == 0) {
        host = origin + 7;
    } else {
        ERR("CORS origin \"%s\": scheme must be http:// or https:// (lower case)", origin);
        return -1;
    }
    if (strpbrk(host, "/?#@\\") != NULL) {
        ERR("CORS origin \"%s\": no path, query, fragment or userinfo", origin);
        return -1;
    }
    end = host + strlen(host);
    colon = host[0] == '[' ? strchr(host, ']') : host;
    colon = colon != NULL ? strchr(colon, ':') : NULL;
    if (colon != NULL && !port_ok(colon + 1)) {
        ERR("CORS origin \"%s\": bad port", origin);
        return -1;
    }
    if (colon != NULL)
        end = colon;
    if (!host_ok(host, (size_t)(end - host)) && !host6_ok(host, (size_t)(end - host))) {
        ERR("CORS origin \"%s\": bad host (lower-case DNS name or [IPv6])", origin);
        return -1;
    }
    return 0;
}

bool srv_cors_origin_allowed(const char *origin, char *const *allowed, size_t n)
{
    size_t i;

    if (origin == NULL || allowed == NULL)
        return false;
    for (i = 0; i < n; i++)
        if (allowed[i] != NULL && strcasecmp(origin, allowed[i]) == 0)
            return true;
    return false;
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
    char dec[SRV_REDACT_NAME_MAX + 1];
    size_t i, n = 0;
    int hi, lo;

    for (i = 0; i < len; i++) {
        if (n >= sizeof(dec) - 1)
            return false;
        if (name[i] == '%' && len - i >= 3 &&
            (hi = hexval((unsigned char)name[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)name[i + 2])) >= 0) {
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

void srv_redact_target(const char *target, char *const *extra, size_t nextra, char *out,
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

/* ---- header names --------------------------------------------------------- */

bool srv_hdr_name_ok(const char *name)
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
 * `lit` under the equivalence of srv_hdr_class()?  *odd notes a '_'/'.'. */
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

srv_hdr_class_t srv_hdr_class(const char *name, bool *variant)
{
    static const char *const vouched[] = {"x-request-id", "x-forwarded-for",
                                          "x-forwarded-proto", "x-forwarded-host",
                                          "x-real-ip"};
    srv_hdr_class_t cls = SRV_HDR_PLAIN;
    bool odd = false;

    /* Every reserved name starts with 'x' or 'f': most names stop here. */
    if ((name[0] | 0x20) != 'x' && (name[0] | 0x20) != 'f') {
        if (variant != NULL)
            *variant = false;
        return SRV_HDR_PLAIN;
    }
    if (canon_match(name, "x-auth-", false, &odd)) {
        cls = SRV_HDR_IDENTITY;
    } else {
        for (size_t i = 0; i < sizeof(vouched) / sizeof(vouched[0]) && cls == 0; i++) {
            odd = false;
            if (canon_match(name, vouched[i], true, &odd))
                cls = SRV_HDR_VOUCHED;
        }
        if (cls == SRV_HDR_PLAIN) {
            odd = false;
            if (canon_match(name, "forwarded", true, &odd) ||
                canon_match(name, "x-original-", false, &odd) ||
                canon_match(name, "x-forwarded-", false, &odd))
                cls = SRV_HDR_FORWARDER;
        }
    }
    if (variant != NULL)
        *variant = cls != SRV_HDR_PLAIN && odd;
    return cls;
}

size_t srv_hdr_value_encode(const char *in, bool keep_space, char *out, size_t outlen)
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
