/* test_auth_jwks.c — JWK sets and JWS signatures.  Every key is generated
 * here with OpenSSL 3 and exported as a JWK, every token is signed here, so
 * no result is hard-coded.  Keys are made once; the last test frees them. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "tollgate/auth_jwks.h"
#include "tollgate/auth_jwt.h"
#include "tollgate/util_b64.h"
#include "unit.h"

#define NOW 1700000000
#define ISS "https://idp-a.example"
#define ISS_B "https://idp-b.example"
#define AUD "\"tollgate\""
#define A(x) AUTH_ALG_##x
#define ST(x) AUTH_JWT_##x
#define BIT(x) (1u << AUTH_ALG_##x)
#define ALL (((1u << AUTH_ALG_COUNT) - 1u) & ~1u) /* every algorithm */
#define SIG_MAX 1100
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Index = auth_alg_t; [1..] is every algorithm, for provider options. */
static const char *const alg_str[AUTH_ALG_COUNT + 1] = {
    "none",  "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256",
    "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA", NULL};

/* ---- keys ------------------------------------------------------------- */

/* Generated keys (K_EVIL: an attacker's P-256 key, in no set), then pseudo
 * keys giving HMAC secrets: the oct key's 32 random bytes, K_RSA's modulus
 * bytes and K_RSA's public key as PEM text. */
enum { K_RSA, K_RSA2, K_RSA1024, K_P256, K_P384, K_P521, K_ED, K_EVIL, K_NKEYS };
enum { K_HS = K_NKEYS, K_RSA_N, K_RSA_PEM };

static EVP_PKEY *gen[K_NKEYS];
static unsigned char hs_secret[32];
static bool hs_ready;

static EVP_PKEY *pkey(int k)
{
    static const struct {
        size_t rsa_bits;
        const char *crv; /* EC; neither: Ed25519 */
    } spec[K_NKEYS] = {
        [K_RSA] = {2048, NULL},  [K_RSA2] = {2048, NULL}, [K_RSA1024] = {1024, NULL},
        [K_P256] = {0, "P-256"}, [K_P384] = {0, "P-384"}, [K_P521] = {0, "P-521"},
        [K_EVIL] = {0, "P-256"}};

    CU_ASSERT_FATAL(k >= 0 && k < K_NKEYS);
    if (gen[k] != NULL)
        return gen[k];
    if (spec[k].rsa_bits > 0)
        gen[k] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", spec[k].rsa_bits);
    else if (spec[k].crv != NULL)
        gen[k] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", spec[k].crv);
    else
        gen[k] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    CU_ASSERT_PTR_NOT_NULL_FATAL(gen[k]);
    return gen[k];
}

static const unsigned char *hs_key(void)
{
    if (!hs_ready)
        CU_ASSERT_FATAL(RAND_bytes(hs_secret, sizeof hs_secret) == 1);
    hs_ready = true;
    return hs_secret;
}

static void test_free_keys(void)
{
    for (int k = 0; k < K_NKEYS; k++) {
        EVP_PKEY_free(gen[k]);
        gen[k] = NULL;
    }
    OPENSSL_cleanse(hs_secret, sizeof hs_secret);
    hs_ready = false;
    CU_PASS("keys freed");
}

/* A BIGNUM parameter of pk into buf (SIG_MAX bytes); its length. */
static size_t bn_bytes(EVP_PKEY *pk, const char *param, unsigned char *buf)
{
    BIGNUM *bn = NULL;
    int n = 0;

    if (EVP_PKEY_get_bn_param(pk, param, &bn) == 1 && BN_num_bytes(bn) <= SIG_MAX)
        n = BN_bn2bin(bn, buf);
    BN_clear_free(bn);
    CU_ASSERT_FATAL(n > 0);
    return (size_t)n;
}

/* The HMAC key of pseudo key k into buf (SIG_MAX bytes); its length. */
static size_t secret_of(int k, unsigned char *buf)
{
    BIO *b;
    char *pem = NULL;
    long n = 0;

    if (k == K_HS)
        return memcpy(buf, hs_key(), sizeof hs_secret) ? sizeof hs_secret : 0;
    if (k == K_RSA_N)
        return bn_bytes(pkey(K_RSA), OSSL_PKEY_PARAM_RSA_N, buf);
    b = BIO_new(BIO_s_mem());
    if (b != NULL && PEM_write_bio_PUBKEY(b, pkey(K_RSA)) == 1)
        n = BIO_get_mem_data(b, &pem);
    CU_ASSERT_FATAL(k == K_RSA_PEM && n > 0 && n <= SIG_MAX);
    memcpy(buf, pem, (size_t)n);
    BIO_free(b);
    return (size_t)n;
}

/* ---- JWKs ------------------------------------------------------------- */

static void put_str(json_t *o, const char *name, const char *val)
{
    json_object_set_new(o, name, json_string(val));
}

static void put_b64(json_t *o, const char *name, const unsigned char *p, size_t n)
{
    char s[2 * SIG_MAX];

    util_b64url_encode(p, n, s);
    put_str(o, name, s);
}

static void put_bn(json_t *o, const char *name, EVP_PKEY *pk, const char *param)
{
    unsigned char buf[SIG_MAX];

    put_b64(o, name, buf, bn_bytes(pk, param, buf));
    OPENSSL_cleanse(buf, sizeof buf);
}

static size_t ec_coord(EVP_PKEY *pk)
{
    return ((size_t)EVP_PKEY_get_bits(pk) + 7) / 8;
}

/* The public JWK of key k (oct for K_HS); kid and alg when not NULL. */
static json_t *jwk_of(int k, const char *kid, const char *alg)
{
    EVP_PKEY *pk = k == K_HS ? NULL : pkey(k);
    json_t *o = json_object();
    unsigned char pub[1 + 2 * 66];
    size_t len = sizeof pub, c = pk != NULL ? ec_coord(pk) : 0;

    if (pk == NULL) {
        put_str(o, "kty", "oct");
        put_b64(o, "k", hs_key(), sizeof hs_secret);
    } else if (EVP_PKEY_is_a(pk, "RSA")) {
        put_str(o, "kty", "RSA");
        put_bn(o, "n", pk, OSSL_PKEY_PARAM_RSA_N);
        put_bn(o, "e", pk, OSSL_PKEY_PARAM_RSA_E);
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        CU_ASSERT_FATAL(EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                                        len, &len) == 1 &&
                        len == 1 + 2 * c && pub[0] == 0x04);
        put_str(o, "kty", "EC");
        put_str(o, "crv", c == 32 ? "P-256" : c == 48 ? "P-384" : "P-521");
        put_b64(o, "x", pub + 1, c);
        put_b64(o, "y", pub + 1 + c, c);
    } else {
        CU_ASSERT_FATAL(EVP_PKEY_get_raw_public_key(pk, pub, &len) == 1 && len == 32);
        put_str(o, "kty", "OKP");
        put_str(o, "crv", "Ed25519");
        put_b64(o, "x", pub, len);
    }
    if (kid != NULL)
        put_str(o, "kid", kid);
    if (alg != NULL)
        put_str(o, "alg", alg);
    return o;
}

