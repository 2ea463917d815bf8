/* test_metrics.c — per-thread counters summed on render, histograms, label
 * escaping, table overflow, retired instances.  The metrics registry is
 * process-wide, so each test uses its own label values or compares deltas. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "tollgate/metrics.h"
#include "unit.h"

/* What `fn` renders, as a NUL-terminated string; the caller frees it. */
static char *render_with(void (*fn)(struct evbuffer *))
{
    struct evbuffer *b = evbuffer_new();
    size_t n;
    char *s;

    fn(b);
    n = evbuffer_get_length(b);
    s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

/* The whole exposition. */
static char *render(void)
{
    return render_with(metrics_render);
}

/* The value on the line that starts with `series` + ' ', or -1. */
static double value_of(const char *text, const char *series)
{
    size_t len = strlen(series);
    const char *p = text;

    while ((p = strstr(p, series)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[len] == ' ')
            return strtod(p + len + 1, NULL);
        p += len;
    }
    return -1;
}

static double value_now(const char *series)
{
    char *s = render();
    double v = value_of(s, series);

    free(s);
    return v;
}

#define PER_THREAD 5000

static void *worker(void *arg)
{
    metrics_t *m = metrics_new();
    int i;

    (void)arg;
    for (i = 0; i < PER_THREAD; i++) {
        metrics_request(m, "allow", "t2-ok", 0.0007);
        metrics_limit(m, "t2-limit", "allow", "enforce");
        metrics_redis(m, "t2-ok", 0.0002);
    }
    metrics_auth_failure(m, "t2-expired");
    return m;
}

static void test_two_threads(void)
{
    double req_before = value_now("tollgate_request_duration_seconds_bucket{le=\"0.001\"}");
    double small_before =
        value_now("tollgate_request_duration_seconds_bucket{le=\"0.0005\"}");
    pthread_t t1, t2;
    void *m1, *m2;
    char *s;

    CU_ASSERT_EQUAL_FATAL(pthread_create(&t1, NULL, worker, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t2, NULL, worker, NULL), 0);
    pthread_join(t1, &m1);
    pthread_join(t2, &m2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m2);

    s = render();
    CU_ASSERT_EQUAL(
        value_of(s, "tollgate_requests_total{decision=\"allow\",reason=\"t2-ok\"}"),
        2 * PER_THREAD);
    CU_ASSERT_EQUAL(value_of(s, "tollgate_limit_decisions_total{limit=\"t2-limit\","
                                "decision=\"allow\",mode=\"enforce\"}"),
                    2 * PER_THREAD);
    CU_ASSERT_EQUAL(value_of(s, "tollgate_redis_requests_total{result=\"t2-ok\"}"),
                    2 * PER_THREAD);
    CU_ASSERT_EQUAL(value_of(s, "tollgate_auth_failures_total{reason=\"t2-expired\"}"), 2);
    /* 0.0007 s lands in le=0.001, not le=0.0005. */
    CU_ASSERT_EQUAL(value_of(s, "tollgate_request_duration_seconds_bucket{le=\"0.001\"}"),
                    req_before + 2 * PER_THREAD);
    CU_ASSERT_EQUAL(value_of(s, "tollgate_request_duration_seconds_bucket{le=\"0.0005\"}"),
                    small_before);
    CU_ASSERT(value_of(s, "tollgate_redis_duration_seconds_bucket{le=\"0.00025\"}") >=
              2 * PER_THREAD);
    CU_ASSERT(value_of(s, "tollgate_request_duration_seconds_sum") >=
              2 * PER_THREAD * 0.0007 - 1e-6);
    CU_ASSERT_EQUAL(value_of(s, "tollgate_request_duration_seconds_count"),
                    value_of(s, "tollgate_request_duration_seconds_bucket{le=\"+Inf\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# HELP tollgate_requests_total "));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# TYPE tollgate_requests_total counter\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(s, "# TYPE tollgate_request_duration_seconds histogram\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# TYPE tollgate_redis_duration_seconds histogram\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# TYPE tollgate_limit_decisions_total counter\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# TYPE tollgate_auth_failures_total counter\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# TYPE tollgate_redis_requests_total counter\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# TYPE tollgate_fallback gauge\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# TYPE tollgate_revocations_cached gauge\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# TYPE tollgate_config_reloads_total counter\n"));
    free(s);

    /* Freed instances: their counts stay (no counter goes backwards). */
    metrics_free(m1);
    CU_ASSERT_EQUAL(
        value_now("tollgate_requests_total{decision=\"allow\",reason=\"t2-ok\"}"),
        2 * PER_THREAD);
    metrics_free(m2);
    CU_ASSERT_EQUAL(
        value_now("tollgate_requests_total{decision=\"allow\",reason=\"t2-ok\"}"),
        2 * PER_THREAD);
    m1 = metrics_new();
    metrics_request(m1, "allow", "t2-ok", 0.01);
    CU_ASSERT_EQUAL(
        value_now("tollgate_requests_total{decision=\"allow\",reason=\"t2-ok\"}"),
        2 * PER_THREAD + 1);
    metrics_free(m1);
    metrics_free(NULL);
}

static void test_render_while_writing(void)
{
    pthread_t t;
    void *m;
    int i;

    /* Scrapes concurrent with a writer (TSan/ASan find the races, if any). */
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, worker, NULL), 0);
    for (i = 0; i < 20; i++)
        free(render());
    pthread_join(t, &m);
    metrics_free(m);
}

