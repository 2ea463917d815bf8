"""Forward-auth decides the path the upstream executes, or refuses (issue 19 §2).

Before: the own target was normalized before it was matched, so in the
Envoy form "/auth/admin/secret/../../../readyz" and "/auth/../healthz"
reached the health endpoint, whose 200 Envoy takes for "allow"; and the
original path was authorized after resolving "..", while nginx and Traefik
forward it raw ("/orders/admin/../public/x" was decided as "/public/x", an
`auth: none` route).  Now the forward-auth prefix is matched on the raw
target, and a dot segment (".", "..", raw or %2E-encoded) in the path to
authorize is a 400 in every dialect.
"""
import uuid

from harness import (TollgateCase, Tollgate, UpstreamCase, _finish, api_key, nginx_headers,
                     raw_request, raw_status, standard_config, traefik_headers)

DOTTED = [
    "/orders/admin/../public/x",
    "/orders/admin/%2e%2e/public/x",
    "/orders/admin/%2E%2e/public/x",
    "/orders/admin/.%2e/public/x",
    "/public/./x",
    "/public/%2e/x",
    "/orders/1/..",
    "/orders/1/.",
]


class DotSegments(TollgateCase):
    @staticmethod
    def configure(cfg):
        standard_config(cfg)

    def test_envoy_form_never_reaches_own_endpoints(self):
        for target in ("/auth/admin/secret/../../../readyz", "/auth/../healthz",
                       "/auth/%2e%2e/healthz", "/auth/orders/../../readyz",
                       "/auth/public/../../healthz?x=1"):
            resp = raw_request(self.tg.port, ("GET %s HTTP/1.1\r\nHost: t\r\n"
                                              "Connection: close\r\n\r\n" % target).encode())
            self.assertEqual(raw_status(resp), 400, (target, resp[:300]))
            self.assertIn(b"bad_request", resp)

    def test_envoy_form_dot_segments(self):
        for path in DOTTED:
            r = self.tg.get("/auth" + path, api_key("bob"))
            self.assertEnvelope(r, 400, "bad_request")

    def test_nginx_dialect_dot_segments(self):
        for path in DOTTED:
            r = self.tg.get("/auth", {**api_key("bob"), **nginx_headers(path, url=False)})
            self.assertEnvelope(r, 400, "bad_request")
            r = self.tg.get("/auth", {**api_key("bob"), **nginx_headers(path)})
            self.assertEnvelope(r, 400, "bad_request")

    def test_traefik_dialect_dot_segments(self):
        for path in DOTTED:
            r = self.tg.get("/auth", {**api_key("bob"), **traefik_headers(path)})
            self.assertEnvelope(r, 400, "bad_request")

    def test_nginx_url_with_userinfo_refused(self):
        """X-Original-URL is a URL: userinfo in it ("https://alice:hunter2@host/")
        would be taken for the host — matched as host "alice" and written
        into the audit line's `host`, password and all.  It is a 400, and
        the password is in no line."""
        for host in ("alice:hunter2@app.example.com", "hunter2@app.example.com"):
            h = {**api_key("bob"), **nginx_headers("/orders/1", host=host)}
            r = self.tg.get("/auth", h)
            self.assertEnvelope(r, 400, "bad_request")
            rec = self.tg.audit_for(r.header("X-Request-ID"))
            self.assertNotIn("hunter2", rec.get("host") or "")
        self.assertNotIn(b"hunter2", self.tg.audit_raw())

    def test_without_dots_decided_as_before(self):
        # bob lacks orders:write: the admin route refuses him, public is open
        self.assertEqual(self.tg.get("/auth/orders/admin/x", api_key("bob")).status, 403)
        self.assertEqual(self.tg.get("/auth/public/x").status, 200)
        self.assertEqual(self.tg.get("/auth/orders/1", api_key("bob")).status, 200)
        self.assertEqual(self.tg.get("/auth", {**api_key("bob"),
                                               **nginx_headers("/orders/1")}).status, 200)
        # dots inside a segment name are no dot segments
        self.assertEqual(self.tg.get("/auth/public/a..b/.well-known/x").status, 200)
        # the health endpoints are where they were
        self.assertEqual(self.tg.get("/healthz").status, 200)

    def test_prefix_reached_by_climbing_is_refused(self):
        resp = raw_request(self.tg.port, b"GET /x/../auth/public/y HTTP/1.1\r\nHost: t\r\n"
                           b"Connection: close\r\n\r\n")
        self.assertEqual(raw_status(resp), 400, resp[:300])


