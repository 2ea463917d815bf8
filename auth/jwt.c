/* jwt.c — JWT verification per DESIGN §6 "JWT rules" (RFC 8725).
 *
 * Order of checks, cheapest and least trusting first:
 *   size cap → three base64url parts → header (jansson): alg pinned to the
 *   key, crit refused, kid bounded → HMAC over "header.payload" compared with
 *   CRYPTO_memcmp → jwt_decode() WITH the key and jwt_get_alg() == key alg
 *   → payload claims (jansson): exp/nbf/iat with leeway, iss, aud, sub.
 * Nothing of the payload is parsed before the signature is known good.
 *
 * About libjwt: Debian's libjwt 1.10.2-1+deb12u1 carries the CVE-2024-25189
 * fix.  Its jwt_verify_sha_hmac() re-encodes the computed HMAC in base64url
 * and compares it with the token's signature text through jwt_strcmp(),
 * which (checked in the shipped binary's disassembly) XOR-accumulates over
 * max(strlen(a), strlen(b)) bytes with no early exit and folds in the
 * length difference: constant-time in the content, leaking only lengths,
 * which are public.  Older libjwt used strcmp().  We do not rely on it: the
 * HMAC is verified here first with CRYPTO_memcmp, and libjwt only confirms.
 * libjwt 1.x also takes alg from the header, skips the signature when given
 * no key, refuses a `typ` other than "JWT", and checks no claim — hence the
 * checks below.
 *
 * Keys: this version has one HS secret (JWT_SECRET).  It is pinned to one
 * algorithm (RFC 8725 §3.1), so only one of HS256/HS384/HS512 may be listed.
 * With a single key there is no kid map: any `kid` (a string of at most
 * AUTH_JWT_MAX_KID_LEN bytes) selects that key; a longer or non-string kid is
 * refused.  RS and ES keys arrive with JWKS (auth.jwt.keys_file) later.
 */
#include "tollgate/auth_jwt.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define JWT_MAX_SIG 64 /* bytes of the longest HMAC (SHA-512) */
#define JWT_MAX_SCOPE_LEN 256
#define JWT_MAX_TIER_LEN 64
#define JWT_MAX_JTI_LEN 256
#define JWT_TIME_LIMIT 4611686018427387904LL /* 2^62: sums with leeway stay in range */

struct auth_jwt {
    unsigned allowed; /* bit (1 << jwt_alg_t) per allowed algorithm */
    jwt_alg_t hs_alg; /* the HS secret's one algorithm */
    const EVP_MD *hs_md;
    size_t hs_sig_len; /* bytes of its HMAC */
    unsigned char *hs_secret;
    size_t hs_secret_len;
    char *issuer;   /* NULL = not checked */
    char *audience; /* NULL = not checked */
    char *scopes_claim;
    char *tier_claim; /* NULL = none */
    int64_t leeway_s;
};

/* A run of bytes of the token. */
typedef struct {
    const char *p;
    size_t n;
} span_t;

static const struct {
    const char *name;
    jwt_alg_t alg;
} alg_names[] = {
    {"HS256", JWT_ALG_HS256}, {"HS384", JWT_ALG_HS384}, {"HS512", JWT_ALG_HS512},
    {"RS256", JWT_ALG_RS256}, {"RS384", JWT_ALG_RS384}, {"RS512", JWT_ALG_RS512},
    {"ES256", JWT_ALG_ES256}, {"ES384", JWT_ALG_ES384}, {"ES512", JWT_ALG_ES512},
};

/* Exact, case-sensitive (RFC 7515 §4.1.1); JWT_ALG_INVAL when unknown. */
static jwt_alg_t alg_from_name(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++)
        if (strcmp(alg_names[i].name, name) == 0)
            return alg_names[i].alg;
    return JWT_ALG_INVAL;
}

static bool alg_is_hs(jwt_alg_t a)
{
    return a == JWT_ALG_HS256 || a == JWT_ALG_HS384 || a == JWT_ALG_HS512;
}

const char *auth_jwt_status_str(auth_jwt_status_t s)
{
    switch (s) {
    case AUTH_JWT_OK:
        return "ok";
    case AUTH_JWT_MALFORMED:
        return "malformed";
    case AUTH_JWT_TOO_LARGE:
        return "too_large";
    case AUTH_JWT_BAD_ALG:
        return "bad_alg";
    case AUTH_JWT_UNKNOWN_KID:
        return "unknown_kid";
    case AUTH_JWT_BAD_SIGNATURE:
        return "bad_signature";
    case AUTH_JWT_EXPIRED:
        return "expired";
    case AUTH_JWT_MISSING_EXP:
        return "missing_exp";
    case AUTH_JWT_NOT_YET_VALID:
        return "not_yet_valid";
    case AUTH_JWT_IAT_FUTURE:
        return "iat_future";
    case AUTH_JWT_BAD_ISSUER:
        return "bad_issuer";
    case AUTH_JWT_BAD_AUDIENCE:
        return "bad_audience";
    case AUTH_JWT_CRIT:
        return "crit";
    }
    return "unknown";
}

