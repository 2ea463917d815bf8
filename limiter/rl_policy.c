/* rl_policy.c — request matching, tier rates and limit identities; see
 * rl_policy.h.
 *
 * Identity spelling (part of every Redis key, so it must stay stable):
 *
 *   client          c=ID (the server passes "k:KEYID" or "j:ISS|SUB")   ip   ip=ADDR
 *   route           r=ROUTE       header:NAME   h:name=VALUE  (name lower-cased)
 *   claim:NAME      cl:NAME=VALUE
 *
 * joined by '|' in the order of `by`, e.g. "c=orders-svc|h:x-tenant=acme".
 * An absent client, ip, route, header or claim is spelled "-" (one shared
 * bucket for "absent"); a value that really is "-" is spelled "%2D", so the
 * two never meet.  Bytes outside [A-Za-z0-9._:@=-] are written %XX (upper-
 * case hex) in names and values, so '|', '{', '}' and spaces never appear raw.
 * A value whose escaped form would exceed RL_IDENT_MAX_VALUE bytes is spelled
 * "%S" + 32 hex digits (upper-case): the first 128 bits of the SHA-256 of its
 * raw bytes.  Escaping never produces "%S", so this cannot meet a short
 * value; this keeps every identity of a sane config under
 * RL_MAX_IDENTITY_LEN.  The hash is cryptographic and unkeyed: a client who
 * picks a long header or claim cannot make it share another value's bucket
 * (an unkeyed FNV-1a-64 here, as before, could be made to collide), and
 * every replica spells a value the same, as Redis buckets need (a per-process
 * random key could not be shared).  If the digest fails (out of memory), the
 * identity does not fit and the limiter spells it "%L" (rl_limiter.c).
 */
#include "tollgate/rl_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tollgate/http.h"
#include "tollgate/util_hash.h"

#define RL_IDENT_MAX_VALUE 96  /* bytes of one escaped value */
#define RL_IDENT_HASH_BYTES 16 /* bytes of SHA-256 kept for a long value */

unsigned rl_method_bit(const char *name)
{
    static const struct {
        const char *name;
        unsigned bit;
    } methods[] = {
        {"GET", RL_METHOD_GET},         {"HEAD", RL_METHOD_HEAD},
        {"POST", RL_METHOD_POST},       {"PUT", RL_METHOD_PUT},
        {"DELETE", RL_METHOD_DELETE},   {"PATCH", RL_METHOD_PATCH},
        {"OPTIONS", RL_METHOD_OPTIONS}, {"CONNECT", RL_METHOD_CONNECT},
        {"TRACE", RL_METHOD_TRACE},
    };
    size_t i;

    if (name == NULL)
        return 0;
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(name, methods[i].name) == 0)
            return methods[i].bit;
    return 0;
}

/* Is `path` the exact `want`, or (unless slash_strict) its twin with or
 * without one trailing '/': Express (non-strict routing), Rails, Spring 5
 * and ASP.NET Core serve "/admin/" as "/admin", so a rule on one must hold
 * for the other. */
static bool path_equal(const rl_match_t *m, const char *want, const char *path)
{
    size_t nw = strlen(want), np = strlen(path);
    const char *longer = nw > np ? want : path;
    size_t n = nw < np ? nw : np;

    if (nw == np)
        return (m->icase ? strncasecmp(want, path, n) : strncmp(want, path, n)) == 0;
    if (m->slash_strict || (nw > np ? nw - np : np - nw) != 1 || longer[n] != '/' || n == 0)
        return false;
    return (m->icase ? strncasecmp(want, path, n) : strncmp(want, path, n)) == 0;
}

bool rl_match_target(const rl_match_t *m, const char *path, const char *host)
{
    if (m->path != NULL && (path == NULL || !path_equal(m, m->path, path)))
        return false;
    if (m->path_prefix != NULL &&
        (path == NULL ||
         (m->icase ? strncasecmp(m->path_prefix, path, strlen(m->path_prefix))
                   : strncmp(m->path_prefix, path, strlen(m->path_prefix))) != 0))
        return false;
    if (m->host != NULL && !http_host_equal(m->host, host))
        return false;
    return true;
}

bool rl_match_request(const rl_match_t *m, unsigned method, const char *path,
                      const char *host)
{
    if (m->methods != 0 && (m->methods & method) == 0)
        return false;
    return rl_match_target(m, path, host);
}

size_t rl_method_list(unsigned bits, char *out, size_t outlen)
{
    static const char *const names[] = {"GET",   "HEAD",   "POST",    "PUT",
                                        "PATCH", "DELETE", "OPTIONS", "TRACE"};
    static const unsigned order[] = {RL_METHOD_GET,     RL_METHOD_HEAD,  RL_METHOD_POST,
                                     RL_METHOD_PUT,     RL_METHOD_PATCH, RL_METHOD_DELETE,
                                     RL_METHOD_OPTIONS, RL_METHOD_TRACE};
    size_t len = 0;

    if (outlen == 0)
        return 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        size_t n = strlen(names[i]) + (len > 0 ? 2 : 0);

        if (!(bits & order[i]))
            continue;
        if (len + n >= outlen)
            break;
        snprintf(out + len, outlen - len, "%s%s", len > 0 ? ", " : "", names[i]);
        len += n;
    }
    return len;
}

