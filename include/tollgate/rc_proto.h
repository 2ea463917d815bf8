/* rc_proto.h — the pure parts of the Redis Cluster protocol (redis/rc_proto.c):
 * key slots, MOVED/ASK redirections, "host:port".  No I/O, no state.
 * Source: the Redis Cluster specification (redis.io, "Redis cluster
 * specification": key distribution model, redirection and resharding).
 */
#ifndef TOLLGATE_RC_PROTO_H
#define TOLLGATE_RC_PROTO_H

#include <stddef.h>

#define RC_NSLOTS 16384

/* The most elements one RESP array of a reply may announce.  hiredis 0.14
 * allocates an announced array at once, so "*999999999\r\n" from a hostile
 * or broken peer would cost 8 GB from 12 bytes; tollgate's largest reply (a
 * CLUSTER SLOTS map, a batch of 256 bucket decisions) is far below this. */
#define RC_MAX_ARRAY 100000

struct redisReader;
/* A hiredis reader that refuses an array over RC_MAX_ARRAY elements (the
 * reader then reports an error and the connection is dropped).  Free with
 * redisReaderFree.  NULL when out of memory. */
struct redisReader *rc_reader_new(void);

/* Cluster slot of `key`: CRC16 (XMODEM) of the first non-empty {hash tag},
 * or of the whole key, mod 16384. */
unsigned rc_slot(const char *key, size_t len);

typedef enum { RC_REDIR_NONE, RC_REDIR_MOVED, RC_REDIR_ASK } rc_redir_kind_t;
typedef struct rc_redirect {
    rc_redir_kind_t kind;
    unsigned slot;
    char host[256];
    unsigned port;
} rc_redirect_t;
/* Parse "MOVED 3999 127.0.0.1:6381" / "ASK 3999 [::1]:6381" error text;
 * 0 ok, -1 when it is neither or malformed. */
int rc_redirect_parse(const char *s, size_t len, rc_redirect_t *out);
/* Split "host:port" / "[v6]:port"; 0 ok. */
int rc_hostport_parse(const char *s, size_t len, char *host, size_t hostlen,
                      unsigned *port);

#endif
