/* fuzz_explain_json.c — libFuzzer target for POST /admin/v1/explain's body
 * (srv_explain_parse).  Beyond "no crash, no leak": an accepted body has an
 * upper-case method, a path starting with '/', at most 100 headers whose
 * names are non-empty and whose values hold no CR, LF or NUL, a peer that
 * is a string, and never as_client together with a credential header; a
 * refused one leaves the output cleared. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../server/srv_explain_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(const srv_explain_req_t *rq)
{
    bool cred = false;

    if (rq->method == NULL || rq->method[0] == '\0' ||
        strspn(rq->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(rq->method))
        abort();
    if (rq->path == NULL || rq->path[0] != '/' || strpbrk(rq->path, " \r\n") != NULL)
        abort();
    if (rq->peer == NULL || rq->nheaders > SRV_EXPLAIN_MAX_HEADERS)
        abort();
    for (size_t i = 0; i < rq->nheaders; i++) {
        const dec_header_t *h = &rq->headers[i];

        if (h->name == NULL || h->name[0] == '\0' || h->value == NULL ||
            strpbrk(h->value, "\r\n") != NULL || strpbrk(h->name, " :\r\n") != NULL)
            abort();
        cred |= strcasecmp(h->name, "X-API-Key") == 0 || strcasecmp(h->name, "Authorization") == 0;
    }
    if (cred && rq->as_client != NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    srv_explain_req_t rq;
    char err[256];

    if (srv_explain_parse((const char *)data, size, &rq, err, sizeof(err)) != 0) {
        if (rq.root != NULL || rq.nheaders != 0 || rq.method != NULL || err[0] == '\0')
            abort();
        return 0;
    }
    check_accepted(&rq);
    srv_explain_req_clear(&rq);
    return 0;
}
