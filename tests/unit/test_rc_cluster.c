/* test_rc_cluster.c — the Redis client against a real 6-node Redis Cluster
 * (3 primaries + 3 replicas) on free loopback ports in a temp dir, created by
 * the first test with `redis-cli --cluster create` and stopped by PID by the
 * last one (and at exit).  Skipped with a printed reason without
 * redis-server / redis-cli. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "../../redis/rc_internal.h"
#include "tollgate/log.h"
#include "tollgate/rc.h"
#include "tollgate/rc_proto.h"
#include "support_redis.h"
#include "unit.h"

/* The cluster, started by the first test that needs it. */
static int cl_state; /* 0 not tried, 1 up, -1 unavailable */
static tu_cluster_t cl;

static void cluster_stop(void)
{
    tu_cluster_stop(&cl);
}

/* Start the cluster once; 1 when it is up. */
static int cluster_up(void)
{
    if (cl_state != 0)
        return cl_state > 0;
    cl_state = -1;
    atexit(cluster_stop);
    if (tu_cluster_start(&cl) != 0)
        return 0;
    cl_state = 1;
    return 1;
}

/* The primary that owns `slot` per `port`'s view: its id and port. */
static int slot_owner(unsigned port, unsigned slot, char *id, unsigned *oport)
{
    char out[8192], *line, *save = NULL;

    if (tu_sh(out, sizeof(out), "redis-cli -p %u cluster nodes", port) != 0)
        return -1;
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char nid[64], addr[128], flags[128];
        int off = 0;

        if (sscanf(line, "%63s %127s %127s %*s %*s %*s %*s %*s%n", nid, addr, flags, &off) <
            3)
            continue;
        if (strstr(flags, "master") == NULL)
            continue;
        for (char *tok = line + off; *tok;) {
            unsigned a, b;
            int used = 0;

            while (*tok == ' ')
                tok++;
            if (sscanf(tok, "%u-%u%n", &a, &b, &used) == 2 ||
                (sscanf(tok, "%u%n", &a, &used) == 1 && (b = a, 1))) {
                if (slot >= a && slot <= b) {
                    snprintf(id, 64, "%s", nid);
                    *oport = (unsigned)atoi(strchr(addr, ':') + 1);
                    return 0;
                }
            }
            tok = strchr(tok, ' ');
            if (tok == NULL)
                break;
        }
    }
    return -1;
}

static int node_id_of(unsigned port, char *id)
{
    char out[128];

    if (tu_sh(out, sizeof(out), "redis-cli -p %u cluster myid", port) != 0)
        return -1;
    out[strcspn(out, "\r\n")] = '\0';
    snprintf(id, 64, "%.63s", out);
    return 0;
}

#define NEED_CLUSTER()                                                                     \
    do {                                                                                   \
        if (!cluster_up())                                                                 \
            return;                                                                        \
    } while (0)

/* ---- tests --------------------------------------------------------------------- */

/* ---- CLUSTER SLOTS replies (no cluster needed) ------------------------------ */

/* The reply in RESP `text`, read as the client reads it; NULL when it is not
 * one whole reply. */
static redisReply *resp(const char *text)
{
    redisReader *rd = rc_reader_new();
    void *r = NULL;

    CU_ASSERT_PTR_NOT_NULL_FATAL(rd);
    if (redisReaderFeed(rd, text, strlen(text)) != REDIS_OK ||
        redisReaderGetReply(rd, &r) != REDIS_OK)
        r = NULL;
    redisReaderFree(rd);
    CU_ASSERT_PTR_NOT_NULL(r);
    return r;
}

/* rc_cluster_apply_slots of RESP `text`, as if the seed had answered it. */
static int apply_slots(rc_client_t *c, const char *text)
{
    redisReply *r = resp(text);
    int rc;

    if (r == NULL)
        return -2;
    rc_enter(c);
    rc = rc_cluster_apply_slots(c, TAILQ_FIRST(&c->conns), r);
    rc_leave(c);
    freeReplyObject(r);
    return rc;
}

#define NODE "*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n"
#define ALL "*3\r\n:0\r\n:16383\r\n" NODE

/* A CLUSTER SLOTS reply comes from the network: every entry is checked
 * before the map is replaced, a bad one refuses the whole reply and leaves
 * the map as it was; "?", "" and nil hosts mean the node that answered; a
 * node that leaves the map is dropped. */