OVERRIDES = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
             "x-http-method-override", "X_HTTP_Method_Override", "X.Method.Override"]


class MethodOverride(TollgateCase):
    """POST + X-HTTP-Method-Override: DELETE is executed as DELETE by Rails
    (Rack::MethodOverride), Symfony and Laravel: it must not be decided as a
    POST.  Forward-auth refuses it; proxy mode drops the header."""

    @staticmethod
    def configure(cfg):
        standard_config(cfg)

    def test_forward_auth_refuses_overrides(self):
        for name in OVERRIDES:
            hdr = {name: "DELETE", **api_key("alice")}
            for path, extra in (("/auth/orders/1", {}),
                                ("/auth", nginx_headers("/orders/1", method="POST")),
                                ("/auth", traefik_headers("/orders/1", method="POST"))):
                r = self.tg.req("POST", path, {**hdr, **extra})
                self.assertEnvelope(r, 400, "bad_request")
        rec = self.tg.audit_for(r.header("X-Request-ID"))
        self.assertEqual(rec["reason"], "method_override", rec)

    def test_method_query_parameter(self):
        """Symfony (httpMethodParameterOverride, on in Laravel) and Express's
        method-override read _method from the query of a POST."""
        for q in ("_method=DELETE", "_METHOD=delete", "%5Fmethod=DELETE", "a=1&_method=DELETE",
                  "a=1;_method=DELETE", ".method=DELETE", "_method[]=DELETE", "+_method=DELETE"):
            for path, extra in (("/auth/orders/1?" + q, {}),
                                ("/auth", nginx_headers("/orders/1?" + q, method="POST"))):
                r = self.tg.req("POST", path, {**api_key("alice"), **extra})
                self.assertEnvelope(r, 400, "bad_request")
        for q in ("x_method=DELETE", "method=DELETE", "a=_method"):
            r = self.tg.req("POST", "/auth/orders/1?" + q, api_key("alice"))
            self.assertEqual(r.status, 200, (q, r))

    def test_method_spelling(self):
        """Methods are case-sensitive; a lower- or mixed-case one is refused
        rather than decided as an unknown method no rule matches."""
        for m in ("delete", "Delete", "dElEtE", "GET;", "G ET"):
            r = self.tg.get("/auth", {**api_key("alice"), **traefik_headers("/orders/1", method=m)})
            self.assertEnvelope(r, 400, "bad_request")
        r = self.tg.get("/auth", {**api_key("alice"), **traefik_headers("/orders/1",
                                                                        method="DELETE")})
        self.assertEqual(r.status, 200, r)


PREFLIGHT = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "DELETE"}


class Preflight(TollgateCase):
    """A CORS preflight in forward-auth is decided like any request: its 2xx
    would let the ingress forward an OPTIONS request (with any body) to an
    upstream that may serve OPTIONS like any method.  Before: 200 for every
    preflight from an allowed origin, without credential, scope or limit."""

    @staticmethod
    def configure(cfg):
        standard_config(cfg)

    def test_preflight_needs_what_the_route_needs(self):
        for path, extra in (("/auth/orders/admin/x", {}),
                            ("/auth", nginx_headers("/orders/admin/x", method="OPTIONS")),
                            ("/auth", traefik_headers("/orders/admin/x", method="OPTIONS"))):
            r = self.tg.req("OPTIONS", path, {**PREFLIGHT, **extra}, body=b"x=1")
            self.assertEnvelope(r, 401, "unauthorized")
            # bob has no orders:write
            r = self.tg.req("OPTIONS", path, {**PREFLIGHT, **extra, **api_key("bob")})
            self.assertEnvelope(r, 403, "forbidden")
            r = self.tg.req("OPTIONS", path, {**PREFLIGHT, **extra, **api_key("alice")})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("X-Auth-Client-Id"), "alice")

    def test_anonymous_route_preflight_is_an_anonymous_allow(self):
        r = self.tg.req("OPTIONS", "/auth/public/x", PREFLIGHT)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Auth-Client-Id"), "")  # the empty identity headers

    def test_origin_not_allowed_still_refused(self):
        r = self.tg.req("OPTIONS", "/auth/public/x", {**PREFLIGHT, "Origin": "https://evil.example"})
        self.assertEnvelope(r, 403, "forbidden")


