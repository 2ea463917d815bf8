/* jwt.c — JWT verification (RFC 7519, RFC 8725 best practices).
 *
 * Order of checks, cheapest and least trusting first:
 *   size cap → three base64url parts → header (jansson): alg known, crit
 *   refused, kid bounded, typ JWT / at+jwt / absent → payload parsed (only
 *   `iss` is read before the signature) → provider by `iss` → alg allowed
 *   for it → key by kid (auth_jwks_find) → alg == the key's pinned alg →
 *   signature (auth_jwk_verify) → for HS tokens of typ JWT, libjwt's
 *   jwt_decode WITH the key and jwt_get_alg() == key alg → claims:
 *   exp/nbf/iat with leeway, aud, sub, scopes, tier, jti, claim headers.
 *
 * Who does what: auth/jwks.c turns JWKs into OpenSSL EVP_PKEYs once and
 * verifies every signature (RS, PS, ES, EdDSA with EVP_DigestVerify; HS with
 * HMAC + CRYPTO_memcmp).  libjwt 1.10 confirms HS tokens: Debian's
 * 1.10.2-1+deb12u1 carries the CVE-2024-25189 fix, and its HMAC comparison
 * (jwt_strcmp, read in the shipped binary) runs over max(len) with no early
 * exit.  libjwt is not asked about at+jwt tokens (it refuses any typ but
 * JWT, RFC 9068 §2.1) nor about RS/ES (it re-parses a PEM key per call) nor
 * PS/EdDSA (it has neither).
 *
 * The single-issuer keys of auth.jwt (issuer, audience, keys_file and
 * JWT_SECRET) are one provider; auth.jwt.providers adds more.  A provider
 * without an issuer takes tokens of any `iss` that no other provider names.
 */
#include "tollgate/auth_jwt.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stdatomic.h>

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "tollgate/auth_jwks.h"
#include "tollgate/auth_jwks_fetch.h"
#include "tollgate/log.h"
#include "tollgate/util_b64.h"
#include "tollgate/util_hash.h"
#include "tollgate/util_str.h"
#include "tokcache_internal.h"

#define JWT_MAX_SCOPE_LEN 256
#define JWT_MAX_TIER_LEN 64
#define JWT_MAX_JTI_LEN 256
#define JWT_MAX_HDR_VALUE 512                /* bytes of a claim copied into a header */
#define JWT_TIME_LIMIT 4611686018427387904LL /* 2^62: sums with leeway stay in range */

typedef struct provider {
    char *name;
    char *issuer; /* NULL = any */
    char **audiences;
    size_t naudiences;
    unsigned allowed;        /* bit (1 << auth_alg_t) per allowed algorithm */
    auth_jwks_t *keys;       /* static: JWT_SECRET, keys_file */
    auth_jwks_src_t *remote; /* or fetched: jwks_uri, discovery */
    unsigned wait_ms;        /* longest wait for a fetch of `remote` */
    char *scopes_claim;      /* NULL = scope, scp, scopes */
    char *tier_claim;        /* NULL = none */
    char **hdr_claims, **hdr_names;
    size_t nhdrs;
} provider_t;

struct auth_jwt {
    uint64_t epoch; /* unique per verifier: cached tokens of older ones are stale */
    provider_t *providers;
    size_t nproviders;
    int64_t leeway_s;
    const char **all_hdrs; /* every claim header name, once */
    size_t nall_hdrs;
};

/* A run of bytes of the token. */
typedef struct {
    const char *p;
    size_t n;
} span_t;

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
    case AUTH_JWT_BAD_TYP:
        return "bad_typ";
    case AUTH_JWT_NO_KEYS:
        return "no_key";
    case AUTH_JWT_KEYS_PENDING:
        return "keys_pending";
    }
    return "unknown";
}

/* --- building a verifier ------------------------------------------------ */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void provider_clear(provider_t *p)
{
    free(p->name);
    free(p->issuer);
    strv_free(p->audiences, p->naudiences);
    auth_jwks_unref(p->keys);
    auth_jwks_src_unref(p->remote);
    free(p->scopes_claim);
    free(p->tier_claim);
    strv_free(p->hdr_claims, p->nhdrs);
    strv_free(p->hdr_names, p->nhdrs);
}

