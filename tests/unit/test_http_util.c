/* test_http_util.c — request ids, path normalization, CORS, redaction. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tollgate/http.h"
#include "unit.h"

/* Feed `s` (len bytes) in pieces of `step`; the scanner's verdict. */
static http_head_scan_t head_scan(const char *s, size_t len, size_t step)
{
    http_head_scan_t h;

    http_head_scan_start(&h);
    for (size_t off = 0; off < len; off += step)
        http_head_scan_feed(&h, s + off, len - off < step ? len - off : step);
    return h;
}

static void test_head_scan(void)
{
#define HEAD(lit, nul, in_head) {lit, sizeof(lit) - 1, nul, in_head}
    static const struct {
        const char *s;
        size_t len;
        bool nul, in_head;
    } cases[] = {
        HEAD("GET / HTTP/1.1\r\nHost: a\r\n\r\n", false, false),
        HEAD("GET / HTTP/1.1\nHost: a\n\n", false, false), /* bare LF */
        HEAD("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", true, false),
        HEAD("GET /\0 HTTP/1.1\r\n\r\n", true, false), /* in the request line */
        HEAD("GET / HTTP/1.1\r\nX: a\r\n\r\nbo\0dy", false, false), /* a body */
        HEAD("GET / HTTP/1.1\r\nX: a", false, true),           /* still arriving */
        HEAD("GET / HTTP/1.1\r\nX: a\r\n\r", false, true),     /* CR, no LF yet */
        HEAD("GET / HTTP/1.1\r\nX:\0", true, true),
        HEAD("GET / HTTP/1.1\r\nX: \r\0\r\n\r\n", true, false), /* CR then NUL */
        HEAD("GET / HTTP/1.1\r\n\r\0\r\n\r\n", true, false), /* CR NUL: a line, not the end */
    };
#undef HEAD

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (size_t step = 1; step <= cases[i].len; step++) {
            http_head_scan_t h = head_scan(cases[i].s, cases[i].len, step);

            CU_ASSERT_EQUAL(h.nul, cases[i].nul);
            CU_ASSERT_EQUAL(h.in_head, cases[i].in_head);
        }
}

/* The request line's method as conn.c reads it (in every piece size): a
 * token ended by SP, cut to 15 bytes; anything else is left to libevent. */
static void test_head_scan_method(void)
{
#define M(lit, state, method) {lit, sizeof(lit) - 1, state, method}
    static const struct {
        const char *s;
        size_t len;
        unsigned char state;
        const char *method;
    } cases[] = {
        M("GET / HTTP/1.1\r\n\r\n", HTTP_HEAD_METHOD_TOKEN, "GET"),
        M("PURGE /x HTTP/1.1\r\n\r\n", HTTP_HEAD_METHOD_TOKEN, "PURGE"),
        M("get / HTTP/1.1\r\n\r\n", HTTP_HEAD_METHOD_TOKEN, "get"),
        M("X-Y.Z~!#$%&'*+^_`| / HTTP/1.1\r\n\r\n", HTTP_HEAD_METHOD_TOKEN,
          "X-Y.Z~!#$%&'*+^"),
        M("AVERYLONGEXTENSIONMETHOD / HTTP/1.1\r\n\r\n", HTTP_HEAD_METHOD_TOKEN,
          "AVERYLONGEXTENS"),
        M("GE\x01T / HTTP/1.1\r\n\r\n", HTTP_HEAD_METHOD_BAD, "GE"),
        M("GE\"T / HTTP/1.1\r\n\r\n", HTTP_HEAD_METHOD_BAD, "GE"),
        M(" GET / HTTP/1.1\r\n\r\n", HTTP_HEAD_METHOD_BAD, ""), /* no method */
        M("\r\nGET / HTTP/1.1\r\n\r\n", HTTP_HEAD_METHOD_BAD, ""),
        M("GET\t/ HTTP/1.1\r\n\r\n", HTTP_HEAD_METHOD_BAD, "GET"),
        M("DELETE", HTTP_HEAD_METHOD_READING, "DELETE"), /* still arriving */
        M("G\0T / HTTP/1.1\r\n\r\n", HTTP_HEAD_METHOD_BAD, "G"),
    };
#undef M

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (size_t step = 1; step <= cases[i].len; step++) {
            http_head_scan_t h = head_scan(cases[i].s, cases[i].len, step);

            CU_ASSERT_EQUAL(h.mstate, cases[i].state);
            CU_ASSERT_STRING_EQUAL(h.method, cases[i].method);
        }
}

