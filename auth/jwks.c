/* jwks.c — JWK sets into ready keys, and JWS signature checks.
 *
 * Why OpenSSL 3 and not libcjose: every JWK type maps onto one
 * EVP_PKEY_fromdata call (or EVP_PKEY_new_raw_public_key for Ed25519), the
 * same EVP_PKEY then verifies with EVP_DigestVerify, and OpenSSL is linked
 * already.  cjose 0.6 (Debian's libcjose0) imports keys through the
 * deprecated RSA_/EC_KEY APIs, has no OKP/EdDSA and verifies whole JWS
 * objects it parses itself, so we would still need our own header rules.
 *
 * libjwt 1.10 is not used for RS/ES/PS/EdDSA: it has no PS and no EdDSA, and
 * its RS/ES path takes a PEM string and parses it on every call
 * (jwt_verify_sha_pem → PEM_read_bio_PUBKEY), where these keys are parsed
 * once, when the set is loaded.
 */
#include "tollgate/auth_jwks.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "tollgate/util_b64.h"

#define JWK_MAX_KID 128
#define JWK_MAX_OCT 1024 /* bytes of an HS secret */

struct auth_jwk {
    char *kid; /* NULL = none */
    auth_alg_t alg;
    EVP_PKEY *pkey;        /* RSA, EC, Ed25519; NULL for oct */
    unsigned char *secret; /* oct */
    size_t secret_len;
};

struct auth_jwks {
    atomic_int refs;
    size_t n;
    auth_jwk_t keys[];
};

/* ---- algorithms ------------------------------------------------------- */

static const char *const alg_names[AUTH_ALG_COUNT] = {
    [AUTH_ALG_HS256] = "HS256", [AUTH_ALG_HS384] = "HS384", [AUTH_ALG_HS512] = "HS512",
    [AUTH_ALG_RS256] = "RS256", [AUTH_ALG_RS384] = "RS384", [AUTH_ALG_RS512] = "RS512",
    [AUTH_ALG_ES256] = "ES256", [AUTH_ALG_ES384] = "ES384", [AUTH_ALG_ES512] = "ES512",
    [AUTH_ALG_PS256] = "PS256", [AUTH_ALG_PS384] = "PS384", [AUTH_ALG_PS512] = "PS512",
    [AUTH_ALG_EDDSA] = "EdDSA",
};

auth_alg_t auth_alg_from_name(const char *name)
{
    int a;

    if (name == NULL)
        return AUTH_ALG_NONE;
    for (a = AUTH_ALG_HS256; a < AUTH_ALG_COUNT; a++)
        if (strcmp(alg_names[a], name) == 0)
            return (auth_alg_t)a;
    return AUTH_ALG_NONE;
}

const char *auth_alg_name(auth_alg_t a)
{
    return a > AUTH_ALG_NONE && a < AUTH_ALG_COUNT ? alg_names[a] : "none";
}

bool auth_alg_is_hs(auth_alg_t a)
{
    return a >= AUTH_ALG_HS256 && a <= AUTH_ALG_HS512;
}

static bool alg_is_rsa(auth_alg_t a)
{
    return (a >= AUTH_ALG_RS256 && a <= AUTH_ALG_RS512) ||
           (a >= AUTH_ALG_PS256 && a <= AUTH_ALG_PS512);
}

static bool alg_is_ec(auth_alg_t a)
{
    return a >= AUTH_ALG_ES256 && a <= AUTH_ALG_ES512;
}

