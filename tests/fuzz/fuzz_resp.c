/* fuzz_resp.c — everything the Redis client parses from the network or the
 * environment: RESP through hiredis's reader fed in uneven pieces, then each
 * reply as the client would see it (MOVED/ASK error text, a CLUSTER SLOTS
 * map), plus the same bytes as a redis:// URL, a host:port and a key slot. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "../../redis/rc_internal.h"
#include "tollgate/log.h"
#include "tollgate/rc.h"
#include "tollgate/rc_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rc_client_t *client(void)
{
    static struct event_base *base;
    static rc_client_t *c;
    static const char *seeds[] = {"127.0.0.1:1"};

    if (c == NULL) {
        rc_opts_t o = {.cluster = 1, .seeds = seeds, .nseeds = 1};
        char err[256];

        log_set_level(LOG_ERROR);
        base = event_base_new();
        c = rc_client_new(base, &o, err, sizeof(err));
        if (c == NULL)
            abort();
    }
    return c;
}

static void look_at(const redisReply *r)
{
    rc_redirect_t rd;
    rc_client_t *c;

    if (r->type == REDIS_REPLY_ERROR) {
        if (rc_redirect_parse(r->str, r->len, &rd) == 0 &&
            (rd.slot >= RC_NSLOTS || rd.port == 0 || rd.port > 65535 || rd.host[0] == '\0'))
            abort();
    } else if (r->type == REDIS_REPLY_ARRAY) {
        c = client();
        rc_enter(c);
        rc_cluster_apply_slots(c, TAILQ_FIRST(&c->conns), r);
        rc_leave(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd = rc_reader_new(); /* as the client reads */
    size_t off = 0, step = size > 0 ? (size_t)data[0] % 7 + 1 : 1;
    char buf[1024], err[128], host[256];
    rc_url_t url;
    unsigned port;
    void *reply;

    if (rd == NULL)
        abort();
    while (off < size) {
        size_t n = size - off < step ? size - off : step;

        if (redisReaderFeed(rd, (const char *)data + off, n) != REDIS_OK)
            break;
        off += n;
        while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
            look_at(reply);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);

    if (size < sizeof(buf)) {
        memcpy(buf, data, size);
        buf[size] = '\0';
        if (rc_url_parse(buf, &url, err, sizeof(err)) == 0 &&
            (url.port == 0 || url.host[0] == 0))
            abort();
        rc_hostport_parse(buf, size, host, sizeof(host), &port);
    }
    if (rc_slot((const char *)data, size) >= RC_NSLOTS)
        abort();
    return 0;
}
