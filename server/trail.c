/* trail.c — the trail of privileged actions (see srv_trail.h). */
#include "srv_trail.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "tollgate/log.h"
#include "tollgate/rc.h"
#include "tollgate/util_clock.h"
#include "tollgate/util_fmt.h"
#include "srv_process.h"

#define TRAIL_FIELDS 13 /* field/value pairs of an entry, at most */
#define TRAIL_ARGV (6 + 2 * TRAIL_FIELDS)
#define TRAIL_COUNTERS 32 /* {action,result} pairs counted; then "other" */
#define TRAIL_LABEL_MAX 32

/* One stream entry waiting for the admin thread: its field/value pairs. */
typedef struct trail_item {
    int n; /* strings in v */
    char v[2 * TRAIL_FIELDS][SRV_TRAIL_TARGET_MAX + 1];
} trail_item_t;

typedef struct trail_counter {
    char action[TRAIL_LABEL_MAX], result[TRAIL_LABEL_MAX];
    unsigned long long n;
} trail_counter_t;

struct srv_trail {
    srv_t *s;
    pthread_mutex_t mu; /* guards everything below but `inflight` */
    trail_item_t q[SRV_TRAIL_QUEUE];
    size_t head, len;
    trail_counter_t counters[TRAIL_COUNTERS];
    size_t ncounters;
    unsigned long long stream_ok, stream_failed;
    int efd;           /* wakes the admin loop */
    struct event *ev;  /* admin loop: drains q */
    unsigned inflight; /* admin thread only */
    bool failing;      /* admin thread: the last write failed (log once) */
    char replica[96];
};

/* ---- the local line and the counters -------------------------------------- */

/* Printable ASCII only, cut to SRV_TRAIL_TARGET_MAX: a target or id may
 * come from a request. */