/* The hash of an algorithm; NULL for EdDSA (it hashes inside). */
static const EVP_MD *alg_md(auth_alg_t a)
{
    switch (a) {
    case AUTH_ALG_HS256:
    case AUTH_ALG_RS256:
    case AUTH_ALG_ES256:
    case AUTH_ALG_PS256:
        return EVP_sha256();
    case AUTH_ALG_HS384:
    case AUTH_ALG_RS384:
    case AUTH_ALG_ES384:
    case AUTH_ALG_PS384:
        return EVP_sha384();
    case AUTH_ALG_HS512:
    case AUTH_ALG_RS512:
    case AUTH_ALG_ES512:
    case AUTH_ALG_PS512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

/* ---- curves ----------------------------------------------------------- */

static const struct {
    const char *crv;   /* JWK name (RFC 7518 §6.2.1.1) */
    const char *group; /* OpenSSL group name */
    size_t coord;      /* bytes of x, y and of R, S */
    auth_alg_t alg;
} curves[] = {
    {"P-256", "prime256v1", 32, AUTH_ALG_ES256},
    {"P-384", "secp384r1", 48, AUTH_ALG_ES384},
    {"P-521", "secp521r1", 66, AUTH_ALG_ES512},
};

static int curve_of_name(const char *crv)
{
    for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++)
        if (strcmp(curves[i].crv, crv) == 0)
            return (int)i;
    return -1;
}

static int curve_of_alg(auth_alg_t a)
{
    for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++)
        if (curves[i].alg == a)
            return (int)i;
    return -1;
}

/* ---- sets --------------------------------------------------------------- */

static auth_jwks_t *set_new(size_t n)
{
    auth_jwks_t *s = calloc(1, sizeof(*s) + n * sizeof(s->keys[0]));

    if (s != NULL)
        atomic_init(&s->refs, 1);
    return s;
}

static void key_clear(auth_jwk_t *k)
{
    free(k->kid);
    EVP_PKEY_free(k->pkey);
    if (k->secret != NULL) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    memset(k, 0, sizeof(*k));
}

auth_jwks_t *auth_jwks_ref(auth_jwks_t *s)
{
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void auth_jwks_unref(auth_jwks_t *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n; i++)
        key_clear(&s->keys[i]);
    free(s);
}

size_t auth_jwks_count(const auth_jwks_t *s)
{
    return s != NULL ? s->n : 0;
}

unsigned auth_jwks_alg_mask(const auth_jwks_t *s)
{
    unsigned m = 0;

    for (size_t i = 0; s != NULL && i < s->n; i++)
        m |= 1u << s->keys[i].alg;
    return m;
}

auth_alg_t auth_jwk_alg(const auth_jwk_t *k)
{
    return k->alg;
}

const char *auth_jwk_kid(const auth_jwk_t *k)
{
    return k->kid;
}

/* The key whose kid is exactly `kid`, or NULL. */
static const auth_jwk_t *find_kid(const auth_jwks_t *s, const char *kid)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->keys[i].kid != NULL && strcmp(s->keys[i].kid, kid) == 0)
            return &s->keys[i];
    return NULL;
}

const unsigned char *auth_jwk_secret(const auth_jwk_t *k, size_t *len)
{
    *len = k->secret_len;
    return k->secret;
}

const auth_jwk_t *auth_jwks_find(const auth_jwks_t *s, const char *kid, size_t kidlen,
                                 auth_alg_t alg)
{
    const auth_jwk_t *found = NULL;

    if (s == NULL || s->n == 0)
        return NULL;
    if (kid != NULL) {
        for (size_t i = 0; i < s->n; i++) {
            const char *k = s->keys[i].kid;

            if (k != NULL && strlen(k) == kidlen && memcmp(k, kid, kidlen) == 0)
                return &s->keys[i];
        }
        return s->n == 1 && s->keys[0].kid == NULL ? &s->keys[0] : NULL;
    }
    /* No kid: the one kid-less key of that alg (JWT_SECRET), else the one
     * key of that alg; several are ambiguous. */
    for (int pass = 0; pass < 2 && found == NULL; pass++)
        for (size_t i = 0; i < s->n; i++) {
            if (s->keys[i].alg != alg || (pass == 0 && s->keys[i].kid != NULL))
                continue;
            if (found != NULL)
                return NULL;
            found = &s->keys[i];
        }
    return found;
}

