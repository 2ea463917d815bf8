/* fuzz_apikey_line.c — libFuzzer target for the API key file line parser.
 * Each input is split at newlines and fed line by line into one store, so
 * duplicate detection and the hash table's growth are exercised too; every
 * accepted key must then be findable by its own digest, and reachable (in a
 * bounded walk) among the keys of its id: an id may have several keys
 * (rotation), each with its own not_after. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/auth_apikey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The newest entry: found by its digest, and among its id's keys. */
static void check_entry(const auth_keystore_t *ks)
{
    const auth_apikey_t *k = auth_keystore_get(ks, auth_keystore_count(ks) - 1), *w;
    size_t steps = 0;
    unsigned char fp[32];

    if (k == NULL || auth_keystore_find_digest(ks, k->sha256) != k || k->not_after < 0)
        abort();
    for (w = auth_keystore_find_id(ks, k->id); w != NULL && w != k;
         w = auth_keystore_next_of_id(ks, w)) {
        if (strcmp(w->id, k->id) != 0 || ++steps > auth_keystore_count(ks))
            abort(); /* another id, or a walk that does not end */
    }
    if (w != k || auth_keystore_fingerprint(ks, fp) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    auth_keystore_t *ks;
    char *buf, *line, *save = NULL, err[256];
    size_t before;

    if (size > 64 * 1024)
        return 0;
    buf = malloc(size + 1);
    ks = auth_keystore_new();
    if (buf == NULL || ks == NULL)
        goto out_free;
    memcpy(buf, data, size);
    buf[size] = '\0';
    for (line = strtok_r(buf, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        before = auth_keystore_count(ks);
        err[0] = '\0';
        if (auth_keystore_add_line(ks, line, "fuzz:1", err, sizeof(err)) != 0) {
            if (strncmp(err, "fuzz:1: ", 8) != 0 || auth_keystore_count(ks) != before)
                abort(); /* an error must say where and add nothing */
        } else if (auth_keystore_count(ks) > before + 1) {
            abort();
        } else if (auth_keystore_count(ks) == before + 1) {
            check_entry(ks);
        }
    }
    /* The input as a not_after value: a valid time is at least 1970. */
    {
        int64_t t = -1;

        if (auth_apikey_parse_time((const char *)data, size, &t) == 0 && t < 0)
            abort();
    }
    /* The line used as a key: almost always a miss, never a crash. */
    auth_keystore_lookup(ks, (const char *)data, size);
out_free:
    auth_keystore_free(ks);
    free(buf);
    return 0;
}
