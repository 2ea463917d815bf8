/* server.c — process lifecycle: worker threads, listeners, reload, drain.
 *
 * Each worker thread runs its own event_base with its own listening socket
 * (SO_REUSEPORT: the kernel spreads connections), limiter, proxy, audit
 * buffer and metrics; the admin listener has a thread of its own.  Other
 * threads talk to a worker only through its mailbox (a mutex-guarded slot
 * plus an eventfd that wakes the loop), so libevent needs no locking and the
 * request path takes no lock.  The main thread handles signals and watches
 * the config file.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netdb.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>

#include "tollgate/util_clock.h"
#include "tollgate/log.h"
#include "tollgate/auth_jwks_fetch.h"
#include "tollgate/auth_jwt.h"
#include "tollgate/auth_ticket.h"
#include "srv_admin_explain.h"
#include "srv_process.h"
#include "srv_top.h"
#include "srv_trail.h"

#define SRV_MAX_MEMORY_BUCKETS 1000000
#define SRV_MAX_LOCKOUT_KEYS 100000
#define SRV_REDIS_REQUIRED_WAIT_MS 5000
#define SRV_MAX_REVOCATIONS 1000000
#define SRV_MAX_TICKETS 100000  /* live tickets in memory (no Redis) */
#define SRV_START_GRACE_MS 2000 /* longest /readyz says "starting" waiting on Redis */
#define SRV_START_POLL_MS 10

/* ---- mailbox -------------------------------------------------------------- */

static void post(srv_worker_t *w, cfg_t *c, uint64_t seq, bool stop)
{
    uint64_t one = 1;
    cfg_t *old;

    pthread_mutex_lock(&w->mbox_mu);
    old = w->mbox_cfg;
    if (c != NULL) {
        w->mbox_cfg = cfg_ref(c);
        w->mbox_seq = seq;
    } else {
        old = NULL;
    }
    if (stop)
        w->mbox_stop = true;
    pthread_mutex_unlock(&w->mbox_mu);
    cfg_unref(old);
    if (write(w->mbox_fd, &one, sizeof(one)) < 0)
        log_error("worker %u: mailbox write: %s", w->index, strerror(errno));
}

/* Take this replica out of the fleet roster (the admin thread does it) and
 * wait, bounded, until Redis has answered: the others then count one less
 * at their next heartbeat instead of after RL_FLEET_TTL_MS. */
static void leave_fleet(srv_t *s)
{
    const struct timespec tick = {0, 1000000L};
    uint64_t one = 1, until = util_mono_ms() + SRV_FLEET_LEAVE_WAIT_MS;

    if (s->fleet == NULL)
        return;
    pthread_mutex_lock(&s->admin.mbox_mu);
    s->admin.mbox_leave = true;
    pthread_mutex_unlock(&s->admin.mbox_mu);
    if (write(s->admin.mbox_fd, &one, sizeof(one)) < 0)
        log_error("admin mailbox write: %s", strerror(errno));
    while (!srv_fleet_left(s) && util_mono_ms() < until)
        nanosleep(&tick, NULL);
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
    srv_worker_t *w = arg;

    (void)fd;
    (void)what;
    if ((w->inflight == 0 && w->unflushed == 0) || util_mono_ms() >= w->drain_deadline_ms) {
        if (w->inflight > 0 || w->unflushed > 0)
            log_warn("worker %u: drain timeout with %u requests in flight, %u answers "
                     "being written",
                     w->index, w->inflight, w->unflushed);
        event_base_loopbreak(w->base);
    }
}

