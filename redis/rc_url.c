/* rc_url.c — redis:// and rediss:// URLs (REDIS_URL).  See include/tollgate/rc.h.
 * Errors name the part that is wrong, never its value when it may be secret. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "tollgate/rc.h"
#include "tollgate/util_fmt.h"

/* Percent-decode s[0..len) into out (NUL-terminated); -1 on a bad escape,
 * an embedded NUL or when it does not fit. */
static int pct_decode(const char *s, size_t len, char *out, size_t outlen)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        char ch = s[i];

        if (ch == '%') {
            int hi, lo;

            if (i + 2 >= len)
                return -1;
            hi = util_hexval(s[i + 1]);
            lo = util_hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n + 1 >= outlen)
            return -1;
        out[n++] = ch;
    }
    out[n] = '\0';
    return 0;
}

static int parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;

    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* userinfo = [user][:password] */
static int parse_userinfo(const char *s, size_t len, rc_url_t *u, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', len);
    size_t ulen = colon != NULL ? (size_t)(colon - s) : len;

    if (ulen > 0) {
        if (pct_decode(s, ulen, u->username, sizeof(u->username)) != 0) {
            snprintf(err, errlen, "redis URL: bad or too long user name");
            return -1;
        }
        u->has_username = 1;
    }
    if (colon != NULL) {
        size_t plen = len - ulen - 1;

        if (pct_decode(colon + 1, plen, u->password, sizeof(u->password)) != 0) {
            snprintf(err, errlen, "redis URL: bad or too long password");
            return -1;
        }
        u->has_password = 1;
    }
    return 0;
}

/* host[:port], host may be [v6] */
static int parse_hostport(const char *s, size_t len, rc_url_t *u, char *err, size_t errlen)
{
    const char *h = s, *portp = NULL;
    size_t hl = len;
    unsigned long port;

    if (len > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', len);

        if (rb == NULL)
            goto out_bad_host;
        h = s + 1;
        hl = (size_t)(rb - h);
        if (rb + 1 < s + len) {
            if (rb[1] != ':')
                goto out_bad_host;
            portp = rb + 2;
        }
    } else {
        const char *colon = memchr(s, ':', len);

        if (colon != NULL) {
            hl = (size_t)(colon - s);
            portp = colon + 1;
        }
    }
    if (hl == 0 || hl >= sizeof(u->host))
        goto out_bad_host;
    for (size_t i = 0; i < hl; i++)
        if (h[i] == '@' || h[i] == '/' || h[i] == '%' || h[i] == ' ' ||
            (unsigned char)h[i] < 0x21)
            goto out_bad_host;
    memcpy(u->host, h, hl);
    u->host[hl] = '\0';
    if (portp != NULL) {
        if (parse_uint(portp, (size_t)(s + len - portp), 65535, &port) != 0 || port == 0) {
            snprintf(err, errlen, "redis URL: bad port");
            return -1;
        }
        u->port = (unsigned)port;
    }
    return 0;
out_bad_host:
    snprintf(err, errlen, "redis URL: bad host");
    return -1;
}

int rc_url_parse(const char *url, rc_url_t *out, char *err, size_t errlen)
{
    const char *p, *end, *at, *slash;
    unsigned long db;

    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else if (strncmp(url, "rediss://", 9) == 0) {
        out->tls = 1;
        p = url + 9;
    } else {
        snprintf(err, errlen, "redis URL: scheme must be redis:// or rediss://");
        return -1;
    }
    end = p + strlen(p);
    if (memchr(p, '?', (size_t)(end - p)) != NULL ||
        memchr(p, '#', (size_t)(end - p)) != NULL) {
        snprintf(err, errlen, "redis URL: query and fragment are not supported");
        goto out_wipe;
    }
    /* The last '@' ends the userinfo: a password may contain '@' unescaped. */
    at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        if (parse_userinfo(p, (size_t)(at - p), out, err, errlen) != 0)
            goto out_wipe;
        p = at + 1;
    }
    slash = memchr(p, '/', (size_t)(end - p));
    if (parse_hostport(p, (size_t)((slash != NULL ? slash : end) - p), out, err, errlen) !=
        0)
        goto out_wipe;
    if (slash != NULL && slash + 1 < end) {
        if (parse_uint(slash + 1, (size_t)(end - slash - 1), 1000000, &db) != 0) {
            snprintf(err, errlen, "redis URL: database must be a number");
            goto out_wipe;
        }
        out->db = (int)db;
    }
    return 0;
out_wipe:
    rc_url_wipe(out);
    return -1;
}

void rc_url_wipe(rc_url_t *u)
{
    OPENSSL_cleanse(u->password, sizeof(u->password));
    OPENSSL_cleanse(u->username, sizeof(u->username));
    u->has_password = u->has_username = 0;
}
