/* test_auth_jwt.c — JWT verification: a table of tokens signed here with our
 * own HMAC helper, so no result is hard-coded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tollgate/auth_jwt.h"
#include "unit.h"

#define NOW 1700000000
#define SECRET "0123456789abcdef0123456789abcdef-test-secret"
#define ISS "https://issuer.example"

/* Base64url without padding. */
static char *b64url(const unsigned char *in, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(n * 4 / 3 + 4);
    size_t i, o = 0;
    unsigned long v;

    for (i = 0; i < n; i += 3) {
        v = (unsigned long)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned long)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = tab[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = tab[v & 63];
    }
    out[o] = '\0';
    return out;
}

/* "b64(header).b64(payload).b64(HMAC)"; md NULL leaves the signature empty. */
static char *make_token_key(const char *header, const char *payload, const EVP_MD *md,
                            const char *secret)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char *h = b64url((const unsigned char *)header, strlen(header));
    char *p = b64url((const unsigned char *)payload, strlen(payload));
    char *s = NULL, *tok;
    size_t n = strlen(h) + strlen(p) + 2;

    tok = malloc(n + 200);
    snprintf(tok, n + 200, "%s.%s", h, p);
    if (md != NULL) {
        HMAC(md, secret, (int)strlen(secret), (unsigned char *)tok, strlen(tok), mac,
             &maclen);
        s = b64url(mac, maclen);
    }
    strcat(tok, ".");
    if (s != NULL)
        strcat(tok, s);
    free(h);
    free(p);
    free(s);
    return tok;
}

static char *make_token(const char *header, const char *payload, const EVP_MD *md)
{
    return make_token_key(header, payload, md, SECRET);
}

static auth_jwt_t *verifier(void)
{
    static const char *const algs[] = {"HS256"};
    static const char *const auds[] = {"tollgate"};
    auth_jwt_provider_opts_t p = {
        .algorithms = algs,
        .nalgorithms = 1,
        .hs_secret = (const unsigned char *)SECRET,
        .hs_secret_len = sizeof(SECRET) - 1,
        .issuer = ISS,
        .audiences = auds,
        .naudiences = 1,
        .scopes_claim = "scope",
        .tier_claim = "tier",
    };
    auth_jwt_opts_t o = {.providers = &p, .nproviders = 1, .leeway_s = 30};
    char err[256];
    auth_jwt_t *v = auth_jwt_new(&o, err, sizeof(err));

    if (v == NULL)
        fprintf(stderr, "auth_jwt_new: %s\n", err);
    return v;
}

