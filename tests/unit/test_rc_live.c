/* test_rc_live.c — the Redis client against a real standalone redis-server,
 * started by each test on a free loopback port in a temp dir and stopped by
 * PID (skipped, with a printed reason, when redis-server is not installed). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "tollgate/log.h"
#include "tollgate/rc.h"
#include "support_redis.h"
#include "unit.h"

#define SKIP_WITHOUT_REDIS()                                                               \
    do {                                                                                   \
        if (!tu_have_redis())                                                              \
            return;                                                                        \
    } while (0)

/* ---- tests ----------------------------------------------------------------- */

typedef struct seq {
    int next; /* the index the next callback must have */
    int bad;
    int done;
    int n;
} seq_t;

typedef struct seq_item {
    seq_t *seq;
    int idx;
    char want[32];
} seq_item_t;

static void seq_cb(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    seq_item_t *it = privdata;

    (void)c;
    (void)errstr;
    if (it->idx != it->seq->next++)
        it->seq->bad++;
    if (r == NULL ||
        (it->want[0] != '\0' && (r->str == NULL || strcmp(r->str, it->want) != 0)))
        it->seq->bad++;
    if (it->seq->next == it->seq->n)
        it->seq->done = 1;
}

static void test_pipeline_fifo(void)
{
    enum { N = 1000 };
    struct event_base *base;
    rc_opts_t o = {.timeout_ms = 5000};
    tu_redis_t s = {0};
    rc_client_t *c;
    seq_t sq = {.n = 3 * N};
    seq_item_t *items;

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&s, NULL) == 0);
    base = event_base_new();
    c = tu_client_on(base, s.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    items = calloc(3 * N, sizeof(*items));
    /* Sent before the connection is up: queued, then pipelined in order. */
    for (int i = 0; i < N; i++) {
        char k[32], v[32];
        const char *set[] = {"SET", k, v}, *get[] = {"GET", k}, *ping[] = {"PING"};

        snprintf(k, sizeof(k), "k%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        items[3 * i] = (seq_item_t){&sq, 3 * i, "OK"};
        items[3 * i + 1] = (seq_item_t){&sq, 3 * i + 1, ""};
        snprintf(items[3 * i + 1].want, sizeof(items[0].want), "%s", v);
        items[3 * i + 2] = (seq_item_t){&sq, 3 * i + 2, "PONG"};
        CU_ASSERT_PTR_NOT_NULL(
            rc_command_argv(c, k, strlen(k), 3, set, NULL, seq_cb, &items[3 * i]));
        CU_ASSERT_PTR_NOT_NULL(
            rc_command_argv(c, k, strlen(k), 2, get, NULL, seq_cb, &items[3 * i + 1]));
        CU_ASSERT_PTR_NOT_NULL(
            rc_command_argv(c, NULL, 0, 1, ping, NULL, seq_cb, &items[3 * i + 2]));
    }
    CU_ASSERT(tu_spin(base, &sq.done, 5000));
    CU_ASSERT_EQUAL(sq.next, 3 * N);
    CU_ASSERT_EQUAL(sq.bad, 0);
    CU_ASSERT(rc_client_up(c));
    rc_client_free(c);
    free(items);
    event_base_free(base);
    tu_redis_stop(&s);
}

static void test_evalsha_noscript(void)
{
    static const rc_script_t scripts[] = {
        {"echo", "return ARGV[1]", 14},
        {"incr", "return redis.call('INCRBY', KEYS[1], ARGV[1])", 45},
    };
    struct event_base *base;
    rc_opts_t o = {.timeout_ms = 2000, .scripts = scripts, .nscripts = 2};
    tu_redis_t s = {0};
    rc_client_t *c;
    tu_got_t g;
    const char *key = "tg:{x}:n", *arg = "hello", *three = "3";
    const char *flush[] = {"SCRIPT", "FLUSH"};

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&s, NULL) == 0);
    base = event_base_new();
    c = tu_client_on(base, s.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(strlen(rc_script_sha(c, 0)), 40);
    CU_ASSERT_STRING_EQUAL(rc_script_sha(c, 0), "098e0f0d1448c0a81dafe820f66d460eb09263da");
    memset(&g, 0, sizeof(g));
    CU_ASSERT_PTR_NOT_NULL(rc_evalsha(c, 0, 0, NULL, NULL, 1, &arg, NULL, tu_got_cb, &g));
    CU_ASSERT(tu_spin(base, &g.done, 2000));
    CU_ASSERT_EQUAL(g.type, REDIS_REPLY_STRING);
    CU_ASSERT_STRING_EQUAL(g.str, "hello");

    CU_ASSERT(tu_cmd_wait(base, c, &g, 2, flush, 2000));
    CU_ASSERT_STRING_EQUAL(g.str, "OK");
    /* Both scripts are gone now: EVALSHA meets NOSCRIPT and recovers. */
    for (int i = 0; i < 2; i++) {
        memset(&g, 0, sizeof(g));
        CU_ASSERT_PTR_NOT_NULL(
            rc_evalsha(c, 1, 1, &key, NULL, 1, &three, NULL, tu_got_cb, &g));
        CU_ASSERT(tu_spin(base, &g.done, 2000));
        CU_ASSERT_EQUAL(g.type, REDIS_REPLY_INTEGER);
        CU_ASSERT_EQUAL(g.integer, 3 * (i + 1));
        CU_ASSERT_EQUAL(g.calls, 1);
    }
    rc_stats_t st;
    rc_client_stats(c, &st);
    CU_ASSERT_EQUAL(st.noscript, 1);
    /* The same through the ops table. */
    memset(&g, 0, sizeof(g));
    CU_ASSERT(rc_client_ops.up(c));
    CU_ASSERT_PTR_NOT_NULL(
        rc_client_ops.evalsha(c, 0, 0, NULL, NULL, 1, &arg, NULL, tu_got_cb, &g));
    CU_ASSERT(tu_spin(base, &g.done, 2000));
    CU_ASSERT_STRING_EQUAL(g.str, "hello");
    /* Out-of-range script: refused at once. */
    CU_ASSERT_PTR_NULL(rc_evalsha(c, 7, 0, NULL, NULL, 0, NULL, NULL, tu_got_cb, &g));
    rc_client_free(c);
    event_base_free(base);
    tu_redis_stop(&s);
}

