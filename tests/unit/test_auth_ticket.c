/* test_auth_ticket.c — one-time tickets: the stored identity, and the
 * credential it stands for checked again when the ticket is used (a key
 * removed or rotated out of the key file, an expired or revoked JWT). */
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "tollgate/auth_apikey.h"
#include "tollgate/auth_revoke.h"
#include "tollgate/auth_ticket.h"
#include "unit.h"

#define NOW 1700000000
#define T1 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define T2 "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

/* A key store built from key file lines ("bob <sha256 of key> ..."). */
static auth_keystore_t *store(const char *const *lines, size_t n)
{
    auth_keystore_t *ks = auth_keystore_new();
    char err[256];

    CU_ASSERT_PTR_NOT_NULL_FATAL(ks);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL_FATAL(auth_keystore_add_line(ks, lines[i], "t", err, sizeof err),
                              0);
    return ks;
}

/* The key file line of (id, key, attrs), in one of 16 rotating buffers. */
static const char *line(const char *id, const char *key, const char *attrs)
{
    static char buf[16][256];
    static int next;
    char *out = buf[next++ % 16];

    CU_ASSERT_EQUAL_FATAL(auth_apikey_format_line(id, key, NULL, NULL, out, 256), 0);
    if (attrs != NULL) {
        strncat(out, " ", 255 - strlen(out));
        strncat(out, attrs, 255 - strlen(out));
    }
    return out;
}

/* The stored value of a ticket issued to API key `key` of `ks`. */
static char *issue_key(auth_keystore_t *ks, const char *key, const char *ticket)
{
    const auth_apikey_t *k = auth_keystore_lookup(ks, key, strlen(key));
    auth_identity_t id;
    char *val;

    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_EQUAL_FATAL(auth_apikey_identity(k, &id), 0);
    val = auth_ticket_encode(&id, ticket, ks);
    auth_identity_clear(&id);
    CU_ASSERT_PTR_NOT_NULL_FATAL(val);
    return val;
}

static const char *restore(const char *val, const auth_ticket_check_t *chk,
                           auth_identity_t *out)
{
    return auth_ticket_restore(val, val != NULL ? strlen(val) : 0, chk, out);
}

static void test_api_key_still_there(void)
{
    const char *lines[] = {line("bob", "bob-key", "scopes=orders:read tier=gold")};
    auth_keystore_t *ks = store(lines, 1);
    char *val = issue_key(ks, "bob-key", T1);
    auth_ticket_check_t chk = {.ticket = T1, .keys = ks, .jwt = true, .now_s = NOW};
    auth_identity_t id;

    CU_ASSERT_PTR_NULL(restore(val, &chk, &id));
    CU_ASSERT_EQUAL(id.kind, AUTH_KIND_API_KEY);
    CU_ASSERT(id.ticket);
    CU_ASSERT_STRING_EQUAL(id.client_id, "bob");
    CU_ASSERT_STRING_EQUAL(id.tier, "gold");
    CU_ASSERT_EQUAL_FATAL(id.nscopes, 1);
    CU_ASSERT_STRING_EQUAL(id.scopes[0], "orders:read");
    auth_identity_clear(&id);
    free(val);
    auth_keystore_free(ks);
}

/* Nothing stored names the key: no digest, and the fingerprint differs per
 * ticket (it is keyed with the ticket, which is never stored). */
