/* test_auth_identity.c — identity helpers and auth_ct_equal. */
#include <stdlib.h>
#include <string.h>

#include "tollgate/auth.h"
#include "unit.h"

/* An identity as the JWT verifier would build it. */
static void make_identity(auth_identity_t *id)
{
    static const char *scopes[] = {"a:read", "b:write", "c:admin"};
    size_t i;

    memset(id, 0, sizeof(*id));
    id->kind = AUTH_KIND_JWT;
    id->client_id = strdup("alice");
    id->subject = strdup("alice");
    id->tier = strdup("gold");
    id->jti = strdup("jti-1");
    id->exp = 2000;
    id->iat = 1000;
    id->scopes = calloc(3, sizeof(char *));
    for (i = 0; i < 3; i++)
        id->scopes[i] = strdup(scopes[i]);
    id->nscopes = 3;
    id->claims = json_pack("{s:s, s:i, s:f, s:f, s:b, s:o, s:n}", "org", "acme", "n", 42,
                           "r", 7.0, "pi", 3.5, "flag", 1, "obj", json_object(), "nul");
}

static void test_clear(void)
{
    auth_identity_t id;

    make_identity(&id);
    auth_identity_clear(&id);
    CU_ASSERT_PTR_NULL(id.client_id);
    CU_ASSERT_PTR_NULL(id.scopes);
    CU_ASSERT_PTR_NULL(id.claims);
    CU_ASSERT_EQUAL(id.nscopes, 0);
    CU_ASSERT_EQUAL(id.kind, AUTH_KIND_NONE);
    auth_identity_clear(&id); /* twice is fine */
    auth_identity_clear(NULL);
}

static void test_copy(void)
{
    auth_identity_t a, b;

    make_identity(&a);
    CU_ASSERT_EQUAL_FATAL(auth_identity_copy(&b, &a), 0);
    CU_ASSERT_EQUAL(b.kind, AUTH_KIND_JWT);
    CU_ASSERT_STRING_EQUAL(b.client_id, "alice");
    CU_ASSERT_PTR_NOT_EQUAL(b.client_id, a.client_id);
    CU_ASSERT_STRING_EQUAL(b.tier, "gold");
    CU_ASSERT_STRING_EQUAL(b.jti, "jti-1");
    CU_ASSERT_EQUAL(b.exp, 2000);
    CU_ASSERT_EQUAL(b.iat, 1000);
    CU_ASSERT_EQUAL_FATAL(b.nscopes, 3);
    CU_ASSERT_STRING_EQUAL(b.scopes[2], "c:admin");
    CU_ASSERT_PTR_NOT_EQUAL(b.claims, a.claims);
    CU_ASSERT(json_equal(b.claims, a.claims));
    auth_identity_clear(&a);
    CU_ASSERT_STRING_EQUAL(b.scopes[0], "a:read"); /* still ours */
    auth_identity_clear(&b);

    memset(&a, 0, sizeof(a));
    a.kind = AUTH_KIND_API_KEY;
    a.client_id = strdup("k");
    CU_ASSERT_EQUAL(auth_identity_copy(&b, &a), 0);
    CU_ASSERT_PTR_NULL(b.tier);
    CU_ASSERT_PTR_NULL(b.claims);
    CU_ASSERT_PTR_NULL(b.scopes);
    auth_identity_clear(&a);
    auth_identity_clear(&b);
}

