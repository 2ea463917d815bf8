/* test_srv_proxy.c — the upstream client against real sockets on loopback:
 * an upstream evhttp server, a "front" evhttp server whose handler forwards
 * with srv_proxy_forward(), and an evhttp client, all on one event_base.
 * A raw TCP upstream simulates a keep-alive connection closed by the peer.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "../../server/srv_proxy.h"
#include "unit.h"

#define RAW_MAX 8

struct raw_conn {
    struct bufferevent *bev;
    int nreq;
    bool partial; /* GET /partial: answered in part, then silent */
};

static struct {
    struct event_base *base;
    srv_proxy_t *px;
    /* upstream */
    struct evhttp *up;
    uint16_t up_port;
    int up_conns, up_reqs, up_replied;
    unsigned slow_ms;
    struct evkeyvalq up_hdrs;
    char up_method[16], up_uri[256], up_body[256];
    /* raw upstream */
    struct evconnlistener *raw;
    uint16_t raw_port;
    int raw_conns;
    bool raw_garbage; /* answer with a broken status line */
    struct raw_conn *rawc[RAW_MAX];
    /* front */
    struct evhttp *front;
    uint16_t front_port;
    char upstream[128];
    unsigned timeout_ms;
    struct evhttp_request *front_req;
    srv_proxy_req_t *last;
    int forwarded, forward_null, front_done;
    srv_proxy_status_t last_status;
    /* client */
    int cl_done, cl_code;
    struct evkeyvalq cl_hdrs;
    char cl_reason[64], cl_body[256];
    bool expired;
    /* streaming front (srv_proxy_forward_stream) */
    bool stream;
    int st_heads, st_pieces, st_done, st_code, st_pieces_when_resumed, st_resumed;
    size_t st_bytes;
    srv_proxy_status_t st_status;
    bool st_pause_first;  /* pause at the first piece, resume from the loop */
    bool st_cancel_first; /* cancel (from the loop) after the first piece */
    struct event *st_ev;
    bool st_hold_first;     /* pause at the first piece, never resume */
    srv_proxy_req_t *first; /* the first streamed request's handle */
    int st_slow;            /* done with SRV_PROXY_SLOW_CLIENT */
    int cl_codes[8];        /* every client answer's code, in order */
} T;

#define BIG_BODY (1u << 20)

/* ---- helpers ----------------------------------------------------------- */

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    T.expired = true;
    event_base_loopbreak(T.base);
}

/* Run the loop until *ctr reaches want or ms pass; true when reached. */
static bool run_until(const int *ctr, int want, unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    struct event *t = evtimer_new(T.base, on_expire, NULL);

    T.expired = false;
    evtimer_add(t, &tv);
    while (*ctr < want && !T.expired)
        event_base_loop(T.base, EVLOOP_ONCE);
    event_free(t);
    return *ctr >= want;
}

static void copy_body(struct evbuffer *b, char *out, size_t outlen)
{
    size_t n = evbuffer_get_length(b);

    if (n >= outlen)
        n = outlen - 1;
    evbuffer_copyout(b, out, n);
    out[n] = '\0';
}

static void copy_hdrs(const struct evkeyvalq *from, struct evkeyvalq *to)
{
    const struct evkeyval *kv;

    evhttp_clear_headers(to);
    for (kv = TAILQ_FIRST(from); kv != NULL; kv = TAILQ_NEXT(kv, next)) {
        evhttp_add_header(to, kv->key, kv->value);
    }
}

static int count_hdr(const struct evkeyvalq *h, const char *name)
{
    const struct evkeyval *kv;
    int n = 0;

    for (kv = TAILQ_FIRST(h); kv != NULL; kv = TAILQ_NEXT(kv, next)) {
        n += strcasecmp(kv->key, name) == 0;
    }
    return n;
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    default:
        return "OTHER";
    }
}

static uint16_t bound_port(evutil_socket_t fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    if (getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
        return 0;
    return ntohs(sin.sin_port);
}

/* ---- upstream ---------------------------------------------------------- */

static struct bufferevent *up_bevcb(struct event_base *b, void *arg)
{
    (void)arg;
    T.up_conns++;
    return bufferevent_socket_new(b, -1, BEV_OPT_CLOSE_ON_FREE);
}

static void up_reply(struct evhttp_request *req)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();

    evhttp_add_header(oh, "X-Up", "yes");
    evhttp_add_header(oh, "Connection", "X-Hop-Resp");
    evhttp_add_header(oh, "X-Hop-Resp", "secret");
    evhttp_add_header(oh, "Keep-Alive", "timeout=5");
    evbuffer_add_printf(b, "echo:%s", T.up_body);
    evhttp_send_reply(req, 201, "Made It", b);
    evbuffer_free(b);
    T.up_replied++;
}

static void up_slow_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    up_reply(arg);
}

