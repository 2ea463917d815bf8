/* test_srv_conn.c — server/conn.c's connection table on a real evhttp on
 * loopback, one event_base, raw client sockets: an entry lives exactly as
 * long as its connection (never inherited by the next connection on the
 * same fd), max_connections counts exactly, and each request's head verdict
 * (NUL, 431, 413) is its own connection's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "../../server/srv_process.h"
#include "tollgate/cfg.h"
#include "tollgate/util_clock.h"
#include "unit.h"

static struct {
    struct event_base *base;
    srv_t srv;
    srv_worker_t w;
    int port;
    int requests;               /* handed to the gencb */
    size_t answer_bytes;        /* the body of each answer */
    srv_conn_verdict_t verdict; /* the last one's */
} t;

static void on_flushed(struct evhttp_request *req, void *arg)
{
    srv_conn_answered(arg, req); /* as respond.c: once the answer is written */
}

static void gencb(struct evhttp_request *req, void *arg)
{
    srv_worker_t *w = arg;

    struct evbuffer *body = evbuffer_new();

    t.verdict = srv_conn_request(w, req);
    t.requests++;
    for (size_t n = 0; body != NULL && n < t.answer_bytes; n += 65536) {
        static char chunk[65536];

        evbuffer_add(body, chunk, sizeof(chunk));
    }
    srv_conn_writing(w, req);
    evhttp_request_set_on_complete_cb(req, on_flushed, w);
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run the loop until pred() or 3 s.  One pass of the loop at a time (it
 * returns as soon as something happened, at most a 10 ms tick later), so
 * pred() is asked again at once rather than after a fixed 10 ms. */
static bool pump(bool (*pred)(void))
{
    static const struct timeval tick = {0, 10000};
    struct event *ev = event_new(t.base, -1, EV_PERSIST, tick_cb, NULL);
    uint64_t until = util_mono_ms() + 3000;
    bool ok;

    event_add(ev, &tick);
    while (!(ok = pred()) && util_mono_ms() < until)
        event_base_loop(t.base, EVLOOP_ONCE);
    event_free(ev);
    return ok;
}

static unsigned open_conns(void)
{
    return atomic_load(&t.srv.open_conns);
}

static bool no_conns(void)
{
    return open_conns() == 0 && t.w.conn_list == NULL && t.w.unflushed == 0;
}

static bool one_open(void)
{
    return open_conns() == 1;
}

static int want_requests;
static bool got_requests(void)
{
    return t.requests >= want_requests;
}

static int setup(const char *yaml)
{
    char err[512];
    struct evhttp_bound_socket *b;
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    memset(&t, 0, sizeof(t));
    t.base = event_base_new();
    t.w.base = t.base;
    t.w.srv = &t.srv;
    t.w.cfg = cfg_load_string(yaml, strlen(yaml), "test", err, sizeof(err));
    if (t.base == NULL || t.w.cfg == NULL) {
        fprintf(stderr, "test_srv_conn: %s\n", err);
        return -1;
    }
    t.w.http = evhttp_new(t.base);
    evhttp_set_gencb(t.w.http, gencb, &t.w);
    b = evhttp_bind_socket_with_handle(t.w.http, "127.0.0.1", 0);
    if (b == NULL || srv_conns_init(&t.w) != 0)
        return -1;
    getsockname(evhttp_bound_socket_get_fd(b), (struct sockaddr *)&sa, &sl);
    t.port = ntohs(sa.sin_port);
    return 0;
}

static void teardown(void)
{
    evhttp_free(t.w.http);
    srv_conns_clear(&t.w);
    cfg_unref(t.w.cfg);
    event_base_free(t.base);
}

static int client(const char *data, size_t len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t.port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return -1;
    if (len > 0 && send(fd, data, len, MSG_NOSIGNAL) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

#define CLIENT(lit) client(lit, sizeof(lit) - 1)

static const char *const base_yaml = "auth: {mode: none}\n"
                                     "max_connections: 3\n"
                                     "max_header_bytes: 1024\n"
                                     "max_body_bytes: 100\n";

static int peer_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static int over_fd;
static bool over_closed(void)
{
    return peer_closed(over_fd);
}

/* A connection that leaves before its request is whole takes its entry
 * with it, and the next connection (the kernel may hand it the same fd,
 * malloc the same bufferevent address) starts clean, even when it comes at
 * once.  Before, the entry stayed until a once-a-second sweep and the next
 * connection on the fd inherited its NUL verdict. */
static void test_state_not_inherited(void)
{
    CU_ASSERT_EQUAL_FATAL(setup(base_yaml), 0);
    for (int i = 0; i < 200; i++) {
        int a = CLIENT("GET / HTTP/1.1\r\nX-API-Key: KEY\0junk"), b;

        CU_ASSERT_FATAL(a >= 0);
        CU_ASSERT_TRUE(pump(one_open)); /* adopted: its entry holds the NUL */
        shutdown(a, SHUT_WR);
        over_fd = a;
        CU_ASSERT_TRUE(pump(over_closed)); /* evhttp freed it and closed its fd */
        close(a);
        b = CLIENT("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        CU_ASSERT_FATAL(b >= 0);
        want_requests = i + 1;
        CU_ASSERT_TRUE(pump(got_requests));
        CU_ASSERT_EQUAL(t.verdict, SRV_CONN_OK);
        close(b);
        CU_ASSERT_TRUE(pump(no_conns)); /* and the count is exact */
    }
    CU_ASSERT_EQUAL(t.requests, 200);
    teardown();
}

static bool three_open(void)
{
    return open_conns() == 3;
}

/* max_connections: the fourth connection is cut at its first bytes; the
 * count follows every close exactly. */
static void test_max_connections_exact(void)
{
    int fds[3];

    CU_ASSERT_EQUAL_FATAL(setup(base_yaml), 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_FATAL((fds[i] = CLIENT("GET / HT")) >= 0);
    CU_ASSERT_TRUE(pump(three_open));
    over_fd = CLIENT("GET / HT");
    CU_ASSERT_FATAL(over_fd >= 0);
    CU_ASSERT_TRUE(pump(over_closed));
    CU_ASSERT_EQUAL(open_conns(), 3);
    close(over_fd);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    CU_ASSERT_TRUE(pump(no_conns));
    teardown();
}

/* Each request's verdict is read from its own head. */
static void test_verdicts(void)
{
    static const struct {
        const char *req;
        size_t len;
        srv_conn_verdict_t want;
    } cases[] = {
#define R(lit, v) {lit, sizeof(lit) - 1, v}
        R("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", SRV_CONN_OK),
        R("GET / HTTP/1.1\r\nConnection: close\r\nX: a\0b\r\n\r\n", SRV_CONN_NUL),
        R("POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: 101\r\n\r\n",
          SRV_CONN_BODY_TOO_LARGE),
        R("POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: 100\r\n\r\n"
          "0123456789012345678901234567890123456789012345678901234567890123456789"
          "012345678901234567890123456789",
          SRV_CONN_OK),
#undef R
    };
    char big[1100];

    CU_ASSERT_EQUAL_FATAL(setup(base_yaml), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int fd = client(cases[i].req, cases[i].len);

        CU_ASSERT_FATAL(fd >= 0);
        want_requests = (int)i + 1;
        CU_ASSERT_TRUE(pump(got_requests));
        CU_ASSERT_EQUAL(t.verdict, cases[i].want);
        close(fd);
    }
    /* a head over max_header_bytes that has not ended */
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX-Big: ", 23);
    {
        int fd = client(big, sizeof(big));

        CU_ASSERT_FATAL(fd >= 0);
        want_requests = (int)(sizeof(cases) / sizeof(cases[0])) + 1;
        CU_ASSERT_TRUE(pump(got_requests));
        CU_ASSERT_EQUAL(t.verdict, SRV_CONN_HEAD_TOO_LARGE);
        close(fd);
    }
    CU_ASSERT_TRUE(pump(no_conns));
    teardown();
}

static bool answering(void)
{
    return t.w.unflushed == 1;
}

/* A client that leaves while its answer is being written no longer keeps
 * it counted (a SIGTERM drain waited its full 10 s for it). */
static void test_gone_mid_answer(void)
{
    CU_ASSERT_EQUAL_FATAL(setup(base_yaml), 0);
    t.answer_bytes = 32u << 20; /* far more than the socket buffers take */
    for (int i = 0; i < 3; i++) {
        int fd = CLIENT("GET / HTTP/1.1\r\nHost: x\r\n\r\n");

        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_TRUE(pump(answering));
        close(fd); /* without reading */
        CU_ASSERT_TRUE(pump(no_conns));
        CU_ASSERT_EQUAL(t.w.unflushed, 0);
    }
    teardown();
}

static const unit_test_t tests[] = {
    {"state_not_inherited", test_state_not_inherited},
    {"max_connections_exact", test_max_connections_exact},
    {"verdicts", test_verdicts},
    {"gone_mid_answer", test_gone_mid_answer},
    {NULL, NULL},
};

int test_srv_conn_add(void)
{
    return unit_add_suite("srv_conn", tests);
}
