import unittest
"""Allow / 401 / 403 / 429 and their headers, shadow limits, 413, lockout
(docs/architecture.md §5), through the Envoy-style /auth/<path> forward-auth endpoint."""
import re
import socket

from harness import (TollgateCase, api_key, key_of, standard_config, unique, raw_request,
                     raw_status, nginx_headers)


def limited(client, bucket):
    h = api_key(client)
    h["X-Test-Bucket"] = bucket
    return h


class Decisions(TollgateCase):
    configure = staticmethod(standard_config)

    def test_allow_has_identity_headers(self):
        r = self.tg.get("/auth/orders/1", api_key("alice"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Auth-Client-Id"), "alice")
        self.assertEqual(r.header("X-Auth-Subject"), "alice")
        self.assertEqual(set(r.header("X-Auth-Scopes", "").split()),
                         {"orders:read", "orders:write"})
        self.assertTrue(r.header("X-Request-ID"))
        self.assertTrue(r.header("X-RateLimit-Limit"))

    def test_no_credential_401(self):
        r = self.tg.get("/auth/orders/1")
        self.assertEnvelope(r, 401, "unauthorized")

    def test_unknown_key_401_not_echoed(self):
        bogus = "it-key-nobody-" + unique("x") + "-padpadpad"
        r = self.tg.get("/auth/orders/1", {"X-API-Key": bogus})
        self.assertEnvelope(r, 401, "unauthorized")
        self.assertNotIn(bogus.encode(), r.body)
        for v in r.headers.values():
            self.assertNotIn(bogus, v)

    def test_missing_scope_403(self):
        r = self.tg.get("/auth/orders/admin/purge", api_key("bob"))
        self.assertEnvelope(r, 403, "forbidden")
        r = self.tg.get("/auth/orders/1", api_key("carol"))
        self.assertEnvelope(r, 403, "forbidden")
        r = self.tg.get("/auth/orders/admin/purge", api_key("alice"))
        self.assertEqual(r.status, 200, r)

    def test_route_auth_none_and_optional(self):
        self.assertEqual(self.tg.get("/auth/public/x").status, 200)
        self.assertEqual(self.tg.get("/auth/maybe/x").status, 200)
        r = self.tg.get("/auth/maybe/x", api_key("bob"))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Auth-Client-Id"), "bob")

    def test_rate_limit_headers_and_429(self):
        h = limited("bob", unique("b"))
        for i in range(3):
            r = self.tg.get("/auth/limited/x", h)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("X-RateLimit-Limit"), "3")
            self.assertEqual(r.header("X-RateLimit-Remaining"), str(2 - i))
            reset = int(r.header("X-RateLimit-Reset"))
            self.assertTrue(1 <= reset <= 60, reset)
            pol = r.header("RateLimit-Policy", "")
            self.assertIn('"tight";q=3;w=60', pol)
            self.assertIn('"default";q=1000;w=60', pol)
            m = re.fullmatch(r'"tight";r=(\d+);t=(\d+)', r.header("RateLimit", ""))
            self.assertTrue(m, r.header("RateLimit"))
            self.assertEqual(int(m.group(1)), 2 - i)
            self.assertEqual(int(m.group(2)), reset)
        r = self.tg.get("/auth/limited/x", h)
        self.assertEnvelope(r, 429, "rate_limited")
        ra = int(r.header("Retry-After"))
        self.assertTrue(1 <= ra <= 60, ra)
        self.assertEqual(r.header("X-RateLimit-Limit"), "3")
        self.assertEqual(r.header("X-RateLimit-Remaining"), "0")
        self.assertTrue(int(r.header("X-RateLimit-Reset")) >= 1)
        self.assertIn('"tight";q=3;w=60', r.header("RateLimit-Policy", ""))
        self.assertRegex(r.header("RateLimit", ""), r'^"tight";r=0;t=\d+$')
        self.assertSecurityHeaders(r)

    def test_limit_is_per_client(self):
        bucket = unique("b")
        for _ in range(3):
            self.assertEqual(self.tg.get("/auth/limited/y", limited("bob", bucket)).status, 200)
        self.assertEqual(self.tg.get("/auth/limited/y", limited("bob", bucket)).status, 429)
        # another client, same bucket header: its own bucket
        self.assertEqual(self.tg.get("/auth/limited/y", limited("alice", bucket)).status, 200)

    def test_denied_requests_consume_nothing(self):
        """Rejected requests (401/403) never touch a bucket."""
        bucket = unique("b")
        h = limited("carol", bucket)  # carol has no scopes
        for _ in range(5):
            self.assertEqual(self.tg.get("/auth/orders/1", h).status, 403)
        for i in range(3):
            r = self.tg.get("/auth/limited/z", h)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("X-RateLimit-Remaining"), str(2 - i))

    def test_shadow_never_denies_but_is_recorded(self):
        h = limited("bob", unique("s"))
        ids = []
        for _ in range(3):
            r = self.tg.get("/auth/shadow/x", h)
            self.assertEqual(r.status, 200, r)
            self.assertIsNone(r.header("Retry-After"))
            ids.append(r.header("X-Request-ID"))
        rec = self.tg.audit_for(ids[-1])
        self.assertEqual(rec["status"], 200)
        self.assertTrue(rec.get("limit") == "shadowed" or "shadow" in str(rec.get("reason")),
                        "audit line does not show the shadow denial: %r" % rec)
        metrics = self.tg.metrics()
        line = [l for l in metrics.splitlines()
                if l.startswith("tollgate_limit_decisions_total{") and 'limit="shadowed"' in l
                and 'mode="shadow"' in l and 'decision="deny"' in l]
        self.assertTrue(line, "no shadow deny in tollgate_limit_decisions_total")
        self.assertGreaterEqual(float(line[0].rsplit(" ", 1)[1]), 2)

    def test_413_body_too_large(self):
        r = self.tg.req("POST", "/auth/orders/1", api_key("alice"), body=b"x" * 5000)
        self.assertEqual(r.status, 413, r)
        self.assertServing()

    def test_413_envelope_and_headers(self):
        """Refused from the declared length by server/conn.c before libevent
        reads the head (test_sizes.py has the rest)."""
        r = self.tg.req("POST", "/auth/orders/1", api_key("alice"), body=b"x" * 5000)
        self.assertEnvelope(r, 413, "payload_too_large")
        self.assertSecurityHeaders(r)

    def test_413_before_reading_the_body(self):
        """A declared Content-Length over the limit is refused at once."""
        head = ("POST /auth/orders/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: %s\r\n"
                "Content-Length: 100000000\r\n\r\n" % key_of("alice")).encode()
        # 100 of the 100 MB declared are sent and the connection stays open:
        # an answer at all (raw_request gives up after 3 s) is one that did
        # not wait for the body, which never comes; no stopwatch needed.
        resp = raw_request(self.tg.port, head + b"x" * 100, timeout=3)
        self.assertEqual(raw_status(resp), 413, resp[:300])

    def test_body_within_limit_allowed(self):
        r = self.tg.req("POST", "/auth/orders/1", api_key("alice"), body=b"x" * 1000)
        self.assertEqual(r.status, 200, r)