/* The head's length and the Content-Length it declares, fed in every piece
 * size: what conn.c refuses with 431 / 413 before libevent reads further. */
static void test_head_scan_sizes(void)
{
#define HEAD(lit, len, has, clen) {lit, sizeof(lit) - 1, len, has, clen}
    static const struct {
        const char *s;
        size_t n, len;
        bool has_clen;
        uint64_t clen;
    } cases[] = {
        HEAD("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", 27, false, 0),
        HEAD("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n", 39, true, 12),
        HEAD("POST / HTTP/1.1\ncontent-LENGTH:7\n\n", 34, true, 7),
        HEAD("POST / HTTP/1.1\r\nContent-Length: \t 99 \t\r\n\r\n", 43, true, 99),
        /* the largest of two; saturating */
        HEAD("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 70\r\n\r\n", 58, true,
             70),
        HEAD("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 60, true,
             UINT64_MAX),
        /* not plain Content-Length lines: left to libevent and dec_hdrs_scan */
        HEAD("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 41, false, 0),
        HEAD("POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", 39, false, 0),
        HEAD("POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 39, false, 0),
        HEAD("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 36, false, 0),
        HEAD("POST / HTTP/1.1\r\nContent-Length: 5\r5\r\n\r\n", 40, false, 0),
        HEAD("POST / HTTP/1.1\r\nX-Content-Length: 5\r\n\r\n", 40, false, 0),
        HEAD("Content-Length: 5 / HTTP/1.1\r\n\r\n", 32, false, 0), /* request line */
        HEAD("POST / HTTP/1.1\r\nContent-Length: 5\0\r\n\r\n", 39, false, 0),
        /* after the head: the body's bytes are no header */
        HEAD("POST / HTTP/1.1\r\n\r\nContent-Length: 5\r\n", 19, false, 0),
        HEAD("GET / HTTP/1.1\r\nX: a", 20, false, 0), /* still arriving */
    };
#undef HEAD

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (size_t step = 1; step <= cases[i].n; step++) {
            http_head_scan_t h = head_scan(cases[i].s, cases[i].n, step);

            CU_ASSERT_EQUAL(h.len, cases[i].len);
            CU_ASSERT_EQUAL(h.has_clen, cases[i].has_clen);
            CU_ASSERT_EQUAL(h.clen, cases[i].clen);
        }
}

static void test_reqid_valid(void)
{
    char s[80];

    CU_ASSERT_TRUE(http_reqid_valid("abc-DEF_123"));
    CU_ASSERT_TRUE(http_reqid_valid("a"));
    memset(s, 'x', 64);
    s[64] = '\0';
    CU_ASSERT_TRUE(http_reqid_valid(s));
    s[64] = 'x';
    s[65] = '\0';
    CU_ASSERT_FALSE(http_reqid_valid(s));
    CU_ASSERT_FALSE(http_reqid_valid(""));
    CU_ASSERT_FALSE(http_reqid_valid(NULL));
    CU_ASSERT_FALSE(http_reqid_valid("a b"));
    CU_ASSERT_FALSE(http_reqid_valid("a.b"));
    CU_ASSERT_FALSE(http_reqid_valid("a\nb"));
    CU_ASSERT_FALSE(http_reqid_valid("a\"b"));
    CU_ASSERT_FALSE(http_reqid_valid("caf\xc3\xa9"));
}

static bool uuid_ok(const char *u)
{
    static const char hexd[] = "0123456789abcdef";
    int i;

    if (strlen(u) != 36)
        return false;
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (u[i] != '-')
                return false;
        } else if (strchr(hexd, u[i]) == NULL || u[i] == '\0') {
            return false;
        }
    }
    return u[14] == '4' && strchr("89ab", u[19]) != NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

#define NIDS 2000

static void *gen_ids(void *arg)
{
    char(*ids)[37] = arg;
    int i;

    for (i = 0; i < NIDS; i++)
        http_reqid_new(ids[i]);
    return NULL;
}

static void test_reqid_new(void)
{
    char(*ids)[37] = calloc(2 * NIDS, 37);
    pthread_t t;
    int i;

    CU_ASSERT_FATAL(ids != NULL);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, gen_ids, ids + NIDS), 0);
    gen_ids(ids);
    pthread_join(t, NULL);
    for (i = 0; i < 2 * NIDS; i++) {
        if (!uuid_ok(ids[i]))
            CU_FAIL(ids[i]);
        CU_ASSERT_TRUE(http_reqid_valid(ids[i]));
    }
    qsort(ids, 2 * NIDS, 37, cmp_str);
    for (i = 1; i < 2 * NIDS; i++)
        CU_ASSERT_NOT_EQUAL(strcmp(ids[i - 1], ids[i]), 0);
    free(ids);
}