static void mbox_cb(evutil_socket_t fd, short what, void *arg)
{
    srv_worker_t *w = arg;
    uint64_t v;
    cfg_t *c;
    bool stop, leave;
    uint64_t seq;
    struct timeval tick = {0, 20000};

    (void)what;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_error("worker %u: mailbox read: %s", w->index, strerror(errno));
    pthread_mutex_lock(&w->mbox_mu);
    c = w->mbox_cfg;
    w->mbox_cfg = NULL;
    seq = w->mbox_seq;
    stop = w->mbox_stop;
    leave = w->mbox_leave;
    w->mbox_leave = false;
    pthread_mutex_unlock(&w->mbox_mu);
    if (leave)
        srv_fleet_leave(w->srv);
    if (c != NULL) {
        cfg_unref(w->cfg);
        w->cfg = c;
        srv_backend_reconfigure(w);
        if (!w->admin) /* for connections accepted from now on */
            srv_set_idle_timeout(w, c->idle_timeout_ms);
        /* SIGHUP: what was buffered reaches the file now, then the new policy */
        audit_buf_set_flush(w->audit, (audit_flush_t)c->audit_flush);
        atomic_store(&w->cfg_seq, seq); /* srv_reload() waits for this */
    }
    if (stop && w->drain_ev == NULL) {
        /* Stop accepting; finish what is in flight (bounded). */
        if (w->bound != NULL) {
            evhttp_del_accept_socket(w->http, w->bound);
            w->bound = NULL;
        }
        w->drain_deadline_ms = util_mono_ms() + SRV_DRAIN_TIMEOUT_MS;
        w->drain_ev = event_new(w->base, -1, EV_PERSIST, drain_check, w);
        if (w->drain_ev == NULL || event_add(w->drain_ev, &tick) != 0)
            event_base_loopbreak(w->base);
    }
}

/* ---- workers ------------------------------------------------------------- */

/* evhttp's per-connection timer: no byte either way for `ms` closes the
 * connection (a kept-alive one between requests, or a client gone quiet). */
void srv_set_idle_timeout(srv_worker_t *w, unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    evhttp_set_timeout_tv(w->http, &tv);
}

/* A loop for one worker.  With the epoll changelist, libevent applies
 * read/write interest changes once per loop pass, so evhttp's disable-read
 * when a request arrives and enable-read when it is answered cancel out
 * instead of costing an epoll_ctl each (no fd of ours is dup()ed, the
 * changelist's one caveat). */
static struct event_base *worker_base_new(void)
{
    struct event_config *ec = event_config_new();
    struct event_base *b = NULL;

    if (ec != NULL && event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) == 0)
        b = event_base_new_with_config(ec);
    event_config_free(ec);
    return b != NULL ? b : event_base_new();
}

static int worker_init(srv_t *s, srv_worker_t *w, unsigned index, int fd, bool admin,
                       char *err, size_t errlen)
{
    const cfg_t *c = s->cfg;

    w->srv = s;
    w->index = index;
    w->admin = admin;
    w->mbox_fd = -1;
    pthread_mutex_init(&w->mbox_mu, NULL);
    w->base = worker_base_new();
    w->http = w->base ? evhttp_new(w->base) : NULL;
    if (w->http == NULL)
        goto out_nomem;
    /* The main listener also parses TRACE, for the pipeline to refuse or
     * decide by allowed_methods; the admin listener, as before, not. */
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
                                            (admin ? 0 : EVHTTP_REQ_TRACE));
    evhttp_set_max_headers_size(w->http, (ev_ssize_t)c->max_header_bytes);
    evhttp_set_max_body_size(w->http, admin ? 65536 : (ev_ssize_t)c->max_body_bytes);
    srv_set_idle_timeout(w, admin ? SRV_ADMIN_IDLE_MS : c->idle_timeout_ms);
    evhttp_set_default_content_type(w->http, NULL);
    evhttp_set_gencb(w->http, admin ? srv_admin_handle : srv_pipeline_handle, w);
    w->bound = evhttp_accept_socket_with_handle(w->http, fd);
    if (w->bound == NULL) {
        close(fd);
        snprintf(err, errlen, "cannot accept on listener socket");
        return -1;
    }
    if (srv_listener_guard(w) != 0 || (!admin && srv_conns_init(w) != 0))
        goto out_nomem;
    w->mbox_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->mbox_fd < 0)
        goto out_nomem;
    w->mbox_ev = event_new(w->base, w->mbox_fd, EV_READ | EV_PERSIST, mbox_cb, w);
    if (w->mbox_ev == NULL || event_add(w->mbox_ev, NULL) != 0)
        goto out_nomem;
    w->cfg = cfg_ref(s->cfg);
    if (admin)
        return 0;
    /* Upstreams named by host (a Kubernetes Service name) are resolved on
     * this loop, with resolv.conf's nameservers, search list and ndots. */
    w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (w->dns == NULL)
        log_warn("worker %u: no DNS resolver: upstreams must be IP addresses", index);
    w->proxy = srv_proxy_new(w->base, w->dns);
    if (w->proxy != NULL && s->proxy_max_conns > 0)
        srv_proxy_set_max_conns(w->proxy, s->proxy_max_conns);
    w->metrics = metrics_new();
    /* sized at start: a reload does not resize it */
    w->jwt_local =
        auth_jwt_local_new(s->cfg->auth.jwt.cache_entries, s->cfg->auth.jwt.cache_bytes);
    w->audit = s->audit ? audit_buf_new(s->audit, w->base) : NULL;
    audit_buf_set_flush(w->audit, (audit_flush_t)c->audit_flush);
    if (w->proxy == NULL || w->metrics == NULL || w->jwt_local == NULL ||
        (s->audit && w->audit == NULL))
        goto out_nomem;
    if (srv_backend_init(s, w, err, errlen) != 0)
        return -1;
    if (srv_pipeline_init(w) != 0)
        goto out_nomem;
    if (!admin && srv_top_worker_init(w) != 0)
        goto out_nomem;
    return 0;
