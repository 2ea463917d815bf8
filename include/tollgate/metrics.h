/* metrics.h — Prometheus metrics (docs/reference.md §9).
 *
 * Each worker thread owns a metrics_t and is its only writer; the admin
 * thread sums all of them when /metrics is scraped.  Counters are relaxed
 * atomics in fixed-size tables, so neither side takes a lock.  Label values
 * come from small fixed sets (decision, reason, result) or from the config
 * (limit names); a label set beyond a table's capacity is counted under
 * "other" rather than growing without bound.
 */
#ifndef TOLLGATE_METRICS_H
#define TOLLGATE_METRICS_H

#include <stdbool.h>
#include <stdint.h>

struct evbuffer;

typedef struct metrics metrics_t;

/* A per-thread instance, registered for rendering until metrics_free. */
metrics_t *metrics_new(void);
void metrics_free(metrics_t *m);

/* tollgate_requests_total{decision,reason} and
 * tollgate_request_duration_seconds. */
void metrics_request(metrics_t *m, const char *decision, const char *reason,
                     double seconds);
/* tollgate_limit_decisions_total{limit,decision,mode}. */
void metrics_limit(metrics_t *m, const char *limit, const char *decision, const char *mode);
/* tollgate_auth_failures_total{reason}. */
void metrics_auth_failure(metrics_t *m, const char *reason);
/* tollgate_overlimit_cache_total{result="hit"} */
void metrics_overlimit_hit(metrics_t *m);
/* tollgate_lease_admits_total{result="local"} */
void metrics_lease_hit(metrics_t *m);
/* tollgate_jwt_cache_total{result="hit"|"miss"} */
void metrics_jwt_cache(metrics_t *m, bool hit);
/* tollgate_connections (gauge), tollgate_connections_refused_total,
 * tollgate_request_read_timeouts_total: process-wide, any thread. */
void metrics_conn_open(int delta);
void metrics_conn_refused(void);
void metrics_read_timeout(void);

/* tollgate_redis_requests_total{result="shed"}: a check failed at once
 * because redis.max_pending checks were waiting (no histogram sample). */
void metrics_redis_shed(metrics_t *m);

/* tollgate_accept_errors_total{error}: emfile, enfile, nomem, other */
void metrics_accept_error(metrics_t *m, const char *error);

/* tollgate_forwarded_header_repeats_total{dialect}: "traefik" or "nginx" */
void metrics_forwarded_repeat(metrics_t *m, const char *dialect);

/* tollgate_deprecated_auth_total{client} */
void metrics_deprecated(metrics_t *m, const char *client);
/* tollgate_redis_requests_total{result} and tollgate_redis_duration_seconds. */
void metrics_redis(metrics_t *m, const char *result, double seconds);

/* Process-wide values (any thread). */
void metrics_config_reload(bool ok); /* tollgate_config_reloads_total{result} */
void metrics_set_fallback(int on);   /* tollgate_fallback */
void metrics_set_revocations_cached(long n);
void metrics_set_bans_active(long n); /* tollgate_bans_active */
void metrics_lockout_lifted(void);    /* tollgate_lockouts_lifted_total */
/* An admin undo of a revocation (tollgate_revocations_undone_total). */
void metrics_revocation_undone(void);
/* tollgate_fleet_replicas (the last count of live replicas seen in Redis,
 * 0 before the first) and tollgate_fleet_replicas_age_seconds (since
 * `seen_mono_ms`, a util_mono_ms() value; absent before the first count). */
void metrics_set_fleet(unsigned count, uint64_t seen_mono_ms);

/* Append the text exposition format of every metric to `out`. */
void metrics_render(struct evbuffer *out);

/* The standard process metrics (process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_start_time_seconds, process_open_fds, process_max_fds), read
 * now; one that cannot be read is left out. */
void metrics_render_process(struct evbuffer *out);

/* tollgate_build_info{version,config_version} 1: only the snapshot in
 * force is exported, so after a reload the old label set is gone from the
 * next scrape (Prometheus marks that series stale).  No secrets_version:
 * metrics travel far (Prometheus, dashboards, remote storage) and that
 * hash lets its reader test guesses of a weak secret offline; it is on the
 * admin listener's /readyz. */
void metrics_render_build_info(struct evbuffer *out, const char *version,
                               const char *config_version);

/* What metrics_render_process takes from /proc/self/stat. */
typedef struct metrics_proc_stat {
    unsigned long long start_ticks; /* clock ticks after boot */
    unsigned long long vsize_bytes;
    unsigned long long rss_pages;
} metrics_proc_stat_t;

/* Parse the text of /proc/self/stat (comm may hold spaces and ')').
 * 0, or -1 when it is not in that shape. */
int metrics_parse_proc_stat(const char *text, metrics_proc_stat_t *out);

#endif
