/* fmt.c — see include/tollgate/util_fmt.h. */
#include "tollgate/util_fmt.h"

size_t util_fmt_u64(char *out, uint64_t v)
{
    char tmp[UTIL_FMT_U64_MAX];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

size_t util_fmt_i64(char *out, int64_t v)
{
    if (v >= 0)
        return util_fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    /* -(v + 1) + 1 avoids overflow at INT64_MIN */
    return 1 + util_fmt_u64(out + 1, (uint64_t)(-(v + 1)) + 1);
}