static void test_stored_value_names_no_key(void)
{
    const char *lines[] = {line("bob", "bob-key", NULL)};
    auth_keystore_t *ks = store(lines, 1);
    char *v1 = issue_key(ks, "bob-key", T1), *v2 = issue_key(ks, "bob-key", T2);
    unsigned char d[SHA256_DIGEST_LENGTH];
    char hex[2 * SHA256_DIGEST_LENGTH + 1];

    SHA256((const unsigned char *)"bob-key", 7, d);
    for (size_t i = 0; i < sizeof d; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    CU_ASSERT_PTR_NULL(strstr(v1, hex));
    CU_ASSERT_PTR_NULL(strstr(v1, "bob-key"));
    CU_ASSERT_PTR_NOT_NULL(strstr(v1, "\"kfp\":\""));
    CU_ASSERT_STRING_NOT_EQUAL(strstr(v1, "\"kfp\""), strstr(v2, "\"kfp\""));
    free(v1);
    free(v2);
    auth_keystore_free(ks);
}

/* The attack: the key is removed from the key file (or rotated: same id,
 * another key) after the ticket was issued; the ticket must die with it. */
static void test_api_key_removed_or_rotated(void)
{
    const char *before[] = {line("bob", "bob-key", "scopes=orders:read"),
                            line("carol", "carol-key", NULL)};
    const char *removed[] = {line("carol", "carol-key", NULL)};
    const char *rotated[] = {line("bob", "bob-key-2", "scopes=orders:read"),
                             line("carol", "carol-key", NULL)};
    const char *moved[] = {line("robert", "bob-key", "scopes=orders:read")};
    auth_keystore_t *ks = store(before, 2), *ks_removed = store(removed, 1),
                    *ks_rotated = store(rotated, 2), *ks_moved = store(moved, 1);
    char *val = issue_key(ks, "bob-key", T1);
    auth_ticket_check_t chk = {.ticket = T1, .jwt = true, .now_s = NOW};
    auth_identity_t id;

    chk.keys = ks_removed;
    CU_ASSERT_STRING_EQUAL(restore(val, &chk, &id), "ticket_key_removed");
    CU_ASSERT_PTR_NULL(id.client_id);
    chk.keys = ks_rotated;
    CU_ASSERT_STRING_EQUAL(restore(val, &chk, &id), "ticket_key_rotated");
    CU_ASSERT_PTR_NULL(id.client_id);
    chk.keys = ks_moved; /* the same key under another id: not the same identity */
    CU_ASSERT_STRING_EQUAL(restore(val, &chk, &id), "ticket_key_removed");
    chk.keys = NULL; /* API keys turned off (auth.mode jwt, API_KEY_ENABLED=false) */
    CU_ASSERT_STRING_EQUAL(restore(val, &chk, &id), "ticket_credential_disabled");
    /* the stored value under another ticket does not carry over */
    chk.keys = ks;
    chk.ticket = T2;
    CU_ASSERT_STRING_EQUAL(restore(val, &chk, &id), "ticket_key_rotated");
    free(val);
    auth_keystore_free(ks);
    auth_keystore_free(ks_removed);
    auth_keystore_free(ks_rotated);
    auth_keystore_free(ks_moved);
}

/* Scopes narrowed (or the key deprecated) since: the ticket gets what the
 * key's line says now, never what it said when the ticket was issued. */
static void test_api_key_line_changed(void)
{
    const char *before[] = {line("bob", "bob-key", "scopes=orders:read,orders:write")};
    const char *after[] = {line("bob", "bob-key", "scopes=orders:read deprecated")};
    auth_keystore_t *ks = store(before, 1), *ks2 = store(after, 1);
    char *val = issue_key(ks, "bob-key", T1);
    auth_ticket_check_t chk = {.ticket = T1, .keys = ks2, .now_s = NOW};
    auth_identity_t id;
    char write[] = "orders:write", *need[] = {write};

    CU_ASSERT_PTR_NULL_FATAL(restore(val, &chk, &id));
    CU_ASSERT_EQUAL(id.nscopes, 1);
    CU_ASSERT_FALSE(auth_identity_has_scopes(&id, need, 1));
    CU_ASSERT(id.deprecated);
    CU_ASSERT(id.ticket);
    auth_identity_clear(&id);
    free(val);
    auth_keystore_free(ks);
    auth_keystore_free(ks2);
}

/* An API key identity stored without a fingerprint (an older replica's, or
 * a forged one) is not taken. */
static void test_api_key_without_fingerprint(void)
{
    const char *lines[] = {line("bob", "bob-key", NULL)};
    auth_keystore_t *ks = store(lines, 1);
    auth_ticket_check_t chk = {.ticket = T1, .keys = ks, .now_s = NOW};
    auth_identity_t id;
    const char *old = "{\"v\":1,\"kind\":1,\"client_id\":\"bob\",\"subject\":\"bob\","
                      "\"tier\":null,\"jti\":null,\"iss\":null,\"iat\":0,\"exp\":0,"
                      "\"deprecated\":false,\"scopes\":[],\"hdrs\":{}}";
    const char *bad = "{\"v\":1,\"kind\":1,\"client_id\":\"bob\",\"subject\":\"bob\","
                      "\"kfp\":\"00\",\"scopes\":[],\"hdrs\":{}}";

    CU_ASSERT_EQUAL(auth_ticket_decode(old, strlen(old), &id), 0); /* well-formed */
    auth_identity_clear(&id);
    CU_ASSERT_STRING_EQUAL(restore(old, &chk, &id), "invalid_ticket");
    CU_ASSERT_STRING_EQUAL(restore(bad, &chk, &id), "invalid_ticket");
    CU_ASSERT_STRING_EQUAL(restore(NULL, &chk, &id), "invalid_ticket");
    CU_ASSERT_STRING_EQUAL(restore("{", &chk, &id), "invalid_ticket");
    CU_ASSERT_PTR_NULL(id.client_id);
    auth_keystore_free(ks);
}

/* An identity whose key is not in the store it names is not stored. */
static void test_encode_needs_the_key(void)
{
    const char *lines[] = {line("carol", "carol-key", NULL)};
    auth_keystore_t *ks = store(lines, 1);
    char bob[] = "bob";
    auth_identity_t id = {.kind = AUTH_KIND_API_KEY, .client_id = bob, .subject = bob};

    CU_ASSERT_PTR_NULL(auth_ticket_encode(&id, T1, ks));
    CU_ASSERT_PTR_NULL(auth_ticket_encode(&id, T1, NULL));
    auth_keystore_free(ks);
}

static char *issue_jwt(char *jti, int64_t iat, int64_t exp)
{
    char user[] = "jwt-user";
    auth_identity_t id = {.kind = AUTH_KIND_JWT,
                          .client_id = user,
                          .subject = user,
                          .jti = jti,
                          .iat = iat,
                          .exp = exp};
    char *val = auth_ticket_encode(&id, T1, NULL);

    CU_ASSERT_PTR_NOT_NULL_FATAL(val);
    CU_ASSERT_PTR_NULL(strstr(val, "kfp"));
    return val;
}

/* The attack: a JWT that expires (or is revoked) after its ticket was
 * issued; the ticket must not outlive it.  Leeway as for a bearer token. */
static void test_jwt_expired_or_revoked(void)
{
    char j1[] = "j-1", j2[] = "j-2", j3[] = "j-3";
    char *val = issue_jwt(j1, NOW - 100, NOW + 10);
    auth_revoke_t *rev = auth_revoke_new(16);
    auth_ticket_check_t chk = {.ticket = T1, .jwt = true, .revoked = rev, .now_s = NOW};
    auth_identity_t id;

    CU_ASSERT_PTR_NULL_FATAL(restore(val, &chk, &id));
    CU_ASSERT_EQUAL(id.kind, AUTH_KIND_JWT);
    CU_ASSERT_STRING_EQUAL(id.subject, "jwt-user");
    CU_ASSERT(id.ticket);
    auth_identity_clear(&id);
    chk.now_s = NOW + 10; /* exp reached */
    CU_ASSERT_STRING_EQUAL(restore(val, &chk, &id), "ticket_token_expired");
    CU_ASSERT_PTR_NULL(id.subject);
    chk.leeway_s = 5; /* within the leeway: still good, as a bearer token is */
    CU_ASSERT_PTR_NULL(restore(val, &chk, &id));
    auth_identity_clear(&id);
    chk.now_s = NOW + 15;
    CU_ASSERT_STRING_EQUAL(restore(val, &chk, &id), "ticket_token_expired");
    chk.now_s = NOW;
    chk.leeway_s = 0;
    chk.jwt = false; /* JWTs turned off */
    CU_ASSERT_STRING_EQUAL(restore(val, &chk, &id), "ticket_credential_disabled");
    chk.jwt = true;
    CU_ASSERT_EQUAL(auth_revoke_jti(rev, "j-1", NOW + 10, NOW), 0);
    CU_ASSERT_STRING_EQUAL(restore(val, &chk, &id), "revoked");
    free(val);
    val = issue_jwt(j2, NOW - 100, NOW + 10);
    CU_ASSERT_EQUAL(auth_revoke_subject(rev, NULL, "jwt-user", NOW - 50, NOW), 0);
    CU_ASSERT_STRING_EQUAL(restore(val, &chk, &id), "revoked");
    free(val);
    val = issue_jwt(j3, NOW - 100, 0); /* no exp: never taken */
    CU_ASSERT_STRING_EQUAL(restore(val, &chk, &id), "ticket_token_expired");
    free(val);
    val = issue_jwt(j3, NOW, INT64_MAX); /* far future: no overflow */
    chk.leeway_s = 3600;
    CU_ASSERT_PTR_NULL(restore(val, &chk, &id));
    auth_identity_clear(&id);
    free(val);
    auth_revoke_free(rev);
}

/* Two keys under one id (a rotation): a ticket is bound to the very key
 * that asked for it, not to the id; the other key does not carry it, and
 * the key's not_after ends it. */
static void test_rotation_keys_of_one_id(void)
{
    const char *both[] = {line("bob", "bob-key", "not_after=2023-11-14T22:13:20Z"),
                          line("bob", "bob-key-2", NULL)};
    const char *new_only[] = {line("bob", "bob-key-2", NULL)};
    auth_keystore_t *ks = store(both, 2), *ks_new = store(new_only, 1);
    char *v_old = issue_key(ks, "bob-key", T1), *v_new = issue_key(ks, "bob-key-2", T1);
    auth_ticket_check_t chk = {.ticket = T1, .keys = ks, .jwt = true, .now_s = NOW};
    auth_identity_t id;

    /* NOW is 1700000000 = 2023-11-14T22:13:20Z: the old key's last second */
    CU_ASSERT_PTR_NULL(restore(v_old, &chk, &id));
    CU_ASSERT_STRING_EQUAL(id.client_id, "bob");
    auth_identity_clear(&id);
    CU_ASSERT_PTR_NULL(restore(v_new, &chk, &id));
    auth_identity_clear(&id);
    chk.now_s = NOW + 1;
    CU_ASSERT_STRING_EQUAL(restore(v_old, &chk, &id), "key_expired");
    CU_ASSERT_PTR_NULL(id.client_id);
    CU_ASSERT_PTR_NULL(restore(v_new, &chk, &id));
    auth_identity_clear(&id);
    chk.keys = ks_new; /* the old line removed: bob is there, that key is not */
    CU_ASSERT_STRING_EQUAL(restore(v_old, &chk, &id), "ticket_key_rotated");
    CU_ASSERT_PTR_NULL(restore(v_new, &chk, &id));
    auth_identity_clear(&id);
    free(v_old);
    free(v_new);
    auth_keystore_free(ks);
    auth_keystore_free(ks_new);
}

int test_auth_ticket_add(void)
{
    static const unit_test_t tests[] = {
        {"API key still in the store", test_api_key_still_there},
        {"stored value names no key", test_stored_value_names_no_key},
        {"API key removed or rotated", test_api_key_removed_or_rotated},
        {"rotation: keys of one id", test_rotation_keys_of_one_id},
        {"API key line changed", test_api_key_line_changed},
        {"API key without fingerprint", test_api_key_without_fingerprint},
        {"encode needs the key", test_encode_needs_the_key},
        {"JWT expired or revoked", test_jwt_expired_or_revoked},
        {NULL, NULL},
    };
    return unit_add_suite("auth_ticket", tests);
}