static void test_claim(void)
{
    auth_identity_t id;
    char buf[32], tiny[2];

    make_identity(&id);
    CU_ASSERT_STRING_EQUAL(auth_identity_claim(&id, "org", buf, sizeof(buf)), "acme");
    CU_ASSERT_STRING_EQUAL(auth_identity_claim(&id, "n", buf, sizeof(buf)), "42");
    CU_ASSERT_STRING_EQUAL(auth_identity_claim(&id, "r", buf, sizeof(buf)), "7");
    CU_ASSERT_STRING_EQUAL(auth_identity_claim(&id, "pi", buf, sizeof(buf)), "3.5");
    CU_ASSERT_STRING_EQUAL(auth_identity_claim(&id, "flag", buf, sizeof(buf)), "true");
    CU_ASSERT_PTR_NULL(auth_identity_claim(&id, "obj", buf, sizeof(buf)));
    CU_ASSERT_PTR_NULL(auth_identity_claim(&id, "nul", buf, sizeof(buf)));
    CU_ASSERT_PTR_NULL(auth_identity_claim(&id, "absent", buf, sizeof(buf)));
    CU_ASSERT_PTR_NULL(
        auth_identity_claim(&id, "n", tiny, sizeof(tiny))); /* "42" won't fit */
    CU_ASSERT_STRING_EQUAL(auth_identity_claim(&id, "org", NULL, 0), "acme");
    auth_identity_clear(&id);
    CU_ASSERT_PTR_NULL(auth_identity_claim(&id, "org", buf, sizeof(buf)));
}

static void test_has_scopes(void)
{
    auth_identity_t id;
    /* route scopes come from the config as char *; -Wwrite-strings wants arrays */
    char ar[] = "a:read", ca[] = "c:admin", dn[] = "d:none", rea[] = "a:rea";
    char *need1[] = {ar};
    char *need2[] = {ca, ar};
    char *need3[] = {ar, dn};
    char *need4[] = {rea};

    make_identity(&id);
    CU_ASSERT_TRUE(auth_identity_has_scopes(&id, need1, 1));
    CU_ASSERT_TRUE(auth_identity_has_scopes(&id, need2, 2));
    CU_ASSERT_FALSE(auth_identity_has_scopes(&id, need3, 2));
    CU_ASSERT_FALSE(auth_identity_has_scopes(&id, need4, 1));
    CU_ASSERT_TRUE(auth_identity_has_scopes(&id, NULL, 0));
    auth_identity_clear(&id);
    CU_ASSERT_FALSE(auth_identity_has_scopes(&id, need1, 1));
    CU_ASSERT_TRUE(auth_identity_has_scopes(&id, NULL, 0));
}

static void test_scopes_str(void)
{
    auth_identity_t id;
    char out[64], small[16], one[1] = {'x'};

    make_identity(&id);
    auth_identity_scopes_str(&id, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "a:read b:write c:admin");
    /* "a:read b:write" is 14 bytes + NUL: the third scope does not fit */
    auth_identity_scopes_str(&id, small, sizeof(small));
    CU_ASSERT_STRING_EQUAL(small, "a:read b:write");
    auth_identity_scopes_str(&id, small, 7);
    CU_ASSERT_STRING_EQUAL(small, "a:read");
    auth_identity_scopes_str(&id, small, 6);
    CU_ASSERT_STRING_EQUAL(small, "");
    auth_identity_scopes_str(&id, one, sizeof(one));
    CU_ASSERT_EQUAL(one[0], '\0');
    auth_identity_clear(&id);
    auth_identity_scopes_str(&id, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "");
}

static void test_ct_equal(void)
{
    CU_ASSERT_TRUE(auth_ct_equal("abc", 3, "abc", 3));
    CU_ASSERT_FALSE(auth_ct_equal("abc", 3, "abd", 3));
    CU_ASSERT_FALSE(auth_ct_equal("abc", 3, "abcd", 4));
    CU_ASSERT_FALSE(auth_ct_equal("", 0, "a", 1));
    CU_ASSERT_TRUE(auth_ct_equal("", 0, "", 0));
    CU_ASSERT_TRUE(auth_ct_equal("a\0b", 3, "a\0b", 3));
    CU_ASSERT_FALSE(auth_ct_equal("a\0b", 3, "a\0c", 3));
}

static const unit_test_t tests[] = {
    {"clear", test_clear},
    {"copy is deep", test_copy},
    {"claim spelling", test_claim},
    {"has_scopes", test_has_scopes},
    {"scopes_str keeps whole scopes", test_scopes_str},
    {"ct_equal", test_ct_equal},
    {NULL, NULL},
};

int test_auth_identity_add(void)
{
    return unit_add_suite("auth_identity", tests);
}
