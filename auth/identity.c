/* identity.c — the result of authentication; see include/tollgate/auth.h. */
#include "tollgate/auth.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "tollgate/util_str.h"

void auth_identity_clear(auth_identity_t *id)
{
    size_t i;

    if (id == NULL)
        return;
    free(id->client_id);
    free(id->subject);
    for (i = 0; i < id->nscopes; i++)
        free(id->scopes[i]);
    free(id->scopes);
    free(id->tier);
    free(id->jti);
    json_decref(id->claims);
    for (i = 0; i < id->nhdrs; i++) {
        free(id->hdrs[i].name);
        free(id->hdrs[i].value);
    }
    free(id->hdrs);
    memset(id, 0, sizeof(*id));
}

int auth_identity_copy(auth_identity_t *dst, const auth_identity_t *src)
{
    bool ok = true;
    size_t i;

    memset(dst, 0, sizeof(*dst));
    dst->kind = src->kind;
    dst->ticket = src->ticket;
    dst->deprecated = src->deprecated;
    memcpy(dst->key_sha256, src->key_sha256, sizeof dst->key_sha256);
    dst->exp = src->exp;
    dst->iat = src->iat;
    dst->client_id = util_strdup_opt(src->client_id, &ok);
    dst->subject = util_strdup_opt(src->subject, &ok);
    dst->tier = util_strdup_opt(src->tier, &ok);
    dst->jti = util_strdup_opt(src->jti, &ok);
    if (src->nscopes > 0) {
        dst->scopes = calloc(src->nscopes, sizeof(*dst->scopes));
        if (dst->scopes == NULL)
            goto out_clear;
        dst->nscopes = src->nscopes;
        for (i = 0; i < src->nscopes; i++)
            dst->scopes[i] = util_strdup_opt(src->scopes[i], &ok);
    }
    if (src->nhdrs > 0) {
        dst->hdrs = calloc(src->nhdrs, sizeof(*dst->hdrs));
        if (dst->hdrs == NULL)
            goto out_clear;
        dst->nhdrs = src->nhdrs;
        for (i = 0; i < src->nhdrs; i++) {
            dst->hdrs[i].name = util_strdup_opt(src->hdrs[i].name, &ok);
            dst->hdrs[i].value = util_strdup_opt(src->hdrs[i].value, &ok);
        }
    }
    /* A deep copy, not a new reference: the copy may live on another thread. */
    if (src->claims != NULL) {
        dst->claims = json_deep_copy(src->claims);
        if (dst->claims == NULL)
            ok = false;
    }
    if (ok)
        return 0;
out_clear:
    auth_identity_clear(dst);
    return -1;
}

const char *auth_identity_claim(const auth_identity_t *id, const char *name, char *buf,
                                size_t buflen)
{
    json_t *v;
    int n;

    if (id == NULL || id->claims == NULL || name == NULL)
        return NULL;
    v = json_object_get(id->claims, name);
    if (v == NULL)
        return NULL;
    if (json_is_string(v))
        return json_string_value(v); /* lives as long as the identity */
    if (buf == NULL || buflen == 0)
        return NULL;
    if (json_is_integer(v)) {
        n = snprintf(buf, buflen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        double d = json_real_value(v);

        if (d == floor(d) && fabs(d) < 1e18)
            n = snprintf(buf, buflen, "%" PRId64, (int64_t)d);
        else
            n = snprintf(buf, buflen, "%.17g", d);
    } else if (json_is_boolean(v)) {
        n = snprintf(buf, buflen, "%s", json_is_true(v) ? "true" : "false");
    } else {
        return NULL; /* objects, arrays and null have no string spelling */
    }
    if (n < 0 || (size_t)n >= buflen)
        return NULL;
    return buf;
}

static bool has_scope(const auth_identity_t *id, const char *scope)
{
    size_t i;

    for (i = 0; i < id->nscopes; i++)
        if (strcmp(id->scopes[i], scope) == 0)
            return true;
    return false;
}

bool auth_identity_has_scopes(const auth_identity_t *id, char *const *need, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (id == NULL || !has_scope(id, need[i]))
            return false;
    return true;
}

/* Only whole scopes are written: a cut scope could read as another scope. */
void auth_identity_scopes_str(const auth_identity_t *id, char *out, size_t outlen)
{
    size_t used = 0, len, i;

    if (out == NULL || outlen == 0)
        return;
    out[0] = '\0';
    if (id == NULL)
        return;
    for (i = 0; i < id->nscopes; i++) {
        len = strlen(id->scopes[i]);
        if (used + (used > 0) + len + 1 > outlen)
            break;
        if (used > 0)
            out[used++] = ' ';
        memcpy(out + used, id->scopes[i], len);
        used += len;
        out[used] = '\0';
    }
}

bool auth_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];
    unsigned int n = 0;
    bool same;

    /* Digests of both, compared whole: neither the place of the first
     * difference nor a length mismatch shows in the time taken. */
    if (EVP_Digest(a, alen, da, &n, EVP_sha256(), NULL) != 1 ||
        EVP_Digest(b, blen, db, &n, EVP_sha256(), NULL) != 1)
        return false;
    same = CRYPTO_memcmp(da, db, sizeof da) == 0;
    return same && alen == blen; /* a digest collision is not equality */
}