out_nomem:
    snprintf(err, errlen, "out of memory setting up worker %u", index);
    return -1;
}

static void worker_clear(srv_worker_t *w)
{
    if (w->base == NULL)
        return;
    /* evhttp_free closes idle keep-alive connections; a request still in
     * flight is cancelled through its close callback. */
    srv_listener_unguard(w);
    if (w->http != NULL)
        evhttp_free(w->http);
    srv_conns_clear(w);
    audit_buf_free(w->audit);
    srv_proxy_free(w->proxy);
    if (w->dns != NULL)
        evdns_base_free(w->dns, 0); /* the proxy (its only user) is gone already */
    srv_pipeline_clear(w);
    srv_backend_clear(w);
    srv_top_worker_clear(w);
    metrics_free(w->metrics);
    auth_jwt_local_free(w->jwt_local);
    free(w->own_hdrs);
    if (w->mbox_ev)
        event_free(w->mbox_ev);
    if (w->drain_ev)
        event_free(w->drain_ev);
    if (w->mbox_fd >= 0)
        close(w->mbox_fd);
    cfg_unref(w->cfg);
    cfg_unref(w->mbox_cfg);
    event_base_free(w->base);
    pthread_mutex_destroy(&w->mbox_mu);
    memset(w, 0, sizeof(*w));
}

