/* test_auth_ban.c — the ban set: targets and their canonical forms, IPv4,
 * IPv6 and CIDR matching, client ids, expiry, the bound, replace (a
 * resync), paging, the Redis record, readers alongside a writer. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tollgate/auth_ban.h"
#include "unit.h"

static const auth_ban_rules_t rules = {.min_prefix_v4 = 8, .min_prefix_v6 = 32};

/* The canonical form of `in`, or "ERR: <reason>". */
static const char *canon(const char *in)
{
    static char out[AUTH_BAN_TARGET_MAX + 220];
    char err[200];

    if (auth_ban_target_parse(in, strlen(in), &rules, out, sizeof out, NULL, err,
                              sizeof err) != 0)
        snprintf(out, sizeof out, "ERR: %s", err);
    return out;
}

static auth_ban_entry_t entry(const char *target, int64_t until)
{
    auth_ban_entry_t e = {.until_ms = until, .created_ms = 1};

    snprintf(e.target, sizeof e.target, "%s", target);
    snprintf(e.actor, sizeof e.actor, "ops");
    snprintf(e.reason, sizeof e.reason, "test");
    return e;
}

static void put(auth_ban_t *b, const char *target, int64_t until)
{
    auth_ban_entry_t e = entry(canon(target), until);

    CU_ASSERT_EQUAL(auth_ban_put(b, &e, 1000), 0);
}

static void test_canonical(void)
{
    CU_ASSERT_STRING_EQUAL(canon("ip:203.0.113.7"), "ip:203.0.113.7");
    CU_ASSERT_STRING_EQUAL(canon("ip:::ffff:203.0.113.7"), "ip:203.0.113.7");
    CU_ASSERT_STRING_EQUAL(canon("ip:2001:DB8:0:0::1"), "ip:2001:db8::1");
    CU_ASSERT_STRING_EQUAL(canon("cidr:203.0.113.0/24"), "cidr:203.0.113.0/24");
    CU_ASSERT_STRING_EQUAL(canon("cidr:203.0.113.7/32"), "ip:203.0.113.7");
    CU_ASSERT_STRING_EQUAL(canon("cidr:::ffff:10.0.0.0/104"), "cidr:10.0.0.0/8");
    CU_ASSERT_STRING_EQUAL(canon("cidr:2001:db8::/32"), "cidr:2001:db8::/32");
    CU_ASSERT_STRING_EQUAL(canon("cidr:2001:db8::1/128"), "ip:2001:db8::1");
    CU_ASSERT_STRING_EQUAL(canon("client:svc-1"), "client:svc-1");
}

static void test_refused(void)
{
    static const char *const bad[] = {
        "",  "ip:", "ip:1.2.3", "ip:1.2.3.4 ", "ip:fe80::1%eth0", "cidr:1.2.3.0",
        "cidr:1.2.3.0/", "cidr:1.2.3.0/33", "cidr:1.2.3.0/+8", "cidr:1.2.3.0/-1",
        "cidr:0.0.0.0/0", "cidr:::/0", "cidr:10.0.0.0/7", "cidr:2001::/31",
        "cidr:::ffff:10.0.0.0/95", "cidr:1.2.3.0/0024", "client:", "client:a b",
        "client:\x7f", "host:1.2.3.4", "IP:1.2.3.4", "ip:1.2.3.4\n",
    };
    char out[AUTH_BAN_TARGET_MAX + 1], err[200];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(auth_ban_target_parse(bad[i], strlen(bad[i]), &rules, out, sizeof out,
                                              NULL, err, sizeof err),
                        -1);
    /* a NUL inside is not the end of the target */
    CU_ASSERT_EQUAL(auth_ban_target_parse("ip:1.2.3.4\0x", 12, &rules, out, sizeof out, NULL,
                                          err, sizeof err),
                    -1);
    CU_ASSERT_STRING_EQUAL(canon("cidr:203.0.113.7/24"),
                           "ERR: host bits set: the network is cidr:203.0.113.0/24");
    CU_ASSERT_STRING_EQUAL(canon("cidr:0.0.0.0/0"), "ERR: a /0 would ban every client");
    CU_ASSERT_PTR_NOT_NULL(strstr(canon("cidr:10.0.0.0/7"), "min_prefix_v4"));
    /* a client id of 129 bytes */
    char longid[7 + 130];
    memcpy(longid, "client:", 7);
    memset(longid + 7, 'a', 129);
    longid[136] = '\0';
    CU_ASSERT_STRING_EQUAL(canon(longid),
                           "ERR: a client target is client:ID (1 to 128 visible ASCII bytes)");
    longid[135] = '\0';
    CU_ASSERT_STRING_EQUAL(canon(longid), longid);
}