/* Copy `src` into `dst` (the EVP_PKEY shared by reference). */
static int key_copy(auth_jwk_t *dst, const auth_jwk_t *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->alg = src->alg;
    if (src->kid != NULL && (dst->kid = strdup(src->kid)) == NULL)
        return -1;
    if (src->pkey != NULL) {
        if (EVP_PKEY_up_ref(src->pkey) != 1)
            return -1;
        dst->pkey = src->pkey;
    }
    if (src->secret != NULL) {
        dst->secret = malloc(src->secret_len);
        if (dst->secret == NULL)
            return -1;
        memcpy(dst->secret, src->secret, src->secret_len);
        dst->secret_len = src->secret_len;
    }
    return 0;
}

auth_jwks_t *auth_jwks_merge(const auth_jwks_t *a, const auth_jwks_t *b, char *err,
                             size_t errlen)
{
    const auth_jwks_t *parts[2] = {a, b};
    auth_jwks_t *s = set_new(auth_jwks_count(a) + auth_jwks_count(b));

    if (s == NULL)
        goto out_oom;
    for (size_t p = 0; p < 2; p++)
        for (size_t i = 0; i < auth_jwks_count(parts[p]); i++) {
            const auth_jwk_t *k = &parts[p]->keys[i];

            if (k->kid != NULL && find_kid(s, k->kid) != NULL) {
                snprintf(err, errlen, "kid '%.64s' appears twice", k->kid);
                auth_jwks_unref(s);
                return NULL;
            }
            if (key_copy(&s->keys[s->n], k) != 0) {
                key_clear(&s->keys[s->n]);
                goto out_oom;
            }
            s->n++;
        }
    return s;
out_oom:
    auth_jwks_unref(s);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

auth_jwks_t *auth_jwks_from_secret(const unsigned char *secret, size_t len, auth_alg_t alg)
{
    auth_jwks_t *s;

    if (!auth_alg_is_hs(alg) || secret == NULL || len == 0 || len > INT32_MAX)
        return NULL;
    s = set_new(1);
    if (s == NULL)
        return NULL;
    s->keys[0].secret = malloc(len);
    if (s->keys[0].secret == NULL) {
        free(s);
        return NULL;
    }
    memcpy(s->keys[0].secret, secret, len);
    s->keys[0].secret_len = len;
    s->keys[0].alg = alg;
    s->n = 1;
    return s;
}

/* ---- parsing one JWK ---------------------------------------------------- */

typedef enum { JWK_USED, JWK_SKIPPED, JWK_BAD } jwk_result_t;

typedef struct {
    char *why; /* the reason of a skip or a refusal */
    size_t whylen;
    const char *label; /* "key 3 (kid 'abc')" */
} jwk_ctx_t;

static jwk_result_t note_why(jwk_ctx_t *x, jwk_result_t r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record why key x->label was skipped or refused; returns r. */
static jwk_result_t note_why(jwk_ctx_t *x, jwk_result_t r, const char *fmt, ...)
{
    char tmp[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    snprintf(x->why, x->whylen, "%.112s: %s", x->label, tmp);
    return r;
}

#define skip(x, ...) note_why((x), JWK_SKIPPED, __VA_ARGS__)
#define bad(x, ...) note_why((x), JWK_BAD, __VA_ARGS__)

/* A base64url member into a fresh buffer; -1 when absent or not canonical. */
static long member_bytes(const json_t *jwk, const char *name, unsigned char **out,
                         size_t max)
{
    const json_t *j = json_object_get(jwk, name);
    size_t n;
    long got;

    *out = NULL;
    if (!json_is_string(j))
        return -1;
    n = json_string_length(j);
    if (n == 0 || n > (max * 4 + 2) / 3)
        return -1;
    *out = malloc(UTIL_B64_DECODED_MAX(n));
    if (*out == NULL)
        return -1;
    got = util_b64url_decode(json_string_value(j), n, *out, UTIL_B64_DECODED_MAX(n));
    if (got <= 0) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return got;
}

/* One EVP_PKEY from OSSL params of key type `type`; NULL when refused. */
static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;

    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* The public key must be a valid one of its type (EC: on the curve). */
static bool pkey_checks(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;

    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static jwk_result_t load_rsa(jwk_ctx_t *x, const json_t *jwk, auth_jwk_t *k)
{
    unsigned char *n = NULL, *e = NULL;
    long nlen = member_bytes(jwk, "n", &n, AUTH_JWK_MAX_RSA_BITS / 8 + 1);
    long elen = member_bytes(jwk, "e", &e, 8);
    const unsigned char *np = n;
    OSSL_PARAM_BLD *bld = NULL;
    BIGNUM *bn = NULL, *be = NULL;
    jwk_result_t r = JWK_BAD;
    int bits;

    if (nlen < 0 || elen < 0) {
        bad(x, "RSA key needs base64url 'n' and 'e'");
        goto out_free;
    }
    while (nlen > 0 && *np == 0) {
        np++;
        nlen--;
    }
    bits = 0;
    if (nlen > 0) {
        unsigned top = np[0];

        bits = (int)(nlen - 1) * 8;
        while (top != 0) {
            bits++;
            top >>= 1;
        }
    }
    if (bits < AUTH_JWK_MIN_RSA_BITS || bits > AUTH_JWK_MAX_RSA_BITS) {
        bad(x, "RSA modulus of %d bits (2048 to 8192 allowed)", bits);
        goto out_free;
    }
    if ((e[elen - 1] & 1) == 0 || (elen == 1 && e[0] < 3)) {
        bad(x, "RSA exponent must be odd and at least 3");
        goto out_free;
    }
    bn = BN_bin2bn(np, (int)nlen, NULL);
    be = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn == NULL || be == NULL || bld == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1 ||
        (k->pkey = pkey_fromdata("RSA", bld)) == NULL) {
        bad(x, "RSA key refused by OpenSSL");
        goto out_free;
    }
    r = JWK_USED;
out_free:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return r;
}

static jwk_result_t load_ec(jwk_ctx_t *x, const json_t *jwk, int curve, auth_jwk_t *k)
{
    size_t c = curves[curve].coord;
    unsigned char *px = NULL, *py = NULL, pub[1 + 2 * 66];
    long xl = member_bytes(jwk, "x", &px, c), yl = member_bytes(jwk, "y", &py, c);
    OSSL_PARAM_BLD *bld = NULL;
    jwk_result_t r = JWK_BAD;

    if (xl != (long)c || yl != (long)c) {
        bad(x, "EC key needs 'x' and 'y' of the curve's size");
        goto out_free;
    }
    pub[0] = 0x04; /* uncompressed point (SEC 1 §2.3.3) */
    memcpy(pub + 1, px, c);
    memcpy(pub + 1 + c, py, c);
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                        curves[curve].group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * c) !=
            1 ||
        (k->pkey = pkey_fromdata("EC", bld)) == NULL || !pkey_checks(k->pkey)) {
        bad(x, "EC point is not on curve %s", curves[curve].crv);
        goto out_free;
    }
    r = JWK_USED;
out_free:
    OSSL_PARAM_BLD_free(bld);
    free(px);
    free(py);
    return r;
}

static jwk_result_t load_ed25519(jwk_ctx_t *x, const json_t *jwk, auth_jwk_t *k)
{
    unsigned char *px = NULL;
    long xl = member_bytes(jwk, "x", &px, 32);

    if (xl == 32)
        k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, px, 32);
    free(px);
    if (k->pkey == NULL)
        return bad(x, "Ed25519 key needs a 32-byte 'x'");
    return JWK_USED;
}