/* --- building a verifier ------------------------------------------------ */

void auth_jwt_free(auth_jwt_t *v)
{
    if (v == NULL)
        return;
    if (v->hs_secret != NULL) {
        OPENSSL_cleanse(v->hs_secret, v->hs_secret_len);
        free(v->hs_secret);
    }
    free(v->issuer);
    free(v->audience);
    free(v->scopes_claim);
    free(v->tier_claim);
    free(v);
}

/* Record one configured algorithm.  0, or -1 with err set. */
static int add_alg(auth_jwt_t *v, const char *name, char *err, size_t errlen)
{
    jwt_alg_t a;

    if (name == NULL || strcasecmp(name, "none") == 0) {
        snprintf(err, errlen, "auth.jwt.algorithms: alg none is never allowed");
        return -1;
    }
    a = alg_from_name(name);
    if (a == JWT_ALG_INVAL) {
        snprintf(err, errlen, "auth.jwt.algorithms: unknown algorithm '%.16s'", name);
        return -1;
    }
    if (!alg_is_hs(a)) {
        snprintf(
            err, errlen,
            "auth.jwt.algorithms: %s needs auth.jwt.keys_file (JWKS), not supported yet",
            name);
        return -1;
    }
    if (v->hs_alg != JWT_ALG_NONE && v->hs_alg != a) {
        snprintf(err, errlen,
                 "auth.jwt.algorithms: list only one of HS256/HS384/HS512 "
                 "(JWT_SECRET is pinned to one algorithm)");
        return -1;
    }
    v->hs_alg = a;
    v->hs_md = a == JWT_ALG_HS256   ? EVP_sha256()
               : a == JWT_ALG_HS384 ? EVP_sha384()
                                    : EVP_sha512();
    v->hs_sig_len = (size_t)EVP_MD_get_size(v->hs_md);
    v->allowed |= 1u << a;
    return 0;
}

/* strdup of an optional string; false only when the copy failed. */
static bool copy_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL)
        return true;
    *dst = strdup(src);
    return *dst != NULL;
}

auth_jwt_t *auth_jwt_new(const auth_jwt_opts_t *opts, char *err, size_t errlen)
{
    auth_jwt_t *v;
    size_t i;

    if (opts == NULL || opts->nalgorithms == 0 || opts->algorithms == NULL) {
        snprintf(err, errlen, "auth.jwt.algorithms: no algorithm configured");
        return NULL;
    }
    v = calloc(1, sizeof(*v));
    if (v == NULL)
        goto out_oom;
    for (i = 0; i < opts->nalgorithms; i++)
        if (add_alg(v, opts->algorithms[i], err, errlen) != 0)
            goto out_free;
    if (opts->hs_secret == NULL || opts->hs_secret_len == 0) {
        snprintf(err, errlen,
                 "auth.jwt.algorithms: %s needs JWT_SECRET (or JWT_SECRET_FILE)",
                 jwt_alg_str(v->hs_alg));
        goto out_free;
    }
    v->hs_secret = malloc(opts->hs_secret_len);
    if (v->hs_secret == NULL || opts->hs_secret_len > INT32_MAX)
        goto out_oom;
    memcpy(v->hs_secret, opts->hs_secret, opts->hs_secret_len);
    v->hs_secret_len = opts->hs_secret_len;
    v->leeway_s = opts->leeway_s;
    if (!copy_opt(&v->issuer, opts->issuer) || !copy_opt(&v->audience, opts->audience) ||
        !copy_opt(&v->tier_claim, opts->tier_claim) ||
        !copy_opt(&v->scopes_claim,
                  opts->scopes_claim != NULL ? opts->scopes_claim : "scope"))
        goto out_oom;
    return v;
out_oom:
    snprintf(err, errlen, "out of memory");
out_free:
    auth_jwt_free(v);
    return NULL;
}

/* --- token syntax ------------------------------------------------------- */

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decode canonical unpadded base64url (RFC 7515 §2) into out.  The decoded
 * length, or -1 on a bad character, a bad length, non-zero trailing bits
 * (they would give two spellings of one signature) or no room. */
