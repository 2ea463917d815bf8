/* test_rc_sub.c — subscriber connections of the Redis client (rc_subscribe)
 * against a real redis-server (and a real 6-node cluster), each started on
 * free loopback ports in a temp dir and stopped by PID; skipped, with a
 * printed reason, when redis-server is not installed.  Also a fake server
 * that answers SUBSCRIBE with garbage. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "tollgate/log.h"
#include "tollgate/rc.h"
#include "tollgate/util_clock.h"
#include "support_redis.h"
#include "unit.h"

#define SKIP_WITHOUT_REDIS()                                                               \
    do {                                                                                   \
        if (!tu_have_redis())                                                              \
            return;                                                                        \
    } while (0)

/* What a subscriber saw. */
typedef struct seen {
    int ups, downs, msgs;
    int up_now;   /* set by UP, cleared by DOWN */
    int down_now; /* set by DOWN, cleared by UP */
    int free_on;  /* rc_sub_free inside the callback of this event + 1 */
    int freed;
    int after_free; /* callbacks after the free: must stay 0 */
    char ch[8][64]; /* the first 8 messages */
    char msg[8][64];
    size_t msglen[8];
} seen_t;

static void sub_cb(rc_sub_t *s, int event, const char *channel, size_t chlen,
                   const char *msg, size_t msglen, void *privdata)
{
    seen_t *w = privdata;

    if (w->freed) {
        w->after_free++;
        return;
    }
    switch (event) {
    case RC_SUB_UP:
        CU_ASSERT_PTR_NULL(channel);
        CU_ASSERT(rc_sub_up(s));
        w->ups++;
        w->up_now = 1;
        w->down_now = 0;
        break;
    case RC_SUB_DOWN:
        CU_ASSERT_PTR_NULL(msg);
        CU_ASSERT(!rc_sub_up(s));
        w->downs++;
        w->down_now = 1;
        w->up_now = 0;
        break;
    case RC_SUB_MESSAGE:
        CU_ASSERT_PTR_NOT_NULL(channel);
        CU_ASSERT_PTR_NOT_NULL(msg);
        if (w->msgs < 8 && chlen < 64 && msglen < 64) {
            memcpy(w->ch[w->msgs], channel, chlen);
            w->ch[w->msgs][chlen] = '\0';
            memcpy(w->msg[w->msgs], msg, msglen);
            w->msglen[w->msgs] = msglen;
        }
        w->msgs++;
        break;
    default:
        CU_FAIL("unknown event");
    }
    if (w->free_on == event + 1) {
        w->freed = 1;
        rc_sub_free(s);
        rc_sub_free(s); /* twice: still a no-op until the callback returns */
    }
}

typedef struct pub {
    int done;
    long long n; /* subscribers reached, -1: no reply or not an integer */
} pub_t;

static void pub_cb(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    pub_t *p = privdata;

    (void)c;
    (void)errstr;
    p->done = 1;
    p->n = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
}

