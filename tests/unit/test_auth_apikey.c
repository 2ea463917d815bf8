/* test_auth_apikey.c — key file parser, store lookup, add_plain, gen-key. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "../../auth/apikey_internal.h"
#include "tollgate/auth_apikey.h"
#include "unit.h"

#define GOOD "fixtures/apikeys-good.txt"
#define HEX_A "ceb15812dae70901112a68d1f299b19686a7920b4d87be828d389add11d418f2"
#define HEX_B "cfed70034a4a7c7d4fbf6284f173bfaa7e8f8bab4bde647b50e24b1b343b1b9b"

static const char *lookup_id(const auth_keystore_t *ks, const char *key)
{
    const auth_apikey_t *k = auth_keystore_lookup(ks, key, strlen(key));

    return k != NULL ? k->id : NULL;
}

static void test_load_good_file(void)
{
    auth_keystore_t *ks = auth_keystore_new();
    const auth_apikey_t *k;
    char err[256] = "";

    CU_ASSERT_EQUAL_FATAL(auth_keystore_load_file(ks, GOOD, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(auth_keystore_count(ks), 4);
    k = auth_keystore_lookup(ks, "alpha-secret-key-0001", 21);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_STRING_EQUAL(k->id, "orders-svc");
    CU_ASSERT_EQUAL_FATAL(k->nscopes, 2);
    CU_ASSERT_STRING_EQUAL(k->scopes[0], "nl-query:read");
    CU_ASSERT_STRING_EQUAL(k->scopes[1], "schema:read");
    CU_ASSERT_STRING_EQUAL(k->tier, "gold");
    k = auth_keystore_lookup(ks, "beta-secret-key-0002", 20);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_STRING_EQUAL(k->id, "billing@prod");
    CU_ASSERT_EQUAL(k->nscopes, 0);
    CU_ASSERT_PTR_NULL(k->tier);
    k = auth_keystore_lookup(ks, "gamma-secret-key-0003", 21);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_STRING_EQUAL(k->id, "reports.v2");
    CU_ASSERT_STRING_EQUAL(k->tier, "silver");
    CU_ASSERT_EQUAL(k->nscopes, 1);
    k = auth_keystore_lookup(ks, "delta-secret-key-0004", 21);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_STRING_EQUAL(k->id, "ops:admin");
    CU_ASSERT_EQUAL_FATAL(k->nscopes, 1);
    CU_ASSERT_STRING_EQUAL(k->scopes[0], "admin/write");
    auth_keystore_free(ks);
}

static void expect_load_error(const char *path, const char *want)
{
    auth_keystore_t *ks = auth_keystore_new();
    char err[512] = "";

    CU_ASSERT_EQUAL(auth_keystore_load_file(ks, path, err, sizeof(err)), -1);
    if (strstr(err, want) == NULL)
        fprintf(stderr, "\n  got \"%s\", want \"%s\"\n", err, want);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
    auth_keystore_free(ks);
}

static void test_load_errors_carry_line(void)
{
    expect_load_error("fixtures/apikeys-dup-digest.txt",
                      "fixtures/apikeys-dup-digest.txt:2: duplicate digest");
    expect_load_error("fixtures/apikeys-bad-scope.txt",
                      "fixtures/apikeys-bad-scope.txt:3: bad scope");
    expect_load_error("fixtures/no-such-file.txt",
                      "fixtures/no-such-file.txt: cannot open");
}

static const struct {
    const char *line;
    const char *want; /* prefix of the message after "f:7: " */
} bad_lines[] = {
    {"bad/id " HEX_A, "bad id"},
    {"b\xc3\xa9 " HEX_A, "bad id"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa " HEX_A,
     "bad id"},
    {"onlyid", "digest must be 64 hex digits"},
    {"id ceb15812", "digest must be 64 hex digits"},
    {"id " HEX_A "0", "digest must be 64 hex digits"},
    {"id zeb15812dae70901112a68d1f299b19686a7920b4d87be828d389add11d418f2",
     "digest must be"},
    {"id " HEX_A " owner=me", "unknown attribute"},
    {"id " HEX_A " tg_SECRETSECRETSECRET", "unknown attribute"},
    {"id " HEX_A " scopes=a:read scopes=b:read", "duplicate attribute scopes="},
    {"id " HEX_A " tier=a tier=b", "duplicate attribute tier="},
    {"id " HEX_A " scopes=a,,b", "bad scope"},
    {"id " HEX_A " scopes=a;b", "bad scope"},
    {"id " HEX_A " scopes=a,", "bad scope"},
    {"id " HEX_A " tier=", "bad tier"},
    {"id " HEX_A " tier=g*ld", "bad tier"},
    {"id " HEX_A " scopes=a tier=b deprecated not_after=2030-01-01T00:00:00Z extra",
     "too many fields"},
    {"id " HEX_A " not_after=2030-01-01", "bad not_after"},
    {"id " HEX_A " not_after=2030-01-01T00:00:00+00:00", "bad not_after"},
    {"id " HEX_A " not_after=2030-01-01T00:00:00.5Z", "bad not_after"},
    {"id " HEX_A " not_after=2030-02-30T00:00:00Z", "bad not_after"},
    {"id " HEX_A " not_after=2031-02-29T00:00:00Z", "bad not_after"},
    {"id " HEX_A " not_after=2030-13-01T00:00:00Z", "bad not_after"},
    {"id " HEX_A " not_after=2030-01-01T24:00:00Z", "bad not_after"},
    {"id " HEX_A " not_after=1969-12-31T23:59:59Z", "bad not_after"},
    {"id " HEX_A " not_after=1970-01-01T00:00:00Z", "bad not_after"},
    {"id " HEX_A " not_after=+030-01-01T00:00:00Z", "bad not_after"},
    {"id " HEX_A " not_after=1700000000", "bad not_after"},
    {"id " HEX_A " not_after=", "bad not_after"},
    {"id " HEX_A " not_after=2030-01-01T00:00:00Z not_after=2031-01-01T00:00:00Z",
     "duplicate attribute not_after="},
    {"id " HEX_A " scopes=a tier=b extra", "unknown attribute in field 5"},
    {"id " HEX_A " deprecated deprecated", "duplicate attribute deprecated"},
};

