/* net.c — CIDR lists, the client address behind X-Forwarded-For, and
 * "host:port" parsing.  See include/tollgate/http.h.
 *
 * Accepted X-Forwarded-For hop forms (one hop between commas, optional
 * spaces/tabs around it):
 *   1.2.3.4            1.2.3.4:5678
 *   2001:db8::1        [2001:db8::1]        [2001:db8::1]:443
 * Anything else ("unknown", obfuscated RFC 7239 identifiers, an empty hop, a
 * zone id, a bracketed v4 address, a hop over 64 bytes) is malformed and ends
 * the walk.  v4-mapped v6 addresses are treated, and written, as v4.
 * No function here allocates except http_cidr_list_add / _default.
 */
#include "tollgate/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define HOP_MAX 64 /* longest hop text we look at ("[v6]:port" fits) */

/* A parsed address: family and 4 or 16 bytes. */
typedef struct net_addr {
    int family;
    uint8_t b[16];
} net_addr_t;

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Fold ::ffff:a.b.c.d into AF_INET a.b.c.d. */
static void addr_unmap(net_addr_t *a)
{
    if (a->family == AF_INET6 && memcmp(a->b, v4mapped_prefix, 12) == 0) {
        memmove(a->b, a->b + 12, 4);
        memset(a->b + 4, 0, 12);
        a->family = AF_INET;
    }
}

/* Parse the `len` bytes at `s` as a bare v4 or v6 address.  0 or -1. */
static int addr_parse(const char *s, size_t len, net_addr_t *a)
{
    char tmp[HTTP_IP_STRLEN];

    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, tmp, a->b) == 1) {
        a->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, tmp, a->b) == 1) {
        a->family = AF_INET6;
        addr_unmap(a);
        return 0;
    }
    return -1;
}

static void addr_format(const net_addr_t *a, char *out, size_t outlen)
{
    char tmp[HTTP_IP_STRLEN];

    if (inet_ntop(a->family, a->b, tmp, sizeof(tmp)) == NULL)
        tmp[0] = '\0';
    if (outlen == 0)
        return;
    strncpy(out, tmp, outlen - 1);
    out[outlen - 1] = '\0';
}

