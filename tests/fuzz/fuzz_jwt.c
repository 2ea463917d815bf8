/* fuzz_jwt.c — libFuzzer target for auth_jwt_verify.
 *
 * The first byte picks the mode:
 *   even: the rest is a token, verified as is (syntax, header, signature);
 *   odd:  the rest is "HEADER\nPAYLOAD" JSON; it is signed here with the
 *         verifier's secret so the fuzzer reaches the claim checks too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tollgate/auth_jwt.h"

#define FUZZ_SECRET "fuzz-secret-fuzz-secret-fuzz-secret!"
#define FUZZ_NOW 1700000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static auth_jwt_t *verifier(void)
{
    static auth_jwt_t *v;
    static const char *const algs[] = {"HS256"};
    static const char *const auds[] = {"aud"};
    static const auth_jwt_claim_hdr_t hdrs[] = {{"email", "X-Auth-Email"}};
    auth_jwt_provider_opts_t p = {
        .algorithms = algs,
        .nalgorithms = 1,
        .hs_secret = (const unsigned char *)FUZZ_SECRET,
        .hs_secret_len = sizeof(FUZZ_SECRET) - 1,
        .issuer = "iss",
        .audiences = auds,
        .naudiences = 1,
        .tier_claim = "tier",
        .claim_hdrs = hdrs,
        .nclaim_hdrs = 1,
    };
    auth_jwt_opts_t o = {.providers = &p, .nproviders = 1, .leeway_s = 30};
    char err[128];

    if (v == NULL)
        v = auth_jwt_new(&o, err, sizeof(err));
    if (v == NULL)
        abort();
    return v;
}

static size_t b64url(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i, o = 0;
    uint32_t v;

    for (i = 0; i < n; i += 3) {
        v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = tab[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = tab[v & 63];
    }
    return o;
}

/* Sign "HEADER\nPAYLOAD" into a token; its length, 0 when it is not that. */
static size_t sign(const uint8_t *data, size_t size, char *tok)
{
    const uint8_t *nl = memchr(data, '\n', size);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t n, hlen;

    if (nl == NULL)
        return 0;
    hlen = (size_t)(nl - data);
    n = b64url(data, hlen, tok);
    tok[n++] = '.';
    n += b64url(nl + 1, size - hlen - 1, tok + n);
    HMAC(EVP_sha256(), FUZZ_SECRET, (int)sizeof(FUZZ_SECRET) - 1, (unsigned char *)tok, n,
         mac, &maclen);
    tok[n++] = '.';
    n += b64url(mac, maclen, tok + n);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    auth_identity_t id;
    char *tok;
    size_t n;

    if (size < 1 || size > 3 * AUTH_JWT_MAX_LEN)
        return 0;
    if ((data[0] & 1) == 0) {
        auth_jwt_verify(verifier(), NULL, (const char *)data + 1, size - 1, FUZZ_NOW, &id);
        auth_identity_clear(&id);
        return 0;
    }
    tok = malloc(size * 4 / 3 + 128);
    if (tok == NULL)
        return 0;
    n = sign(data + 1, size - 1, tok);
    if (n > 0) {
        auth_jwt_verify(verifier(), NULL, tok, n, FUZZ_NOW, &id);
        auth_identity_clear(&id);
    }
    free(tok);
    return 0;
}