static auth_jwt_status_t verify_str(const char *tok, auth_identity_t *out)
{
    auth_jwt_t *v = verifier();
    auth_jwt_status_t st;

    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    st = auth_jwt_verify(v, NULL, tok, strlen(tok), NOW, out);
    auth_jwt_free(v);
    return st;
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
/* claims common to the valid tokens: iss, aud, exp an hour away, sub */
#define OKC "\"iss\":\"" ISS "\",\"aud\":\"tollgate\",\"sub\":\"alice\""
#define EXP_OK "\"exp\":1700003600"

enum mutate { M_NONE, M_FLIP_SIG, M_SHA512_SIG, M_WRONG_KEY };

static const struct jwt_case {
    const char *name;
    const char *header;
    const char *payload;
    int sign; /* 0 none, 256, 384, 512 */
    enum mutate mutate;
    auth_jwt_status_t want;
} cases[] = {
    {"valid", HS256, "{" OKC "," EXP_OK ",\"iat\":1700000000}", 256, M_NONE, AUTH_JWT_OK},
    {"valid, no typ", "{\"alg\":\"HS256\"}", "{" OKC "," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_OK},
    {"expired", HS256, "{" OKC ",\"exp\":1699999969}", 256, M_NONE, AUTH_JWT_EXPIRED},
    {"expired at the leeway edge", HS256, "{" OKC ",\"exp\":1699999970}", 256, M_NONE,
     AUTH_JWT_EXPIRED},
    {"expired within leeway ok", HS256, "{" OKC ",\"exp\":1699999990}", 256, M_NONE,
     AUTH_JWT_OK},
    {"exp missing", HS256, "{" OKC "}", 256, M_NONE, AUTH_JWT_MISSING_EXP},
    {"exp a string", HS256, "{" OKC ",\"exp\":\"1700003600\"}", 256, M_NONE,
     AUTH_JWT_MALFORMED},
    {"exp a real", HS256, "{" OKC ",\"exp\":1700003600.5}", 256, M_NONE, AUTH_JWT_OK},
    {"nbf in future", HS256, "{" OKC "," EXP_OK ",\"nbf\":1700000100}", 256, M_NONE,
     AUTH_JWT_NOT_YET_VALID},
    {"nbf within leeway ok", HS256, "{" OKC "," EXP_OK ",\"nbf\":1700000020}", 256, M_NONE,
     AUTH_JWT_OK},
    {"iat in future", HS256, "{" OKC "," EXP_OK ",\"iat\":1700000100}", 256, M_NONE,
     AUTH_JWT_IAT_FUTURE},
    {"wrong iss", HS256,
     "{\"iss\":\"https://evil.example\",\"aud\":\"tollgate\",\"sub\":\"a\"," EXP_OK "}",
     256, M_NONE, AUTH_JWT_BAD_ISSUER},
    {"iss missing", HS256, "{\"aud\":\"tollgate\",\"sub\":\"a\"," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_BAD_ISSUER},
    {"wrong aud", HS256, "{\"iss\":\"" ISS "\",\"aud\":\"other\",\"sub\":\"a\"," EXP_OK "}",
     256, M_NONE, AUTH_JWT_BAD_AUDIENCE},
    {"aud missing", HS256, "{\"iss\":\"" ISS "\",\"sub\":\"a\"," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_BAD_AUDIENCE},
    {"aud array with audience ok", HS256,
     "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"tollgate\"],\"sub\":\"a\"," EXP_OK "}", 256,
     M_NONE, AUTH_JWT_OK},
    {"aud array without audience", HS256,
     "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"y\"],\"sub\":\"a\"," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_BAD_AUDIENCE},
    {"alg none, no signature", "{\"alg\":\"none\"}", "{" OKC "," EXP_OK "}", 0, M_NONE,
     AUTH_JWT_BAD_ALG},
    {"alg none, with signature", "{\"alg\":\"none\"}", "{" OKC "," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_BAD_ALG},
    {"alg None", "{\"alg\":\"None\"}", "{" OKC "," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_BAD_ALG},
    {"alg hs256 (case)", "{\"alg\":\"hs256\"}", "{" OKC "," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_BAD_ALG},
    {"alg missing", "{\"typ\":\"JWT\"}", "{" OKC "," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_BAD_ALG},
    {"alg HS384 not allowed", "{\"alg\":\"HS384\"}", "{" OKC "," EXP_OK "}", 384, M_NONE,
     AUTH_JWT_BAD_ALG},
    {"alg RS256 with HS secret", "{\"alg\":\"RS256\"}", "{" OKC "," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_BAD_ALG},
    {"bad signature (flipped)", HS256, "{" OKC "," EXP_OK "}", 256, M_FLIP_SIG,
     AUTH_JWT_BAD_SIGNATURE},
    {"signature of other length", HS256, "{" OKC "," EXP_OK "}", 256, M_SHA512_SIG,
     AUTH_JWT_BAD_SIGNATURE},
    {"signed with another key", HS256, "{" OKC "," EXP_OK "}", 256, M_WRONG_KEY,
     AUTH_JWT_BAD_SIGNATURE},
    {"empty signature", HS256, "{" OKC "," EXP_OK "}", 0, M_NONE, AUTH_JWT_BAD_SIGNATURE},
    {"header not JSON", "not json", "{" OKC "," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_MALFORMED},
    {"header an array", "[\"HS256\"]", "{" OKC "," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_MALFORMED},
    {"payload not JSON", HS256, "exp=1", 256, M_NONE, AUTH_JWT_MALFORMED},
    {"payload duplicate sub", HS256, "{" OKC "," EXP_OK ",\"sub\":\"mallory\"}", 256,
     M_NONE, AUTH_JWT_MALFORMED},
    {"header duplicate alg", "{\"alg\":\"HS256\",\"alg\":\"none\"}", "{" OKC "," EXP_OK "}",
     256, M_NONE, AUTH_JWT_MALFORMED},
    {"crit present", "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}",
     "{" OKC "," EXP_OK "}", 256, M_NONE, AUTH_JWT_CRIT},
    {"typ at+jwt (RFC 9068) ok", "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}",
     "{" OKC "," EXP_OK "}", 256, M_NONE, AUTH_JWT_OK},
    {"typ application/at+jwt ok", "{\"alg\":\"HS256\",\"typ\":\"application/at+jwt\"}",
     "{" OKC "," EXP_OK "}", 256, M_NONE, AUTH_JWT_OK},
    {"typ other", "{\"alg\":\"HS256\",\"typ\":\"JOSE+JSON\"}", "{" OKC "," EXP_OK "}",
     256, M_NONE, AUTH_JWT_BAD_TYP},
    {"typ a number", "{\"alg\":\"HS256\",\"typ\":1}", "{" OKC "," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_BAD_TYP},
    {"kid short ok", "{\"alg\":\"HS256\",\"kid\":\"k1\"}", "{" OKC "," EXP_OK "}", 256,
     M_NONE, AUTH_JWT_OK},
    {"kid too long",
     "{\"alg\":\"HS256\",\"kid\":\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
     "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
     "kkkkkkkkkkkkkkkkkkkkkkk\"}",
     "{" OKC "," EXP_OK "}", 256, M_NONE, AUTH_JWT_UNKNOWN_KID},
    {"kid a number", "{\"alg\":\"HS256\",\"kid\":7}", "{" OKC "," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_MALFORMED},
    {"jku/x5u/jwk ignored",
     "{\"alg\":\"HS256\",\"jku\":\"https://evil/k\",\"x5u\":\"https://evil/c\","
     "\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"}}",
     "{" OKC "," EXP_OK "}", 256, M_NONE, AUTH_JWT_OK},
    {"sub missing", HS256, "{\"iss\":\"" ISS "\",\"aud\":\"tollgate\"," EXP_OK "}", 256,
     M_NONE, AUTH_JWT_MALFORMED},
    {"sub a number", HS256,
     "{\"iss\":\"" ISS "\",\"aud\":\"tollgate\",\"sub\":5," EXP_OK "}", 256, M_NONE,
     AUTH_JWT_MALFORMED},
    {"sub with newline", HS256,
     "{\"iss\":\"" ISS "\",\"aud\":\"tollgate\",\"sub\":\"a\\r\\nX: y\"," EXP_OK "}", 256,
     M_NONE, AUTH_JWT_MALFORMED},
    {"scope array with a number", HS256, "{" OKC "," EXP_OK ",\"scope\":[\"a\",1]}", 256,
     M_NONE, AUTH_JWT_MALFORMED},
    {"jti a number", HS256, "{" OKC "," EXP_OK ",\"jti\":5}", 256, M_NONE,
     AUTH_JWT_MALFORMED},
};

