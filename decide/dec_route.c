/* dec_route.c — step 3: the route (forward-auth: default_route when none
 * matches), the methods served, the path ambiguities the route allows, CORS.
 */
#include <string.h>

#include "dec_internal.h"

/* The first route that matches; a route with other_methods: deny also stops
 * the search for a request on its paths with another method (*denied:
 * answer 405 rather than let a later route decide it). */
static const cfg_route_t *match_route(const dec_req_t *r, bool *denied)
{
    const cfg_t *c = r->cfg;

    *denied = false;
    if (r->mode == DEC_MODE_TICKET)
        return &c->tickets.route;
    for (size_t i = 0; i < c->nroutes; i++) {
        const cfg_route_t *rt = &c->routes[i];

        if (r->mode == DEC_MODE_PROXY && rt->upstream == NULL)
            continue;
        if (rl_match_request(&rt->match, r->method_bit, r->path, r->host))
            return rt;
        if (rt->other_methods_deny && rl_match_target(&rt->match, r->path, r->host)) {
            *denied = true;
            return rt;
        }
    }
    return r->mode == DEC_MODE_PROXY ? NULL : &c->default_route;
}

/* The methods served here: allowed_methods; proxy mode never forwards TRACE. */
unsigned dec_methods_served(const dec_req_t *r)
{
    unsigned m = r->cfg->allowed_methods;

    return r->mode == DEC_MODE_PROXY ? m & ~(unsigned)RL_METHOD_TRACE : m;
}

/* 405 with Allow: `allow`.  The nginx dialect answers 403 (nginx turns any
 * other status of an auth subrequest into a 500); the body says why. */
dec_step_t dec_refuse_method(dec_req_t *r, unsigned allow)
{
    char list[DEC_VERDICT_VAL];

    rl_method_list(allow, list, sizeof list);
    dec_verdict_header(r, "Allow", list, true);
    r->v.reason = "method_not_allowed";
    return dec_verdict(r, r->mode == DEC_MODE_FWD_NGINX ? 403 : 405, "method_not_allowed",
                       "method not allowed");
}

/* Double encoding and ';' path parameters, unless the matched route allows
 * them (no route: refused too, not a 404 that hides why). */
static bool path_refused(const dec_req_t *r)
{
    const cfg_route_t *rt = r->route;

    return ((r->path_flags & HTTP_PATH_PCT25) && !(rt && rt->allow_encoded_percent)) ||
           ((r->path_flags & HTTP_PATH_SEMICOLON) && !(rt && rt->allow_semicolon));
}

/* OPTIONS with Origin and Access-Control-Request-Method. */
static bool is_preflight(const dec_req_t *r)
{
    return strcmp(r->method, "OPTIONS") == 0 && r->h.origin != NULL && r->h.acrm != NULL;
}

/* CORS: remember an allowed Origin; answer a proxy-mode preflight. */
static dec_step_t cors(dec_req_t *r)
{
    const char *origin = r->h.origin, *acrh = r->h.acrh;
    char list[DEC_VERDICT_VAL];

    if (origin != NULL &&
        http_cors_origin_allowed(origin, r->cfg->cors_origins.v, r->cfg->cors_origins.n))
        r->origin = origin;
    if (!is_preflight(r))
        return DEC_NEXT;
    if (r->origin == NULL) {
        r->v.reason = "cors_origin";
        return dec_verdict(r, 403, "forbidden", "origin not allowed");
    }
    /* Forward-auth: a 2xx lets the ingress forward this OPTIONS request to
     * the upstream, which may serve it like any method: it is decided like
     * any request.  The ingress answers preflights itself. */
    if (r->mode != DEC_MODE_PROXY)
        return DEC_NEXT;
    rl_method_list(r->route_method_denied ? r->route->match.methods & dec_methods_served(r)
                                          : dec_methods_served(r),
                   list, sizeof list);
    dec_verdict_header(r, "Access-Control-Allow-Methods", list, true);
    dec_verdict_header(r, "Access-Control-Allow-Headers",
                       acrh != NULL && strlen(acrh) < 512 && !strpbrk(acrh, "\r\n")
                           ? acrh
                           : "Authorization, Content-Type, X-API-Key, X-Request-ID",
                       false); /* borrowed: the input outlives the verdict */
    dec_verdict_header(r, "Access-Control-Max-Age", "600", false);
    r->v.reason = "preflight";
    r->v.decision = "allow";
    return dec_verdict_body(r, 204, NULL);
}

dec_step_t dec_step_route(dec_req_t *r)
{
    if ((r->method_bit & dec_methods_served(r)) == 0)
        return dec_refuse_method(r, dec_methods_served(r)); /* before any route decides */
    r->route = match_route(r, &r->route_method_denied);
    if (r->in.explain != NULL && r->route != NULL) {
        r->in.explain->routed = true;
        r->in.explain->route = r->route;
    }
    if (path_refused(r)) {
        r->v.reason = "bad_path";
        return dec_verdict(r, 400, "bad_request",
                           "ambiguous request path (%25 escape or ';')");
    }
    /* a proxy-mode preflight is tollgate's to answer (cors), never forwarded */
    if (r->route_method_denied && !(r->mode == DEC_MODE_PROXY && is_preflight(r)))
        return dec_refuse_method(r, r->route->match.methods & dec_methods_served(r));
    if (r->route == NULL) {
        r->v.reason = "no_route";
        return dec_verdict(r, 404, "not_found", "no route");
    }
    return cors(r);
}
