/* fuzz_admintok_line.c — libFuzzer target for the admin tokens file's line
 * parser (auth/admintok.c).  Each input is split at newlines and fed line
 * by line into one store: a refused line must say where and add nothing; an
 * accepted one adds at most one entry, whose id is valid; the input's first
 * line used as a token matches at most an entry it was added as. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/auth_admintok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    auth_admintok_t *t;
    const char *p = (const char *)data, *end = p + size;
    char err[512];
    unsigned char fp[32];

    if (size > 64 * 1024)
        return 0;
    t = auth_admintok_new();
    if (t == NULL)
        return 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p), before = auth_admintok_count(t);

        err[0] = '\0';
        if (auth_admintok_add_line(t, p, len, "fuzz:1", err, sizeof err) != 0) {
            if (strncmp(err, "fuzz:1: ", 8) != 0 || auth_admintok_count(t) != before)
                abort();
        } else if (auth_admintok_count(t) > before + 1) {
            abort();
        } else if (auth_admintok_count(t) == before + 1) {
            const auth_admin_id_t *e = auth_admintok_get(t, before);

            if (e == NULL || !auth_admintok_valid_id(e->id) ||
                (e->scope != AUTH_ADMIN_READ && e->scope != AUTH_ADMIN_WRITE))
                abort();
        }
        p += len + 1;
    }
    if (auth_admintok_fingerprint(t, fp) != 0)
        abort();
    {
        const auth_admin_id_t *m = auth_admintok_match(t, (const char *)data, size);

        if (m != NULL && !auth_admintok_valid_id(m->id))
            abort();
    }
    auth_admintok_free(t);
    return 0;
}