static void up_cb(struct evhttp_request *req, void *arg)
{
    (void)arg;
    T.up_reqs++;
    snprintf(T.up_method, sizeof(T.up_method), "%s",
             method_name(evhttp_request_get_command(req)));
    snprintf(T.up_uri, sizeof(T.up_uri), "%s", evhttp_request_get_uri(req));
    copy_body(evhttp_request_get_input_buffer(req), T.up_body, sizeof(T.up_body));
    copy_hdrs(evhttp_request_get_input_headers(req), &T.up_hdrs);
    if (strncmp(T.up_uri, "/big", 4) == 0) {
        struct evbuffer *b = evbuffer_new();
        char *data = malloc(BIG_BODY);

        memset(data, 'b', BIG_BODY);
        evbuffer_add(b, data, BIG_BODY);
        free(data);
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
        T.up_replied++;
        return;
    }
    if (strncmp(T.up_uri, "/slow", 5) == 0) {
        struct timeval tv = {0, (suseconds_t)T.slow_ms * 1000};

        event_base_once(T.base, -1, EV_TIMEOUT, up_slow_cb, req, &tv);
        return;
    }
    up_reply(req);
}

/* ---- raw upstream: answers the first request of a connection, closes on
 * the second, like a server whose keep-alive timer just fired ---------- */

static void raw_close(struct raw_conn *c)
{
    int i;

    for (i = 0; i < RAW_MAX; i++)
        if (T.rawc[i] == c)
            T.rawc[i] = NULL;
    bufferevent_free(c->bev);
    free(c);
}

static void raw_read(struct bufferevent *bev, void *arg)
{
    struct raw_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_ptr e;

    while ((e = evbuffer_search(in, "\r\n\r\n", 4, NULL)).pos >= 0) {
        char line[13] = "";

        evbuffer_copyout(in, line, 12);
        c->partial = strcmp(line, "GET /partial") == 0;
        evbuffer_drain(in, (size_t)e.pos + 4);
        if (++c->nreq > 1) {
            raw_close(c);
            return;
        }
        if (T.raw_garbage)
            bufferevent_write(bev, "HTTP/1.1 abc\r\n\r\n", 16);
        else if (c->partial) /* 5 bytes of 100, then nothing */
            bufferevent_write(bev, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst",
                              43);
        else
            bufferevent_write(bev, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40);
    }
}

static void raw_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        raw_close(arg);
}

static void raw_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                       int salen, void *arg)
{
    struct raw_conn *c = calloc(1, sizeof(*c));
    int i;

    (void)l;
    (void)sa;
    (void)salen;
    (void)arg;
    T.raw_conns++;
    c->bev = bufferevent_socket_new(T.base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, raw_read, NULL, raw_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    for (i = 0; i < RAW_MAX; i++)
        if (T.rawc[i] == NULL) {
            T.rawc[i] = c;
            break;
        }
}

/* ---- front (the pipeline's stand-in) ----------------------------------- */

static void front_done(const srv_proxy_resp_t *resp, void *privdata)
{
    struct evhttp_request *req = privdata;

    T.front_done++;
    T.last_status = resp->status;
    T.last = NULL;
    if (resp->status == SRV_PROXY_OK) {
        srv_proxy_copy_headers(resp->headers, evhttp_request_get_output_headers(req));
        evhttp_send_reply(req, resp->code, resp->reason, resp->body);
    } else {
        evhttp_send_reply(req, resp->status == SRV_PROXY_TIMEOUT ? 504 : 502, "Proxy",
                          NULL);
    }
}

static void st_head(const srv_proxy_resp_t *resp, void *privdata)
{
    struct evhttp_request *req = privdata;

    T.st_heads++;
    T.st_code = resp->code;
    CU_ASSERT_PTR_NULL(resp->body);
    srv_proxy_copy_headers(resp->headers, evhttp_request_get_output_headers(req));
    evhttp_send_reply_start(req, resp->code, resp->reason);
}

static void st_body(struct evbuffer *piece, void *privdata)
{
    T.st_pieces++;
    T.st_bytes += evbuffer_get_length(piece);
    evhttp_send_reply_chunk(privdata, piece);
    CU_ASSERT_EQUAL(evbuffer_get_length(piece), 0);
    if (T.st_pieces == 1 && T.st_pause_first) {
        srv_proxy_pause(T.last, 1);
        event_active(T.st_ev, EV_TIMEOUT, 1);
    }
    if (T.st_pieces == 1 && T.st_cancel_first)
        event_active(T.st_ev, EV_TIMEOUT, 1);
    if (T.st_pieces == 1 && T.st_hold_first)
        srv_proxy_pause(T.last, 1);
    if (T.st_pieces == 1)
        T.first = T.last;
}

static void st_done(const srv_proxy_resp_t *resp, void *privdata)
{
    T.st_done++;
    T.st_status = resp->status;
    T.last = NULL;
    if (resp->status == SRV_PROXY_SLOW_CLIENT) {
        /* cut short after the head: closed, as the pipeline does */
        T.st_slow++;
        T.first = NULL;
        evhttp_connection_free(evhttp_request_get_connection(privdata));
        return;
    }
    if (T.st_heads > 0)
        evhttp_send_reply_end(privdata);
    else
        evhttp_send_reply(privdata, 502, "Proxy", NULL);
}

/* From the loop, after the first piece: resume, or cancel. */
static void st_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (T.st_cancel_first) {
        srv_proxy_cancel(T.last); /* the client "went away" mid-answer */
        T.last = NULL;
        T.st_resumed++;
        return;
    }
    T.st_pieces_when_resumed = T.st_pieces;
    T.st_resumed++;
    srv_proxy_pause(T.last, 0);
}