class ProxyDropsOverrides(UpstreamCase):
    prefix = "/open/"

    def test_override_headers_never_reach_the_upstream(self):
        hdrs = {name: "DELETE" for name in OVERRIDES[:3]}
        hdrs["X_HTTP_Method_Override"] = "DELETE"
        r = self.tg.req("POST", "/open/x", hdrs, body=b"{}")
        self.assertEqual(r.status, 200, r)
        sent = [k.lower().replace("_", "-") for k, _ in self.up.last()["headers"]]
        for name in ("x-http-method-override", "x-http-method", "x-method-override"):
            self.assertNotIn(name, sent)
        self.assertEqual(self.up.last()["method"], "POST")

    def test_method_query_parameter_refused(self):
        n = len(self.up.requests)
        r = self.tg.req("POST", "/open/x?_method=DELETE", body=b"{}")
        self.assertEnvelope(r, 400, "bad_request")
        self.assertEqual(len(self.up.requests), n)


def slash_config(distinct=False):
    def configure(cfg):
        standard_config(cfg)
        cfg["routes"] = [
            {"name": "admin", "match": {"path": "/p/admin"}, "auth": "required",
             "scopes": ["orders:write"]},
            {"name": "p", "match": {"path_prefix": "/p/"}, "auth": "none"},
        ]
        cfg["limits"].append({"name": "one", "match": {"path": "/p/limited"},
                              "by": ["ip"], "rate": "1/minute"})
        if distinct:
            cfg["trailing_slash"] = "distinct"
    return configure


class TrailingSlash(TollgateCase):
    """An exact path covers its trailing-slash twin (Express, Rails, Spring 5
    and ASP.NET Core serve /admin/ as /admin).  Before: /p/admin/ and
    /p/admin// reached the weaker route, and /p/limited/ escaped the limit."""
    configure = staticmethod(slash_config())

    def test_twin_takes_the_exact_route(self):
        for path in ("/p/admin", "/p/admin/"):
            self.assertEnvelope(self.tg.get("/auth" + path), 401, "unauthorized")
            self.assertEnvelope(self.tg.get("/auth" + path, api_key("bob")), 403, "forbidden")
            self.assertEqual(self.tg.get("/auth" + path, api_key("alice")).status, 200)
            r = self.tg.get("/auth", nginx_headers(path))
            self.assertEnvelope(r, 401, "unauthorized")

    def test_empty_and_dot_segments_refused(self):
        for path in ("/p/admin//", "/p//admin", "/p/admin/.", "//p/admin"):
            self.assertEnvelope(self.tg.get("/auth" + path), 400, "bad_request")
            self.assertEnvelope(self.tg.get("/auth", traefik_headers(path)), 400, "bad_request")

    def test_limit_covers_the_twin(self):
        self.assertEqual(self.tg.get("/auth/p/limited").status, 200)
        self.assertEqual(self.tg.get("/auth/p/limited/").status, 429)

    def test_suffix_is_another_path(self):
        """Spring's suffix pattern matching (off by default since 5.3) would
        serve /p/admin.json as /p/admin: docs/security.md says what to do."""
        self.assertEqual(self.tg.get("/auth/p/admin.json").status, 200)


class TrailingSlashDistinct(TollgateCase):
    configure = staticmethod(slash_config(distinct=True))

    def test_distinct_keeps_them_apart(self):
        self.assertEnvelope(self.tg.get("/auth/p/admin"), 401, "unauthorized")
        self.assertEqual(self.tg.get("/auth/p/admin/").status, 200)
        self.assertEqual(self.tg.admin("GET", "/admin/v1/config").json()["trailing_slash"],
                         "distinct")


def ingress_nginx_auth_method_get(uri, host="shop.example.com"):
    """The header set ingress-nginx's nginx.tmpl sends to auth-url with
    auth-method: GET (every one set by proxy_set_header, so a client's own
    copies are replaced): Host is the auth service's."""
    return {"Host": "tollgate.tollgate.svc.cluster.local",
            "X-Original-URL": "https://%s%s" % (host, uri), "X-Original-URI": uri,
            "X-Original-Method": "GET", "X-Scheme": "https",
            "X-Sent-From": "nginx-ingress-controller", "X-Real-IP": "203.0.113.9",
            "X-Forwarded-For": "203.0.113.9", "X-Request-ID": uuid.uuid4().hex,
            "X-Auth-Request-Redirect": uri}