static long b64url_decode(span_t in, unsigned char *out, size_t outcap)
{
    size_t i, o = 0, rem = in.n % 4;
    unsigned long acc = 0;
    int bits = 0, d;

    if (rem == 1 || in.n / 4 * 3 + (rem ? rem - 1 : 0) > outcap)
        return -1;
    for (i = 0; i < in.n; i++) {
        d = b64url_val((unsigned char)in.p[i]);
        if (d < 0)
            return -1;
        acc = (acc << 6 | (unsigned long)d) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if ((acc & ((1ul << bits) - 1)) != 0)
        return -1;
    return (long)o;
}

/* Split into header, payload and signature at exactly two dots. */
static bool split_token(const char *tok, size_t len, span_t part[3])
{
    const char *dot1, *dot2;

    dot1 = memchr(tok, '.', len);
    if (dot1 == NULL)
        return false;
    dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok));
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - tok)) != NULL)
        return false;
    part[0].p = tok;
    part[0].n = (size_t)(dot1 - tok);
    part[1].p = dot1 + 1;
    part[1].n = (size_t)(dot2 - dot1 - 1);
    part[2].p = dot2 + 1;
    part[2].n = len - (size_t)(dot2 + 1 - tok);
    return part[0].n > 0 && part[1].n > 0;
}

/* A base64url part holding a JSON object; NULL when it is anything else.
 * Duplicate member names are refused: two `alg`s or two `exp`s are a trap. */
static json_t *parse_object_part(span_t part)
{
    unsigned char buf[AUTH_JWT_MAX_LEN];
    json_t *obj;
    long n;

    n = b64url_decode(part, buf, sizeof(buf));
    if (n <= 0)
        return NULL;
    obj = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (obj != NULL && !json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
    }
    return obj;
}

/* --- header and signature ----------------------------------------------- */

