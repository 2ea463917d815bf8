/* support_redis.h — test support: a redis-server of the test's own, on a
 * free loopback port in a temp dir, stopped by PID; and driving a loop. */
#ifndef TOLLGATE_TESTS_SUPPORT_REDIS_H
#define TOLLGATE_TESTS_SUPPORT_REDIS_H

#include <sys/types.h>

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

#endif
