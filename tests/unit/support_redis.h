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

#endif
