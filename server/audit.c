/* audit.c — the audit log sink and per-thread line buffers.
 * See include/tollgate/audit.h.
 *
 * The sink is one fd behind a mutex.  A thread's buffer only ever holds whole
 * lines and is handed to the sink in one locked write loop, so lines from
 * different threads never interleave, and audit_reopen can swap the fd
 * (SIGUSR1, log rotation) between two writes.  audit_reopen takes a mutex:
 * call it from a libevent signal event, never from a signal handler.
 *
 * Lines are valid JSON whatever the input: strings are escaped per RFC 8259,
 * valid UTF-8 is copied as is and any byte that is not part of a valid UTF-8
 * sequence is written as \u00XX (its byte value, so nothing is lost for
 * forensics).  Each string field is cut to a bounded length first so that a
 * line always fits in AUDIT_LINE_MAX.
 */
#include "tollgate/audit.h"
#include "tollgate/util_fmt.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "tollgate/log.h"
#include "tollgate/http.h"

#define AUDIT_FLUSH_BYTES (32 * 1024) /* flush a buffer once this much is queued */
#define AUDIT_FLUSH_MS 100            /* and at least this often */
#define AUDIT_FIELD_MAX 256           /* bytes of a short string field written */
/* > 6 * (HTTP_MAX_PATH + 14 * AUDIT_FIELD_MAX + 2 * AUDIT_SCOPES_MAX * AUDIT_SCOPE_MAX
 *        + AUDIT_KEYS_MAX * (AUDIT_KEY_NAME_MAX + AUDIT_FIELD_MAX + 8)) + some syntax */
#define AUDIT_LINE_MAX (128 * 1024)
#define AUDIT_SCOPE_MAX 128   /* bytes of one scope written */
#define AUDIT_KEY_NAME_MAX 80 /* bytes of a key's header or claim name written */
#define AUDIT_BUF_CAP (AUDIT_FLUSH_BYTES + AUDIT_LINE_MAX)

struct audit {
    pthread_mutex_t mu; /* guards fd and every write to it */
    int fd;
    bool is_stdout;
    bool failing; /* the last write failed (log once per streak) */
    char *path;
};

struct audit_buf {
    audit_t *a;
    audit_flush_t mode;
    struct event *timer; /* NULL without an event_base */
    char *data;          /* AUDIT_BUF_CAP bytes, whole lines */
    size_t len;
};

/* ---- sink ----------------------------------------------------------------- */

static int open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

audit_t *audit_open(const char *path, char *err, size_t errlen)
{
    audit_t *a;

    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "audit: empty path");
        return NULL;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL || (a->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "audit: out of memory");
        goto out_free;
    }
    if (strcmp(path, "-") == 0) {
        a->fd = STDOUT_FILENO;
        a->is_stdout = true;
    } else if ((a->fd = open_file(path)) < 0) {
        snprintf(err, errlen, "audit: open %s: %s", path, strerror(errno));
        goto out_free;
    }
    pthread_mutex_init(&a->mu, NULL);
    return a;

out_free:
    if (a != NULL)
        free(a->path);
    free(a);
    return NULL;
}

void audit_close(audit_t *a)
{
    if (a == NULL)
        return;
    if (!a->is_stdout)
        close(a->fd);
    pthread_mutex_destroy(&a->mu);
    free(a->path);
    free(a);
}

int audit_reopen(audit_t *a)
{
    int fd, old;

    if (a == NULL)
        return -1;
    if (a->is_stdout)
        return 0;
    fd = open_file(a->path);
    if (fd < 0) {
        log_error("audit: reopen %s: %s (keeping the old file)", a->path, strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&a->mu);
    old = a->fd;
    a->fd = fd;
    a->failing = false;
    pthread_mutex_unlock(&a->mu);
    close(old);
    return 0;
}

/* Write whole lines to the sink; on error the batch is dropped.  `sync`:
 * then fdatasync (not for stdout, where it means nothing).  0, or -1 when
 * not everything was written. */
static int sink_write(audit_t *a, const char *p, size_t len, bool sync)
{
    ssize_t r;

    pthread_mutex_lock(&a->mu);
    while (len > 0) {
        r = write(a->fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (!a->failing)
                log_error("audit: write %s: %s (lines dropped)", a->path,
                          r < 0 ? strerror(errno) : "short write");
            a->failing = true;
            break;
        }
        p += r;
        len -= (size_t)r;
        a->failing = false;
    }
    if (sync && !a->is_stdout && len == 0 && fdatasync(a->fd) != 0 && !a->failing) {
        log_error("audit: fdatasync %s: %s", a->path, strerror(errno));
        a->failing = true;
    }
    pthread_mutex_unlock(&a->mu);
    return len == 0 ? 0 : -1;
}

/* ---- per-thread buffers --------------------------------------------------- */

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    audit_buf_flush(arg);
}