static const srv_proxy_stream_t front_stream = {st_head, st_body, st_done};

static void front_cb(struct evhttp_request *req, void *arg)
{
    static const srv_proxy_hdr_t add[] = {{"X-Auth-Client-Id", "svc-1"},
                                          {"X-Request-ID", "rid-123"}};

    (void)arg;
    T.forwarded++;
    T.front_req = req;
    if (T.stream)
        T.last = srv_proxy_forward_stream(T.px, req, T.upstream, evhttp_request_get_uri(req),
                                          add, 2, "203.0.113.7", 0, T.timeout_ms,
                                          &front_stream, req);
    else
        T.last = srv_proxy_forward(T.px, req, T.upstream, evhttp_request_get_uri(req), add,
                                   2, "203.0.113.7", 0, T.timeout_ms, front_done, req);
    if (T.last == NULL) {
        T.forward_null++;
        evhttp_send_reply(req, 500, "No", NULL);
    }
}

/* ---- client ------------------------------------------------------------ */

static void client_cb(struct evhttp_request *req, void *arg)
{
    (void)arg;
    T.cl_done++;
    if (req == NULL || evhttp_request_get_response_code(req) == 0) {
        T.cl_code = -1;
        if (T.cl_done <= 8)
            T.cl_codes[T.cl_done - 1] = -1;
        return;
    }
    T.cl_code = evhttp_request_get_response_code(req);
    if (T.cl_done <= 8)
        T.cl_codes[T.cl_done - 1] = T.cl_code;
    snprintf(T.cl_reason, sizeof(T.cl_reason), "%s",
             evhttp_request_get_response_code_line(req));
    copy_hdrs(evhttp_request_get_input_headers(req), &T.cl_hdrs);
    copy_body(evhttp_request_get_input_buffer(req), T.cl_body, sizeof(T.cl_body));
}

static struct evhttp_connection *client_new(void)
{
    return evhttp_connection_base_new(T.base, NULL, "127.0.0.1", T.front_port);
}

static void client_send(struct evhttp_connection *c, enum evhttp_cmd_type m,
                        const char *uri, const char *body, const char *const *hdrs)
{
    struct evhttp_request *r = evhttp_request_new(client_cb, NULL);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(r);

    evhttp_add_header(oh, "Host", "front.example");
    for (; hdrs != NULL && hdrs[0] != NULL; hdrs += 2)
        evhttp_add_header(oh, hdrs[0], hdrs[1]);
    if (body != NULL)
        evbuffer_add(evhttp_request_get_output_buffer(r), body, strlen(body));
    evhttp_make_request(c, r, m, uri);
}

/* ---- fixture ----------------------------------------------------------- */

static struct evhttp *server_new(void (*cb)(struct evhttp_request *, void *),
                                 uint16_t *port)
{
    struct evhttp *h = evhttp_new(T.base);
    struct evhttp_bound_socket *s;

    evhttp_set_gencb(h, cb, NULL);
    s = evhttp_bind_socket_with_handle(h, "127.0.0.1", 0);
    CU_ASSERT_FATAL(s != NULL);
    *port = bound_port(evhttp_bound_socket_get_fd(s));
    return h;
}

static void fx_setup(void)
{
    struct sockaddr_in sin;

    memset(&T, 0, sizeof(T));
    TAILQ_INIT(&T.up_hdrs);
    TAILQ_INIT(&T.cl_hdrs);
    T.base = event_base_new();
    T.px = srv_proxy_new(T.base, NULL);
    CU_ASSERT_FATAL(T.base != NULL && T.px != NULL);
    T.up = server_new(up_cb, &T.up_port);
    evhttp_set_bevcb(T.up, up_bevcb, NULL);
    T.front = server_new(front_cb, &T.front_port);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T.raw = evconnlistener_new_bind(T.base, raw_accept, NULL,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                    (struct sockaddr *)&sin, sizeof(sin));
    CU_ASSERT_FATAL(T.raw != NULL);
    T.raw_port = bound_port(evconnlistener_get_fd(T.raw));
    snprintf(T.upstream, sizeof(T.upstream), "http://127.0.0.1:%u", T.up_port);
    T.timeout_ms = 2000;
    T.slow_ms = 600;
    T.st_ev = event_new(T.base, -1, 0, st_later, NULL);
    CU_ASSERT_FATAL(T.st_ev != NULL);
}

static void fx_teardown(void)
{
    int i;

    srv_proxy_free(T.px);
    event_free(T.st_ev);
    for (i = 0; i < RAW_MAX; i++)
        if (T.rawc[i] != NULL)
            raw_close(T.rawc[i]);
    evconnlistener_free(T.raw);
    evhttp_free(T.front);
    evhttp_free(T.up);
    evhttp_clear_headers(&T.up_hdrs);
    evhttp_clear_headers(&T.cl_hdrs);
    event_base_free(T.base);
}

static const char *up_hdr(const char *name)
{
    return evhttp_find_header(&T.up_hdrs, name);
}

/* ---- tests ------------------------------------------------------------- */

