/* metrics_process.c — the standard Prometheus process metrics and
 * tollgate_build_info, rendered at scrape time (see metrics.h).
 *
 * Values are read when /metrics is asked for, on the admin thread, never on
 * the request path: /proc/self/stat (virtual size, resident pages, start
 * time in clock ticks since boot), /proc/stat's btime (boot time),
 * getrusage (CPU, microsecond resolution), /proc/self/fd (open fds) and
 * RLIMIT_NOFILE.  A value that cannot be read is left out of the exposition,
 * never reported as 0.
 */
#include "tollgate/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>

#define PROC_STAT_MAX 4096 /* bytes of /proc/self/stat read */

/* Fields of /proc/self/stat after the ")" that ends comm: field 3 (state)
 * is the first; starttime is 22, vsize 23, rss 24 (proc(5)). */
#define STAT_STARTTIME 22
#define STAT_VSIZE 23
#define STAT_RSS 24

int metrics_parse_proc_stat(const char *text, metrics_proc_stat_t *out)
{
    const char *p = text != NULL ? strrchr(text, ')') : NULL;
    unsigned long long v;
    char *end;

    /* comm may hold spaces and ')': the last ')' ends it */
    if (p == NULL || p[1] != ' ')
        return -1;
    p += 2;
    memset(out, 0, sizeof *out);
    for (int field = 3; field <= STAT_RSS; field++) {
        while (*p == ' ')
            p++;
        if (*p == '\0' || *p == '\n')
            return -1;
        if (field == 3) { /* state: one letter */
            p++;
            continue;
        }
        errno = 0;
        if (*p == '-') /* a few fields are signed; none that we keep */
            p++;
        v = strtoull(p, &end, 10);
        if (end == p || errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
            return -1;
        p = end;
        if (field == STAT_STARTTIME)
            out->start_ticks = v;
        else if (field == STAT_VSIZE)
            out->vsize_bytes = v;
        else if (field == STAT_RSS)
            out->rss_pages = v;
    }
    return 0;
}

/* "btime N" of /proc/stat: boot time, unix seconds; 0 when unknown. */
static unsigned long long boot_time(void)
{
    char line[256];
    unsigned long long bt = 0;
    FILE *f = fopen("/proc/stat", "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "btime ", 6) == 0) {
            bt = strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return bt;
}

static int read_proc_stat(metrics_proc_stat_t *st)
{
    char buf[PROC_STAT_MAX];
    size_t n;
    FILE *f = fopen("/proc/self/stat", "r");

    if (f == NULL)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return metrics_parse_proc_stat(buf, st);
}

/* Entries of /proc/self/fd, less the one opendir holds; -1 when unknown. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0;
}

static void gauge(struct evbuffer *out, const char *name, const char *help,
                  const char *type, const char *fmt_value)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, type,
                        name, fmt_value);
}

void metrics_render_process(struct evbuffer *out)
{
    metrics_proc_stat_t st;
    struct rusage ru;
    struct rlimit rl;
    char v[64];
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE), fds = open_fds();
    unsigned long long bt = boot_time();

    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        snprintf(v, sizeof v, "%.6f",
                 (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                     (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
        gauge(out, "process_cpu_seconds_total",
              "Total user and system CPU time spent in seconds.", "counter", v);
    }
    if (read_proc_stat(&st) == 0) {
        snprintf(v, sizeof v, "%llu", st.vsize_bytes);
        gauge(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge",
              v);
        if (page > 0) {
            snprintf(v, sizeof v, "%llu", st.rss_pages * (unsigned long long)page);
            gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
                  "gauge", v);
        }
        if (tick > 0 && bt > 0) {
            snprintf(v, sizeof v, "%.2f",
                     (double)bt + (double)st.start_ticks / (double)tick);
            gauge(out, "process_start_time_seconds",
                  "Start time of the process since unix epoch in seconds.", "gauge", v);
        }
    }
    if (fds >= 0) {
        snprintf(v, sizeof v, "%ld", fds);
        gauge(out, "process_open_fds", "Number of open file descriptors.", "gauge", v);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        snprintf(v, sizeof v, "%llu", (unsigned long long)rl.rlim_cur);
        gauge(out, "process_max_fds", "Maximum number of open file descriptors.", "gauge",
              v);
    }
}

/* A label value: these come from the build and from hex digests, but are
 * escaped all the same. */
static void label(struct evbuffer *out, const char *name, const char *v, bool last)
{
    evbuffer_add_printf(out, "%s=\"", name);
    for (const char *p = v != NULL ? v : ""; *p != '\0'; p++) {
        if (*p == '\\' || *p == '"')
            evbuffer_add(out, "\\", 1);
        if (*p == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, p, 1);
    }
    evbuffer_add_printf(out, "\"%s", last ? "" : ",");
}

void metrics_render_build_info(struct evbuffer *out, const char *version,
                               const char *config_version)
{
    evbuffer_add_printf(out, "# HELP tollgate_build_info Always 1; the labels say which "
                             "build runs which config (the config in force now).\n"
                             "# TYPE tollgate_build_info gauge\ntollgate_build_info{");
    label(out, "version", version, false);
    label(out, "config_version", config_version, true);
    evbuffer_add_printf(out, "} 1\n");
}
