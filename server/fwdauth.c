/* fwdauth.c — what the server does with the decision's observations about
 * forward-auth peers (docs/forward-auth.md): warnings and a metric.  Reading
 * the dialects is the decision's (decide/dec_fwd.c).
 */
#include <stdio.h>
#include <string.h>

#include "tollgate/log.h"
#include "tollgate/metrics.h"
#include "tollgate/util_clock.h"
#include "srv_req.h"

void srv_fwdauth_untrusted(srv_worker_t *w, const char *peer)
{
    srv_t *s = w->srv;
    bool warn = true;

    pthread_mutex_lock(&s->warn_mu);
    for (unsigned i = 0; i < s->nwarned && warn; i++)
        if (strcmp(s->warned[i], peer) == 0)
            warn = false;
    if (warn && s->nwarned < sizeof(s->warned) / sizeof(s->warned[0]))
        snprintf(s->warned[s->nwarned++], HTTP_IP_STRLEN, "%s", peer);
    pthread_mutex_unlock(&s->warn_mu);
    if (warn)
        log_warn("forward-auth: dialect headers from %s, which is not in trusted_proxies: "
                 "refused with 403",
                 peer);
}

void srv_fwdauth_repeat(srv_worker_t *w, const char *dialect, const char *name,
                        const char *peer)
{
    uint64_t held = 0;

    metrics_forwarded_repeat(w->metrics, dialect);
    if (!log_ratelimit_take(&w->srv->repeat_log, util_mono_ms(), SRV_REPEAT_LOG_MS, &held))
        return;
    if (strcmp(dialect, "traefik") == 0)
        log_warn("forward-auth: %s came twice from %s: refused (400 duplicate_header). "
                 "Traefik with trustForwardHeader on, behind a proxy that passes the "
                 "client's own X-Forwarded-* headers on looks like this; set it to false "
                 "(%llu more such requests since the last line)",
                 name, peer, (unsigned long long)held);
    else
        log_warn(
            "forward-auth: %s came twice from %s: refused (400 duplicate_header); "
            "the proxy in front passes a client's own copy on (%llu more such requests "
            "since the last line)",
            name, peer, (unsigned long long)held);
}
