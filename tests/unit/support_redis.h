/* support_redis.h — test support: a redis-server (or a 6-node cluster) of
 * the test's own, on free loopback ports in a temp dir, stopped by PID;
 * driving a loop; rc clients on those servers and their replies. */
#ifndef TOLLGATE_TESTS_SUPPORT_REDIS_H
#define TOLLGATE_TESTS_SUPPORT_REDIS_H

#include <stddef.h>
#include <sys/types.h>

#include "tollgate/rc.h"

struct event_base;

typedef struct tu_redis {
    pid_t pid;
    unsigned port;
    char dir[64];
} tu_redis_t;

/* Is redis-server installed?  Prints the skip reason once when not. */
int tu_have_redis(void);
unsigned tu_free_port(void);
int tu_port_open(unsigned port);
void tu_msleep(unsigned ms);
/* Start redis-server on s->port (0: a free one) with extra args; 0 ok. */
int tu_redis_start(tu_redis_t *s, const char *const *extra);
void tu_redis_kill(tu_redis_t *s);
void tu_redis_stop(tu_redis_t *s); /* kill and remove the temp dir */
/* Run `base` until *done or `ms` passed; 1 when done. */
int tu_spin(struct event_base *base, const int *done, unsigned ms);
/* Output of a shell command (first `len` bytes, the rest read and dropped;
 * `out` may be NULL); 0 when it exited 0. */
int tu_sh(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- rc clients ---- */

/* A client of 127.0.0.1:port with options `o` (its seeds set for the call,
 * then put back); NULL with the reason printed. */
rc_client_t *tu_client_on(struct event_base *base, unsigned port, rc_opts_t *o);
/* Run `base` until `c` is up or `ms` passed; 1 when up. */
int tu_wait_up(struct event_base *base, rc_client_t *c, unsigned ms);

/* One reply, copied for the test to look at. */
typedef struct tu_got {
    int done;
    int type; /* -1: NULL reply */
    long long integer;
    char str[256];
    char errstr[512];
    int calls;
} tu_got_t;

/* rc reply callback filling the tu_got_t `privdata`. */
void tu_got_cb(rc_client_t *c, redisReply *r, const char *errstr, void *privdata);
/* Send a command (keyed by argv[1], else argv[0]) into `g`, cleared first. */
rc_pending_t *tu_cmd(rc_client_t *c, tu_got_t *g, int argc, const char **argv);
/* tu_cmd, then wait up to `ms` for the reply; 1 when it came. */
int tu_cmd_wait(struct event_base *base, rc_client_t *c, tu_got_t *g, int argc,
                const char **argv, unsigned ms);

/* A Redis Cluster of its own: 3 primaries + 3 replicas on free loopback
 * ports in a temp dir, made with `redis-cli --cluster create`. */
#define TU_CLUSTER_NODES 6
typedef struct tu_cluster {
    char dir[64];
    unsigned port[TU_CLUSTER_NODES];
    pid_t pid[TU_CLUSTER_NODES];
} tu_cluster_t;

/* 0 when every node says cluster_state:ok; -1 with the reason printed
 * (redis-server / redis-cli missing, create failed); stop it either way. */
int tu_cluster_start(tu_cluster_t *cl);
void tu_cluster_stop(tu_cluster_t *cl);
/* A cluster client seeded with the first two nodes; NULL on error. */
rc_client_t *tu_cluster_client(struct event_base *base, const tu_cluster_t *cl);

#endif