static void test_escaping_and_nulls(void)
{
    metrics_t *m = metrics_new();
    char *s;

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    metrics_limit(m, "a\"b\\c\nd", "deny", "shadow");
    metrics_auth_failure(m, NULL);
    metrics_request(NULL, "allow", "x", 1); /* no instance: ignored */
    s = render();
    CU_ASSERT_EQUAL(value_of(s, "tollgate_limit_decisions_total{limit=\"a\\\"b\\\\c\\nd\","
                                "decision=\"deny\",mode=\"shadow\"}"),
                    1);
    CU_ASSERT(value_of(s, "tollgate_auth_failures_total{reason=\"unknown\"}") >= 1);
    free(s);
    metrics_free(m);
}

static void test_overflow_other(void)
{
    metrics_t *m = metrics_new();
    char name[80];
    double before = value_now("tollgate_redis_requests_total{result=\"other\"}");
    int i;

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    if (before < 0)
        before = 0;
    /* The redis table holds 16 rows, the last being "other". */
    for (i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "ovf-%d", i);
        metrics_redis(m, name, 0.001);
    }
    CU_ASSERT_EQUAL(value_now("tollgate_redis_requests_total{result=\"ovf-0\"}"), 1);
    CU_ASSERT_EQUAL(value_now("tollgate_redis_requests_total{result=\"ovf-14\"}"), 1);
    CU_ASSERT_EQUAL(value_now("tollgate_redis_requests_total{result=\"ovf-15\"}"), -1);
    CU_ASSERT_EQUAL(value_now("tollgate_redis_requests_total{result=\"other\"}"),
                    before + 25);
    /* Long values are cut, and the cut value is counted as one. */
    memset(name, 'L', 79);
    name[79] = '\0';
    metrics_auth_failure(m, name);
    name[70] = '\0';
    metrics_auth_failure(m, name);
    memset(name, 'L', 63);
    name[63] = '\0';
    {
        char series[128];
        snprintf(series, sizeof(series), "tollgate_auth_failures_total{reason=\"%s\"}",
                 name);
        CU_ASSERT_EQUAL(value_now(series), 2);
    }
    metrics_free(m);
}

static void test_globals(void)
{
    double ok = value_now("tollgate_config_reloads_total{result=\"ok\"}");
    double bad = value_now("tollgate_config_reloads_total{result=\"error\"}");

    CU_ASSERT(ok >= 0 && bad >= 0);
    metrics_config_reload(true);
    metrics_config_reload(false);
    metrics_config_reload(false);
    metrics_set_fallback(1);
    metrics_set_revocations_cached(42);
    CU_ASSERT_EQUAL(value_now("tollgate_config_reloads_total{result=\"ok\"}"), ok + 1);
    CU_ASSERT_EQUAL(value_now("tollgate_config_reloads_total{result=\"error\"}"), bad + 2);
    CU_ASSERT_EQUAL(value_now("tollgate_fallback"), 1);
    CU_ASSERT_EQUAL(value_now("tollgate_revocations_cached"), 42);
    metrics_set_fallback(0);
    CU_ASSERT_EQUAL(value_now("tollgate_fallback"), 0);
}

