/* test_audit.c — audit line format (parsed back with jansson), buffering,
 * the flush timer, reopen, and concurrent writers. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "tollgate/audit.h"
#include "unit.h"

static audit_rec_t full_rec(void)
{
    audit_rec_t r = {
        .ts_ms = 1795556400123LL, /* 2026-11-24T21:40:00.123Z */
        .request_id = "req-1",
        .client_id = "orders-svc",
        .method = "GET",
        .target = "/api/x?a=1&token=s3cret",
        .status = 200,
        .duration_ms = 1.5,
        .ip = "203.0.113.5",
        .decision = "allow",
        .reason = "ok",
        .limit = "default",
        .upstream_status = 204,
    };
    return r;
}

static json_t *parse_line(const char *line, int n)
{
    json_error_t e;
    json_t *j;

    CU_ASSERT(n > 0 && line[n - 1] == '\n');
    CU_ASSERT_PTR_NULL(memchr(line, '\n', (size_t)n - 1));
    j = json_loadb(line, (size_t)n, 0, &e);
    if (j == NULL)
        CU_FAIL(e.text);
    return j;
}

static const char *sget(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

static void test_format_full(void)
{
    audit_rec_t r = full_rec();
    char line[4096];
    int n = audit_format(&r, line, sizeof(line));
    json_t *j = parse_line(line, n);

    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(json_object_size(j), 23);
    CU_ASSERT_STRING_EQUAL(sget(j, "ts"), "2026-11-24T21:40:00.123Z");
    CU_ASSERT_STRING_EQUAL(sget(j, "request_id"), "req-1");
    CU_ASSERT_STRING_EQUAL(sget(j, "client_id"), "orders-svc");
    CU_ASSERT_STRING_EQUAL(sget(j, "method"), "GET");
    CU_ASSERT_STRING_EQUAL(sget(j, "path"), "/api/x?a=1&token=REDACTED");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "status")), 200);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(j, "duration_ms")), 1.5, 1e-9);
    CU_ASSERT_STRING_EQUAL(sget(j, "ip"), "203.0.113.5");
    CU_ASSERT_STRING_EQUAL(sget(j, "decision"), "allow");
    CU_ASSERT_STRING_EQUAL(sget(j, "reason"), "ok");
    CU_ASSERT_STRING_EQUAL(sget(j, "limit"), "default");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "upstream_status")), 204);
    CU_ASSERT_PTR_NULL(strstr(line, "s3cret"));
    json_decref(j);
}

static void test_format_nulls(void)
{
    static const char *const keys[] = {
        "ts",          "request_id", "client_id", "method", "path",  "status",
        "duration_ms", "ip",         "decision",  "reason", "limit", "upstream_status",
        "route",       "auth_method", "iss",      "scopes", "scopes_required", "decided_ms",
        "host",        "tier",       "peer",      "mode",   "keys"};
    audit_rec_t r = {.ts_ms = -1, .status = -1, .duration_ms = -1, .upstream_status = -1};
    char line[1024];
    int n = audit_format(&r, line, sizeof(line));
    json_t *j = parse_line(line, n);
    size_t i;

    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(json_object_size(j), 23);
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(j, keys[i]);
        CU_ASSERT_PTR_NOT_NULL(v);
        if (!json_is_null(v))
            CU_FAIL(keys[i]);
    }
    json_decref(j);

    /* Non-finite durations are not JSON numbers. */
    r = full_rec();
    r.duration_ms = 1.0 / 0.0;
    n = audit_format(&r, line, sizeof(line));
    j = parse_line(line, n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_TRUE(json_is_null(json_object_get(j, "duration_ms")));
    json_decref(j);
}

/* Issue 22 item 6: the fields that say why, after the original twelve;
 * header key names lower-cased, claim names as given, lists cut. */
