/* fuzz_admin_json.c — libFuzzer target for the admin API's JSON bodies
 * (srv_admin_parse_revoke).  The first byte picks the endpoint (revocations
 * or revocations/subject).  Beyond "no crash, no leak", an accepted body
 * yields an id of 1..256 printable bytes and, for jti and subject, a
 * positive time; a refused one leaves the output cleared. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/srv_admin_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    srv_revoke_req_t rq;
    char err[256];
    int subject;

    if (size < 1)
        return 0;
    subject = data[0] & 1;
    if (srv_admin_parse_revoke((const char *)data + 1, size - 1, subject, &rq, err,
                               sizeof(err)) != 0) {
        if (rq.token != NULL || rq.id[0] != '\0')
            abort();
        return 0;
    }
    if (rq.kind == SRV_REVOKE_TOKEN) {
        if (rq.token == NULL || rq.token[0] == '\0')
            abort();
    } else {
        size_t n = strlen(rq.id);

        if (n == 0 || n > 256)
            abort();
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)rq.id[i] < 0x20 || rq.id[i] == 0x7f)
                abort();
        if (rq.when < 0 || (rq.kind == SRV_REVOKE_JTI && rq.when == 0))
            abort();
    }
    srv_revoke_req_clear(&rq);
    return 0;
}