static void test_passthrough(void)
{
    static const char *const h[] = {"Connection",
                                    "X-Secret",
                                    "X-Secret",
                                    "s",
                                    "Keep-Alive",
                                    "timeout=5",
                                    "Proxy-Authorization",
                                    "Basic eDp5",
                                    "TE",
                                    "trailers",
                                    "Upgrade",
                                    "websocket",
                                    "X-Auth-Client-Id",
                                    "forged",
                                    "X-Auth-Scopes",
                                    "admin",
                                    "X-Request-ID",
                                    "forged",
                                    "X-Forwarded-For",
                                    "198.51.100.1",
                                    "X-Custom",
                                    "c",
                                    NULL};
    struct evhttp_connection *c;
    char host[32];

    fx_setup();
    c = client_new();
    client_send(c, EVHTTP_REQ_POST, "/echo?x=1", "hello", h);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 1, 3000));
    CU_ASSERT_EQUAL(T.front_done, 1);
    CU_ASSERT_EQUAL(T.last_status, SRV_PROXY_OK);
    /* what the upstream saw */
    CU_ASSERT_STRING_EQUAL(T.up_method, "POST");
    CU_ASSERT_STRING_EQUAL(T.up_uri, "/echo?x=1");
    CU_ASSERT_STRING_EQUAL(T.up_body, "hello");
    CU_ASSERT_STRING_EQUAL(up_hdr("X-Custom"), "c");
    CU_ASSERT_STRING_EQUAL(up_hdr("Content-Length"), "5");
    snprintf(host, sizeof(host), "127.0.0.1:%u", T.up_port);
    CU_ASSERT_STRING_EQUAL(up_hdr("Host"), host);
    CU_ASSERT_PTR_NULL(up_hdr("Connection"));
    CU_ASSERT_PTR_NULL(up_hdr("X-Secret"));
    CU_ASSERT_PTR_NULL(up_hdr("Keep-Alive"));
    CU_ASSERT_PTR_NULL(up_hdr("Proxy-Authorization"));
    CU_ASSERT_PTR_NULL(up_hdr("TE"));
    CU_ASSERT_PTR_NULL(up_hdr("Upgrade"));
    CU_ASSERT_PTR_NULL(up_hdr("X-Auth-Scopes"));
    CU_ASSERT_EQUAL(count_hdr(&T.up_hdrs, "X-Auth-Client-Id"), 1);
    CU_ASSERT_STRING_EQUAL(up_hdr("X-Auth-Client-Id"), "svc-1");
    CU_ASSERT_EQUAL(count_hdr(&T.up_hdrs, "X-Request-ID"), 1);
    CU_ASSERT_STRING_EQUAL(up_hdr("X-Request-ID"), "rid-123");
    CU_ASSERT_EQUAL(count_hdr(&T.up_hdrs, "X-Forwarded-For"), 1);
    CU_ASSERT_STRING_EQUAL(up_hdr("X-Forwarded-For"), "198.51.100.1, 203.0.113.7");
    CU_ASSERT_STRING_EQUAL(up_hdr("X-Forwarded-Proto"), "http");
    CU_ASSERT_STRING_EQUAL(up_hdr("X-Forwarded-Host"), "front.example");
    /* what the client got */
    CU_ASSERT_EQUAL(T.cl_code, 201);
    CU_ASSERT_STRING_EQUAL(T.cl_reason, "Made It");
    CU_ASSERT_STRING_EQUAL(T.cl_body, "echo:hello");
    CU_ASSERT_STRING_EQUAL(evhttp_find_header(&T.cl_hdrs, "X-Up"), "yes");
    CU_ASSERT_PTR_NULL(evhttp_find_header(&T.cl_hdrs, "X-Hop-Resp"));
    CU_ASSERT_PTR_NULL(evhttp_find_header(&T.cl_hdrs, "Keep-Alive"));
    evhttp_connection_free(c);
    fx_teardown();
}

static void test_get_no_body_no_xff(void)
{
    struct evhttp_connection *c;

    fx_setup();
    c = client_new();
    client_send(c, EVHTTP_REQ_DELETE, "/items/7", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 1, 3000));
    CU_ASSERT_EQUAL(T.cl_code, 201);
    CU_ASSERT_STRING_EQUAL(T.up_method, "DELETE");
    CU_ASSERT_STRING_EQUAL(T.up_uri, "/items/7");
    CU_ASSERT_PTR_NULL(up_hdr("Content-Length"));
    CU_ASSERT_STRING_EQUAL(up_hdr("X-Forwarded-For"), "203.0.113.7");
    evhttp_connection_free(c);
    fx_teardown();
}

static void test_reuse_sequential(void)
{
    struct evhttp_connection *c;
    int i;

    fx_setup();
    c = client_new();
    for (i = 0; i < 5; i++) {
        client_send(c, EVHTTP_REQ_GET, "/r", NULL, NULL);
        CU_ASSERT_FATAL(run_until(&T.cl_done, i + 1, 3000));
        CU_ASSERT_EQUAL(T.cl_code, 201);
    }
    CU_ASSERT_EQUAL(T.up_reqs, 5);
    CU_ASSERT_EQUAL(T.up_conns, 1);
    evhttp_connection_free(c);
    fx_teardown();
}

