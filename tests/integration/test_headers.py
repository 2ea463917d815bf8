"""Response headers on every answer (DESIGN §6): security headers, HSTS only
for https via a trusted proxy, CORS preflight, X-Request-ID."""
import re

from harness import TollgateCase, Upstream, Tollgate, api_key, standard_config, _finish

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class SecurityHeaders(TollgateCase):
    shared_server = False

    @classmethod
    def setUpClass(cls):
        cls.up = Upstream()
        cls.addClassCleanup(cls.up.close)

        def configure(cfg):
            standard_config(cfg)
            cfg["routes"].append({"name": "api", "match": {"path_prefix": "/api/"},
                                  "upstream": cls.up.url, "auth": "optional"})
        cls.tg = Tollgate(configure)
        cls.addClassCleanup(_finish, cls.tg)

    def test_on_every_kind_of_answer(self):
        answers = {
            "allow": self.tg.get("/auth/orders/1", api_key("bob")),
            "401": self.tg.get("/auth/orders/1"),
            "403": self.tg.get("/auth/orders/admin/1", api_key("bob")),
            "404": self.tg.get("/no/such/path"),
            "400": self.tg.get("/auth/a/%2F"),
            "healthz": self.tg.get("/healthz"),
            "readyz": self.tg.get("/readyz"),
        }
        for what, r in answers.items():
            with self.subTest(what):
                self.assertSecurityHeaders(r)
                self.assertIsNone(r.header("Strict-Transport-Security"))
        self.assertEqual(answers["404"].status, 404)
        self.assertEqual(answers["healthz"].status, 200)
        self.assertEqual(answers["readyz"].status, 200)

    def test_on_proxied_answer(self):
        r = self.tg.get("/api/x")
        self.assertEqual(r.status, 200)
        self.assertSecurityHeaders(r, own=False)

    def test_default_csp(self):
        r = self.tg.get("/healthz")
        self.assertEqual(r.header("Content-Security-Policy"),
                         "default-src 'none'; frame-ancestors 'none'")

    def test_hsts_with_https_from_trusted_proxy(self):
        r = self.tg.get("/auth/orders/1", dict(api_key("bob"), **{"X-Forwarded-Proto": "https"}))
        self.assertEqual(r.status, 200)
        self.assertIn("max-age=31536000", r.header("Strict-Transport-Security", ""))
        r = self.tg.get("/no/such", {"X-Forwarded-Proto": "https"})
        self.assertIn("max-age=31536000", r.header("Strict-Transport-Security", ""))
        r = self.tg.get("/no/such", {"X-Forwarded-Proto": "http"})
        self.assertIsNone(r.header("Strict-Transport-Security"))

    def test_cors_preflight_allowed(self):
        r = self.tg.req("OPTIONS", "/api/items", {
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key"})
        self.assertIn(r.status, (200, 204), r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://app.example.com")
        self.assertIn("origin", r.header("Vary", "").lower())
        self.assertIn("POST", r.header("Access-Control-Allow-Methods", "").upper())
        self.assertSecurityHeaders(r)

    def test_cors_preflight_refused(self):
        r = self.tg.req("OPTIONS", "/api/items", {
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        self.assertIsNone(r.header("Access-Control-Allow-Origin"), r)
        self.assertSecurityHeaders(r, own=False)
        self.assertEqual(r.header("Access-Control-Allow-Credentials"), None)
        # also no wildcard lookalike on a normal request from that origin
        r = self.tg.get("/auth/orders/1", dict(api_key("bob"), Origin="https://evil.example"))
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))

    def test_request_id_kept_when_valid(self):
        rid = "abc-DEF_123"
        r = self.tg.get("/api/x", {"X-Request-ID": rid})
        self.assertEqual(r.header("X-Request-ID"), rid)
        self.assertEqual(Upstream.header(r.json(), "X-Request-ID"), [rid])
        r = self.tg.get("/auth/orders/1", {"X-Request-ID": "A" * 64})
        self.assertEqual(r.header("X-Request-ID"), "A" * 64)
        self.assertEqual(r.json()["error"]["request_id"], "A" * 64)
        self.assertEqual(self.tg.audit_for("A" * 64)["status"], 401)

    def test_request_id_replaced_when_invalid(self):
        for bad in ("has space", "A" * 65, "semi;colon", "<script>", "x/y"):
            r = self.tg.get("/api/x", {"X-Request-ID": bad})
            got = r.header("X-Request-ID")
            self.assertNotEqual(got, bad)
            self.assertRegex(got, UUID4)
            self.assertEqual(Upstream.header(r.json(), "X-Request-ID"), [got])

    def test_request_id_generated(self):
        a = self.tg.get("/healthz").header("X-Request-ID")
        b = self.tg.get("/healthz").header("X-Request-ID")
        self.assertRegex(a, UUID4)
        self.assertNotEqual(a, b)


class HstsUntrusted(TollgateCase):
    @staticmethod
    def configure(cfg):
        standard_config(cfg)
        cfg["trusted_proxies"] = ["10.0.0.0/8"]

    def test_no_hsts_from_untrusted_peer(self):
        r = self.tg.get("/no/such", {"X-Forwarded-Proto": "https"})
        self.assertEqual(r.status, 404)
        self.assertIsNone(r.header("Strict-Transport-Security"))
        r = self.tg.get("/healthz", {"X-Forwarded-Proto": "https"})
        self.assertIsNone(r.header("Strict-Transport-Security"))


class SecurityHeadersConfigured(TollgateCase):
    @staticmethod
    def configure(cfg):
        cfg["security_headers"] = {"content_security_policy": "default-src 'self'",
                                   "hsts_max_age": 600}

    def test_configured_values(self):
        r = self.tg.get("/no/such", {"X-Forwarded-Proto": "https"})
        self.assertEqual(r.header("Content-Security-Policy"), "default-src 'self'")
        self.assertIn("max-age=600", r.header("Strict-Transport-Security", ""))
