/* test_http_net.c — CIDR parsing and matching, client IP from XFF, host:port. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "tollgate/http.h"
#include "unit.h"

static void test_cidr_parse_ok(void)
{
    http_cidr_t c;

    CU_ASSERT_EQUAL(http_cidr_parse("10.0.0.0/8", &c), 0);
    CU_ASSERT_EQUAL(c.family, AF_INET);
    CU_ASSERT_EQUAL(c.prefix, 8);
    CU_ASSERT_EQUAL(c.addr[0], 10);
    CU_ASSERT_EQUAL(http_cidr_parse("127.0.0.1", &c), 0);
    CU_ASSERT_EQUAL(c.prefix, 32);
    CU_ASSERT_EQUAL(http_cidr_parse("0.0.0.0/0", &c), 0);
    CU_ASSERT_EQUAL(c.prefix, 0);
    CU_ASSERT_EQUAL(http_cidr_parse("172.16.0.0/12", &c), 0);
    CU_ASSERT_EQUAL(http_cidr_parse("fc00::/7", &c), 0);
    CU_ASSERT_EQUAL(c.family, AF_INET6);
    CU_ASSERT_EQUAL(c.prefix, 7);
    CU_ASSERT_EQUAL(http_cidr_parse("::1", &c), 0);
    CU_ASSERT_EQUAL(c.prefix, 128);
    CU_ASSERT_EQUAL(http_cidr_parse("::/0", &c), 0);
    CU_ASSERT_EQUAL(http_cidr_parse("2001:db8::/32", &c), 0);
    /* v4-mapped CIDRs become their v4 form. */
    CU_ASSERT_EQUAL(http_cidr_parse("::ffff:10.0.0.0/104", &c), 0);
    CU_ASSERT_EQUAL(c.family, AF_INET);
    CU_ASSERT_EQUAL(c.prefix, 8);
}

static void test_cidr_parse_bad(void)
{
    static const char *const bad[] = {
        "",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.1/8",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/08",
        "10.0.0.0/8x",
        "10.0.0/8",
        "10.0.0.256",
        "fc00::/129",
        "fc00::1/7",
        "fe80::1%eth0",
        "example.com",
        "10.0.0.0/8/8",
        " 10.0.0.0/8",
        "::ffff:10.0.0.0/95",
        "010.0.0.0/8",
        "1.2.3.4 ",
    };
    http_cidr_t c;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (http_cidr_parse(bad[i], &c) == 0)
            CU_FAIL(bad[i]);
    }
    CU_ASSERT_EQUAL(http_cidr_parse(NULL, &c), -1);
}

static void test_cidr_list(void)
{
    http_cidr_list_t l = {0};
    http_cidr_t c;

    CU_ASSERT_FALSE(http_cidr_list_contains(&l, "10.0.0.1"));
    CU_ASSERT_EQUAL(http_cidr_list_default(&l), 0);
    CU_ASSERT_EQUAL(l.n, 6);
    CU_ASSERT_TRUE(http_cidr_list_contains(&l, "10.1.2.3"));
    CU_ASSERT_TRUE(http_cidr_list_contains(&l, "127.0.0.1"));
    CU_ASSERT_TRUE(http_cidr_list_contains(&l, "172.31.255.255"));
    CU_ASSERT_FALSE(http_cidr_list_contains(&l, "172.32.0.0"));
    CU_ASSERT_FALSE(http_cidr_list_contains(&l, "172.15.255.255"));
    CU_ASSERT_TRUE(http_cidr_list_contains(&l, "192.168.1.1"));
    CU_ASSERT_FALSE(http_cidr_list_contains(&l, "192.169.0.1"));
    CU_ASSERT_TRUE(http_cidr_list_contains(&l, "::1"));
    CU_ASSERT_FALSE(http_cidr_list_contains(&l, "::2"));
    CU_ASSERT_TRUE(http_cidr_list_contains(&l, "fd12:3456::1"));
    CU_ASSERT_FALSE(http_cidr_list_contains(&l, "fe80::1"));
    CU_ASSERT_TRUE(http_cidr_list_contains(&l, "::ffff:10.0.0.1"));
    CU_ASSERT_FALSE(http_cidr_list_contains(&l, "::ffff:8.8.8.8"));
    CU_ASSERT_FALSE(http_cidr_list_contains(&l, "8.8.8.8"));
    CU_ASSERT_FALSE(http_cidr_list_contains(&l, "not-an-ip"));
    CU_ASSERT_FALSE(http_cidr_list_contains(&l, ""));
    CU_ASSERT_FALSE(http_cidr_list_contains(&l, NULL));
    http_cidr_list_clear(&l);
    CU_ASSERT_EQUAL(l.n, 0);
    CU_ASSERT_PTR_NULL(l.v);

    /* /0 matches its whole family only; an odd prefix length. */
    CU_ASSERT_EQUAL(http_cidr_parse("0.0.0.0/0", &c), 0);
    CU_ASSERT_EQUAL(http_cidr_list_add(&l, &c), 0);
    CU_ASSERT_TRUE(http_cidr_list_contains(&l, "203.0.113.9"));
    CU_ASSERT_FALSE(http_cidr_list_contains(&l, "2001:db8::1"));
    CU_ASSERT_EQUAL(http_cidr_parse("2001:db8:8000::/33", &c), 0);
    CU_ASSERT_EQUAL(http_cidr_list_add(&l, &c), 0);
    CU_ASSERT_TRUE(http_cidr_list_contains(&l, "2001:db8:8000::1"));
    CU_ASSERT_FALSE(http_cidr_list_contains(&l, "2001:db8:7fff::1"));
    http_cidr_list_clear(&l);
    http_cidr_list_clear(NULL);
}

