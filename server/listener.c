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
 * accept() failures: libevent's listener keeps the socket readable in epoll
 * when accept() fails with EMFILE (too many open files), so without help a
 * worker spins on it and logs each failure.  Here a failure pauses that
 * worker's listener for SRV_ACCEPT_PAUSE_MS (pending connections wait in the
 * kernel's backlog, requests on open connections go on), counts it in
 * tollgate_accept_errors_total and logs at most one line per
 * SRV_ACCEPT_LOG_MS per worker with the number of failures since the last.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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
