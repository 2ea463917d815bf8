/* health.c — /healthz and /readyz (both listeners): what a load balancer and
 * the kubelet are told, and the JWKS gauges of /metrics.  Ready means the
 * replica can serve, degraded mode included; not ready before the first
 * Redis attempt (and the first JWKS fetches) settled and from SIGTERM on
 * (server.c sets the flags, backend.c knows Redis).
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "tollgate/auth_jwks_fetch.h"
#include "srv_process.h"

typedef struct jwks_json {
    char *out;
    size_t len, used;
    unsigned n;
} jwks_json_t;

/* "name":"ok" | "not_loaded" | "stale" | "empty" per provider. */
static void jwks_state(const auth_jwks_stats_t *st, void *arg)
{
    jwks_json_t *j = arg;
    const char *state = !st->loaded     ? "not_loaded"
                        : st->stale     ? "stale"
                        : st->keys == 0 ? "empty"
                                        : "ok";
    int n = snprintf(j->out + j->used, j->len - j->used, "%s\"%s\":\"%s\"",
                     j->n++ ? "," : "", st->name, state);

    if (n > 0 && (size_t)n < j->len - j->used)
        j->used += (size_t)n;
}

/* The /readyz answer (both listeners): 200 while the replica can serve,
 * degraded mode included (a provider whose JWKS is not loaded is reported,
 * its tokens refused, the replica still ready: API keys and the other
 * providers work); 503 before it is ready and while draining.
 * secrets_version only on the admin listener (`admin`): it is a keyed hash
 * of the secrets with a public key, so whoever reads it can test guesses of
 * a weak secret offline; the main listener may face clients (proxy mode). */
int srv_readyz(srv_t *s, const cfg_t *c, bool admin, char *body, size_t len)
{
    bool draining = atomic_load(&s->draining);
    bool ready = atomic_load(&s->ready) && !draining;
    char providers[1024] = "";
    jwks_json_t j = {providers, sizeof providers, 0, 0};

    auth_jwks_foreach(jwks_state, &j);
    snprintf(body, len,
             "{\"status\":\"%s\",\"redis\":\"%s\",\"fallback\":%s,"
             "\"config_version\":\"%s\"%s%s%s%s%s%s}",
             draining ? "draining"
             : ready  ? "ok"
                      : "starting",
             srv_backend_state(s), atomic_load(&s->degraded) ? "true" : "false", c->version,
             admin ? ",\"secrets_version\":\"" : "", admin ? c->secrets_version : "",
             admin ? "\"" : "", j.n > 0 ? ",\"jwks\":{" : "", providers,
             j.n > 0 ? "}" : "");
    return ready ? 200 : 503;
}

/* ---- /metrics: JWKS ----------------------------------------------------- */

typedef struct jwks_render {
    struct evbuffer *out;
    int pass;
} jwks_render_t;

static void jwks_line(const auth_jwks_stats_t *st, void *arg)
{
    jwks_render_t *m = arg;

    switch (m->pass) {
    case 0:
        evbuffer_add_printf(
            m->out,
            "tollgate_jwks_refresh_total{provider=\"%s\",result=\"ok\"} %llu\n"
            "tollgate_jwks_refresh_total{provider=\"%s\",result=\"fetch_error\"} "
            "%llu\n"
            "tollgate_jwks_refresh_total{provider=\"%s\",result=\"invalid\"} "
            "%llu\n",
            st->name, (unsigned long long)st->ok, st->name,
            (unsigned long long)st->fetch_error, st->name, (unsigned long long)st->invalid);
        break;
    case 1:
        evbuffer_add_printf(m->out, "tollgate_jwks_keys{provider=\"%s\"} %zu\n", st->name,
                            st->loaded && !st->stale ? st->keys : 0);
        break;
    default:
        if (st->age_s >= 0)
            evbuffer_add_printf(m->out, "tollgate_jwks_age_seconds{provider=\"%s\"} %lld\n",
                                st->name, (long long)st->age_s);
    }
}

void srv_jwks_metrics(struct evbuffer *out)
{
    static const char *const head[3] = {
        "# HELP tollgate_jwks_refresh_total JWKS fetches by provider and result.\n"
        "# TYPE tollgate_jwks_refresh_total counter\n",
        "# HELP tollgate_jwks_keys Keys in the JWKS a provider's tokens are verified "
        "with (0 when none or stale).\n"
        "# TYPE tollgate_jwks_keys gauge\n",
        "# HELP tollgate_jwks_age_seconds Seconds since the provider's JWKS was last "
        "fetched successfully.\n"
        "# TYPE tollgate_jwks_age_seconds gauge\n",
    };

    for (int pass = 0; pass < 3; pass++) {
        jwks_render_t m = {out, pass};

        evbuffer_add(out, head[pass], strlen(head[pass]));
        auth_jwks_foreach(jwks_line, &m);
    }
}