audit_buf_t *audit_buf_new(audit_t *a, struct event_base *base)
{
    struct timeval tv = {0, AUDIT_FLUSH_MS * 1000};
    audit_buf_t *b;

    if (a == NULL)
        return NULL;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->a = a;
    b->data = malloc(AUDIT_BUF_CAP);
    if (b->data == NULL)
        goto out_free_buf;
    if (base != NULL) {
        b->timer = event_new(base, -1, EV_PERSIST, on_flush_timer, b);
        if (b->timer == NULL || event_add(b->timer, &tv) != 0)
            goto out_free_data;
    }
    return b;

out_free_data:
    if (b->timer != NULL)
        event_free(b->timer);
    free(b->data);
out_free_buf:
    free(b);
    return NULL;
}

void audit_buf_flush(audit_buf_t *b)
{
    if (b == NULL || b->len == 0)
        return;
    sink_write(b->a, b->data, b->len, b->mode == AUDIT_FLUSH_FSYNC);
    b->len = 0;
}

void audit_buf_set_flush(audit_buf_t *b, audit_flush_t mode)
{
    if (b == NULL)
        return;
    audit_buf_flush(b);
    b->mode = mode;
}

void audit_buf_free(audit_buf_t *b)
{
    if (b == NULL)
        return;
    audit_buf_flush(b);
    if (b->timer != NULL)
        event_free(b->timer);
    free(b->data);
    free(b);
}

void audit_log(audit_buf_t *b, const audit_rec_t *r)
{
    int n;

    if (b == NULL || r == NULL)
        return;
    n = audit_format(r, b->data + b->len, AUDIT_BUF_CAP - b->len);
    if (n < 0) {
        /* Cannot happen while the buffer is flushed at AUDIT_FLUSH_BYTES. */
        audit_buf_flush(b);
        n = audit_format(r, b->data, AUDIT_BUF_CAP);
        if (n < 0)
            return;
    }
    b->len += (size_t)n;
    if (b->len >= AUDIT_FLUSH_BYTES || b->mode != AUDIT_FLUSH_INTERVAL)
        audit_buf_flush(b);
}

/* ---- formatting ----------------------------------------------------------- */

typedef struct jw {
    char *p;
    size_t n, cap; /* cap excludes the byte kept for the NUL */
    bool full;
} jw_t;

static void jw_put(jw_t *w, const char *s, size_t len)
{
    if (w->full || len > w->cap - w->n) {
        w->full = true;
        return;
    }
    memcpy(w->p + w->n, s, len);
    w->n += len;
}

static void jw_str(jw_t *w, const char *s)
{
    jw_put(w, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most `avail` bytes), or 0
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t n, i;

    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* A JSON string of at most `max` bytes of s, or null. */
static void jw_jstr(jw_t *w, const char *s, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t len, i, run;
    char esc[6];

    if (s == NULL) {
        jw_str(w, "null");
        return;
    }
    len = strnlen(s, max);
    jw_put(w, "\"", 1);
    for (i = 0; i < len;) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            for (run = i; run < len && u[run] >= 0x20 && u[run] < 0x7f && u[run] != '"' &&
                          u[run] != '\\';
                 run++)
                ;
            jw_put(w, s + i, run - i);
            i = run;
            continue;
        }
        if (c >= 0x80 && (run = utf8_len(u + i, len - i)) > 0) {
            jw_put(w, s + i, run);
            i += run;
            continue;
        }
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            jw_put(w, esc, 2);
        } else if (c == '\n') {
            jw_put(w, "\\n", 2);
        } else if (c == '\r') {
            jw_put(w, "\\r", 2);
        } else if (c == '\t') {
            jw_put(w, "\\t", 2);
        } else {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            jw_put(w, esc, 6);
        }
        i++;
    }
    jw_put(w, "\"", 1);
}