static void test_timeout_late_reply(void)
{
    struct event_base *base;
    rc_opts_t o = {.timeout_ms = 50};
    tu_redis_t s = {0};
    rc_client_t *c;
    tu_got_t sleep_g, ping_g, g;
    const char *sleep_argv[] = {"DEBUG", "SLEEP", "0.3"}, *ping[] = {"PING"};
    const char *set[] = {"SET", "tk", "tv"}, *get[] = {"GET", "tk"};
    struct timespec t0, t1;
    long ms;

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&s, NULL) == 0);
    base = event_base_new();
    c = tu_client_on(base, s.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FATAL(tu_wait_up(base, c, 2000));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CU_ASSERT_PTR_NOT_NULL(tu_cmd(c, &sleep_g, 3, sleep_argv));
    CU_ASSERT_PTR_NOT_NULL(tu_cmd(c, &ping_g, 1, ping));
    CU_ASSERT(tu_spin(base, &sleep_g.done, 1000));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    CU_ASSERT(ms >= 40 && ms < 250);
    CU_ASSERT_EQUAL(sleep_g.type, -1);
    CU_ASSERT_STRING_EQUAL(sleep_g.errstr, "timeout");
    CU_ASSERT(tu_spin(base, &ping_g.done, 1000));
    CU_ASSERT_EQUAL(ping_g.type, -1);
    /* Let the late replies arrive: they are read and discarded. */
    tu_spin(base, NULL, 400);
    CU_ASSERT_EQUAL(sleep_g.calls, 1);
    CU_ASSERT_EQUAL(ping_g.calls, 1);
    rc_stats_t st;
    rc_client_stats(c, &st);
    CU_ASSERT_EQUAL(st.timeouts, 2);
    CU_ASSERT(tu_cmd_wait(base, c, &g, 3, set, 1000));
    CU_ASSERT_EQUAL(g.type, REDIS_REPLY_STATUS);
    CU_ASSERT_STRING_EQUAL(g.str, "OK");
    CU_ASSERT(tu_cmd_wait(base, c, &g, 2, get, 1000));
    CU_ASSERT_EQUAL(g.type, REDIS_REPLY_STRING);
    CU_ASSERT_STRING_EQUAL(g.str, "tv");
    rc_client_free(c);
    event_base_free(base);
    tu_redis_stop(&s);
}

