/* admintok.c — the admin API's tokens (see auth_admintok.h). */
#include "tollgate/auth_admintok.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define ADMINTOK_FILE_MAX (1u << 20)

typedef struct entry {
    auth_admin_id_t pub;
    unsigned char sha[32];
} entry_t;

struct auth_admintok {
    entry_t *v;
    size_t n, cap;
};

auth_admintok_t *auth_admintok_new(void)
{
    return calloc(1, sizeof(auth_admintok_t));
}

void auth_admintok_free(auth_admintok_t *t)
{
    if (t == NULL)
        return;
    if (t->v != NULL)
        OPENSSL_cleanse(t->v, t->cap * sizeof(*t->v));
    free(t->v);
    free(t);
}

bool auth_admintok_valid_id(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > AUTH_ADMINTOK_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool visible(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static int sha256(const void *data, size_t len, unsigned char out[32])
{
    return EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

int auth_admintok_add(auth_admintok_t *t, const char *id, auth_admin_scope_t scope,
                      const char *token, size_t len, char *err, size_t errlen)
{
    entry_t e = {0};

    if (!auth_admintok_valid_id(id)) {
        snprintf(err, errlen, "an admin token id is 1..%d of [A-Za-z0-9._-]",
                 AUTH_ADMINTOK_ID_MAX);
        return -1;
    }
    if (scope != AUTH_ADMIN_READ && scope != AUTH_ADMIN_WRITE) {
        snprintf(err, errlen, "admin token %s: scope is read or write", id);
        return -1;
    }
    if (len == 0 || len > AUTH_ADMINTOK_MAX_LEN || !visible(token, len)) {
        snprintf(err, errlen, "admin token %s: the token must be 1..%d visible ASCII bytes",
                 id, AUTH_ADMINTOK_MAX_LEN);
        return -1;
    }
    if (t->n >= AUTH_ADMINTOK_MAX) {
        snprintf(err, errlen, "more than %d admin tokens", AUTH_ADMINTOK_MAX);
        return -1;
    }
    if (sha256(token, len, e.sha) != 0) {
        snprintf(err, errlen, "admin token %s: cannot hash it", id);
        return -1;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].pub.id, id) == 0) {
            snprintf(err, errlen, "admin token id %s is given twice", id);
            goto out_refused;
        }
        if (CRYPTO_memcmp(t->v[i].sha, e.sha, 32) == 0) {
            snprintf(err, errlen, "admin token %s has the same token as %s", id,
                     t->v[i].pub.id);
            goto out_refused;
        }
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4;
        entry_t *v = calloc(cap, sizeof(*v));

        if (v == NULL) {
            snprintf(err, errlen, "out of memory");
            goto out_refused;
        }
        if (t->n > 0)
            memcpy(v, t->v, t->n * sizeof(*v));
        if (t->v != NULL)
            OPENSSL_cleanse(t->v, t->cap * sizeof(*t->v));
        free(t->v);
        t->v = v;
        t->cap = cap;
    }
    memcpy(e.pub.id, id, strlen(id) + 1);
    e.pub.scope = scope;
    e.pub.token_len = len;
    t->v[t->n++] = e;
    OPENSSL_cleanse(&e, sizeof(e));
    return 0;
out_refused:
    OPENSSL_cleanse(&e, sizeof(e));
    return -1;
}

/* The next whitespace-separated field of [*p, end). */
static bool field(const char **p, const char *end, const char **s, size_t *n)
{
    while (*p < end && (**p == ' ' || **p == '\t'))
        (*p)++;
    *s = *p;
    while (*p < end && **p != ' ' && **p != '\t')
        (*p)++;
    *n = (size_t)(*p - *s);
    return *n > 0;
}

