"""431 and 413 with the JSON envelope (server/conn.c, server/pipeline.c).

server/conn.c reads each request head as it arrives, before libevent parses
it: a head over max_header_bytes, or a Content-Length over max_body_bytes,
is answered by tollgate itself (envelope, X-Request-ID, security headers,
Connection: close, an audit line, tollgate_requests_total), libevent never
reads the head or the body, and the connection lingers long enough for the
client to read the answer even while it is still sending.  Over raw
sockets, forward-auth and proxy mode.
"""
import json
import socket
import threading
import time

from harness import (TollgateCase, UpstreamCase, api_key, key_of, metric, raw_status,
                     standard_config, wait_for, SLOW)
from test_headers import parse_head

ALICE = key_of("alice").encode()
MAX_HEADER = 8192
MAX_BODY = 4096


def read_answer(s, timeout=5.0):
    """Every byte until the server closes (or a reset after the answer)."""
    s.settimeout(timeout * SLOW)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return out
        if not chunk:
            return out
        out += chunk


def exchange(port, data, more=None, timeout=5.0):
    """Send `data`, then (in a thread) keep sending `more` while the answer
    is read: a client that streams its body without waiting."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    try:
        s.sendall(data)
        t = None
        if more:
            def stream():
                try:
                    s.sendall(more)
                except OSError:
                    pass
            t = threading.Thread(target=stream, daemon=True)
            t.start()
        out = read_answer(s, timeout)
        if t is not None:
            t.join(timeout * SLOW)
        return out
    finally:
        s.close()


class Sizes(TollgateCase):
    @staticmethod
    def configure(cfg):
        standard_config(cfg)
        cfg["max_header_bytes"] = MAX_HEADER
        cfg["max_body_bytes"] = MAX_BODY

    def assertRefused(self, resp, status, code):
        first, fields, rest = parse_head(resp)
        self.assertEqual(raw_status(resp), status, resp[:400])
        h = dict(fields)
        self.assertIn("application/json", h.get("content-type", ""))
        self.assertEqual(h.get("connection"), "close", resp[:600])
        self.assertEqual(h.get("x-content-type-options"), "nosniff")
        self.assertIn("no-store", h.get("cache-control", ""))
        n = int(h["content-length"])
        self.assertEqual(len(rest), n, "answer framed wrongly or followed by bytes: %r" % resp)
        body = json.loads(rest)
        self.assertEqual(body["error"]["code"], code, body)
        self.assertEqual(body["error"]["request_id"], h.get("x-request-id"))
        return h["x-request-id"]

    def big_head(self, n):
        return (b"GET /auth/orders/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: " + ALICE +
                b"\r\nX-Big: " + b"a" * n + b"\r\n\r\n")

    def test_431_head_over_the_limit(self):
        resp = exchange(self.tg.port, self.big_head(MAX_HEADER))
        rid = self.assertRefused(resp, 431, "headers_too_large")
        rec = self.tg.audit_for(rid)
        self.assertEqual(rec["status"], 431, rec)
        self.assertEqual(rec["reason"], "headers_too_large", rec)
        self.assertServing()

    def test_431_head_that_never_ends(self):
        """A head that keeps coming is refused as soon as it passes the bound,
        not when it ends (it never does here)."""
        s = socket.create_connection(("127.0.0.1", self.tg.port), timeout=5 * SLOW)
        self.addCleanup(s.close)
        s.sendall(b"GET /auth/orders/1 HTTP/1.1\r\nHost: t\r\n")
        sent = 0
        while sent < 4 * MAX_HEADER:
            try:
                s.sendall(b"X-Pad-%06d: %s\r\n" % (sent, b"p" * 200))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 214
        resp = read_answer(s)
        self.assertRefused(resp, 431, "headers_too_large")

    def test_431_head_in_small_pieces(self):
        s = socket.create_connection(("127.0.0.1", self.tg.port), timeout=5 * SLOW)
        self.addCleanup(s.close)
        data = self.big_head(MAX_HEADER + 100)
        for i in range(0, len(data), 700):
            try:
                s.sendall(data[i:i + 700])
            except (BrokenPipeError, ConnectionResetError):
                break
        self.assertRefused(read_answer(s), 431, "headers_too_large")

    def test_head_at_the_limit_is_served(self):
        def head(n):
            return (b"GET /auth/orders/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: " + ALICE +
                    b"\r\nConnection: close\r\nX-Big: " + b"a" * n + b"\r\n\r\n")
        exact = head(MAX_HEADER - len(head(0)))
        self.assertEqual(len(exact), MAX_HEADER)
        self.assertEqual(raw_status(exchange(self.tg.port, exact)), 200)
        over = head(MAX_HEADER - len(head(0)) + 1)
        self.assertRefused(exchange(self.tg.port, over), 431, "headers_too_large")

    def test_413_declared_length_without_the_body(self):
        head = (b"POST /auth/orders/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: " + ALICE +
                b"\r\nContent-Length: 100000000\r\n\r\n")
        rid = self.assertRefused(exchange(self.tg.port, head), 413, "payload_too_large")
        rec = self.tg.audit_for(rid)
        self.assertEqual((rec["status"], rec["reason"]), (413, "body_too_large"), rec)
        self.assertIsNone(rec.get("target"), rec)  # the refused head is not reported as read

    def test_413_while_the_client_streams_its_body(self):
        """The answer arrives whole although the client keeps sending 1 MiB
        after it: the connection lingers instead of resetting."""
        head = (b"POST /auth/orders/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: " + ALICE +
                b"\r\nContent-Length: 1048576\r\n\r\n")
        for _ in range(5):
            resp = exchange(self.tg.port, head, more=b"x" * 1048576)
            self.assertRefused(resp, 413, "payload_too_large")

    def test_413_expect_100_continue_gets_no_100(self):
        head = (b"POST /auth/orders/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: " + ALICE +
                b"\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
        resp = exchange(self.tg.port, head)
        self.assertNotIn(b"100 Continue", resp)
        self.assertRefused(resp, 413, "payload_too_large")

    def test_body_at_the_limit_is_served(self):
        r = self.tg.req("POST", "/auth/orders/1", api_key("alice"), body=b"x" * MAX_BODY)
        self.assertEqual(r.status, 200, r)

    def test_pipelined_behind_a_good_request(self):
        good = b"GET /auth/orders/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: " + ALICE + b"\r\n\r\n"
        resp = exchange(self.tg.port, good + self.big_head(MAX_HEADER))
        self.assertEqual(raw_status(resp), 200, resp[:300])
        second = resp[resp.index(b"HTTP/1.1 ", 10):]
        self.assertRefused(second, 431, "headers_too_large")

    def test_pipelined_413_behind_a_good_request(self):
        good = b"GET /auth/orders/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: " + ALICE + b"\r\n\r\n"
        big = (b"POST /auth/orders/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: " + ALICE +
               b"\r\nContent-Length: 9999\r\n\r\n" + b"y" * 9999)
        resp = exchange(self.tg.port, good + big)
        self.assertEqual(raw_status(resp), 200, resp[:300])
        self.assertRefused(resp[resp.index(b"HTTP/1.1 ", 10):], 413, "payload_too_large")

    def test_chunked_body_over_the_limit(self):
        """A chunked body declares no length: libevent counts it as it reads
        and refuses it past max_body_bytes itself (413, its own HTML, the
        connection closed): the request never reaches a decision."""
        head = (b"POST /auth/orders/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: " + ALICE +
                b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (3000, b"z" * 3000)
        resp = exchange(self.tg.port, head + chunk * 3 + b"0\r\n\r\n")
        self.assertEqual(raw_status(resp), 413, resp[:300])
        self.assertServing()

    def test_counted_and_connections_come_back_to_zero(self):
        before = metric(self.tg.metrics(), "tollgate_requests_total",
                        decision="deny", reason="body_too_large") or 0
        head = (b"POST /auth/orders/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: " + ALICE +
                b"\r\nContent-Length: 5000\r\n\r\n")
        for _ in range(20):
            self.assertRefused(exchange(self.tg.port, head + b"x" * 5000), 413,
                               "payload_too_large")
        after = metric(self.tg.metrics(), "tollgate_requests_total",
                       decision="deny", reason="body_too_large")
        self.assertEqual(after - before, 20)
        wait_for(lambda: metric(self.tg.metrics(), "tollgate_connections") == 0, 10)
        self.assertEqual(metric(self.tg.metrics(), "tollgate_connections"), 0)

    def test_a_silent_client_does_not_keep_the_linger(self):
        """A client that never closes after its 413 is let go after the
        linger time (5 s), not kept."""
        head = (b"POST /auth/orders/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: " + ALICE +
                b"\r\nContent-Length: 5000\r\n\r\n")
        s = socket.create_connection(("127.0.0.1", self.tg.port), timeout=5 * SLOW)
        self.addCleanup(s.close)
        s.sendall(head)
        s.settimeout(10 * SLOW)
        buf = b""
        while b"}" not in buf:
            chunk = s.recv(65536)
            self.assertTrue(chunk, "closed before the answer")
            buf += chunk
        self.assertRefused(buf, 413, "payload_too_large")
        # we keep the socket open and silent: tollgate lets it go
        self.assertTrue(wait_for(lambda: metric(self.tg.metrics(), "tollgate_connections") == 0,
                                 10), "a lingering connection was kept")


class BigAnswerUpstream:
    """Answers every request with a 16 MiB body."""
    SIZE = 16 << 20

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.loop, daemon=True).start()

    def close(self):
        self.sock.close()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.SIZE +
                      b"x" * self.SIZE)
        except OSError:
            pass
        finally:
            c.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class SendingWhileAnswered(UpstreamCase):
    """A client that keeps sending while its (large) answer is written and
    not read: evhttp keeps reading then, to see a close.  Before, one such
    client had tollgate buffer 1.5 GiB in 3 s; now reading pauses past
    max_header_bytes + 64 KiB, and TCP holds the client back."""
    upstream = BigAnswerUpstream
    prefix = "/big/"
    top = {"threads": 1}

    def test_input_is_bounded_while_answering(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10 * SLOW)
        s.connect(("127.0.0.1", self.tg.port))
        self.addCleanup(s.close)
        s.sendall(b"GET /big/x HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 200"))  # the answer is being written
        before = rss_kib(self.tg.proc.pid)
        s.settimeout(2 * SLOW)  # a send blocked this long: TCP holds the client back
        sent, chunk = 0, b"A" * (1 << 20)
        try:
            while sent < (512 << 20):
                s.sendall(chunk)
                sent += len(chunk)
        except socket.timeout:
            pass
        self.assertLess(sent, 64 << 20, "tollgate kept reading: %d MiB taken" % (sent >> 20))
        self.assertLess(rss_kib(self.tg.proc.pid) - before, 64 << 10)


class ProxySizes(UpstreamCase):
    prefix = "/open/"
    top = {"max_header_bytes": MAX_HEADER, "max_body_bytes": MAX_BODY}

    def test_413_and_431_never_reach_the_upstream(self):
        n = len(self.up.requests)
        resp = exchange(self.tg.port, b"POST /open/x HTTP/1.1\r\nHost: t\r\n"
                        b"Content-Length: 5000\r\n\r\n", more=b"b" * 5000)
        Sizes.assertRefused(self, resp, 413, "payload_too_large")
        resp = exchange(self.tg.port, b"GET /open/x HTTP/1.1\r\nHost: t\r\nX-Big: " +
                        b"a" * MAX_HEADER + b"\r\n\r\n")
        Sizes.assertRefused(self, resp, 431, "headers_too_large")
        self.assertEqual(len(self.up.requests), n)
        r = self.tg.req("POST", "/open/y", body=b"k" * 100)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(self.up.requests), n + 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
