/* cors.c — CORS origins: the config's syntax check and the request's match. */
#include "tollgate/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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

int http_cors_origin_check(const char *origin, char *err, size_t errlen)
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

bool http_cors_origin_allowed(const char *origin, char *const *allowed, size_t n)
{
    size_t i;

    if (origin == NULL || allowed == NULL)
        return false;
    for (i = 0; i < n; i++)
        if (allowed[i] != NULL && strcasecmp(origin, allowed[i]) == 0)
            return true;
    return false;
}
