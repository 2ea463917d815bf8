/* fuzz_ban_reply.c — libFuzzer target for what Redis tells a replica of
 * bans and lockouts: the ban index's HGETALL reply (RESP bytes, read by
 * hiredis's reader as the client reads them; auth_shared_bans_reply) and
 * the channel messages ("b ...", "u ..." on the bans channel,
 * "u <ip key>" on the lockouts one).  Beyond "no crash, no leak": the set
 * never holds more than its bound, and every target listed is canonical
 * and its ban in force. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "tollgate/auth_shared.h"
#include "tollgate/rc_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX 8
#define FZ_NOW 1000000

static void check_set(auth_ban_t *b)
{
    auth_ban_entry_t page[FZ_MAX + 1];
    char canon[AUTH_BAN_TARGET_MAX + 1], err[200];
    bool more;
    size_t n = auth_ban_list(b, FZ_NOW, NULL, page, FZ_MAX + 1, &more);

    if (n > FZ_MAX || more)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (auth_ban_target_parse(page[i].target, strlen(page[i].target), NULL, canon,
                                  sizeof canon, NULL, err, sizeof err) != 0 ||
            strcmp(canon, page[i].target) != 0 || page[i].until_ms <= FZ_NOW)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    auth_shared_t sh;
    auth_revoke_t *rv = auth_revoke_new(4);
    auth_lockout_t *lo = auth_lockout_new(4);
    auth_ban_t *b = auth_ban_new(FZ_MAX);
    redisReader *r = NULL;
    void *rep = NULL;

    if (size > 64 * 1024 || rv == NULL || lo == NULL || b == NULL)
        goto out_free;
    if (auth_shared_init(&sh, "tg:", rv, lo, 0, 0) != 0 ||
        auth_shared_init_bans(&sh, b, 0, FZ_MAX, 16) != 0)
        abort();
    /* the bytes as messages of the two channels */
    auth_shared_apply_ban(&sh, (const char *)data, size, FZ_NOW);
    auth_shared_apply_unlock(&sh, (const char *)data, size);
    check_set(b);
    /* and as the index's reply */
    r = rc_reader_new();
    if (r == NULL)
        goto out_free;
    if (redisReaderFeed(r, (const char *)data, size) == REDIS_OK &&
        redisReaderGetReply(r, &rep) == REDIS_OK && rep != NULL) {
        auth_shared_bans_reply(&sh, rep, FZ_NOW);
        check_set(b);
        freeReplyObject(rep);
    }
out_free:
    if (r != NULL)
        redisReaderFree(r);
    auth_ban_free(b);
    auth_lockout_free(lo);
    auth_revoke_free(rv);
    return 0;
}
