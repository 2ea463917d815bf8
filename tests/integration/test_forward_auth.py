"""Forward-auth in the three dialects (docs/forward-auth.md): ingress-nginx / nginx
auth_request, Traefik ForwardAuth, Envoy ext_authz HTTP; trust of dialect
headers; routes matched on the original request; default_route."""
from harness import (TollgateCase, api_key, key_of, nginx_headers, raw_request, raw_status,
                     standard_config, traefik_headers, unique)


def with_key(h, client, bucket=None):
    h = dict(h)
    h.update(api_key(client))
    if bucket:
        h["X-Test-Bucket"] = bucket
    return h


class Dialects(TollgateCase):
    configure = staticmethod(standard_config)

    def audit_of(self, r):
        return self.tg.audit_for(r.header("X-Request-ID"))

    # ---- ingress-nginx
    def test_nginx_allow_uses_original_request(self):
        r = self.tg.get("/auth", with_key(nginx_headers("/orders/7?x=1", "POST"), "bob"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Auth-Client-Id"), "bob")
        rec = self.audit_of(r)
        self.assertEqual(rec["method"], "POST")
        self.assertEqual(rec["path"], "/orders/7?x=1")
        self.assertEqual(rec["ip"], "203.0.113.7")

    def test_nginx_client_ip_from_x_real_ip_alone(self):
        """A plain nginx auth_request config often sends only X-Real-IP."""
        h = dict(nginx_headers("/orders/1", url=False), **api_key("bob"))
        del h["X-Forwarded-For"]
        h["X-Real-IP"] = "198.51.100.44"
        h["X-Request-ID"] = unique("realip")
        self.assertEqual(self.tg.get("/auth", h).status, 200)
        self.assertEqual(self.tg.audit_for(h["X-Request-ID"])["ip"], "198.51.100.44")

    def test_nginx_original_uri_variant(self):
        h = with_key(nginx_headers("/orders/admin/x", "DELETE", url=False, sent_from=False), "bob")
        r = self.tg.get("/auth", h)
        self.assertEnvelope(r, 403, "forbidden")
        rec = self.audit_of(r)
        self.assertEqual(rec["method"], "DELETE")
        self.assertEqual(rec["path"], "/orders/admin/x")

    def test_nginx_rate_limit_becomes_403(self):
        h = with_key(nginx_headers("/limited/a"), "bob", unique("n"))
        for _ in range(3):
            self.assertEqual(self.tg.get("/auth", h).status, 200)
        r = self.tg.get("/auth", h)
        self.assertEnvelope(r, 403, "rate_limited")
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)
        self.assertEqual(r.header("X-RateLimit-Limit"), "3")
        self.assertEqual(r.header("X-RateLimit-Remaining"), "0")
        self.assertTrue(r.header("X-RateLimit-Reset"))

    def test_nginx_plain_auth_request_rate_limit_is_403_too(self):
        """Plain nginx auth_request also understands only 2xx/401/403."""
        h = with_key(nginx_headers("/limited/b", url=False, sent_from=False), "bob", unique("n"))
        for _ in range(3):
            self.assertEqual(self.tg.get("/auth", h).status, 200)
        r = self.tg.get("/auth", h)
        self.assertEnvelope(r, 403, "rate_limited")

    # ---- Traefik
    def test_traefik_allow_uses_original_request(self):
        r = self.tg.get("/auth", with_key(traefik_headers("/orders/9?y=2", "PUT"), "alice"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Auth-Client-Id"), "alice")
        rec = self.audit_of(r)
        self.assertEqual(rec["method"], "PUT")
        self.assertEqual(rec["path"], "/orders/9?y=2")

    def test_traefik_rate_limit_is_429(self):
        h = with_key(traefik_headers("/limited/c"), "bob", unique("t"))
        for _ in range(3):
            self.assertEqual(self.tg.get("/auth", h).status, 200)
        r = self.tg.get("/auth", h)
        self.assertEnvelope(r, 429, "rate_limited")
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)

    def test_traefik_route_scopes_apply(self):
        r = self.tg.get("/auth", with_key(traefik_headers("/orders/admin/x"), "bob"))
        self.assertEnvelope(r, 403, "forbidden")

    # ---- Envoy
    def test_envoy_path_after_prefix_and_own_method(self):
        r = self.tg.req("PATCH", "/auth/orders/3?z=1", with_key({}, "bob"))
        self.assertEqual(r.status, 200, r)
        rec = self.audit_of(r)
        self.assertEqual(rec["method"], "PATCH")
        self.assertEqual(rec["path"], "/orders/3?z=1")

    def test_envoy_rate_limit_is_429(self):
        h = with_key({}, "bob", unique("e"))
        for _ in range(3):
            self.assertEqual(self.tg.get("/auth/limited/d", h).status, 200)
        r = self.tg.get("/auth/limited/d", h)
        self.assertEnvelope(r, 429, "rate_limited")

    def test_envoy_route_scopes_apply(self):
        self.assertEnvelope(self.tg.get("/auth/orders/admin/1", api_key("bob")), 403, "forbidden")
        self.assertEqual(self.tg.get("/auth/orders/admin/1", api_key("alice")).status, 200)

    def test_bare_auth_is_root(self):
        r = self.tg.get("/auth", api_key("bob"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.audit_of(r)["path"], "/")

    # ---- routes on the original path, default_route
    def test_original_path_not_auth_path_decides_route(self):
        """The route of /orders/admin applies although the request is for /auth."""
        for h in (nginx_headers("/orders/admin/x"), traefik_headers("/orders/admin/x")):
            self.assertEnvelope(self.tg.get("/auth", with_key(h, "bob")), 403, "forbidden")
            self.assertEqual(self.tg.get("/auth", with_key(h, "alice")).status, 200)

    def test_original_path_is_normalized_before_matching(self):
        # dot and empty segments are refused outright (the upstream gets the
        # raw path: test_fwd_paths.py)
        h = with_key(nginx_headers("/public/../orders/admin/x"), "bob")
        self.assertEnvelope(self.tg.get("/auth", h), 400, "bad_request")
        h = with_key(traefik_headers("/orders//admin/./x"), "bob")
        self.assertEnvelope(self.tg.get("/auth", h), 400, "bad_request")
        h = with_key(traefik_headers("/orders//admin//x"), "bob")
        self.assertEnvelope(self.tg.get("/auth", h), 400, "bad_request")
        h = with_key(traefik_headers("/orders/admin/x"), "bob")
        self.assertEnvelope(self.tg.get("/auth", h), 403, "forbidden")
        h = with_key(nginx_headers("/orders/%2F../admin"), "alice")
        self.assertEnvelope(self.tg.get("/auth", h), 400, "bad_request")

    def test_default_route_requires_auth(self):
        for h in (nginx_headers("/unrouted/x"), traefik_headers("/unrouted/x"), {}):
            path = "/auth" if h else "/auth/unrouted/x"
            self.assertEnvelope(self.tg.get(path, h), 401, "unauthorized")
            r = self.tg.get(path, with_key(h, "carol"))
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("X-Auth-Client-Id"), "carol")

    def test_public_route_needs_no_key(self):
        self.assertEqual(self.tg.get("/auth", nginx_headers("/public/a")).status, 200)
        self.assertEqual(self.tg.get("/auth", traefik_headers("/public/a")).status, 200)

    def test_forged_auth_headers_stripped(self):
        h = with_key(nginx_headers("/maybe/x"), "bob")
        h["X-Auth-Client-Id"] = "admin"
        h["X-Auth-Scopes"] = "everything"
        r = self.tg.get("/auth", h)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get_all("X-Auth-Client-Id"), ["bob"])
        self.assertNotIn("everything", r.header("X-Auth-Scopes", ""))
        h = nginx_headers("/maybe/x")
        h["X-Auth-Client-Id"] = "admin"
        r = self.tg.get("/auth", h)
        self.assertEqual(r.status, 200)
        self.assertNotIn("admin", " ".join(r.headers.get_all("X-Auth-Client-Id") or []))


class ForwardedForLines(TollgateCase):
    """A client behind a proxy that adds its own X-Forwarded-For line (HAProxy
    `option forwardfor`) sends a long line of its own first.  The lines were
    joined into 2 KiB, so a first line of 2047 bytes ending in ", 6.6.6.6"
    pushed the proxy's line out and the client chose its own address (per-IP
    limits, lockouts and the audit log all followed it)."""
    configure = staticmethod(standard_config)

    def client_ip(self, lines):
        rid = unique("xff")
        req = ("GET /auth/orders/1 HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
               "X-Request-ID: %s\r\n" % (key_of("bob"), rid)).encode()
        req += b"".join(b"X-Forwarded-For: " + l.encode() + b"\r\n" for l in lines) + b"\r\n"
        resp = raw_request(self.tg.port, req, timeout=3)
        self.assertEqual(raw_status(resp), 200, resp[:300])
        return self.tg.audit_for(rid)["ip"]

    def test_the_proxys_line_is_never_cut(self):
        for size in (2047, 2046, 2048, 2050, 9000):
            spoof = ("1.1.1.1, " * size)[:size - len(", 6.6.6.6")] + ", 6.6.6.6"
            spoof = spoof.replace(", , ", ", ")
            with self.subTest(size=size):
                self.assertEqual(self.client_ip([spoof, "203.0.113.9"]), "203.0.113.9")
        self.assertEqual(self.client_ip(["198.51.100.1", "203.0.113.9, 10.1.2.3"]),
                         "203.0.113.9")  # 10.1.2.3 is a trusted hop (private range)
        self.assertEqual(self.client_ip(["203.0.113.7"]), "203.0.113.7")


class DefaultRouteConfigured(TollgateCase):
    @staticmethod
    def configure(cfg):
        standard_config(cfg)
        cfg["default_route"] = {"auth": "required", "scopes": ["orders:write"]}

    def test_default_route_scopes(self):
        h = nginx_headers("/elsewhere")
        self.assertEnvelope(self.tg.get("/auth", with_key(h, "bob")), 403, "forbidden")
        self.assertEqual(self.tg.get("/auth", with_key(h, "alice")).status, 200)


class UntrustedPeer(TollgateCase):
    """127.0.0.1 is not a trusted proxy here."""

    @staticmethod
    def configure(cfg):
        standard_config(cfg)
        cfg["trusted_proxies"] = ["10.0.0.0/8"]

    def test_nginx_headers_refused(self):
        r = self.tg.get("/auth", with_key(nginx_headers("/public/x"), "alice"))
        self.assertEnvelope(r, 403, "forbidden")
        r = self.tg.get("/auth", with_key(nginx_headers("/public/x", url=False, sent_from=False),
                                          "alice"))
        self.assertEnvelope(r, 403, "forbidden")

    def test_traefik_headers_refused(self):
        r = self.tg.get("/auth", with_key(traefik_headers("/public/x"), "alice"))
        self.assertEnvelope(r, 403, "forbidden")

    def test_envoy_needs_no_trust(self):
        r = self.tg.get("/auth/orders/1", api_key("bob"))
        self.assertEqual(r.status, 200, r)

    def test_untrusted_xff_ignored(self):
        h = api_key("bob")
        h["X-Forwarded-For"] = "203.0.113.99"
        r = self.tg.get("/auth/orders/1", h)
        self.assertEqual(r.status, 200)
        self.assertEqual(self.tg.audit_for(r.header("X-Request-ID"))["ip"], "127.0.0.1")

    def test_one_warning_per_peer(self):
        # enough connections that every worker thread sees some
        for _ in range(30):
            self.tg.get("/auth", with_key(traefik_headers("/public/y"), "alice"))
        warns = [l for l in self.tg.stderr().splitlines()
                 if "127.0.0.1" in l and " warn" in l.lower()]
        self.assertEqual(len(warns), 1, "want one warning for the untrusted peer: %r" % warns)