static void test_pool_limit_queues(void)
{
    struct evhttp_connection *c[3];
    int i;

    fx_setup();
    srv_proxy_set_max_conns(T.px, 1);
    for (i = 0; i < 3; i++) {
        c[i] = client_new();
        client_send(c[i], EVHTTP_REQ_GET, "/q", NULL, NULL);
    }
    CU_ASSERT_FATAL(run_until(&T.cl_done, 3, 3000));
    CU_ASSERT_EQUAL(T.front_done, 3);
    CU_ASSERT_EQUAL(T.cl_code, 201);
    CU_ASSERT_EQUAL(T.up_reqs, 3);
    CU_ASSERT_EQUAL(T.up_conns, 1);
    for (i = 0; i < 3; i++)
        evhttp_connection_free(c[i]);
    fx_teardown();
}

static void test_timeout(void)
{
    struct evhttp_connection *c;
    struct timeval t0, t1;
    long ms;

    fx_setup();
    T.timeout_ms = 200;
    c = client_new();
    evutil_gettimeofday(&t0, NULL);
    client_send(c, EVHTTP_REQ_GET, "/slow", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.front_done, 1, 3000));
    evutil_gettimeofday(&t1, NULL);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
    CU_ASSERT_EQUAL(T.last_status, SRV_PROXY_TIMEOUT);
    CU_ASSERT(ms >= 190 && ms < 550);
    CU_ASSERT(run_until(&T.cl_done, 1, 3000));
    CU_ASSERT_EQUAL(T.cl_code, 504);
    /* let the upstream's late reply go out on the closed connection */
    CU_ASSERT(run_until(&T.up_replied, 1, 3000));
    evhttp_connection_free(c);
    fx_teardown();
}

static void test_connect_refused(void)
{
    struct evhttp_connection *c;
    evutil_socket_t fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;

    fx_setup();
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    snprintf(T.upstream, sizeof(T.upstream), "http://127.0.0.1:%u/", bound_port(fd));
    evutil_closesocket(fd); /* nothing listens there now */
    c = client_new();
    client_send(c, EVHTTP_REQ_GET, "/x", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 1, 3000));
    CU_ASSERT_EQUAL(T.front_done, 1);
    CU_ASSERT_EQUAL(T.last_status, SRV_PROXY_CONNECT);
    CU_ASSERT_EQUAL(T.cl_code, 502);
    evhttp_connection_free(c);
    fx_teardown();
}

static void test_cancel_in_flight(void)
{
    struct evhttp_connection *c;
    int never = 0;

    fx_setup();
    T.slow_ms = 300;
    c = client_new();
    client_send(c, EVHTTP_REQ_GET, "/slow", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.up_reqs, 1, 3000));
    CU_ASSERT_FATAL(T.last != NULL);
    srv_proxy_cancel(T.last); /* the client "went away" */
    T.last = NULL;
    run_until(&never, 1, 500); /* upstream answers meanwhile: nobody listens */
    CU_ASSERT_EQUAL(T.up_replied, 1);
    CU_ASSERT_EQUAL(T.front_done, 0);
    /* the pipeline answers the client itself; the pool still works */
    evhttp_send_reply(T.front_req, 499, "Gone", NULL);
    CU_ASSERT(run_until(&T.cl_done, 1, 3000));
    client_send(c, EVHTTP_REQ_GET, "/after", NULL, NULL);
    CU_ASSERT(run_until(&T.cl_done, 2, 3000));
    CU_ASSERT_EQUAL(T.cl_code, 201);
    CU_ASSERT_EQUAL(T.front_done, 1);
    evhttp_connection_free(c);
    fx_teardown();
}

static void test_cancel_waiting_and_free_pending(void)
{
    struct evhttp_connection *c[2];
    srv_proxy_req_t *first;

    fx_setup();
    srv_proxy_set_max_conns(T.px, 1);
    T.slow_ms = 100;
    c[0] = client_new();
    c[1] = client_new();
    client_send(c[0], EVHTTP_REQ_GET, "/slow", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.forwarded, 1, 3000));
    first = T.last;
    client_send(c[1], EVHTTP_REQ_GET, "/slow", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.forwarded, 2, 3000));
    srv_proxy_cancel(T.last); /* the one waiting for a connection */
    CU_ASSERT(run_until(&T.front_done, 1, 3000));
    CU_ASSERT_EQUAL(T.last_status, SRV_PROXY_OK);
    CU_ASSERT_EQUAL(T.up_reqs, 1);
    (void)first;
    /* another one in flight when the proxy is freed: no callback, no leak */
    client_send(c[0], EVHTTP_REQ_GET, "/slow", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.up_reqs, 2, 3000));
    srv_proxy_free(T.px);
    T.px = NULL;
    CU_ASSERT(run_until(&T.up_replied, 2, 3000));
    CU_ASSERT_EQUAL(T.front_done, 1);
    evhttp_connection_free(c[0]);
    evhttp_connection_free(c[1]);
    fx_teardown();
}