static bool cidr_match(const http_cidr_t *c, const net_addr_t *a)
{
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    uint8_t mask;

    if (c->family != a->family)
        return false;
    if (memcmp(c->addr, a->b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    mask = (uint8_t)(0xffu << (8 - rest));
    return (c->addr[full] & mask) == (a->b[full] & mask);
}

static bool list_contains_addr(const http_cidr_list_t *l, const net_addr_t *a)
{
    size_t i;

    if (l == NULL)
        return false;
    for (i = 0; i < l->n; i++)
        if (cidr_match(&l->v[i], a))
            return true;
    return false;
}

/* "8", "32", "128": 1-3 digits, no sign, no leading zero. -1 if not. */
static int parse_prefix(const char *s)
{
    size_t n = strlen(s), i;
    int v = 0;

    if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
        return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static bool host_bits_zero(const uint8_t *b, unsigned prefix, unsigned bits)
{
    unsigned i;

    for (i = prefix; i < bits; i++)
        if (b[i / 8] & (0x80u >> (i % 8)))
            return false;
    return true;
}

int http_cidr_parse(const char *s, http_cidr_t *out)
{
    const char *slash;
    net_addr_t a;
    unsigned bits;
    int prefix = -1;
    bool mapped;

    if (s == NULL || out == NULL)
        return -1;
    slash = strchr(s, '/');
    if (addr_parse(s, slash ? (size_t)(slash - s) : strlen(s), &a) != 0)
        return -1;
    /* A v4-mapped CIDR ("::ffff:10.0.0.0/104") is kept as its v4 form. */
    mapped = a.family == AF_INET &&
             memchr(s, ':', slash ? (size_t)(slash - s) : strlen(s)) != NULL;
    bits = a.family == AF_INET ? 32 : 128;
    if (slash != NULL) {
        prefix = parse_prefix(slash + 1);
        if (prefix < 0)
            return -1;
        if (mapped) {
            if (prefix < 96)
                return -1;
            prefix -= 96;
        }
        if ((unsigned)prefix > bits)
            return -1;
    } else {
        prefix = (int)bits;
    }
    if (!host_bits_zero(a.b, (unsigned)prefix, bits))
        return -1;
    memset(out, 0, sizeof(*out));
    out->family = a.family;
    memcpy(out->addr, a.b, 16);
    out->prefix = (unsigned)prefix;
    return 0;
}

int http_cidr_list_add(http_cidr_list_t *l, const http_cidr_t *c)
{
    http_cidr_t *v;

    v = realloc(l->v, (l->n + 1) * sizeof(*v));
    if (v == NULL)
        return -1;
    v[l->n++] = *c;
    l->v = v;
    return 0;
}

int http_cidr_list_default(http_cidr_list_t *l)
{
    static const char *const defaults[] = {"127.0.0.0/8",   "::1/128",        "10.0.0.0/8",
                                           "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"};
    http_cidr_t c;
    size_t i;

    for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (http_cidr_parse(defaults[i], &c) != 0 || http_cidr_list_add(l, &c) != 0)
            return -1;
    }
    return 0;
}

void http_cidr_list_clear(http_cidr_list_t *l)
{
    if (l == NULL)
        return;
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

bool http_cidr_list_contains(const http_cidr_list_t *l, const char *ip)
{
    net_addr_t a;

    if (ip == NULL || addr_parse(ip, strlen(ip), &a) != 0)
        return false;
    return list_contains_addr(l, &a);
}

/* Is s[0..len) a port: 1-5 digits, <= 65535?  Writes it to *port. */
static bool parse_port(const char *s, size_t len, uint16_t *port)
{
    unsigned long v = 0;
    size_t i;

    if (len == 0 || len > 5)
        return false;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* Parse one XFF hop (already trimmed) in any of the forms listed at the top. */
static int hop_parse(const char *s, size_t len, net_addr_t *a)
{
    const char *close, *colon;
    size_t inner, after;
    uint16_t port;

    if (len == 0 || len > HOP_MAX)
        return -1;
    if (s[0] == '[') {
        close = memchr(s, ']', len);
        if (close == NULL)
            return -1;
        inner = (size_t)(close - s) - 1;
        after = len - inner - 2;
        if (after > 0 && (close[1] != ':' || !parse_port(close + 2, after - 1, &port)))
            return -1;
        /* Brackets hold v6 text only ("[1.2.3.4]" is not an address). */
        if (memchr(s + 1, ':', inner) == NULL)
            return -1;
        return addr_parse(s + 1, inner, a);
    }
    colon = memchr(s, ':', len);
    if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) == NULL) {
        /* Exactly one colon: v4 with a port. */
        if (!parse_port(colon + 1, len - (size_t)(colon - s) - 1, &port))
            return -1;
        if (addr_parse(s, (size_t)(colon - s), a) != 0 || a->family != AF_INET)
            return -1;
        return 0;
    }
    return addr_parse(s, len, a);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Walk `xff` from the right starting from the trusted address `cur`;
 * leave the client address in `cur`. */
static void xff_walk(const char *xff, const http_cidr_list_t *trusted, net_addr_t *cur)
{
    const char *end = xff + strlen(xff), *start, *b, *e;
    net_addr_t hop;

    while (end > xff) {
        start = end;
        while (start > xff && start[-1] != ',')
            start--;
        for (b = start; b < end && is_ows(*b); b++)
            ;
        for (e = end; e > b && is_ows(e[-1]); e--)
            ;
        if (hop_parse(b, (size_t)(e - b), &hop) != 0)
            return;
        *cur = hop;
        if (!list_contains_addr(trusted, &hop))
            return;
        if (start == xff)
            return;
        end = start - 1; /* skip the comma */
    }
}

void http_client_ip(const char *peer_ip, const char *xff, const http_cidr_list_t *trusted,
                    char *out, size_t outlen)
{
    net_addr_t cur;

    if (out == NULL || outlen == 0)
        return;
    if (peer_ip == NULL || addr_parse(peer_ip, strlen(peer_ip), &cur) != 0) {
        /* Not an IP (a unix socket, say): pass it on as it is, truncated. */
        out[0] = '\0';
        if (peer_ip != NULL) {
            strncpy(out, peer_ip, outlen - 1);
            out[outlen - 1] = '\0';
        }
        return;
    }
    if (xff != NULL && list_contains_addr(trusted, &cur))
        xff_walk(xff, trusted, &cur);
    addr_format(&cur, out, outlen);
}

/* Length of `h` without ":port" and without one trailing dot.  "[v6]:port"
 * keeps the brackets. */
static size_t host_len(const char *h)
{
    const char *end;
    size_t n;

    if (h[0] == '[') {
        end = strchr(h, ']');
        n = end != NULL ? (size_t)(end - h) + 1 : strlen(h);
    } else {
        n = strcspn(h, ":");
    }
    if (n > 0 && h[n - 1] == '.')
        n--;
    return n;
}

bool http_host_equal(const char *a, const char *b)
{
    size_t n;

    if (a == NULL || b == NULL)
        return false;
    n = host_len(a);
    return n == host_len(b) && strncasecmp(a, b, n) == 0;
}

void http_ip_key(const char *ip, unsigned v6_prefix, char *out, size_t outlen)
{
    net_addr_t a;
    char net[HTTP_IP_STRLEN];
    unsigned i;

    if (out == NULL || outlen == 0)
        return;
    /* Digits and dots: an IPv4 address (its canonical form, as
     * http_client_ip writes it) or no address at all: either way the key is
     * the text itself.  Saves the parse and format of every request from an
     * IPv4 client (about 6k instructions under callgrind). */
    if (ip != NULL && ip[strspn(ip, "0123456789.")] == '\0') {
        size_t n = strlen(ip) < outlen ? strlen(ip) : outlen - 1;

        memcpy(out, ip, n);
        out[n] = '\0';
        return;
    }
    if (ip == NULL || addr_parse(ip, strlen(ip), &a) != 0) {
        snprintf(out, outlen, "%s", ip != NULL ? ip : "");
        return;
    }
    /* addr_parse() has folded ::ffff:a.b.c.d into AF_INET: never masked */
    if (a.family != AF_INET6 || v6_prefix >= 128) {
        addr_format(&a, out, outlen);
        return;
    }
    for (i = v6_prefix; i < 128; i++)
        a.b[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    if (inet_ntop(AF_INET6, a.b, net, sizeof(net)) == NULL)
        net[0] = '\0';
    snprintf(out, outlen, "%s/%u", net, v6_prefix);
}

/* A host name or v4 literal: letters, digits, '.', '-', '_'. */
static bool host_chars_ok(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static int copy_host(const char *s, size_t len, char *host, size_t hostlen)
{
    if (len + 1 > hostlen)
        return -1;
    memcpy(host, s, len);
    host[len] = '\0';
    return 0;
}

int http_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon, *close;
    net_addr_t a;

    if (s == NULL || host == NULL || port == NULL)
        return -1;
    if (s[0] == '[') {
        close = strchr(s, ']');
        if (close == NULL || close[1] != ':' ||
            !parse_port(close + 2, strlen(close + 2), port))
            return -1;
        if (addr_parse(s + 1, (size_t)(close - s) - 1, &a) != 0 ||
            memchr(s + 1, ':', (size_t)(close - s) - 1) == NULL)
            return -1;
        return copy_host(s + 1, (size_t)(close - s) - 1, host, hostlen);
    }
    colon = strchr(s, ':');
    if (colon == NULL || strchr(colon + 1, ':') != NULL)
        return -1; /* no port, or an unbracketed v6 address */
    if (!parse_port(colon + 1, strlen(colon + 1), port))
        return -1;
    if (colon == s)
        return copy_host("0.0.0.0", 7, host, hostlen);
    if (!host_chars_ok(s, (size_t)(colon - s)))
        return -1;
    return copy_host(s, (size_t)(colon - s), host, hostlen);
}