/* {"keys": keys} as text (free()); keys is stolen. */
static char *doc_of(json_t *keys)
{
    json_t *root = json_pack("{s:o}", "keys", keys);
    char *s = json_dumps(root, JSON_COMPACT);

    json_decref(root);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

static char *one_key_doc(int k, const char *kid, const char *alg)
{
    return doc_of(json_pack("[o]", jwk_of(k, kid, alg)));
}

/* ---- signing ---------------------------------------------------------- */

/* The hash of alg: the enum runs HS, RS, ES, PS in threes of 256/384/512. */
static const EVP_MD *md_of(auth_alg_t a)
{
    static const char *const md[] = {"SHA256", "SHA384", "SHA512"};

    return a == A(NONE) || a == A(EDDSA) ? NULL : EVP_get_digestbyname(md[(a - 1) % 3]);
}

/* OpenSSL's DER ECDSA-Sig-Value into JOSE's R||S (RFC 7518 §3.4). */
static size_t der_to_raw(EVP_PKEY *pk, unsigned char *sig, size_t len)
{
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    int c = (int)ec_coord(pk);

    CU_ASSERT_PTR_NOT_NULL_FATAL(es);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, c);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + c, c);
    ECDSA_SIG_free(es);
    return 2 * (size_t)c;
}

/* The signature of `in` by key k with alg (HS*: HMAC keyed by k's secret);
 * ES signatures stay DER when `der`. */
static size_t sign(int k, auth_alg_t alg, bool der, const char *in, size_t n,
                   unsigned char *sig)
{
    unsigned char sec[SIG_MAX];
    unsigned int ml = 0;
    EVP_MD_CTX *m;
    EVP_PKEY_CTX *pc = NULL;
    size_t len = SIG_MAX;
    bool ok;

    if (auth_alg_is_hs(alg)) {
        HMAC(md_of(alg), sec, (int)secret_of(k, sec), (const unsigned char *)in, n, sig,
             &ml);
        return ml;
    }
    m = EVP_MD_CTX_new();
    ok = m != NULL && EVP_DigestSignInit(m, &pc, md_of(alg), NULL, pkey(k)) == 1;
    if (ok && alg >= A(PS256) && alg <= A(PS512))
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1;
    ok = ok && EVP_DigestSign(m, sig, &len, (const unsigned char *)in, n) == 1;
    EVP_MD_CTX_free(m);
    CU_ASSERT_FATAL(ok);
    return alg >= A(ES256) && alg <= A(ES512) && !der ? der_to_raw(pkey(k), sig, len) : len;
}

enum how { H_OK, H_FLIP, H_DER, H_LONG }; /* H_LONG: a 0 byte appended */

/* "b64(hdr).b64(pl).b64(sig)" signed by key k with alg (none: no signature). */
static char *tok_make(const char *hdr, const char *pl, int k, auth_alg_t alg, enum how how)
{
    size_t hn = strlen(hdr), pn = strlen(pl), o, n = 0;
    char *tok = malloc(2 * (hn + pn + SIG_MAX));
    unsigned char sig[SIG_MAX];

    CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
    o = util_b64url_encode((const unsigned char *)hdr, hn, tok);
    tok[o++] = '.';
    o += util_b64url_encode((const unsigned char *)pl, pn, tok + o);
    if (alg != A(NONE))
        n = sign(k, alg, how == H_DER, tok, o, sig);
    if (how == H_FLIP)
        sig[n / 2] ^= 0x01;
    if (how == H_LONG)
        sig[n++] = 0;
    tok[o++] = '.';
    util_b64url_encode(sig, n, tok + o);
    return tok;
}

/* {"alg":alg[,"kid":kid]extra} into buf (512 bytes). */
static const char *hdr_of(char *buf, const char *alg, const char *kid, const char *extra)
{
    snprintf(buf, 512, "{\"alg\":\"%s\"%s%s%s%s}", alg, kid ? ",\"kid\":\"" : "",
             kid ? kid : "", kid ? "\"" : "", extra);
    return buf;
}

/* Claims: iss (NULL: none), aud (JSON text), sub alice, exp, then extra. */
static char *mk_payload(const char *iss, const char *aud, const char *extra)
{
    size_t n = strlen(extra) + strlen(aud) + (iss ? strlen(iss) : 0) + 128;
    char *p = malloc(n);

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    snprintf(p, n, "{%s%s%s\"aud\":%s,\"sub\":\"alice\",\"exp\":1700003600%s%s}",
             iss ? "\"iss\":\"" : "", iss ? iss : "", iss ? "\"," : "", aud,
             *extra ? "," : "", extra);
    return p;
}

/* The one call of auth_jwt_verify (no per-thread key cache). */
static auth_jwt_status_t verify_tok(const auth_jwt_t *v, const char *tok,
                                    auth_identity_t *id)
{
    return auth_jwt_verify(v, NULL, tok, strlen(tok), NOW, id);
}

/* Verify (and free) tok; on OK the identity must be alice's. */
static void expect(const auth_jwt_t *v, const char *name, char *tok, auth_jwt_status_t want)
{
    auth_identity_t id;
    auth_jwt_status_t st = verify_tok(v, tok, &id);

    if (st != want)
        fprintf(stderr, "\n  %s: got %s, want %s\n", name, auth_jwt_status_str(st),
                auth_jwt_status_str(want));
    CU_ASSERT_EQUAL(st, want);
    if (st == ST(OK))
        CU_ASSERT(id.subject != NULL && strcmp(id.subject, "alice") == 0);
    auth_identity_clear(&id);
    free(tok);
}

/* ---- 1. parsing --------------------------------------------------------- */

enum mut { M_NONE, M_SET, M_FLIP_Y, M_SHORT_X, M_HUGE_N, M_ADD_D };