static void test_auth(void)
{
    static const char *const extra[] = {"--requirepass", "Pa55-word-for-tests", NULL};
    struct event_base *base;
    tu_redis_t s = {0};
    rc_client_t *c;
    tu_got_t g;
    const char *ping[] = {"PING"};
    const char *acl[] = {"ACL", "SETUSER", "app", "on", ">app-Secret-42", "~*", "+@all"};

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&s, extra) == 0);
    base = event_base_new();

    /* Good password; SELECT 3 on connect. */
    rc_opts_t good = {.timeout_ms = 1000, .password = "Pa55-word-for-tests", .db = 3};
    c = tu_client_on(base, s.port, &good);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(tu_cmd_wait(base, c, &g, 1, ping, 2000));
    CU_ASSERT_STRING_EQUAL(g.str, "PONG");
    CU_ASSERT(tu_cmd_wait(base, c, &g, 7, acl, 2000));
    CU_ASSERT_STRING_EQUAL(g.str, "OK");
    const char *dbq[] = {"CLIENT", "INFO"};
    CU_ASSERT(tu_cmd_wait(base, c, &g, 2, dbq, 2000));
    CU_ASSERT_PTR_NOT_NULL(strstr(g.str, " db=3 "));
    rc_client_free(c);

    /* ACL user + password. */
    rc_opts_t user = {.timeout_ms = 1000, .username = "app", .password = "app-Secret-42"};
    c = tu_client_on(base, s.port, &user);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(tu_cmd_wait(base, c, &g, 1, ping, 2000));
    CU_ASSERT_STRING_EQUAL(g.str, "PONG");
    rc_client_free(c);

    /* Bad password: the command fails with the server's reason, no secret. */
    rc_opts_t bad = {.timeout_ms = 1000, .password = "Wrong-Secret-77"};
    c = tu_client_on(base, s.port, &bad);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(tu_cmd_wait(base, c, &g, 1, ping, 2000));
    CU_ASSERT_EQUAL(g.type, -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(g.errstr, "AUTH failed"));
    CU_ASSERT_PTR_NULL(strstr(g.errstr, "Wrong-Secret"));
    CU_ASSERT_PTR_NULL(strstr(rc_client_errstr(c), "Wrong-Secret"));
    CU_ASSERT(!rc_client_up(c));
    rc_client_free(c);

    /* No password at all: the handshake's PING meets NOAUTH, so the client
     * is not up (readiness and fallback see it) and commands fail fast. */
    rc_opts_t none = {.timeout_ms = 1000};
    c = tu_client_on(base, s.port, &none);
    tu_spin(base, NULL, 300);
    CU_ASSERT(!rc_client_up(c));
    CU_ASSERT_PTR_NOT_NULL(strstr(rc_client_errstr(c), "NOAUTH"));
    if (tu_cmd(c, &g, 1, ping) != NULL) {
        CU_ASSERT(tu_spin(base, &g.done, 2000));
        CU_ASSERT_EQUAL(g.type, -1);
    }
    rc_client_free(c);
    event_base_free(base);
    tu_redis_stop(&s);
}

