/* test_util_hash.c — FNV-1a, the mixer and SHA-256 against known values, the
 * powers of two, and the chained table: every node found after it grows,
 * growth stops at its cap, deletion unchains exactly one node. */
#include <stdlib.h>
#include <string.h>

#include "tollgate/util_hash.h"
#include "unit.h"

static void test_fnv1a_vectors(void)
{
    /* FNV-1a 64 reference values (Fowler, Noll, Vo: the test suite). */
    CU_ASSERT_EQUAL(util_fnv1a(UTIL_FNV_SEED, "", 0), 0xcbf29ce484222325ull);
    CU_ASSERT_EQUAL(util_fnv1a(UTIL_FNV_SEED, "a", 1), 0xaf63dc4c8601ec8cull);
    CU_ASSERT_EQUAL(util_fnv1a(UTIL_FNV_SEED, "foobar", 6), 0x85944171f73967e8ull);
    /* continuing from a prefix's hash is hashing the whole */
    CU_ASSERT_EQUAL(util_fnv1a(util_fnv1a(UTIL_FNV_SEED, "foo", 3), "bar", 3),
                    util_fnv1a(UTIL_FNV_SEED, "foobar", 6));
    /* bytes above 0x7f are taken unsigned */
    CU_ASSERT_NOT_EQUAL(util_fnv1a(UTIL_FNV_SEED, "\xff", 1),
                        util_fnv1a(UTIL_FNV_SEED, "\x7f", 1));
    CU_ASSERT_EQUAL(util_hash_bytes("foobar", 6),
                    util_mix64(util_fnv1a(UTIL_FNV_SEED, "foobar", 6)));
}

static void test_sha256_vectors(void)
{
    /* FIPS 180-2 examples: "abc" and the empty string. */
    static const unsigned char abc[UTIL_SHA256_LEN] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    static const unsigned char empty[4] = {0xe3, 0xb0, 0xc4, 0x42};
    unsigned char d[UTIL_SHA256_LEN];

    CU_ASSERT_EQUAL(util_sha256("abc", 3, d), 0);
    CU_ASSERT_EQUAL(memcmp(d, abc, sizeof(abc)), 0);
    CU_ASSERT_EQUAL(util_sha256("", 0, d), 0);
    CU_ASSERT_EQUAL(memcmp(d, empty, sizeof(empty)), 0);
}

static void test_mix64(void)
{
    /* fmix64: 0 is its fixed point; one input bit changes about half the output */
    CU_ASSERT_EQUAL(util_mix64(0), 0);
    for (int bit = 0; bit < 64; bit++) {
        uint64_t d = util_mix64(1ull << bit) ^ util_mix64(0);
        int n = __builtin_popcountll(d);

        CU_ASSERT(n > 12 && n < 52);
    }
}

static void test_pow2(void)
{
    CU_ASSERT_EQUAL(util_pow2_at_least(0, 1024), 1);
    CU_ASSERT_EQUAL(util_pow2_at_least(1, 1024), 1);
    CU_ASSERT_EQUAL(util_pow2_at_least(3, 1024), 4);
    CU_ASSERT_EQUAL(util_pow2_at_least(1024, 1024), 1024);
    CU_ASSERT_EQUAL(util_pow2_at_least(1025, 1024), 1024);
    CU_ASSERT_EQUAL(util_pow2_at_most(0, 1024), 1);
    CU_ASSERT_EQUAL(util_pow2_at_most(1, 1024), 1);
    CU_ASSERT_EQUAL(util_pow2_at_most(7, 1024), 4);
    CU_ASSERT_EQUAL(util_pow2_at_most(8, 1024), 8);
    CU_ASSERT_EQUAL(util_pow2_at_most(5000, 1024), 1024);
}

typedef struct item {
    util_hnode_t node;
    unsigned key;
} item_t;

/* The item of `key` in `t`, or NULL. */
static item_t *find(const util_htab_t *t, unsigned key)
{
    uint64_t h = util_hash_bytes((const char *)&key, sizeof key);

    for (util_hnode_t *n = util_htab_chain(t, h); n != NULL; n = n->next) {
        item_t *it = UTIL_HNODE_ENTRY(n, item_t, node);

        if (n->hash == h && it->key == key)
            return it;
    }
    return NULL;
}