static void test_stale_keepalive_retry(void)
{
    struct evhttp_connection *c;

    fx_setup();
    snprintf(T.upstream, sizeof(T.upstream), "http://127.0.0.1:%u", T.raw_port);
    c = client_new();
    client_send(c, EVHTTP_REQ_GET, "/a", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 1, 3000));
    CU_ASSERT_EQUAL(T.cl_code, 200);
    /* the reused connection is closed on the next request: GET is retried */
    client_send(c, EVHTTP_REQ_GET, "/b", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 2, 3000));
    CU_ASSERT_EQUAL(T.cl_code, 200);
    CU_ASSERT_STRING_EQUAL(T.cl_body, "ok");
    CU_ASSERT_EQUAL(T.raw_conns, 2);
    /* ... a POST is not */
    client_send(c, EVHTTP_REQ_POST, "/c", "x", NULL);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 3, 3000));
    CU_ASSERT_EQUAL(T.cl_code, 502);
    CU_ASSERT_EQUAL(T.last_status, SRV_PROXY_CONNECT);
    CU_ASSERT_EQUAL(T.raw_conns, 2);
    evhttp_connection_free(c);
    fx_teardown();
}

static void test_bad_answer(void)
{
    struct evhttp_connection *c;

    fx_setup();
    T.raw_garbage = true;
    snprintf(T.upstream, sizeof(T.upstream), "http://127.0.0.1:%u", T.raw_port);
    c = client_new();
    client_send(c, EVHTTP_REQ_GET, "/a", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 1, 3000));
    /* not a status line: refused before libevent reads it */
    CU_ASSERT_EQUAL(T.last_status, SRV_PROXY_BAD_ANSWER);
    CU_ASSERT_EQUAL(T.cl_code, 502);
    evhttp_connection_free(c);
    fx_teardown();
}

static void test_refused_arguments(void)
{
    static const char *const bad[] = {"https://127.0.0.1:1",
                                      "http://backend.example:80",
                                      "http://127.0.0.1:0",
                                      "http://127.0.0.1:99999",
                                      "http://127.0.0.1:80/api",
                                      "http://u@127.0.0.1",
                                      "http://[::1",
                                      "ftp://127.0.0.1"};
    struct evhttp_connection *c;
    size_t i;

    fx_setup();
    c = client_new();
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(T.upstream, sizeof(T.upstream), "%s", bad[i]);
        client_send(c, EVHTTP_REQ_GET, "/x", NULL, NULL);
        CU_ASSERT_FATAL(run_until(&T.cl_done, (int)i + 1, 3000));
        CU_ASSERT_EQUAL(T.cl_code, 500);
    }
    CU_ASSERT_EQUAL(T.forward_null, (int)(sizeof(bad) / sizeof(bad[0])));
    /* a good upstream without a timeout: the config always gives one */
    snprintf(T.upstream, sizeof(T.upstream), "http://127.0.0.1:%u", T.up_port);
    T.timeout_ms = 0;
    client_send(c, EVHTTP_REQ_GET, "/x", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.cl_done, (int)i + 1, 3000));
    CU_ASSERT_EQUAL(T.cl_code, 500);
    CU_ASSERT_EQUAL(T.forward_null, (int)i + 1);
    CU_ASSERT_EQUAL(T.front_done, 0);
    evhttp_connection_free(c);
    fx_teardown();
}

static void test_copy_headers(void)
{
    struct evkeyvalq from, to;

    TAILQ_INIT(&from);
    TAILQ_INIT(&to);
    evhttp_add_header(&from, "Content-Type", "text/plain");
    evhttp_add_header(&from, "Connection", "keep-alive, X-Foo");
    evhttp_add_header(&from, "Connection", "x-bar");
    evhttp_add_header(&from, "X-Foo", "1");
    evhttp_add_header(&from, "X-Bar", "2");
    evhttp_add_header(&from, "X-Foobar", "3");
    evhttp_add_header(&from, "Transfer-Encoding", "chunked");
    evhttp_add_header(&from, "Trailer", "X-Sum");
    evhttp_add_header(&from, "Proxy-Authenticate", "Basic");
    evhttp_add_header(&from, "Set-Cookie", "a=1");
    evhttp_add_header(&from, "Set-Cookie", "b=2");
    srv_proxy_copy_headers(&from, &to);
    CU_ASSERT_STRING_EQUAL(evhttp_find_header(&to, "Content-Type"), "text/plain");
    CU_ASSERT_STRING_EQUAL(evhttp_find_header(&to, "X-Foobar"), "3");
    CU_ASSERT_EQUAL(count_hdr(&to, "Set-Cookie"), 2);
    CU_ASSERT_EQUAL(count_hdr(&to, "Connection"), 0);
    CU_ASSERT_EQUAL(count_hdr(&to, "X-Foo"), 0);
    CU_ASSERT_EQUAL(count_hdr(&to, "X-Bar"), 0);
    CU_ASSERT_EQUAL(count_hdr(&to, "Transfer-Encoding"), 0);
    CU_ASSERT_EQUAL(count_hdr(&to, "Trailer"), 0);
    CU_ASSERT_EQUAL(count_hdr(&to, "Proxy-Authenticate"), 0);
    evhttp_clear_headers(&from);
    evhttp_clear_headers(&to);
    srv_proxy_free(NULL);
    srv_proxy_cancel(NULL);
}