int auth_admintok_add_line(auth_admintok_t *t, const char *line, size_t len,
                           const char *where, char *err, size_t errlen)
{
    const char *p = line, *end = line + len, *f[4];
    size_t n[4], nf = 0;
    char id[AUTH_ADMINTOK_ID_MAX + 1], why[256];
    auth_admin_scope_t scope;

    if (len > 0 && line[len - 1] == '\r')
        end--;
    if (memchr(line, '\0', len) != NULL) {
        snprintf(err, errlen, "%s: a NUL byte", where);
        return -1;
    }
    while (nf < 4 && field(&p, end, &f[nf], &n[nf]))
        nf++;
    if (nf == 0 || f[0][0] == '#')
        return 0;
    if (nf != 3) {
        snprintf(err, errlen, "%s: expected ID SCOPE TOKEN", where);
        return -1;
    }
    if (n[0] > AUTH_ADMINTOK_ID_MAX) {
        snprintf(err, errlen, "%s: an admin token id is 1..%d of [A-Za-z0-9._-]", where,
                 AUTH_ADMINTOK_ID_MAX);
        return -1;
    }
    memcpy(id, f[0], n[0]);
    id[n[0]] = '\0';
    if (n[1] == 4 && memcmp(f[1], "read", 4) == 0)
        scope = AUTH_ADMIN_READ;
    else if (n[1] == 5 && memcmp(f[1], "write", 5) == 0)
        scope = AUTH_ADMIN_WRITE;
    else {
        snprintf(err, errlen, "%s: the scope is read or write", where);
        return -1;
    }
    if (auth_admintok_add(t, id, scope, f[2], n[2], why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", where, why);
        return -1;
    }
    return 0;
}

int auth_admintok_load_file(auth_admintok_t *t, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL, where[300];
    size_t len, lineno = 0;
    int rc = -1;

    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    buf = malloc(ADMINTOK_FILE_MAX + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out_close;
    }
    len = fread(buf, 1, ADMINTOK_FILE_MAX + 1, f);
    if (len > ADMINTOK_FILE_MAX) {
        snprintf(err, errlen, "%s: larger than %u bytes", path, ADMINTOK_FILE_MAX);
        goto out_free;
    }
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(buf + at, '\n', len - at);
        size_t ll = nl ? (size_t)(nl - (buf + at)) : len - at;

        snprintf(where, sizeof where, "%s:%zu", path, ++lineno);
        if (ll > AUTH_ADMINTOK_LINE_MAX) {
            snprintf(err, errlen, "%s: longer than %d bytes", where,
                     AUTH_ADMINTOK_LINE_MAX);
            goto out_free;
        }
        if (auth_admintok_add_line(t, buf + at, ll, where, err, errlen) != 0)
            goto out_free;
        at += ll + 1;
    }
    rc = 0;
out_free:
    OPENSSL_cleanse(buf, buf ? ADMINTOK_FILE_MAX + 1 : 0);
    free(buf);
out_close:
    fclose(f);
    return rc;
}

size_t auth_admintok_count(const auth_admintok_t *t)
{
    return t != NULL ? t->n : 0;
}

const auth_admin_id_t *auth_admintok_get(const auth_admintok_t *t, size_t i)
{
    return t != NULL && i < t->n ? &t->v[i].pub : NULL;
}

const auth_admin_id_t *auth_admintok_match(const auth_admintok_t *t, const char *token,
                                           size_t len)
{
    unsigned char sha[32];
    size_t found = SIZE_MAX;

    if (t == NULL || len == 0 || len > AUTH_ADMINTOK_MAX_LEN ||
        sha256(token, len, sha) != 0)
        return NULL;
    /* Every entry is compared; the index is picked without a branch on
     * the result (ids and digests are unique: at most one matches). */
    for (size_t i = 0; i < t->n; i++) {
        size_t hit = (size_t)0 - (size_t)(CRYPTO_memcmp(t->v[i].sha, sha, 32) == 0);

        found = (found & ~hit) | (i & hit);
    }
    OPENSSL_cleanse(sha, sizeof sha);
    return found != SIZE_MAX ? &t->v[found].pub : NULL;
}

int auth_admintok_fingerprint(const auth_admintok_t *t, unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = -1;

    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out_free;
    for (size_t i = 0; t != NULL && i < t->n; i++) {
        unsigned char scope = (unsigned char)t->v[i].pub.scope;

        if (EVP_DigestUpdate(ctx, t->v[i].pub.id, strlen(t->v[i].pub.id) + 1) != 1 ||
            EVP_DigestUpdate(ctx, &scope, 1) != 1 ||
            EVP_DigestUpdate(ctx, t->v[i].sha, 32) != 1)
            goto out_free;
    }
    rc = EVP_DigestFinal_ex(ctx, out, NULL) == 1 ? 0 : -1;
out_free:
    EVP_MD_CTX_free(ctx);
    return rc;
}