static void norm_is(const char *in, const char *want)
{
    char out[256];
    int n = http_path_normalize(in, strlen(in), out, sizeof(out), NULL);

    if (want == NULL) {
        if (n != -1)
            CU_FAIL(in);
        return;
    }
    if (n < 0 || strcmp(out, want) != 0 || (size_t)n != strlen(want)) {
        CU_FAIL(in);
        return;
    }
    /* Idempotent. */
    {
        char again[256];
        CU_ASSERT_EQUAL(http_path_normalize(out, (size_t)n, again, sizeof(again), NULL), n);
        CU_ASSERT_STRING_EQUAL(again, out);
    }
}

/* HTTP_PATH_DOTSEG: whether a dot segment was resolved (forward-auth
 * refuses those: the upstream gets the raw path). */
static void test_path_dotseg_flag(void)
{
    static const struct {
        const char *in;
        bool dot;
    } cases[] = {
        {"/a/b", false},      {"/a/./b", true},        {"/a/../b", true},   {"/a/%2e/b", true},
        {"/a/%2E%2e/b", true}, {"/a/.%2e/b", true},    {"/a/b/.", true},    {"/a/b/..", true},
        {"/a/..b/c", false},  {"/a/.well-known", false}, {"/a/.../b", false}, {"//a//b/", false},
    };
    char out[64];
    unsigned flags;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CU_ASSERT(http_path_normalize(cases[i].in, strlen(cases[i].in), out, sizeof(out),
                                      &flags) >= 0);
        CU_ASSERT_EQUAL(!!(flags & HTTP_PATH_DOTSEG), cases[i].dot);
    }
}

static void test_query_has(void)
{
    CU_ASSERT_TRUE(http_query_has("_method=DELETE", "_method"));
    CU_ASSERT_TRUE(http_query_has("a=1&_METHOD=x", "_method"));
    CU_ASSERT_TRUE(http_query_has("a=1;%5fmethod=x", "_method"));
    CU_ASSERT_TRUE(http_query_has(".method=x", "_method"));
    CU_ASSERT_TRUE(http_query_has("_method[]=x", "_method"));
    CU_ASSERT_TRUE(http_query_has("_method", "_method"));
    CU_ASSERT_FALSE(http_query_has("x_method=DELETE", "_method"));
    CU_ASSERT_FALSE(http_query_has("a=_method", "_method"));
    CU_ASSERT_FALSE(http_query_has("a=1&b=_method&c", "_method"));
    CU_ASSERT_FALSE(http_query_has("", "_method"));
    CU_ASSERT_FALSE(http_query_has(NULL, "_method"));
}

static void test_body_has_param(void)
{
    static const char form[] = "a=1&_method=DELETE", mp[] =
        "--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--b--\r\n";
    const char *json = "{\"a\":1,\"_method\":\"DELETE\"}";

    /* form: read as a query is; the length bounds it (no NUL needed) */
    CU_ASSERT_TRUE(http_body_has_param("application/x-www-form-urlencoded", form,
                                       sizeof form - 1, "_method"));
    CU_ASSERT_TRUE(http_body_has_param("Application/X-WWW-Form-Urlencoded; charset=utf-8",
                                       "%5Fmethod=x", 11, "_method"));
    CU_ASSERT_FALSE(http_body_has_param("application/x-www-form-urlencoded", form, 8,
                                        "_method")); /* "a=1&_met": cut before it */
    CU_ASSERT_FALSE(http_body_has_param("application/x-www-form-urlencoded", "a=_method", 9,
                                        "_method"));
    /* multipart: a part's name, quoted or not */
    CU_ASSERT_TRUE(http_body_has_param("multipart/form-data; boundary=b", mp, sizeof mp - 1,
                                       "_method"));
    CU_ASSERT_TRUE(http_body_has_param("multipart/form-data; boundary=b",
                                       "Content-Disposition: form-data; NAME=_method\r\n", 45,
                                       "_method"));
    CU_ASSERT_FALSE(http_body_has_param("multipart/form-data; boundary=b",
                                        "Content-Disposition: form-data; name=\"m\"\r\n\r\n_method",
                                        51, "_method"));
    /* JSON: a key so spelled */
    CU_ASSERT_TRUE(http_body_has_param("application/json", json, strlen(json), "_method"));
    CU_ASSERT_TRUE(http_body_has_param("application/vnd.api+json", json, strlen(json),
                                       "_method"));
    CU_ASSERT_FALSE(http_body_has_param("application/json", "{\"method\":1}", 12, "_method"));
    /* other types, no type, no body */
    CU_ASSERT_FALSE(http_body_has_param("text/plain", form, sizeof form - 1, "_method"));
    CU_ASSERT_FALSE(http_body_has_param(NULL, form, sizeof form - 1, "_method"));
    CU_ASSERT_FALSE(http_body_has_param("application/json", NULL, 0, "_method"));
    /* the types worth reading a body for */
    CU_ASSERT_TRUE(http_body_type_has_params("multipart/form-data; boundary=b"));
    CU_ASSERT_TRUE(http_body_type_has_params("application/problem+json"));
    CU_ASSERT_FALSE(http_body_type_has_params("application/octet-stream"));
    CU_ASSERT_FALSE(http_body_type_has_params(NULL));
}

