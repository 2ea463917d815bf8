/* log.h — operator log lines on stderr.
 *
 * One line per event: `2026-11-24T21:40:00.123Z warn  message`.  Never pass a
 * secret (key, token, password) to these functions.  Thread-safe: each line
 * is written with a single write(2).
 */
#ifndef TOLLGATE_LOG_H
#define TOLLGATE_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

/* Lines below `level` are dropped.  Default LOG_INFO. */
void log_set_level(log_level_t level);
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
