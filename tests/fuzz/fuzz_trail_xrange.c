/* fuzz_trail_xrange.c — libFuzzer target for GET /admin/v1/audit's inputs:
 * the query (since, limit) and the Redis stream's XRANGE reply, parsed from
 * RESP bytes by hiredis's reader as the client would.  An answer must be an
 * array of at most `max` objects, each with a string id, its last id copied
 * out; a refusal must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "../../redis/rc_internal.h"
#include "../../server/srv_admin_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void query(const uint8_t *data, size_t size)
{
    char s[64], start[64], err[160];
    size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
    unsigned count = 0;

    memcpy(s, data, n);
    s[n] = '\0';
    if (srv_admin_parse_audit_query(s, s, start, sizeof start, &count, err, sizeof err) == 0 &&
        (count == 0 || count > SRV_AUDIT_PAGE_MAX || start[0] == '\0'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *r;
    void *rep = NULL;
    char last[SRV_AUDIT_ID_MAX + 1], err[160];
    size_t max = size > 0 ? data[0] % 8 : 1;
    json_t *a;

    if (size > 64 * 1024)
        return 0;
    query(data, size);
    r = rc_reader_new(); /* as the client reads */
    if (r == NULL)
        return 0;
    if (redisReaderFeed(r, (const char *)data, size) != REDIS_OK ||
        redisReaderGetReply(r, &rep) != REDIS_OK || rep == NULL)
        goto out_free;
    err[0] = '\0';
    a = srv_admin_trail_entries(rep, max, last, sizeof last, err, sizeof err);
    if (a == NULL) {
        if (err[0] == '\0')
            abort();
    } else {
        if (!json_is_array(a) || json_array_size(a) > max)
            abort();
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_is_string(json_object_get(json_array_get(a, i), "id")))
                abort();
        if (json_array_size(a) > 0 &&
            strcmp(last, json_string_value(json_object_get(
                             json_array_get(a, json_array_size(a) - 1), "id"))) != 0)
            abort();
        json_decref(a);
    }
    freeReplyObject(rep);
out_free:
    redisReaderFree(r);
    return 0;
}