#define CLIENT_IS(peer, xff, want)                                                         \
    do {                                                                                   \
        char out_[HTTP_IP_STRLEN];                                                          \
        http_client_ip((peer), (xff), &l, out_, sizeof(out_));                              \
        CU_ASSERT_STRING_EQUAL(out_, (want));                                              \
    } while (0)

static void test_client_ip(void)
{
    http_cidr_list_t l = {0};

    CU_ASSERT_EQUAL(http_cidr_list_default(&l), 0);
    /* No XFF, or an untrusted peer: the peer, whatever XFF says. */
    CLIENT_IS("203.0.113.5", NULL, "203.0.113.5");
    CLIENT_IS("203.0.113.5", "1.1.1.1", "203.0.113.5");
    CLIENT_IS("203.0.113.5", "10.0.0.1", "203.0.113.5");
    CLIENT_IS("10.0.0.2", NULL, "10.0.0.2");
    CLIENT_IS("10.0.0.2", "", "10.0.0.2");
    /* Trusted peer: the right-most untrusted hop. */
    CLIENT_IS("10.0.0.2", "198.51.100.7", "198.51.100.7");
    CLIENT_IS("10.0.0.2", "198.51.100.7, 10.0.0.3", "198.51.100.7");
    /* Spoofed left-most entries are ignored. */
    CLIENT_IS("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.3", "198.51.100.7");
    CLIENT_IS("10.0.0.2", "127.0.0.1,198.51.100.7", "198.51.100.7");
    /* All trusted: the left-most. */
    CLIENT_IS("10.0.0.2", "192.168.0.9, 10.0.0.3", "192.168.0.9");
    /* Ports, brackets, spaces, tabs. */
    CLIENT_IS("10.0.0.2", "198.51.100.7:5678", "198.51.100.7");
    CLIENT_IS("10.0.0.2", " \t2001:db8::7 ", "2001:db8::7");
    CLIENT_IS("10.0.0.2", "[2001:db8::7]", "2001:db8::7");
    CLIENT_IS("10.0.0.2", "[2001:db8::7]:443", "2001:db8::7");
    CLIENT_IS("10.0.0.2", "[2001:DB8:0::7]:443", "2001:db8::7");
    CLIENT_IS("::ffff:10.0.0.2", "::ffff:198.51.100.7", "198.51.100.7");
    /* Malformed hop: the walk stops at the last good address. */
    CLIENT_IS("10.0.0.2", "198.51.100.7, garbage", "10.0.0.2");
    CLIENT_IS("10.0.0.2", "198.51.100.7, unknown, 10.0.0.3", "10.0.0.3");
    CLIENT_IS("10.0.0.2", "198.51.100.7,,10.0.0.3", "10.0.0.3");
    CLIENT_IS("10.0.0.2", "198.51.100.7, 10.0.0.3,", "10.0.0.2");
    CLIENT_IS("10.0.0.2", "[1.2.3.4]", "10.0.0.2");
    CLIENT_IS("10.0.0.2", "1.2.3.4:99999", "10.0.0.2");
    CLIENT_IS("10.0.0.2", "1.2.3.4:", "10.0.0.2");
    CLIENT_IS("10.0.0.2", "[2001:db8::7", "10.0.0.2");
    CLIENT_IS("10.0.0.2", "[2001:db8::7]x", "10.0.0.2");
    CLIENT_IS("10.0.0.2", "2001:db8::7:80:x", "10.0.0.2");
    CLIENT_IS("10.0.0.2", "fe80::1%eth0", "10.0.0.2");
    CLIENT_IS("10.0.0.2", "evil, 1.2.3.4", "1.2.3.4");
    CLIENT_IS("10.0.0.2", ",", "10.0.0.2");
    /* A non-IP peer is passed on. */
    CLIENT_IS("unix", "1.2.3.4", "unix");
    {
        char small[4];
        http_client_ip("203.0.113.5", NULL, &l, small, sizeof(small));
        CU_ASSERT_STRING_EQUAL(small, "203");
    }
    http_cidr_list_clear(&l);
}