void auth_jwt_free(auth_jwt_t *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->nproviders; i++)
        provider_clear(&v->providers[i]);
    free(v->providers);
    free(v->all_hdrs);
    free(v);
}

/* A copy of n strings; false when out of memory. */
static bool copy_strv(char ***dst, const char *const *src, size_t n)
{
    *dst = NULL;
    if (n == 0)
        return true;
    *dst = calloc(n, sizeof(**dst));
    if (*dst == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (((*dst)[i] = strdup(src[i])) == NULL)
            return false;
    return true;
}

/* The allowed-algorithm mask of a provider; 0 with err set when refused. */
static unsigned alg_mask(const auth_jwt_provider_opts_t *o, char *err, size_t errlen)
{
    unsigned mask = 0;

    if (o->nalgorithms == 0) {
        snprintf(err, errlen, "algorithms: no algorithm configured");
        return 0;
    }
    for (size_t i = 0; i < o->nalgorithms; i++) {
        const char *name = o->algorithms[i];
        auth_alg_t a = auth_alg_from_name(name);

        if (name == NULL || strcasecmp(name, "none") == 0) {
            snprintf(err, errlen, "algorithms: alg none is never allowed");
            return 0;
        }
        if (a == AUTH_ALG_NONE) {
            snprintf(err, errlen, "algorithms: unknown algorithm '%.16s'", name);
            return 0;
        }
        mask |= 1u << a;
    }
    return mask;
}

/* JWT_SECRET's one algorithm: the only HS alg of the list (RFC 8725 §3.1). */
static auth_jwks_t *secret_keys(const auth_jwt_provider_opts_t *o, unsigned mask, char *err,
                                size_t errlen)
{
    auth_alg_t hs = AUTH_ALG_NONE;
    auth_jwks_t *s;

    for (int a = AUTH_ALG_HS256; a <= AUTH_ALG_HS512; a++) {
        if (!(mask & (1u << a)))
            continue;
        if (hs != AUTH_ALG_NONE) {
            snprintf(err, errlen,
                     "algorithms: list only one of HS256/HS384/HS512 with JWT_SECRET "
                     "(it is pinned to one algorithm; give other HS secrets a kid in "
                     "keys_file)");
            return NULL;
        }
        hs = (auth_alg_t)a;
    }
    if (hs == AUTH_ALG_NONE) {
        snprintf(err, errlen,
                 "JWT_SECRET is set but algorithms lists no HS algorithm for it");
        return NULL;
    }
    s = auth_jwks_from_secret(o->hs_secret, o->hs_secret_len, hs);
    if (s == NULL)
        snprintf(err, errlen, "out of memory");
    return s;
}

/* The provider's static keys: JWT_SECRET and/or a JWKS document. */
static int provider_keys(provider_t *p, const auth_jwt_provider_opts_t *o, char *err,
                         size_t errlen)
{
    auth_jwks_t *sec = NULL, *file = NULL;
    char note[256], why[256];
    unsigned skipped = 0;

    if (o->hs_secret != NULL && o->hs_secret_len > 0) {
        sec = secret_keys(o, p->allowed, err, errlen);
        if (sec == NULL)
            return -1;
    }
    if (o->keys_json != NULL) {
        file = auth_jwks_parse(o->keys_json, o->keys_len, p->allowed, &skipped, note,
                               sizeof note, why, sizeof why);
        if (file == NULL) {
            snprintf(err, errlen, "keys_file: %s", why);
            auth_jwks_unref(sec);
            return -1;
        }
        if (skipped > 0)
            log_warn("auth.jwt provider %s: %u JWKS key(s) not used; first: %s", p->name,
                     skipped, note);
    }
    if (sec != NULL && file != NULL) {
        p->keys = auth_jwks_merge(sec, file, why, sizeof why);
        auth_jwks_unref(sec);
        auth_jwks_unref(file);
        if (p->keys == NULL) {
            snprintf(err, errlen, "keys: %s", why);
            return -1;
        }
    } else {
        p->keys = sec != NULL ? sec : file;
    }
    return 0;
}

static int provider_init(provider_t *p, const auth_jwt_provider_opts_t *o, char *err,
                         size_t errlen)
{
    bool ok = true;

    memset(p, 0, sizeof(*p));
    p->name = util_strdup_opt(o->name != NULL ? o->name : "default", &ok);
    p->issuer = util_strdup_opt(o->issuer, &ok);
    if (!ok || !copy_strv(&p->audiences, o->audiences, o->naudiences))
        goto out_oom;
    p->naudiences = o->naudiences;
    p->allowed = alg_mask(o, err, errlen);
    if (p->allowed == 0)
        return -1;
    if (provider_keys(p, o, err, errlen) != 0)
        return -1;
    if (o->jwks_uri != NULL || o->discovery) {
        auth_jwks_src_opts_t so = {
            .name = p->name,
            .jwks_uri = o->jwks_uri,
            .issuer = o->issuer,
            .discovery = o->discovery,
            .ca_file = o->ca_file,
            .allowed = p->allowed,
            .refresh_s = o->refresh_s,
            .min_refresh_s = o->min_refresh_s,
            .max_stale_s = o->max_stale_s,
            .timeout_s = o->fetch_timeout_s,
        };

        if (o->discovery && o->issuer == NULL) {
            snprintf(err, errlen, "discovery needs an issuer");
            return -1;
        }
        p->remote = auth_jwks_src_get(&so);
        if (p->remote == NULL)
            goto out_oom;
        /* discovery then the JWKS, each bounded by the timeout */
        p->wait_ms =
            (o->discovery ? 2 : 1) * (o->fetch_timeout_s ? o->fetch_timeout_s : 5) * 1000 +
            1000;
    }
    p->scopes_claim = util_strdup_opt(o->scopes_claim, &ok);
    p->tier_claim = util_strdup_opt(o->tier_claim, &ok);
    if (!ok)
        goto out_oom;
    p->hdr_claims = calloc(o->nclaim_hdrs + 1, sizeof(char *));
    p->hdr_names = calloc(o->nclaim_hdrs + 1, sizeof(char *));
    if (p->hdr_claims == NULL || p->hdr_names == NULL)
        goto out_oom;
    for (; p->nhdrs < o->nclaim_hdrs; p->nhdrs++)
        if ((p->hdr_claims[p->nhdrs] = strdup(o->claim_hdrs[p->nhdrs].claim)) == NULL ||
            (p->hdr_names[p->nhdrs] = strdup(o->claim_hdrs[p->nhdrs].header)) == NULL) {
            p->nhdrs++;
            goto out_oom;
        }
    return 0;
out_oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Every claim header name once, for forward-auth answers. */
static int collect_hdrs(auth_jwt_t *v)
{
    size_t total = 0;

    for (size_t i = 0; i < v->nproviders; i++)
        total += v->providers[i].nhdrs;
    v->all_hdrs = calloc(total + 1, sizeof(char *));
    if (v->all_hdrs == NULL)
        return -1;
    for (size_t i = 0; i < v->nproviders; i++)
        for (size_t j = 0; j < v->providers[i].nhdrs; j++) {
            const char *name = v->providers[i].hdr_names[j];
            size_t k;

            for (k = 0; k < v->nall_hdrs; k++)
                if (strcasecmp(v->all_hdrs[k], name) == 0)
                    break;
            if (k == v->nall_hdrs)
                v->all_hdrs[v->nall_hdrs++] = name;
        }
    return v->nall_hdrs <= AUTH_JWT_MAX_CLAIM_HDRS ? 0 : 1;
}

/* Two providers may not claim one issuer, nor two take any issuer. */
static int check_issuers(const auth_jwt_t *v, char *err, size_t errlen)
{
    for (size_t i = 0; i < v->nproviders; i++)
        for (size_t j = 0; j < i; j++) {
            const char *a = v->providers[i].issuer, *b = v->providers[j].issuer;

            if ((a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0)) {
                snprintf(err, errlen, "providers %s and %s have the same issuer",
                         v->providers[j].name, v->providers[i].name);
                return -1;
            }
        }
    return 0;
}

auth_jwt_t *auth_jwt_new(const auth_jwt_opts_t *opts, char *err, size_t errlen)
{
    auth_jwt_t *v;
    char why[300];

    if (opts == NULL || opts->nproviders == 0) {
        snprintf(err, errlen, "no JWT provider configured");
        return NULL;
    }
    v = calloc(1, sizeof(*v));
    if (v == NULL ||
        (v->providers = calloc(opts->nproviders, sizeof(provider_t))) == NULL) {
        free(v);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    {
        static atomic_uint_fast64_t next_epoch = 1;

        v->epoch = atomic_fetch_add(&next_epoch, 1);
    }
    v->leeway_s = opts->leeway_s;
    for (; v->nproviders < opts->nproviders; v->nproviders++) {
        const auth_jwt_provider_opts_t *o = &opts->providers[v->nproviders];

        if (provider_init(&v->providers[v->nproviders], o, why, sizeof why) != 0) {
            v->nproviders++;
            if (opts->nproviders > 1 || o->name != NULL)
                snprintf(err, errlen, "provider %s: %s",
                         o->name != NULL ? o->name : "default", why);
            else
                snprintf(err, errlen, "%s", why);
            goto out_free;
        }
    }
    if (check_issuers(v, err, errlen) != 0)
        goto out_free;
    switch (collect_hdrs(v)) {
    case 0:
        break;
    case 1:
        snprintf(err, errlen, "claim_to_headers: more than %d header names in all",
                 AUTH_JWT_MAX_CLAIM_HDRS);
        goto out_free;
    default:
        snprintf(err, errlen, "out of memory");
        goto out_free;
    }
    return v;
out_free:
    auth_jwt_free(v);
    return NULL;
}

const char *const *auth_jwt_claim_headers(const auth_jwt_t *v, size_t *n)
{
    *n = v != NULL ? v->nall_hdrs : 0;
    return v != NULL ? v->all_hdrs : NULL;
}

/* Equal but for ASCII case and one trailing '/' on either side. */
static bool issuer_near(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la > 0 && a[la - 1] == '/')
        la--;
    if (lb > 0 && b[lb - 1] == '/')
        lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

const char *auth_jwt_issuer_near_miss(const auth_jwt_t *v, const char *iss)
{
    const char *near = NULL;

    if (v == NULL || iss == NULL)
        return NULL;
    for (size_t i = 0; i < v->nproviders; i++) {
        const char *p = v->providers[i].issuer;

        if (p == NULL || strcmp(p, iss) == 0)
            return NULL; /* a token of `iss` can be accepted */
        if (near == NULL && issuer_near(p, iss))
            near = p;
    }
    return near;
}

size_t auth_jwt_nproviders(const auth_jwt_t *v)
{
    return v != NULL ? v->nproviders : 0;
}

const char *auth_jwt_provider_name(const auth_jwt_t *v, size_t i)
{
    return v != NULL && i < v->nproviders ? v->providers[i].name : NULL;
}

size_t auth_jwt_provider_keys(const auth_jwt_t *v, size_t i)
{
    return v != NULL && i < v->nproviders ? auth_jwks_count(v->providers[i].keys) : 0;
}

unsigned auth_jwt_max_wait_ms(const auth_jwt_t *v)
{
    unsigned ms = 0;

    for (size_t i = 0; v != NULL && i < v->nproviders; i++)
        if (v->providers[i].wait_ms > ms)
            ms = v->providers[i].wait_ms;
    return ms;
}

/* --- per-thread copies of remote sets ------------------------------------ */

#define LOCAL_SETS 16

struct auth_jwt_local {
    struct {
        uint64_t id, gen; /* source, and the generation `set` is of */
        auth_jwks_t *set; /* one reference; NULL: none loaded */
        bool used;
    } e[LOCAL_SETS];
    unsigned next;     /* round-robin victim */
    tokcache_t *cache; /* verified tokens */
    bool last_hit;     /* the last auth_jwt_verify was answered by the cache */
};

auth_jwt_local_t *auth_jwt_local_new(size_t cache_entries, size_t cache_bytes)
{
    auth_jwt_local_t *l = calloc(1, sizeof(auth_jwt_local_t));

    if (l != NULL && (l->cache = tokcache_new(cache_entries, cache_bytes)) == NULL) {
        free(l);
        l = NULL;
    }
    return l;
}

void auth_jwt_local_free(auth_jwt_local_t *l)
{
    if (l == NULL)
        return;
    for (unsigned i = 0; i < LOCAL_SETS; i++)
        auth_jwks_unref(l->e[i].set);
    tokcache_free(l->cache);
    free(l);
}

bool auth_jwt_local_last_hit(const auth_jwt_local_t *l)
{
    return l != NULL && l->last_hit;
}

size_t auth_jwt_local_cached(const auth_jwt_local_t *l)
{
    return l != NULL ? tokcache_count(l->cache) : 0;
}

/* The keys of `p` to verify with.  Static keys are borrowed; a remote set
 * is borrowed from `loc` (refreshed when its generation moved: one atomic
 * load per call, the mutex once per generation) or, without `loc`, a new
 * reference put in *owned for the caller to drop. */
static const auth_jwks_t *keys_now(const provider_t *p, auth_jwt_local_t *loc,
                                   auth_jwks_t **owned, uint64_t *set_gen)
{
    uint64_t id, gen;
    unsigned i;

    *owned = NULL;
    *set_gen = 0;
    if (p->remote == NULL)
        return p->keys;
    if (loc == NULL)
        return *owned = auth_jwks_src_current(p->remote, set_gen);
    id = auth_jwks_src_id(p->remote);
    gen = auth_jwks_src_gen(p->remote);
    for (i = 0; i < LOCAL_SETS; i++)
        if (loc->e[i].used && loc->e[i].id == id)
            break;
    if (i == LOCAL_SETS) {
        i = loc->next++ % LOCAL_SETS;
        loc->e[i].used = false;
    }
    if (!loc->e[i].used || loc->e[i].gen != gen) {
        auth_jwks_unref(loc->e[i].set);
        loc->e[i].set = auth_jwks_src_current(p->remote, &loc->e[i].gen);
        loc->e[i].id = id;
        loc->e[i].used = true;
    }
    *set_gen = loc->e[i].gen;
    return loc->e[i].set;
}

/* --- token syntax ------------------------------------------------------- */

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

    n = util_b64url_decode(part.p, part.n, buf, sizeof(buf));
    if (n <= 0)
        return NULL;
    obj = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (obj != NULL && !json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
    }
    return obj;
}

/* --- header ------------------------------------------------------------- */

typedef struct token_hdr {
    auth_alg_t alg;
    const char *kid; /* NULL = none; lives as long as the header object */
    size_t kidlen;
    bool libjwt_ok; /* typ absent or JWT: libjwt 1.x accepts it */
} token_hdr_t;

/* typ: absent, "JWT" or RFC 9068's "at+jwt" (either with "application/"). */
static bool typ_ok(const json_t *typ, bool *plain_jwt)
{
    const char *t;

    *plain_jwt = typ == NULL;
    if (typ == NULL)
        return true;
    if (!json_is_string(typ))
        return false;
    t = json_string_value(typ);
    if (strncasecmp(t, "application/", 12) == 0)
        t += 12;
    *plain_jwt = strcasecmp(t, "JWT") == 0;
    return *plain_jwt || strcasecmp(t, "at+jwt") == 0;
}

/* alg known, crit refused, kid bounded, typ checked; jku, x5u, x5c and jwk
 * are ignored (never fetched, never trusted). */
static auth_jwt_status_t check_header(const json_t *hdr, token_hdr_t *th)
{
    const json_t *alg = json_object_get(hdr, "alg");
    const json_t *kid = json_object_get(hdr, "kid");

    memset(th, 0, sizeof(*th));
    if (!json_is_string(alg))
        return AUTH_JWT_BAD_ALG;
    th->alg = auth_alg_from_name(json_string_value(alg));
    if (th->alg == AUTH_ALG_NONE)
        return AUTH_JWT_BAD_ALG; /* none, or unknown */
    if (json_object_get(hdr, "crit") != NULL)
        return AUTH_JWT_CRIT;
    if (kid != NULL) {
        if (!json_is_string(kid))
            return AUTH_JWT_MALFORMED;
        if (json_string_length(kid) > AUTH_JWT_MAX_KID_LEN)
            return AUTH_JWT_UNKNOWN_KID;
        th->kid = json_string_value(kid);
        th->kidlen = json_string_length(kid);
    }
    if (!typ_ok(json_object_get(hdr, "typ"), &th->libjwt_ok))
        return AUTH_JWT_BAD_TYP;
    return AUTH_JWT_OK;
}

/* --- provider and key ----------------------------------------------------- */

/* The provider of `iss`: the one naming it, else the one taking any. */
static const provider_t *find_provider(const auth_jwt_t *v, const json_t *claims)
{
    const json_t *iss = json_object_get(claims, "iss");
    const provider_t *any = NULL;

    for (size_t i = 0; i < v->nproviders; i++) {
        const provider_t *p = &v->providers[i];

        if (p->issuer == NULL)
            any = p;
        else if (json_is_string(iss) && strcmp(json_string_value(iss), p->issuer) == 0)
            return p;
    }
    return any;
}

/* The signature over "header.payload" with the key the token names. */
static auth_jwt_status_t check_signature(const provider_t *p, const auth_jwks_t *keys,
                                         const token_hdr_t *th, const char *tok, span_t sig)
{
    unsigned char raw[AUTH_JWS_MAX_SIG];
    const auth_jwk_t *k;
    long n;

    if (!(p->allowed & (1u << th->alg)))
        return AUTH_JWT_BAD_ALG;
    if (auth_jwks_count(keys) == 0)
        return AUTH_JWT_NO_KEYS;
    k = auth_jwks_find(keys, th->kid, th->kidlen, th->alg);
    if (k == NULL)
        return AUTH_JWT_UNKNOWN_KID;
    if (auth_jwk_alg(k) != th->alg)
        return AUTH_JWT_BAD_ALG; /* e.g. an HS token naming an RSA key */
    n = util_b64url_decode(sig.p, sig.n, raw, sizeof raw);
    if (n <= 0 || !auth_jwk_verify(k, (const unsigned char *)tok, (size_t)(sig.p - 1 - tok),
                                   raw, (size_t)n))
        return AUTH_JWT_BAD_SIGNATURE;
    return AUTH_JWT_OK;
}

/* Belt and braces for HS tokens libjwt understands: it decodes WITH the
 * key the verifier chose and must agree on the alg. */
static auth_jwt_status_t check_libjwt(const auth_jwks_t *keys, const token_hdr_t *th,
                                      const char *tok, size_t len)
{
    char buf[AUTH_JWT_MAX_LEN + 1];
    const auth_jwk_t *k = auth_jwks_find(keys, th->kid, th->kidlen, th->alg);
    const unsigned char *secret;
    size_t slen;
    jwt_t *jwt = NULL;
    auth_jwt_status_t st = AUTH_JWT_OK;

    if (!auth_alg_is_hs(th->alg) || !th->libjwt_ok || k == NULL ||
        (secret = auth_jwk_secret(k, &slen)) == NULL)
        return AUTH_JWT_OK;
    memcpy(buf, tok, len);
    buf[len] = '\0';
    if (jwt_decode(&jwt, buf, secret, (int)slen) != 0 || jwt == NULL)
        st = AUTH_JWT_BAD_SIGNATURE;
    else if (strcmp(jwt_alg_str(jwt_get_alg(jwt)), auth_alg_name(th->alg)) != 0)
        st = AUTH_JWT_BAD_ALG;
    jwt_free(jwt);
    OPENSSL_cleanse(buf, len);
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

static bool aud_has(const json_t *aud, const char *want)
{
    const json_t *one;
    size_t i;

    if (json_str_eq(aud, want))
        return true;
    json_array_foreach(aud, i, one) if (json_str_eq(one, want)) return true;
    return false;
}

/* One of the provider's audiences must be in `aud` (a string or an array). */
static auth_jwt_status_t check_aud(const provider_t *p, const json_t *claims)
{
    const json_t *aud = json_object_get(claims, "aud");

    if (p->naudiences == 0)
        return AUTH_JWT_OK;
    for (size_t i = 0; i < p->naudiences; i++)
        if (aud_has(aud, p->audiences[i]))
            return AUTH_JWT_OK;
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

/* Scopes from the configured claim, else the first present of scope, scp
 * and scopes (each a space-separated string or an array of strings). */
static int scopes_of(const provider_t *p, const json_t *claims, auth_identity_t *out)
{
    static const char *const names[] = {"scope", "scp", "scopes"};

    if (p->scopes_claim != NULL)
        return fill_scopes(json_object_get(claims, p->scopes_claim), out);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const json_t *sc = json_object_get(claims, names[i]);

        if (sc != NULL)
            return fill_scopes(sc, out);
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

/* claim_to_headers: strings, numbers and booleans of at most
 * JWT_MAX_HDR_VALUE bytes with no control byte are copied; anything else
 * (CR, LF, NUL, objects, arrays, over-long) is left out, never cut. */
static int claim_hdrs(const provider_t *p, const auth_identity_t *id, auth_identity_t *out)
{
    char buf[64];

    if (p->nhdrs == 0)
        return 0;
    out->hdrs = calloc(p->nhdrs, sizeof(*out->hdrs));
    if (out->hdrs == NULL)
        return -1;
    for (size_t i = 0; i < p->nhdrs; i++) {
        const char *val = auth_identity_claim(id, p->hdr_claims[i], buf, sizeof buf);
        const json_t *j = json_object_get(id->claims, p->hdr_claims[i]);
        auth_hdr_t *h = &out->hdrs[out->nhdrs];

        /* the whole value, not up to an embedded NUL */
        if (val == NULL || (json_is_string(j) && json_string_length(j) != strlen(val)) ||
            !clean_str(val, strlen(val), JWT_MAX_HDR_VALUE, false))
            continue;
        h->name = strdup(p->hdr_names[i]);
        h->value = strdup(val);
        out->nhdrs++;
        if (h->name == NULL || h->value == NULL)
            return -1;
    }
    return 0;
}

/* sub, scopes, tier, jti and claim headers into out.  Out of memory also
 * answers MALFORMED: the request fails closed either way. */
static auth_jwt_status_t fill_identity(const provider_t *p, json_t *claims,
                                       auth_identity_t *out)
{
    const json_t *sub = json_object_get(claims, "sub");
    auth_identity_t view = {.claims = claims};

    if (!json_is_string(sub) ||
        !clean_str(json_string_value(sub), json_string_length(sub), AUTH_MAX_ID_LEN, false))
        return AUTH_JWT_MALFORMED;
    out->kind = AUTH_KIND_JWT;
    out->client_id = strdup(json_string_value(sub));
    out->subject = strdup(json_string_value(sub));
    if (out->client_id == NULL || out->subject == NULL)
        return AUTH_JWT_MALFORMED;
    if (scopes_of(p, claims, out) != 0 ||
        optional_str(claims, p->tier_claim, JWT_MAX_TIER_LEN, &out->tier) != 0 ||
        optional_str(claims, "jti", JWT_MAX_JTI_LEN, &out->jti) != 0 ||
        claim_hdrs(p, &view, out) != 0)
        return AUTH_JWT_MALFORMED;
    return AUTH_JWT_OK;
}

/* --- verify ------------------------------------------------------------- */

/* Syntax and header: *claims is the (not yet trusted) payload on OK. */
static auth_jwt_status_t parse_token(const char *token, size_t len, span_t part[3],
                                     token_hdr_t *th, json_t **hdr, json_t **claims)
{
    auth_jwt_status_t st;

    *hdr = *claims = NULL;
    if (len > AUTH_JWT_MAX_LEN)
        return AUTH_JWT_TOO_LARGE;
    if (len == 0 || memchr(token, '\0', len) != NULL || !split_token(token, len, part))
        return AUTH_JWT_MALFORMED;
    *hdr = parse_object_part(part[0]);
    if (*hdr == NULL)
        return AUTH_JWT_MALFORMED;
    st = check_header(*hdr, th);
    if (st != AUTH_JWT_OK)
        return st;
    *claims = parse_object_part(part[1]);
    return *claims != NULL ? AUTH_JWT_OK : AUTH_JWT_MALFORMED;
}

/* A remote provider without the key the token names in its set of
 * generation `gen`: a fetch that may bring it is asked for (at most once per
 * min_refresh_interval); wait for it when one runs, or look again when one
 * ended since that set was taken. */
static auth_jwt_status_t maybe_pending(const provider_t *p, uint64_t gen,
                                       auth_jwt_status_t st)
{
    if (p->remote == NULL || (st != AUTH_JWT_UNKNOWN_KID && st != AUTH_JWT_NO_KEYS))
        return st;
    if (st == AUTH_JWT_UNKNOWN_KID)
        return auth_jwks_src_refetch(p->remote, gen) ? AUTH_JWT_KEYS_PENDING : st;
    return auth_jwks_src_busy(p->remote, gen) ? AUTH_JWT_KEYS_PENDING : st;
}

/* A token verified before, by this verifier, with the same generation of
 * its provider's keys, not yet expired: its identity, copied into out. */
static bool cache_hit(const auth_jwt_t *v, auth_jwt_local_t *loc, const unsigned char *dg,
                      int64_t now, auth_identity_t *out)
{
    const void *tag = NULL;
    uint64_t gen = 0;
    const auth_identity_t *id = tokcache_get(loc->cache, dg, v->epoch, now, &tag, &gen);
    const provider_t *p = tag;

    if (id == NULL)
        return false;
    if (p->remote != NULL && auth_jwks_src_gen(p->remote) != gen) {
        tokcache_del(loc->cache, dg); /* the set changed: verify again */
        return false;
    }
    return auth_identity_copy(out, id) == 0;
}

/* The whole check, without the cache. */
static auth_jwt_status_t verify_full(const auth_jwt_t *v, auth_jwt_local_t *loc,
                                     const char *token, size_t len, int64_t now,
                                     auth_identity_t *out, const provider_t **pp,
                                     uint64_t *set_gen)
{
    span_t part[3];
    token_hdr_t th;
    json_t *hdr, *claims;
    const provider_t *p = NULL;
    const auth_jwks_t *keys = NULL;
    auth_jwks_t *owned = NULL;
    auth_jwt_status_t st;

    st = parse_token(token, len, part, &th, &hdr, &claims);
    if (st == AUTH_JWT_OK && (p = find_provider(v, claims)) == NULL)
        st = AUTH_JWT_BAD_ISSUER;
    if (st == AUTH_JWT_OK) {
        keys = keys_now(p, loc, &owned, set_gen);
        st = maybe_pending(p, *set_gen, check_signature(p, keys, &th, token, part[2]));
    }
    /* From here on the payload is the issuer's. */
    if (st == AUTH_JWT_OK)
        st = check_libjwt(keys, &th, token, len);
    auth_jwks_unref(owned);
    if (st == AUTH_JWT_OK)
        st = check_times(v, claims, now, out);
    if (st == AUTH_JWT_OK)
        st = check_aud(p, claims);
    if (st == AUTH_JWT_OK)
        st = fill_identity(p, claims, out);
    json_decref(hdr);
    if (st != AUTH_JWT_OK) {
        json_decref(claims);
        auth_identity_clear(out);
        return st;
    }
    out->claims = claims;
    *pp = p;
    return AUTH_JWT_OK;
}

auth_jwt_status_t auth_jwt_verify(const auth_jwt_t *v, auth_jwt_local_t *loc,
                                  const char *token, size_t len, int64_t now,
                                  auth_identity_t *out)
{
    unsigned char dg[SHA256_DIGEST_LENGTH];
    const provider_t *p = NULL;
    uint64_t set_gen = 0;
    bool cached = loc != NULL && len <= AUTH_JWT_MAX_LEN && token != NULL && v != NULL;
    auth_jwt_status_t st;

    memset(out, 0, sizeof(*out));
    if (loc != NULL)
        loc->last_hit = false;
    if (v == NULL || token == NULL)
        return AUTH_JWT_MALFORMED;
    if (cached && util_sha256(token, len, dg) != 0)
        cached = false; /* out of memory: verify without the cache */
    if (cached) {
        if (cache_hit(v, loc, dg, now, out)) {
            loc->last_hit = true;
            return AUTH_JWT_OK;
        }
    }
    st = verify_full(v, loc, token, len, now, out, &p, &set_gen);
    /* Cached until exp (+ leeway, as check_times) and, through epoch and
     * gen, only while this verifier and this key set are current. */
    if (st == AUTH_JWT_OK && cached)
        tokcache_put(loc->cache, dg, v->epoch, p, set_gen, out->exp + v->leeway_s, out,
                     3 * len);
    return st;
}
