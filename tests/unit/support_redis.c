/* support_redis.c — see support_redis.h. */
#include <arpa/inet.h>
#include <errno.h>
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

#include "support_redis.h"
#include "unit.h"

/* A test of the fast set (make test-unit) may not start a server. */
static int servers_refused(void)
{
    if (unit_servers_allowed())
        return 0;
    fprintf(stderr, "\n  [unit] a suite of the fast set started redis-server: add it with "
                    "unit_add_server_suite (unit.h)\n");
    return 1;
}

int tu_have_redis(void)
{
    static int have = -1;

    if (have < 0) {
        have = system("command -v redis-server >/dev/null 2>&1") == 0;
        if (!have)
            fprintf(stderr, "\n  [unit] redis-server not installed: skipping\n");
    }
    return have;
}

unsigned tu_free_port(void)
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

int tu_port_open(unsigned port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    close(fd);
    return ok;
}

void tu_msleep(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Start redis-server on s->port (0: a free one) with extra args; 0 ok. */
int tu_redis_start(tu_redis_t *s, const char *const *extra)
{
    char portbuf[16];
    const char *argv[32];
    int n = 0;

    if (servers_refused())
        return -1;
    if (s->dir[0] == '\0') {
        snprintf(s->dir, sizeof(s->dir), "/tmp/tg-rc-XXXXXX");
        if (mkdtemp(s->dir) == NULL)
            return -1;
    }
    if (s->port == 0)
        s->port = tu_free_port();
    snprintf(portbuf, sizeof(portbuf), "%u", s->port);
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = portbuf;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--dir";
    argv[n++] = s->dir;
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--logfile";
    argv[n++] = "redis.log";
    argv[n++] = "--enable-debug-command";
    argv[n++] = "local";
    for (; extra != NULL && *extra != NULL && n < 31; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        if (tu_port_open(s->port))
            return 0;
        tu_msleep(10);
    }
    return -1;
}

void tu_redis_kill(tu_redis_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* Remove the temp dir `dir` (if any) and forget its name. */
static void rm_dir(char *dir)
{
    char cmd[128];

    if (dir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", dir);
        dir[0] = '\0';
    }
}

void tu_redis_stop(tu_redis_t *s)
{
    tu_redis_kill(s);
    rm_dir(s->dir);
}

/* ---- driving the loop ---------------------------------------------------- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run `base` until *done or `ms` passed; 1 when done. */
int tu_spin(struct event_base *base, const int *done, unsigned ms)
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

int tu_sh(char *out, size_t len, const char *fmt, ...)
{
    char cmd[1024], sink[256];
    va_list ap;
    FILE *f;
    size_t n;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    if (out != NULL && len > 0) {
        n = fread(out, 1, len - 1, f);
        out[n] = '\0';
    }
    while (fread(sink, 1, sizeof(sink), f) > 0)
        ;
    return pclose(f) == 0 ? 0 : -1;
}

/* ---- rc clients ------------------------------------------------------------ */

rc_client_t *tu_client_on(struct event_base *base, unsigned port, rc_opts_t *o)
{
    char seed[32], err[256];
    const char *seeds[1] = {seed};
    const char *const *was = o->seeds;
    size_t nwas = o->nseeds;
    rc_client_t *c;

    snprintf(seed, sizeof(seed), "127.0.0.1:%u", port);
    o->seeds = seeds;
    o->nseeds = 1;
    c = rc_client_new(base, o, err, sizeof(err));
    o->seeds = was;
    o->nseeds = nwas;
    if (c == NULL)
        fprintf(stderr, "rc_client_new: %s\n", err);
    return c;
}

int tu_wait_up(struct event_base *base, rc_client_t *c, unsigned ms)
{
    for (unsigned i = 0; i < ms / 10 && !rc_client_up(c); i++)
        tu_spin(base, NULL, 10);
    return rc_client_up(c);
}

void tu_got_cb(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    tu_got_t *g = privdata;

    (void)c;
    g->calls++;
    g->done = 1;
    g->type = r != NULL ? r->type : -1;
    if (r != NULL) {
        g->integer = r->integer;
        if (r->str != NULL)
            snprintf(g->str, sizeof(g->str), "%.*s", (int)r->len, r->str);
    } else {
        snprintf(g->errstr, sizeof(g->errstr), "%s", errstr != NULL ? errstr : "(null)");
    }
}

rc_pending_t *tu_cmd(rc_client_t *c, tu_got_t *g, int argc, const char **argv)
{
    const char *key = argv[argc > 1 ? 1 : 0];

    memset(g, 0, sizeof(*g));
    return rc_command_argv(c, key, strlen(key), argc, argv, NULL, tu_got_cb, g);
}

int tu_cmd_wait(struct event_base *base, rc_client_t *c, tu_got_t *g, int argc,
                const char **argv, unsigned ms)
{
    if (tu_cmd(c, g, argc, argv) == NULL)
        return 0;
    return tu_spin(base, &g->done, ms);
}

/* ---- a cluster ------------------------------------------------------------- */

static pid_t cluster_node_start(const tu_cluster_t *cl, int i)
{
    char dir[128], port[16], bus[16];
    pid_t pid;

    snprintf(dir, sizeof(dir), "%s/n%d", cl->dir, i);
    mkdir(dir, 0700);
    snprintf(port, sizeof(port), "%u", cl->port[i]);
    snprintf(bus, sizeof(bus), "%u", tu_free_port());
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

static int cluster_state_ok(unsigned port)
{
    char out[2048];

    return tu_sh(out, sizeof(out), "redis-cli -p %u cluster info 2>/dev/null", port) == 0 &&
           strstr(out, "cluster_state:ok") != NULL;
}

int tu_cluster_start(tu_cluster_t *cl)
{
    char cmd[512], out[4096];
    size_t n;
    int ok = 0;

    memset(cl, 0, sizeof(*cl));
    if (servers_refused())
        return -1;
    if (system("command -v redis-server >/dev/null 2>&1 && command -v redis-cli "
               ">/dev/null 2>&1") != 0) {
        fprintf(stderr, "\n  [unit] redis-server/redis-cli not installed: skipping\n");
        return -1;
    }
    snprintf(cl->dir, sizeof(cl->dir), "/tmp/tg-rcc-XXXXXX");
    if (mkdtemp(cl->dir) == NULL) {
        cl->dir[0] = '\0';
        return -1;
    }
    n = (size_t)snprintf(cmd, sizeof(cmd), "redis-cli --cluster create");
    for (int i = 0; i < TU_CLUSTER_NODES; i++) {
        cl->port[i] = tu_free_port();
        cl->pid[i] = cluster_node_start(cl, i);
        n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, " 127.0.0.1:%u", cl->port[i]);
    }
    snprintf(cmd + n, sizeof(cmd) - n, " --cluster-replicas 1 --cluster-yes 2>&1");
    for (int i = 0; i < TU_CLUSTER_NODES; i++)
        for (int t = 0; t < 200 && !tu_port_open(cl->port[i]); t++)
            tu_msleep(10);
    if (tu_sh(out, sizeof(out), "%s", cmd) != 0) {
        fprintf(stderr, "\n  [unit] cluster create failed:\n%s\n", out);
        return -1;
    }
    for (int t = 0; t < 100 && !ok; t++) {
        ok = 1;
        for (int i = 0; i < TU_CLUSTER_NODES; i++)
            ok = ok && cluster_state_ok(cl->port[i]);
        if (!ok)
            tu_msleep(100);
    }
    if (!ok)
        fprintf(stderr, "\n  [unit] cluster_state never became ok\n");
    return ok ? 0 : -1;
}

void tu_cluster_stop(tu_cluster_t *cl)
{
    for (int i = 0; i < TU_CLUSTER_NODES; i++)
        if (cl->pid[i] > 0) {
            kill(cl->pid[i], SIGKILL);
            waitpid(cl->pid[i], NULL, 0);
            cl->pid[i] = 0;
        }
    rm_dir(cl->dir);
}

rc_client_t *tu_cluster_client(struct event_base *base, const tu_cluster_t *cl)
{
    char seed[2][32], err[256];
    const char *seeds[2] = {seed[0], seed[1]};
    rc_opts_t o = {.cluster = 1, .timeout_ms = 2000, .backoff_max_ms = 300};

    snprintf(seed[0], sizeof(seed[0]), "127.0.0.1:%u", cl->port[0]);
    snprintf(seed[1], sizeof(seed[1]), "127.0.0.1:%u", cl->port[1]);
    o.seeds = seeds;
    o.nseeds = 2;
    return rc_client_new(base, &o, err, sizeof(err));
}