/* Chained nodes, counted slot by slot. */
static size_t chained(const util_htab_t *t)
{
    size_t n = 0;

    for (size_t i = 0; i < t->nslots; i++)
        for (util_hnode_t *e = t->slots[i]; e != NULL; e = e->next)
            n++;
    return n;
}

#define NITEMS 5000

static void test_table_grows_and_finds(void)
{
    item_t *items = calloc(NITEMS, sizeof *items);
    util_htab_t t;
    size_t grew_to = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(items);
    CU_ASSERT_EQUAL_FATAL(util_htab_init(&t, 4, 1024), 0);
    CU_ASSERT_EQUAL(t.nslots, 4);
    for (unsigned i = 0; i < NITEMS; i++) {
        items[i].key = i;
        items[i].node.hash = util_hash_bytes((const char *)&i, sizeof i);
        util_htab_add(&t, &items[i].node);
        if (i + 1 == 1024)
            grew_to = t.nslots;
    }
    /* doubled while count >= nslots, up to the cap, never past it */
    CU_ASSERT_EQUAL(grew_to, 1024);
    CU_ASSERT_EQUAL(t.nslots, 1024);
    CU_ASSERT_EQUAL(t.count, NITEMS);
    CU_ASSERT_EQUAL(chained(&t), NITEMS);
    for (unsigned i = 0; i < NITEMS; i++)
        if (find(&t, i) != &items[i]) {
            CU_FAIL("an item was lost when the table grew");
            break;
        }
    CU_ASSERT_PTR_NULL(find(&t, NITEMS + 1));

    /* delete every other one: exactly those go */
    for (unsigned i = 0; i < NITEMS; i += 2)
        util_htab_del(&t, &items[i].node);
    CU_ASSERT_EQUAL(t.count, NITEMS / 2);
    CU_ASSERT_EQUAL(chained(&t), NITEMS / 2);
    for (unsigned i = 0; i < NITEMS; i++)
        if ((find(&t, i) != NULL) != (i % 2 == 1)) {
            CU_FAIL("deletion took the wrong node");
            break;
        }
    util_htab_destroy(&t);
    CU_ASSERT_PTR_NULL(t.slots);
    CU_ASSERT_EQUAL(t.count, 0);
    util_htab_destroy(&t); /* twice is harmless */
    free(items);
}

static void test_table_min_above_max(void)
{
    util_htab_t t;
    item_t a = {.key = 1}, b = {.key = 2};

    CU_ASSERT_EQUAL_FATAL(util_htab_init(&t, 64, 2), 0);
    CU_ASSERT_EQUAL(t.nslots, 2);
    /* same hash, different keys: one chain holds both */
    a.node.hash = b.node.hash = 42;
    util_htab_add(&t, &a.node);
    util_htab_add(&t, &b.node);
    CU_ASSERT_EQUAL(chained(&t), 2);
    util_htab_del(&t, &a.node);
    CU_ASSERT_PTR_EQUAL(util_htab_chain(&t, 42), &b.node);
    CU_ASSERT_PTR_NULL(b.node.next);
    util_htab_destroy(&t);
}

/* util_random fills the whole buffer (a length past getrandom's 256-byte
 * one-call guarantee included), and two draws differ. */
static void test_random(void)
{
    unsigned char a[4096], b[4096];
    size_t zero_a = 0;

    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    CU_ASSERT_EQUAL(util_random(a, sizeof a), 0);
    CU_ASSERT_EQUAL(util_random(b, sizeof b), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, sizeof a), 0);
    for (size_t i = sizeof a - 64; i < sizeof a; i++) /* the tail was written too */
        zero_a += a[i] == 0;
    CU_ASSERT(zero_a < 8);
    CU_ASSERT_EQUAL(util_random(a, 0), 0);
}

int test_util_hash_add(void)
{
    static const unit_test_t tests[] = {
        {"fnv1a reference values", test_fnv1a_vectors},
        {"sha256 reference values", test_sha256_vectors},
        {"mix64 avalanche", test_mix64},
        {"powers of two", test_pow2},
        {"random bytes from the kernel", test_random},
        {"table grows to its cap, finds every node", test_table_grows_and_finds},
        {"table smaller than asked, shared chain", test_table_min_above_max},
        {NULL, NULL},
    };

    return unit_add_suite("util_hash", tests);
}