static void test_ip_and_cidr(void)
{
    auth_ban_t *b = auth_ban_new(100);
    int64_t until = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "203.0.113.7", 1000, NULL)); /* empty */
    put(b, "ip:203.0.113.7", 5000);
    put(b, "cidr:198.51.100.0/24", 6000);
    put(b, "cidr:2001:db8:1::/48", 7000);
    put(b, "ip:2001:db8:2::5", 8000);
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "203.0.113.7", 1000, &until));
    CU_ASSERT_EQUAL(until, 5000);
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "203.0.113.8", 1000, NULL));
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "::ffff:203.0.113.7", 1000, NULL));
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "198.51.100.0", 1000, NULL));
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "198.51.100.255", 1000, &until));
    CU_ASSERT_EQUAL(until, 6000);
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "198.51.101.0", 1000, NULL));
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "2001:db8:1:ffff::1", 1000, NULL));
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "2001:db8:3::1", 1000, NULL));
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "2001:db8:2::5", 1000, NULL));
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "2001:db8:2::6", 1000, NULL));
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "not an ip", 1000, NULL));
    CU_ASSERT_FALSE(auth_ban_check_ip(b, NULL, 1000, NULL));
    /* a client id that spells an address is not an address ban */
    CU_ASSERT_FALSE(auth_ban_check_client(b, "203.0.113.7", 1000, NULL));
    CU_ASSERT_EQUAL(auth_ban_count(b, 1000), 4);
    CU_ASSERT_TRUE(auth_ban_remove(b, "cidr:198.51.100.0/24", 1000));
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "198.51.100.1", 1000, NULL));
    CU_ASSERT_FALSE(auth_ban_remove(b, "cidr:198.51.100.0/24", 1000));
    CU_ASSERT_EQUAL(auth_ban_count(b, 1000), 3);
    auth_ban_free(b);
}

static void test_client(void)
{
    auth_ban_t *b = auth_ban_new(10);

    put(b, "client:svc-1", 5000);
    CU_ASSERT_TRUE(auth_ban_check_client(b, "svc-1", 1000, NULL));
    CU_ASSERT_FALSE(auth_ban_check_client(b, "svc-2", 1000, NULL));
    CU_ASSERT_FALSE(auth_ban_check_client(b, "svc-", 1000, NULL));
    CU_ASSERT_FALSE(auth_ban_check_client(b, NULL, 1000, NULL));
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "1.2.3.4", 1000, NULL));
    auth_ban_free(b);
}

/* A JWT sub may hold spaces and UTF-8 (auth/jwt.c takes any byte but
 * controls): such a client is banned as client:ID with those bytes and
 * '%' written %XX; any spelling of the escapes, one canonical form. */
static void test_client_escaped(void)
{
    auth_ban_t *b = auth_ban_new(10);

    CU_ASSERT_STRING_EQUAL(canon("client:erin%20smith"), "client:erin%20smith");
    CU_ASSERT_STRING_EQUAL(canon("client:Jos%c3%a9"), "client:Jos%C3%A9");
    CU_ASSERT_STRING_EQUAL(canon("client:50%25off"), "client:50%25off");
    CU_ASSERT_STRING_EQUAL(canon("client:%61"), "client:a"); /* no escape needed */
    CU_ASSERT_PTR_NOT_NULL(strstr(canon("client:50%off"), "ERR"));
    CU_ASSERT_PTR_NOT_NULL(strstr(canon("client:a%0Ab"), "ERR")); /* a control byte */
    CU_ASSERT_PTR_NOT_NULL(strstr(canon("client:a%00b"), "ERR"));
    CU_ASSERT_PTR_NOT_NULL(strstr(canon("client:a%7Fb"), "ERR"));
    CU_ASSERT_PTR_NOT_NULL(strstr(canon("client:%2"), "ERR"));
    put(b, "client:erin%20smith", 5000);
    put(b, "client:Jos%C3%A9", 5000);
    CU_ASSERT_TRUE(auth_ban_check_client(b, "erin smith", 1000, NULL));
    CU_ASSERT_TRUE(auth_ban_check_client(b, "Jos\xc3\xa9", 1000, NULL));
    CU_ASSERT_FALSE(auth_ban_check_client(b, "erin%20smith", 1000, NULL));
    CU_ASSERT_TRUE(auth_ban_remove(b, "client:Jos%c3%a9", 1000));
    CU_ASSERT_FALSE(auth_ban_check_client(b, "Jos\xc3\xa9", 1000, NULL));
    auth_ban_free(b);
}

