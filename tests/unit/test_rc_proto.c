/* test_rc_proto.c — the Redis client's pure parts: CRC16 / key slots, hash
 * tags, redis:// URLs, MOVED/ASK errors, RESP replies through hiredis's
 * reader (every type, nesting, partial feeds).  No network. */
#include <string.h>

#include <hiredis/hiredis.h>

#include "tollgate/rc.h"
#include "tollgate/rc.h"
#include "unit.h"

#define SLOT(s) rc_slot((s), strlen(s))

static void test_slot_vectors(void)
{
    /* The spec's check value: CRC16-XMODEM("123456789") = 0x31C3. */
    CU_ASSERT_EQUAL(SLOT("123456789"), 0x31C3 & 16383);
    /* Values redis-server's CLUSTER KEYSLOT gives. */
    CU_ASSERT_EQUAL(SLOT("foo"), 12182);
    CU_ASSERT_EQUAL(SLOT("bar"), 5061);
    CU_ASSERT_EQUAL(SLOT(""), 0);
    CU_ASSERT_EQUAL(SLOT("user1000"), 3443);
    CU_ASSERT(SLOT("a") < RC_NSLOTS);
}

static void test_slot_hash_tags(void)
{
    /* Same tag, same slot; the slot is that of the tag's content. */
    CU_ASSERT_EQUAL(SLOT("{user1000}.following"), SLOT("user1000"));
    CU_ASSERT_EQUAL(SLOT("{user1000}.followers"), SLOT("{user1000}.following"));
    CU_ASSERT_EQUAL(SLOT("tg:{client:42}:b:default"), SLOT("client:42"));
    /* Empty tag: the whole key is hashed. */
    CU_ASSERT_EQUAL(SLOT("foo{}{bar}"), rc_slot("foo{}{bar}", 10));
    CU_ASSERT_NOT_EQUAL(SLOT("foo{}{bar}"), SLOT("bar"));
    CU_ASSERT_EQUAL(SLOT("{}"), rc_slot("{}", 2));
    /* '{' without '}': whole key. */
    CU_ASSERT_EQUAL(SLOT("{"), rc_slot("{", 1));
    CU_ASSERT_EQUAL(SLOT("foo{bar"), rc_slot("foo{bar", 7));
    CU_ASSERT_NOT_EQUAL(SLOT("foo{bar"), SLOT("bar"));
    /* First '{' to the first '}' after it: the tag is "{bar". */
    CU_ASSERT_EQUAL(SLOT("foo{{bar}}zap"), SLOT("{bar"));
    /* Only the first tag counts. */
    CU_ASSERT_EQUAL(SLOT("foo{bar}{zap}"), SLOT("bar"));
    /* Binary keys: length, not NUL, ends the key. */
    CU_ASSERT_EQUAL(rc_slot("a\0b", 3), rc_slot("a\0b", 3));
    CU_ASSERT_NOT_EQUAL(rc_slot("a\0b", 3), rc_slot("a", 1));
}