/* Each case's key (kid "case") follows a good Ed25519 key (kid "good"). */
static const struct parse_case {
    const char *name;
    int key;
    const char *alg;            /* the JWK's alg, NULL: none */
    enum mut mut;               /* then applied to it */
    const char *member, *value; /* M_SET: member = JSON text */
    unsigned mask;              /* allowed algorithms, 0: all */
    int want; /* keys in the set (1: this key skipped), -1: the document refused */
} parse_cases[] = {
    {"RSA with alg", K_RSA, "RS256", M_NONE, NULL, NULL, 0, 2},
    {"RSA, no alg, one RSA alg", K_RSA, NULL, M_NONE, NULL, NULL, BIT(PS384), 2},
    {"oct, no alg, one HS alg", K_HS, NULL, M_NONE, NULL, NULL, BIT(HS256), 2},
    {"use sig", K_P384, NULL, M_SET, "use", "\"sig\"", 0, 2},
    {"key_ops with verify", K_P256, NULL, M_SET, "key_ops", "[\"sign\",\"verify\"]", 0, 2},
    {"use enc", K_RSA, "RS256", M_SET, "use", "\"enc\"", 0, 1},
    {"key_ops, no verify", K_P256, NULL, M_SET, "key_ops", "[\"encrypt\",\"sign\"]", 0, 1},
    {"kty foo", K_RSA, "RS256", M_SET, "kty", "\"foo\"", 0, 1},
    {"EC secp256k1", K_P256, NULL, M_SET, "crv", "\"secp256k1\"", 0, 1},
    {"OKP X25519", K_ED, NULL, M_SET, "crv", "\"X25519\"", 0, 1},
    {"OKP Ed448", K_ED, NULL, M_SET, "crv", "\"Ed448\"", 0, 1},
    {"alg RSA-OAEP", K_RSA, "RSA-OAEP", M_NONE, NULL, NULL, 0, 1},
    {"RS512 not allowed", K_RSA, "RS512", M_NONE, NULL, NULL, BIT(RS256), 1},
    {"P-521 (ES512) not allowed", K_P521, NULL, M_NONE, NULL, NULL, BIT(ES256), 1},
    {"RSA, no alg, 2 RSA algs", K_RSA, NULL, M_NONE, NULL, NULL, BIT(RS256) | BIT(PS256),
     1},
    {"RSA 1024 bits", K_RSA1024, "RS256", M_NONE, NULL, NULL, 0, -1},
    {"RSA n of 1100 bytes", K_RSA, "RS256", M_HUGE_N, NULL, NULL, 0, -1},
    {"RSA e even (65536)", K_RSA, "RS256", M_SET, "e", "\"AQAA\"", 0, -1},
    {"RSA e = 1", K_RSA, "RS256", M_SET, "e", "\"AQ\"", 0, -1},
    {"RSA n null", K_RSA, "RS256", M_SET, "n", "null", 0, -1},
    {"RSA e 257", K_RSA, "RS256", M_SET, "e", "\"AQE\"", 0, 2},
    {"RSA e 257 not canonical", K_RSA, "RS256", M_SET, "e", "\"AQF\"", 0, -1},
    {"RSA with private d", K_RSA, "RS256", M_ADD_D, NULL, NULL, 0, -1},
    {"RSA key, alg ES256", K_RSA, "ES256", M_NONE, NULL, NULL, 0, -1},
    {"EC point off the curve", K_P256, NULL, M_FLIP_Y, NULL, NULL, 0, -1},
    {"EC x of 47 bytes", K_P384, NULL, M_SHORT_X, NULL, NULL, 0, -1},
    {"P-256 key, alg ES384", K_P256, "ES384", M_NONE, NULL, NULL, 0, -1},
    {"EC with private d", K_P256, NULL, M_ADD_D, NULL, NULL, 0, -1},
    {"EC crv null", K_P521, NULL, M_SET, "crv", "null", 0, -1},
    {"oct 16 bytes, HS256", K_HS, "HS256", M_SET, "k",
     "\"AAAAAAAAAAAAAAAAAAAAAA\"" /* 16 bytes */, 0, -1},
    {"oct of 32 bytes, HS512", K_HS, "HS512", M_NONE, NULL, NULL, 0, -1},
    {"duplicate kid", K_P256, NULL, M_SET, "kid", "\"good\"", 0, -1},
    {"kid a number", K_P256, NULL, M_SET, "kid", "7", 0, -1},
    {"kid empty", K_P256, NULL, M_SET, "kid", "\"\"", 0, -1},
    {"alg a number", K_P256, NULL, M_SET, "alg", "256", 0, -1},
};

/* Member `name` decoded, its first byte dropped (`drop`) or its last byte
 * flipped, written back. */
static void recode(json_t *o, const char *name, bool drop)
{
    const char *s = json_string_value(json_object_get(o, name));
    unsigned char buf[SIG_MAX];
    long n = s != NULL ? util_b64url_decode(s, strlen(s), buf, sizeof buf) : -1;

    CU_ASSERT_FATAL(n > 1);
    buf[n - 1] ^= drop ? 0 : 0x01;
    put_b64(o, name, buf + drop, (size_t)n - drop);
}

static void mutate_jwk(json_t *o, const struct parse_case *c)
{
    EVP_PKEY *pk = c->key != K_HS ? pkey(c->key) : NULL;
    unsigned char huge[1100];

    if (c->mut == M_SET)
        json_object_set_new(o, c->member, json_loads(c->value, JSON_DECODE_ANY, NULL));
    else if (c->mut == M_FLIP_Y || c->mut == M_SHORT_X)
        recode(o, c->mut == M_FLIP_Y ? "y" : "x", c->mut == M_SHORT_X);
    else if (c->mut == M_ADD_D) /* the key's real private part */
        put_bn(o, "d", pk,
               EVP_PKEY_is_a(pk, "RSA") ? OSSL_PKEY_PARAM_RSA_D : OSSL_PKEY_PARAM_PRIV_KEY);
    if (c->mut == M_HUGE_N) {
        CU_ASSERT_FATAL(RAND_bytes(huge, sizeof huge) == 1);
        huge[0] |= 0x80;
        put_b64(o, "n", huge, sizeof huge);
    }
}

/* No long string member of the key (its first 16 characters) is in msg. */
static void no_key_material(const json_t *jwk, const char *msg, const char *name)
{
    const char *member;
    const json_t *val;
    char head[17];

    json_object_foreach((json_t *)jwk, member, val)
    {
        if (!json_is_string(val) || json_string_length(val) < 16)
            continue;
        snprintf(head, sizeof head, "%s", json_string_value(val));
        if (strstr(msg, head) != NULL)
            fprintf(stderr, "\n  %s: '%s' holds member %s\n", name, msg, member);
        CU_ASSERT_PTR_NULL(strstr(msg, head));
    }
}