static void test_expiry(void)
{
    auth_ban_t *b = auth_ban_new(10);
    auth_ban_entry_t old = entry("ip:1.2.3.4", 900);

    CU_ASSERT_EQUAL(auth_ban_put(b, &old, 1000), -1); /* over already */
    put(b, "ip:1.2.3.4", 2000);
    put(b, "client:c", 3000);
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "1.2.3.4", 1999, NULL));
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "1.2.3.4", 2000, NULL)); /* over at until */
    CU_ASSERT_EQUAL(auth_ban_count(b, 2000), 1);
    CU_ASSERT_FALSE(auth_ban_remove(b, "ip:1.2.3.4", 2500)); /* held, but over */
    CU_ASSERT_EQUAL(auth_ban_expire(b, 3000), 0);
    CU_ASSERT_FALSE(auth_ban_check_client(b, "c", 2999, NULL));
    auth_ban_free(b);
}

static void test_bound(void)
{
    auth_ban_t *b = auth_ban_new(3);
    auth_ban_entry_t e = entry("ip:10.0.0.4", 9000);

    put(b, "ip:10.0.0.1", 1500);
    put(b, "ip:10.0.0.2", 9000);
    put(b, "ip:10.0.0.3", 9000);
    CU_ASSERT_EQUAL(auth_ban_put(b, &e, 1000), -1); /* full of live bans */
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "10.0.0.4", 1000, NULL));
    /* replacing one held is not a new entry */
    e = entry("ip:10.0.0.2", 9500);
    CU_ASSERT_EQUAL(auth_ban_put(b, &e, 1000), 0);
    /* once the first is over, its room is taken */
    e = entry("ip:10.0.0.4", 9000);
    CU_ASSERT_EQUAL(auth_ban_put(b, &e, 1600), 0);
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "10.0.0.4", 1600, NULL));
    CU_ASSERT_EQUAL(auth_ban_count(b, 1600), 3);
    auth_ban_free(b);
}

static void test_replace(void)
{
    auth_ban_t *b = auth_ban_new(2);
    auth_ban_entry_t v[4] = {entry("ip:10.0.0.9", 9000), entry("junk", 9000),
                             entry("ip:10.0.0.8", 500), entry("cidr:10.1.0.0/16", 9000)};

    put(b, "ip:10.0.0.1", 9000);
    CU_ASSERT_EQUAL(auth_ban_replace(b, v, 4, 1000), 2);
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "10.0.0.1", 1000, NULL)); /* lifted */
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "10.0.0.9", 1000, NULL));
    CU_ASSERT_TRUE(auth_ban_check_ip(b, "10.1.2.3", 1000, NULL));
    CU_ASSERT_EQUAL(auth_ban_replace(b, NULL, 0, 1000), 0);
    CU_ASSERT_FALSE(auth_ban_check_ip(b, "10.1.2.3", 1000, NULL));
    auth_ban_free(b);
}

static void test_list_pages(void)
{
    auth_ban_t *b = auth_ban_new(300);
    auth_ban_entry_t page[100];
    char t[64], last[AUTH_BAN_TARGET_MAX + 1] = "";
    size_t n, total = 0, pages = 0;
    bool more;

    for (int i = 0; i < 250; i++) {
        snprintf(t, sizeof t, "client:c%03d", i);
        put(b, t, i == 7 ? 1500 : 9000);
    }
    do {
        n = auth_ban_list(b, 2000, last, page, 100, &more);
        for (size_t i = 0; i < n; i++)
            CU_ASSERT_TRUE(strcmp(page[i].target, last) > 0 &&
                           (i == 0 || strcmp(page[i].target, page[i - 1].target) > 0));
        if (n > 0)
            snprintf(last, sizeof last, "%s", page[n - 1].target);
        total += n;
        pages++;
    } while (more && pages < 10);
    CU_ASSERT_EQUAL(total, 249); /* c007 is over */
    CU_ASSERT_EQUAL(pages, 3);
    CU_ASSERT_STRING_EQUAL(last, "client:c249");
    CU_ASSERT_STRING_EQUAL(page[0].actor, "ops");
    auth_ban_free(b);
}

