/* test_rc_cluster.c — the Redis client against a real 6-node Redis Cluster
 * (3 primaries + 3 replicas) on free loopback ports in a temp dir, created by
 * the first test with `redis-cli --cluster create` and stopped by PID by the
 * last one (and at exit).  Skipped with a printed reason without
 * redis-server / redis-cli. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
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
#include "unit.h"

#define NNODES 6

static struct {
    int state; /* 0 not tried, 1 up, -1 unavailable */
    char dir[64];
    unsigned port[NNODES];
    pid_t pid[NNODES];
} cl;

static void msleep(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static unsigned free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned port = 0;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Output of a shell command (first `len` bytes); 0 when it exited 0. */
static int sh(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sh(char *out, size_t len, const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    FILE *f;
    size_t n = 0;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    if (out != NULL && len > 0) {
        n = fread(out, 1, len - 1, f);
        out[n] = '\0';
    } else {
        char sink[256];

        while (fread(sink, 1, sizeof(sink), f) > 0)
            ;
    }
    return pclose(f) == 0 ? 0 : -1;
}

static void cluster_stop(void)
{
    for (int i = 0; i < NNODES; i++)
        if (cl.pid[i] > 0) {
            kill(cl.pid[i], SIGKILL);
            waitpid(cl.pid[i], NULL, 0);
            cl.pid[i] = 0;
        }
    if (cl.dir[0] != '\0') {
        sh(NULL, 0, "rm -rf '%s'", cl.dir);
        cl.dir[0] = '\0';
    }
}

static pid_t node_start(int i)
{
    char dir[128], port[16], bus[16];
    pid_t pid;

    snprintf(dir, sizeof(dir), "%s/n%d", cl.dir, i);
    mkdir(dir, 0700);
    snprintf(port, sizeof(port), "%u", cl.port[i]);
    snprintf(bus, sizeof(bus), "%u", free_port());
    pid = fork();
    if (pid == 0) {
        execlp("redis-server", "redis-server", "--port", port, "--cluster-port", bus,
               "--bind", "127.0.0.1", "--dir", dir, "--cluster-enabled", "yes",
               "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
               "--repl-diskless-sync-delay", "0", "--save", "", "--appendonly", "no",
               "--logfile", "redis.log", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int cluster_ok(unsigned port)
{
    char out[2048];

    return sh(out, sizeof(out), "redis-cli -p %u cluster info 2>/dev/null", port) == 0 &&
           strstr(out, "cluster_state:ok") != NULL;
}

/* Start the cluster once; 1 when it is up. */
static int cluster_up(void)
{
    char cmd[512], out[4096];
    size_t n = 0;
    int ok = 0;

    if (cl.state != 0)
        return cl.state > 0;
    cl.state = -1;
    if (system("command -v redis-server >/dev/null 2>&1 && command -v redis-cli "
               ">/dev/null 2>&1") != 0) {
        fprintf(stderr,
                "\n  [rc_cluster] redis-server/redis-cli not installed: skipping\n");
        return 0;
    }
    atexit(cluster_stop);
    snprintf(cl.dir, sizeof(cl.dir), "/tmp/tg-rcc-XXXXXX");
    if (mkdtemp(cl.dir) == NULL)
        return 0;
    n = (size_t)snprintf(cmd, sizeof(cmd), "redis-cli --cluster create");
    for (int i = 0; i < NNODES; i++) {
        cl.port[i] = free_port();
        cl.pid[i] = node_start(i);
        n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, " 127.0.0.1:%u", cl.port[i]);
    }
    snprintf(cmd + n, sizeof(cmd) - n, " --cluster-replicas 1 --cluster-yes 2>&1");
    for (int i = 0; i < NNODES; i++)
        for (int t = 0; t < 200 && sh(NULL, 0, "redis-cli -p %u ping >/dev/null 2>&1",
                                      cl.port[i]) != 0;
             t++)
            msleep(10);
    if (sh(out, sizeof(out), "%s", cmd) != 0) {
        fprintf(stderr, "\n  [rc_cluster] cluster create failed:\n%s\n", out);
        return 0;
    }
    for (int t = 0; t < 100 && !ok; t++) {
        ok = 1;
        for (int i = 0; i < NNODES; i++)
            ok = ok && cluster_ok(cl.port[i]);
        if (!ok)
            msleep(100);
    }
    if (!ok)
        fprintf(stderr, "\n  [rc_cluster] cluster_state never became ok\n");
    cl.state = ok ? 1 : -1;
    return ok;
}

/* The primary that owns `slot` per `port`'s view: its id and port. */
static int slot_owner(unsigned port, unsigned slot, char *id, unsigned *oport)
{
    char out[8192], *line, *save = NULL;

    if (sh(out, sizeof(out), "redis-cli -p %u cluster nodes", port) != 0)
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

    if (sh(out, sizeof(out), "redis-cli -p %u cluster myid", port) != 0)
        return -1;
    out[strcspn(out, "\r\n")] = '\0';
    snprintf(id, 64, "%.63s", out);
    return 0;
}

/* ---- loop helpers (as in test_rc_live.c) ----------------------------------- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static int spin(struct event_base *base, const int *done, unsigned ms)
{
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = {0, 5000};
    struct timespec t0, t;

    event_add(tick, &tv);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (done != NULL && *done)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= (long)ms)
            break;
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(tick);
    return done != NULL && *done;
}

static int wait_up(struct event_base *base, rc_client_t *c, unsigned ms)
{
    for (unsigned i = 0; i < ms / 10 && !rc_client_up(c); i++)
        spin(base, NULL, 10);
    return rc_client_up(c);
}

typedef struct got {
    int done, type, calls;
    char str[256];
    char errstr[512];
} got_t;

static void got_cb(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    got_t *g = privdata;

    (void)c;
    g->calls++;
    g->done = 1;
    g->type = r != NULL ? r->type : -1;
    if (r != NULL && r->str != NULL)
        snprintf(g->str, sizeof(g->str), "%.*s", (int)r->len, r->str);
    if (r == NULL)
        snprintf(g->errstr, sizeof(g->errstr), "%s", errstr);
}

/* Command on argv[1]'s slot, waited for. */
static int kcmd(struct event_base *base, rc_client_t *c, got_t *g, int argc,
                const char **argv)
{
    memset(g, 0, sizeof(*g));
    if (rc_command_argv(c, argv[1], strlen(argv[1]), argc, argv, NULL, got_cb, g) == NULL)
        return 0;
    return spin(base, &g->done, 3000);
}

static rc_client_t *cluster_client(struct event_base *base)
{
    static char seed[2][32];
    static const char *seeds[2];
    rc_opts_t o = {.cluster = 1, .timeout_ms = 2000, .backoff_max_ms = 300};
    char err[256];

    snprintf(seed[0], sizeof(seed[0]), "127.0.0.1:%u", cl.port[0]);
    snprintf(seed[1], sizeof(seed[1]), "127.0.0.1:%u", cl.port[1]);
    seeds[0] = seed[0];
    seeds[1] = seed[1];
    o.seeds = seeds;
    o.nseeds = 2;
    return rc_client_new(base, &o, err, sizeof(err));
}

#define NEED_CLUSTER()                                                                     \
    do {                                                                                   \
        if (!cluster_up())                                                                 \
            return;                                                                        \
    } while (0)

/* ---- tests --------------------------------------------------------------------- */

static void test_routing(void)
{
    struct event_base *base;
    rc_client_t *c;
    got_t g;
    int ok = 0;

    NEED_CLUSTER();
    base = event_base_new();
    c = cluster_client(base);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(wait_up(base, c, 3000));
    for (int i = 0; i < 300; i++) {
        char k[32], v[32];
        const char *set[] = {"SET", k, v}, *get[] = {"GET", k};

        snprintf(k, sizeof(k), "key:%d", i);
        snprintf(v, sizeof(v), "val:%d", i);
        if (kcmd(base, c, &g, 3, set) && g.type == REDIS_REPLY_STATUS &&
            kcmd(base, c, &g, 2, get) && strcmp(g.str, v) == 0)
            ok++;
        else
            fprintf(stderr, "key %s: type %d %s %s\n", k, g.type, g.str, g.errstr);
    }
    CU_ASSERT_EQUAL(ok, 300);
    /* Hash tags keep keys together: a multi-key command works. */
    const char *mset[] = {"MSET", "{u1}.a", "1", "{u1}.b", "2"};
    CU_ASSERT(kcmd(base, c, &g, 5, mset));
    CU_ASSERT_STRING_EQUAL(g.str, "OK");
    /* Keyless commands go to some primary. */
    const char *ping[] = {"PING"};
    memset(&g, 0, sizeof(g));
    CU_ASSERT_PTR_NOT_NULL(rc_command_argv(c, NULL, 0, 1, ping, NULL, got_cb, &g));
    CU_ASSERT(spin(base, &g.done, 2000));
    CU_ASSERT_STRING_EQUAL(g.str, "PONG");
    rc_client_free(c);
    event_base_free(base);
}

static void test_ask_and_moved(void)
{
    struct event_base *base;
    rc_client_t *c;
    got_t g;
    const char *key = "hot-key";
    unsigned slot = rc_slot(key, strlen(key)), sport = 0, dport = 0;
    char sid[64], did[64];
    const char *set[] = {"SET", key, "42"}, *get[] = {"GET", key};
    rc_stats_t st;

    NEED_CLUSTER();
    base = event_base_new();
    c = cluster_client(base);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FATAL(wait_up(base, c, 3000));
    CU_ASSERT(kcmd(base, c, &g, 3, set));
    CU_ASSERT_FATAL(slot_owner(cl.port[0], slot, sid, &sport) == 0);
    for (int i = 0; i < NNODES && dport == 0; i++) {
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
    CU_ASSERT(sh(NULL, 0, "redis-cli -p %u cluster setslot %u importing %s", dport, slot,
                 sid) == 0);
    CU_ASSERT(sh(NULL, 0, "redis-cli -p %u cluster setslot %u migrating %s", sport, slot,
                 did) == 0);
    CU_ASSERT(sh(NULL, 0, "redis-cli -p %u migrate 127.0.0.1 %u '' 0 5000 keys %s", sport,
                 dport, key) == 0);
    CU_ASSERT(kcmd(base, c, &g, 2, get));
    CU_ASSERT_EQUAL(g.type, REDIS_REPLY_STRING);
    CU_ASSERT_STRING_EQUAL(g.str, "42");
    rc_client_stats(c, &st);
    CU_ASSERT_EQUAL(st.ask, 1);
    CU_ASSERT_EQUAL(st.moved, 0);
    /* Finish: the slot belongs to the target; the client still thinks source. */
    for (int i = 0; i < NNODES; i++)
        sh(NULL, 0, "redis-cli -p %u cluster setslot %u node %s >/dev/null 2>&1",
           cl.port[i], slot, did);
    CU_ASSERT(kcmd(base, c, &g, 2, get));
    CU_ASSERT_EQUAL(g.type, REDIS_REPLY_STRING);
    CU_ASSERT_STRING_EQUAL(g.str, "42");
    rc_client_stats(c, &st);
    CU_ASSERT_EQUAL(st.moved, 1);
    /* And again: now straight from the updated map. */
    CU_ASSERT(kcmd(base, c, &g, 2, get));
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
    got_t g;
    const char *key = "fo-key";
    unsigned slot = rc_slot(key, strlen(key)), port = 0;
    char id[64];
    const char *set[] = {"SET", key, "v1"}, *get[] = {"GET", key};
    int victim = -1, answered = 0, back = 0;

    NEED_CLUSTER();
    base = event_base_new();
    c = cluster_client(base);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FATAL(wait_up(base, c, 3000));
    CU_ASSERT(kcmd(base, c, &g, 3, set));
    CU_ASSERT_FATAL(slot_owner(cl.port[0], slot, id, &port) == 0);
    /* Replicas must have synced or they never fail over. */
    for (int t = 0; t < 100; t++) {
        char out[8192];
        int up = 0;

        for (int i = 0; i < NNODES; i++)
            if (sh(out, sizeof(out), "redis-cli -p %u info replication", cl.port[i]) == 0 &&
                strstr(out, "master_link_status:up") != NULL)
                up++;
        if (up >= 3)
            break;
        msleep(100);
    }
    for (int i = 0; i < NNODES; i++)
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
        if (rc_command_argv(c, key, strlen(key), 2, get, NULL, got_cb, &g) == NULL) {
            answered++;
            spin(base, NULL, 50);
            continue;
        }
        CU_ASSERT(spin(base, &g.done, 2500));
        answered++;
        back = g.type == REDIS_REPLY_STRING && strcmp(g.str, "v1") == 0;
        if (!back)
            spin(base, NULL, 50);
    }
    CU_ASSERT(back);
    CU_ASSERT(answered > 0);
    CU_ASSERT(wait_up(base, c, 3000));
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
        {"slot routing over 3 primaries", test_routing},
        {"ASK during migration, MOVED after", test_ask_and_moved},
        {"primary killed: failover found", test_primary_killed},
        {"stop the cluster", test_stop},
        {NULL, NULL},
    };
    log_set_level(LOG_ERROR);
    return unit_add_suite("rc_cluster", tests);
}