/* alg pinned to the key, crit refused, kid bounded; jku, x5u, jwk ignored. */
static auth_jwt_status_t check_header(const auth_jwt_t *v, const json_t *hdr)
{
    const json_t *alg = json_object_get(hdr, "alg");
    const json_t *kid = json_object_get(hdr, "kid");
    const json_t *typ = json_object_get(hdr, "typ");
    jwt_alg_t a;

    if (!json_is_string(alg))
        return AUTH_JWT_BAD_ALG;
    a = alg_from_name(json_string_value(alg));
    if (a == JWT_ALG_INVAL || (v->allowed & (1u << a)) == 0 || a != v->hs_alg)
        return AUTH_JWT_BAD_ALG; /* none, unlisted, or not the key's */
    if (json_object_get(hdr, "crit") != NULL)
        return AUTH_JWT_CRIT;
    if (kid != NULL) {
        if (!json_is_string(kid))
            return AUTH_JWT_MALFORMED;
        if (json_string_length(kid) > AUTH_JWT_MAX_KID_LEN)
            return AUTH_JWT_UNKNOWN_KID;
    }
    /* libjwt 1.x refuses any other typ; say so here, before it is asked. */
    if (typ != NULL &&
        (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        return AUTH_JWT_MALFORMED;
    return AUTH_JWT_OK;
}

/* HMAC of "header.payload" with the HS secret, compared in constant time. */
static auth_jwt_status_t check_hmac(const auth_jwt_t *v, const char *tok, span_t sig)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[JWT_MAX_SIG];
    unsigned int wlen = 0;
    size_t signed_len = (size_t)(sig.p - 1 - tok);
    long glen;

    /* base64url length of an HMAC is public: refuse other lengths early. */
    if (sig.n != (v->hs_sig_len * 4 + 2) / 3)
        return AUTH_JWT_BAD_SIGNATURE;
    glen = b64url_decode(sig, got, sizeof(got));
    if (glen < 0 || (size_t)glen != v->hs_sig_len)
        return AUTH_JWT_BAD_SIGNATURE;
    if (HMAC(v->hs_md, v->hs_secret, (int)v->hs_secret_len, (const unsigned char *)tok,
             signed_len, want, &wlen) == NULL ||
        wlen != v->hs_sig_len)
        return AUTH_JWT_BAD_SIGNATURE;
    if (CRYPTO_memcmp(want, got, wlen) != 0)
        return AUTH_JWT_BAD_SIGNATURE;
    return AUTH_JWT_OK;
}

/* Belt and braces: libjwt decodes WITH the key and must agree on the alg. */
static auth_jwt_status_t check_libjwt(const auth_jwt_t *v, const char *tok, size_t len)
{
    char buf[AUTH_JWT_MAX_LEN + 1];
    jwt_t *jwt = NULL;
    auth_jwt_status_t st = AUTH_JWT_OK;

    memcpy(buf, tok, len);
    buf[len] = '\0';
    if (jwt_decode(&jwt, buf, v->hs_secret, (int)v->hs_secret_len) != 0 || jwt == NULL)
        st = AUTH_JWT_BAD_SIGNATURE;
    else if (jwt_get_alg(jwt) != v->hs_alg)
        st = AUTH_JWT_BAD_ALG;
    jwt_free(jwt);
    return st;
}

/* --- claims ------------------------------------------------------------- */

/* A NumericDate claim: 1 absent, 0 found (clamped to ±2^62), -1 not a number. */
static int get_time(const json_t *claims, const char *name, int64_t *out)
{
    const json_t *t = json_object_get(claims, name);
    double d;

    if (t == NULL)
        return 1;
    if (json_is_integer(t)) {
        json_int_t i = json_integer_value(t);

        *out = i > JWT_TIME_LIMIT    ? JWT_TIME_LIMIT
               : i < -JWT_TIME_LIMIT ? -JWT_TIME_LIMIT
                                     : i;
        return 0;
    }
    if (!json_is_real(t))
        return -1;
    d = json_real_value(t);
    if (isnan(d))
        return -1;
    if (d > (double)JWT_TIME_LIMIT)
        *out = JWT_TIME_LIMIT;
    else if (d < -(double)JWT_TIME_LIMIT)
        *out = -JWT_TIME_LIMIT;
    else
        *out = (int64_t)floor(d);
    return 0;
}

static auth_jwt_status_t check_times(const auth_jwt_t *v, const json_t *claims, int64_t now,
                                     auth_identity_t *out)
{
    int64_t exp = 0, nbf = 0, iat = 0;
    int rc;

    rc = get_time(claims, "exp", &exp);
    if (rc != 0)
        return rc > 0 ? AUTH_JWT_MISSING_EXP : AUTH_JWT_MALFORMED;
    if (exp + v->leeway_s <= now)
        return AUTH_JWT_EXPIRED;
    rc = get_time(claims, "nbf", &nbf);
    if (rc < 0)
        return AUTH_JWT_MALFORMED;
    if (rc == 0 && nbf > now + v->leeway_s)
        return AUTH_JWT_NOT_YET_VALID;
    rc = get_time(claims, "iat", &iat);
    if (rc < 0)
        return AUTH_JWT_MALFORMED;
    if (rc == 0 && iat > now + v->leeway_s)
        return AUTH_JWT_IAT_FUTURE;
    out->exp = exp;
    out->iat = rc == 0 ? iat : 0;
    return AUTH_JWT_OK;
}

static bool json_str_eq(const json_t *j, const char *s)
{
    return json_is_string(j) && strcmp(json_string_value(j), s) == 0;
}

static auth_jwt_status_t check_iss_aud(const auth_jwt_t *v, const json_t *claims)
{
    const json_t *aud, *one;
    size_t i;

    if (v->issuer != NULL && !json_str_eq(json_object_get(claims, "iss"), v->issuer))
        return AUTH_JWT_BAD_ISSUER;
    if (v->audience == NULL)
        return AUTH_JWT_OK;
    aud = json_object_get(claims, "aud");
    if (json_str_eq(aud, v->audience))
        return AUTH_JWT_OK;
    json_array_foreach(aud, i, one) if (json_str_eq(one, v->audience)) return AUTH_JWT_OK;
    return AUTH_JWT_BAD_AUDIENCE;
}

/* 1..max bytes; with `visible`, only ASCII 0x21-0x7e; else no control bytes.
 * These strings end up in headers, Redis keys and logs. */
static bool clean_str(const char *s, size_t n, size_t max, bool visible)
{
    size_t i;
    unsigned char c;

    if (n == 0 || n > max)
        return false;
    for (i = 0; i < n; i++) {
        c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || (visible && (c == ' ' || c > 0x7e)))
            return false;
    }
    return true;
}