static void test_hdr_method_override(void)
{
    CU_ASSERT_TRUE(http_hdr_method_override("X-HTTP-Method-Override"));
    CU_ASSERT_TRUE(http_hdr_method_override("x-http-method-override"));
    CU_ASSERT_TRUE(http_hdr_method_override("X_HTTP_Method_Override"));
    CU_ASSERT_TRUE(http_hdr_method_override("X.Http.Method"));
    CU_ASSERT_TRUE(http_hdr_method_override("X-Method-Override"));
    CU_ASSERT_FALSE(http_hdr_method_override("X-HTTP-Method-Overrides"));
    CU_ASSERT_FALSE(http_hdr_method_override("X-HTTP-Metho"));
    CU_ASSERT_FALSE(http_hdr_method_override("X-Forwarded-Method"));
    CU_ASSERT_FALSE(http_hdr_method_override("Method"));
    CU_ASSERT_FALSE(http_hdr_method_override(""));
}

static void test_path_normalize(void)
{
    norm_is("/", "/");
    norm_is("/a/./b/../c", "/a/c");
    norm_is("//a///b", "/a/b");
    norm_is("/%7Euser", "/~user");
    norm_is("/%7euser", "/~user");
    norm_is("/%41", "/A");
    norm_is("/a%20b", "/a%20b");
    norm_is("/a%3fb", "/a%3Fb");
    norm_is("/a%c3%a9", "/a%C3%A9");
    norm_is("/a/b/", "/a/b/");
    norm_is("/a/.", "/a/");
    norm_is("/a/..", "/");
    norm_is("/a/b/..", "/a/");
    norm_is("/a/b/../", "/a/");
    norm_is("/.", "/");
    norm_is("/./a", "/a");
    norm_is("/a/%2E%2E/b", "/b");
    norm_is("/a/.%2e/b", "/b");
    norm_is("/a/%2E/b", "/a/b");
    norm_is("/a/...", "/a/...");
    norm_is("/a/..b/.c", "/a/..b/.c");
    norm_is("/a//../b", "/b");
    norm_is("/api/v1/items", "/api/v1/items");
    norm_is("/\xc3\xa9", "/\xc3\xa9");

    norm_is("", NULL);
    norm_is("a/b", NULL);
    norm_is("/a%2fb", NULL);
    norm_is("/a%2Fb", NULL);
    norm_is("/..", NULL);
    norm_is("/../a", NULL);
    norm_is("/a/../..", NULL);
    norm_is("/a/../../b", NULL);
    norm_is("/%2e%2e", NULL);
    norm_is("/%zz", NULL);
    norm_is("/%4", NULL);
    norm_is("/%", NULL);
    norm_is("/%00", NULL);
    norm_is("/a\tb", NULL);
    norm_is("/a\x7f", NULL);
    {
        char out[8];
        CU_ASSERT_EQUAL(http_path_normalize("/a\0b", 4, out, sizeof(out), NULL), -1);
        CU_ASSERT_EQUAL(http_path_normalize("/abcdef", 7, out, sizeof(out), NULL), 7);
        CU_ASSERT_EQUAL(http_path_normalize("/abcdefg", 8, out, sizeof(out), NULL), -1);
        CU_ASSERT_EQUAL(http_path_normalize("/", 1, out, 1, NULL), -1);
        CU_ASSERT_EQUAL(http_path_normalize("/x", 1, out, 2, NULL), 1); /* only `len` counts */
        CU_ASSERT_STRING_EQUAL(out, "/");
    }
}

