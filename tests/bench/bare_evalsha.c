/* bare_evalsha.c — the Redis yardstick of tests/bench/run.sh (`make bench`).
 *
 * The least a Redis-backed rate limiter can do per request: one thread, one
 * libevent evhttp server, one hiredis async connection (libevent adapter),
 * and for every request one EVALSHA of lua/bucket.lua on a key derived from
 * the X-API-Key header, answering 200 when the reply says "allowed".  No auth,
 * no policy matching, no headers of our own, no logging.  tollgate's Redis
 * rows are compared with this loop measured in the same run.
 *
 *   bare_evalsha LISTEN_PORT REDIS_HOST REDIS_PORT BUCKET_LUA
 *
 * Per request: EVALSHA <sha> 1 bare:{<api key>}:b:default 1 60000 60000 60000 0
 * (cost 1; 60000 tokens per 60000 ms, burst 60000, enforce), which never
 * denies at bench rates over 1000 keys.  No X-API-Key: 401.  Redis error
 * reply: 500; Redis gone: 503.  SIGTERM/SIGINT: exit 0.
 *
 * A client that leaves while its EVALSHA is in flight is harmless: libevent
 * 2.1 does not read the connection of a request being answered, and when the
 * connection fails anyway (timeout) it detaches the request (evcon = NULL)
 * and evhttp_send_reply() then only frees it.  Loopback only; a bench tool,
 * not part of tollgate.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#define MAX_KEY 512

static redisAsyncContext *g_ac; /* NULL once Redis is gone */
static char g_sha[41];

static void die(const char *what)
{
    fprintf(stderr, "bare_evalsha: %s\n", what);
    exit(1);
}

/* SCRIPT LOAD the file once, synchronously, before serving. */
static void load_script(const char *host, int port, const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long len;
    redisContext *c;
    redisReply *r;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) <= 0 ||
        fseek(f, 0, SEEK_SET) != 0)
        die("cannot read the script file");
    buf = malloc((size_t)len);
    if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len)
        die("cannot read the script file");
    fclose(f);
    c = redisConnect(host, port);
    if (c == NULL || c->err)
        die("cannot connect to redis");
    r = redisCommand(c, "SCRIPT LOAD %b", buf, (size_t)len);
    if (r == NULL || r->type != REDIS_REPLY_STRING || r->len != 40)
        die("SCRIPT LOAD failed");
    memcpy(g_sha, r->str, 40);
    g_sha[40] = '\0';
    freeReplyObject(r);
    redisFree(c);
    free(buf);
}

static void on_reply(redisAsyncContext *c, void *reply, void *privdata)
{
    struct evhttp_request *req = privdata;
    redisReply *r = reply;

    (void)c;
    if (r == NULL) {
        evhttp_send_reply(req, 503, "Service Unavailable", NULL);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
               r->element[0]->type == REDIS_REPLY_INTEGER) {
        if (r->element[0]->integer == 1)
            evhttp_send_reply(req, 200, "OK", NULL);
        else
            evhttp_send_reply(req, 429, "Too Many Requests", NULL);
    } else {
        evhttp_send_reply(req, 500, "Internal Server Error", NULL);
    }
}

static void on_request(struct evhttp_request *req, void *arg)
{
    const char *k = evhttp_find_header(evhttp_request_get_input_headers(req), "X-API-Key");
    char key[MAX_KEY];
    int n;

    (void)arg;
    if (k == NULL || (n = snprintf(key, sizeof(key), "bare:{%s}:b:default", k)) < 0 ||
        (size_t)n >= sizeof(key)) {
        evhttp_send_reply(req, 401, "Unauthorized", NULL);
        return;
    }
    if (g_ac == NULL ||
        redisAsyncCommand(g_ac, on_reply, req, "EVALSHA %s 1 %b 1 60000 60000 60000 0",
                          g_sha, key, (size_t)n) != REDIS_OK)
        evhttp_send_reply(req, 503, "Service Unavailable", NULL);
}

static void on_connect(const redisAsyncContext *c, int status)
{
    if (status != REDIS_OK) {
        fprintf(stderr, "bare_evalsha: redis connect: %s\n", c->errstr);
        g_ac = NULL;
    }
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    if (status != REDIS_OK)
        fprintf(stderr, "bare_evalsha: redis gone: %s\n", c->errstr);
    g_ac = NULL; /* hiredis frees the context; pending callbacks got NULL */
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    struct event_base *base;
    struct evhttp *http;
    struct event *sigterm, *sigint;
    int port, rport;

    if (argc != 5) {
        fprintf(stderr, "usage: %s LISTEN_PORT REDIS_HOST REDIS_PORT BUCKET_LUA\n", argv[0]);
        return 2;
    }
    port = atoi(argv[1]);
    rport = atoi(argv[3]);
    signal(SIGPIPE, SIG_IGN);
    load_script(argv[2], rport, argv[4]);

    base = event_base_new();
    if (base == NULL)
        die("event_base_new");
    g_ac = redisAsyncConnect(argv[2], rport);
    if (g_ac == NULL || g_ac->err)
        die("redisAsyncConnect");
    redisLibeventAttach(g_ac, base);
    redisAsyncSetConnectCallback(g_ac, on_connect);
    redisAsyncSetDisconnectCallback(g_ac, on_disconnect);

    http = evhttp_new(base);
    if (http == NULL || evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) != 0)
        die("cannot listen");
    evhttp_set_gencb(http, on_request, NULL);

    sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    sigint = evsignal_new(base, SIGINT, on_signal, base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);

    event_base_dispatch(base);

    event_free(sigterm);
    event_free(sigint);
    /* Redis first: its pending callbacks answer (503) requests that
     * evhttp_free() would otherwise free under them. */
    if (g_ac != NULL)
        redisAsyncFree(g_ac);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
