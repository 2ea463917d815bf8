/* fuzz_replay_line.c — libFuzzer target for `tollgate replay`'s audit-line
 * parser (srv_replay_parse_line).  Beyond "no crash, no leak": an accepted
 * line has a decision of allow|deny|error, a time >= 0, a status null or
 * 100..599, at most SRV_REPLAY_KEYS_MAX keys each named header:/claim:,
 * scopes without a double space; a refused or skipped one leaves the
 * record cleared, and an error never quotes the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/srv_replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(const srv_replay_rec_t *r)
{
    if (r->decision == NULL ||
        (strcmp(r->decision, "allow") && strcmp(r->decision, "deny") &&
         strcmp(r->decision, "error")))
        abort();
    if (r->t_ms < 0 || (r->status != -1 && (r->status < 100 || r->status > 599)))
        abort();
    if (r->nkeys > SRV_REPLAY_KEYS_MAX)
        abort();
    for (size_t i = 0; i < r->nkeys; i++)
        if (strncmp(r->keys[i].name, "header:", 7) != 0 &&
            strncmp(r->keys[i].name, "claim:", 6) != 0)
            abort();
    if (r->scopes != NULL && (strstr(r->scopes, "  ") != NULL || r->scopes[0] == ' '))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    srv_replay_rec_t r;
    char err[256];
    int rc = srv_replay_parse_line((const char *)data, size, &r, err, sizeof err);

    if (rc == 1) {
        check_accepted(&r);
        srv_replay_rec_clear(&r);
        return 0;
    }
    if (r.decision != NULL || r.nkeys != 0)
        abort();
    if (rc < 0 && size >= 12 && memmem(err, strlen(err), data, 12) != NULL)
        abort(); /* the first bytes of the line quoted back */
    return 0;
}