static void test_kill_and_restart(void)
{
    struct event_base *base;
    rc_opts_t o = {.timeout_ms = 3000, .backoff_max_ms = 200};
    tu_redis_t s = {0};
    rc_client_t *c;
    tu_got_t g[4], p;
    const char *sleep_argv[] = {"DEBUG", "SLEEP", "2"}, *ping[] = {"PING"};
    rc_pending_t *h;

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&s, NULL) == 0);
    base = event_base_new();
    c = tu_client_on(base, s.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FATAL(tu_wait_up(base, c, 2000));
    CU_ASSERT_PTR_NOT_NULL(tu_cmd(c, &g[0], 3, sleep_argv));
    for (int i = 1; i < 4; i++)
        CU_ASSERT_PTR_NOT_NULL(tu_cmd(c, &g[i], 1, ping));
    tu_spin(base, NULL, 50); /* everything written, nothing answered */
    tu_redis_kill(&s);
    CU_ASSERT(tu_spin(base, &g[3].done, 1000));
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(g[i].type, -1);
        CU_ASSERT_EQUAL(g[i].calls, 1);
        CU_ASSERT_PTR_NULL(strstr(g[i].errstr, "timeout"));
    }
    CU_ASSERT(!rc_client_up(c));
    /* Down: commands fail fast (refused now, or NULL soon), never hang. */
    h = tu_cmd(c, &p, 1, ping);
    if (h != NULL) {
        CU_ASSERT(tu_spin(base, &p.done, 1500));
        CU_ASSERT_EQUAL(p.type, -1);
    } else {
        CU_ASSERT(rc_client_errstr(c)[0] != '\0');
    }
    tu_spin(base, NULL, 300);
    /* Back on the same port: the client reconnects by itself. */
    CU_ASSERT_FATAL(tu_redis_start(&s, NULL) == 0);
    CU_ASSERT(tu_wait_up(base, c, 3000));
    CU_ASSERT(tu_cmd_wait(base, c, &p, 1, ping, 1000));
    CU_ASSERT_STRING_EQUAL(p.str, "PONG");
    rc_client_free(c);
    event_base_free(base);
    tu_redis_stop(&s);
}

/* A callback that must never run: it writes to memory the test has freed. */
static void never_cb(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    int *hits = privdata;

    (void)c;
    (void)r;
    (void)errstr;
    (*hits)++;
}

static void test_cancel(void)
{
    struct event_base *base;
    rc_opts_t o = {.timeout_ms = 300};
    tu_redis_t s = {0};
    rc_client_t *c;
    tu_got_t g;
    const char *get[] = {"GET", "x"}, *ping[] = {"PING"};
    const char *sleep_argv[] = {"DEBUG", "SLEEP", "0.1"};
    rc_pending_t *p[3];
    int *hits[3];

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&s, NULL) == 0);
    base = event_base_new();
    c = tu_client_on(base, s.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    /* Cancelled while still queued (connecting)... */
    hits[0] = calloc(1, sizeof(int));
    p[0] = rc_command_argv(c, NULL, 0, 2, get, NULL, never_cb, hits[0]);
    CU_ASSERT_PTR_NOT_NULL(p[0]);
    rc_cancel(p[0]);
    free(hits[0]);
    CU_ASSERT_FATAL(tu_wait_up(base, c, 2000));
    /* ...and in flight, behind a slow command, then past its timeout. */
    CU_ASSERT_PTR_NOT_NULL(tu_cmd(c, &g, 3, sleep_argv));
    for (int i = 1; i < 3; i++) {
        hits[i] = calloc(1, sizeof(int));
        p[i] = rc_command_argv(c, NULL, 0, 2, get, NULL, never_cb, hits[i]);
        CU_ASSERT_PTR_NOT_NULL(p[i]);
    }
    tu_spin(base, NULL, 20);
    for (int i = 1; i < 3; i++) {
        rc_cancel(p[i]);
        free(hits[i]);
    }
    tu_spin(base, NULL, 500);
    CU_ASSERT(g.done);
    CU_ASSERT(tu_cmd_wait(base, c, &g, 1, ping, 1000));
    CU_ASSERT_STRING_EQUAL(g.str, "PONG");
    rc_client_free(c);
    event_base_free(base);
    tu_redis_stop(&s);
}

