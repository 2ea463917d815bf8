"""Response headers on every answer (docs/reference.md §5): security headers, HSTS only
for https via a trusted proxy, CORS preflight, X-Request-ID."""
import re

import socket

from harness import (TollgateCase, Upstream, Tollgate, api_key, standard_config, _finish,
                     raw_request, raw_status, SLOW)

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


def parse_head(resp):
    """(status line, [(name, value)], rest) of one raw response; every header
    line must be "Name: value" with a token name."""
    head, _, rest = resp.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = []
    for line in lines[1:]:
        m = re.match(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+): (\S(?:.*\S)?)?$", line)
        if m is None:
            raise AssertionError("malformed header line %r in %r" % (line, head))
        fields.append((m.group(1).decode().lower(), (m.group(2) or b"").decode()))
    return lines[0], fields, rest


class OwnAnswerWire(TollgateCase):
    """tollgate's own answers leave as one pre-formatted block of headers
    (server/respond.c): on the wire they must be exactly the separate,
    well-formed, unrepeated header lines evhttp would have written, with
    evhttp's own framing (Date, Content-Length, Connection) intact."""

    def wire(self, data, timeout=5):
        return raw_request(self.tg.port, data, timeout=timeout)

    def until_closed(self, data):
        """Send `data` on one connection; every byte until the server closes."""
        s = socket.create_connection(("127.0.0.1", self.tg.port), timeout=5 * SLOW)
        buf = b""
        try:
            s.sendall(data)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return buf
                buf += chunk
        finally:
            s.close()

    def assertWellFormed(self, resp, status, framed=True):
        first, fields, rest = parse_head(resp)
        self.assertEqual(raw_status(resp), status, resp[:300])
        names = [n for n, _ in fields]
        for n in set(names):
            self.assertEqual(names.count(n), 1, "%s repeated in %r" % (n, resp[:2000]))
        for must in ("date", "x-request-id", "x-content-type-options", "cache-control"):
            self.assertIn(must, names, resp[:2000])
        if framed:
            self.assertIn("content-length", names, resp[:2000])
        return dict(fields), rest

    def test_allow_deny_and_error_answers(self):
        key = api_key("alice")["X-API-Key"]
        for target, extra, status in (
                ("/auth/orders/1", "X-API-Key: %s\r\n" % key, 200),
                ("/auth/orders/1", "", 401),
                ("/no/such", "", 404),
                ("/readyz", "", 200)):
            with self.subTest(target=target, status=status):
                resp = self.wire(("GET %s HTTP/1.1\r\nHost: a\r\n%s\r\n" %
                                  (target, extra)).encode())
                h, body = self.assertWellFormed(resp, status)
                self.assertEqual(int(h["content-length"]), len(body))
                if status == 200 and target.startswith("/auth/"):
                    self.assertEqual(h["x-auth-client-id"], "alice")
                    self.assertEqual(h["x-auth-method"], "api_key")
                    self.assertIn("x-ratelimit-limit", h)
                if status == 401:
                    self.assertIn("www-authenticate", h)
                    self.assertIn(b'"code"', body)

    def test_head_has_no_body(self):
        """An answer to HEAD has no body (RFC 9110 §9.3.2): a body there
        would be read by a keep-alive client as the start of the next answer
        (it was, before: HEAD /healthz sent its JSON)."""
        key = api_key("alice")["X-API-Key"]
        for target, extra, status in (("/readyz", "", 200), ("/auth/orders/1", "", 401),
                                      ("/auth/orders/1", "X-API-Key: %s\r\n" % key, 200),
                                      ("/no/such", "", 404)):
            with self.subTest(target=target, status=status):
                resp = self.wire(("HEAD %s HTTP/1.1\r\nHost: a\r\n%s"
                                  "Connection: close\r\n\r\n" % (target, extra)).encode())
                h, body = self.assertWellFormed(resp, status, framed=False)
                self.assertEqual(body, b"")
                self.assertEqual(h["connection"], "close")
        # and on a kept-alive connection the next answer starts right after
        req = (b"HEAD /auth/orders/1 HTTP/1.1\r\nHost: a\r\nX-Request-ID: head-1\r\n\r\n"
               b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Request-ID: get-2\r\n"
               b"Connection: close\r\n\r\n")
        buf = self.until_closed(req)
        h, rest = self.assertWellFormed(buf, 401, framed=False)
        self.assertEqual(h["x-request-id"], "head-1")
        h, rest = self.assertWellFormed(rest, 200)
        self.assertEqual(h["x-request-id"], "get-2")
        self.assertEqual(rest, b'{"status":"ok"}')

    def test_pipelined_and_keepalive(self):
        """Three pipelined requests on one connection: three complete
        answers in order, the last one closing as asked."""
        key = api_key("alice")["X-API-Key"]
        req = ("GET /auth/orders/1 HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\n"
               "X-Request-ID: pipe-1\r\n\r\n"
               "GET /no/such HTTP/1.1\r\nHost: a\r\nX-Request-ID: pipe-2\r\n\r\n"
               "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Request-ID: pipe-3\r\n"
               "Connection: close\r\n\r\n" % key).encode()
        buf = self.until_closed(req)  # the server closes after the third, as asked
        seen = []
        for want_status, want_id in ((200, "pipe-1"), (404, "pipe-2"), (200, "pipe-3")):
            h, rest = self.assertWellFormed(buf, want_status)
            n = int(h["content-length"])
            seen.append(h["x-request-id"])
            self.assertEqual(h["x-request-id"], want_id)
            buf = rest[n:]
        self.assertEqual(buf, b"")
        self.assertEqual(seen, ["pipe-1", "pipe-2", "pipe-3"])

    def test_http10_closes_unless_keepalive(self):
        resp = self.wire(b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertTrue(resp.startswith(b"HTTP/1.0 200") or resp.startswith(b"HTTP/1.1 200"),
                        resp[:100])
        h, body = self.assertWellFormed(resp, 200, framed=False)  # delimited by the close
        self.assertEqual(body, b'{"status":"ok"}')
        resp = self.wire(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        h, _ = self.assertWellFormed(resp, 200)
        self.assertEqual(h.get("connection"), "keep-alive")


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
