/* listener.c — the listening sockets: one per worker on the main address
 * (SO_REUSEPORT, so the kernel spreads connections over the workers), one for
 * the admin address, and what a worker's listener does when accept() fails.
 *
 * One process only: SO_REUSEPORT lets any process of the same user join the
 * group and take a share of the connections.  Before the group is bound, a
 * probe socket without SO_REUSEPORT binds the address: it fails with
 * EADDRINUSE if anything listens there already (a second tollgate included),
 * and start-up fails with that error.
 *
 * Port 0 (`listen: "127.0.0.1:0"`): the kernel picks a free port for the
 * first worker's socket (the ephemeral search skips ports any socket holds,
 * SO_REUSEPORT or not), the other workers join that port, and the probe is
 * skipped: nothing can listen on a port nobody has picked yet.  The bound
 * addresses are logged and, with --port-file, written to a file (see
 * srv_write_port_file in srv.h).
 *
 * accept() failures: libevent's listener keeps the socket readable in epoll
 * when accept() fails with EMFILE (too many open files), so without help a
 * worker spins on it and logs each failure.  Here a failure pauses that
 * worker's listener for SRV_ACCEPT_PAUSE_MS (pending connections wait in the
 * kernel's backlog, requests on open connections go on), counts it in
 * tollgate_accept_errors_total and logs at most one line per
 * SRV_ACCEPT_LOG_MS per worker with the number of failures since the last.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netdb.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "tollgate/http.h"
#include "tollgate/log.h"
#include "tollgate/metrics.h"
#include "tollgate/util_clock.h"
#include "srv_process.h"

#define SRV_ACCEPT_PAUSE_MS 100
#define SRV_ACCEPT_LOG_MS 10000

/* The error callback gets the listener's user data, which is evhttp's; the
 * worker is found here.  Written by the main thread before the workers
 * start and after they stop, read by them. */
static struct {
    struct evconnlistener *lev;
    srv_worker_t *w;
} g_guarded[SRV_MAX_WORKERS];
static size_t g_nguarded;

/* A non-blocking socket bound to `ai`, listening; SO_REUSEPORT when `shared`.
 * -1 with errno set. */
static int bind_listen(const struct addrinfo *ai, bool shared, bool listening)
{
    int fd, one = 1, e;

    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if ((shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        (listening && listen(fd, 1024) != 0)) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int srv_listen_on(const char *addr, srv_listen_t how, char *err, size_t errlen)
{
    char host[256], portstr[8];
    uint16_t port;
    struct addrinfo hints = {0}, *ai = NULL;
    int fd, rc;

    if (http_parse_hostport(addr, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "bad listen address '%s'", addr);
        return -1;
    }
    snprintf(portstr, sizeof(portstr), "%u", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "listen address '%s': %s", addr, gai_strerror(rc));
        return -1;
    }
    if (how == SRV_LISTEN_PROBE) {
        /* Not shared, not listening: only whether the address is free. */
        fd = bind_listen(ai, false, false);
        if (fd >= 0) {
            close(fd);
            fd = 0;
        }
    } else {
        fd = bind_listen(ai, how == SRV_LISTEN_SHARED, true);
    }
    if (fd < 0)
        snprintf(err, errlen, "listen on %s: %s%s", addr, strerror(errno),
                 errno == EADDRINUSE ? " (another process, perhaps another tollgate, "
                                       "listens there)"
                                     : "");
    freeaddrinfo(ai);
    return fd;
}

bool srv_listen_any_port(const char *addr)
{
    char host[256];
    uint16_t port;

    return http_parse_hostport(addr, host, sizeof(host), &port) == 0 && port == 0;
}

int srv_bound_name(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    int n;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return -1;
    n = snprintf(out, outlen, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* Write all of `buf` to `fd`; -1 with errno set. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int srv_write_port_file(const srv_t *s, const char *path, char *err, size_t errlen)
{
    char tmp[4096], body[2 * SRV_ADDR_STRLEN + 64];
    int fd, n, e;

    n = snprintf(body, sizeof(body), "{\"listen\":\"%s\",\"admin\":\"%s\"}\n",
                 s->listen_bound, s->admin_bound);
    if (n <= 0 || (size_t)n >= sizeof(body) ||
        snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "--port-file: path too long");
        return -1;
    }
    /* A temp file beside it, renamed over it: a reader sees the old file,
     * no file, or the whole new one, never a part. */
    fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "--port-file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0644) != 0 || write_all(fd, body, (size_t)n) != 0 || fsync(fd) != 0) {
        e = errno;
        close(fd);
        unlink(tmp);
        snprintf(err, errlen, "--port-file %s: %s", path, strerror(e));
        return -1;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        snprintf(err, errlen, "--port-file %s: %s", path, strerror(e));
        return -1;
    }
    return 0;
}

static const char *accept_error_name(int e)
{
    switch (e) {
    case EMFILE:
        return "emfile";
    case ENFILE:
        return "enfile";
    case ENOBUFS:
    case ENOMEM:
        return "nomem";
    default:
        return "other";
    }
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
    srv_worker_t *w = arg;

    (void)fd;
    (void)what;
    if (w->bound != NULL) /* NULL: stopped accepting (drain) meanwhile */
        evconnlistener_enable(evhttp_bound_socket_get_listener(w->bound));
}

static void accept_error(struct evconnlistener *lev, void *arg)
{
    srv_worker_t *w = NULL;
    int e = EVUTIL_SOCKET_ERROR();
    uint64_t now = util_mono_ms();
    struct timeval tv = {0, SRV_ACCEPT_PAUSE_MS * 1000};

    (void)arg; /* evhttp's */
    for (size_t i = 0; i < g_nguarded && w == NULL; i++)
        if (g_guarded[i].lev == lev)
            w = g_guarded[i].w;
    if (w == NULL) {
        evconnlistener_disable(lev); /* cannot happen; never spin */
        return;
    }
    metrics_accept_error(w->metrics, accept_error_name(e));
    w->accept_failures++;
    if (w->accept_logged_ms == 0 || now - w->accept_logged_ms >= SRV_ACCEPT_LOG_MS) {
        log_error("worker %u: accept: %s (%llu failures since the last report): pausing "
                  "the listener %d ms at a time",
                  w->index, strerror(e), (unsigned long long)w->accept_failures,
                  SRV_ACCEPT_PAUSE_MS);
        w->accept_logged_ms = now;
        w->accept_failures = 0;
    }
    evconnlistener_disable(lev);
    if (w->accept_ev != NULL)
        event_add(w->accept_ev, &tv);
}

int srv_listener_guard(srv_worker_t *w)
{
    struct evconnlistener *lev = evhttp_bound_socket_get_listener(w->bound);

    w->accept_ev = evtimer_new(w->base, accept_resume, w);
    if (lev == NULL || w->accept_ev == NULL || g_nguarded == SRV_MAX_WORKERS)
        return -1;
    g_guarded[g_nguarded].lev = lev;
    g_guarded[g_nguarded++].w = w;
    evconnlistener_set_error_cb(lev, accept_error);
    return 0;
}

void srv_listener_unguard(srv_worker_t *w)
{
    for (size_t i = 0; i < g_nguarded; i++)
        if (g_guarded[i].w == w) {
            g_guarded[i] = g_guarded[--g_nguarded];
            break;
        }
    if (w->accept_ev != NULL)
        event_free(w->accept_ev);
    w->accept_ev = NULL;
}