/* rc_client_free: every due callback runs once with NULL, also when the free
 * is asked for inside a callback (then deferred). */
typedef struct free_ctx {
    rc_client_t *c;
    int nulls, replies, free_in_cb;
} free_ctx_t;

static void free_cb(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    free_ctx_t *f = privdata;
    const char *ping[] = {"PING"};

    if (r == NULL) {
        f->nulls++;
        CU_ASSERT_PTR_NOT_NULL(errstr);
        /* Sending while closing is refused, never crashes. */
        CU_ASSERT_PTR_NULL(rc_command_argv(c, NULL, 0, 1, ping, NULL, free_cb, f));
        return;
    }
    f->replies++;
    if (f->free_in_cb && f->replies == 1)
        rc_client_free(c); /* deferred: we are inside c's callback */
}

static void test_free_with_pending(void)
{
    struct event_base *base;
    rc_opts_t o = {.timeout_ms = 2000};
    tu_redis_t s = {0};
    free_ctx_t f = {0};
    const char *sleep_argv[] = {"DEBUG", "SLEEP", "0.2"}, *ping[] = {"PING"};

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&s, NULL) == 0);
    base = event_base_new();
    f.c = tu_client_on(base, s.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f.c);
    CU_ASSERT_FATAL(tu_wait_up(base, f.c, 2000));
    CU_ASSERT_PTR_NOT_NULL(rc_command_argv(f.c, NULL, 0, 3, sleep_argv, NULL, free_cb, &f));
    for (int i = 0; i < 5; i++)
        CU_ASSERT_PTR_NOT_NULL(rc_command_argv(f.c, NULL, 0, 1, ping, NULL, free_cb, &f));
    tu_spin(base, NULL, 20);
    rc_client_free(f.c);
    CU_ASSERT_EQUAL(f.nulls, 6);
    CU_ASSERT_EQUAL(f.replies, 0);

    /* Free from inside the first reply's callback: the rest get NULL once. */
    memset(&f, 0, sizeof(f));
    f.free_in_cb = 1;
    f.c = tu_client_on(base, s.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f.c);
    for (int i = 0; i < 5; i++)
        CU_ASSERT_PTR_NOT_NULL(rc_command_argv(f.c, NULL, 0, 1, ping, NULL, free_cb, &f));
    CU_ASSERT_PTR_NOT_NULL(rc_command_argv(f.c, NULL, 0, 3, sleep_argv, NULL, free_cb, &f));
    tu_spin(base, NULL, 1000);
    /* Replies of one read are dispatched in a loop; the free stops it. */
    CU_ASSERT(f.replies >= 1);
    CU_ASSERT_EQUAL(f.replies + f.nulls, 6);
    event_base_free(base);
    tu_redis_stop(&s);
}

