/* fuzz_path.c — libFuzzer target for http_path_normalize.
 *
 * Beyond "no crash", checks the properties the router relies on: an accepted
 * path starts with '/', has no empty, "." or ".." segment except a trailing
 * empty one, no control byte, only upper-case escapes of reserved or
 * non-ASCII bytes (never %2F or %00), and normalizing it again changes
 * nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static void check_output(const char *out, size_t n)
{
    size_t i;

    if (n == 0 || out[0] != '/' || strlen(out) != n)
        abort();
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c < 0x20 || c == 0x7f)
            abort();
        if (c == '/' && i + 1 < n && out[i + 1] == '/')
            abort();
        if (c == '/' && i + 1 < n && out[i + 1] == '.' &&
            (i + 2 == n || out[i + 2] == '/' ||
             (out[i + 2] == '.' && (i + 3 == n || out[i + 3] == '/'))))
            abort();
        if (c == '%') {
            int v;
            if (i + 2 >= n || !upper_hex(out[i + 1]) || !upper_hex(out[i + 2]))
                abort();
            v = (int)strtol((char[]){out[i + 1], out[i + 2], 0}, NULL, 16);
            if (v == 0 || v == '/' || unreserved(v))
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[HTTP_MAX_PATH], again[HTTP_MAX_PATH];
    int n, m;

    n = http_path_normalize((const char *)data, size, out, sizeof(out), NULL);
    if (n < 0)
        return 0;
    check_output(out, (size_t)n);
    m = http_path_normalize(out, (size_t)n, again, sizeof(again), NULL);
    if (m != n || memcmp(out, again, (size_t)n) != 0)
        abort();
    return 0;
}