static void test_cors_check(void)
{
    static const char *const good[] = {
        "https://app.example.com", "http://localhost:3000", "https://a.b-c.example:443",
        "http://127.0.0.1:8080",   "https://[::1]:8443",    "https://xn--bcher-kva.example",
    };
    static const char *const bad[] = {
        "*",
        "https://*.example.com",
        "http://a.com/path",
        "http://a.com/",
        "ftp://x",
        "HTTPS://app.example.com",
        "https://App.example.com",
        "https://user@a.com",
        "https://a.com?x=1",
        "https://a.com#f",
        "https://a.com:",
        "https://a.com:0",
        "https://a.com:65536",
        "https://a.com:80x",
        "https://",
        "https://a..com",
        "https://.a.com",
        "https://a.com.",
        "https://-a.com",
        "https://a_b.com",
        "null",
        "",
        "app.example.com",
        "https://[::1",
    };
    char err[128];
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (http_cors_origin_check(good[i], err, sizeof(err)) != 0)
            CU_FAIL(good[i]);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (http_cors_origin_check(bad[i], err, sizeof(err)) == 0)
            CU_FAIL(bad[i]);
        CU_ASSERT(err[0] != '\0');
    }
    CU_ASSERT_EQUAL(http_cors_origin_check(NULL, NULL, 0), -1);
}

static void test_cors_allowed(void)
{
    char a0[] = "https://app.example.com", a1[] = "http://localhost:3000";
    char *allowed[] = {a0, a1};

    CU_ASSERT_TRUE(http_cors_origin_allowed("https://app.example.com", allowed, 2));
    CU_ASSERT_TRUE(http_cors_origin_allowed("HTTPS://APP.example.COM", allowed, 2));
    CU_ASSERT_TRUE(http_cors_origin_allowed("http://localhost:3000", allowed, 2));
    CU_ASSERT_FALSE(http_cors_origin_allowed("http://localhost:3001", allowed, 2));
    CU_ASSERT_FALSE(http_cors_origin_allowed("https://app.example.com.evil", allowed, 2));
    CU_ASSERT_FALSE(http_cors_origin_allowed("https://app.example.co", allowed, 2));
    CU_ASSERT_FALSE(http_cors_origin_allowed("null", allowed, 2));
    CU_ASSERT_FALSE(http_cors_origin_allowed(NULL, allowed, 2));
    CU_ASSERT_FALSE(http_cors_origin_allowed("https://app.example.com", allowed, 0));
}

static void redact_is(const char *in, const char *want)
{
    char out[256];

    http_redact_target(in, NULL, 0, out, sizeof(out));
    if (strcmp(out, want) != 0)
        CU_FAIL(in);
}

static void test_redact(void)
{
    char small[12];

    redact_is("/a/b", "/a/b");
    redact_is("/a?x=1", "/a?x=1");
    redact_is("/a?token=abc", "/a?token=REDACTED");
    redact_is("/a?x=1&access_token=abc&y=2", "/a?x=1&access_token=REDACTED&y=2");
    redact_is("/a?API_KEY=k&Ticket=t&password=p&Token=",
              "/a?API_KEY=REDACTED&Ticket=REDACTED&password=REDACTED&Token=REDACTED");
    redact_is("/a?tick%65t=secret", "/a?tick%65t=REDACTED");
    redact_is("/a?mytoken=x&token_type=bearer", "/a?mytoken=x&token_type=bearer");
    redact_is("/a?token", "/a?token");
    redact_is("/a?token=a=b&x", "/a?token=REDACTED&x");
    redact_is("/a?&&token=z&", "/a?&&token=REDACTED&");
    redact_is("/a?", "/a?");
    redact_is("", "");
    /* Truncation never lets a secret through. */
    http_redact_target("/a?token=supersecretvalue", NULL, 0, small, sizeof(small));
    CU_ASSERT_STRING_EQUAL(small, "/a?token=RE");
    http_redact_target("/abcdefghijklmnop", NULL, 0, small, sizeof(small));
    CU_ASSERT_STRING_EQUAL(small, "/abcdefghij");
    http_redact_target(NULL, NULL, 0, small, sizeof(small));
    CU_ASSERT_STRING_EQUAL(small, "");
}

/* Issue 7 §4: what IIS, Node, Tomcat/Spring and double decoders read as
 * another path is refused, or flagged for the route to decide. */