/* PUBLISH through `c`, waited for: the number of subscribers reached. */
static long long publish(struct event_base *base, rc_client_t *c, const char *ch,
                         const char *msg, size_t len)
{
    const char *argv[] = {"PUBLISH", ch, msg};
    size_t lens[] = {7, strlen(ch), len};
    pub_t p = {0, -1};

    if (rc_command_argv(c, NULL, 0, 3, argv, lens, pub_cb, &p) == NULL)
        return -1;
    tu_spin(base, &p.done, 2000);
    return p.n;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_bad_args(void)
{
    struct event_base *base = event_base_new();
    rc_opts_t o = {.timeout_ms = 500};
    rc_client_t *c = tu_client_on(base, tu_free_port(), &o);
    const char *chans[] = {"a", NULL};
    seen_t w = {0};

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NULL(rc_subscribe(c, chans, 0, sub_cb, &w));
    CU_ASSERT_PTR_NULL(rc_subscribe(c, chans, 1, NULL, &w));
    CU_ASSERT_PTR_NULL(rc_subscribe(c, NULL, 1, sub_cb, &w));
    CU_ASSERT_PTR_NULL(rc_subscribe(c, chans, 2, sub_cb, &w)); /* a NULL channel */
    CU_ASSERT_PTR_NOT_NULL(strstr(rc_client_errstr(c), "SUBSCRIBE"));
    rc_sub_free(NULL);
    /* Nobody listens: it never comes up, never calls back, frees cleanly. */
    rc_sub_t *s = rc_subscribe(c, chans, 1, sub_cb, &w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    tu_spin(base, NULL, 200);
    CU_ASSERT(!rc_sub_up(s));
    CU_ASSERT_EQUAL(w.ups + w.downs + w.msgs, 0);
    rc_sub_free(s);
    rc_client_free(c);
    event_base_free(base);
}

/* Two channels, a binary payload; the client's commands still work. */
static void test_messages(void)
{
    static const char bin[] = {'r', 'e', 'v', '\0', 'j', 't', 'i', '\xff', '\n'};
    struct event_base *base;
    rc_opts_t o = {.timeout_ms = 2000};
    tu_redis_t srv = {0};
    rc_client_t *c, *p;
    const char *chans[] = {"tg:revocations", "tg:other"};
    seen_t w = {0};
    rc_sub_t *s;

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&srv, NULL) == 0);
    base = event_base_new();
    c = tu_client_on(base, srv.port, &o);
    p = tu_client_on(base, srv.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    s = rc_subscribe(c, chans, 2, sub_cb, &w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT(!rc_sub_up(s));
    CU_ASSERT(tu_spin(base, &w.up_now, 2000));
    CU_ASSERT_EQUAL(w.ups, 1);
    CU_ASSERT(rc_sub_up(s));
    CU_ASSERT_PTR_NOT_NULL(strstr(rc_sub_node(s), "127.0.0.1:"));
    CU_ASSERT_EQUAL(publish(base, p, "tg:revocations", bin, sizeof(bin)), 1);
    CU_ASSERT_EQUAL(publish(base, p, "tg:other", "hello", 5), 1);
    CU_ASSERT_EQUAL(publish(base, p, "tg:nobody", "x", 1), 0);
    for (int i = 0; i < 100 && w.msgs < 2; i++)
        tu_spin(base, NULL, 10);
    CU_ASSERT_EQUAL_FATAL(w.msgs, 2);
    CU_ASSERT_STRING_EQUAL(w.ch[0], "tg:revocations");
    CU_ASSERT_EQUAL(w.msglen[0], sizeof(bin));
    CU_ASSERT(memcmp(w.msg[0], bin, sizeof(bin)) == 0);
    CU_ASSERT_STRING_EQUAL(w.ch[1], "tg:other");
    CU_ASSERT_EQUAL(w.msglen[1], 5);
    /* The subscriber's own client still runs commands (another connection). */
    CU_ASSERT_EQUAL(publish(base, c, "tg:other", "from c", 6), 1);
    for (int i = 0; i < 100 && w.msgs < 3; i++)
        tu_spin(base, NULL, 10);
    CU_ASSERT_EQUAL(w.msgs, 3);
    /* Quiet for a while: PINGs keep it up, no spurious DOWN. */
    tu_spin(base, NULL, 2 * RC_SUB_DEAD_MS);
    CU_ASSERT_EQUAL(w.downs, 0);
    CU_ASSERT(rc_sub_up(s));
    rc_sub_free(s);
    /* The server sees the close soon (not before our next PUBLISH, maybe). */
    long long left = 1;
    for (int i = 0; i < 50 && left != 0; i++) {
        tu_spin(base, NULL, 10);
        left = publish(base, p, "tg:other", "gone", 4);
    }
    CU_ASSERT_EQUAL(left, 0);
    CU_ASSERT_EQUAL(w.msgs, 3);
    rc_client_free(c);
    rc_client_free(p);
    event_base_free(base);
    tu_redis_stop(&srv);
}

/* Server killed: DOWN; restarted on the same port: UP again, messages flow. */
static void test_kill_and_restart(void)
{
    struct event_base *base;
    rc_opts_t o = {.timeout_ms = 1000, .backoff_max_ms = 200};
    tu_redis_t srv = {0};
    rc_client_t *c, *p;
    const char *chans[] = {"tg:revocations"};
    seen_t w = {0};
    rc_sub_t *s;

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&srv, NULL) == 0);
    base = event_base_new();
    c = tu_client_on(base, srv.port, &o);
    p = tu_client_on(base, srv.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    s = rc_subscribe(c, chans, 1, sub_cb, &w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(tu_spin(base, &w.up_now, 2000));
    tu_redis_kill(&srv);
    CU_ASSERT(tu_spin(base, &w.down_now, 1000));
    CU_ASSERT_EQUAL(w.downs, 1);
    CU_ASSERT(!rc_sub_up(s));
    tu_spin(base, NULL, 300); /* a few failed reconnects: no more DOWNs */
    CU_ASSERT_EQUAL(w.downs, 1);
    CU_ASSERT_EQUAL(w.ups, 1);
    CU_ASSERT_FATAL(tu_redis_start(&srv, NULL) == 0);
    CU_ASSERT(tu_spin(base, &w.up_now, 3000));
    CU_ASSERT_EQUAL(w.ups, 2);
    CU_ASSERT(tu_wait_up(base, p, 3000));
    CU_ASSERT_EQUAL(publish(base, p, "tg:revocations", "after", 5), 1);
    for (int i = 0; i < 100 && w.msgs < 1; i++)
        tu_spin(base, NULL, 10);
    CU_ASSERT_EQUAL(w.msgs, 1);
    CU_ASSERT_STRING_EQUAL(w.msg[0], "after");
    rc_sub_free(s);
    rc_client_free(c);
    rc_client_free(p);
    event_base_free(base);
    tu_redis_stop(&srv);
}

/* A node that goes silent (SIGSTOP) is noticed by the PINGs: DOWN within
 * about RC_SUB_DEAD_MS, UP again once it answers. */
static void test_silent_node(void)
{
    struct event_base *base;
    rc_opts_t o = {.timeout_ms = 500, .backoff_max_ms = 100};
    tu_redis_t srv = {0};
    rc_client_t *c;
    const char *chans[] = {"tg:revocations"};
    seen_t w = {0};
    rc_sub_t *s;

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&srv, NULL) == 0);
    base = event_base_new();
    c = tu_client_on(base, srv.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    s = rc_subscribe(c, chans, 1, sub_cb, &w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(tu_spin(base, &w.up_now, 2000));
    kill(srv.pid, SIGSTOP);
    CU_ASSERT(!tu_spin(base, &w.down_now, RC_SUB_DEAD_MS - 300));
    CU_ASSERT(tu_spin(base, &w.down_now, 300 + RC_SUB_TICK_MS + 300));
    kill(srv.pid, SIGCONT);
    CU_ASSERT(tu_spin(base, &w.up_now, 3000));
    CU_ASSERT_EQUAL(w.ups, 2);
    CU_ASSERT_EQUAL(w.downs, 1);
    rc_sub_free(s);
    rc_client_free(c);
    event_base_free(base);
    tu_redis_stop(&srv);
}

/* rc_sub_free inside its own callback (message, UP, DOWN), and subscribers
 * left for rc_client_free: ASan says whether that is clean. */
static void test_free_in_callback(void)
{
    struct event_base *base;
    rc_opts_t o = {.timeout_ms = 1000, .backoff_max_ms = 100};
    tu_redis_t srv = {0};
    rc_client_t *c, *p;
    const char *chans[] = {"a", "b"};
    seen_t w1 = {.free_on = RC_SUB_MESSAGE + 1}, w2 = {.free_on = RC_SUB_UP + 1};
    seen_t w3 = {.free_on = RC_SUB_DOWN + 1}, w4 = {0};
    const char *argv[] = {"PUBLISH", "a", "m"};
    pub_t pr[3];

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&srv, NULL) == 0);
    base = event_base_new();
    c = tu_client_on(base, srv.port, &o);
    p = tu_client_on(base, srv.port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_PTR_NOT_NULL(rc_subscribe(c, chans, 2, sub_cb, &w1));
    CU_ASSERT_PTR_NOT_NULL(rc_subscribe(c, chans, 2, sub_cb, &w2));
    CU_ASSERT_PTR_NOT_NULL(rc_subscribe(c, chans, 2, sub_cb, &w3));
    CU_ASSERT_PTR_NOT_NULL(rc_subscribe(c, chans, 1, sub_cb, &w4)); /* left to the client */
    CU_ASSERT(tu_spin(base, &w1.up_now, 2000));
    CU_ASSERT(tu_spin(base, &w3.up_now, 2000));
    CU_ASSERT(tu_spin(base, &w4.up_now, 2000));
    CU_ASSERT(tu_spin(base, &w2.freed, 2000));
    CU_ASSERT(tu_wait_up(base, p, 2000));
    /* Three messages in one burst: the first one frees w1's subscriber. */
    for (int i = 0; i < 3; i++) {
        memset(&pr[i], 0, sizeof(pr[i]));
        CU_ASSERT_PTR_NOT_NULL(rc_command_argv(p, NULL, 0, 3, argv, NULL, pub_cb, &pr[i]));
    }
    CU_ASSERT(tu_spin(base, &pr[2].done, 2000));
    CU_ASSERT(pr[0].n >= 2); /* w3 and w4, and w1 unless it is already gone */
    tu_spin(base, NULL, 100);
    CU_ASSERT_EQUAL(w1.msgs, 1);
    CU_ASSERT(w1.freed);
    CU_ASSERT_EQUAL(w3.msgs, 3);
    CU_ASSERT_EQUAL(w4.msgs, 3);
    /* Server gone: w3 frees itself in DOWN; w4 stays, reconnecting. */
    tu_redis_kill(&srv);
    CU_ASSERT(tu_spin(base, &w3.freed, 1000));
    CU_ASSERT(tu_spin(base, &w4.down_now, 1000));
    tu_spin(base, NULL, 200);
    CU_ASSERT_EQUAL(w1.after_free + w2.after_free + w3.after_free, 0);
    CU_ASSERT_EQUAL(w2.ups + w2.msgs, 1);
    rc_client_free(c); /* frees w4's subscriber without a callback */
    CU_ASSERT_EQUAL(w4.downs, 1);
    rc_client_free(p);
    event_base_free(base);
    tu_redis_stop(&srv);
}

/* The subscriber connection does the client's AUTH; a bad one never comes
 * up and keeps retrying without a callback. */
static void test_auth(void)
{
    static const char *const extra[] = {"--requirepass", "Sub-Secret-9", NULL};
    struct event_base *base;
    tu_redis_t srv = {0};
    rc_client_t *c;
    const char *chans[] = {"tg:revocations"};
    seen_t w = {0}, bad = {0};
    rc_sub_t *s;

    SKIP_WITHOUT_REDIS();
    CU_ASSERT_FATAL(tu_redis_start(&srv, extra) == 0);
    base = event_base_new();
    rc_opts_t good = {.timeout_ms = 1000, .password = "Sub-Secret-9", .db = 2};
    c = tu_client_on(base, srv.port, &good);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    s = rc_subscribe(c, chans, 1, sub_cb, &w);
    CU_ASSERT(tu_spin(base, &w.up_now, 2000));
    rc_sub_free(s);
    rc_client_free(c);

    rc_opts_t none = {.timeout_ms = 1000, .backoff_max_ms = 100};
    c = tu_client_on(base, srv.port, &none);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    s = rc_subscribe(c, chans, 1, sub_cb, &bad); /* NOAUTH: dropped, retried */
    tu_spin(base, NULL, 500);
    CU_ASSERT(!rc_sub_up(s));
    CU_ASSERT_EQUAL(bad.ups + bad.downs + bad.msgs, 0);
    rc_sub_free(s);
    rc_client_free(c);
    event_base_free(base);
    tu_redis_stop(&srv);
}

/* ---- a fake server that answers garbage ------------------------------------- */

typedef struct fake {
    int accepts;
    const char *answer; /* written after the first bytes arrive */
} fake_t;

static void fake_read_cb(struct bufferevent *bev, void *arg)
{
    fake_t *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_write(bev, f->answer, strlen(f->answer));
}

static void fake_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    (void)arg;
    bufferevent_free(bev);
}