static void test_record(void)
{
    auth_ban_entry_t e;
    const char *t = "cidr:10.0.0.0/8";

    const char *rec = "5000 1000 ops hot\x01 client";

    CU_ASSERT_EQUAL(auth_ban_record_parse(t, strlen(t), rec, strlen(rec), &e), 0);
    CU_ASSERT_STRING_EQUAL(e.target, t);
    CU_ASSERT_EQUAL(e.until_ms, 5000);
    CU_ASSERT_EQUAL(e.created_ms, 1000);
    CU_ASSERT_STRING_EQUAL(e.actor, "ops");
    CU_ASSERT_STRING_EQUAL(e.reason, "hot? client");
    CU_ASSERT_EQUAL(auth_ban_record_parse(t, strlen(t), "5000 1000 ops", 13, &e), 0);
    CU_ASSERT_STRING_EQUAL(e.reason, "");
    CU_ASSERT_EQUAL(auth_ban_record_parse(t, strlen(t), "5000 1000", 9, &e), -1);
    CU_ASSERT_EQUAL(auth_ban_record_parse(t, strlen(t), "x 1000 ops r", 12, &e), -1);
    CU_ASSERT_EQUAL(auth_ban_record_parse(t, strlen(t), "5000  ops r", 11, &e), -1);
    /* a target tollgate would not have written (not canonical) */
    CU_ASSERT_EQUAL(auth_ban_record_parse("cidr:10.0.0.1/32", 16, "5000 1000 ops r", 15, &e),
                    -1);
    CU_ASSERT_EQUAL(auth_ban_record_parse("ip:::ffff:1.2.3.4", 17, "5000 1000 ops r", 15, &e),
                    -1);
}

static void test_reason_clean(void)
{
    char out[AUTH_BAN_REASON_MAX + 1], big[500];

    auth_ban_reason_clean("a\nb\x1b[31mc\xc3\xa9", 11, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "a?b?[31mc??");
    memset(big, 'x', sizeof big);
    auth_ban_reason_clean(big, sizeof big, out, sizeof out);
    CU_ASSERT_EQUAL(strlen(out), AUTH_BAN_REASON_MAX);
}

typedef struct reader {
    auth_ban_t *b;
    int hits;
} reader_t;

static void *read_loop(void *arg)
{
    reader_t *r = arg;

    for (int i = 0; i < 20000; i++)
        r->hits += auth_ban_check_ip(r->b, "192.0.2.77", 1000, NULL);
    return NULL;
}

static void test_readers_and_writer(void)
{
    reader_t rd[3];
    pthread_t t[3];
    auth_ban_t *b = auth_ban_new(2000);
    char target[64];

    put(b, "cidr:192.0.2.0/24", 9000);
    for (int i = 0; i < 3; i++) {
        rd[i] = (reader_t){.b = b};
        pthread_create(&t[i], NULL, read_loop, &rd[i]);
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(target, sizeof target, "ip:10.%d.%d.1", i / 250, i % 250);
        put(b, target, 9000);
        if (i % 2)
            auth_ban_remove(b, target, 1000);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(rd[i].hits, 20000);
    }
    CU_ASSERT_EQUAL(auth_ban_count(b, 1000), 1001); /* the /24 and half the 2000 */
    auth_ban_free(b);
}

static const unit_test_t tests[] = {
    {"canonical targets", test_canonical},
    {"refused targets", test_refused},
    {"ip and cidr, v4 and v6", test_ip_and_cidr},
    {"client ids", test_client},
    {"client ids with escapes (a JWT sub with a space or UTF-8)", test_client_escaped},
    {"expiry", test_expiry},
    {"bound", test_bound},
    {"replace (resync) is authoritative", test_replace},
    {"list in pages", test_list_pages},
    {"redis record", test_record},
    {"reason sanitised", test_reason_clean},
    {"readers alongside a writer", test_readers_and_writer},
    {NULL, NULL},
};

int test_auth_ban_add(void)
{
    return unit_add_suite("auth_ban", tests);
}
