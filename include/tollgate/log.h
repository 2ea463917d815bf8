/* log.h — operator log lines on stderr.
 *
 * One line per event: `2026-11-24T21:40:00.123Z warn  message`.  Never pass a
 * secret (key, token, password) to these functions.  Thread-safe: each line
 * is written with a single write(2).
 */
#ifndef TOLLGATE_LOG_H
#define TOLLGATE_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

/* Lines below `level` are dropped.  Default LOG_INFO. */
void log_set_level(log_level_t level);
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* At most one line per `interval_ms` for one kind of event, from any
 * thread: zero-initialize it (static storage) and ask log_ratelimit_take()
 * before each line. */
typedef struct log_ratelimit {
    _Atomic uint64_t next_ms;    /* monotonic ms before which lines are held back */
    _Atomic uint64_t suppressed; /* events held back since the last line */
} log_ratelimit_t;

/* May a line be written at `now_ms` (monotonic)?  true: yes, and
 * *suppressed is how many events were held back since the last line (they
 * are reset); false: no, and this event is counted as held back. */
bool log_ratelimit_take(log_ratelimit_t *rl, uint64_t now_ms, uint64_t interval_ms,
                        uint64_t *suppressed);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
