"""The admin listener (docs/reference.md §4): ADMIN_TOKEN bearer, health, metrics,
effective config with secrets redacted, buckets, revocations."""
import json
import urllib.parse

from harness import (TollgateCase, ADMIN_TOKEN, JWT_SECRET, api_key, bearer, make_jwt,
                     standard_config, unique, wait_for)


class Admin(TollgateCase):
    configure = staticmethod(standard_config)

    def test_token_required(self):
        for method, path in (("GET", "/admin/v1/config"), ("POST", "/admin/v1/reload"),
                             ("GET", "/admin/v1/buckets?limit=tight&key=c%3Dk:bob"),
                             ("POST", "/admin/v1/revocations")):
            with self.subTest(path):
                r = self.tg.admin(method, path, token=None)
                self.assertEnvelope(r, 401, "unauthorized")
                r = self.tg.admin(method, path, token="not-the-token")
                self.assertEnvelope(r, 401, "unauthorized")
                r = self.tg.admin(method, path, token=ADMIN_TOKEN + "x")
                self.assertEqual(r.status, 401)

    def test_health_and_metrics_open(self):
        for path in ("/healthz", "/readyz", "/metrics"):
            self.assertEqual(self.tg.admin("GET", path, token=None).status, 200, path)

    def test_readyz_body(self):
        status, body = self.tg.readyz()
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["redis"], "disabled")
        self.assertIs(body["fallback"], False)
        self.assertRegex(body["config_version"], r"^[0-9a-f]{16}$")
        r = self.tg.get("/readyz")  # main listener too
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["config_version"], body["config_version"])

    def test_metrics(self):
        self.tg.get("/auth/orders/1", api_key("bob"))
        self.tg.get("/auth/orders/1")
        text = self.tg.metrics()
        self.assertIn("# TYPE tollgate_requests_total counter", text)
        self.assertRegex(text, r'(?m)^tollgate_requests_total\{[^}]*decision="allow"[^}]*\} \d')
        self.assertRegex(text, r'(?m)^tollgate_requests_total\{[^}]*decision="deny"[^}]*\} \d')
        for name in ("tollgate_request_duration_seconds_bucket", "tollgate_fallback",
                     "tollgate_auth_failures_total", "tollgate_limit_decisions_total"):
            self.assertIn(name, text)

    def test_config_redacted(self):
        r = self.tg.admin("GET", "/admin/v1/config")
        self.assertEqual(r.status, 200, r)
        cfg = r.json()
        self.assertIsInstance(cfg, dict)
        text = r.body.decode()
        self.assertNotIn(ADMIN_TOKEN, text)
        self.assertNotIn(JWT_SECRET, text)
        self.assertIn("tight", text)

    def test_admin_paths_not_on_main_listener(self):
        for path in ("/metrics", "/admin/v1/config"):
            r = self.tg.get(path, {"Authorization": "Bearer " + ADMIN_TOKEN})
            self.assertEnvelope(r, 404, "not_found")

    def test_bucket_state_and_reset(self):
        bucket = unique("adm")
        h = dict(api_key("bob"), **{"X-Test-Bucket": bucket})
        for _ in range(3):
            self.tg.get("/auth/limited/x", h)
        self.assertEqual(self.tg.get("/auth/limited/x", h).status, 429)
        key = "c=k:bob|h:x-test-bucket=%s" % bucket
        q = "/admin/v1/buckets?" + urllib.parse.urlencode({"limit": "tight", "key": key})
        r = self.tg.admin("GET", q)
        self.assertEqual(r.status, 200, r)
        self.assertIn("0", json.dumps(r.json()))
        r = self.tg.admin("DELETE", q)
        self.assertIn(r.status, (200, 204), r)
        self.assertEqual(self.tg.get("/auth/limited/x", h).status, 200)

    def test_revoke_token(self):
        tok = make_jwt({"sub": "rev-user", "jti": unique("jti")})
        self.assertEqual(self.tg.get("/auth/maybe/x", bearer(tok)).status, 200)
        r = self.tg.admin("POST", "/admin/v1/revocations", {"Content-Type": "application/json"},
                          json.dumps({"token": tok}).encode())
        self.assertIn(r.status, (200, 201, 204), r)
        self.assertTrue(wait_for(lambda: self.tg.get("/auth/orders/1", bearer(tok)).status == 401,
                                 1.5), "revoked token still accepted")
        jti = json.loads(__import__("base64").urlsafe_b64decode(
            tok.split(".")[1] + "==="))["jti"]
        r = self.tg.admin("GET", "/admin/v1/revocations/" + jti)
        self.assertEqual(r.status, 200)
        self.assertIs(r.json()["revoked"], True)
        r = self.tg.admin("GET", "/admin/v1/revocations/never-revoked-jti")
        self.assertIs(r.json()["revoked"], False)


class AdminClosed(TollgateCase):
    env = {"ADMIN_TOKEN": None}

    def test_admin_api_closed_without_token(self):
        for tok in (None, "", "anything"):
            r = self.tg.admin("GET", "/admin/v1/config", token=tok)
            self.assertIn(r.status, (401, 403, 404), r)
        self.assertEqual(self.tg.admin("GET", "/metrics", token=None).status, 200)