static void jw_int(jw_t *w, long long v)
{
    char tmp[UTIL_FMT_U64_MAX];

    if (v < 0) {
        jw_str(w, "null");
        return;
    }
    jw_put(w, tmp, util_fmt_u64(tmp, (uint64_t)v));
}

/* Milliseconds with three decimals, from whole microseconds (no printf). */
static void jw_ms(jw_t *w, double v)
{
    char tmp[UTIL_FMT_U64_MAX];
    uint64_t us;
    size_t n;

    /* Non-finite is not JSON; beyond ~3 years is not a request duration. */
    if (!isfinite(v) || v < 0 || v > 1e11) {
        jw_str(w, "null");
        return;
    }
    us = (uint64_t)(v * 1000.0 + 0.5);
    n = util_fmt_u64(tmp, us / 1000);
    jw_put(w, tmp, n);
    tmp[0] = '.';
    tmp[1] = (char)('0' + us % 1000 / 100);
    tmp[2] = (char)('0' + us % 100 / 10);
    tmp[3] = (char)('0' + us % 10);
    jw_put(w, tmp, 4);
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ".  The part up to the seconds is formatted once
 * a second per thread (gmtime_r + strftime cost more than the rest of the
 * line). */
static void jw_ts(jw_t *w, int64_t ts_ms)
{
    static __thread int64_t cached_sec = -1;
    static __thread char head[32];
    static __thread size_t headlen;
    struct tm tm;
    time_t sec;
    char ms[5];

    sec = (time_t)(ts_ms / 1000);
    if (ts_ms < 0) {
        jw_str(w, "null");
        return;
    }
    if (sec != cached_sec) {
        if (gmtime_r(&sec, &tm) == NULL || tm.tm_year + 1900 > 9999) {
            jw_str(w, "null");
            return;
        }
        headlen = strftime(head, sizeof(head), "\"%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = sec;
    }
    jw_put(w, head, headlen);
    ms[0] = '.';
    ms[1] = (char)('0' + ts_ms % 1000 / 100);
    ms[2] = (char)('0' + ts_ms % 100 / 10);
    ms[3] = (char)('0' + ts_ms % 10);
    ms[4] = 'Z';
    jw_put(w, ms, 5);
    jw_put(w, "\"", 1);
}

static void jw_field(jw_t *w, const char *name, const char *v);

/* A list of strings, or null. */
static void jw_strv(jw_t *w, char *const *v, size_t n)
{
    if (v == NULL) {
        jw_str(w, "null");
        return;
    }
    jw_put(w, "[", 1);
    for (size_t i = 0; i < n && i < AUDIT_SCOPES_MAX; i++) {
        if (i > 0)
            jw_put(w, ",", 1);
        jw_jstr(w, v[i], AUDIT_SCOPE_MAX);
    }
    jw_put(w, "]", 1);
}

/* {"header:x-tenant":"acme","claim:org":null}, or null. */
static void jw_keys(jw_t *w, const audit_key_t *k, size_t n)
{
    char name[8 + AUDIT_KEY_NAME_MAX + 1];

    if (k == NULL || n == 0) {
        jw_str(w, "null");
        return;
    }
    jw_put(w, "{", 1);
    for (size_t i = 0; i < n && i < AUDIT_KEYS_MAX; i++) {
        size_t p =
            (size_t)snprintf(name, sizeof name, "%s:", k[i].claim ? "claim" : "header");
        size_t len = k[i].name != NULL ? strnlen(k[i].name, AUDIT_KEY_NAME_MAX) : 0;

        for (size_t j = 0; j < len; j++) {
            char c = k[i].name[j];

            name[p++] = !k[i].claim && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
        name[p] = '\0';
        if (i > 0)
            jw_put(w, ",", 1);
        jw_jstr(w, name, sizeof name);
        jw_put(w, ":", 1);
        jw_jstr(w, k[i].value, AUDIT_FIELD_MAX);
    }
    jw_put(w, "}", 1);
}

/* The fields of issue 22 item 6, after the original twelve. */
static void jw_why(jw_t *w, const audit_rec_t *r)
{
    jw_field(w, "route", r->route);
    jw_field(w, "auth_method", r->auth_method);
    jw_field(w, "iss", r->iss);
    jw_str(w, ",\"scopes\":");
    jw_strv(w, r->scopes, r->nscopes);
    jw_str(w, ",\"scopes_required\":");
    jw_strv(w, r->scopes_required, r->nscopes_required);
    jw_str(w, ",\"decided_ms\":");
    jw_int(w, r->decided_ms > 0 ? r->decided_ms : -1);
    jw_field(w, "host", r->host);
    jw_field(w, "tier", r->tier);
    jw_field(w, "peer", r->peer);
    jw_field(w, "mode", r->mode);
    jw_str(w, ",\"keys\":");
    jw_keys(w, r->keys, r->nkeys);
}

int audit_format(const audit_rec_t *r, char *out, size_t outlen)
{
    char target[HTTP_MAX_PATH];
    jw_t w = {out, 0, outlen > 0 ? outlen - 1 : 0, false};

    if (r == NULL || out == NULL || outlen == 0)
        return -1;
    jw_str(&w, "{\"ts\":");
    jw_ts(&w, r->ts_ms);
    jw_str(&w, ",\"request_id\":");
    jw_jstr(&w, r->request_id, AUDIT_FIELD_MAX);
    jw_str(&w, ",\"client_id\":");
    jw_jstr(&w, r->client_id, AUDIT_FIELD_MAX);
    jw_str(&w, ",\"method\":");
    jw_jstr(&w, r->method, AUDIT_FIELD_MAX);
    jw_str(&w, ",\"path\":");
    if (r->target != NULL)
        http_redact_target(r->target, r->redact, r->nredact, target, sizeof(target));
    jw_jstr(&w, r->target != NULL ? target : NULL, sizeof(target));
    jw_str(&w, ",\"status\":");
    jw_int(&w, r->status);
    jw_str(&w, ",\"duration_ms\":");
    jw_ms(&w, r->duration_ms);
    jw_str(&w, ",\"ip\":");
    jw_jstr(&w, r->ip, AUDIT_FIELD_MAX);
    jw_str(&w, ",\"decision\":");
    jw_jstr(&w, r->decision, AUDIT_FIELD_MAX);
    jw_str(&w, ",\"reason\":");
    jw_jstr(&w, r->reason, AUDIT_FIELD_MAX);
    jw_str(&w, ",\"limit\":");
    jw_jstr(&w, r->limit, AUDIT_FIELD_MAX);
    jw_str(&w, ",\"upstream_status\":");
    jw_int(&w, r->upstream_status);
    jw_why(&w, r);
    jw_str(&w, "}\n");
    if (w.full)
        return -1;
    out[w.n] = '\0';
    return (int)w.n;
}

static void jw_field(jw_t *w, const char *name, const char *v)
{
    jw_str(w, ",\"");
    jw_str(w, name);
    jw_str(w, "\":");
    jw_jstr(w, v, AUDIT_FIELD_MAX);
}

int audit_format_admin(const audit_admin_rec_t *r, char *out, size_t outlen)
{
    jw_t w = {out, 0, outlen > 0 ? outlen - 1 : 0, false};

    if (r == NULL || out == NULL || outlen == 0)
        return -1;
    jw_str(&w, "{\"ts\":");
    jw_ts(&w, r->ts_ms);
    jw_str(&w, ",\"kind\":\"admin\"");
    jw_field(&w, "action", r->action);
    jw_field(&w, "target", r->target);
    jw_field(&w, "result", r->result);
    jw_str(&w, ",\"status\":");
    jw_int(&w, r->status);
    jw_field(&w, "code", r->code);
    jw_field(&w, "actor", r->actor);
    jw_field(&w, "replica", r->replica);
    jw_field(&w, "request_id", r->request_id);
    jw_field(&w, "config_version_before", r->config_version_before);
    jw_field(&w, "config_version_after", r->config_version_after);
    jw_field(&w, "secrets_version_before", r->secrets_version_before);
    jw_field(&w, "secrets_version_after", r->secrets_version_after);
    jw_str(&w, "}\n");
    if (w.full)
        return -1;
    out[w.n] = '\0';
    return (int)w.n;
}

int audit_write_admin(audit_t *a, const audit_admin_rec_t *r)
{
    char line[12 * 6 * AUDIT_FIELD_MAX]; /* 11 strings of <= 256 bytes, each byte <= 6 */
    int n;

    if (a == NULL)
        return -1;
    n = audit_format_admin(r, line, sizeof line);
    if (n < 0)
        return -1;
    return sink_write(a, line, (size_t)n, true);
}