/* Streamed: the head, then the body in pieces (more than one for 1 MiB),
 * every byte, then done OK; the connection is reused after it. */
static void test_stream_pieces(void)
{
    struct evhttp_connection *c;

    fx_setup();
    T.stream = true;
    c = client_new();
    client_send(c, EVHTTP_REQ_GET, "/big", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 1, 5000));
    CU_ASSERT_EQUAL(T.st_heads, 1);
    CU_ASSERT_EQUAL(T.st_code, 200);
    CU_ASSERT(T.st_pieces > 1);
    CU_ASSERT_EQUAL(T.st_bytes, BIG_BODY);
    CU_ASSERT_EQUAL(T.st_done, 1);
    CU_ASSERT_EQUAL(T.st_status, SRV_PROXY_OK);
    CU_ASSERT_EQUAL(T.cl_code, 200);
    client_send(c, EVHTTP_REQ_GET, "/after", NULL, NULL);
    CU_ASSERT(run_until(&T.cl_done, 2, 3000));
    CU_ASSERT_EQUAL(T.cl_code, 201);
    CU_ASSERT_STRING_EQUAL(T.cl_body, "echo:");
    CU_ASSERT_EQUAL(T.up_conns, 1); /* the pooled connection, reused */
    evhttp_connection_free(c);
    fx_teardown();
}

/* Paused at the first piece: nothing more arrives until resumed, then
 * every byte does. */
static void test_stream_pause(void)
{
    struct evhttp_connection *c;

    fx_setup();
    T.stream = true;
    T.st_pause_first = true;
    c = client_new();
    client_send(c, EVHTTP_REQ_GET, "/big", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 1, 5000));
    CU_ASSERT_EQUAL(T.st_resumed, 1);
    CU_ASSERT_EQUAL(T.st_pieces_when_resumed, 1);
    CU_ASSERT_EQUAL(T.st_bytes, BIG_BODY);
    CU_ASSERT_EQUAL(T.st_status, SRV_PROXY_OK);
    evhttp_connection_free(c);
    fx_teardown();
}

/* Cancelled mid-answer: done never runs, the connection is not reused
 * (what is left of the answer must not reach the next request). */
static void test_stream_cancel(void)
{
    struct evhttp_connection *c;
    /* the stand-in upstream writes into the connection the proxy closed:
     * EPIPE, as for any server, rather than the signal */
    void (*was)(int) = signal(SIGPIPE, SIG_IGN);

    fx_setup();
    T.stream = true;
    T.st_cancel_first = true;
    c = client_new();
    client_send(c, EVHTTP_REQ_GET, "/big", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.st_resumed, 1, 5000));
    CU_ASSERT_EQUAL(T.st_done, 0);
    CU_ASSERT(T.st_bytes < BIG_BODY);
    /* the front closes its client, as the pipeline does: the answer (with
     * the upstream's Content-Length) arrives cut short */
    evhttp_connection_free(evhttp_request_get_connection(T.front_req));
    CU_ASSERT_FATAL(run_until(&T.cl_done, 1, 3000));
    CU_ASSERT_EQUAL(T.cl_code, -1);
    T.st_cancel_first = false;
    client_send(c, EVHTTP_REQ_GET, "/after", NULL, NULL);
    CU_ASSERT(run_until(&T.cl_done, 2, 3000));
    CU_ASSERT_EQUAL(T.cl_code, 201);
    CU_ASSERT_EQUAL(T.up_conns, 2);
    CU_ASSERT_EQUAL(T.st_done, 1);
    evhttp_connection_free(c);
    fx_teardown();
    signal(SIGPIPE, was);
}

/* A refused head never reaches `head`: done reports it, with no code. */
static void test_stream_bad_head(void)
{
    struct evhttp_connection *c;

    fx_setup();
    T.stream = true;
    T.raw_garbage = true;
    snprintf(T.upstream, sizeof(T.upstream), "http://127.0.0.1:%u", T.raw_port);
    c = client_new();
    client_send(c, EVHTTP_REQ_GET, "/x", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 1, 3000));
    CU_ASSERT_EQUAL(T.st_heads, 0);
    CU_ASSERT_EQUAL(T.st_done, 1);
    CU_ASSERT_EQUAL(T.st_status, SRV_PROXY_BAD_ANSWER);
    CU_ASSERT_EQUAL(T.cl_code, 502);
    evhttp_connection_free(c);
    fx_teardown();
}

/* The pool at its limit, held by a paused stream: the next request takes
 * that stream's connection at once (not after timeout_ms), the stream ends
 * SRV_PROXY_SLOW_CLIENT, its client sees the answer cut, and its
 * connection is not reused. */
/* A pool of `max_conns`; client a's stream of /big paused after its first
 * piece (its client not reading), then client b asks for /r.  timeout_ms 0:
 * the fixture's own. */
