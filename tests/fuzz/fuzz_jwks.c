/* fuzz_jwks.c — libFuzzer target for the JWKS parser (auth_jwks_parse: a
 * file, or a document fetched from an identity provider) and for the
 * stored-ticket decoder (auth_ticket_decode and auth_ticket_restore: what
 * Redis hands back, checked against a key store and a clock).
 *
 * Every algorithm is allowed, so every key type's import is reached; a set
 * that parses is looked up and, with the input's tail as a "signature",
 * verified against each of its keys (the verify paths must not crash on
 * any key OpenSSL accepted).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/auth.h"
#include "tollgate/auth_jwks.h"
#include "tollgate/auth_ticket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* sha256("bob-key"): a key store with one entry, kept for the process */
#define BOB_SHA256 "9b94dc1a51a38769f135edf04033ad7f2f487b6c25929be7a861cfc1ab10cf98"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const kids[] = {NULL, "a", "k1", "rs-1"};
    static auth_keystore_t *keys;
    auth_ticket_check_t chk = {
        .ticket = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        .jwt = true,
        .leeway_s = 30,
        .now_s = 1700000000,
    };
    unsigned all = 0, skipped = 0;
    char note[256], err[256];
    auth_jwks_t *s;
    auth_identity_t id;

    for (int a = AUTH_ALG_HS256; a < AUTH_ALG_COUNT; a++)
        all |= 1u << a;
    s = auth_jwks_parse((const char *)data, size, all, &skipped, note, sizeof note, err,
                        sizeof err);
    for (size_t i = 0; s != NULL && i < sizeof kids / sizeof kids[0]; i++)
        for (int a = AUTH_ALG_HS256; a < AUTH_ALG_COUNT; a++) {
            const auth_jwk_t *k = auth_jwks_find(s, kids[i], kids[i] ? strlen(kids[i]) : 0,
                                                 (auth_alg_t)a);
            size_t n = size < 64 ? size : 64;

            if (k != NULL)
                (void)auth_jwk_verify(k, data, size, data + size - n, n);
        }
    auth_jwks_unref(s);
    if (auth_ticket_decode((const char *)data, size, &id) == 0)
        auth_identity_clear(&id);
    if (keys == NULL && (keys = auth_keystore_new()) != NULL)
        (void)auth_keystore_add_line(keys, "bob " BOB_SHA256, "fuzz", err, sizeof err);
    chk.keys = keys;
    if (auth_ticket_restore((const char *)data, size, &chk, &id) == NULL)
        auth_identity_clear(&id);
    return 0;
}