static jwk_result_t load_oct(jwk_ctx_t *x, const json_t *jwk, auth_jwk_t *k)
{
    long n = member_bytes(jwk, "k", &k->secret, JWK_MAX_OCT);
    size_t need = (size_t)EVP_MD_get_size(alg_md(k->alg));

    if (n < 0)
        return bad(x, "oct key needs a base64url 'k' (at most 1024 bytes)");
    k->secret_len = (size_t)n;
    if (k->secret_len < need)
        return bad(x, "oct key shorter than its hash (RFC 7518 §3.2) for %s",
                   auth_alg_name(k->alg));
    return JWK_USED;
}

/* The one allowed algorithm of a family (RSA or HS), or NONE when zero or
 * several are allowed: a key without `alg` is then ambiguous. */
static auth_alg_t only_allowed(unsigned allowed, bool (*family)(auth_alg_t))
{
    auth_alg_t found = AUTH_ALG_NONE;

    for (int a = AUTH_ALG_HS256; a < AUTH_ALG_COUNT; a++) {
        if (!(allowed & (1u << a)) || !family((auth_alg_t)a))
            continue;
        if (found != AUTH_ALG_NONE)
            return AUTH_ALG_NONE;
        found = (auth_alg_t)a;
    }
    return found;
}

/* kty + crv + alg → the key's one algorithm; JWK_USED when decided. */
static jwk_result_t pin_alg(jwk_ctx_t *x, const json_t *jwk, const char *kty,
                            unsigned allowed, auth_jwk_t *k, int *curve)
{
    const json_t *ja = json_object_get(jwk, "alg");
    const json_t *jc = json_object_get(jwk, "crv");
    const char *crv = json_is_string(jc) ? json_string_value(jc) : NULL;
    auth_alg_t a = AUTH_ALG_NONE;
    bool rsa = strcmp(kty, "RSA") == 0, ec = strcmp(kty, "EC") == 0,
         okp = strcmp(kty, "OKP") == 0, oct = strcmp(kty, "oct") == 0;

    if (!rsa && !ec && !okp && !oct)
        return skip(x, "kty '%.16s' is not supported", kty);
    if (ja != NULL) {
        if (!json_is_string(ja))
            return bad(x, "'alg' is not a string");
        a = auth_alg_from_name(json_string_value(ja));
        if (a == AUTH_ALG_NONE)
            return skip(x, "alg '%.24s' is not a signature algorithm",
                        json_string_value(ja));
    }
    if (ec || okp) {
        if (crv == NULL)
            return bad(x, "'crv' missing");
        *curve = ec ? curve_of_name(crv) : -1;
        if ((ec && *curve < 0) || (okp && strcmp(crv, "Ed25519") != 0))
            return skip(x, "curve '%.16s' is not supported", crv);
    }
    if (a == AUTH_ALG_NONE)
        a = rsa   ? only_allowed(allowed, alg_is_rsa)
            : oct ? only_allowed(allowed, auth_alg_is_hs)
            : ec  ? curves[*curve].alg
                  : AUTH_ALG_EDDSA;
    if (a == AUTH_ALG_NONE)
        return skip(x, "no 'alg', and auth.jwt.algorithms lists no single %s algorithm",
                    rsa ? "RSA" : "HS");
    if ((rsa && !alg_is_rsa(a)) || (oct && !auth_alg_is_hs(a)) ||
        (okp && a != AUTH_ALG_EDDSA) || (ec && curves[*curve].alg != a))
        return bad(x, "alg %s does not fit the key type", auth_alg_name(a));
    if (!(allowed & (1u << a)))
        return skip(x, "alg %s is not in auth.jwt.algorithms", auth_alg_name(a));
    k->alg = a;
    return JWK_USED;
}