static void mutate(char *tok, const struct jwt_case *c)
{
    char *sig = strrchr(tok, '.') + 1;

    if (c->mutate == M_FLIP_SIG)
        sig[5] = sig[5] == 'A' ? 'B' : 'A';
}

static char *build_case(const struct jwt_case *c)
{
    const EVP_MD *md = c->sign == 384   ? EVP_sha384()
                       : c->sign == 512 ? EVP_sha512()
                                        : EVP_sha256();

    if (c->sign == 0)
        md = NULL;
    if (c->mutate == M_SHA512_SIG)
        md = EVP_sha512();
    if (c->mutate == M_WRONG_KEY)
        return make_token_key(c->header, c->payload, md, SECRET "x");
    return make_token(c->header, c->payload, md);
}

static void test_table(void)
{
    auth_jwt_t *v = verifier();
    auth_identity_t id;
    auth_jwt_status_t st;
    size_t i;
    char *tok;

    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tok = build_case(&cases[i]);
        mutate(tok, &cases[i]);
        st = auth_jwt_verify(v, NULL, tok, strlen(tok), NOW, &id);
        if (st != cases[i].want)
            fprintf(stderr, "\n  case \"%s\": got %s, want %s\n", cases[i].name,
                    auth_jwt_status_str(st), auth_jwt_status_str(cases[i].want));
        CU_ASSERT_EQUAL(st, cases[i].want);
        if (st == AUTH_JWT_OK) {
            CU_ASSERT_EQUAL(id.kind, AUTH_KIND_JWT);
        } else {
            CU_ASSERT_PTR_NULL(id.client_id);
        }
        auth_identity_clear(&id);
        free(tok);
    }
    auth_jwt_free(v);
}