/* Per-IP keys: an IPv6 client owns its /64, so the key is the prefix. */
static void test_ip_key(void)
{
    static const struct {
        const char *ip;
        unsigned prefix;
        const char *key;
    } v[] = {
        {"203.0.113.7", 64, "203.0.113.7"},
        {"::ffff:203.0.113.7", 64, "203.0.113.7"}, /* v4-mapped: the v4 address */
        {"::FFFF:cb00:7107", 48, "203.0.113.7"},
        {"2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"},
        {"2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"},
        {"2001:DB8:1:2::1", 64, "2001:db8:1:2::/64"},
        {"2001:db8:1:3::1", 64, "2001:db8:1:3::/64"},
        {"2001:db8:1:2ff::1", 56, "2001:db8:1:200::/56"},
        {"2001:db8:abcd:12::1", 48, "2001:db8:abcd::/48"},
        {"2001:db8:abcd:12::1", 33, "2001:db8:8000::/33"},
        {"2001:db8:7fff::1", 33, "2001:db8::/33"},
        {"2001:db8::1:2", 127, "2001:db8::1:2/127"},
        {"2001:db8::1:3", 127, "2001:db8::1:2/127"},
        {"2001:db8::1:3", 128, "2001:db8::1:3"},
        {"::1", 64, "::/64"},
        {"::1", 128, "::1"},
        {"unix:/run/x", 64, "unix:/run/x"}, /* not an address: as it is */
        {"", 64, ""},
    };
    char out[HTTP_IP_KEY_STRLEN];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        memset(out, 'x', sizeof(out));
        http_ip_key(v[i].ip, v[i].prefix, out, sizeof(out));
        if (strcmp(out, v[i].key) != 0)
            fprintf(stderr, "\n  %s /%u: %s, want %s", v[i].ip, v[i].prefix, out, v[i].key);
        CU_ASSERT_STRING_EQUAL(out, v[i].key);
    }
    /* the longest key fits */
    http_ip_key("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 127, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
    http_ip_key(NULL, 64, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "");
    http_ip_key("2001:db8::1", 64, out, 5); /* truncated, terminated */
    CU_ASSERT_STRING_EQUAL(out, "2001");
}

static void test_hostport(void)
{
    char host[64];
    uint16_t port = 0;

    CU_ASSERT_EQUAL(http_parse_hostport("0.0.0.0:8080", host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "0.0.0.0");
    CU_ASSERT_EQUAL(port, 8080);
    CU_ASSERT_EQUAL(http_parse_hostport("[::]:9090", host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "::");
    CU_ASSERT_EQUAL(port, 9090);
    CU_ASSERT_EQUAL(http_parse_hostport(":8080", host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "0.0.0.0");
    CU_ASSERT_EQUAL(http_parse_hostport("redis-0.redis:6379", host, sizeof(host), &port),
                    0);
    CU_ASSERT_STRING_EQUAL(host, "redis-0.redis");
    CU_ASSERT_EQUAL(port, 6379);
    CU_ASSERT_EQUAL(http_parse_hostport("127.0.0.1:65535", host, sizeof(host), &port), 0);
    CU_ASSERT_EQUAL(port, 65535);

    CU_ASSERT_EQUAL(http_parse_hostport("0.0.0.0", host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(http_parse_hostport("0.0.0.0:", host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(http_parse_hostport("0.0.0.0:65536", host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(http_parse_hostport("0.0.0.0:80a", host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(http_parse_hostport("::1:8080", host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(http_parse_hostport("[::1]8080", host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(http_parse_hostport("[::1]", host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(http_parse_hostport("[1.2.3.4]:80", host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(http_parse_hostport("[nothost]:80", host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(http_parse_hostport("a b:80", host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(http_parse_hostport("", host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(http_parse_hostport("verylonghostname:80", host, 8, &port), -1);
}

static const unit_test_t tests[] = {
    {"cidr_parse_ok", test_cidr_parse_ok},
    {"cidr_parse_bad", test_cidr_parse_bad},
    {"cidr_list", test_cidr_list},
    {"client_ip", test_client_ip},
    {"hostport", test_hostport},
    {"ip_key", test_ip_key},
    {NULL, NULL},
};

int test_http_net_add(void)
{
    return unit_add_suite("http_net", tests);
}