static void test_histogram_edges(void)
{
    metrics_t *m = metrics_new();
    double inf = value_now("tollgate_redis_duration_seconds_bucket{le=\"+Inf\"}");
    double top = value_now("tollgate_redis_duration_seconds_bucket{le=\"0.25\"}");
    double low = value_now("tollgate_redis_duration_seconds_bucket{le=\"0.0001\"}");

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    metrics_redis(m, "edge", 0.0001); /* le is inclusive */
    metrics_redis(m, "edge", -5);     /* clamped to 0 */
    metrics_redis(m, "edge", 0.0 / 0.0);
    metrics_redis(m, "edge", 3); /* only +Inf */
    CU_ASSERT_EQUAL(value_now("tollgate_redis_duration_seconds_bucket{le=\"0.0001\"}"),
                    low + 3);
    CU_ASSERT_EQUAL(value_now("tollgate_redis_duration_seconds_bucket{le=\"0.25\"}"),
                    top + 3);
    CU_ASSERT_EQUAL(value_now("tollgate_redis_duration_seconds_bucket{le=\"+Inf\"}"),
                    inf + 4);
    metrics_free(m);
}

/* /proc/self/stat: comm may hold spaces and ')'; the fields after the last
 * ')' are counted from 3. */
static void test_proc_stat_parse(void)
{
    metrics_proc_stat_t st;
    const char *good = "1234 (tg) (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 "
                       "3 0 98765 123456789 2048 18446744073709551615 1 2 3\n";

    CU_ASSERT_EQUAL_FATAL(metrics_parse_proc_stat(good, &st), 0);
    CU_ASSERT_EQUAL(st.start_ticks, 98765);
    CU_ASSERT_EQUAL(st.vsize_bytes, 123456789);
    CU_ASSERT_EQUAL(st.rss_pages, 2048);
    CU_ASSERT_EQUAL(metrics_parse_proc_stat("1234 tg S 1 2 3", &st), -1);     /* no ')' */
    CU_ASSERT_EQUAL(metrics_parse_proc_stat("1234 (tg) S 1 2 3\n", &st), -1); /* short */
    CU_ASSERT_EQUAL(metrics_parse_proc_stat("1 (tg) S 1 1 1 0 -1 4 1 0 0 0 7 3 0 0 20 0 3 "
                                            "0 x 1 2\n",
                                            &st),
                    -1); /* not a number */
    CU_ASSERT_EQUAL(metrics_parse_proc_stat(NULL, &st), -1);
    CU_ASSERT_EQUAL(metrics_parse_proc_stat("", &st), -1);
    CU_ASSERT_EQUAL(metrics_parse_proc_stat("1 (tg)", &st), -1);
}

/* Every process metric is there, each with a sane value for this test
 * process, under the names Prometheus clients use. */
static void test_process_metrics(void)
{
    char *s = render_with(metrics_render_process);
    double rss = value_of(s, "process_resident_memory_bytes"),
           vsz = value_of(s, "process_virtual_memory_bytes"),
           fds = value_of(s, "process_open_fds"), maxfds = value_of(s, "process_max_fds"),
           cpu = value_of(s, "process_cpu_seconds_total"),
           start = value_of(s, "process_start_time_seconds");
    time_t now = time(NULL);

    CU_ASSERT(rss > 1e5 && rss < 1e11);
    CU_ASSERT(vsz >= rss);
    CU_ASSERT(fds >= 3 && fds <= maxfds); /* stdin, stdout, stderr at least */
    CU_ASSERT(cpu > 0 && cpu < 36000);
    CU_ASSERT(start > 1.5e9 && start <= (double)now + 1 && start > (double)now - 36000);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# TYPE process_cpu_seconds_total counter\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# TYPE process_open_fds gauge\n"));
    free(s);
}

static void render_build(struct evbuffer *b)
{
    metrics_render_build_info(b, "0.1.0", "a\"b\\c\nd"); /* escaped all the same */
}

static void test_build_info(void)
{
    char *s = render_with(render_build);

    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# TYPE tollgate_build_info gauge\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "\ntollgate_build_info{version=\"0.1.0\","
                                     "config_version=\"a\\\"b\\\\c\\nd\"} 1\n"));
    CU_ASSERT_PTR_NULL(strstr(s, "secrets_version"));
    free(s);
}

static const unit_test_t tests[] = {
    {"two_threads", test_two_threads},
    {"render_while_writing", test_render_while_writing},
    {"escaping_and_nulls", test_escaping_and_nulls},
    {"overflow_other", test_overflow_other},
    {"globals", test_globals},
    {"histogram_edges", test_histogram_edges},
    {"proc_stat_parse", test_proc_stat_parse},
    {"process_metrics", test_process_metrics},
    {"build_info", test_build_info},
    {NULL, NULL},
};

int test_metrics_add(void)
{
    return unit_add_suite("metrics", tests);
}
