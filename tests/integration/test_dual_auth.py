"""Dual auth during a migration from API keys to JWTs: per-route
auth_methods, deprecated keys with Deprecation / Sunset / Link headers and
tollgate_deprecated_auth_total."""
import hashlib

from harness import (TollgateCase, Upstream, api_key, bearer, make_jwt,
                     standard_config)

OLD_KEY = "it-key-legacy-0123456789abcdef0123456"


def legacy_line():
    return "legacy %s scopes=orders:read deprecated" % hashlib.sha256(OLD_KEY.encode()).hexdigest()


def conf(cfg):
    standard_config(cfg)
    cfg["routes"].insert(0, {"name": "jwt-only", "match": {"path_prefix": "/v2/"},
                             "auth_methods": ["jwt"]})
    cfg["routes"].insert(0, {"name": "keys-only", "match": {"path_prefix": "/svc/"},
                             "auth_methods": ["api_key"]})
    cfg["auth"]["api_keys"] = {"deprecated_since": "2026-12-01",
                               "sunset": "2027-06-30T00:00:00Z",
                               "link": "https://docs.example.com/migrate-to-oauth"}
    return cfg


class DualAuth(TollgateCase):
    configure = staticmethod(conf)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tg.write_keys(extra_lines=[legacy_line()])
        r = cls.tg.admin("POST", "/admin/v1/reload")
        assert r.status == 200, r.body

    def test_auth_methods_per_route(self):
        tok = make_jwt({"scope": "orders:read"})
        self.assertEqual(self.tg.get("/auth/v2/x", bearer(tok)).status, 200)
        self.assertEnvelope(self.tg.get("/auth/v2/x", api_key("bob")), 401, "unauthorized")
        self.assertEqual(self.tg.get("/auth/svc/x", api_key("bob")).status, 200)
        self.assertEnvelope(self.tg.get("/auth/svc/x", bearer(tok)), 401, "unauthorized")
        # elsewhere, both
        self.assertEqual(self.tg.get("/auth/orders/1", bearer(tok)).status, 200)
        self.assertEqual(self.tg.get("/auth/orders/1", api_key("bob")).status, 200)
        self.assertIn('tollgate_auth_failures_total{reason="auth_method"}', self.tg.metrics())

    def test_deprecated_key_headers(self):
        r = self.tg.get("/auth/orders/1", {"X-API-Key": OLD_KEY})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Auth-Client-Id"), "legacy")
        self.assertEqual(r.header("Deprecation"), "@1796083200")  # 2026-12-01
        self.assertEqual(r.header("Sunset"), "Wed, 30 Jun 2027 00:00:00 GMT")
        self.assertEqual(r.header("Link"),
                         '<https://docs.example.com/migrate-to-oauth>; rel="deprecation"; '
                         'type="text/html"')
        m = self.tg.metrics()
        self.assertIn('tollgate_deprecated_auth_total{client="legacy"}', m)
        # other keys and JWTs are not deprecated
        for h in (api_key("bob"), bearer(make_jwt({"scope": "orders:read"}))):
            r = self.tg.get("/auth/orders/1", h)
            self.assertEqual(r.status, 200)
            self.assertIsNone(r.header("Deprecation"))
            self.assertIsNone(r.header("Sunset"))
        self.assertNotIn('deprecated_auth_total{client="bob"}', self.tg.metrics())
        # denials carry none
        r = self.tg.get("/auth/orders/admin/x", {"X-API-Key": OLD_KEY})
        self.assertEqual(r.status, 403)
        self.assertIsNone(r.header("Deprecation"))


class AllKeysDeprecated(TollgateCase):
    shared_server = False

    def test_proxy_answer_carries_headers(self):
        up = Upstream()
        self.addCleanup(up.close)

        def c(cfg):
            cfg["routes"] = [{"name": "api", "match": {"path_prefix": "/api/"},
                              "upstream": "http://127.0.0.1:%d" % up.port}]
            cfg["auth"]["api_keys"] = {"deprecated": True}
            return cfg
        tg = self.spawn(c)
        r = tg.get("/api/x", api_key("bob"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Deprecation"), "@0")
        self.assertIsNone(r.header("Sunset"))
        r = tg.get("/api/x", bearer(make_jwt()))
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Deprecation"))

    def test_bad_link_refused(self):
        def c(cfg):
            cfg["auth"]["api_keys"] = {"deprecated": True, "link": "javascript:alert(1)"}
            return cfg
        tg = self.spawn(c, start=False)
        r = tg.run_cli("--check-config", tg.config_path)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("auth.api_keys.link", r.stderr)