static void test_slots_reply_checked(void)
{
    static const char *seeds[] = {"127.0.0.1:1"};
    static const char *const bad[] = {
        ":1\r\n",                                                      /* not a list */
        "*0\r\n",                                                      /* no entry */
        "*1\r\n*2\r\n:0\r\n:16383\r\n",                                /* no node */
        "*1\r\n*3\r\n$1\r\n0\r\n:16383\r\n" NODE,                      /* start a string */
        "*1\r\n*3\r\n:0\r\n$5\r\n16383\r\n" NODE,                      /* end a string */
        "*1\r\n*3\r\n:-1\r\n:16383\r\n" NODE,                          /* before slot 0 */
        "*1\r\n*3\r\n:0\r\n:16384\r\n" NODE,                           /* past the last */
        "*1\r\n*3\r\n:9\r\n:8\r\n" NODE,                               /* start after end */
        "*1\r\n*3\r\n:0\r\n:16383\r\n$4\r\nnode\r\n",                  /* node not a list */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*1\r\n$9\r\n127.0.0.1\r\n",       /* no port */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n:1\r\n:7001\r\n",           /* host an integer */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:0\r\n", /* port 0 */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:65536\r\n", /* too big */
        "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n$4\r\n7001\r\n",
        "*2\r\n" ALL "*3\r\n:0\r\n:5\r\n:7\r\n", /* a good entry, then a bad one */
        NULL,
    };
    rc_opts_t o = {.cluster = 1, .seeds = seeds, .nseeds = 1};
    struct event_base *base = event_base_new();
    char err[256], host[257], longhost[512];
    rc_conn_t **map;
    rc_client_t *c;

    CU_ASSERT_PTR_NOT_NULL_FATAL(base);
    c = rc_client_new(base, &o, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    for (size_t i = 0; bad[i] != NULL; i++) {
        CU_ASSERT_EQUAL(apply_slots(c, bad[i]), -1);
        if (c->slots != NULL) {
            fprintf(stderr, "\nCLUSTER SLOTS reply %zu was taken\n", i);
            break;
        }
    }
    /* a host of 256 bytes or more */
    memset(host, 'h', 256);
    host[256] = '\0';
    snprintf(longhost, sizeof(longhost),
             "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$256\r\n%s\r\n:1\r\n", host);
    CU_ASSERT_EQUAL(apply_slots(c, longhost), -1);
    CU_ASSERT_PTR_NULL(c->slots);
    CU_ASSERT_EQUAL(c->stats.refreshes, 0);

    /* half the slots on another node: taken, but the map is not whole */
    CU_ASSERT_EQUAL(apply_slots(c, "*1\r\n*3\r\n:0\r\n:8191\r\n"
                                   "*3\r\n$9\r\n127.0.0.2\r\n:7001\r\n$2\r\nid\r\n"),
                    0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c->slots);
    CU_ASSERT(!c->map_ok);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c->slots[0]);
    CU_ASSERT_STRING_EQUAL(c->slots[0]->host, "127.0.0.2");
    CU_ASSERT_EQUAL(c->slots[0]->port, 7001);
    CU_ASSERT_PTR_EQUAL(c->slots[8191], c->slots[0]);
    CU_ASSERT_PTR_NULL(c->slots[8192]);
    CU_ASSERT_EQUAL(c->stats.refreshes, 1);

    /* every slot, on nodes named "?" and nil: the node that answered's host */
    CU_ASSERT_EQUAL(apply_slots(c, "*2\r\n*3\r\n:0\r\n:8191\r\n*2\r\n$1\r\n?\r\n:7002\r\n"
                                   "*3\r\n:8192\r\n:16383\r\n*2\r\n$-1\r\n:7003\r\n"),
                    0);
    CU_ASSERT(c->map_ok);
    CU_ASSERT_STRING_EQUAL(c->slots[0]->host, "127.0.0.1");
    CU_ASSERT_EQUAL(c->slots[0]->port, 7002);
    CU_ASSERT_STRING_EQUAL(c->slots[16383]->host, "127.0.0.1");
    CU_ASSERT_EQUAL(c->slots[16383]->port, 7003);
    /* 127.0.0.2:7001 owns nothing now and has nothing in flight: dropped */
    CU_ASSERT_PTR_NULL(rc_conn_find(c, "127.0.0.2", 7001, false));
    CU_ASSERT_PTR_NOT_NULL(rc_conn_find(c, "127.0.0.1", 1, false)); /* the seed stays */

    /* a bad reply now changes nothing */
    map = c->slots;
    CU_ASSERT_EQUAL(apply_slots(c, "*1\r\n*3\r\n:0\r\n:16384\r\n" NODE), -1);
    CU_ASSERT_PTR_EQUAL(c->slots, map);
    CU_ASSERT(c->map_ok);
    CU_ASSERT_EQUAL(c->stats.refreshes, 2);
    rc_client_free(c);
    event_base_free(base);
}

