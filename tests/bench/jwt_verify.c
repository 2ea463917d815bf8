/* jwt_verify.c — the cost of one JWT verification, per algorithm, through
 * tollgate's own verifier (parse, provider, kid, signature, claims), with
 * the token cache off and on.
 *
 *   jwt_verify JWKS_FILE TOKENS_FILE [ITERATIONS]
 *
 * TOKENS_FILE: one "ALG TOKEN" per line (tests/bench/run.sh makes them with
 * tests/integration/jose.py); every token's iss is "https://bench.test" and
 * aud "tollgate".  Prints one line per token: microseconds per verify.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate/auth_jwt.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = f != NULL ? malloc(1 << 20) : NULL;

    *len = buf != NULL ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    if (buf != NULL)
        buf[*len] = '\0';
    return buf;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Microseconds per auth_jwt_verify of `tok`; -1 when it does not verify. */
static double per_verify(const auth_jwt_t *v, auth_jwt_local_t *loc, const char *tok,
                         long n)
{
    auth_identity_t id;
    double t0;

    if (auth_jwt_verify(v, loc, tok, strlen(tok), (int64_t)time(NULL), &id) != AUTH_JWT_OK)
        return -1;
    auth_identity_clear(&id);
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        auth_jwt_verify(v, loc, tok, strlen(tok), (int64_t)time(NULL), &id);
        auth_identity_clear(&id);
    }
    return (now_s() - t0) * 1e6 / (double)n;
}

int main(int argc, char **argv)
{
    static const char *const algs[] = {"RS256", "PS256", "ES256", "EdDSA", "HS256"};
    static const char *const auds[] = {"tollgate"};
    long n = argc > 3 ? atol(argv[3]) : 2000;
    size_t jlen, tlen;
    char *jwks = argc > 2 ? slurp(argv[1], &jlen) : NULL;
    char *toks = argc > 2 ? slurp(argv[2], &tlen) : NULL, *line, *save = NULL;
    char err[512];
    auth_jwt_provider_opts_t p = {
        .name = "bench",
        .issuer = "https://bench.test",
        .audiences = auds,
        .naudiences = 1,
        .algorithms = algs,
        .nalgorithms = sizeof algs / sizeof algs[0],
    };
    auth_jwt_opts_t o = {.providers = &p, .nproviders = 1, .leeway_s = 30};
    auth_jwt_t *v;
    auth_jwt_local_t *loc = auth_jwt_local_new(1000, 1 << 20);

    if (jwks == NULL || toks == NULL || loc == NULL) {
        fprintf(stderr, "usage: jwt_verify JWKS_FILE TOKENS_FILE [ITERATIONS]\n");
        return 2;
    }
    p.keys_json = jwks;
    p.keys_len = jlen;
    v = auth_jwt_new(&o, err, sizeof err);
    if (v == NULL) {
        fprintf(stderr, "jwt_verify: %s\n", err);
        return 1;
    }
    printf("%-6s %12s %12s %8s\n", "alg", "us/verify", "us/cached", "bytes");
    for (line = strtok_r(toks, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char *tok = strchr(line, ' ');

        if (tok == NULL)
            continue;
        *tok++ = '\0';
        printf("%-6s %12.2f %12.2f %8zu\n", line, per_verify(v, NULL, tok, n),
               per_verify(v, loc, tok, n * 20), strlen(tok));
    }
    auth_jwt_local_free(loc);
    auth_jwt_free(v);
    free(jwks);
    free(toks);
    return 0;
}