static void test_format_why(void)
{
    static char s1[] = "a:read", s2[] = "b:write", s3[] = "c:admin", s4[] = "s";
    char *const scopes[] = {s1, s2}, *const need[] = {s3};
    static const audit_key_t keys[] = {{false, "X-Tenant", "acme"}, {true, "Org", NULL}};
    char *many[AUDIT_SCOPES_MAX + 4];
    audit_rec_t r = full_rec();
    char line[16384];
    json_t *j, *k;
    int n;

    r.route = "orders";
    r.auth_method = "jwt";
    r.iss = "https://idp.example";
    r.scopes = scopes;
    r.nscopes = 2;
    r.scopes_required = need;
    r.nscopes_required = 1;
    r.decided_ms = 1795556400100LL;
    r.host = "api.example";
    r.tier = "gold";
    r.peer = "10.0.0.9";
    r.mode = "nginx";
    r.keys = keys;
    r.nkeys = 2;
    n = audit_format(&r, line, sizeof line);
    j = parse_line(line, n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_NSTRING_EQUAL(line, "{\"ts\":", 6); /* the old fields first, in order */
    CU_ASSERT(strstr(line, "\"upstream_status\":204,\"route\":\"orders\"") != NULL);
    CU_ASSERT_STRING_EQUAL(sget(j, "auth_method"), "jwt");
    CU_ASSERT_STRING_EQUAL(sget(j, "iss"), "https://idp.example");
    CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "scopes")), 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(json_object_get(j, "scopes"), 1)),
                           "b:write");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_array_get(json_object_get(j, "scopes_required"), 0)), "c:admin");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "decided_ms")), 1795556400100LL);
    CU_ASSERT_STRING_EQUAL(sget(j, "host"), "api.example");
    CU_ASSERT_STRING_EQUAL(sget(j, "tier"), "gold");
    CU_ASSERT_STRING_EQUAL(sget(j, "peer"), "10.0.0.9");
    CU_ASSERT_STRING_EQUAL(sget(j, "mode"), "nginx");
    k = json_object_get(j, "keys");
    CU_ASSERT_EQUAL(json_object_size(k), 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(k, "header:x-tenant")), "acme");
    CU_ASSERT(json_is_null(json_object_get(k, "claim:Org")));
    json_decref(j);

    /* a list longer than AUDIT_SCOPES_MAX is cut, still valid JSON */
    for (size_t i = 0; i < sizeof many / sizeof many[0]; i++)
        many[i] = s4;
    r.scopes = many;
    r.nscopes = sizeof many / sizeof many[0];
    n = audit_format(&r, line, sizeof line);
    j = parse_line(line, n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "scopes")), AUDIT_SCOPES_MAX);
    json_decref(j);
}