/* `use` must be sig (or absent); `key_ops`, when present, must hold verify. */
static bool for_signatures(const json_t *jwk)
{
    const json_t *use = json_object_get(jwk, "use"), *ops = json_object_get(jwk, "key_ops");
    const json_t *op;
    size_t i;

    if (use != NULL && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0))
        return false;
    if (ops == NULL)
        return true;
    json_array_foreach(ops, i,
                       op) if (json_is_string(op) &&
                               strcmp(json_string_value(op), "verify") == 0) return true;
    return false;
}

static bool clean_kid(const char *s, size_t n)
{
    if (n == 0 || n > JWK_MAX_KID)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return false;
    return true;
}

static jwk_result_t load_key(jwk_ctx_t *x, const json_t *jwk, unsigned allowed,
                             auth_jwk_t *k)
{
    const json_t *kty = json_object_get(jwk, "kty"), *kid = json_object_get(jwk, "kid");
    const char *t;
    jwk_result_t r;
    int curve = -1;

    if (!json_is_object(jwk) || !json_is_string(kty))
        return bad(x, "not a JWK (an object with a 'kty')");
    if (kid != NULL && (!json_is_string(kid) ||
                        !clean_kid(json_string_value(kid), json_string_length(kid))))
        return bad(x, "'kid' must be a string of 1 to 128 printable bytes");
    if (!for_signatures(jwk))
        return skip(x, "not a signature key ('use'/'key_ops')");
    t = json_string_value(kty);
    r = pin_alg(x, jwk, t, allowed, k, &curve);
    if (r != JWK_USED)
        return r;
    if (strcmp(t, "oct") != 0 && json_object_get(jwk, "d") != NULL)
        return bad(x, "holds a private key ('d'): publish public keys only");
    if (kid != NULL && (k->kid = strdup(json_string_value(kid))) == NULL)
        return bad(x, "out of memory");
    if (alg_is_rsa(k->alg))
        return load_rsa(x, jwk, k);
    if (alg_is_ec(k->alg))
        return load_ec(x, jwk, curve, k);
    if (k->alg == AUTH_ALG_EDDSA)
        return load_ed25519(x, jwk, k);
    return load_oct(x, jwk, k);
}