static void paused_then_another(unsigned max_conns, unsigned timeout_ms,
                                struct evhttp_connection **a, struct evhttp_connection **b)
{
    fx_setup();
    srv_proxy_set_max_conns(T.px, max_conns);
    if (timeout_ms > 0)
        T.timeout_ms = timeout_ms;
    T.stream = true;
    T.st_hold_first = true;
    *a = client_new();
    client_send(*a, EVHTTP_REQ_GET, "/big", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.st_pieces, 1, 3000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(T.first);
    T.st_hold_first = false;
    *b = client_new();
    client_send(*b, EVHTTP_REQ_GET, "/r", NULL, NULL);
}

static void test_paused_stream_gives_way(void)
{
    struct evhttp_connection *a, *b;
    void (*was)(int) = signal(SIGPIPE, SIG_IGN);

    paused_then_another(1, 30000, &a, &b);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 2, 3000)); /* well before 30 s */
    CU_ASSERT_EQUAL(T.st_slow, 1);
    CU_ASSERT_EQUAL(T.st_done, 2);
    CU_ASSERT(T.st_bytes < BIG_BODY + 5);
    CU_ASSERT((T.cl_codes[0] == 201 && T.cl_codes[1] == -1) ||
              (T.cl_codes[0] == -1 && T.cl_codes[1] == 201));
    CU_ASSERT_STRING_EQUAL(T.cl_body, "echo:");
    CU_ASSERT_EQUAL(T.up_conns, 2); /* the cut one was closed, not reused */
    evhttp_connection_free(a);
    evhttp_connection_free(b);
    fx_teardown();
    signal(SIGPIPE, was);
}

/* A request already waiting for a busy (not paused) connection: when that
 * stream pauses, the waiter takes its slot. */
static void test_waiter_takes_slot_of_stream_that_pauses(void)
{
    struct evhttp_connection *a, *b;

    fx_setup();
    srv_proxy_set_max_conns(T.px, 1);
    T.timeout_ms = 30000;
    T.stream = true;
    snprintf(T.upstream, sizeof(T.upstream), "http://127.0.0.1:%u", T.raw_port);
    a = client_new();
    client_send(a, EVHTTP_REQ_GET, "/partial", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.st_pieces, 1, 3000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(T.first);
    b = client_new();
    client_send(b, EVHTTP_REQ_GET, "/x", NULL, NULL);
    CU_ASSERT_FATAL(run_until(&T.forwarded, 2, 3000));
    CU_ASSERT_FALSE(run_until(&T.cl_done, 1, 200)); /* b waits: the pool is full */
    CU_ASSERT_EQUAL(T.raw_conns, 1);
    srv_proxy_pause(T.first, 1);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 2, 3000));
    CU_ASSERT_EQUAL(T.st_slow, 1);
    CU_ASSERT_EQUAL(T.raw_conns, 2);
    CU_ASSERT((T.cl_codes[0] == 200 && T.cl_codes[1] == -1) ||
              (T.cl_codes[0] == -1 && T.cl_codes[1] == 200));
    CU_ASSERT_STRING_EQUAL(T.cl_body, "ok");
    evhttp_connection_free(a);
    evhttp_connection_free(b);
    fx_teardown();
}

/* A free slot is used before any paused stream is cut; a paused stream no
 * one needs the connection of goes on when resumed. */
static void test_paused_stream_kept_while_pool_has_room(void)
{
    struct evhttp_connection *a, *b;

    paused_then_another(2, 0, &a, &b);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 1, 3000));
    CU_ASSERT_EQUAL(T.cl_codes[0], 201);
    CU_ASSERT_EQUAL(T.st_slow, 0);
    CU_ASSERT_EQUAL(T.st_done, 1);
    srv_proxy_pause(T.first, 0);
    CU_ASSERT_FATAL(run_until(&T.cl_done, 2, 5000));
    CU_ASSERT_EQUAL(T.cl_codes[1], 200);
    CU_ASSERT_EQUAL(T.st_slow, 0);
    CU_ASSERT_EQUAL(T.st_status, SRV_PROXY_OK);
    CU_ASSERT_EQUAL(T.st_bytes, BIG_BODY + 5); /* b's "echo:" and all of a's */
    evhttp_connection_free(a);
    evhttp_connection_free(b);
    fx_teardown();
}

int test_srv_proxy_add(void)
{
    static const unit_test_t tests[] = {
        {"copy_headers", test_copy_headers},
        {"passthrough", test_passthrough},
        {"get_no_body_no_xff", test_get_no_body_no_xff},
        {"reuse_sequential", test_reuse_sequential},
        {"pool_limit_queues", test_pool_limit_queues},
        {"timeout", test_timeout},
        {"connect_refused", test_connect_refused},
        {"cancel_in_flight", test_cancel_in_flight},
        {"cancel_waiting_and_free_pending", test_cancel_waiting_and_free_pending},
        {"stale_keepalive_retry", test_stale_keepalive_retry},
        {"bad_answer", test_bad_answer},
        {"refused_arguments", test_refused_arguments},
        {"stream_pieces", test_stream_pieces},
        {"stream_pause", test_stream_pause},
        {"stream_cancel", test_stream_cancel},
        {"stream_bad_head", test_stream_bad_head},
        {"paused_stream_gives_way", test_paused_stream_gives_way},
        {"waiter_takes_slot_of_stream_that_pauses",
         test_waiter_takes_slot_of_stream_that_pauses},
        {"paused_stream_kept_while_pool_has_room",
         test_paused_stream_kept_while_pool_has_room},
        {NULL, NULL},
    };

    return unit_add_suite("srv_proxy", tests);
}