static void test_routing(void)
{
    struct event_base *base;
    rc_client_t *c;
    tu_got_t g;
    int ok = 0;

    NEED_CLUSTER();
    base = event_base_new();
    c = tu_cluster_client(base, &cl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(tu_wait_up(base, c, 3000));
    for (int i = 0; i < 300; i++) {
        char k[32], v[32];
        const char *set[] = {"SET", k, v}, *get[] = {"GET", k};

        snprintf(k, sizeof(k), "key:%d", i);
        snprintf(v, sizeof(v), "val:%d", i);
        if (tu_cmd_wait(base, c, &g, 3, set, 3000) && g.type == REDIS_REPLY_STATUS &&
            tu_cmd_wait(base, c, &g, 2, get, 3000) && strcmp(g.str, v) == 0)
            ok++;
        else
            fprintf(stderr, "key %s: type %d %s %s\n", k, g.type, g.str, g.errstr);
    }
    CU_ASSERT_EQUAL(ok, 300);
    /* Hash tags keep keys together: a multi-key command works. */
    const char *mset[] = {"MSET", "{u1}.a", "1", "{u1}.b", "2"};
    CU_ASSERT(tu_cmd_wait(base, c, &g, 5, mset, 3000));
    CU_ASSERT_STRING_EQUAL(g.str, "OK");
    /* Keyless commands go to some primary. */
    const char *ping[] = {"PING"};
    memset(&g, 0, sizeof(g));
    CU_ASSERT_PTR_NOT_NULL(rc_command_argv(c, NULL, 0, 1, ping, NULL, tu_got_cb, &g));
    CU_ASSERT(tu_spin(base, &g.done, 2000));
    CU_ASSERT_STRING_EQUAL(g.str, "PONG");
    rc_client_free(c);
    event_base_free(base);
}

static void test_ask_and_moved(void)
{
    struct event_base *base;
    rc_client_t *c;
    tu_got_t g;
    const char *key = "hot-key";
    unsigned slot = rc_slot(key, strlen(key)), sport = 0, dport = 0;
    char sid[64], did[64];
    const char *set[] = {"SET", key, "42"}, *get[] = {"GET", key};
    rc_stats_t st;

    NEED_CLUSTER();
    base = event_base_new();
    c = tu_cluster_client(base, &cl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FATAL(tu_wait_up(base, c, 3000));
    CU_ASSERT(tu_cmd_wait(base, c, &g, 3, set, 3000));
    CU_ASSERT_FATAL(slot_owner(cl.port[0], slot, sid, &sport) == 0);
    for (int i = 0; i < TU_CLUSTER_NODES && dport == 0; i++) {
        char id[64], oid[64];
        unsigned op;

        if (cl.port[i] == sport || node_id_of(cl.port[i], id) != 0)
            continue;
        /* another primary: one that owns some slot */
        for (unsigned s = 0; s < RC_NSLOTS; s += 1000)
            if (slot_owner(cl.port[0], s, oid, &op) == 0 && op == cl.port[i]) {
                dport = op;
                snprintf(did, sizeof(did), "%s", id);
                break;
            }
    }
    CU_ASSERT_FATAL(dport != 0);
    /* Start migrating the slot; move the key: the source now answers ASK. */
    CU_ASSERT(tu_sh(NULL, 0, "redis-cli -p %u cluster setslot %u importing %s", dport, slot,
                    sid) == 0);
    CU_ASSERT(tu_sh(NULL, 0, "redis-cli -p %u cluster setslot %u migrating %s", sport, slot,
                    did) == 0);
    CU_ASSERT(tu_sh(NULL, 0, "redis-cli -p %u migrate 127.0.0.1 %u '' 0 5000 keys %s",
                    sport, dport, key) == 0);
    CU_ASSERT(tu_cmd_wait(base, c, &g, 2, get, 3000));
    CU_ASSERT_EQUAL(g.type, REDIS_REPLY_STRING);
    CU_ASSERT_STRING_EQUAL(g.str, "42");
    rc_client_stats(c, &st);
    CU_ASSERT_EQUAL(st.ask, 1);
    CU_ASSERT_EQUAL(st.moved, 0);
    /* Finish: the slot belongs to the target; the client still thinks source. */
    for (int i = 0; i < TU_CLUSTER_NODES; i++)
        tu_sh(NULL, 0, "redis-cli -p %u cluster setslot %u node %s >/dev/null 2>&1",
              cl.port[i], slot, did);
    CU_ASSERT(tu_cmd_wait(base, c, &g, 2, get, 3000));
    CU_ASSERT_EQUAL(g.type, REDIS_REPLY_STRING);
    CU_ASSERT_STRING_EQUAL(g.str, "42");
    rc_client_stats(c, &st);
    CU_ASSERT_EQUAL(st.moved, 1);
    /* And again: now straight from the updated map. */
    CU_ASSERT(tu_cmd_wait(base, c, &g, 2, get, 3000));
    CU_ASSERT_STRING_EQUAL(g.str, "42");
    rc_client_stats(c, &st);
    CU_ASSERT_EQUAL(st.moved, 1);
    CU_ASSERT_EQUAL(st.ask, 1);
    rc_client_free(c);
    event_base_free(base);
}

static void test_primary_killed(void)
{
    struct event_base *base;
    rc_client_t *c;
    tu_got_t g;
    const char *key = "fo-key";
    unsigned slot = rc_slot(key, strlen(key)), port = 0;
    char id[64];
    const char *set[] = {"SET", key, "v1"}, *get[] = {"GET", key};
    int victim = -1, answered = 0, back = 0;

    NEED_CLUSTER();
    base = event_base_new();
    c = tu_cluster_client(base, &cl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FATAL(tu_wait_up(base, c, 3000));
    CU_ASSERT(tu_cmd_wait(base, c, &g, 3, set, 3000));
    CU_ASSERT_FATAL(slot_owner(cl.port[0], slot, id, &port) == 0);
    /* Replicas must have synced or they never fail over. */
    for (int t = 0; t < 100; t++) {
        char out[8192];
        int up = 0;

        for (int i = 0; i < TU_CLUSTER_NODES; i++)
            if (tu_sh(out, sizeof(out), "redis-cli -p %u info replication", cl.port[i]) ==
                    0 &&
                strstr(out, "master_link_status:up") != NULL)
                up++;
        if (up >= 3)
            break;
        tu_msleep(100);
    }
    for (int i = 0; i < TU_CLUSTER_NODES; i++)
        if (cl.port[i] == port)
            victim = i;
    CU_ASSERT_FATAL(victim >= 0);
    kill(cl.pid[victim], SIGKILL);
    waitpid(cl.pid[victim], NULL, 0);
    cl.pid[victim] = 0;
    /* Keep asking: every request is answered (NULL or error while the
     * failover runs), then the promoted replica serves the slot. */
    for (int t = 0; t < 150 && !back; t++) {
        memset(&g, 0, sizeof(g));
        if (rc_command_argv(c, key, strlen(key), 2, get, NULL, tu_got_cb, &g) == NULL) {
            answered++;
            tu_spin(base, NULL, 50);
            continue;
        }
        CU_ASSERT(tu_spin(base, &g.done, 2500));
        answered++;
        back = g.type == REDIS_REPLY_STRING && strcmp(g.str, "v1") == 0;
        if (!back)
            tu_spin(base, NULL, 50);
    }
    CU_ASSERT(back);
    CU_ASSERT(answered > 0);
    CU_ASSERT(tu_wait_up(base, c, 3000));
    rc_client_free(c);
    event_base_free(base);
}

static void test_stop(void)
{
    cluster_stop();
}

int test_rc_cluster_add(void)
{
    static const unit_test_t tests[] = {
        {"CLUSTER SLOTS replies checked", test_slots_reply_checked},
        {NULL, NULL},
    };
    /* redis-server or the cluster of their own (support_redis.h) */
    static const unit_test_t server_tests[] = {
        {"slot routing over 3 primaries", test_routing},
        {"ASK during migration, MOVED after", test_ask_and_moved},
        {"primary killed: failover found", test_primary_killed},
        {"stop the cluster", test_stop},
        {NULL, NULL},
    };
    log_set_level(LOG_ERROR);
    if (unit_add_suite("rc_cluster", tests) != 0)
        return -1;
    return unit_add_server_suite("rc_cluster_server", server_tests);
}
