/* fuzz_ban_target.c — libFuzzer target for what a ban is made of: a target
 * (auth_ban_target_parse), a POST /admin/v1/bans body (srv_admin_parse_ban)
 * and a record of the Redis index (auth_ban_record_parse).  Beyond "no
 * crash, no leak": an accepted target is canonical (parsing it again gives
 * itself), holds no byte outside visible ASCII (a client id's other bytes
 * are %XX) and is matched by the set it is put in (a client by its decoded
 * id); an accepted body has a duration of 1 s to 30 d and a reason
 * of printable ASCII; a refusal says why and leaves the output zeroed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/auth_ban.h"
#include "../../server/srv_admin_bans.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const auth_ban_rules_t rules = {.min_prefix_v4 = 8, .min_prefix_v6 = 32};

static void visible(const char *s, int allow_space)
{
    for (; *s; s++)
        if ((unsigned char)*s < (allow_space ? 0x20 : 0x21) || (unsigned char)*s > 0x7e)
            abort();
}

static void target(const char *in, size_t len)
{
    char out[AUTH_BAN_TARGET_MAX + 1], again[AUTH_BAN_TARGET_MAX + 1], err[200] = "";
    auth_ban_kind_t kind;
    auth_ban_entry_t e = {.until_ms = 2000};
    auth_ban_t *b;

    if (auth_ban_target_parse(in, len, &rules, out, sizeof out, &kind, err, sizeof err) != 0) {
        if (err[0] == '\0')
            abort();
        return;
    }
    visible(out, 0);
    if (auth_ban_target_parse(out, strlen(out), &rules, again, sizeof again, NULL, err,
                              sizeof err) != 0 ||
        strcmp(out, again) != 0)
        abort();
    b = auth_ban_new(4);
    if (b == NULL)
        return;
    memcpy(e.target, out, strlen(out) + 1);
    if (auth_ban_put(b, &e, 1000) != 0)
        abort();
    if (kind == AUTH_BAN_IP && !auth_ban_check_ip(b, strchr(out, ':') + 1, 1000, NULL))
        abort();
    if (kind == AUTH_BAN_CLIENT) {
        /* the id the target names: its %XX escapes decoded */
        char id[AUTH_MAX_ID_LEN + 1];
        size_t n = 0;

        for (const char *p = out + 7; *p != '\0'; p++) {
            unsigned v;

            if (n == AUTH_MAX_ID_LEN)
                abort();
            if (*p == '%') {
                if (sscanf(p + 1, "%2X", &v) != 1 || v < 0x20 || v == 0x7f)
                    abort();
                id[n++] = (char)v;
                p += 2;
            } else {
                id[n++] = *p;
            }
        }
        id[n] = '\0';
        if (!auth_ban_check_client(b, id, 1000, NULL))
            abort();
    }
    if (!auth_ban_remove(b, out, 1000) || auth_ban_count(b, 1000) != 0)
        abort();
    auth_ban_free(b);
}

static void body(const char *in, size_t len)
{
    srv_ban_req_t rq;
    char err[200] = "";

    if (srv_admin_parse_ban(in, len, &rules, &rq, err, sizeof err) != 0) {
        if (err[0] == '\0' || rq.target[0] != '\0' || rq.duration_ms != 0)
            abort();
        return;
    }
    if (rq.duration_ms < AUTH_BAN_MIN_MS || rq.duration_ms > AUTH_BAN_MAX_MS ||
        rq.target[0] == '\0')
        abort();
    visible(rq.target, 0);
    visible(rq.reason, 1);
}

static void record(const char *in, size_t len)
{
    const char *sp = memchr(in, '\n', len);
    auth_ban_entry_t e;

    if (sp == NULL)
        return;
    if (auth_ban_record_parse(in, (size_t)(sp - in), sp + 1, len - (size_t)(sp - in) - 1,
                              &e) == 0) {
        visible(e.target, 0);
        visible(e.actor, 0);
        visible(e.reason, 1);
        if (e.until_ms < 0 || e.created_ms < 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size > 8192)
        return 0;
    s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    target(s, size);
    body(s, size);
    record(s, size);
    free(s);
    return 0;
}