const rl_rate_t *rl_policy_rate(const rl_policy_set_t *ps, const rl_limit_t *lim,
                                const char *tier)
{
    size_t i, j;

    if (tier == NULL || ps == NULL)
        return &lim->rate;
    for (i = 0; i < ps->ntiers; i++) {
        const rl_tier_t *t = &ps->tiers[i];

        if (strcmp(t->name, tier) != 0)
            continue;
        for (j = 0; j < t->n; j++)
            if (strcmp(t->overrides[j].limit, lim->name) == 0)
                return &t->overrides[j].rate;
        break;
    }
    return &lim->rate;
}

/* Appending to a bounded buffer; `len` runs past `cap` on overflow. */
typedef struct ident_buf {
    char *p;
    size_t len, cap;
} ident_buf_t;

static void put_raw(ident_buf_t *b, const char *s, size_t n)
{
    if (b->len + n < b->cap)
        memcpy(b->p + b->len, s, n);
    b->len += n;
}

static bool is_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == ':' || c == '@' || c == '=' || c == '-';
}

static size_t escaped_len(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        n += is_plain((unsigned char)*s) ? 1 : 3;
    return n;
}

static void put_hex(ident_buf_t *b, uint64_t v, int digits)
{
    static const char hex[] = "0123456789ABCDEF";
    char tmp[16];
    int i;

    for (i = digits - 1; i >= 0; i--, v >>= 4)
        tmp[i] = hex[v & 15];
    put_raw(b, tmp, (size_t)digits);
}

/* Escape `s`, lower-casing ASCII letters when `lower`. */
static void put_escaped(ident_buf_t *b, const char *s, bool lower)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (lower && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (is_plain(c)) {
            put_raw(b, (const char *)&c, 1);
        } else {
            put_raw(b, "%", 1);
            put_hex(b, c, 2);
        }
    }
}

/* "%S" + the first RL_IDENT_HASH_BYTES of SHA-256(v) in hex; on failure b
 * is marked full, so the identity is refused rather than mis-spelled. */
static void put_digest(ident_buf_t *b, const char *v)
{
    unsigned char d[UTIL_SHA256_LEN];
    size_t i;

    if (util_sha256(v, strlen(v), d) != 0) {
        b->len = b->cap;
        return;
    }
    put_raw(b, "%S", 2);
    for (i = 0; i < RL_IDENT_HASH_BYTES; i++)
        put_hex(b, d[i], 2);
}

static void put_value(ident_buf_t *b, const char *v)
{
    if (v == NULL)
        put_raw(b, "-", 1);
    else if (strcmp(v, "-") == 0)
        put_raw(b, "%2D", 3);
    else if (escaped_len(v) > RL_IDENT_MAX_VALUE)
        put_digest(b, v);
    else
        put_escaped(b, v, false);
}

static void put_by(ident_buf_t *b, const rl_by_t *by, const rl_request_t *req)
{
    const char *v = NULL;

    switch (by->kind) {
    case RL_BY_CLIENT:
        put_raw(b, "c=", 2);
        v = req->client_id;
        break;
    case RL_BY_IP:
        put_raw(b, "ip=", 3);
        v = req->ip;
        break;
    case RL_BY_ROUTE:
        put_raw(b, "r=", 2);
        v = req->route;
        break;
    case RL_BY_HEADER:
        put_raw(b, "h:", 2);
        put_escaped(b, by->name != NULL ? by->name : "", true);
        put_raw(b, "=", 1);
        if (req->header != NULL && by->name != NULL)
            v = req->header(req->ctx, by->name);
        break;
    case RL_BY_CLAIM:
        put_raw(b, "cl:", 3);
        put_escaped(b, by->name != NULL ? by->name : "", false);
        put_raw(b, "=", 1);
        if (req->claim != NULL && by->name != NULL)
            v = req->claim(req->ctx, by->name);
        break;
    }
    put_value(b, v);
}

int rl_policy_identity(const rl_limit_t *lim, const rl_request_t *req, char *out,
                       size_t outlen)
{
    ident_buf_t b = {out, 0, outlen};
    size_t i;

    for (i = 0; i < lim->nby; i++) {
        if (i > 0)
            put_raw(&b, "|", 1);
        put_by(&b, &lim->by[i], req);
    }
    if (b.len >= outlen || b.len > (size_t)INT32_MAX) {
        if (outlen > 0)
            out[0] = '\0';
        return -1;
    }
    out[b.len] = '\0';
    return (int)b.len;
}

