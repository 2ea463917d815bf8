/* log.c — see include/tollgate/log.h. */
#include "tollgate/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile log_level_t min_level = LOG_INFO;

void log_set_level(log_level_t level)
{
    min_level = level;
}

void log_msg(log_level_t level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char line[1024];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int r;
    va_list ap;

    if (level < min_level)
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03dZ %-5s ", (int)(tv.tv_usec / 1000),
                 names[level]);
    n += r > 0 ? (size_t)r : 0;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (r < 0)
        r = 0;
    n += (size_t)r < sizeof(line) - n - 1 ? (size_t)r : sizeof(line) - n - 2;
    line[n++] = '\n';
    /* Best effort: a failed log write has nowhere else to go. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

bool log_ratelimit_take(log_ratelimit_t *rl, uint64_t now_ms, uint64_t interval_ms,
                        uint64_t *suppressed)
{
    uint64_t next = atomic_load_explicit(&rl->next_ms, memory_order_relaxed);

    /* One thread wins the slot; the others count themselves held back. */
    if (now_ms >= next && atomic_compare_exchange_strong_explicit(
                              &rl->next_ms, &next, now_ms + interval_ms,
                              memory_order_relaxed, memory_order_relaxed)) {
        *suppressed = atomic_exchange_explicit(&rl->suppressed, 0, memory_order_relaxed);
        return true;
    }
    atomic_fetch_add_explicit(&rl->suppressed, 1, memory_order_relaxed);
    *suppressed = 0;
    return false;
}