static void test_node_down_fails_fast(void)
{
    struct event_base *base;
    rc_opts_t o = {.timeout_ms = 5000, .connect_timeout_ms = 300};
    tu_redis_t s = {0};
    rc_client_t *c;
    tu_got_t g;
    const char *ping[] = {"PING"};
    rc_pending_t *h;

    base = event_base_new();
    s.port = tu_free_port(); /* nobody listens there */
    c = tu_client_on(base, s.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    h = tu_cmd(c, &g, 1, ping);
    if (h != NULL)
        CU_ASSERT(tu_spin(base, &g.done, 1000)); /* long before the 5 s timeout */
    CU_ASSERT_EQUAL(g.calls, h != NULL ? 1 : 0);
    CU_ASSERT(!rc_client_up(c));
    tu_spin(base, NULL, 100);
    /* Refused at once while the node is known down, or, when a reconnect
     * attempt happens to be under way, failed as soon as it fails: either
     * way long before the command's 5 s timeout. */
    h = tu_cmd(c, &g, 1, ping);
    if (h != NULL) {
        CU_ASSERT(tu_spin(base, &g.done, 1000));
        CU_ASSERT_EQUAL(g.type, -1);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(rc_client_errstr(c), "127.0.0.1"));
    rc_client_free(c);
    event_base_free(base);
}

/* A node that goes silent (SIGSTOP: no reset, no reply) is dropped after a
 * while instead of eating every command's timeout forever. */
static void test_silent_node(void)
{
    struct event_base *base;
    rc_opts_t o = {.timeout_ms = 100, .backoff_max_ms = 100};
    tu_redis_t s = {0};
    rc_client_t *c;
    tu_got_t g;
    const char *ping[] = {"PING"};
    rc_stats_t st;

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&s, NULL) == 0);
    base = event_base_new();
    c = tu_client_on(base, s.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FATAL(tu_wait_up(base, c, 2000));
    kill(s.pid, SIGSTOP);
    for (int i = 0; i < 16; i++) {
        if (tu_cmd(c, &g, 1, ping) != NULL)
            tu_spin(base, &g.done, 500);
        CU_ASSERT_EQUAL(g.done ? g.type : -1, -1);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(rc_client_errstr(c), "no reply for"));
    kill(s.pid, SIGCONT);
    tu_spin(base, NULL, 300);
    CU_ASSERT(tu_wait_up(base, c, 2000));
    CU_ASSERT(tu_cmd_wait(base, c, &g, 1, ping, 1000));
    CU_ASSERT_STRING_EQUAL(g.str, "PONG");
    rc_client_stats(c, &st);
    CU_ASSERT(st.connects >= 2);
    rc_client_free(c);
    event_base_free(base);
    tu_redis_stop(&s);
}

/* A CA, a server certificate for localhost / 127.0.0.1 and a client
 * certificate, made with the openssl CLI in `dir`; 0 ok. */
