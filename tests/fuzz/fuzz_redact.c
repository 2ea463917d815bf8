/* fuzz_redact.c — libFuzzer target for http_redact_target.
 *
 * The first byte picks a separator ('&', ';', '?' or '#'); the rest is a
 * query Q.  Checks, beyond "no crash":
 *  - "/p?" Q SEP "token=" MARK comes out ending in "REDACTED": whatever
 *    precedes it, a credential after a separator never reaches the log;
 *  - redacting the output again changes nothing (when not truncated);
 *  - a small buffer gets a NUL-terminated prefix of the full answer;
 *  - http_body_has_param reads the raw input as a body of each type it
 *    knows (exactly `size` bytes: ASan catches a read past them), and finds
 *    a _method field appended to a form body whatever precedes it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MARK "Zq7mark"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char seps[] = "&;?#";
    static char in[4200], out[9 * sizeof(in)], again[sizeof(out)], small[24];
    size_t qlen, n, olen;

    if (size < 1 || size > 4096)
        return 0;
    qlen = strnlen((const char *)data + 1, size - 1);
    n = (size_t)snprintf(in, sizeof(in), "/p?%.*s%ctoken=" MARK, (int)qlen,
                         (const char *)data + 1, seps[data[0] & 3]);
    if (n >= sizeof(in))
        abort();
    http_redact_target(in, NULL, 0, out, sizeof(out));
    olen = strlen(out);
    if (olen + 1 >= sizeof(out) || olen < 8 || strcmp(out + olen - 8, "REDACTED") != 0)
        abort();
    http_redact_target(out, NULL, 0, again, sizeof(again));
    if (strcmp(out, again) != 0)
        abort();
    http_redact_target(in, NULL, 0, small, sizeof(small));
    if (strlen(small) >= sizeof(small) || strncmp(small, out, strlen(small)) != 0)
        abort();

    static const char *const types[] = {"application/x-www-form-urlencoded",
                                        "multipart/form-data; boundary=x", "application/json",
                                        "text/plain", NULL};
    char *body = malloc(size), *form;

    if (body == NULL)
        return 0;
    memcpy(body, data, size);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        (void)http_body_has_param(types[i], body, size, "_method");
    free(body);
    form = malloc(qlen + 16);
    if (form == NULL)
        return 0;
    n = (size_t)snprintf(form, qlen + 16, "%.*s&_method=x", (int)qlen, (const char *)data + 1);
    if (!http_body_has_param(types[0], form, n, "_method"))
        abort();
    free(form);
    return 0;
}
