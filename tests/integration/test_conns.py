"""No state of one connection reaches another (server/conn.c).

Thousands of short connections that send a NUL in a request head, garbage,
half a head or nothing, and go away in every way a client can (FIN, RST),
interleaved with valid requests from other clients on fresh connections and
on one kept-alive connection: every valid request gets its own answer, and
tollgate_connections comes back to 0 once all have closed.

Before: the connection table found an entry by fd and trusted it when the
bufferevent pointer matched; a freed bufferevent's address is handed out
again by malloc, so an entry left by a connection that went before its first
request was complete (no close callback yet) was taken for the next
connection on that fd, with its `nul` flag: an innocent request got
400 nul_in_header, and the connection count drifted.
"""
import http.client
import socket
import struct

from harness import (TollgateCase, UpstreamCase, api_key, key_of, metric, request,
                     standard_config, wait_for, SLOW)

ALICE = key_of("alice").encode()


def _rst_close(s):
    """Close with RST (SO_LINGER 0), as a client that crashed."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


BAD = [
    # a head with a NUL, never finished
    b"GET /auth/orders/1 HTTP/1.1\r\nHost: a\r\nX-API-Key: " + ALICE + b"\0junk",
    # a head with a NUL, finished (answered 400 and closed by tollgate)
    b"GET /auth/orders/1 HTTP/1.1\r\nHost: a\r\nX-Junk: a\0b\r\n\r\n",
    # garbage
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)),
    # half a request line
    b"GET /auth/ord",
    # half a head
    b"GET /auth/orders/1 HTTP/1.1\r\nHost: a\r\nX-API-Key: it-",
    # nothing
    b"",
]


class ConnectionState(TollgateCase):
    @staticmethod
    def configure(cfg):
        standard_config(cfg)
        cfg["threads"] = 1  # one worker: every connection shares one table and one malloc arena

    def bad_connection(self, i):
        s = socket.create_connection(("127.0.0.1", self.tg.port), timeout=5 * SLOW)
        data = BAD[i % len(BAD)]
        try:
            if data:
                s.sendall(data)
        except OSError:
            pass
        if i % 3 == 0:
            _rst_close(s)
        else:
            s.close()

    def valid_fresh(self, n):
        conn = http.client.HTTPConnection("127.0.0.1", self.tg.port, timeout=5 * SLOW)
        try:
            conn.request("GET", "/auth/orders/%d" % n, headers=api_key("bob"))
            r = conn.getresponse()
            body = r.read()
            return r.status, r.getheader("X-Auth-Client-Id"), body
        finally:
            conn.close()

    def test_bad_connections_never_reach_valid_ones(self):
        kept = http.client.HTTPConnection("127.0.0.1", self.tg.port, timeout=5 * SLOW)
        self.addCleanup(kept.close)
        wrong = []
        for i in range(3000):
            self.bad_connection(i)
            if i % 3 == 0:
                st, who, body = self.valid_fresh(i)
                if st != 200 or who != "bob":
                    wrong.append(("fresh", i, st, who, body[:200]))
            if i % 10 == 0:
                kept.request("GET", "/auth/orders/%d" % i, headers=api_key("alice"))
                r = kept.getresponse()
                body = r.read()
                if r.status != 200 or r.getheader("X-Auth-Client-Id") != "alice":
                    wrong.append(("kept", i, r.status, r.getheader("X-Auth-Client-Id"),
                                  body[:200]))
        self.assertEqual(wrong, [], "%d valid requests answered wrongly" % len(wrong))
        kept.close()

        def open_conns():
            v = metric(self.tg.metrics(), "tollgate_connections")
            return v == 0 and v
        wait_for(open_conns, 10)
        self.assertEqual(metric(self.tg.metrics(), "tollgate_connections"), 0)
        self.assertServing()


class OverMaxConnections(UpstreamCase):
    """A connection refused over max_connections at its first bytes: before,
    a whole request in that first read was still parsed, decided and
    proxied (only its answer was lost)."""
    prefix = "/p/"
    top = {"threads": 1, "max_connections": 2}

    def test_refused_connection_is_never_parsed(self):
        held = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", self.tg.port), timeout=5 * SLOW)
            self.addCleanup(s.close)
            s.sendall(b"G")
            held.append(s)
        self.assertTrue(wait_for(lambda: metric(self.tg.metrics(), "tollgate_connections") == 2,
                                 5))
        body = b"transfer=1000000"
        s = socket.create_connection(("127.0.0.1", self.tg.port), timeout=5 * SLOW)
        self.addCleanup(s.close)
        s.sendall(b"POST /p/over-limit HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body))
        try:
            self.assertEqual(s.recv(65536), b"")
        except ConnectionResetError:
            pass
        self.assertEqual(metric(self.tg.metrics(), "tollgate_connections_refused_total"), 1)
        # free a slot; a request after it reaches the upstream, the refused one never
        held[0].close()
        self.assertTrue(wait_for(lambda: metric(self.tg.metrics(), "tollgate_connections") == 1,
                                 5))
        self.assertEqual(request(self.tg.port, "GET", "/p/after").status, 200)
        self.assertEqual([r["path"] for r in self.up.requests], ["/p/after"])


if __name__ == "__main__":
    import unittest
    unittest.main()
