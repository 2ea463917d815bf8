/* health.c — /healthz and /readyz (both listeners): what a load balancer and
 * the kubelet are told.  Ready means the replica can serve, degraded mode
 * included; not ready before the first Redis attempt settled and from
 * SIGTERM on (server.c sets the flags, backend.c knows Redis).
 */
#include <stdio.h>

#include "srv_process.h"

/* The /readyz answer (both listeners): 200 while the replica can serve,
 * degraded mode included; 503 before it is ready and while draining. */
int srv_readyz(srv_t *s, const cfg_t *c, char *body, size_t len)
{
    bool draining = atomic_load(&s->draining);
    bool ready = atomic_load(&s->ready) && !draining;

    snprintf(body, len,
             "{\"status\":\"%s\",\"redis\":\"%s\",\"fallback\":%s,"
             "\"config_version\":\"%s\"}",
             draining ? "draining"
             : ready  ? "ok"
                      : "starting",
             srv_backend_state(s), atomic_load(&s->degraded) ? "true" : "false",
             c->version);
    return ready ? 200 : 503;
}
