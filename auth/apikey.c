/* apikey.c — API key store, key file parser, hash-key/gen-key helpers.
 *
 * Keys are kept as SHA-256 digests in an open-addressing table indexed by
 * the digest's first bytes (uniformly random, so no further hashing), with a
 * second index by id (an id may have several keys: rotation overlaps an old
 * and a new key under one identity).  A presented key is hashed and
 * every candidate on its probe path is confirmed with CRYPTO_memcmp over the
 * whole digest.  Which slots are probed depends only on the digest of the
 * presented key, which tells an attacker nothing about stored keys.
 */
#include "tollgate/auth_apikey.h"
#include "tollgate/util_fmt.h"
#include "tollgate/util_b64.h"
#include "tollgate/util_hash.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "apikey_internal.h"

#define APIKEY_MAX_FIELDS 6 /* ID DIGEST scopes= tier= deprecated not_after= */
#define APIKEY_MAX_SCOPE_LEN 128
#define APIKEY_MAX_TIER_LEN 64
#define APIKEY_MAX_LINE 8192 /* bytes of one key file line */
#define APIKEY_GEN_RANDOM 32 /* bytes of entropy in a generated key */

int (*auth_apikey_memcmp)(const void *a, const void *b, size_t len) = CRYPTO_memcmp;

struct auth_keystore {
    auth_apikey_t **keys; /* nkeys entries, in the order added */
    size_t nkeys;
    size_t cap;          /* allocated entries of keys */
    uint32_t *by_digest; /* nslots: 0 = empty, else index + 1 into keys */
    uint32_t *by_id;     /* same, hashed by id */
    size_t nslots;       /* a power of two, at least twice nkeys */
};

/* A run of bytes inside a line being parsed. */
typedef struct {
    const char *p;
    size_t n;
} span_t;