static void test_path_ambiguous(void)
{
    static const char *const refused[] = {
        "/papi\\admin", "/papi/%5cadmin", "/papi/%5Cadmin", "/papi/x/..;/admin",
        "/papi/x/.;/admin", "/papi/x/%2e%2e;/admin", "/papi/x/..;x=1/admin",
    };
    char out[256];
    unsigned flags = 99;

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (http_path_normalize(refused[i], strlen(refused[i]), out, sizeof(out), &flags) !=
            -1)
            CU_FAIL(refused[i]);
    /* ".%3B" is an ordinary segment: Tomcat strips raw ';' parameters before
     * it decodes, so an escaped one is a literal ';' there too. */
    CU_ASSERT_EQUAL(http_path_normalize("/a/.%3B/b", 9, out, sizeof(out), &flags), 9);
    CU_ASSERT_EQUAL(flags, 0);
    CU_ASSERT_EQUAL(http_path_normalize("/papi/%2561dmin", 15, out, sizeof(out), &flags), 15);
    CU_ASSERT_EQUAL(flags, HTTP_PATH_PCT25);
    CU_ASSERT_STRING_EQUAL(out, "/papi/%2561dmin");
    CU_ASSERT_EQUAL(http_path_normalize("/papi/%25", 9, out, sizeof(out), &flags), 9);
    CU_ASSERT_EQUAL(flags, 0); /* a lone %25 is a literal '%' */
    CU_ASSERT_EQUAL(http_path_normalize("/a;jsessionid=1/b", 17, out, sizeof(out), &flags), 17);
    CU_ASSERT_EQUAL(flags, HTTP_PATH_SEMICOLON);
    CU_ASSERT_EQUAL(http_path_normalize("/a/..x;/b", 9, out, sizeof(out), &flags), 9);
    CU_ASSERT_EQUAL(flags, HTTP_PATH_SEMICOLON);
    CU_ASSERT_EQUAL(http_path_normalize("/a/%3B/b", 8, out, sizeof(out), &flags), 8);
    CU_ASSERT_EQUAL(flags, 0);
}

static void test_redact_names(void)
{
    static const char *const names[] = {
        "token",  "access_token", "api_key", "ticket", "password",      "apikey",
        "api-key", "key",         "jwt",     "id_token", "refresh_token", "client_secret",
        "secret",
    };
    char *extra[] = {(char *)"session_hint"};
    char in[128], want[128], out[256];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(in, sizeof(in), "/a?x=1&%s=s3cr3t", names[i]);
        snprintf(want, sizeof(want), "/a?x=1&%s=REDACTED", names[i]);
        http_redact_target(in, NULL, 0, out, sizeof(out));
        if (strcmp(out, want) != 0)
            CU_FAIL(names[i]);
    }
    http_redact_target("/a?SESSION_hint=z&keyboard=q", extra, 1, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "/a?SESSION_hint=REDACTED&keyboard=q");
    http_redact_target("/a?session_hint=z", NULL, 0, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "/a?session_hint=z");
}

/* Issue 19 §3: a credential is redacted however a common framework reads
 * the query: ';' as a separator (Rack < 3, Go < 1.17, Python < 3.9.2,
 * Bottle, Perl CGI), bracket and dot keys (PHP, Rails, qs, Spring), PHP's
 * name mangling, '+', %uXXXX (ASP.NET), the non-ASCII letters that
 * Java's equalsIgnoreCase and .NET's OrdinalIgnoreCase fold to ASCII, a NUL
 * (PHP ends the name there), repeated keys, '#' and a nested URL. */