static void run_parse_case(const struct parse_case *c)
{
    json_t *jwk = jwk_of(c->key, "case", c->alg);
    char note[256] = "", err[256] = "", *doc;
    unsigned skipped = 99, mask = (c->mask ? c->mask : ALL) | BIT(EDDSA);
    auth_jwks_t *s;

    mutate_jwk(jwk, c);
    doc = doc_of(json_pack("[oO]", jwk_of(K_ED, "good", NULL), jwk));
    s = auth_jwks_parse(doc, strlen(doc), mask, &skipped, note, sizeof note, err,
                        sizeof err);
    if ((s == NULL) != (c->want < 0) ||
        (s != NULL && auth_jwks_count(s) != (size_t)c->want))
        fprintf(stderr, "\n  parse \"%s\": %zu keys, err '%s'\n", c->name,
                auth_jwks_count(s), err);
    if (c->want < 0) {
        CU_ASSERT_PTR_NULL(s);
        CU_ASSERT(err[0] != '\0');
        no_key_material(jwk, err, c->name);
    } else {
        CU_ASSERT_EQUAL(auth_jwks_count(s), (size_t)c->want);
        CU_ASSERT_EQUAL(skipped, c->want == 1);
        CU_ASSERT_EQUAL(note[0] != '\0', c->want == 1);
        no_key_material(jwk, note, c->name);
    }
    auth_jwks_unref(s);
    json_decref(jwk);
    free(doc);
}

static void test_parse_table(void)
{
    for (size_t i = 0; i < N_OF(parse_cases); i++)
        run_parse_case(&parse_cases[i]);
}

