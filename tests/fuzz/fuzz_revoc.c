/* fuzz_revoc.c — libFuzzer target for the revocation endpoints' outside
 * input (server/admin_revoc.c, auth/shared.c): the listing's query and
 * cursor, the Redis index's replies (ZRANGEBYSCORE WITHSCORES for jtis,
 * HSCAN for subjects, parsed from RESP bytes by hiredis's reader as the
 * client would), the revocation channel's messages, and the subject body
 * with its iss.  A cursor that parses is written back the same; a page
 * holds at most `max` entries; a refusal says why; a message that is
 * applied leaves the set within its bound.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "tollgate/auth_revoke.h"
#include "tollgate/auth_shared.h"
#include "../../redis/rc_internal.h"
#include "../../server/srv_admin_req.h"
#include "../../server/srv_admin_revoc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data as a NUL-terminated string, cut at the first NUL */
static char *str_of(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s != NULL) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

static void cursor(const char *s)
{
    srv_revoc_cursor_t c, c2;
    char out[SRV_REVOC_CURSOR_MAX], err[160];
    unsigned n = 0;
    bool subject = false;

    if (srv_revoc_parse_query(s[0] == 's' ? "subject" : "jti", s, s[0] ? NULL : "7", &subject,
                              &c, &n, err, sizeof err) != 0) {
        if (err[0] == '\0')
            abort();
        return;
    }
    if (n == 0 || n > SRV_REVOC_PAGE_MAX)
        abort();
    if (c.type == 0)
        return;
    if (srv_revoc_cursor_str(&c, out, sizeof out) != 0)
        abort();
    if (srv_revoc_parse_query(subject ? "subject" : "jti", out, NULL, &subject, &c2, &n, err,
                              sizeof err) != 0 ||
        c2.type != c.type || c2.exp != c.exp || c2.scan != c.scan || c2.skip != c.skip ||
        c2.after.t != c.after.t || c2.after.scoped != c.after.scoped ||
        strcmp(c2.after.iss, c.after.iss) != 0 || strcmp(c2.after.id, c.after.id) != 0)
        abort();
}

static void message(const uint8_t *data, size_t size)
{
    static auth_revoke_t *rev;
    static auth_lockout_t *lock;
    static auth_shared_t sh;

    if (rev == NULL) {
        rev = auth_revoke_new(64);
        lock = auth_lockout_new(64);
        if (rev == NULL || lock == NULL || auth_shared_init(&sh, "tg:", rev, lock, 0, 1) != 0)
            abort();
        auth_revoke_set_lifetime(rev, 3600);
    }
    auth_shared_apply(&sh, (const char *)data, size, 1700000000000LL);
    if (auth_revoke_count(rev) > 64)
        abort();
}

static void body(const uint8_t *data, size_t size)
{
    srv_revoke_req_t rq;
    char err[256];

    if (srv_admin_parse_revoke((const char *)data, size, 1, &rq, err, sizeof err) == 0) {
        if (rq.id[0] == '\0' || strlen(rq.iss) > 256)
            abort();
        srv_revoke_req_clear(&rq);
    }
}

static void check_page(json_t *a, size_t max, const char *err)
{
    if (a == NULL) {
        if (err[0] == '\0')
            abort();
        return;
    }
    if (!json_is_array(a) || json_array_size(a) > max)
        abort();
    json_decref(a);
}

static void replies(const uint8_t *data, size_t size, size_t max)
{
    redisReader *r = rc_reader_new();
    void *rep = NULL;
    char next[SRV_REVOC_CURSOR_MAX], err[160];
    srv_revoc_cursor_t jc = {.type = 'j', .exp = 5, .skip = 1};
    srv_revoc_cursor_t sc = {.type = size % 2 ? 'i' : 's', .scan = 3, .skip = max / 2};

    if (r == NULL)
        return;
    if (redisReaderFeed(r, (const char *)data, size) == REDIS_OK &&
        redisReaderGetReply(r, &rep) == REDIS_OK && rep != NULL) {
        err[0] = '\0';
        check_page(srv_revoc_jti_entries(rep, &jc, max, next, sizeof next, err, sizeof err),
                   max, err);
        err[0] = '\0';
        check_page(srv_revoc_subject_entries(rep, &sc, max, 3600, 1700000000, next,
                                             sizeof next, err, sizeof err),
                   max, err);
        freeReplyObject(rep);
    }
    redisReaderFree(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t max = size > 0 ? 1 + data[0] % 8 : 1;
    char *s;

    if (size > 64 * 1024)
        return 0;
    if ((s = str_of(data, size)) == NULL)
        return 0;
    cursor(s);
    free(s);
    message(data, size);
    body(data, size);
    replies(data, size, max);
    return 0;
}