static void fake_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                           struct sockaddr *sa, int salen, void *arg)
{
    fake_t *f = arg;
    struct bufferevent *bev =
        bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);

    (void)sa;
    (void)salen;
    f->accepts++;
    bufferevent_setcb(bev, fake_read_cb, NULL, fake_event_cb, f);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* A fake server `f` on a free loopback port (*port); NULL when bind fails. */
static struct evconnlistener *fake_listen(struct event_base *base, fake_t *f,
                                          unsigned *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    struct evconnlistener *lev;

    /* Port 0: the kernel picks a free one, read back from the socket (a
     * port picked first and bound later could be taken in between). */
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lev = evconnlistener_new_bind(base, fake_accept_cb, f,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                  (struct sockaddr *)&sin, sizeof(sin));
    if (lev != NULL &&
        getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&sin, &len) != 0) {
        evconnlistener_free(lev);
        lev = NULL;
    }
    *port = lev != NULL ? ntohs(sin.sin_port) : 0;
    return lev;
}

/* Replies that are not pub/sub pushes drop the connection (reconnect);
 * unknown push kinds are ignored. */
static void test_malformed(void)
{
    static const char *const answers[] = {
        "+OK\r\n",                                  /* not an array */
        "*3\r\n:1\r\n:2\r\n:3\r\n",                 /* kind not a string */
        "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n:5\r\n", /* payload not a string */
        "*2\r\n$9\r\nsubscribe\r\n$1\r\na\r\n",     /* too short */
        "-ERR nope\r\n",                            /* error */
        "*0\r\n",                                   /* empty */
        "$-1\r\n",                                  /* nil */
    };
    struct event_base *base = event_base_new();
    const char *chans[] = {"a"};
    rc_opts_t o = {.timeout_ms = 500, .backoff_max_ms = 50};
    unsigned port;

    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        fake_t f = {0, answers[i]};
        seen_t w = {0};
        struct evconnlistener *l;
        rc_client_t *c;
        rc_sub_t *s;

        l = fake_listen(base, &f, &port);
        CU_ASSERT_PTR_NOT_NULL_FATAL(l);
        c = tu_client_on(base, port, &o);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        s = rc_subscribe(c, chans, 1, sub_cb, &w);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        /* The command connection plus several subscriber reconnects: each
         * reconnect means the bad answer before it was dropped. */
        for (uint64_t until = util_mono_ms() + 3000; f.accepts < 3 && util_mono_ms() < until;)
            tu_spin(base, NULL, 5);
        if (f.accepts < 3)
            fprintf(stderr, "answer %zu: %d accepts\n", i, f.accepts);
        CU_ASSERT(f.accepts >= 3);
        CU_ASSERT_EQUAL(w.ups + w.downs + w.msgs, 0);
        rc_sub_free(s);
        rc_client_free(c);
        evconnlistener_free(l);
        tu_spin(base, NULL, 20);
    }

    /* Confirmed, then pushes of kinds it does not know: ignored, still up. */
    /* (+PONG answers the connection handshake's PING.) */
    fake_t f = {0, "+PONG\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
                   "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\na\r\n$1\r\nx\r\n"
                   "*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"
                   "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"};
    seen_t w = {0};
    struct evconnlistener *l;
    rc_client_t *c;
    rc_sub_t *s;

    l = fake_listen(base, &f, &port);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    c = tu_client_on(base, port, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    s = rc_subscribe(c, chans, 1, sub_cb, &w);
    CU_ASSERT(tu_spin(base, &w.up_now, 1000));
    for (int i = 0; i < 50 && w.msgs < 1; i++)
        tu_spin(base, NULL, 10);
    CU_ASSERT_EQUAL(w.msgs, 1);
    CU_ASSERT_STRING_EQUAL(w.msg[0], "hi");
    CU_ASSERT(rc_sub_up(s));
    rc_sub_free(s);
    rc_client_free(c);
    evconnlistener_free(l);
    tu_spin(base, NULL, 50); /* the fake's connections see EOF and go */
    event_base_free(base);
}