static void label_key(char *buf, size_t len, size_t i, const json_t *jwk)
{
    const json_t *kid = json_object_get(jwk, "kid");

    if (json_is_string(kid) && clean_kid(json_string_value(kid), json_string_length(kid)))
        snprintf(buf, len, "key %zu (kid '%.64s')", i, json_string_value(kid));
    else
        snprintf(buf, len, "key %zu", i);
}

auth_jwks_t *auth_jwks_parse(const char *doc, size_t len, unsigned allowed,
                             unsigned *skipped, char *note, size_t notelen, char *err,
                             size_t errlen)
{
    json_t *root = NULL, *keys, *jwk;
    auth_jwks_t *s = NULL;
    char label[112], why[300] = "", first[300] = "";
    jwk_ctx_t x = {why, sizeof why, label};
    unsigned nskip = 0;
    size_t i;

    if (note != NULL && notelen > 0)
        note[0] = '\0';
    if (len > AUTH_JWKS_MAX_DOC) {
        snprintf(err, errlen, "JWKS of %zu bytes (at most %d)", len, AUTH_JWKS_MAX_DOC);
        goto out;
    }
    root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, NULL);
    keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        snprintf(err, errlen, "not a JWKS (a JSON object with a \"keys\" array)");
        goto out;
    }
    if (json_array_size(keys) > AUTH_JWKS_MAX_KEYS) {
        snprintf(err, errlen, "JWKS of %zu keys (at most %d)", json_array_size(keys),
                 AUTH_JWKS_MAX_KEYS);
        goto out;
    }
    s = set_new(json_array_size(keys));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    json_array_foreach(keys, i, jwk)
    {
        auth_jwk_t *k = &s->keys[s->n];
        jwk_result_t r;

        label_key(label, sizeof label, i, jwk);
        r = load_key(&x, jwk, allowed, k);
        if (r == JWK_USED && k->kid != NULL && find_kid(s, k->kid) != NULL) {
            snprintf(why, sizeof why, "%s: kid appears twice", label);
            r = JWK_BAD;
        }
        if (r == JWK_BAD) {
            key_clear(k);
            snprintf(err, errlen, "%s", why);
            auth_jwks_unref(s);
            s = NULL;
            goto out;
        }
        if (r == JWK_SKIPPED) {
            key_clear(k);
            if (nskip++ == 0) {
                if (note != NULL)
                    snprintf(note, notelen, "%s", why);
                snprintf(first, sizeof first, "%s", why);
            }
            continue;
        }
        s->n++;
    }
    if (s->n == 0 && nskip > 0) {
        /* keys, none usable: a mistake, not "no keys" (an empty list is that) */
        snprintf(err, errlen, "no usable key (%u skipped; first: %s)", nskip, first);
        auth_jwks_unref(s);
        s = NULL;
    }