class IngressNginxAuthMethod(TollgateCase):
    """With the documented auth-method: GET, ingress-nginx sends X-Original-URL
    and X-Original-URI and sets Host to tollgate's: pinned to `nginx`, every
    request was 400 dialect_conflict, which nginx turns into 500 for every
    protected route.  `dialect: ingress-nginx` decides on X-Original-URL."""
    shared_server = False

    @classmethod
    def setUpClass(cls):
        def pinned(dialect):
            def configure(cfg):
                standard_config(cfg)
                cfg["forward_auth"] = {"dialect": dialect}
            return configure
        cls.ingress = Tollgate(pinned("ingress-nginx"))
        cls.addClassCleanup(_finish, cls.ingress)
        cls.nginx = Tollgate(pinned("nginx"))
        cls.addClassCleanup(_finish, cls.nginx)

    def test_the_real_header_set_is_decided(self):
        tg = self.ingress
        h = ingress_nginx_auth_method_get("/orders/1?x=1")
        self.assertEnvelope(tg.get("/auth", h), 401, "unauthorized")
        r = tg.get("/auth", {**h, **api_key("bob")})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Auth-Client-Id"), "bob")
        r = tg.get("/auth", {**ingress_nginx_auth_method_get("/orders/admin/x"), **api_key("bob")})
        self.assertEnvelope(r, 403, "forbidden")
        # without auth-method: X-Original-URL alone
        h = ingress_nginx_auth_method_get("/orders/1")
        del h["X-Original-URI"]
        self.assertEqual(tg.get("/auth", {**h, **api_key("bob")}).status, 200)

    def test_disagreeing_or_missing_url_refused(self):
        h = ingress_nginx_auth_method_get("/orders/1")
        h["X-Original-URI"] = "/public/1"
        self.assertEnvelope(self.ingress.get("/auth", {**h, **api_key("bob")}), 400,
                            "bad_request")
        h = ingress_nginx_auth_method_get("/public/1")
        del h["X-Original-URL"]
        self.assertEnvelope(self.ingress.get("/auth", h), 400, "bad_request")
        # a client's X-Forwarded-* never count
        h = {**ingress_nginx_auth_method_get("/orders/admin/x"), **api_key("bob"),
             "X-Forwarded-Uri": "/public/x"}
        self.assertEnvelope(self.ingress.get("/auth", h), 403, "forbidden")

    def test_original_host_must_match_the_url(self):
        """ingress-nginx routes `GET http://admin.example/x` + `Host:
        shop.example.com` to admin.example's backend but builds X-Original-URL
        from Host: with X-Original-Host: $host set by the controller
        (auth-proxy-set-headers), a disagreement is refused."""
        h = {**ingress_nginx_auth_method_get("/orders/1"), **api_key("bob")}
        h["X-Original-Host"] = "admin.example"
        r = self.ingress.get("/auth", h)
        self.assertEnvelope(r, 400, "bad_request")
        self.assertEqual(self.ingress.audit_for(r.header("X-Request-ID"))["reason"],
                         "host_mismatch")
        for same in ("shop.example.com", "SHOP.example.com", "shop.example.com:443"):
            h["X-Original-Host"] = same
            self.assertEqual(self.ingress.get("/auth", h).status, 200, same)

    def test_plain_nginx_pin_still_compares_the_host(self):
        """`nginx` is for a plain nginx, which passes a client's X-Original-URL
        on: a URL whose host is not Host's stays a conflict there."""
        h = {**ingress_nginx_auth_method_get("/orders/1"), **api_key("bob")}
        self.assertEnvelope(self.nginx.get("/auth", h), 400, "bad_request")
        h["Host"] = "shop.example.com"
        self.assertEqual(self.nginx.get("/auth", h).status, 200)


class TraefikDocs(TollgateCase):
    """trustForwardHeader: true lets a client's own X-Forwarded-Uri reach
    tollgate (behind an ALB or GCLB that keep it): no doc may suggest it."""
    shared_server = False

    def test_no_doc_sets_trust_forward_header(self):
        import glob
        import os
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        files = glob.glob(os.path.join(root, "docs", "*.md")) + \
            glob.glob(os.path.join(root, "helm", "tollgate", "templates", "*")) + \
            [os.path.join(root, "README.md")]
        for f in files:
            with open(f) as fh:
                self.assertNotIn("trustForwardHeader: true", fh.read(), f)


if __name__ == "__main__":
    import unittest
    unittest.main()