static void test_redact_readings(void)
{
    static const char *const cases[][2] = {
        {"/a?x=1;token=s3", "/a?x=1;token=REDACTED"},
        {"/a?;token=s3", "/a?;token=REDACTED"},
        /* a '&'-only reader takes "s3;y=2" as the value: all of it goes */
        {"/a?x=1;token=s3;y=2&z=3", "/a?x=1;token=REDACTED&z=3"},
        {"/a?token[]=s3", "/a?token[]=REDACTED"},
        {"/a?access_token%5B%5D=s3", "/a?access_token%5B%5D=REDACTED"},
        {"/a?access_token%5b%5d=s3&x=1", "/a?access_token%5b%5d=REDACTED&x=1"},
        {"/a?token[0]=s3&token[a][b]=s3", "/a?token[0]=REDACTED&token[a][b]=REDACTED"},
        {"/a?user[password]=s3", "/a?user[password]=REDACTED"},
        {"/a?user%5Bpassword%5D=s3", "/a?user%5Bpassword%5D=REDACTED"},
        {"/a?user.password=s3", "/a?user.password=REDACTED"},
        {"/a?access.token=s3", "/a?access.token=REDACTED"},
        {"/a?access+token=s3", "/a?access+token=REDACTED"},
        {"/a?access%20token=s3", "/a?access%20token=REDACTED"},
        {"/a?+token=s3", "/a?+token=REDACTED"},
        {"/a?%20%20token%20=s3", "/a?%20%20token%20=REDACTED"},
        {"/a?T%4FKEN=s3", "/a?T%4FKEN=REDACTED"},
        {"/a?%u0074oken=s3", "/a?%u0074oken=REDACTED"},
        {"/a?t%C4%B1cket=s3", "/a?t%C4%B1cket=REDACTED"},
        {"/a?%C4%B0d_token=s3", "/a?%C4%B0d_token=REDACTED"},
        {"/a?%C5%BFecret=s3", "/a?%C5%BFecret=REDACTED"},
        {"/a?%E2%84%AAey=s3", "/a?%E2%84%AAey=REDACTED"},
        {"/a?t\304\261cket=s3", "/a?t\304\261cket=REDACTED"}, /* raw UTF-8 */
        {"/a?token%00x=s3", "/a?token%00x=REDACTED"},
        {"/a?token=s3&token=s4", "/a?token=REDACTED&token=REDACTED"},
        {"/a?x=1#access_token=s3", "/a?x=1#access_token=REDACTED"},
        {"/a?next=/cb?token=s3&y=1", "/a?next=/cb?token=REDACTED&y=1"},
        /* not credentials under any reading */
        {"/a?mytoken=x&token_type=b&tokens=1&x=token",
         "/a?mytoken=x&token_type=b&tokens=1&x=token"},
        {"/a?token;x=1&token", "/a?token;x=1&token"},
        {"/a?tok%en=x&%=1&%u12=2&%E2%84=3", "/a?tok%en=x&%=1&%u12=2&%E2%84=3"},
    };
    char in[1024], want[1024], out[2048];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http_redact_target(cases[i][0], NULL, 0, out, sizeof(out));
        if (strcmp(out, cases[i][1]) != 0) {
            fprintf(stderr, "\n  redact: %s -> %s", cases[i][0], out);
            CU_FAIL(cases[i][0]);
        }
    }
    /* Padding does not push a name out of sight: a long bracket key before
     * or after it, or many spaces around it. */
    snprintf(in, sizeof(in), "/a?token[%0300d]=s3", 0);
    snprintf(want, sizeof(want), "/a?token[%0300d]=REDACTED", 0);
    http_redact_target(in, NULL, 0, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, want);
    snprintf(in, sizeof(in), "/a?x[%0300d][token]=s3", 0);
    snprintf(want, sizeof(want), "/a?x[%0300d][token]=REDACTED", 0);
    http_redact_target(in, NULL, 0, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, want);
    memcpy(in, "/a?", 3);
    memset(in + 3, '+', 300);
    memcpy(in + 303, "token+++=s3", 12);
    http_redact_target(in, NULL, 0, out, sizeof(out));
    CU_ASSERT_PTR_NULL(strstr(out, "s3"));
}

static void test_hdr_class(void)
{
    bool v = true;

    CU_ASSERT_EQUAL(http_hdr_class("Content-Type", &v), HTTP_HDR_PLAIN);
    CU_ASSERT_FALSE(v);
    CU_ASSERT_EQUAL(http_hdr_class("X-Auth-Scopes", &v), HTTP_HDR_IDENTITY);
    CU_ASSERT_FALSE(v);
    CU_ASSERT_EQUAL(http_hdr_class("X_Auth_Scopes", &v), HTTP_HDR_IDENTITY);
    CU_ASSERT_TRUE(v);
    CU_ASSERT_EQUAL(http_hdr_class("x.auth.subject", &v), HTTP_HDR_IDENTITY);
    CU_ASSERT_TRUE(v);
    CU_ASSERT_EQUAL(http_hdr_class("X-Auth-Client_Id", &v), HTTP_HDR_IDENTITY);
    CU_ASSERT_TRUE(v);
    CU_ASSERT_EQUAL(http_hdr_class("X_REQUEST_ID", &v), HTTP_HDR_VOUCHED);
    CU_ASSERT_TRUE(v);
    CU_ASSERT_EQUAL(http_hdr_class("X-Real-IP", &v), HTTP_HDR_VOUCHED);
    CU_ASSERT_FALSE(v);
    CU_ASSERT_EQUAL(http_hdr_class("x-forwarded_for", &v), HTTP_HDR_VOUCHED);
    CU_ASSERT_TRUE(v);
    CU_ASSERT_EQUAL(http_hdr_class("X-Forwarded-Prefix", &v), HTTP_HDR_FORWARDER);
    CU_ASSERT_FALSE(v);
    CU_ASSERT_EQUAL(http_hdr_class("X_Original_URI", &v), HTTP_HDR_FORWARDER);
    CU_ASSERT_TRUE(v);
    CU_ASSERT_EQUAL(http_hdr_class("Forwarded", &v), HTTP_HDR_FORWARDER);
    CU_ASSERT_EQUAL(http_hdr_class("X-Request-IDs", &v), HTTP_HDR_PLAIN);
    CU_ASSERT_EQUAL(http_hdr_class("X-Authorization", &v), HTTP_HDR_PLAIN);
    CU_ASSERT_EQUAL(http_hdr_class("X_Custom", &v), HTTP_HDR_PLAIN);
    CU_ASSERT_FALSE(v);
}