static void test_line_errors(void)
{
    char err[512], want[256];
    size_t i;

    for (i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
        auth_keystore_t *ks = auth_keystore_new();

        err[0] = '\0';
        snprintf(want, sizeof(want), "f:7: %s", bad_lines[i].want);
        CU_ASSERT_EQUAL(
            auth_keystore_add_line(ks, bad_lines[i].line, "f:7", err, sizeof(err)), -1);
        if (strncmp(err, want, strlen(want)) != 0)
            fprintf(stderr, "\n  line %zu: got \"%s\", want \"%s\"\n", i, err, want);
        CU_ASSERT_EQUAL(strncmp(err, want, strlen(want)), 0);
        /* Never echo key material or the digest. */
        CU_ASSERT_PTR_NULL(strstr(err, "SECRET"));
        CU_ASSERT_PTR_NULL(strstr(err, "ceb15812"));
        CU_ASSERT_EQUAL(auth_keystore_count(ks), 0);
        auth_keystore_free(ks);
    }
}

static void test_blank_and_comment_lines(void)
{
    auth_keystore_t *ks = auth_keystore_new();
    char err[128];

    CU_ASSERT_EQUAL(auth_keystore_add_line(ks, "", "f:1", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(auth_keystore_add_line(ks, "   \t ", "f:2", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(auth_keystore_add_line(ks, "# id " HEX_A, "f:3", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(
        auth_keystore_add_line(ks, "x " HEX_A "# trailing", "f:4", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(auth_keystore_count(ks), 1);
    CU_ASSERT_STRING_EQUAL(lookup_id(ks, "alpha-secret-key-0001"), "x");
    auth_keystore_free(ks);
}

static void test_lookup_hit_miss_too_long(void)
{
    auth_keystore_t *ks = auth_keystore_new();
    char err[128], big[AUTH_APIKEY_MAX_LEN + 2];

    CU_ASSERT_EQUAL_FATAL(auth_keystore_add_line(ks, "a " HEX_A, NULL, err, sizeof(err)),
                          0);
    CU_ASSERT_STRING_EQUAL(lookup_id(ks, "alpha-secret-key-0001"), "a");
    CU_ASSERT_PTR_NULL(lookup_id(ks, "alpha-secret-key-0002"));
    CU_ASSERT_PTR_NULL(lookup_id(ks, "alpha-secret-key-000"));
    CU_ASSERT_PTR_NULL(auth_keystore_lookup(ks, "", 0));
    CU_ASSERT_PTR_NULL(auth_keystore_lookup(ks, NULL, 5));
    /* a prefix of a stored key is not the key */
    CU_ASSERT_PTR_NULL(auth_keystore_lookup(ks, "alpha-secret-key-0001", 20));

    memset(big, 'k', sizeof(big));
    CU_ASSERT_EQUAL(auth_keystore_add_plain(ks, big, AUTH_APIKEY_MAX_LEN, err, sizeof(err)),
                    0);
    CU_ASSERT_PTR_NOT_NULL(auth_keystore_lookup(ks, big, AUTH_APIKEY_MAX_LEN));
    CU_ASSERT_PTR_NULL(auth_keystore_lookup(ks, big, AUTH_APIKEY_MAX_LEN + 1));
    CU_ASSERT_EQUAL(
        auth_keystore_add_plain(ks, big, AUTH_APIKEY_MAX_LEN + 1, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NULL(strstr(err, "kkkk"));
    auth_keystore_free(ks);

    CU_ASSERT_PTR_NULL(auth_keystore_lookup(NULL, "x", 1));
    ks = auth_keystore_new();
    CU_ASSERT_PTR_NULL(lookup_id(ks, "alpha-secret-key-0001")); /* empty store */
    auth_keystore_free(ks);
}

static unsigned ct_calls;

static int counting_memcmp(const void *a, const void *b, size_t n)
{
    ct_calls++;
    CU_ASSERT_EQUAL(n, 32);
    return CRYPTO_memcmp(a, b, n);
}

static void test_constant_time_path(void)
{
    auth_keystore_t *ks = auth_keystore_new();
    char err[128];

    CU_ASSERT_PTR_EQUAL(auth_apikey_memcmp, CRYPTO_memcmp);
    CU_ASSERT_EQUAL_FATAL(auth_keystore_load_file(ks, GOOD, err, sizeof(err)), 0);
    auth_apikey_memcmp = counting_memcmp;
    ct_calls = 0;
    CU_ASSERT_PTR_NOT_NULL(lookup_id(ks, "gamma-secret-key-0003"));
    CU_ASSERT(ct_calls >= 1);
    auth_apikey_memcmp = CRYPTO_memcmp;
    auth_keystore_free(ks);
}

static void test_many_keys(void)
{
    auth_keystore_t *ks = auth_keystore_new();
    char key[32], err[128];
    int i, hits = 0;

    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "many-%d", i);
        CU_ASSERT_EQUAL(auth_keystore_add_plain(ks, key, strlen(key), err, sizeof(err)), 0);
    }
    CU_ASSERT_EQUAL(auth_keystore_count(ks), 1000);
    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "many-%d", i);
        hits += lookup_id(ks, key) != NULL;
    }
    CU_ASSERT_EQUAL(hits, 1000);
    CU_ASSERT_PTR_NULL(lookup_id(ks, "many-1000"));
    auth_keystore_free(ks);
}

static void test_add_plain_id(void)
{
    auth_keystore_t *ks = auth_keystore_new();
    unsigned char d[32];
    char want[16], err[128];
    const auth_apikey_t *k;

    SHA256((const unsigned char *)"my-plain-key", 12, d);
    snprintf(want, sizeof(want), "key-%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
    CU_ASSERT_EQUAL_FATAL(auth_keystore_add_plain(ks, "my-plain-key", 12, err, sizeof(err)),
                          0);
    k = auth_keystore_lookup(ks, "my-plain-key", 12);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_STRING_EQUAL(k->id, want);
    CU_ASSERT_EQUAL(k->nscopes, 0);
    CU_ASSERT_PTR_NULL(k->tier);
    CU_ASSERT_EQUAL(memcmp(k->sha256, d, 32), 0);
    /* the same key twice is refused, without echoing it */
    CU_ASSERT_EQUAL(auth_keystore_add_plain(ks, "my-plain-key", 12, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "duplicate"));
    CU_ASSERT_PTR_NULL(strstr(err, "my-plain-key"));
    CU_ASSERT_EQUAL(auth_keystore_add_plain(ks, "", 0, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(auth_keystore_count(ks), 1);
    auth_keystore_free(ks);
}

static void test_identity_from_key(void)
{
    auth_keystore_t *ks = auth_keystore_new();
    auth_identity_t id;
    char err[128];

    CU_ASSERT_EQUAL_FATAL(auth_keystore_load_file(ks, GOOD, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL_FATAL(
        auth_apikey_identity(auth_keystore_lookup(ks, "alpha-secret-key-0001", 21), &id),
        0);
    CU_ASSERT_EQUAL(id.kind, AUTH_KIND_API_KEY);
    CU_ASSERT_STRING_EQUAL(id.client_id, "orders-svc");
    CU_ASSERT_STRING_EQUAL(id.subject, "orders-svc");
    CU_ASSERT_STRING_EQUAL(id.tier, "gold");
    CU_ASSERT_EQUAL(id.nscopes, 2);
    CU_ASSERT_PTR_NULL(id.jti);
    CU_ASSERT_PTR_NULL(id.claims);
    auth_identity_clear(&id);
    auth_keystore_free(ks);
}

static bool is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

static void test_generate(void)
{
    char keys[50][64], small[46];
    int i, j, bad = 0, dup = 0;
    size_t k;

    for (i = 0; i < 50; i++) {
        CU_ASSERT_EQUAL_FATAL(auth_apikey_generate(keys[i], sizeof(keys[i])), 0);
        CU_ASSERT_EQUAL(strlen(keys[i]), 46);
        CU_ASSERT_EQUAL(strncmp(keys[i], "tg_", 3), 0);
        for (k = 3; k < strlen(keys[i]); k++)
            bad += !is_b64url(keys[i][k]);
        for (j = 0; j < i; j++)
            dup += strcmp(keys[i], keys[j]) == 0;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(dup, 0);
    CU_ASSERT_EQUAL(auth_apikey_generate(small, sizeof(small)), -1);
}

static void test_format_line_round_trip(void)
{
    auth_keystore_t *ks = auth_keystore_new();
    char key[64], line[512], err[128];
    const auth_apikey_t *k;

    CU_ASSERT_EQUAL_FATAL(auth_apikey_generate(key, sizeof(key)), 0);
    CU_ASSERT_EQUAL_FATAL(auth_apikey_format_line("orders-svc", key, "a:read,b:write",
                                                  "gold", line, sizeof(line)),
                          0);
    CU_ASSERT_PTR_NULL(strstr(line, key));
    CU_ASSERT_EQUAL_FATAL(auth_keystore_add_line(ks, line, "gen", err, sizeof(err)), 0);
    k = auth_keystore_lookup(ks, key, strlen(key));
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_STRING_EQUAL(k->id, "orders-svc");
    CU_ASSERT_EQUAL(k->nscopes, 2);
    CU_ASSERT_STRING_EQUAL(k->tier, "gold");

    CU_ASSERT_EQUAL(auth_apikey_format_line("plain", "alpha-secret-key-0001", NULL, NULL,
                                            line, sizeof(line)),
                    0);
    CU_ASSERT_STRING_EQUAL(line, "plain " HEX_A);
    CU_ASSERT_EQUAL(auth_apikey_format_line("bad id", key, NULL, NULL, line, sizeof(line)),
                    -1);
    CU_ASSERT_EQUAL(auth_apikey_format_line("", key, NULL, NULL, line, sizeof(line)), -1);
    CU_ASSERT_EQUAL(auth_apikey_format_line("ok", key, "a b", NULL, line, sizeof(line)),
                    -1);
    CU_ASSERT_EQUAL(auth_apikey_format_line("ok", key, NULL, "t t", line, sizeof(line)),
                    -1);
    CU_ASSERT_EQUAL(auth_apikey_format_line("ok", key, NULL, NULL, line, 40), -1);
    auth_keystore_free(ks);
}

static void test_free_null(void)
{
    auth_keystore_free(NULL);
    CU_ASSERT_EQUAL(auth_keystore_count(NULL), 0);
}

/* The same id twice is a rotation; the same key twice (any id) is refused. */
static void test_dup_id_via_lines(void)
{
    auth_keystore_t *ks = auth_keystore_new();
    char err[128];

    CU_ASSERT_EQUAL(auth_keystore_add_line(ks, "a " HEX_A, "f:1", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(auth_keystore_add_line(ks, "a " HEX_B, "f:2", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(auth_keystore_add_line(ks, "b " HEX_A, "f:3", err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(strncmp(err, "f:3: duplicate digest", 21), 0);
    CU_ASSERT_EQUAL(auth_keystore_add_line(ks, "a " HEX_A, "f:4", err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(strncmp(err, "f:4: duplicate digest", 21), 0);
    CU_ASSERT_EQUAL(auth_keystore_count(ks), 2);
    auth_keystore_free(ks);
}

/* The dup-id fixture: `a` has two keys, both found, one identity. */
static void test_rotation_file(void)
{
    auth_keystore_t *ks = auth_keystore_new();
    const auth_apikey_t *k;
    char err[256] = "";
    size_t n = 0;

    CU_ASSERT_EQUAL_FATAL(
        auth_keystore_load_file(ks, "fixtures/apikeys-dup-id.txt", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(auth_keystore_count(ks), 3);
    for (k = auth_keystore_find_id(ks, "a"); k != NULL; k = auth_keystore_next_of_id(ks, k)) {
        CU_ASSERT_STRING_EQUAL(k->id, "a");
        n++;
    }
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_PTR_NULL(auth_keystore_next_of_id(ks, auth_keystore_find_id(ks, "b")));
    auth_keystore_free(ks);
}

/* Several keys per id, each with its own not_after; both found by their
 * own key, one client id; the expiry is the key's, not the id's. */
static void test_rotation_not_after(void)
{
    auth_keystore_t *ks = auth_keystore_new();
    const auth_apikey_t *old, *cur;
    auth_identity_t id1, id2;
    char line[512], err[256];

    CU_ASSERT_EQUAL_FATAL(auth_apikey_format_line("alice", "old-key-of-alice-000001",
                                                  "a:read", "gold", line, sizeof line),
                          0);
    strcat(line, " not_after=2026-01-02T03:04:05Z");
    CU_ASSERT_EQUAL_FATAL(auth_keystore_add_line(ks, line, "f:1", err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(auth_apikey_format_line("alice", "new-key-of-alice-000002",
                                                  "a:read", "gold", line, sizeof line),
                          0);
    CU_ASSERT_EQUAL_FATAL(auth_keystore_add_line(ks, line, "f:2", err, sizeof err), 0);
    old = auth_keystore_lookup(ks, "old-key-of-alice-000001", 23);
    cur = auth_keystore_lookup(ks, "new-key-of-alice-000002", 23);
    CU_ASSERT_PTR_NOT_NULL_FATAL(old);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cur);
    CU_ASSERT_PTR_NOT_EQUAL(old, cur);
    CU_ASSERT_EQUAL(old->not_after, 1767323045); /* date -d 2026-01-02T03:04:05Z +%s */
    CU_ASSERT_EQUAL(cur->not_after, 0);
    CU_ASSERT_FALSE(auth_apikey_expired(old, 1767323045));
    CU_ASSERT_TRUE(auth_apikey_expired(old, 1767323046));
    CU_ASSERT_FALSE(auth_apikey_expired(cur, INT64_MAX));
    CU_ASSERT_EQUAL_FATAL(auth_apikey_identity(old, &id1), 0);
    CU_ASSERT_EQUAL_FATAL(auth_apikey_identity(cur, &id2), 0);
    CU_ASSERT_STRING_EQUAL(id1.client_id, id2.client_id);
    CU_ASSERT_NOT_EQUAL(memcmp(id1.key_sha256, id2.key_sha256, 32), 0);
    CU_ASSERT_PTR_EQUAL(auth_keystore_find_digest(ks, id1.key_sha256), old);
    CU_ASSERT_PTR_EQUAL(auth_keystore_find_digest(ks, id2.key_sha256), cur);
    auth_identity_clear(&id1);
    auth_identity_clear(&id2);
    auth_keystore_free(ks);
}

static void test_parse_time(void)
{
    int64_t t = -1;

    CU_ASSERT_EQUAL(auth_apikey_parse_time("1970-01-01T00:00:01Z", 20, &t), 0);
    CU_ASSERT_EQUAL(t, 1);
    CU_ASSERT_EQUAL(auth_apikey_parse_time("2000-02-29T12:00:00Z", 20, &t), 0);
    CU_ASSERT_EQUAL(t, 951825600);
    CU_ASSERT_EQUAL(auth_apikey_parse_time("2100-02-29T12:00:00Z", 20, &t), -1);
    CU_ASSERT_EQUAL(auth_apikey_parse_time("9999-12-31T23:59:59Z", 20, &t), 0);
    CU_ASSERT_EQUAL(t, 253402300799);
    CU_ASSERT_EQUAL(auth_apikey_parse_time("2030-01-01T00:00:00Z", 19, &t), -1);
}

/* secrets_version's input: the same keys in any order, the same value;
 * one key more or less, another. */
static void test_fingerprint(void)
{
    auth_keystore_t *a = auth_keystore_new(), *b = auth_keystore_new(),
                    *e = auth_keystore_new();
    unsigned char fa[32], fb[32], fe[32];
    char err[128];

    auth_keystore_add_line(a, "x " HEX_A, "f:1", err, sizeof err);
    auth_keystore_add_line(a, "y " HEX_B, "f:2", err, sizeof err);
    auth_keystore_add_line(b, "y " HEX_B, "f:1", err, sizeof err);
    auth_keystore_add_line(b, "x " HEX_A, "f:2", err, sizeof err);
    CU_ASSERT_EQUAL(auth_keystore_fingerprint(a, fa), 0);
    CU_ASSERT_EQUAL(auth_keystore_fingerprint(b, fb), 0);
    CU_ASSERT_EQUAL(auth_keystore_fingerprint(e, fe), 0);
    CU_ASSERT_EQUAL(memcmp(fa, fb, 32), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(fa, fe, 32), 0);
    auth_keystore_free(a);
    auth_keystore_free(b);
    auth_keystore_free(e);
}

static const unit_test_t tests[] = {
    {"load good file", test_load_good_file},
    {"file errors carry PATH:LINE", test_load_errors_carry_line},
    {"line errors", test_line_errors},
    {"blank and comment lines", test_blank_and_comment_lines},
    {"lookup hit, miss, too long", test_lookup_hit_miss_too_long},
    {"constant-time compare used", test_constant_time_path},
    {"1000 keys", test_many_keys},
    {"add_plain id spelling", test_add_plain_id},
    {"identity from key", test_identity_from_key},
    {"gen-key format and uniqueness", test_generate},
    {"format_line round trip", test_format_line_round_trip},
    {"free(NULL)", test_free_null},
    {"same id twice ok, same key twice refused", test_dup_id_via_lines},
    {"rotation key file", test_rotation_file},
    {"rotation: not_after per key", test_rotation_not_after},
    {"not_after time syntax", test_parse_time},
    {"keystore fingerprint", test_fingerprint},
    {NULL, NULL},
};

int test_auth_apikey_add(void)
{
    return unit_add_suite("auth_apikey", tests);
}