static void test_valid_identity(void)
{
    auth_identity_t id;
    char *tok =
        make_token(HS256,
                   "{" OKC "," EXP_OK ",\"iat\":1699999000,\"jti\":\"j-1\","
                   "\"scope\":\"a:read  b:write\",\"tier\":\"gold\",\"org\":\"acme\"}",
                   EVP_sha256());
    char buf[32];

    CU_ASSERT_EQUAL_FATAL(verify_str(tok, &id), AUTH_JWT_OK);
    CU_ASSERT_EQUAL(id.kind, AUTH_KIND_JWT);
    CU_ASSERT_STRING_EQUAL(id.client_id, "alice");
    CU_ASSERT_STRING_EQUAL(id.subject, "alice");
    CU_ASSERT_STRING_EQUAL(id.jti, "j-1");
    CU_ASSERT_STRING_EQUAL(id.tier, "gold");
    CU_ASSERT_EQUAL(id.exp, 1700003600);
    CU_ASSERT_EQUAL(id.iat, 1699999000);
    CU_ASSERT_EQUAL_FATAL(id.nscopes, 2);
    CU_ASSERT_STRING_EQUAL(id.scopes[0], "a:read");
    CU_ASSERT_STRING_EQUAL(id.scopes[1], "b:write");
    CU_ASSERT_STRING_EQUAL(auth_identity_claim(&id, "org", buf, sizeof(buf)), "acme");
    CU_ASSERT_STRING_EQUAL(auth_identity_claim(&id, "exp", buf, sizeof(buf)), "1700003600");
    auth_identity_clear(&id);
    free(tok);
}

static void test_scopes_array(void)
{
    auth_identity_t id;
    char *tok =
        make_token(HS256, "{" OKC "," EXP_OK ",\"scope\":[\"x:read\",\"y:write\",\"z\"]}",
                   EVP_sha256());

    CU_ASSERT_EQUAL_FATAL(verify_str(tok, &id), AUTH_JWT_OK);
    CU_ASSERT_EQUAL_FATAL(id.nscopes, 3);
    CU_ASSERT_STRING_EQUAL(id.scopes[2], "z");
    CU_ASSERT_PTR_NULL(id.tier);
    CU_ASSERT_PTR_NULL(id.jti);
    CU_ASSERT_EQUAL(id.iat, 0);
    auth_identity_clear(&id);
    free(tok);
}

static void expect_raw(const char *tok, auth_jwt_status_t want)
{
    auth_identity_t id;
    auth_jwt_status_t st = verify_str(tok, &id);

    if (st != want)
        fprintf(stderr, "\n  \"%.40s\": got %s, want %s\n", tok, auth_jwt_status_str(st),
                auth_jwt_status_str(want));
    CU_ASSERT_EQUAL(st, want);
    auth_identity_clear(&id);
}