/* Every kty in one set, pinned by kty/crv or by its family's one allowed alg. */
static void test_parse_every_kty(void)
{
    static const struct {
        const char *kid;
        int key;
        auth_alg_t alg;
    } want[] = {{"rsa", K_RSA, A(RS384)},   {"p256", K_P256, A(ES256)},
                {"p384", K_P384, A(ES384)}, {"p521", K_P521, A(ES512)},
                {"ed", K_ED, A(EDDSA)},     {"oct", K_HS, A(HS256)}};
    unsigned mask = 0, skipped = 99;
    json_t *keys = json_array();
    char note[128], err[128] = "", *doc;
    const auth_jwk_t *k;
    auth_jwks_t *s;
    size_t sl;

    for (size_t i = 0; i < N_OF(want); i++) {
        json_array_append_new(keys, jwk_of(want[i].key, want[i].kid, NULL));
        mask |= 1u << want[i].alg;
    }
    doc = doc_of(keys);
    s = auth_jwks_parse(doc, strlen(doc), mask, &skipped, note, sizeof note, err,
                        sizeof err);
    free(doc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(auth_jwks_count(s), N_OF(want));
    CU_ASSERT_EQUAL(skipped, 0);
    CU_ASSERT_STRING_EQUAL(note, "");
    for (size_t i = 0; i < N_OF(want); i++) {
        k = auth_jwks_find(s, want[i].kid, strlen(want[i].kid), A(NONE));
        CU_ASSERT_PTR_NOT_NULL_FATAL(k);
        CU_ASSERT_EQUAL(auth_jwk_alg(k), want[i].alg);
        CU_ASSERT_STRING_EQUAL(auth_jwk_kid(k), want[i].kid);
        CU_ASSERT_EQUAL(auth_jwk_secret(k, &sl) != NULL, want[i].key == K_HS);
    }
    CU_ASSERT(auth_jwk_secret(k, &sl) != NULL && sl == sizeof hs_secret &&
              memcmp(auth_jwk_secret(k, &sl), hs_key(), sl) == 0); /* k: the oct key */
    auth_jwks_unref(s);
}

/* Parse n copies of one Ed25519 JWK (kids k0, k1...), padded with spaces to
 * `pad` bytes: the key count, or -1 when refused (then err is set). */
static long parse_n(size_t n, size_t pad)
{
    json_t *keys = json_array();
    char kid[24], err[256] = "", *doc, *grown;
    auth_jwks_t *s;
    size_t len;
    long got;

    for (size_t i = 0; i < n; i++) {
        snprintf(kid, sizeof kid, "k%zu", i);
        json_array_append_new(keys, jwk_of(K_ED, kid, NULL));
    }
    doc = doc_of(keys);
    len = strlen(doc);
    if (pad > len) {
        grown = realloc(doc, pad + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(grown);
        doc = grown;
        memset(doc + len, ' ', pad - len);
        doc[len = pad] = '\0';
    }
    s = auth_jwks_parse(doc, len, ALL, NULL, NULL, 0, err, sizeof err);
    got = s != NULL ? (long)auth_jwks_count(s) : -1;
    CU_ASSERT_EQUAL(s == NULL, err[0] != '\0');
    auth_jwks_unref(s);
    free(doc);
    return got;
}

static void test_parse_documents(void)
{
    static const char *const bad[] = {"",
                                      "{\"keys\":",
                                      "not json",
                                      "[]",
                                      "{\"kyes\":[]}",
                                      "{\"keys\":{}}",
                                      "null",
                                      "{\"keys\":[],\"keys\":[]}",
                                      "{\"keys\":[7]}",
                                      "{\"keys\":[{\"kid\":\"a\"}]}"};
    char err[256], *doc;

    for (size_t i = 0; i < N_OF(bad); i++) {
        err[0] = '\0';
        CU_ASSERT_PTR_NULL(
            auth_jwks_parse(bad[i], strlen(bad[i]), ALL, NULL, NULL, 0, err, sizeof err));
        CU_ASSERT(err[0] != '\0');
    }
    /* keys, every one skipped: refused (an empty list is not) */
    doc = doc_of(json_pack("[o]", jwk_of(K_ED, "ed", NULL)));
    err[0] = '\0';
    CU_ASSERT_PTR_NULL(
        auth_jwks_parse(doc, strlen(doc), BIT(ES256), NULL, NULL, 0, err, sizeof err));
    CU_ASSERT(err[0] != '\0');
    free(doc);
    CU_ASSERT_EQUAL(parse_n(0, 0), 0);
    CU_ASSERT_EQUAL(parse_n(AUTH_JWKS_MAX_KEYS, 0), AUTH_JWKS_MAX_KEYS);
    CU_ASSERT_EQUAL(parse_n(AUTH_JWKS_MAX_KEYS + 1, 0), -1);
    CU_ASSERT_EQUAL(parse_n(1, AUTH_JWKS_MAX_DOC), 1);
    CU_ASSERT_EQUAL(parse_n(1, AUTH_JWKS_MAX_DOC + 1), -1);
}

/* ---- 2. signatures through the verifier --------------------------------- */

/* The verifier's keys: one RSA key under six kids (each pinned to its alg),
 * the three curves, Ed25519, an oct key and a second RS256 key. */
static const struct ring_key {
    const char *kid;
    int key;
    auth_alg_t alg;
    bool jwk_alg; /* the JWK names its alg (else kty/crv pins it) */
} ring[] = {{"rs256", K_RSA, A(RS256), true},   {"rs384", K_RSA, A(RS384), true},
            {"rs512", K_RSA, A(RS512), true},   {"ps256", K_RSA, A(PS256), true},
            {"ps384", K_RSA, A(PS384), true},   {"ps512", K_RSA, A(PS512), true},
            {"es256", K_P256, A(ES256), false}, {"es384", K_P384, A(ES384), true},
            {"es512", K_P521, A(ES512), false}, {"ed", K_ED, A(EDDSA), false},
            {"hs", K_HS, A(HS256), true},       {"rs256b", K_RSA2, A(RS256), true}};

/* A provider of issuer iss, audiences auds (NULL-terminated), algorithms
 * algs (NULL-terminated) and JWKS doc. */
static auth_jwt_provider_opts_t prov(const char *iss, const char *const *auds,
                                     const char *const *algs, const char *doc)
{
    auth_jwt_provider_opts_t p = {.issuer = iss, .audiences = auds, .algorithms = algs};

    while (auds != NULL && auds[p.naudiences] != NULL)
        p.naudiences++;
    while (algs[p.nalgorithms] != NULL)
        p.nalgorithms++;
    p.keys_json = doc;
    p.keys_len = doc != NULL ? strlen(doc) : 0;
    return p;
}

static auth_jwt_t *new_verifier(const auth_jwt_provider_opts_t *p, size_t n)
{
    auth_jwt_opts_t o = {.providers = p, .nproviders = n};
    char err[300] = "";
    auth_jwt_t *v = auth_jwt_new(&o, err, sizeof err);

    if (v == NULL)
        fprintf(stderr, "\n  auth_jwt_new: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    return v;
}

static const char *const tollgate[] = {"tollgate", NULL};
static const char *const rs256_only[] = {"RS256", NULL};

static char *ring_doc(void)
{
    json_t *keys = json_array();

    for (size_t i = 0; i < N_OF(ring); i++)
        json_array_append_new(keys, jwk_of(ring[i].key, ring[i].kid,
                                           ring[i].jwk_alg ? alg_str[ring[i].alg] : NULL));
    return doc_of(keys);
}

/* One provider (ISS, audience tollgate, every alg) over the ring. */
static auth_jwt_t *ring_verifier(void)
{
    char *doc = ring_doc();
    auth_jwt_provider_opts_t p = prov(ISS, tollgate, alg_str + 1, doc);
    auth_jwt_t *v = new_verifier(&p, 1);

    free(doc);
    CU_ASSERT_EQUAL(auth_jwt_provider_keys(v, 0), N_OF(ring));
    return v;
}

static void test_verify_every_alg(void)
{
    auth_jwt_t *v = ring_verifier();
    char *pl = mk_payload(ISS, AUD, ""), hdr[512], name[64];

    for (size_t i = 0; i < N_OF(ring); i++) {
        const struct ring_key *r = &ring[i];

        hdr_of(hdr, alg_str[r->alg], r->kid, ",\"typ\":\"JWT\"");
        snprintf(name, sizeof name, "%s", r->kid);
        expect(v, name, tok_make(hdr, pl, r->key, r->alg, H_OK), ST(OK));
        snprintf(name, sizeof name, "%s, a signature byte flipped", r->kid);
        expect(v, name, tok_make(hdr, pl, r->key, r->alg, H_FLIP), ST(BAD_SIGNATURE));
        snprintf(name, sizeof name, "%s, a byte appended", r->kid);
        expect(v, name, tok_make(hdr, pl, r->key, r->alg, H_LONG), ST(BAD_SIGNATURE));
        snprintf(name, sizeof name, "%s, no signature", r->kid);
        expect(v, name, tok_make(hdr, pl, r->key, A(NONE), H_OK), ST(BAD_SIGNATURE));
        snprintf(name, sizeof name, "%s, DER signature", r->kid);
        if (r->alg >= A(ES256) && r->alg <= A(ES512))
            expect(v, name, tok_make(hdr, pl, r->key, r->alg, H_DER), ST(BAD_SIGNATURE));
    }
    free(pl);
    auth_jwt_free(v);
}

/* ---- 3. attacks ----------------------------------------------------------- */

/* extra JWK: a header member "jwk" holding the attacker's public key. */
#define JWK "@jwk"

static const struct attack {
    const char *name;
    auth_alg_t hdr_alg;
    const char *kid, *extra; /* header members */
    int key;                 /* signing key */
    auth_alg_t alg;          /* signing algorithm, NONE: no signature */
    auth_jwt_status_t want;
} attacks[] = {
    {"alg none, no signature", A(NONE), NULL, "", K_RSA, A(NONE), ST(BAD_ALG)},
    {"alg none, RSA kid, RS256 sig", A(NONE), "rs256", "", K_RSA, A(RS256), ST(BAD_ALG)},
    {"HS256 keyed by RSA n", A(HS256), "rs256", "", K_RSA_N, A(HS256), ST(BAD_ALG)},
    {"HS256 keyed by RSA PEM", A(HS256), "rs256", "", K_RSA_PEM, A(HS256), ST(BAD_ALG)},
    {"HS256 by PEM, no kid", A(HS256), NULL, "", K_RSA_PEM, A(HS256), ST(BAD_SIGNATURE)},
    {"RS256 naming the oct kid", A(RS256), "hs", "", K_RSA, A(RS256), ST(BAD_ALG)},
    {"RS256 sig as PS256", A(PS256), "rs256", "", K_RSA, A(RS256), ST(BAD_ALG)},
    {"RS256 sig as PS256, PS kid", A(PS256), "ps256", "", K_RSA, A(RS256),
     ST(BAD_SIGNATURE)},
    {"ES256 sig as ES384", A(ES384), "es256", "", K_P256, A(ES256), ST(BAD_ALG)},
    {"another RSA key", A(RS256), "rs256", "", K_RSA2, A(RS256), ST(BAD_SIGNATURE)},
    {"unknown kid", A(RS256), "nope", "", K_RSA, A(RS256), ST(UNKNOWN_KID)},
    {"no kid, two RS256 keys", A(RS256), NULL, "", K_RSA, A(RS256), ST(UNKNOWN_KID)},
    {"no kid, one PS512 key", A(PS512), NULL, "", K_RSA, A(PS512), ST(OK)},
    {"no kid, one ES256 key", A(ES256), NULL, "", K_P256, A(ES256), ST(OK)},
    {"no kid, one EdDSA key", A(EDDSA), NULL, "", K_ED, A(EDDSA), ST(OK)},
    {"no kid, one HS256 key", A(HS256), NULL, ",\"typ\":\"JWT\"", K_HS, A(HS256), ST(OK)},
    {"crit", A(RS256), "rs256", ",\"crit\":[\"exp\"],\"exp\":1", K_RSA, A(RS256), ST(CRIT)},
    {"jku + x5u to the attacker, real key", A(RS256), "rs256",
     ",\"jku\":\"https://evil.example/jwks\",\"x5u\":\"https://evil.example/c.pem\"", K_RSA,
     A(RS256), ST(OK)},
    {"jku to the attacker, attacker key", A(ES256), "es256",
     ",\"jku\":\"https://evil.example/jwks\"", K_EVIL, A(ES256), ST(BAD_SIGNATURE)},
    {"typ at+jwt", A(RS256), "rs256", ",\"typ\":\"at+jwt\"", K_RSA, A(RS256), ST(OK)},
    {"jwk: attacker's, kid es256", A(ES256), "es256", JWK, K_EVIL, A(ES256),
     ST(BAD_SIGNATURE)},
    {"jwk: attacker's, no kid", A(ES256), NULL, JWK, K_EVIL, A(ES256), ST(BAD_SIGNATURE)},
    {"jwk: attacker's, kid evil", A(ES256), "evil", JWK, K_EVIL, A(ES256), ST(UNKNOWN_KID)},
    {"jwk: attacker's, real key", A(ES256), "es256", JWK, K_P256, A(ES256), ST(OK)},
};

static void test_attacks(void)
{
    auth_jwt_t *v = ring_verifier();
    char *pl = mk_payload(ISS, AUD, ""), hdr[512], jwk[300];
    json_t *evil = jwk_of(K_EVIL, "evil", "ES256");
    char *ej = json_dumps(evil, JSON_COMPACT);

    snprintf(jwk, sizeof jwk, ",\"jwk\":%s", ej);
    for (size_t i = 0; i < N_OF(attacks); i++) {
        const struct attack *a = &attacks[i];

        hdr_of(hdr, alg_str[a->hdr_alg], a->kid,
               strcmp(a->extra, JWK) == 0 ? jwk : a->extra);
        expect(v, a->name, tok_make(hdr, pl, a->key, a->alg, H_OK), a->want);
    }
    free(ej);
    json_decref(evil);
    free(pl);
    auth_jwt_free(v);
}

/* A correctly signed token over AUTH_JWT_MAX_LEN bytes. */
static void test_too_large(void)
{
    auth_jwt_t *v = ring_verifier();
    char *pad = malloc(AUTH_JWT_MAX_LEN + 16), *pl, *tok;

    CU_ASSERT_PTR_NOT_NULL_FATAL(pad);
    memcpy(pad, "\"pad\":\"", 7);
    memset(pad + 7, 'a', AUTH_JWT_MAX_LEN);
    strcpy(pad + 7 + AUTH_JWT_MAX_LEN, "\"");
    pl = mk_payload(ISS, AUD, pad);
    tok = tok_make("{\"alg\":\"ES256\",\"kid\":\"es256\"}", pl, K_P256, A(ES256), H_OK);
    CU_ASSERT(strlen(tok) > AUTH_JWT_MAX_LEN);
    expect(v, "signed token over the size cap", tok, ST(TOO_LARGE));
    free(pl);
    free(pad);
    auth_jwt_free(v);
}

/* ---- 4. providers ------------------------------------------------------ */

/* Provider a: ISS, audience tollgate, key a1; b: iss_b, audiences x and y,
 * key b1 (another RSA key).  NULL when auth_jwt_new refuses (err set). */
static auth_jwt_t *two_providers(const char *iss_b, char *err, size_t errlen)
{
    static const char *const aud_b[] = {"x", "y", NULL};
    char *da = one_key_doc(K_RSA, "a1", "RS256"), *db = one_key_doc(K_RSA2, "b1", "RS256");
    auth_jwt_provider_opts_t p[2] = {prov(ISS, tollgate, rs256_only, da),
                                     prov(iss_b, aud_b, rs256_only, db)};
    auth_jwt_opts_t o = {.providers = p, .nproviders = 2};
    auth_jwt_t *v;

    p[0].name = "a";
    p[1].name = "b";
    v = auth_jwt_new(&o, err, errlen);
    free(da);
    free(db);
    return v;
}

static const struct prov_case {
    const char *name;
    const char *iss; /* NULL: no iss claim */
    const char *aud; /* JSON text */
    const char *kid; /* NULL: none */
    int key;
    auth_jwt_status_t want;
} prov_cases[] = {
    {"iss A, A's key", ISS, AUD, "a1", K_RSA, ST(OK)},
    {"iss A, B's key, A's kid", ISS, AUD, "a1", K_RSA2, ST(BAD_SIGNATURE)},
    {"iss A, B's key and kid", ISS, AUD, "b1", K_RSA2, ST(UNKNOWN_KID)},
    {"iss A, B's key, no kid", ISS, AUD, NULL, K_RSA2, ST(BAD_SIGNATURE)},
    {"iss B, A's key, B's kid", ISS_B, "\"x\"", "b1", K_RSA, ST(BAD_SIGNATURE)},
    {"iss of no provider", "https://nobody.example", AUD, "a1", K_RSA, ST(BAD_ISSUER)},
    {"no iss", NULL, AUD, "a1", K_RSA, ST(BAD_ISSUER)},
    {"iss B, aud y", ISS_B, "\"y\"", "b1", K_RSA2, ST(OK)},
    {"iss B, aud [z, x]", ISS_B, "[\"z\",\"x\"]", "b1", K_RSA2, ST(OK)},
    {"iss B, aud z", ISS_B, "\"z\"", "b1", K_RSA2, ST(BAD_AUDIENCE)},
    {"iss B, A's audience", ISS_B, AUD, "b1", K_RSA2, ST(BAD_AUDIENCE)},
    {"iss A, B's audience", ISS, "\"x\"", "a1", K_RSA, ST(BAD_AUDIENCE)},
};

static void test_providers(void)
{
    char err[300] = "", hdr[512], *pl;
    auth_jwt_t *v = two_providers(ISS_B, err, sizeof err);

    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(auth_jwt_nproviders(v), 2);
    CU_ASSERT_STRING_EQUAL(auth_jwt_provider_name(v, 1), "b");
    CU_ASSERT_EQUAL(auth_jwt_provider_keys(v, 0), 1);
    for (size_t i = 0; i < N_OF(prov_cases); i++) {
        const struct prov_case *c = &prov_cases[i];

        pl = mk_payload(c->iss, c->aud, "");
        hdr_of(hdr, "RS256", c->kid, "");
        expect(v, c->name, tok_make(hdr, pl, c->key, A(RS256), H_OK), c->want);
        free(pl);
    }
    auth_jwt_free(v);
    CU_ASSERT_PTR_NULL(two_providers(ISS, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "same issuer"));
}

/* ---- 5, 6. scopes and claim headers ------------------------------------- */

static const auth_jwt_claim_hdr_t claim_hdrs[] = {{"email", "X-Auth-Email"},
                                                  {"uid", "X-Auth-Uid"}};

/* One provider (ISS, any audience) with one Ed25519 key, kid ed. */
static auth_jwt_t *ed_verifier(const char *scopes_claim)
{
    static const char *const eddsa[] = {"EdDSA", NULL};
    char *doc = one_key_doc(K_ED, "ed", NULL);
    auth_jwt_provider_opts_t p = prov(ISS, NULL, eddsa, doc);
    auth_jwt_t *v;

    p.scopes_claim = scopes_claim;
    p.claim_hdrs = claim_hdrs;
    p.nclaim_hdrs = N_OF(claim_hdrs);
    v = new_verifier(&p, 1);
    free(doc);
    return v;
}

/* Verify an EdDSA token with `extra` claims into id. */
static auth_jwt_status_t ed_verify(const auth_jwt_t *v, const char *extra,
                                   auth_identity_t *id)
{
    char *pl = mk_payload(ISS, AUD, extra);
    char *tok = tok_make("{\"alg\":\"EdDSA\",\"kid\":\"ed\"}", pl, K_ED, A(EDDSA), H_OK);
    auth_jwt_status_t st = verify_tok(v, tok, id);

    free(tok);
    free(pl);
    return st;
}

/* Header `name` of id is `want` (NULL: absent), and there at most once. */
static void hdr_is(const auth_identity_t *id, const char *name, const char *want)
{
    const char *val = NULL;
    int seen = 0;

    for (size_t i = 0; i < id->nhdrs; i++)
        if (strcmp(id->hdrs[i].name, name) == 0) {
            val = id->hdrs[i].value;
            seen++;
        }
    CU_ASSERT(seen <= 1);
    CU_ASSERT((val == NULL) == (want == NULL));
    CU_ASSERT(val == NULL || want == NULL || strcmp(val, want) == 0);
}

static const struct claim_case {
    const char *extra;
    const char *claim;       /* scopes_claim, NULL: scope, scp, scopes */
    const char *scopes;      /* the scopes, joined by spaces */
    const char *email, *uid; /* the header values, NULL: not copied */
} claim_cases[] = {
    {"\"scope\":\"a:read  b:write\"", NULL, "a:read b:write", NULL, NULL},
    {"\"scp\":[\"c\",\"d\"]", NULL, "c d", NULL, NULL},
    {"\"scopes\":[\"e\",\"f\"]", NULL, "e f", NULL, NULL},
    {"\"scopes\":\"g\"", NULL, "g", NULL, NULL},
    {"\"scopes\":[\"c\"],\"scp\":[\"b\"],\"scope\":\"a\"", NULL, "a", NULL, NULL},
    {"\"scopes\":[\"c\"],\"scp\":[\"b\"]", NULL, "b", NULL, NULL},
    {"\"perm\":[\"p\",\"q\"],\"scope\":\"a\",\"scp\":[\"b\"]", "perm", "p q", NULL, NULL},
    {"\"scope\":\"a\",\"scp\":[\"b\"],\"scopes\":[\"c\"]", "perm", "", NULL, NULL},
    {"\"scope\":\"a\",\"scp\":[\"b\"]", "scp", "b", NULL, NULL},
    {"\"email\":\"alice@example.com\"", NULL, "", "alice@example.com", NULL},
    {"\"email\":\"\\u00e9l\\u00e8ve@example.com\"", NULL, "",
     "\xc3\xa9l\xc3\xa8ve@example.com", NULL},
    {"\"email\":\"a@b\\r\\nX-Admin: 1\"", NULL, "", NULL, NULL},
    {"\"email\":\"a@b\\nX\"", NULL, "", NULL, NULL},
    {"\"email\":\"a@b\\rX\"", NULL, "", NULL, NULL},
    {"\"email\":\"a@b\\u0007\"", NULL, "", NULL, NULL},
    {"\"email\":\"a\\tb\"", NULL, "", NULL, NULL},
    {"\"email\":\"a\\u007fb\"", NULL, "", NULL, NULL},
    {"\"email\":\"\"", NULL, "", NULL, NULL},
    {"\"email\":{\"a\":\"b\"}", NULL, "", NULL, NULL},
    {"\"email\":[\"a@b\"]", NULL, "", NULL, NULL},
    {"\"email\":null", NULL, "", NULL, NULL},
    {"\"uid\":12345", NULL, "", NULL, "12345"},
    {"\"uid\":-7,\"email\":\"x@y\"", NULL, "", "x@y", "-7"},
    {"\"uid\":true", NULL, "", NULL, "true"},
};

static void check_claims(const struct claim_case *c)
{
    auth_jwt_t *v = ed_verifier(c->claim);
    auth_identity_t id;
    char got[128];

    if (ed_verify(v, c->extra, &id) != ST(OK))
        fprintf(stderr, "\n  claims %.60s refused\n", c->extra);
    CU_ASSERT_EQUAL(id.kind, AUTH_KIND_JWT);
    auth_identity_scopes_str(&id, got, sizeof got);
    CU_ASSERT_STRING_EQUAL(got, c->scopes);
    CU_ASSERT_EQUAL(id.nhdrs, (size_t)(c->email != NULL) + (c->uid != NULL));
    hdr_is(&id, "X-Auth-Email", c->email);
    hdr_is(&id, "X-Auth-Uid", c->uid);
    auth_identity_clear(&id);
    auth_jwt_free(v);
}

static void test_claims(void)
{
    char extra[600], *val;
    struct claim_case c = {extra, NULL, "", NULL, NULL};
    auth_jwt_t *v;
    auth_identity_t id;

    for (size_t i = 0; i < N_OF(claim_cases); i++)
        check_claims(&claim_cases[i]);
    /* 512 bytes are copied, 513 are not (never cut) */
    for (int n = 512; n <= 513; n++) {
        snprintf(extra, sizeof extra, "\"email\":\"%0*d\"", n, 0);
        val = strndup(extra + 9, (size_t)n);
        c.email = n == 512 ? val : NULL;
        check_claims(&c);
        free(val);
    }
    /* a NUL (\u0000): never copied cut short at the NUL */
    v = ed_verifier(NULL);
    memset(&id, 0, sizeof id);
    if (ed_verify(v, "\"email\":\"a@b\\u0000X-Admin: 1\"", &id) == ST(OK))
        hdr_is(&id, "X-Auth-Email", NULL);
    CU_ASSERT_EQUAL(id.nhdrs, 0);
    auth_identity_clear(&id);
    auth_jwt_free(v);
}

/* auth_jwt_claim_headers: every name once over all providers. */
static void test_claim_header_names(void)
{
    static const auth_jwt_claim_hdr_t hb[] = {
        {"mail", "X-Auth-Email"}, {"org", "X-Auth-Org"}, {"uid", "X-Auth-Uid"}};
    static const char *const want[] = {"X-Auth-Email", "X-Auth-Uid", "X-Auth-Org"};
    auth_jwt_provider_opts_t p[2] = {prov(ISS, NULL, rs256_only, NULL),
                                     prov(ISS_B, NULL, rs256_only, NULL)};
    const char *const *names;
    auth_jwt_t *v;
    size_t n = 99;

    p[0].claim_hdrs = claim_hdrs;
    p[0].nclaim_hdrs = 2;
    p[1].claim_hdrs = hb;
    p[1].nclaim_hdrs = 3;
    v = new_verifier(p, 2);
    names = auth_jwt_claim_headers(v, &n);
    CU_ASSERT_EQUAL_FATAL(n, N_OF(want));
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_STRING_EQUAL(names[i], want[i]);
    auth_jwt_free(v);
}

/* ---- 7. merge and secrets ------------------------------------------------ */

static auth_jwks_t *set_of(int k, const char *kid)
{
    char *doc = one_key_doc(k, kid, NULL), err[256] = "";
    auth_jwks_t *s = auth_jwks_parse(doc, strlen(doc), ALL, NULL, NULL, 0, err, sizeof err);

    free(doc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

/* Merging sets; then the set of one JWT_SECRET, alone and merged. */
static void test_merge_secret(void)
{
    auth_jwks_t *a = set_of(K_ED, "k1"), *b = set_of(K_P256, "k1"),
                *c = set_of(K_P384, "k2");
    const unsigned char *sec = hs_key();
    auth_jwks_t *s = auth_jwks_from_secret(sec, sizeof hs_secret, A(HS384)), *m;
    const auth_jwk_t *k;
    char err[256] = "";
    size_t n = 0;

    CU_ASSERT_PTR_NULL(auth_jwks_merge(a, b, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'k1'"));
    m = auth_jwks_merge(a, c, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(auth_jwks_count(m), 2);
    CU_ASSERT_EQUAL(auth_jwk_alg(auth_jwks_find(m, "k1", 2, A(NONE))), A(EDDSA));
    CU_ASSERT_EQUAL(auth_jwk_alg(auth_jwks_find(m, "k2", 2, A(NONE))), A(ES384));
    CU_ASSERT_PTR_NULL(auth_jwks_find(m, "k3", 2, A(ES384)));
    auth_jwks_unref(m);
    m = auth_jwks_merge(NULL, c, err, sizeof err);
    CU_ASSERT_EQUAL(auth_jwks_count(m), 1);
    auth_jwks_unref(m);
    auth_jwks_unref(a);
    auth_jwks_unref(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NULL(auth_jwks_from_secret(sec, sizeof hs_secret, A(RS256)));
    CU_ASSERT_PTR_NULL(auth_jwks_from_secret(sec, 0, A(HS256)));
    k = auth_jwks_find(s, NULL, 0, A(HS384));
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_EQUAL(auth_jwk_alg(k), A(HS384));
    CU_ASSERT_PTR_NULL(auth_jwk_kid(k));
    CU_ASSERT(auth_jwk_secret(k, &n) != NULL && n == sizeof hs_secret &&
              memcmp(auth_jwk_secret(k, &n), sec, n) == 0);
    CU_ASSERT_PTR_NULL(auth_jwks_find(s, NULL, 0, A(HS256)));
    CU_ASSERT_PTR_EQUAL(auth_jwks_find(s, "any", 3, A(HS384)), k);
    /* the secret (no kid) merged with a JWKS of kids */
    m = auth_jwks_merge(s, b, err, sizeof err); /* b: P-256, kid k1 */
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(auth_jwks_count(m), 2);
    CU_ASSERT_PTR_NOT_NULL(auth_jwks_find(m, NULL, 0, A(HS384)));
    CU_ASSERT_EQUAL(auth_jwk_alg(auth_jwks_find(m, "k1", 2, A(NONE))), A(ES256));
    CU_ASSERT_PTR_EQUAL(auth_jwks_ref(m), m);
    auth_jwks_unref(m);
    auth_jwks_unref(m);
    auth_jwks_unref(s);
    auth_jwks_unref(b);
    auth_jwks_unref(NULL);
}

static const unit_test_t tests[] = {
    {"parse: key table", test_parse_table},
    {"parse: every kty", test_parse_every_kty},
    {"parse: documents", test_parse_documents},
    {"verify: every alg, flipped, DER", test_verify_every_alg},
    {"attacks", test_attacks},
    {"token over the size cap", test_too_large},
    {"providers by iss", test_providers},
    {"scopes and claim_to_headers values", test_claims},
    {"claim_to_headers names", test_claim_header_names},
    {"auth_jwks_merge, auth_jwks_from_secret", test_merge_secret},
    {"(free generated keys)", test_free_keys},
    {NULL, NULL},
};

int test_auth_jwks_add(void)
{
    return unit_add_suite("auth_jwks", tests);
}