static int make_certs(const char *dir)
{
    char cmd[2048];

    snprintf(
        cmd, sizeof(cmd),
        "(cd '%s' && K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
        "openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -subj /CN=tg-test-ca && "
        "openssl req $K -keyout srv.key -out srv.csr -subj /CN=localhost && "
        "echo subjectAltName=DNS:localhost,IP:127.0.0.1 > srv.ext && "
        "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out srv.pem -days 2 -extfile srv.ext && "
        "openssl req $K -keyout cli.key -out cli.csr -subj /CN=tg-client && "
        "echo extendedKeyUsage=clientAuth > cli.ext && "
        "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out cli.pem -days 2 -extfile cli.ext) >/dev/null 2>&1",
        dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_tls(void)
{
    struct event_base *base;
    tu_redis_t s = {0};
    rc_client_t *c;
    tu_got_t g;
    const char *ping[] = {"PING"};
    char ca[128], cert[128], key[128], scert[128], skey[128], tport[16];

    SKIP_WITHOUT_REDIS();
    snprintf(s.dir, sizeof(s.dir), "/tmp/tg-rc-XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(s.dir) != NULL);
    if (system("command -v openssl >/dev/null 2>&1") != 0 || make_certs(s.dir) != 0) {
        fprintf(stderr, "\n  [rc_live] openssl CLI missing or failed: TLS test skipped\n");
        tu_redis_stop(&s);
        return;
    }
    snprintf(ca, sizeof(ca), "%s/ca.pem", s.dir);
    snprintf(cert, sizeof(cert), "%s/cli.pem", s.dir);
    snprintf(key, sizeof(key), "%s/cli.key", s.dir);
    snprintf(scert, sizeof(scert), "%s/srv.pem", s.dir);
    snprintf(skey, sizeof(skey), "%s/srv.key", s.dir);
    s.port = tu_free_port();
    snprintf(tport, sizeof(tport), "%u", s.port);
    const char *const extra[] = {"--port",
                                 "0",
                                 "--tls-port",
                                 tport,
                                 "--tls-cert-file",
                                 scert,
                                 "--tls-key-file",
                                 skey,
                                 "--tls-ca-cert-file",
                                 ca,
                                 "--tls-auth-clients",
                                 "yes",
                                 NULL};
    CU_ASSERT_FATAL(tu_redis_start(&s, extra) == 0);
    base = event_base_new();

    /* Verified by IP (SAN IP:127.0.0.1), with a client certificate. */
    rc_opts_t ok = {.timeout_ms = 2000,
                    .tls = 1,
                    .tls_ca_file = ca,
                    .tls_cert_file = cert,
                    .tls_key_file = key};
    c = tu_client_on(base, s.port, &ok);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(tu_cmd_wait(base, c, &g, 1, ping, 3000));
    CU_ASSERT_STRING_EQUAL(g.str, "PONG");
    rc_client_free(c);

    /* Verified by name. */
    ok.tls_server_name = "localhost";
    c = tu_client_on(base, s.port, &ok);
    CU_ASSERT(tu_cmd_wait(base, c, &g, 1, ping, 3000));
    CU_ASSERT_STRING_EQUAL(g.str, "PONG");
    rc_client_free(c);

    /* A name the certificate does not carry: refused. */
    ok.tls_server_name = "redis.example.org";
    c = tu_client_on(base, s.port, &ok);
    CU_ASSERT(tu_cmd_wait(base, c, &g, 1, ping, 3000));
    CU_ASSERT_EQUAL(g.type, -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(g.errstr, "TLS"));
    CU_ASSERT(!rc_client_up(c));
    rc_client_free(c);

    /* No client certificate while the server asks for one: no service. */
    rc_opts_t nocert = {.timeout_ms = 2000, .tls = 1, .tls_ca_file = ca};
    c = tu_client_on(base, s.port, &nocert);
    if (tu_cmd(c, &g, 1, ping) != NULL)
        CU_ASSERT(tu_spin(base, &g.done, 3000));
    CU_ASSERT_NOT_EQUAL(g.type, REDIS_REPLY_STATUS);
    rc_client_free(c);
    event_base_free(base);
    tu_redis_stop(&s);
}

static void test_bad_options(void)
{
    struct event_base *base = event_base_new();
    char err[256];
    const char *bad_seed[] = {"no-port-here"};
    const char *seed[] = {"127.0.0.1:1"};
    rc_opts_t o = {0};

    CU_ASSERT_PTR_NULL(rc_client_new(base, &o, err, sizeof(err)));
    o.seeds = bad_seed;
    o.nseeds = 1;
    CU_ASSERT_PTR_NULL(rc_client_new(base, &o, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no-port-here"));
    o.seeds = seed;
    o.cluster = 1;
    o.db = 2;
    CU_ASSERT_PTR_NULL(rc_client_new(base, &o, err, sizeof(err)));
    o.cluster = 0;
    o.db = 0;
    o.tls = 1;
    o.tls_ca_file = "/nonexistent/ca.pem";
    CU_ASSERT_PTR_NULL(rc_client_new(base, &o, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "TLS"));
    rc_client_free(NULL);
    event_base_free(base);
}

int test_rc_live_add(void)
{
    static const unit_test_t tests[] = {
        {"bad options", test_bad_options},
        {"node down fails fast", test_node_down_fails_fast},
        {NULL, NULL},
    };
    /* redis-server or the cluster of their own (support_redis.h) */
    static const unit_test_t server_tests[] = {
        {"pipeline 3000 commands, FIFO", test_pipeline_fifo},
        {"EVALSHA recovers from NOSCRIPT", test_evalsha_noscript},
        {"timeout, late reply discarded", test_timeout_late_reply},
        {"AUTH password, ACL user, bad password, SELECT", test_auth},
        {"server killed mid-flight, restarted", test_kill_and_restart},
        {"cancel before reply", test_cancel},
        {"free with commands pending", test_free_with_pending},
        {"silent node dropped and reconnected", test_silent_node},
        {"TLS: CA, client certificate, hostname verification", test_tls},
        {NULL, NULL},
    };
    log_set_level(LOG_ERROR);
    if (unit_add_suite("rc_live", tests) != 0)
        return -1;
    return unit_add_server_suite("rc_live_server", server_tests);
}