class Lockout(TollgateCase):
    @staticmethod
    def configure(cfg):
        standard_config(cfg)
        cfg["auth"]["lockout"] = {"max_failures": 3, "window": "1m", "base_backoff": "30s",
                                  "max_backoff": "1m"}

    def test_lockout_after_failures(self):
        bad = {"X-API-Key": "it-key-wrong-0123456789abcdef0123"}
        for _ in range(3):
            self.assertEqual(self.tg.get("/auth/orders/1", bad).status, 401)
        r = self.tg.get("/auth/orders/1", bad)
        self.assertEnvelope(r, 429, "locked_out")
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)

    def test_lockout_nginx_dialect_status_and_per_ip(self):
        ip = "198.51.100.23"
        bad = dict(nginx_headers("/orders/1"), **{"X-API-Key": "it-key-wrong-aaaaaaaaaaaaaaaa",
                                                   "X-Real-IP": ip, "X-Forwarded-For": ip})
        for _ in range(3):
            self.assertEqual(self.tg.get("/auth", bad).status, 401)
        r = self.tg.get("/auth", bad)
        self.assertEnvelope(r, 403, "locked_out")
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)
        # a different client ip is not locked out
        other = dict(nginx_headers("/orders/1"), **api_key("bob"))
        other["X-Real-IP"] = other["X-Forwarded-For"] = "198.51.100.99"
        self.assertEqual(self.tg.get("/auth", other).status, 200)