static void *worker_main(void *arg)
{
    srv_worker_t *w = arg;

    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* ---- config ------------------------------------------------------------- */

cfg_t *srv_current_cfg(srv_t *s)
{
    cfg_t *c;

    pthread_mutex_lock(&s->cfg_mu);
    c = cfg_ref(s->cfg);
    pthread_mutex_unlock(&s->cfg_mu);
    return c;
}

static bool str_differ(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/* Any Redis setting whose change needs a restart (the clients are built once). */
static bool redis_changed(const cfg_redis_t *o, const cfg_redis_t *n)
{
    bool nodes = o->nodes.n != n->nodes.n;

    for (size_t i = 0; !nodes && i < o->nodes.n; i++)
        nodes = strcmp(o->nodes.v[i], n->nodes.v[i]) != 0;
    return nodes || o->mode != n->mode || o->tls != n->tls || o->db != n->db ||
           o->timeout_ms != n->timeout_ms || str_differ(o->key_prefix, n->key_prefix) ||
           str_differ(o->username, n->username) || str_differ(o->password, n->password) ||
           str_differ(o->tls_ca_file, n->tls_ca_file) ||
           str_differ(o->tls_cert_file, n->tls_cert_file) ||
           str_differ(o->tls_key_file, n->tls_key_file);
}

static void warn_restart_needed(const cfg_t *o, const cfg_t *n)
{
    if (strcmp(o->listen, n->listen) != 0 || strcmp(o->admin_listen, n->admin_listen) != 0)
        log_warn("config reload: listen addresses change only on restart");
    if (redis_changed(&o->redis, &n->redis))
        log_warn("config reload: redis settings change only on restart");
    if (o->threads != n->threads)
        log_warn("config reload: threads change only on restart");
    if (o->max_body_bytes != n->max_body_bytes ||
        o->max_header_bytes != n->max_header_bytes)
        log_warn(
            "config reload: max_body_bytes and max_header_bytes change only on restart");
    if ((o->audit_path == NULL) != (n->audit_path == NULL) ||
        (o->audit_path && strcmp(o->audit_path, n->audit_path) != 0))
        log_warn("config reload: audit.path changes only on restart");
}

/* Until every main-listener worker serves reload `seq` (a worker reads its
 * mailbox within a pass of its loop), at most SRV_RELOAD_WAIT_MS. */
static void wait_taken(srv_t *s, uint64_t seq)
{
    const struct timespec tick = {0, 1000000L};
    uint64_t until = util_mono_ms() + SRV_RELOAD_WAIT_MS;

    for (unsigned i = 0; i < s->nworkers; i++)
        while (atomic_load(&s->workers[i].cfg_seq) < seq) {
            if (util_mono_ms() >= until) {
                log_warn("config reload: worker %u has not taken it after %d ms", i,
                         SRV_RELOAD_WAIT_MS);
                return;
            }
            nanosleep(&tick, NULL);
        }
}

/* The trail's line for a reload (srv_trail.h). */
static void trail_reload(srv_t *s, const char *actor, const char *request_id,
                         const cfg_t *o, const cfg_t *n)
{
    srv_trail_rec_t r = {
        .action = "reload",
        .result = n != NULL ? "ok" : "refused",
        .status = request_id == NULL ? 0
                  : n != NULL        ? 200
                                     : 422,
        .code = n != NULL ? NULL : "config_invalid",
        .actor = actor,
        .request_id = request_id,
        .config_before = o->version,
        .config_after = n != NULL ? n->version : o->version,
        .secrets_before = o->secrets_version,
        .secrets_after = n != NULL ? n->secrets_version : o->secrets_version,
    };

    srv_admin_trail(s, &r);
}

int srv_reload(srv_t *s, const char *actor, const char *request_id, char *err,
               size_t errlen)
{
    cfg_t *n, *old, *now;
    uint64_t seq;

    pthread_mutex_lock(&s->cfg_mu);
    n = cfg_load(s->config_path, err, errlen);
    if (n == NULL) {
        old = cfg_ref(s->cfg);
        pthread_mutex_unlock(&s->cfg_mu);
        metrics_config_reload(false);
        log_error("config reload rejected, keeping version %s: %s", old->version, err);
        trail_reload(s, actor, request_id, old, NULL);
        cfg_unref(old);
        return -1;
    }
    warn_restart_needed(s->cfg, n);
    old = s->cfg;
    s->cfg = cfg_ref(n); /* and ours, for the log below */
    seq = ++s->reload_seq;
    for (unsigned i = 0; i < s->nworkers; i++)
        post(&s->workers[i], n, seq, false);
    pthread_mutex_unlock(&s->cfg_mu);
    wait_taken(s, seq);
    /* The admin thread last (its /readyz says config_version), with the
     * newest: another reload may have come meanwhile. */
    now = srv_current_cfg(s);
    post(&s->admin, now, seq, false);
    cfg_unref(now);
    if (strcmp(old->version, n->version) != 0 ||
        strcmp(old->secrets_version, n->secrets_version) != 0)
        log_info("config reloaded: version %s -> %s, secrets version %s -> %s",
                 old->version, n->version, old->secrets_version, n->secrets_version);
    metrics_config_reload(true);
    auth_revoke_set_lifetime(s->revoked, (int64_t)n->revocation_max_token_lifetime_s);
    trail_reload(s, actor, request_id, old, n);
    cfg_unref(old);
    cfg_unref(n);
    return 0;
}

/* ---- main thread: signals, file watch -------------------------------------- */

/* The files whose change triggers a reload: the config and the secret
 * files it (or the environment) names.  A Kubernetes ConfigMap or Secret
 * update swaps the `..data` symlink, so stat() through the path sees a new
 * inode. */
#define SRV_WATCH_MAX 8

typedef struct watch_file {
    char *path;
    struct stat st;
    bool have; /* st is valid: the file existed at the last tick */
} watch_file_t;

typedef struct watch {
    srv_t *s;
    watch_file_t f[SRV_WATCH_MAX];
    size_t n;
} watch_t;

static bool stat_changed(const struct stat *a, const struct stat *b)
{
    return a->st_ino != b->st_ino || a->st_dev != b->st_dev || a->st_size != b->st_size ||
           a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
           a->st_mtim.tv_nsec != b->st_mtim.tv_nsec;
}

static void watch_clear(watch_t *wt)
{
    for (size_t i = 0; i < wt->n; i++)
        free(wt->f[i].path);
    wt->n = 0;
}

/* Watch `path` (NULL or "" ignored), keeping what `old` knew of it. */
static void watch_add(watch_t *wt, watch_t *old, const char *path)
{
    watch_file_t *f;

    if (path == NULL || path[0] == '\0' || wt->n == SRV_WATCH_MAX)
        return;
    for (size_t i = 0; i < wt->n; i++)
        if (strcmp(wt->f[i].path, path) == 0)
            return;
    f = &wt->f[wt->n];
    *f = (watch_file_t){.path = strdup(path)};
    if (f->path == NULL)
        return;
    wt->n++;
    for (size_t i = 0; i < old->n; i++)
        if (strcmp(old->f[i].path, path) == 0) {
            f->st = old->f[i].st;
            f->have = old->f[i].have;
            return;
        }
    /* New to the list: what it is now was just loaded, not a change. */
    f->have = stat(path, &f->st) == 0;
}

/* The watch list for the current snapshot (the file names may change on
 * reload).  REDIS_PASSWORD_FILE is not watched: a new password needs a
 * restart (the connections are built once). */
static void watch_refresh(watch_t *wt)
{
    static const char *const env_files[] = {"API_KEYS_FILE", "JWT_SECRET_FILE", "JWKS_FILE",
                                            "ADMIN_TOKEN_FILE", "ADMIN_TOKENS_FILE"};
    watch_t old = *wt;
    cfg_t *c = srv_current_cfg(wt->s);

    wt->n = 0;
    watch_add(wt, &old, wt->s->config_path);
    watch_add(wt, &old, c->auth.api_keys_file);
    watch_add(wt, &old, c->auth.jwt.keys_file);
    watch_add(wt, &old, c->admin_tokens_file);
    for (size_t i = 0; i < sizeof env_files / sizeof env_files[0]; i++)
        watch_add(wt, &old, getenv(env_files[i]));
    cfg_unref(c);
    watch_clear(&old);
}

/* Reload when a watched file changed (appeared, vanished, or now resolves to
 * another inode, size or mtime).  One reload however many files changed. */
static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
    watch_t *wt = arg;
    const char *changed = NULL;
    char err[4096];

    (void)fd;
    (void)what;
    if (atomic_load(&wt->s->ready))
        srv_backend_watch(wt->s);
    if (wt->s->config_path == NULL)
        return;
    for (size_t i = 0; i < wt->n; i++) {
        watch_file_t *f = &wt->f[i];
        struct stat st;
        bool have = stat(f->path, &st) == 0;

        if (have != f->have || (have && stat_changed(&st, &f->st)))
            changed = changed ? changed : f->path;
        f->have = have;
        if (have)
            f->st = st;
    }
    if (changed != NULL) {
        log_info("%s changed: reloading",
                 strcmp(changed, wt->s->config_path) == 0 ? "config file" : changed);
        srv_reload(wt->s, SRV_TRAIL_WATCH, NULL, err, sizeof(err));
        watch_refresh(wt);
    }
}

/* With Redis, the revocations stored there were read into memory: until
 * then a token revoked before this replica started would be accepted. */
static bool revocations_loaded(srv_t *s)
{
    return s->cfg_redis_mode == CFG_REDIS_NONE || auth_shared_synced(&s->shared);
}

/* Ready once every worker's first Redis attempt has settled, the
 * revocations are loaded and the fleet counted, or after the start grace:
 * then /readyz, tollgate_fallback and the log agree from the first answer
 * on, and the local fallback divides by the live fleet from the first. */
static void start_cb(evutil_socket_t fd, short what, void *arg)
{
    srv_t *s = arg;

    (void)fd;
    (void)what;
    if ((!srv_backend_settled(s) || !auth_jwks_settled() || !revocations_loaded(s) ||
         !srv_fleet_settled(s)) &&
        util_mono_ms() - s->start_ms < SRV_START_GRACE_MS)
        return;
    srv_backend_watch(s);
    atomic_store(&s->ready, true);
    event_del(s->start_ev);
    log_info("ready: redis %s%s%s", srv_backend_state(s),
             auth_jwks_settled() ? "" : "; a JWKS is still being fetched",
             revocations_loaded(s) ? "" : "; revocations not loaded from redis yet");
}

static void delay_done(evutil_socket_t fd, short what, void *arg)
{
    srv_t *s = arg;

    (void)fd;
    (void)what;
    log_info("shutdown delay over: draining");
    event_base_loopbreak(s->main_base);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    srv_t *s = arg;
    char err[4096];

    (void)what;
    switch (sig) {
    case SIGHUP:
        log_info("SIGHUP: reloading config");
        srv_reload(s, SRV_TRAIL_SIGNAL, NULL, err, sizeof(err));
        break;
    case SIGUSR1:
        if (s->audit != NULL && audit_reopen(s->audit) != 0)
            log_error("SIGUSR1: cannot reopen the audit log");
        break;
    default: {
        /* Kubernetes keeps routing to a terminating pod until the endpoint
         * removal has propagated: stay up, unready, for shutdown_delay.  A
         * second signal skips what is left of it. */
        cfg_t *c = srv_current_cfg(s);
        unsigned delay = c->shutdown_delay;
        struct timeval tv = {(time_t)delay, 0};
        const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";

        cfg_unref(c);
        if (atomic_exchange(&s->draining, true) || delay == 0) {
            log_info("%s: draining", name);
            event_base_loopbreak(s->main_base);
            break;
        }
        log_info("%s: not ready; answering for %us (shutdown_delay), then draining", name,
                 delay);
        s->delay_ev = evtimer_new(s->main_base, delay_done, s);
        if (s->delay_ev == NULL || evtimer_add(s->delay_ev, &tv) != 0)
            event_base_loopbreak(s->main_base);
        break;
    }
    }
}

/* ---- public ------------------------------------------------------------- */

/* The main listener (one socket per worker) and the admin listener, their
 * bound addresses in s->listen_bound and s->admin_bound; -1 with err. */
static int bind_listeners(srv_t *s, const cfg_t *cfg, char *err, size_t errlen)
{
    const char *addr = cfg->listen;
    int fd;

    /* The address must be free: SO_REUSEPORT would let a second process
     * share it (listener.c).  Port 0 is free by definition. */
    if (!srv_listen_any_port(addr) &&
        srv_listen_on(addr, SRV_LISTEN_PROBE, err, errlen) != 0)
        return -1;
    for (unsigned i = 0; i < s->nworkers; i++) {
        fd = srv_listen_on(addr, SRV_LISTEN_SHARED, err, errlen);
        if (fd >= 0 && i == 0 &&
            srv_bound_name(fd, s->listen_bound, sizeof(s->listen_bound)) != 0) {
            snprintf(err, errlen, "listen on %s: cannot read the bound address", addr);
            close(fd);
            return -1;
        }
        /* The other workers join the port the first one got. */
        addr = s->listen_bound;
        if (fd < 0 || worker_init(s, &s->workers[i], i, fd, false, err, errlen) != 0)
            return -1;
    }
    fd = srv_listen_on(cfg->admin_listen, SRV_LISTEN_EXCLUSIVE, err, errlen);
    if (fd >= 0 && srv_bound_name(fd, s->admin_bound, sizeof(s->admin_bound)) != 0) {
        snprintf(err, errlen, "listen on %s: cannot read the bound address",
                 cfg->admin_listen);
        close(fd);
        return -1;
    }
    if (fd < 0 || worker_init(s, &s->admin, s->nworkers, fd, true, err, errlen) != 0)
        return -1;
    return 0;
}

srv_t *srv_new(const char *config_path, cfg_t *cfg, unsigned threads, char *err,
               size_t errlen)
{
    srv_t *s = calloc(1, sizeof(*s));
    const char *delay = getenv("TOLLGATE_DEBUG_LIMITER_DELAY_MS");
    const char *pool = getenv("TOLLGATE_DEBUG_PROXY_MAX_CONNS");
    long ncpu;

    if (s == NULL) {
        cfg_unref(cfg);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->cfg_mu, NULL);
    pthread_mutex_init(&s->warn_mu, NULL);
    s->cfg = cfg;
    s->config_path = config_path ? strdup(config_path) : NULL;
    s->cfg_redis_mode = cfg->redis.mode;
    s->redis_prefix = strdup(cfg->redis.key_prefix); /* never NULL: it has a default */
    if (s->redis_prefix == NULL)
        goto out_nomem;
    if (cfg->redis.mode != CFG_REDIS_NONE && cfg->redis.required &&
        srv_backend_probe(cfg, SRV_REDIS_REQUIRED_WAIT_MS, err, errlen) != 0)
        goto out_free;
    s->memory = rl_memory_new(SRV_MAX_MEMORY_BUCKETS);
    s->lockout = auth_lockout_new(SRV_MAX_LOCKOUT_KEYS);
    s->revoked = auth_revoke_new(SRV_MAX_REVOCATIONS);
    s->tickets = auth_tickets_new(SRV_MAX_TICKETS);
    s->bans = auth_ban_new(cfg->auth.bans.max_entries);
    if (s->memory == NULL || s->lockout == NULL || s->revoked == NULL ||
        s->tickets == NULL || s->bans == NULL)
        goto out_nomem;
    if (delay != NULL && cfg->environment == CFG_ENV_DEVELOPMENT) {
        rl_memory_set_delay_ms(s->memory, (unsigned)atoi(delay));
        log_warn("TOLLGATE_DEBUG_LIMITER_DELAY_MS=%s: every limit decision is delayed "
                 "(testing only)",
                 delay);
    }
    if (pool != NULL && cfg->environment == CFG_ENV_DEVELOPMENT) {
        int n = atoi(pool);

        s->proxy_max_conns = n > 0 && n <= SRV_PROXY_MAX_CONNS ? (unsigned)n : 0;
        log_warn("TOLLGATE_DEBUG_PROXY_MAX_CONNS=%.32s: %u connections per upstream "
                 "and worker (testing only)",
                 pool, s->proxy_max_conns ? s->proxy_max_conns : SRV_PROXY_MAX_CONNS);
    }
    if (cfg->audit_path != NULL && strcmp(cfg->audit_path, "off") != 0) {
        s->audit = audit_open(cfg->audit_path, err, errlen);
        if (s->audit == NULL)
            goto out_free;
    }
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->nworkers = threads        ? threads
                  : cfg->threads ? cfg->threads
                                 : (unsigned)(ncpu > 0 ? ncpu : 1);
    if (s->nworkers > SRV_MAX_WORKERS)
        s->nworkers = SRV_MAX_WORKERS;
    s->workers = calloc(s->nworkers, sizeof(*s->workers));
    if (s->workers == NULL)
        goto out_nomem;
    if (bind_listeners(s, cfg, err, errlen) != 0)
        goto out_free;
    if (srv_shared_start(s, err, errlen) != 0 || srv_fleet_start(s, err, errlen) != 0 ||
        srv_top_start(s, err, errlen) != 0 || srv_trail_start(s, err, errlen) != 0)
        goto out_free;
    return s;
out_nomem:
    snprintf(err, errlen, "out of memory");
out_free:
    srv_free(s);
    return NULL;
}

int srv_run(srv_t *s)
{
    struct event *sigs[4] = {0}, *watch_ev;
    const int signums[4] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};
    struct timeval sec = {1, 0}, poll = {0, SRV_START_POLL_MS * 1000};
    watch_t wt = {.s = s};
    sigset_t block, old;
    char err[256];

    signal(SIGPIPE, SIG_IGN);
    /* Workers never see the process signals: the main thread handles them. */
    sigemptyset(&block);
    for (int i = 0; i < 4; i++)
        sigaddset(&block, signums[i]);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    if (auth_jwks_fetch_start(NULL, NULL, err, sizeof err) != 0)
        log_error("%s: providers with jwks_uri/discovery get no keys", err);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
    pthread_create(&s->admin.thread, NULL, worker_main, &s->admin);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    s->main_base = event_base_new();
    for (int i = 0; i < 4; i++) {
        sigs[i] = evsignal_new(s->main_base, signums[i], signal_cb, s);
        event_add(sigs[i], NULL);
    }
    watch_ev = event_new(s->main_base, -1, EV_PERSIST, watch_cb, &wt);
    event_add(watch_ev, &sec);
    watch_refresh(&wt);
    watch_cb(-1, 0, &wt);
    s->start_ms = util_mono_ms();
    s->start_ev = event_new(s->main_base, -1, EV_PERSIST, start_cb, s);
    if (s->start_ev == NULL || event_add(s->start_ev, &poll) != 0)
        atomic_store(&s->ready, true);
    log_info("tollgate listening on %s (%u threads), admin on %s, config version %s, "
             "secrets version %s",
             s->listen_bound, s->nworkers, s->admin_bound, s->cfg->version,
             s->cfg->secrets_version);

    event_base_dispatch(s->main_base);

    /* Drain: stop accepting, let in-flight requests finish, then stop. */
    leave_fleet(s);
    for (unsigned i = 0; i < s->nworkers; i++)
        post(&s->workers[i], NULL, 0, true);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i].thread, NULL);
    post(&s->admin, NULL, 0, true);
    pthread_join(s->admin.thread, NULL);
    auth_jwks_fetch_stop();
    for (int i = 0; i < 4; i++)
        event_free(sigs[i]);
    event_free(watch_ev);
    if (s->start_ev != NULL)
        event_free(s->start_ev);
    if (s->delay_ev != NULL)
        event_free(s->delay_ev);
    watch_clear(&wt);
    log_info("stopped");
    return 0;
}

void srv_free(srv_t *s)
{
    if (s == NULL)
        return;
    for (unsigned i = 0; s->workers != NULL && i < s->nworkers; i++)
        worker_clear(&s->workers[i]);
    free(s->workers);
    srv_fleet_stop(s); /* before the admin client it uses */
    srv_top_stop(s);   /* likewise; the workers' parts went with them */
    srv_shared_stop(s);
    srv_trail_stop(s);               /* its event is on the admin loop */
    srv_admin_explain_cancel_all(s); /* before its connections and Redis client */
    worker_clear(&s->admin);
    srv_trail_free(s); /* after the admin client ran its callbacks */
    audit_close(s->audit);
    rl_memory_free(s->memory);
    auth_lockout_free(s->lockout);
    auth_revoke_free(s->revoked);
    auth_ban_free(s->bans);
    auth_tickets_free(s->tickets);
    cfg_unref(s->cfg);
    if (s->main_base)
        event_base_free(s->main_base);
    free(s->config_path);
    free(s->redis_prefix);
    pthread_mutex_destroy(&s->cfg_mu);
    pthread_mutex_destroy(&s->warn_mu);
    free(s);
}