static void test_shapes(void)
{
    char *good = make_token(HS256, "{" OKC "," EXP_OK "}", EVP_sha256());
    char *p, buf[2048];
    size_t n;

    expect_raw(good, AUTH_JWT_OK);
    expect_raw("", AUTH_JWT_MALFORMED);
    expect_raw("garbage", AUTH_JWT_MALFORMED);
    expect_raw("...", AUTH_JWT_MALFORMED);
    expect_raw("a.b", AUTH_JWT_MALFORMED);
    /* 2 parts: the valid token without its signature part */
    snprintf(buf, sizeof(buf), "%s", good);
    *strrchr(buf, '.') = '\0';
    expect_raw(buf, AUTH_JWT_MALFORMED);
    /* 4 parts */
    snprintf(buf, sizeof(buf), "%s.AAAA", good);
    expect_raw(buf, AUTH_JWT_MALFORMED);
    /* bad base64 in the header */
    snprintf(buf, sizeof(buf), "!!!%s", good);
    expect_raw(buf, AUTH_JWT_MALFORMED);
    /* padding is not base64url */
    p = strchr(good, '.');
    n = (size_t)(p - good);
    snprintf(buf, sizeof(buf), "%.*s=%s", (int)n, good, p);
    expect_raw(buf, AUTH_JWT_MALFORMED);
    /* non-canonical signature: the last char's unused bits set */
    snprintf(buf, sizeof(buf), "%s", good);
    p = buf + strlen(buf) - 1;
    *p = *p == 'A' ? 'B' : (*p == 'B' ? 'A' : 'B');
    expect_raw(buf, AUTH_JWT_BAD_SIGNATURE);
    free(good);
}

static void test_too_large(void)
{
    size_t n = 50 * 1024;
    char *big = malloc(n + 1);
    auth_jwt_t *v = verifier();
    auth_identity_t id;
    char *good = make_token(HS256, "{" OKC "," EXP_OK "}", EVP_sha256());

    memset(big, 'A', n);
    big[10] = '.';
    big[20] = '.';
    big[n] = '\0';
    CU_ASSERT_EQUAL(auth_jwt_verify(v, NULL, big, n, NOW, &id), AUTH_JWT_TOO_LARGE);
    CU_ASSERT_EQUAL(auth_jwt_verify(v, NULL, big, AUTH_JWT_MAX_LEN + 1, NOW, &id),
                    AUTH_JWT_TOO_LARGE);
    /* a NUL inside the given length */
    CU_ASSERT_EQUAL(auth_jwt_verify(v, NULL, good, strlen(good) + 1, NOW, &id),
                    AUTH_JWT_MALFORMED);
    /* the length is honoured: no NUL needed after the token */
    memcpy(big, good, strlen(good));
    CU_ASSERT_EQUAL(auth_jwt_verify(v, NULL, big, strlen(good), NOW, &id), AUTH_JWT_OK);
    auth_identity_clear(&id);
    auth_jwt_free(v);
    free(good);
    free(big);
}

static auth_jwt_t *new_with(const char *const *algs, size_t n, const char *secret,
                            char *err, size_t errlen)
{
    auth_jwt_provider_opts_t p = {
        .algorithms = algs,
        .nalgorithms = n,
        .hs_secret = (const unsigned char *)secret,
        .hs_secret_len = secret != NULL ? strlen(secret) : 0,
    };
    auth_jwt_opts_t o = {.providers = &p, .nproviders = 1};

    err[0] = '\0';
    return auth_jwt_new(&o, err, errlen);
}