out:
    json_decref(root);
    if (skipped != NULL)
        *skipped = nskip;
    return s;
}

/* ---- signatures --------------------------------------------------------- */

static bool verify_hmac(const auth_jwk_t *k, const unsigned char *in, size_t inlen,
                        const unsigned char *sig, size_t siglen)
{
    unsigned char want[EVP_MAX_MD_SIZE];
    unsigned int wlen = 0;
    const EVP_MD *md = alg_md(k->alg);

    if (siglen != (size_t)EVP_MD_get_size(md))
        return false;
    if (HMAC(md, k->secret, (int)k->secret_len, in, inlen, want, &wlen) == NULL ||
        wlen != siglen)
        return false;
    return CRYPTO_memcmp(want, sig, siglen) == 0;
}

/* JOSE's R||S into the DER ECDSA-Sig-Value that OpenSSL verifies; its length
 * or 0 (when R||S is not the curve's size). */
static size_t ecdsa_der(const auth_jwk_t *k, const unsigned char *sig, size_t siglen,
                        unsigned char *der, size_t cap)
{
    int curve = curve_of_alg(k->alg);
    size_t c = curve >= 0 ? curves[curve].coord : 0;
    ECDSA_SIG *es = NULL;
    BIGNUM *r, *s;
    unsigned char *p = der;
    int n = 0;

    if (c == 0 || siglen != 2 * c)
        return 0;
    r = BN_bin2bn(sig, (int)c, NULL);
    s = BN_bin2bn(sig + c, (int)c, NULL);
    es = ECDSA_SIG_new();
    if (r == NULL || s == NULL || es == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return 0;
    }
    if ((size_t)i2d_ECDSA_SIG(es, NULL) <= cap)
        n = i2d_ECDSA_SIG(es, &p);
    ECDSA_SIG_free(es);
    return n > 0 ? (size_t)n : 0;
}

bool auth_jwk_verify(const auth_jwk_t *k, const unsigned char *input, size_t inlen,
                     const unsigned char *sig, size_t siglen)
{
    unsigned char der[2 * 66 + 16];
    EVP_MD_CTX *mctx;
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = false;

    if (k == NULL)
        return false;
    if (auth_alg_is_hs(k->alg))
        return verify_hmac(k, input, inlen, sig, siglen);
    if (alg_is_ec(k->alg)) {
        siglen = ecdsa_der(k, sig, siglen, der, sizeof der);
        if (siglen == 0)
            return false;
        sig = der;
    } else if (alg_is_rsa(k->alg) && siglen != (size_t)EVP_PKEY_get_size(k->pkey)) {
        return false; /* RFC 7518 §3.3: exactly the modulus size */
    }
    mctx = EVP_MD_CTX_new();
    if (mctx == NULL ||
        EVP_DigestVerifyInit(mctx, &pctx, alg_md(k->alg), NULL, k->pkey) != 1)
        goto out;
    if (k->alg >= AUTH_ALG_PS256 && k->alg <= AUTH_ALG_PS512 &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        goto out;
    ok = EVP_DigestVerify(mctx, sig, siglen, input, inlen) == 1;
out:
    EVP_MD_CTX_free(mctx);
    return ok;
}