static void test_url_ok(void)
{
    rc_url_t u;
    char err[128];

    CU_ASSERT_EQUAL(rc_url_parse("redis://localhost", &u, err, sizeof(err)), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "localhost");
    CU_ASSERT_EQUAL(u.port, 6379);
    CU_ASSERT_EQUAL(u.tls, 0);
    CU_ASSERT_EQUAL(u.has_password, 0);
    CU_ASSERT_EQUAL(u.db, 0);

    CU_ASSERT_EQUAL(
        rc_url_parse("rediss://app:s3cr%40t@redis-0.redis:6380/2", &u, err, sizeof(err)),
        0);
    CU_ASSERT_EQUAL(u.tls, 1);
    CU_ASSERT_STRING_EQUAL(u.username, "app");
    CU_ASSERT_STRING_EQUAL(u.password, "s3cr@t");
    CU_ASSERT_STRING_EQUAL(u.host, "redis-0.redis");
    CU_ASSERT_EQUAL(u.port, 6380);
    CU_ASSERT_EQUAL(u.db, 2);
    rc_url_wipe(&u);
    CU_ASSERT_EQUAL(u.password[0], '\0');

    /* Password only (the legacy form), unescaped '@' and ':' in it. */
    CU_ASSERT_EQUAL(rc_url_parse("redis://:p@ss:w@10.0.0.1:7000/", &u, err, sizeof(err)),
                    0);
    CU_ASSERT_EQUAL(u.has_username, 0);
    CU_ASSERT_STRING_EQUAL(u.password, "p@ss:w");
    CU_ASSERT_STRING_EQUAL(u.host, "10.0.0.1");
    CU_ASSERT_EQUAL(u.port, 7000);

    CU_ASSERT_EQUAL(rc_url_parse("redis://[::1]:6390", &u, err, sizeof(err)), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "::1");
    CU_ASSERT_EQUAL(u.port, 6390);
    CU_ASSERT_EQUAL(rc_url_parse("redis://[fe80::1]", &u, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(u.port, 6379);

    /* User without password. */
    CU_ASSERT_EQUAL(rc_url_parse("redis://bob@h", &u, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(u.has_username, 1);
    CU_ASSERT_EQUAL(u.has_password, 0);
}

static void test_url_bad(void)
{
    static const char *bad[] = {
        "http://localhost",
        "redis:/localhost",
        "redis://",
        "redis://:pw@",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:12x",
        "redis://host:",
        "redis://host/abc",
        "redis://host/-1",
        "redis://host?db=1",
        "redis://[::1",
        "redis://[::1]x",
        "redis://u:bad%zzsecret@host",
        "redis://u:nul%00secret@host",
        "redis://ho st",
        NULL,
    };
    rc_url_t u;
    char err[128];

    for (size_t i = 0; bad[i] != NULL; i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(rc_url_parse(bad[i], &u, err, sizeof(err)), -1);
        CU_ASSERT(err[0] != '\0');
        CU_ASSERT_EQUAL(u.password[0], '\0');
    }
}

static void test_url_no_secret_in_error(void)
{
    static const char *urls[] = {
        "redis://u:topsecretpw@host:99999",
        "redis://u:topsecretpw@host/notadb",
        "redis://u:topsecretpw%@host",
        "redis://u:topsecretpw@[::1",
        "redis://u:topsecretpw@host?x=1",
        "ftp://u:topsecretpw@host",
        NULL,
    };
    rc_url_t u;
    char err[256];

    for (size_t i = 0; urls[i] != NULL; i++) {
        CU_ASSERT_EQUAL(rc_url_parse(urls[i], &u, err, sizeof(err)), -1);
        CU_ASSERT_PTR_NULL(strstr(err, "topsecret"));
    }
}

static void test_redirect_parse(void)
{
    rc_redirect_t rd;
    const char *m = "MOVED 3999 127.0.0.1:6381";
    const char *a = "ASK 16383 [::1]:7002";
    const char *h = "MOVED 0 redis-2.redis.default.svc:6379";

    CU_ASSERT_EQUAL(rc_redirect_parse(m, strlen(m), &rd), 0);
    CU_ASSERT_EQUAL(rd.kind, RC_REDIR_MOVED);
    CU_ASSERT_EQUAL(rd.slot, 3999);
    CU_ASSERT_STRING_EQUAL(rd.host, "127.0.0.1");
    CU_ASSERT_EQUAL(rd.port, 6381);
    CU_ASSERT_EQUAL(rc_redirect_parse(a, strlen(a), &rd), 0);
    CU_ASSERT_EQUAL(rd.kind, RC_REDIR_ASK);
    CU_ASSERT_EQUAL(rd.slot, 16383);
    CU_ASSERT_STRING_EQUAL(rd.host, "::1");
    CU_ASSERT_EQUAL(rd.port, 7002);
    CU_ASSERT_EQUAL(rc_redirect_parse(h, strlen(h), &rd), 0);
    CU_ASSERT_STRING_EQUAL(rd.host, "redis-2.redis.default.svc");

    static const char *bad[] = {
        "MOVED",
        "MOVED ",
        "MOVED 3999",
        "MOVED 3999 ",
        "MOVED 16384 h:1",
        "MOVED x h:1",
        "MOVED 1 h",
        "MOVED 1 h:",
        "MOVED 1 h:0",
        "MOVED 1 :80",
        "ASK 1 h:70000",
        "ASKING",
        "NOSCRIPT No matching script",
        "ERR MOVED 1 h:1",
        "MOVED 99999999999 h:1",
        "MOVED 1 [::1:80",
        NULL,
    };
    for (size_t i = 0; bad[i] != NULL; i++) {
        CU_ASSERT_EQUAL(rc_redirect_parse(bad[i], strlen(bad[i]), &rd), -1);
        CU_ASSERT_EQUAL(rd.kind, RC_REDIR_NONE);
    }
}

static void test_hostport_parse(void)
{
    char host[64];
    unsigned port;

    CU_ASSERT_EQUAL(rc_hostport_parse("a:1", 3, host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "a");
    CU_ASSERT_EQUAL(port, 1);
    CU_ASSERT_EQUAL(rc_hostport_parse("::1:6379", 8, host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "::1");
    CU_ASSERT_EQUAL(rc_hostport_parse("[::1]:6379", 10, host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "::1");
    CU_ASSERT_EQUAL(rc_hostport_parse("localhost", 9, host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(rc_hostport_parse("h:123456", 8, host, sizeof(host), &port), -1);
    CU_ASSERT_EQUAL(rc_hostport_parse("h:1", 3, host, 1, &port), -1);
}

/* Feed `s` to a fresh reader in pieces of `step` bytes; the one reply. */
static redisReply *read_one(const char *s, size_t len, size_t step)
{
    redisReader *r = rc_reader_new();
    void *reply = NULL;

    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;

        CU_ASSERT_EQUAL(redisReaderFeed(r, s + off, n), REDIS_OK);
        if (off + n < len) {
            CU_ASSERT_EQUAL(redisReaderGetReply(r, &reply), REDIS_OK);
            CU_ASSERT_PTR_NULL(reply); /* not complete yet */
        }
    }
    CU_ASSERT_EQUAL(redisReaderGetReply(r, &reply), REDIS_OK);
    redisReaderFree(r);
    return reply;
}

/* An announced array over RC_MAX_ARRAY is an error, not an allocation (the
 * fuzzer found "*999999999" making hiredis 0.14 ask for 8 GB). */
static void test_resp_array_bound(void)
{
    static const char huge[] = "*999999999\r\n:1\r\n";
    static const char nested[] = "*2\r\n*100001\r\n";
    static const char ok[] = "*3\r\n:1\r\n:2\r\n:3\r\n";
    redisReader *r = rc_reader_new();
    redisReply *x;
    void *v = NULL;

    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    redisReaderFeed(r, huge, sizeof(huge) - 1);
    CU_ASSERT_EQUAL(redisReaderGetReply(r, &v), REDIS_ERR);
    CU_ASSERT_PTR_NULL(v);
    redisReaderFree(r);
    r = rc_reader_new();
    redisReaderFeed(r, nested, sizeof(nested) - 1);
    CU_ASSERT_EQUAL(redisReaderGetReply(r, &v), REDIS_ERR);
    redisReaderFree(r);
    x = read_one(ok, sizeof(ok) - 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_EQUAL(x->type, REDIS_REPLY_ARRAY);
    CU_ASSERT_EQUAL(x->elements, 3);
    freeReplyObject(x);
}

static void test_resp_types(void)
{
    static const char all[] = "+OK\r\n-ERR bad\r\n:-42\r\n$5\r\nhe\r\no\r\n$-1\r\n*-1\r\n"
                              "*0\r\n$0\r\n\r\n";
    for (size_t step = 1; step <= 3; step++) {
        redisReader *r = rc_reader_new();
        void *v;
        redisReply *x;
        int seen = 0;

        for (size_t off = 0; off < sizeof(all) - 1; off += step) {
            size_t n = sizeof(all) - 1 - off < step ? sizeof(all) - 1 - off : step;

            redisReaderFeed(r, all + off, n);
            while (redisReaderGetReply(r, &v) == REDIS_OK && v != NULL) {
                x = v;
                switch (seen++) {
                case 0:
                    CU_ASSERT(x->type == REDIS_REPLY_STATUS && strcmp(x->str, "OK") == 0);
                    break;
                case 1:
                    CU_ASSERT(x->type == REDIS_REPLY_ERROR &&
                              strcmp(x->str, "ERR bad") == 0);
                    break;
                case 2:
                    CU_ASSERT(x->type == REDIS_REPLY_INTEGER && x->integer == -42);
                    break;
                case 3:
                    CU_ASSERT(x->type == REDIS_REPLY_STRING && x->len == 5 &&
                              memcmp(x->str, "he\r\no", 5) == 0);
                    break;
                case 4:
                case 5:
                    CU_ASSERT_EQUAL(x->type, REDIS_REPLY_NIL);
                    break;
                case 6:
                    CU_ASSERT(x->type == REDIS_REPLY_ARRAY && x->elements == 0);
                    break;
                case 7:
                    CU_ASSERT(x->type == REDIS_REPLY_STRING && x->len == 0);
                    break;
                }
                freeReplyObject(x);
            }
        }
        CU_ASSERT_EQUAL(seen, 8);
        redisReaderFree(r);
    }
}

static void test_resp_nested(void)
{
    /* A CLUSTER SLOTS reply: [[0, 5460, [ip, port, id], [ip, port, id]]]. */
    static const char s[] = "*1\r\n*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n"
                            "$3\r\nid1\r\n*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$3\r\nid2\r\n";
    redisReply *r = read_one(s, sizeof(s) - 1, 7);

    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->type, REDIS_REPLY_ARRAY);
    CU_ASSERT_EQUAL_FATAL(r->elements, 1);
    CU_ASSERT_EQUAL_FATAL(r->element[0]->elements, 4);
    CU_ASSERT_EQUAL(r->element[0]->element[1]->integer, 5460);
    CU_ASSERT_STRING_EQUAL(r->element[0]->element[2]->element[0]->str, "127.0.0.1");
    CU_ASSERT_EQUAL(r->element[0]->element[3]->element[1]->integer, 7003);
    freeReplyObject(r);

    /* Mixed nesting with nil and error inside, the shape of a script reply. */
    static const char t[] = "*3\r\n*2\r\n:1\r\n$-1\r\n-ERR x\r\n*1\r\n*1\r\n*0\r\n";
    r = read_one(t, sizeof(t) - 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->element[0]->element[1]->type, REDIS_REPLY_NIL);
    CU_ASSERT_EQUAL(r->element[1]->type, REDIS_REPLY_ERROR);
    CU_ASSERT_EQUAL(r->element[2]->element[0]->element[0]->elements, 0);
    freeReplyObject(r);
}

static void test_resp_protocol_error(void)
{
    redisReader *r = rc_reader_new();
    void *v = NULL;

    redisReaderFeed(r, "?what\r\n", 7);
    CU_ASSERT_EQUAL(redisReaderGetReply(r, &v), REDIS_ERR);
    CU_ASSERT_PTR_NULL(v);
    redisReaderFree(r);
}

static void test_format_argv(void)
{
    const char *argv[] = {"SET", "k", "a b"};
    char *buf = NULL;
    int n = redisFormatCommandArgv(&buf, 3, argv, NULL);

    CU_ASSERT_EQUAL(n, (int)strlen("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na b\r\n"));
    CU_ASSERT_EQUAL(memcmp(buf, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na b\r\n", (size_t)n),
                    0);
    redisFreeCommand(buf);
}

int test_rc_proto_add(void)
{
    static const unit_test_t tests[] = {
        {"slot vectors", test_slot_vectors},
        {"slot hash tags", test_slot_hash_tags},
        {"url ok", test_url_ok},
        {"url bad", test_url_bad},
        {"url error never shows the password", test_url_no_secret_in_error},
        {"MOVED/ASK parsing", test_redirect_parse},
        {"host:port parsing", test_hostport_parse},
        {"RESP every type, partial feeds", test_resp_types},
        {"RESP arrays bounded (RC_MAX_ARRAY)", test_resp_array_bound},
        {"RESP nested arrays", test_resp_nested},
        {"RESP protocol error", test_resp_protocol_error},
        {"command formatting", test_format_argv},
        {NULL, NULL},
    };
    return unit_add_suite("rc_proto", tests);
}