static void test_hdr_name_and_value(void)
{
    char out[64];

    CU_ASSERT_TRUE(http_hdr_name_ok("X-Foo_bar.baz!#$%&'*+^`|~9"));
    CU_ASSERT_FALSE(http_hdr_name_ok(""));
    CU_ASSERT_FALSE(http_hdr_name_ok("Transfer-Encoding "));
    CU_ASSERT_FALSE(http_hdr_name_ok("X-Foo bar"));
    CU_ASSERT_FALSE(http_hdr_name_ok("X-Foo\t"));
    CU_ASSERT_FALSE(http_hdr_name_ok("X(y)"));
    CU_ASSERT_FALSE(http_hdr_name_ok("X-\xc3\xbc"));
    CU_ASSERT_EQUAL(http_hdr_value_encode("svc-b", false, out, sizeof(out)), 5);
    CU_ASSERT_STRING_EQUAL(out, "svc-b");
    http_hdr_value_encode("\xc3\xbcser, admin; x%", false, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "%C3%BCser%2C%20admin;%20x%25");
    http_hdr_value_encode("a:read b,c", true, out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "a:read b%2Cc");
    /* Truncated to whole escapes. */
    CU_ASSERT_EQUAL(http_hdr_value_encode("ab,", false, out, 5), 2);
    CU_ASSERT_STRING_EQUAL(out, "ab");
    CU_ASSERT_EQUAL(http_hdr_value_encode(NULL, false, out, sizeof(out)), 0);
    CU_ASSERT_STRING_EQUAL(out, "");
}

/* A forked child does not repeat its parent's sequence of ids: without the
 * fork generation it would print exactly the parent's next id. */
static void test_reqid_after_fork(void)
{
    char before[37], mine[37], child[37] = "";
    int fd[2], status = -1;
    pid_t pid;

    http_reqid_new(before); /* this thread's generator is seeded */
    CU_ASSERT_EQUAL_FATAL(pipe(fd), 0);
    fflush(NULL);
    pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        char id[37];

        close(fd[0]);
        http_reqid_new(id);
        _exit(write(fd[1], id, sizeof id) == (ssize_t)sizeof id ? 0 : 1);
    }
    close(fd[1]);
    CU_ASSERT_EQUAL(read(fd[0], child, sizeof child), (ssize_t)sizeof child);
    close(fd[0]);
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    http_reqid_new(mine);
    CU_ASSERT(uuid_ok(child));
    CU_ASSERT_STRING_NOT_EQUAL(child, mine);
    CU_ASSERT_STRING_NOT_EQUAL(child, before);
}

static const unit_test_t tests[] = {
    {"path_ambiguous", test_path_ambiguous},
    {"redact_names", test_redact_names},
    {"redact_readings", test_redact_readings},
    {"hdr_class", test_hdr_class},
    {"hdr_name_and_value", test_hdr_name_and_value},
    {"head_scan", test_head_scan},
    {"head_scan_sizes", test_head_scan_sizes},
    {"head_scan_method", test_head_scan_method},
    {"path_dotseg_flag", test_path_dotseg_flag},
    {"hdr_method_override", test_hdr_method_override},
    {"query_has", test_query_has},
        {"body has a _method parameter (form, multipart, JSON)", test_body_has_param},
    {"reqid_valid", test_reqid_valid},
    {"reqid_new", test_reqid_new},
    {"reqid_after_fork", test_reqid_after_fork},
    {"path_normalize", test_path_normalize},
    {"cors_check", test_cors_check},
    {"cors_allowed", test_cors_allowed},
    {"redact", test_redact},
    {NULL, NULL},
};

int test_http_util_add(void)
{
    return unit_add_suite("http_util", tests);
}