static void test_new_errors(void)
{
    static const char *const none[] = {"none"};
    static const char *const rs[] = {"HS256", "RS256"};
    static const char *const es[] = {"ES256"};
    static const char *const two_hs[] = {"HS256", "HS512"};
    static const char *const hs512[] = {"HS512"};
    static const char *const twice[] = {"HS384", "HS384"};
    static const char *const unknown[] = {"XX999"};
    char err[256];
    auth_jwt_t *v;
    auth_identity_t id;
    char *tok = make_token("{\"alg\":\"HS512\"}", "{\"sub\":\"a\",\"exp\":1700000100}",
                           EVP_sha512());

    CU_ASSERT_PTR_NULL(new_with(NULL, 0, SECRET, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no algorithm"));
    CU_ASSERT_PTR_NULL(new_with(none, 1, SECRET, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "none"));
    /* JWT_SECRET with RS256 also allowed: the secret is the HS256 key */
    v = new_with(rs, 2, SECRET, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(v);
    CU_ASSERT_EQUAL(auth_jwt_provider_keys(v, 0), 1);
    auth_jwt_free(v);
    CU_ASSERT_PTR_NULL(new_with(es, 1, SECRET, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "lists no HS algorithm"));
    CU_ASSERT_PTR_NULL(new_with(two_hs, 2, SECRET, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "only one"));
    CU_ASSERT_PTR_NULL(new_with(unknown, 1, SECRET, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown algorithm"));
    /* no key at all: built, and every token answers no_key */
    v = new_with(hs512, 1, NULL, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(auth_jwt_verify(v, NULL, tok, strlen(tok), NOW, &id), AUTH_JWT_NO_KEYS);
    auth_jwt_free(v);
    v = new_with(twice, 2, SECRET, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(v);
    auth_jwt_free(v);
    auth_jwt_free(NULL);
    free(tok);
}

/* HS512 verifier, no issuer/audience configured, other scopes claim. */
static void test_hs512_defaults(void)
{
    static const char *const algs[] = {"HS512"};
    auth_jwt_provider_opts_t p = {
        .algorithms = algs,
        .nalgorithms = 1,
        .hs_secret = (const unsigned char *)SECRET,
        .hs_secret_len = sizeof(SECRET) - 1,
        .scopes_claim = "scp",
    };
    auth_jwt_opts_t o = {.providers = &p, .nproviders = 1};
    char err[128];
    auth_jwt_t *v = auth_jwt_new(&o, err, sizeof(err));
    auth_identity_t id;
    char *tok =
        make_token("{\"alg\":\"HS512\"}",
                   "{\"sub\":\"svc\",\"exp\":1700000100,\"scp\":\"a b\",\"scope\":\"c\"}",
                   EVP_sha512());
    char *t256 = make_token(HS256, "{\"sub\":\"svc\",\"exp\":1700000100}", EVP_sha256());

    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(auth_jwt_verify(v, NULL, tok, strlen(tok), NOW, &id), AUTH_JWT_OK);
    CU_ASSERT_EQUAL(id.nscopes, 2);
    auth_identity_clear(&id);
    CU_ASSERT_EQUAL(auth_jwt_verify(v, NULL, t256, strlen(t256), NOW, &id), AUTH_JWT_BAD_ALG);
    auth_jwt_free(v);
    free(tok);
    free(t256);
}

/* The verified-token cache: a hit gives the same identity; exp still ends
 * it; a new verifier (a reload) never sees the old one's entries. */
static void test_cache(void)
{
    auth_jwt_t *v = verifier(), *v2 = verifier();
    auth_jwt_local_t *loc = auth_jwt_local_new(4, 1 << 20);
    char *tok = make_token(HS256, "{" OKC ",\"exp\":1700000100,\"scope\":\"a b\"}",
                           EVP_sha256());
    auth_identity_t id;

    CU_ASSERT_PTR_NOT_NULL_FATAL(loc);
    CU_ASSERT_EQUAL(auth_jwt_verify(v, loc, tok, strlen(tok), NOW, &id), AUTH_JWT_OK);
    CU_ASSERT_FALSE(auth_jwt_local_last_hit(loc));
    auth_identity_clear(&id);
    CU_ASSERT_EQUAL(auth_jwt_verify(v, loc, tok, strlen(tok), NOW + 1, &id), AUTH_JWT_OK);
    CU_ASSERT_TRUE(auth_jwt_local_last_hit(loc));
    CU_ASSERT_STRING_EQUAL(id.subject, "alice");
    CU_ASSERT_EQUAL(id.nscopes, 2);
    auth_identity_clear(&id);
    /* past exp + leeway (30 s): refused, and gone from the cache */
    CU_ASSERT_EQUAL(auth_jwt_verify(v, loc, tok, strlen(tok), 1700000130, &id),
                    AUTH_JWT_EXPIRED);
    CU_ASSERT_FALSE(auth_jwt_local_last_hit(loc));
    CU_ASSERT_EQUAL(auth_jwt_local_cached(loc), 0);
    /* another verifier: a miss, then its own entry */
    CU_ASSERT_EQUAL(auth_jwt_verify(v, loc, tok, strlen(tok), NOW, &id), AUTH_JWT_OK);
    auth_identity_clear(&id);
    CU_ASSERT_EQUAL(auth_jwt_verify(v2, loc, tok, strlen(tok), NOW, &id), AUTH_JWT_OK);
    CU_ASSERT_FALSE(auth_jwt_local_last_hit(loc));
    auth_identity_clear(&id);
    /* a flipped signature byte is not the cached token */
    tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
    CU_ASSERT_EQUAL(auth_jwt_verify(v2, loc, tok, strlen(tok), NOW, &id),
                    AUTH_JWT_BAD_SIGNATURE);
    CU_ASSERT_FALSE(auth_jwt_local_last_hit(loc));
    /* bounded: 4 entries */
    for (int i = 0; i < 10; i++) {
        char pl[128], *t;

        snprintf(pl, sizeof pl, "{" OKC ",\"exp\":1700000100,\"n\":%d}", i);
        t = make_token(HS256, pl, EVP_sha256());
        CU_ASSERT_EQUAL(auth_jwt_verify(v2, loc, t, strlen(t), NOW, &id), AUTH_JWT_OK);
        auth_identity_clear(&id);
        free(t);
    }
    CU_ASSERT_EQUAL(auth_jwt_local_cached(loc), 4);
    auth_jwt_local_free(loc);
    auth_jwt_free(v);
    auth_jwt_free(v2);
    free(tok);
}

static void test_status_names(void)
{
    const char *seen[AUTH_JWT_NO_KEYS + 1];
    int s, t;

    for (s = AUTH_JWT_OK; s <= AUTH_JWT_NO_KEYS; s++) {
        const char *name = auth_jwt_status_str((auth_jwt_status_t)s);
        size_t i;

        CU_ASSERT_PTR_NOT_NULL_FATAL(name);
        CU_ASSERT_STRING_NOT_EQUAL(name, "unknown");
        for (i = 0; name[i] != '\0'; i++)
            CU_ASSERT((name[i] >= 'a' && name[i] <= 'z') || name[i] == '_');
        for (t = 0; t < s; t++)
            CU_ASSERT_STRING_NOT_EQUAL(name, seen[t]);
        seen[s] = name;
    }
    CU_ASSERT_STRING_EQUAL(auth_jwt_status_str(AUTH_JWT_EXPIRED), "expired");
    CU_ASSERT_STRING_EQUAL(auth_jwt_status_str(AUTH_JWT_BAD_SIGNATURE), "bad_signature");
}

static const unit_test_t tests[] = {
    {"token table", test_table},
    {"valid token's identity", test_valid_identity},
    {"scopes as array", test_scopes_array},
    {"token shapes", test_shapes},
    {"size cap and NUL", test_too_large},
    {"auth_jwt_new errors", test_new_errors},
    {"HS512, no iss/aud", test_hs512_defaults},
    {"verified-token cache", test_cache},
    {"status names", test_status_names},
    {NULL, NULL},
};

int test_auth_jwt_add(void)
{
    return unit_add_suite("auth_jwt", tests);
}