/* ---- cluster ------------------------------------------------------------------ */

/* Published on every other node (primaries and replicas): the subscriber
 * on one node gets them all.  Its node killed: DOWN, then UP on another
 * node, and messages flow again. */
static void test_cluster(void)
{
    struct event_base *base;
    tu_cluster_t cl;
    rc_client_t *c, *p[TU_CLUSTER_NODES] = {0};
    const char *chans[] = {"tg:revocations"};
    seen_t w = {0};
    rc_sub_t *s;
    int mine = -1, sent = 0, got;
    char node[300], msg[32];

    if (tu_cluster_start(&cl) != 0) {
        tu_cluster_stop(&cl);
        return;
    }
    base = event_base_new();
    c = tu_cluster_client(base, &cl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(tu_wait_up(base, c, 3000));
    s = rc_subscribe(c, chans, 1, sub_cb, &w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(tu_spin(base, &w.up_now, 3000));
    for (int i = 0; i < TU_CLUSTER_NODES; i++) {
        rc_opts_t o = {.timeout_ms = 2000};

        snprintf(node, sizeof(node), "127.0.0.1:%u", cl.port[i]);
        if (strcmp(node, rc_sub_node(s)) == 0)
            mine = i;
        p[i] = tu_client_on(base, cl.port[i], &o);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p[i]);
    }
    CU_ASSERT_FATAL(mine >= 0);
    for (int i = 0; i < TU_CLUSTER_NODES; i++) {
        if (i == mine)
            continue;
        snprintf(msg, sizeof(msg), "from %d", i);
        CU_ASSERT(tu_wait_up(base, p[i], 2000));
        /* Classic PUBLISH answers with the local count: 0 on other nodes. */
        CU_ASSERT_EQUAL(publish(base, p[i], "tg:revocations", msg, strlen(msg)), 0);
        sent++;
    }
    for (int i = 0; i < 200 && w.msgs < sent; i++)
        tu_spin(base, NULL, 10);
    CU_ASSERT_EQUAL(w.msgs, sent);

    /* Kill the subscriber's node: it moves to a live one. */
    snprintf(node, sizeof(node), "%s", rc_sub_node(s));
    rc_client_free(p[mine]);
    p[mine] = NULL;
    kill(cl.pid[mine], SIGKILL);
    waitpid(cl.pid[mine], NULL, 0);
    cl.pid[mine] = 0;
    CU_ASSERT(tu_spin(base, &w.down_now, 2000));
    CU_ASSERT(tu_spin(base, &w.up_now, 5000));
    CU_ASSERT_EQUAL(w.ups, 2);
    CU_ASSERT_STRING_NOT_EQUAL(rc_sub_node(s), node);
    got = w.msgs;
    for (int i = 0; i < TU_CLUSTER_NODES; i++)
        if (p[i] != NULL && publish(base, p[i], "tg:revocations", "again", 5) >= 0)
            got++;
    for (int i = 0; i < 300 && w.msgs < got; i++)
        tu_spin(base, NULL, 10);
    CU_ASSERT_EQUAL(w.msgs, got);
    CU_ASSERT(got > sent);
    rc_sub_free(s);
    for (int i = 0; i < TU_CLUSTER_NODES; i++)
        rc_client_free(p[i]);
    rc_client_free(c);
    event_base_free(base);
    tu_cluster_stop(&cl);
}

int test_rc_sub_add(void)
{
    static const unit_test_t tests[] = {
        {"bad arguments, nobody listening", test_bad_args},
        {"malformed replies reconnect, unknown pushes ignored", test_malformed},
        {NULL, NULL},
    };
    /* redis-server or the cluster of their own (support_redis.h) */
    static const unit_test_t server_tests[] = {
        {"two channels, binary payload, UP, PING keeps it up", test_messages},
        {"server killed: DOWN; restarted: UP, messages flow", test_kill_and_restart},
        {"silent node: DOWN within RC_SUB_DEAD_MS, UP after", test_silent_node},
        {"rc_sub_free inside MESSAGE/UP/DOWN, rest freed by client", test_free_in_callback},
        {"AUTH and SELECT; NOAUTH retried silently", test_auth},
        {"cluster: published on other nodes, node killed: moves", test_cluster},
        {NULL, NULL},
    };
    log_set_level(LOG_ERROR);
    if (unit_add_suite("rc_sub", tests) != 0)
        return -1;
    return unit_add_server_suite("rc_sub_server", server_tests);
}