static int push_scope(auth_identity_t *out, const char *s, size_t n)
{
    char **grown;

    if (!clean_str(s, n, JWT_MAX_SCOPE_LEN, true))
        return -1;
    grown = realloc(out->scopes, (out->nscopes + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    out->scopes = grown;
    out->scopes[out->nscopes] = strndup(s, n);
    if (out->scopes[out->nscopes] == NULL)
        return -1;
    out->nscopes++;
    return 0;
}

/* Scopes from a space-separated string or an array of strings. */
static int fill_scopes(const json_t *sc, auth_identity_t *out)
{
    const char *s, *end, *word;
    const json_t *one;
    size_t i;

    if (sc == NULL)
        return 0;
    if (json_is_string(sc)) {
        s = json_string_value(sc);
        end = s + json_string_length(sc);
        while (s < end) {
            while (s < end && *s == ' ')
                s++;
            word = s;
            while (s < end && *s != ' ')
                s++;
            if (s > word && push_scope(out, word, (size_t)(s - word)) != 0)
                return -1;
        }
        return 0;
    }
    if (!json_is_array(sc))
        return -1;
    json_array_foreach(sc, i, one)
    {
        if (!json_is_string(one) ||
            push_scope(out, json_string_value(one), json_string_length(one)) != 0)
            return -1;
    }
    return 0;
}

/* An optional string claim into *dst; -1 when present but unfit. */
static int optional_str(const json_t *claims, const char *name, size_t max, char **dst)
{
    const json_t *j;

    if (name == NULL || (j = json_object_get(claims, name)) == NULL)
        return 0;
    if (!json_is_string(j) ||
        !clean_str(json_string_value(j), json_string_length(j), max, true))
        return -1;
    *dst = strdup(json_string_value(j));
    return *dst == NULL ? -1 : 0;
}

/* sub, scopes, tier and jti into out.  Out of memory also answers MALFORMED:
 * the request fails closed either way. */
static auth_jwt_status_t fill_identity(const auth_jwt_t *v, const json_t *claims,
                                       auth_identity_t *out)
{
    const json_t *sub = json_object_get(claims, "sub");

    if (!json_is_string(sub) ||
        !clean_str(json_string_value(sub), json_string_length(sub), AUTH_MAX_ID_LEN, false))
        return AUTH_JWT_MALFORMED;
    out->kind = AUTH_KIND_JWT;
    out->client_id = strdup(json_string_value(sub));
    out->subject = strdup(json_string_value(sub));
    if (out->client_id == NULL || out->subject == NULL)
        return AUTH_JWT_MALFORMED;
    if (fill_scopes(json_object_get(claims, v->scopes_claim), out) != 0 ||
        optional_str(claims, v->tier_claim, JWT_MAX_TIER_LEN, &out->tier) != 0 ||
        optional_str(claims, "jti", JWT_MAX_JTI_LEN, &out->jti) != 0)
        return AUTH_JWT_MALFORMED;
    return AUTH_JWT_OK;
}

/* --- verify ------------------------------------------------------------- */

/* Syntax, header and signature: everything before the payload is trusted. */
static auth_jwt_status_t verify_signed(const auth_jwt_t *v, const char *token, size_t len,
                                       span_t part[3])
{
    auth_jwt_status_t st;
    json_t *hdr;

    if (len > AUTH_JWT_MAX_LEN)
        return AUTH_JWT_TOO_LARGE;
    if (len == 0 || memchr(token, '\0', len) != NULL || !split_token(token, len, part))
        return AUTH_JWT_MALFORMED;
    hdr = parse_object_part(part[0]);
    if (hdr == NULL)
        return AUTH_JWT_MALFORMED;
    st = check_header(v, hdr);
    json_decref(hdr);
    if (st != AUTH_JWT_OK)
        return st;
    return check_hmac(v, token, part[2]);
}

auth_jwt_status_t auth_jwt_verify(const auth_jwt_t *v, const char *token, size_t len,
                                  int64_t now, auth_identity_t *out)
{
    span_t part[3];
    auth_jwt_status_t st;
    json_t *claims;

    memset(out, 0, sizeof(*out));
    if (v == NULL || token == NULL)
        return AUTH_JWT_MALFORMED;
    st = verify_signed(v, token, len, part);
    if (st != AUTH_JWT_OK)
        return st;
    claims = parse_object_part(part[1]);
    if (claims == NULL)
        return AUTH_JWT_MALFORMED;
    st = check_libjwt(v, token, len);
    if (st == AUTH_JWT_OK)
        st = check_times(v, claims, now, out);
    if (st == AUTH_JWT_OK)
        st = check_iss_aud(v, claims);
    if (st == AUTH_JWT_OK)
        st = fill_identity(v, claims, out);
    if (st != AUTH_JWT_OK) {
        json_decref(claims);
        auth_identity_clear(out);
        return st;
    }
    out->claims = claims;
    return AUTH_JWT_OK;
}