static void clean(const char *in, char *out, size_t outlen)
{
    size_t i = 0;

    for (; in != NULL && in[i] != '\0' && i + 1 < outlen && i < SRV_TRAIL_TARGET_MAX; i++)
        out[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
    out[i] = '\0';
}

static void count(struct srv_trail *t, const char *action, const char *result)
{
    size_t i;

    pthread_mutex_lock(&t->mu);
    for (i = 0; i < t->ncounters; i++)
        if (strcmp(t->counters[i].action, action) == 0 &&
            strcmp(t->counters[i].result, result) == 0)
            break;
    if (i == t->ncounters && t->ncounters < TRAIL_COUNTERS) {
        snprintf(t->counters[i].action, TRAIL_LABEL_MAX, "%s",
                 t->ncounters + 1 < TRAIL_COUNTERS ? action : "other");
        snprintf(t->counters[i].result, TRAIL_LABEL_MAX, "%s",
                 t->ncounters + 1 < TRAIL_COUNTERS ? result : "other");
        t->ncounters++;
    } else if (i == t->ncounters) {
        i = TRAIL_COUNTERS - 1; /* the "other" row */
    }
    t->counters[i].n++;
    pthread_mutex_unlock(&t->mu);
}

static void push(trail_item_t *it, const char *name, const char *v)
{
    if (v == NULL || it->n + 2 > 2 * TRAIL_FIELDS)
        return;
    snprintf(it->v[it->n++], sizeof it->v[0], "%s", name);
    clean(v, it->v[it->n++], sizeof it->v[0]);
}

static void enqueue(struct srv_trail *t, const trail_item_t *it)
{
    uint64_t one = 1;
    bool queued = false;

    pthread_mutex_lock(&t->mu);
    if (t->ev != NULL && t->len < SRV_TRAIL_QUEUE) {
        t->q[(t->head + t->len) % SRV_TRAIL_QUEUE] = *it;
        t->len++;
        queued = true;
    } else if (t->ev != NULL) {
        t->stream_failed++;
    }
    pthread_mutex_unlock(&t->mu);
    if (queued && write(t->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("admin trail: cannot wake the admin thread: %s", strerror(errno));
}

void srv_admin_trail(srv_t *s, const srv_trail_rec_t *r)
{
    struct srv_trail *t = s->trail;
    char target[SRV_TRAIL_TARGET_MAX + 1], actor[SRV_TRAIL_TARGET_MAX + 1];
    char ts[UTIL_FMT_U64_MAX], status[UTIL_FMT_U64_MAX];
    int64_t now = util_wall_ms();
    audit_admin_rec_t a;
    trail_item_t *it;

    clean(r->target, target, sizeof target);
    clean(r->actor, actor, sizeof actor);
    a = (audit_admin_rec_t){now,
                            r->action,
                            r->target ? target : NULL,
                            r->result,
                            r->status > 0 ? r->status : -1,
                            r->code,
                            actor,
                            t ? t->replica : NULL,
                            r->request_id,
                            r->config_before,
                            r->config_after,
                            r->secrets_before,
                            r->secrets_after};
    if (audit_write_admin(s->audit, &a) != 0)
        log_info("admin trail: %s %s by %s: %s%s%s", r->action, r->target ? target : "-",
                 actor, r->result, r->code ? " " : "", r->code ? r->code : "");
    if (t == NULL)
        return;
    count(t, r->action, r->result);
    /* enqueue() drops it, uncounted, when there is no stream (no Redis) */
    it = calloc(1, sizeof(*it));
    if (it == NULL) {
        pthread_mutex_lock(&t->mu);
        t->stream_failed++;
        pthread_mutex_unlock(&t->mu);
        return;
    }
    util_fmt_u64(ts, (uint64_t)now);
    util_fmt_u64(status, (uint64_t)(r->status > 0 ? r->status : 0));
    push(it, "ts", ts);
    push(it, "action", r->action);
    push(it, "target", r->target);
    push(it, "result", r->result);
    push(it, "status", r->status > 0 ? status : NULL);
    push(it, "code", r->code);
    push(it, "actor", r->actor);
    push(it, "replica", t->replica);
    push(it, "request_id", r->request_id);
    push(it, "config_version_before", r->config_before);
    push(it, "config_version_after", r->config_after);
    push(it, "secrets_version_before", r->secrets_before);
    push(it, "secrets_version_after", r->secrets_after);
    enqueue(t, it);
    free(it);
}

/* ---- the stream (admin thread) ---------------------------------------------- */

int srv_trail_key(const char *prefix, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s{audit}:admin", prefix ? prefix : "");

    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

static void stream_result(struct srv_trail *t, bool ok, const char *why)
{
    pthread_mutex_lock(&t->mu);
    if (ok)
        t->stream_ok++;
    else
        t->stream_failed++;
    pthread_mutex_unlock(&t->mu);
    if (!ok && !t->failing)
        log_warn("admin trail: stream write failed (%s); the local audit log has the line",
                 why ? why : "not sent");
    else if (ok && t->failing)
        log_info("admin trail: stream writes succeed again");
    t->failing = !ok;
}

static void on_xadd(rc_client_t *c, redisReply *rep, const char *errstr, void *privdata)
{
    struct srv_trail *t = privdata;

    (void)c;
    t->inflight--;
    stream_result(t, rep != NULL && rep->type == REDIS_REPLY_STRING,
                  rep != NULL && rep->type == REDIS_REPLY_ERROR ? rep->str : errstr);
}

static void xadd(struct srv_trail *t, const trail_item_t *it)
{
    srv_t *s = t->s;
    char key[256], maxlen[UTIL_FMT_U64_MAX];
    const char *argv[TRAIL_ARGV];
    int argc = 0, klen = srv_trail_key(s->redis_prefix, key, sizeof key);

    if (klen < 0 || s->admin.rc == NULL || t->inflight >= SRV_TRAIL_INFLIGHT) {
        stream_result(t, false, klen < 0 ? "key too long" : "too many writes in flight");
        return;
    }
    util_fmt_u64(maxlen, s->admin.cfg->audit_admin_stream_max);
    argv[argc++] = "XADD";
    argv[argc++] = key;
    argv[argc++] = "MAXLEN";
    argv[argc++] = "~";
    argv[argc++] = maxlen;
    argv[argc++] = "*";
    for (int i = 0; i < it->n; i++)
        argv[argc++] = it->v[i];
    t->inflight++;
    if (rc_command_argv(s->admin.rc, key, (size_t)klen, argc, argv, NULL, on_xadd, t) ==
        NULL) {
        t->inflight--;
        stream_result(t, false, rc_client_errstr(s->admin.rc));
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct srv_trail *t = arg;
    trail_item_t *it = malloc(sizeof(*it));
    uint64_t v;

    (void)what;
    if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_warn("admin trail: wake-up read: %s", strerror(errno));
    for (;;) {
        bool have = false;

        pthread_mutex_lock(&t->mu);
        if (t->len > 0 && it != NULL) {
            *it = t->q[t->head];
            t->head = (t->head + 1) % SRV_TRAIL_QUEUE;
            t->len--;
            have = true;
        }
        pthread_mutex_unlock(&t->mu);
        if (!have)
            break;
        if (t->s->admin.cfg->audit_admin_stream_max == 0)
            continue; /* turned off by a reload */
        xadd(t, it);
    }
    free(it);
}

int srv_trail_start(srv_t *s, char *err, size_t errlen)
{
    struct srv_trail *t = calloc(1, sizeof(*t));
    char host[64] = "";

    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->s = s;
    t->efd = -1;
    pthread_mutex_init(&t->mu, NULL);
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "unknown");
    snprintf(t->replica, sizeof t->replica, "%s:%ld", host, (long)getpid());
    s->trail = t;
    if (s->cfg_redis_mode == CFG_REDIS_NONE || s->admin.rc == NULL)
        return 0;
    t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    t->ev = t->efd >= 0 ? event_new(s->admin.base, t->efd, EV_READ | EV_PERSIST, on_wake, t)
                        : NULL;
    if (t->ev == NULL || event_add(t->ev, NULL) != 0) {
        snprintf(err, errlen, "cannot set up the admin trail's stream writer");
        return -1;
    }
    return 0;
}

void srv_trail_stop(srv_t *s)
{
    struct srv_trail *t = s->trail;
    struct event *ev;

    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    ev = t->ev;
    t->ev = NULL;
    pthread_mutex_unlock(&t->mu);
    if (ev != NULL)
        event_free(ev);
    if (t->efd >= 0)
        close(t->efd);
    t->efd = -1;
}

void srv_trail_free(srv_t *s)
{
    struct srv_trail *t = s->trail;

    if (t == NULL)
        return;
    srv_trail_stop(s);
    pthread_mutex_destroy(&t->mu);
    free(t);
    s->trail = NULL;
}

void srv_trail_metrics(srv_t *s, struct evbuffer *out)
{
    struct srv_trail *t = s != NULL ? s->trail : NULL;
    unsigned long long ok = 0, failed = 0;

    evbuffer_add_printf(out, "# HELP tollgate_admin_actions_total Privileged actions "
                             "(admin API, config reloads) on this replica, by result.\n"
                             "# TYPE tollgate_admin_actions_total counter\n");
    if (t != NULL) {
        pthread_mutex_lock(&t->mu);
        for (size_t i = 0; i < t->ncounters; i++)
            evbuffer_add_printf(
                out, "tollgate_admin_actions_total{action=\"%s\",result=\"%s\"} %llu\n",
                t->counters[i].action, t->counters[i].result, t->counters[i].n);
        ok = t->stream_ok;
        failed = t->stream_failed;
        pthread_mutex_unlock(&t->mu);
    }
    evbuffer_add_printf(
        out,
        "# HELP tollgate_admin_trail_stream_writes_total Admin trail "
        "entries written to the fleet's Redis stream, by result.\n"
        "# TYPE tollgate_admin_trail_stream_writes_total counter\n"
        "tollgate_admin_trail_stream_writes_total{result=\"ok\"} %llu\n"
        "tollgate_admin_trail_stream_writes_total{result=\"failed\"} %llu\n",
        ok, failed);
}