/* ---- reading an identity back (the buckets API, explain) ---------------- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Whether [v, v+n) is a value put_value() could write; why not in *why. */
static bool value_ok(const char *v, size_t n, const char **why)
{
    size_t i;

    if ((n == 1 && v[0] == '-') || (n == 3 && memcmp(v, "%2D", 3) == 0))
        return true;
    if (n == 2 + 2 * RL_IDENT_HASH_BYTES && v[0] == '%' && v[1] == 'S') {
        for (i = 2; i < n && hexval(v[i]) >= 0; i++)
            ;
        *why = "a %S value is 32 upper-case hex digits";
        return i == n;
    }
    *why = "a value longer than a spelled value can be";
    if (n > RL_IDENT_MAX_VALUE)
        return false;
    for (i = 0; i < n; i++) {
        if (is_plain((unsigned char)v[i]))
            continue;
        *why = "a byte outside [A-Za-z0-9._:@=-] that is not a %XX escape";
        if (v[i] != '%' || i + 2 >= n || hexval(v[i + 1]) < 0 || hexval(v[i + 2]) < 0)
            return false;
        *why = "an escape of a byte that is spelled as itself (or of '-')";
        if (is_plain((unsigned char)(hexval(v[i + 1]) * 16 + hexval(v[i + 2]))))
            return false;
        i += 2;
    }
    return true;
}

/* The prefix put_by() writes for `by` ("c=", "h:x-tenant=") into b. */
static void by_prefix(ident_buf_t *b, const rl_by_t *by)
{
    static const char *const fixed[] = {"c=", "ip=", "r="};

    if (by->kind == RL_BY_CLIENT || by->kind == RL_BY_IP || by->kind == RL_BY_ROUTE) {
        put_raw(b, fixed[by->kind], strlen(fixed[by->kind]));
    } else {
        put_raw(b,
                by->kind == RL_BY_HEADER ? "h:" : "cl:", by->kind == RL_BY_HEADER ? 2 : 3);
        put_escaped(b, by->name != NULL ? by->name : "", by->kind == RL_BY_HEADER);
        put_raw(b, "=", 1);
    }
}

int rl_policy_identity_check(const rl_limit_t *lim, const char *key, char *err,
                             size_t errlen)
{
    char want[RL_MAX_IDENTITY_LEN];
    const char *p = key, *bar, *why = NULL;
    size_t i, parts = 1, n;

    if (strcmp(key, "%L") == 0)
        return 0; /* the limiter's spelling of an identity too long to spell */
    if (strlen(key) >= RL_MAX_IDENTITY_LEN) {
        snprintf(err, errlen, "key is longer than any identity (%d bytes)",
                 RL_MAX_IDENTITY_LEN - 1);
        return -1;
    }
    for (const char *q = key; *q != '\0'; q++)
        parts += *q == '|';
    if (parts != lim->nby) {
        snprintf(err, errlen,
                 "key has %zu '|'-separated part(s); limit %s is keyed by %zu "
                 "(a '|' inside a value is spelled %%7C, sent as %%257C in a URL)",
                 parts, lim->name, lim->nby);
        return -1;
    }
    for (i = 0; i < lim->nby; i++, p = bar + 1) {
        ident_buf_t b = {want, 0, sizeof want};

        by_prefix(&b, &lim->by[i]);
        bar = strchr(p, '|');
        if (bar == NULL)
            bar = p + strlen(p);
        n = (size_t)(bar - p);
        if (b.len >= b.cap || n < b.len || memcmp(p, want, b.len) != 0) {
            snprintf(err, errlen, "key part %zu must start with \"%.*s\" (limit %s)", i + 1,
                     (int)(b.len < b.cap ? b.len : 0), want, lim->name);
            return -1;
        }
        if (!value_ok(p + b.len, n - b.len, &why)) {
            snprintf(err, errlen, "key part %zu: %s", i + 1, why);
            return -1;
        }
    }
    return 0;
}

void rl_match_clear(rl_match_t *m)
{
    if (m == NULL)
        return;
    free(m->path);
    free(m->path_prefix);
    free(m->host);
    memset(m, 0, sizeof(*m));
}

void rl_limit_clear(rl_limit_t *lim)
{
    size_t i;

    if (lim == NULL)
        return;
    free(lim->name);
    rl_match_clear(&lim->match);
    for (i = 0; i < lim->nby; i++)
        free(lim->by[i].name);
    free(lim->by);
    memset(lim, 0, sizeof(*lim));
}

void rl_policy_set_clear(rl_policy_set_t *ps)
{
    size_t i, j;

    if (ps == NULL)
        return;
    for (i = 0; i < ps->nlimits; i++)
        rl_limit_clear(&ps->limits[i]);
    free(ps->limits);
    for (i = 0; i < ps->ntiers; i++) {
        for (j = 0; j < ps->tiers[i].n; j++)
            free(ps->tiers[i].overrides[j].limit);
        free(ps->tiers[i].overrides);
        free(ps->tiers[i].name);
    }
    free(ps->tiers);
    memset(ps, 0, sizeof(*ps));
}