static void test_format_escaping(void)
{
    audit_rec_t r = full_rec();
    char garbage[256], line[8192];
    json_t *j;
    const char *s;
    int n, i;

    for (i = 0; i < 255; i++)
        garbage[i] = (char)(i + 1);
    garbage[255] = '\0';
    r.client_id = garbage;
    r.method = "G\"E\\T\n\r\t\b";
    r.reason = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"; /* valid UTF-8 kept */
    r.limit = "\xc0\xaf|\xed\xa0\x80|\xf5|\xe2\x82|\xff";   /* invalid: escaped */
    r.target = "/a\x01?password=\xff\xfe&x=\"";
    n = audit_format(&r, line, sizeof(line));
    j = parse_line(line, n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    s = sget(j, "client_id");
    CU_ASSERT_PTR_NOT_NULL(s);
    CU_ASSERT_STRING_EQUAL(sget(j, "method"), "G\"E\\T\n\r\t\b");
    CU_ASSERT_STRING_EQUAL(sget(j, "reason"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* Each bad byte became the code point of the same value. */
    CU_ASSERT_STRING_EQUAL(sget(j, "limit"), "\xc3\x80\xc2\xaf|\xc3\xad\xc2\xa0\xc2\x80|"
                                             "\xc3\xb5|\xc3\xa2\xc2\x82|\xc3\xbf");
    CU_ASSERT_STRING_EQUAL(sget(j, "path"), "/a\x01?password=REDACTED&x=\"");
    json_decref(j);
}

static void test_format_limits(void)
{
    audit_rec_t r = full_rec();
    char line[512], *big;
    json_t *j;
    int n;

    n = audit_format(&r, line, sizeof(line));
    CU_ASSERT(n > 0);
    CU_ASSERT_EQUAL(audit_format(&r, line, (size_t)n), -1); /* no room for the NUL */
    CU_ASSERT_EQUAL(audit_format(&r, line, (size_t)n + 1), n);
    CU_ASSERT_EQUAL(audit_format(&r, line, 10), -1);
    CU_ASSERT_EQUAL(audit_format(&r, line, 0), -1);

    /* A huge control-character path still fits one line and stays JSON. */
    big = malloc(100000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(big, 1, 99999);
    big[0] = '/';
    big[99999] = '\0';
    r.target = big;
    r.client_id = big;
    {
        char *out = malloc(64 * 1024);
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        n = audit_format(&r, out, 64 * 1024);
        CU_ASSERT(n > 0);
        j = n > 0 ? parse_line(out, n) : NULL;
        CU_ASSERT_PTR_NOT_NULL(j);
        json_decref(j);
        free(out);
    }
    free(big);
}

/* A temp file path under /tmp; the caller unlinks it. */
static void tmp_path(char *p, size_t len)
{
    int fd;

    snprintf(p, len, "/tmp/tollgate-audit-XXXXXX");
    fd = mkstemp(p);
    CU_ASSERT(fd >= 0);
    if (fd >= 0)
        close(fd);
}

/* Number of lines in `path`, each checked to be a JSON object; -1 if not. */
static long check_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    long n = 0;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        json_t *j = json_loads(line, 0, NULL);
        if (!json_is_object(j)) {
            json_decref(j);
            fclose(f);
            return -1;
        }
        json_decref(j);
        n++;
    }
    fclose(f);
    return n;
}

static off_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void test_buffer_flush(void)
{
    audit_rec_t r = full_rec();
    char path[64], err[128];
    audit_t *a;
    audit_buf_t *b;
    int i;

    tmp_path(path, sizeof(path));
    a = audit_open(path, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    b = audit_buf_new(a, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    audit_log(b, &r);
    audit_log(b, &r);
    CU_ASSERT_EQUAL(file_size(path), 0); /* buffered: no syscall yet */
    audit_buf_flush(b);
    CU_ASSERT_EQUAL(check_file(path), 2);
    /* Past 32 KiB the buffer flushes itself, whole lines only. */
    for (i = 0; i < 400; i++)
        audit_log(b, &r);
    CU_ASSERT(file_size(path) > 32 * 1024);
    CU_ASSERT_EQUAL(check_file(path) > 2, 1);
    audit_buf_free(b); /* flushes */
    CU_ASSERT_EQUAL(check_file(path), 402);
    audit_close(a);
    unlink(path);

    CU_ASSERT_PTR_NULL(audit_open("/nonexistent-dir/x/audit.log", err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent-dir/x/audit.log"));
    audit_buf_free(NULL);
    audit_close(NULL);
    audit_buf_flush(NULL);
    audit_log(NULL, &r);
}

/* A reload (SIGHUP) sets each worker's flush policy: what the buffer holds
 * reaches the file first, whatever the new policy is. */
static void test_set_flush_writes_first(void)
{
    audit_rec_t r = full_rec();
    char path[64], err[128];
    audit_t *a;
    audit_buf_t *b;

    tmp_path(path, sizeof(path));
    a = audit_open(path, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    b = audit_buf_new(a, NULL); /* no timer: only set_flush can write */
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    audit_log(b, &r);
    audit_log(b, &r);
    CU_ASSERT_EQUAL(file_size(path), 0);
    audit_buf_set_flush(b, AUDIT_FLUSH_INTERVAL);
    CU_ASSERT_EQUAL(check_file(path), 2);
    audit_log(b, &r);
    CU_ASSERT_EQUAL(check_file(path), 2); /* interval again: buffered */
    audit_buf_set_flush(b, AUDIT_FLUSH_EVERY);
    CU_ASSERT_EQUAL(check_file(path), 3);
    audit_buf_free(b);
    audit_close(a);
    unlink(path);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void test_timer_flush(void)
{
    audit_rec_t r = full_rec();
    struct timeval tv = {0, 300 * 1000};
    char path[64], err[128];
    struct event_base *base = event_base_new();
    audit_t *a;
    audit_buf_t *b;

    CU_ASSERT_PTR_NOT_NULL_FATAL(base);
    tmp_path(path, sizeof(path));
    a = audit_open(path, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    b = audit_buf_new(a, base);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    audit_log(b, &r);
    CU_ASSERT_EQUAL(file_size(path), 0);
    event_base_once(base, -1, EV_TIMEOUT, on_stop, base, &tv);
    event_base_dispatch(base);
    CU_ASSERT_EQUAL(check_file(path), 1);
    audit_buf_free(b);
    audit_close(a);
    event_base_free(base);
    unlink(path);
}

static void test_reopen(void)
{
    audit_rec_t r = full_rec();
    char path[64], rotated[80], err[128];
    audit_t *a;
    audit_buf_t *b;
    struct stat st;

    tmp_path(path, sizeof(path));
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    a = audit_open(path, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    b = audit_buf_new(a, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    audit_log(b, &r);
    audit_buf_flush(b);
    CU_ASSERT_EQUAL(rename(path, rotated), 0);
    CU_ASSERT_EQUAL(audit_reopen(a), 0);
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0640);
    audit_log(b, &r);
    audit_log(b, &r);
    audit_buf_flush(b);
    CU_ASSERT_EQUAL(check_file(rotated), 1);
    CU_ASSERT_EQUAL(check_file(path), 2);
    audit_buf_free(b);
    audit_close(a);
    unlink(path);
    unlink(rotated);
}

#define WRITERS 4
#define LINES_PER_WRITER 3000

static void *writer(void *arg)
{
    audit_buf_t *b = audit_buf_new(arg, NULL);
    audit_rec_t r = full_rec();
    char id[32];
    int i;

    for (i = 0; i < LINES_PER_WRITER; i++) {
        snprintf(id, sizeof(id), "t%p-%d", (void *)&r, i);
        r.request_id = id;
        audit_log(b, &r);
    }
    audit_buf_free(b);
    return NULL;
}

static void test_concurrent_writers(void)
{
    char path[64], err[128];
    pthread_t t[WRITERS];
    audit_t *a;
    int i;

    tmp_path(path, sizeof(path));
    a = audit_open(path, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    for (i = 0; i < WRITERS; i++)
        CU_ASSERT_EQUAL(pthread_create(&t[i], NULL, writer, a), 0);
    for (i = 0; i < WRITERS; i++) {
        if (i == 1)
            CU_ASSERT_EQUAL(audit_reopen(a), 0); /* swap the fd under load */
        pthread_join(t[i], NULL);
    }
    CU_ASSERT_EQUAL(check_file(path), WRITERS * LINES_PER_WRITER);
    audit_close(a);
    unlink(path);
}

/* An admin line: "kind":"admin" right after ts, every field, nulls, and a
 * hostile target escaped and cut. */
static void test_format_admin(void)
{
    char line[32768], target[600];
    audit_admin_rec_t r = {1700000000123, "reload", NULL,   "ok",  -1,   NULL, "signal",
                           "h:1",         NULL,     "aaaa", "bbbb", "cccc", "dddd"};
    int n = audit_format_admin(&r, line, sizeof line);
    json_t *o;

    CU_ASSERT(n > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"kind\":\"admin\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "\"target\":null"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "\"status\":null"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "\"config_version_before\":\"aaaa\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "\"secrets_version_after\":\"dddd\""));
    CU_ASSERT_EQUAL(line[n - 1], '\n');
    memset(target, '"', sizeof target - 1);
    target[0] = '\n';
    target[sizeof target - 1] = '\0';
    r.target = target;
    r.status = 403;
    n = audit_format_admin(&r, line, sizeof line);
    CU_ASSERT(n > 0);
    o = json_loads(line, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_EQUAL(strlen(json_string_value(json_object_get(o, "target"))), 256);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "status")), 403);
    json_decref(o);
    CU_ASSERT_EQUAL(audit_format_admin(&r, line, 100), -1);
    CU_ASSERT_EQUAL(audit_write_admin(NULL, &r), -1);
}

static const unit_test_t tests[] = {
    {"format_full", test_format_full},
    {"format_nulls", test_format_nulls},
    {"format_why", test_format_why},
    {"format_escaping", test_format_escaping},
    {"format_limits", test_format_limits},
    {"buffer_flush", test_buffer_flush},
    {"set_flush writes the buffer first", test_set_flush_writes_first},
    {"timer_flush", test_timer_flush},
    {"reopen", test_reopen},
    {"concurrent_writers", test_concurrent_writers},
    {"admin line", test_format_admin},
    {NULL, NULL},
};

int test_audit_add(void)
{
    return unit_add_suite("audit", tests);
}