static void set_err(char *err, size_t errlen, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_err(char *err, size_t errlen, const char *where, const char *fmt, ...)
{
    va_list ap;
    int n = 0;

    if (err == NULL || errlen == 0)
        return;
    if (where != NULL)
        n = snprintf(err, errlen, "%s: ", where);
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* --- entries ------------------------------------------------------------ */

static void apikey_free(auth_apikey_t *k)
{
    size_t i;

    if (k == NULL)
        return;
    free(k->id);
    for (i = 0; i < k->nscopes; i++)
        free(k->scopes[i]);
    free(k->scopes);
    free(k->tier);
    OPENSSL_cleanse(k->sha256, sizeof(k->sha256));
    free(k);
}

static char *span_dup(span_t s)
{
    char *d = malloc(s.n + 1);

    if (d != NULL) {
        memcpy(d, s.p, s.n);
        d[s.n] = '\0';
    }
    return d;
}

/* --- the store ---------------------------------------------------------- */

auth_keystore_t *auth_keystore_new(void)
{
    return calloc(1, sizeof(auth_keystore_t));
}

void auth_keystore_free(auth_keystore_t *ks)
{
    size_t i;

    if (ks == NULL)
        return;
    for (i = 0; i < ks->nkeys; i++)
        apikey_free(ks->keys[i]);
    free(ks->keys);
    free(ks->by_digest);
    free(ks->by_id);
    free(ks);
}

size_t auth_keystore_count(const auth_keystore_t *ks)
{
    return ks == NULL ? 0 : ks->nkeys;
}

const auth_apikey_t *auth_keystore_get(const auth_keystore_t *ks, size_t i)
{
    return ks != NULL && i < ks->nkeys ? ks->keys[i] : NULL;
}

static size_t digest_hash(const unsigned char d[32])
{
    uint64_t h;

    memcpy(&h, d, sizeof(h));
    return (size_t)h;
}

/* FNV-1a: ids are short and chosen by operators, not by attackers. */
static size_t id_hash(const char *id)
{
    uint64_t h = 14695981039346656037ULL;

    for (; *id != '\0'; id++) {
        h ^= (unsigned char)*id;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

static void index_put(uint32_t *slots, size_t nslots, size_t hash, uint32_t idx1)
{
    size_t mask = nslots - 1, i = hash & mask;

    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = idx1;
}

/* Rebuild both indexes with room for at least `want` keys. */
static int keystore_grow(auth_keystore_t *ks, size_t want)
{
    size_t nslots = ks->nslots == 0 ? 16 : ks->nslots, i;
    uint32_t *byd, *byi;

    while (nslots < 2 * want)
        nslots *= 2;
    if (nslots == ks->nslots)
        return 0;
    if (want > UINT32_MAX / 2)
        return -1;
    byd = calloc(nslots, sizeof(*byd));
    byi = calloc(nslots, sizeof(*byi));
    if (byd == NULL || byi == NULL) {
        free(byd);
        free(byi);
        return -1;
    }
    for (i = 0; i < ks->nkeys; i++) {
        index_put(byd, nslots, digest_hash(ks->keys[i]->sha256), (uint32_t)i + 1);
        index_put(byi, nslots, id_hash(ks->keys[i]->id), (uint32_t)i + 1);
    }
    free(ks->by_digest);
    free(ks->by_id);
    ks->by_digest = byd;
    ks->by_id = byi;
    ks->nslots = nslots;
    return 0;
}

static const auth_apikey_t *find_digest(const auth_keystore_t *ks,
                                        const unsigned char d[32])
{
    size_t mask, i;
    const auth_apikey_t *k;

    if (ks->nslots == 0)
        return NULL;
    mask = ks->nslots - 1;
    for (i = digest_hash(d) & mask; ks->by_digest[i] != 0; i = (i + 1) & mask) {
        k = ks->keys[ks->by_digest[i] - 1];
        if (auth_apikey_memcmp(k->sha256, d, sizeof(k->sha256)) == 0)
            return k;
    }
    return NULL;
}

const auth_apikey_t *auth_keystore_find_id(const auth_keystore_t *ks, const char *id)
{
    size_t mask, i;

    if (ks == NULL || id == NULL || ks->nslots == 0)
        return NULL;
    mask = ks->nslots - 1;
    for (i = id_hash(id) & mask; ks->by_id[i] != 0; i = (i + 1) & mask)
        if (strcmp(ks->keys[ks->by_id[i] - 1]->id, id) == 0)
            return ks->keys[ks->by_id[i] - 1];
    return NULL;
}

const auth_apikey_t *auth_keystore_next_of_id(const auth_keystore_t *ks,
                                              const auth_apikey_t *prev)
{
    size_t mask, i;
    bool passed = false;
    const auth_apikey_t *k;

    if (ks == NULL || prev == NULL || ks->nslots == 0)
        return NULL;
    mask = ks->nslots - 1;
    for (i = id_hash(prev->id) & mask; ks->by_id[i] != 0; i = (i + 1) & mask) {
        k = ks->keys[ks->by_id[i] - 1];
        if (passed && strcmp(k->id, prev->id) == 0)
            return k;
        passed = passed || k == prev;
    }
    return NULL;
}

const auth_apikey_t *auth_keystore_find_digest(const auth_keystore_t *ks,
                                               const unsigned char digest[32])
{
    return ks == NULL || digest == NULL ? NULL : find_digest(ks, digest);
}

bool auth_apikey_expired(const auth_apikey_t *k, int64_t now_s)
{
    return k->not_after != 0 && now_s > k->not_after;
}

static int cmp_digest(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

int auth_keystore_fingerprint(const auth_keystore_t *ks, unsigned char out[32])
{
    unsigned char(*d)[32];
    size_t n = auth_keystore_count(ks);
    int rc = -1;

    d = malloc((n > 0 ? n : 1) * sizeof(*d));
    if (d == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        memcpy(d[i], ks->keys[i]->sha256, 32);
    qsort(d, n, sizeof(*d), cmp_digest); /* the order of the file does not count */
    if (EVP_Digest(d, n * sizeof(*d), out, NULL, EVP_sha256(), NULL) == 1)
        rc = 0;
    OPENSSL_cleanse(d, (n > 0 ? n : 1) * sizeof(*d));
    free(d);
    return rc;
}

/* Take `k` into the store.  0; 2 duplicate digest; -1 OOM.  The same id
 * several times is fine (rotation); the same key twice is not.
 * On any error `k` stays the caller's. */
static int keystore_insert(auth_keystore_t *ks, auth_apikey_t *k)
{
    auth_apikey_t **keys;

    if (find_digest(ks, k->sha256) != NULL)
        return 2;
    if (ks->nkeys == ks->cap) {
        size_t cap = ks->cap == 0 ? 16 : ks->cap * 2;

        keys = realloc(ks->keys, cap * sizeof(*keys));
        if (keys == NULL)
            return -1;
        ks->keys = keys;
        ks->cap = cap;
    }
    if (keystore_grow(ks, ks->nkeys + 1) != 0)
        return -1;
    ks->keys[ks->nkeys] = k;
    index_put(ks->by_digest, ks->nslots, digest_hash(k->sha256), (uint32_t)ks->nkeys + 1);
    index_put(ks->by_id, ks->nslots, id_hash(k->id), (uint32_t)ks->nkeys + 1);
    ks->nkeys++;
    return 0;
}

const auth_apikey_t *auth_keystore_lookup(const auth_keystore_t *ks, const char *key,
                                          size_t keylen)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    const auth_apikey_t *k;

    if (ks == NULL || key == NULL || keylen == 0 || keylen > AUTH_APIKEY_MAX_LEN)
        return NULL;
    k = util_sha256(key, keylen, d) == 0 ? find_digest(ks, d) : NULL;
    OPENSSL_cleanse(d, sizeof(d));
    return k;
}

/* --- key file syntax ---------------------------------------------------- */

static bool is_id_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
}

static bool valid_id(span_t s)
{
    size_t i;

    if (s.n == 0 || s.n > AUTH_MAX_ID_LEN)
        return false;
    for (i = 0; i < s.n; i++)
        if (!is_id_char((unsigned char)s.p[i]))
            return false;
    return true;
}

/* Scope names: [A-Za-z0-9._:/-]{1,128}, e.g. "nl-query:read". */
static bool valid_scope(span_t s)
{
    size_t i;
    int c;

    if (s.n == 0 || s.n > APIKEY_MAX_SCOPE_LEN)
        return false;
    for (i = 0; i < s.n; i++) {
        c = (unsigned char)s.p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '/' || c == '-'))
            return false;
    }
    return true;
}

/* Tier names: [A-Za-z0-9._-]{1,64}. */
static bool valid_tier(span_t s)
{
    size_t i;
    int c;

    if (s.n == 0 || s.n > APIKEY_MAX_TIER_LEN)
        return false;
    for (i = 0; i < s.n; i++) {
        c = (unsigned char)s.p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool parse_digest(span_t s, unsigned char out[32])
{
    size_t i;
    int hi, lo;

    if (s.n != 64)
        return false;
    for (i = 0; i < 32; i++) {
        hi = util_hexval((unsigned char)s.p[2 * i]);
        lo = util_hexval((unsigned char)s.p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

/* Split the line into whitespace-separated fields, stopping at `#`.
 * Returns the number of fields, or -1 when there are more than `max`. */
static int split_fields(const char *line, span_t *f, int max)
{
    const char *p = line, *start;
    int n = 0;

    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '\v' ||
               *p == '\f')
            p++;
        if (*p == '\0' || *p == '#')
            return n;
        if (n == max)
            return -1;
        start = p;
        while (*p != '\0' && *p != '#' && *p != ' ' && *p != '\t' && *p != '\r' &&
               *p != '\n' && *p != '\v' && *p != '\f')
            p++;
        f[n].p = start;
        f[n].n = (size_t)(p - start);
        n++;
    }
}

/* Fill k->scopes from "a:read,b:write" (an empty list gives no scopes).
 * 0, -1 bad scope, -2 out of memory. */
static int parse_scopes(span_t s, auth_apikey_t *k)
{
    size_t count = 1, i, start = 0;
    span_t one;

    if (s.n == 0)
        return 0;
    for (i = 0; i < s.n; i++)
        count += s.p[i] == ',';
    k->scopes = calloc(count, sizeof(*k->scopes));
    if (k->scopes == NULL)
        return -2;
    for (i = 0; i <= s.n; i++) {
        if (i < s.n && s.p[i] != ',')
            continue;
        one.p = s.p + start;
        one.n = i - start;
        if (!valid_scope(one))
            return -1;
        k->scopes[k->nscopes] = span_dup(one);
        if (k->scopes[k->nscopes] == NULL)
            return -2;
        k->nscopes++;
        start = i + 1;
    }
    return 0;
}

static bool span_digits(const char *p, size_t n, int *out)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int auth_apikey_parse_time(const char *s, size_t n, int64_t *out)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec;

    /* exactly YYYY-MM-DDTHH:MM:SSZ: UTC, no fraction, no offset */
    if (n != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[19] != 'Z' || !span_digits(s, 4, &y) ||
        !span_digits(s + 5, 2, &mo) || !span_digits(s + 8, 2, &d) ||
        !span_digits(s + 11, 2, &h) || !span_digits(s + 14, 2, &mi) ||
        !span_digits(s + 17, 2, &sec))
        return -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
        sec > 59)
        return -1;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return -1;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    return 0;
}

static bool span_prefix(span_t s, const char *prefix, span_t *rest)
{
    size_t n = strlen(prefix);

    if (s.n < n || memcmp(s.p, prefix, n) != 0)
        return false;
    rest->p = s.p + n;
    rest->n = s.n - n;
    return true;
}

/* Parse the scopes= and tier= attributes into k.  0, or -1 with err set. */
static int parse_attrs(const span_t *f, int nf, auth_apikey_t *k, const char *where,
                       char *err, size_t errlen)
{
    bool seen_scopes = false;
    span_t v;
    int i, rc;

    for (i = 2; i < nf; i++) {
        if (span_prefix(f[i], "scopes=", &v)) {
            if (seen_scopes) {
                set_err(err, errlen, where, "duplicate attribute scopes=");
                return -1;
            }
            seen_scopes = true;
            rc = parse_scopes(v, k);
            if (rc != 0) {
                set_err(err, errlen, where, "%s",
                        rc == -2 ? "out of memory"
                                 : "bad scope (allowed: 1-128 of A-Z a-z 0-9 . _ : / -, "
                                   "comma-separated)");
                return -1;
            }
        } else if (span_prefix(f[i], "tier=", &v)) {
            if (k->tier != NULL) {
                set_err(err, errlen, where, "duplicate attribute tier=");
                return -1;
            }
            if (!valid_tier(v)) {
                set_err(err, errlen, where,
                        "bad tier (allowed: 1-64 of A-Z a-z 0-9 . _ -)");
                return -1;
            }
            k->tier = span_dup(v);
            if (k->tier == NULL) {
                set_err(err, errlen, where, "out of memory");
                return -1;
            }
        } else if (span_prefix(f[i], "not_after=", &v)) {
            if (k->not_after != 0) {
                set_err(err, errlen, where, "duplicate attribute not_after=");
                return -1;
            }
            if (auth_apikey_parse_time(v.p, v.n, &k->not_after) != 0 || k->not_after == 0) {
                set_err(err, errlen, where,
                        "bad not_after (expected an RFC 3339 UTC time, "
                        "YYYY-MM-DDTHH:MM:SSZ)");
                return -1;
            }
        } else if (f[i].n == 10 && memcmp(f[i].p, "deprecated", 10) == 0) {
            if (k->deprecated) {
                set_err(err, errlen, where, "duplicate attribute deprecated");
                return -1;
            }
            k->deprecated = true;
        } else {
            /* Not echoed: a key pasted in the wrong column must not reach a log. */
            set_err(err, errlen, where,
                    "unknown attribute in field %d (expected scopes=..., tier=..., "
                    "not_after=... or deprecated)",
                    i + 1);
            return -1;
        }
    }
    return 0;
}

/* Build an entry from the fields of one line.  NULL with err set. */
static auth_apikey_t *parse_entry(const span_t *f, int nf, const char *where, char *err,
                                  size_t errlen)
{
    auth_apikey_t *k;

    if (!valid_id(f[0])) {
        set_err(err, errlen, where, "bad id (allowed: 1-128 of A-Z a-z 0-9 . _ : @ -)");
        return NULL;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        set_err(err, errlen, where, "out of memory");
        return NULL;
    }
    if (nf < 2 || !parse_digest(f[1], k->sha256)) {
        set_err(err, errlen, where,
                "digest must be 64 hex digits (the SHA-256 of the key, see hash-key)");
        goto out_free_key;
    }
    k->id = span_dup(f[0]);
    if (k->id == NULL) {
        set_err(err, errlen, where, "out of memory");
        goto out_free_key;
    }
    if (parse_attrs(f, nf, k, where, err, errlen) != 0)
        goto out_free_key;
    return k;
out_free_key:
    apikey_free(k);
    return NULL;
}

static int insert_or_explain(auth_keystore_t *ks, auth_apikey_t *k, const char *where,
                             char *err, size_t errlen)
{
    int rc = keystore_insert(ks, k);

    if (rc == 0)
        return 0;
    if (rc == 2)
        set_err(err, errlen, where, "duplicate digest (the same key listed twice)");
    else
        set_err(err, errlen, where, "out of memory");
    apikey_free(k);
    return -1;
}

int auth_keystore_add_line(auth_keystore_t *ks, const char *line, const char *where,
                           char *err, size_t errlen)
{
    span_t f[APIKEY_MAX_FIELDS];
    auth_apikey_t *k;
    int nf;

    nf = split_fields(line, f, APIKEY_MAX_FIELDS);
    if (nf == 0)
        return 0;
    if (nf < 0) {
        set_err(err, errlen, where,
                "too many fields (ID SHA256HEX [scopes=..] [tier=..] [not_after=..] "
                "[deprecated])");
        return -1;
    }
    k = parse_entry(f, nf, where, err, errlen);
    if (k == NULL)
        return -1;
    return insert_or_explain(ks, k, where, err, errlen);
}

int auth_keystore_load_file(auth_keystore_t *ks, const char *path, char *err, size_t errlen)
{
    char where[4096 + 32];
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned long lineno = 0;
    int rc = 0;
    FILE *f;

    f = fopen(path, "r");
    if (f == NULL) {
        set_err(err, errlen, path, "cannot open: %s", strerror(errno));
        return -1;
    }
    while (rc == 0 && (n = getline(&line, &cap, f)) != -1) {
        lineno++;
        snprintf(where, sizeof(where), "%s:%lu", path, lineno);
        if (n > APIKEY_MAX_LINE) {
            set_err(err, errlen, where, "line longer than %d bytes", APIKEY_MAX_LINE);
            rc = -1;
        } else if (memchr(line, '\0', (size_t)n) != NULL) {
            set_err(err, errlen, where, "NUL byte in line");
            rc = -1;
        } else {
            size_t before = ks->nkeys;

            rc = auth_keystore_add_line(ks, line, where, err, errlen);
            if (rc == 0 && ks->nkeys > before)
                ks->keys[ks->nkeys - 1]->line = lineno;
        }
    }
    if (rc == 0 && ferror(f)) {
        set_err(err, errlen, path, "read error: %s", strerror(errno));
        rc = -1;
    }
    if (line != NULL)
        OPENSSL_cleanse(line, cap);
    free(line);
    fclose(f);
    return rc;
}

int auth_keystore_add_plain(auth_keystore_t *ks, const char *key, size_t keylen, char *err,
                            size_t errlen)
{
    auth_apikey_t *k;

    if (key == NULL || keylen == 0) {
        set_err(err, errlen, NULL, "empty API key");
        return -1;
    }
    if (keylen > AUTH_APIKEY_MAX_LEN) {
        set_err(err, errlen, NULL, "API key longer than %d bytes", AUTH_APIKEY_MAX_LEN);
        return -1;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL || (k->id = malloc(sizeof("key-12345678"))) == NULL) {
        free(k);
        set_err(err, errlen, NULL, "out of memory");
        return -1;
    }
    if (util_sha256(key, keylen, k->sha256) != 0) {
        free(k->id);
        free(k);
        set_err(err, errlen, NULL, "out of memory");
        return -1;
    }
    snprintf(k->id, sizeof("key-12345678"), "key-%02x%02x%02x%02x", k->sha256[0],
             k->sha256[1], k->sha256[2], k->sha256[3]);
    return insert_or_explain(ks, k, "ALLOWED_API_KEYS", err, errlen);
}

int auth_apikey_identity(const auth_apikey_t *k, auth_identity_t *out)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    out->kind = AUTH_KIND_API_KEY;
    out->deprecated = k->deprecated;
    memcpy(out->key_sha256, k->sha256, sizeof out->key_sha256);
    out->client_id = strdup(k->id);
    out->subject = strdup(k->id);
    if (out->client_id == NULL || out->subject == NULL)
        goto out_clear;
    if (k->tier != NULL && (out->tier = strdup(k->tier)) == NULL)
        goto out_clear;
    if (k->nscopes > 0) {
        out->scopes = calloc(k->nscopes, sizeof(*out->scopes));
        if (out->scopes == NULL)
            goto out_clear;
        for (i = 0; i < k->nscopes; i++) {
            out->scopes[i] = strdup(k->scopes[i]);
            if (out->scopes[i] == NULL)
                goto out_clear;
            out->nscopes++;
        }
    }
    return 0;
out_clear:
    auth_identity_clear(out);
    return -1;
}

/* --- hash-key, gen-key -------------------------------------------------- */

/* True when `list` ("a,b") is a valid scopes= value. */
static bool valid_scope_list(const char *list)
{
    span_t one;
    const char *p = list, *comma;

    for (;;) {
        comma = strchr(p, ',');
        one.p = p;
        one.n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (!valid_scope(one))
            return false;
        if (comma == NULL)
            return true;
        p = comma + 1;
    }
}

int auth_apikey_format_line(const char *id, const char *key, const char *scopes,
                            const char *tier, char *out, size_t outlen)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    span_t sid;
    size_t i;
    int n;

    if (id == NULL || key == NULL || out == NULL)
        return -1;
    sid.p = id;
    sid.n = strlen(id);
    if (!valid_id(sid) || key[0] == '\0' || strlen(key) > AUTH_APIKEY_MAX_LEN)
        return -1;
    if (scopes != NULL && scopes[0] != '\0' && !valid_scope_list(scopes))
        return -1;
    if (tier != NULL && tier[0] != '\0') {
        span_t st = {tier, strlen(tier)};

        if (!valid_tier(st))
            return -1;
    }
    if (util_sha256(key, strlen(key), d) != 0)
        return -1;
    for (i = 0; i < sizeof(d); i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    n = snprintf(out, outlen, "%s %s%s%s%s%s", id, hex,
                 scopes != NULL && scopes[0] != '\0' ? " scopes=" : "",
                 scopes != NULL ? scopes : "",
                 tier != NULL && tier[0] != '\0' ? " tier=" : "", tier != NULL ? tier : "");
    if (n < 0 || (size_t)n >= outlen)
        return -1;
    return 0;
}

int auth_apikey_generate(char *out, size_t outlen)
{
    unsigned char rnd[APIKEY_GEN_RANDOM];
    int rc = -1;

    /* "tg_" + 43 chars + NUL */
    if (out == NULL || outlen < 3 + 43 + 1)
        return -1;
    if (RAND_bytes(rnd, sizeof(rnd)) == 1) {
        memcpy(out, "tg_", 3);
        util_b64url_encode(rnd, sizeof(rnd), out + 3);
        rc = 0;
    }
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return rc;
}
