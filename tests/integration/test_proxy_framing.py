"""Proxy mode never hands one client's answer to another (server/proxy.c).

A raw-socket upstream answers with every framing a real one can produce:
interim 1xx answers before the final one (Rails/Puma, Node and Go send
103 Early Hints), more bytes than its Content-Length, a body to HEAD, two
Content-Length headers, Content-Length beside Transfer-Encoding, an
unasked-for 101.  For each, what the client gets is right (its own answer,
or 502), and what the *next* client on the pooled upstream connection gets
is its own answer.  threads: 1, so every request shares one pool.
"""
import threading

from harness import RawServer, UpstreamCase, request, wait_for, SLOW

SMUGGLED = b"smuggled!!!"


class RawUpstream(RawServer):
    """Accepts keep-alive connections; answers each request by its path
    with the bytes of a scenario.  Records (connection number, method, path)."""

    def __init__(self):
        super().__init__()
        self.seen = []
        self.alice_arrived = threading.Event()
        self.interim_sent = threading.Event()
        self.start()

    def serve(self, s, n):
        buf = b""
        late = False  # the last answer "had" a body, sent only once the next request came
        s.settimeout(30)
        try:
            while True:
                req, buf = self.read_request(s, buf)
                if req is None:
                    return
                method, path = req
                with self.lock:
                    self.seen.append((n, method, path))
                if late:  # the worst moment: the next request is already out
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n" + SMUGGLED)
                late = path.split("/")[2] in ("headlate", "nm304late")
                for part in self.answer(method, path):
                    if callable(part):
                        part()
                    else:
                        s.sendall(part)
        except OSError:
            pass
        finally:
            s.close()

    @staticmethod
    def ok(body, extra=b""):
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)

    def answer(self, method, path):
        name = path.split("/")[2] if path.count("/") >= 2 else path
        who = path.rsplit("/", 1)[-1].encode()
        if name == "alice":
            self.alice_arrived.set()
            return [self.ok(b"answer-for-" + who)]
        if name in ("early103", "processing102"):
            code = b"103 Early Hints\r\nLink: </s.css>; rel=preload" if name == "early103" \
                else b"102 Processing"
            return [b"HTTP/1.1 " + code + b"\r\n\r\n", self.interim_sent.set,
                    lambda: self.alice_arrived.wait(10 * SLOW),
                    self.ok(b"bob-secret")]
        if name == "many103":
            return [b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n" * 20,
                    self.ok(b"after-many")]
        if name == "interimflood":
            return [b"HTTP/1.1 103 Early Hints\r\nLink: </" + b"a" * 1000 + b">\r\n\r\n"] * 80
        if name == "split":
            return [b"HTTP/1.1 2", b"00 OK\r\nContent-Le", b"ngth: 5\r\n\r\nsp", b"lit"]
        if name == "extra":
            return [self.ok(b"hello") + b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n" + SMUGGLED]
        if name == "headlate":
            return [b"HTTP/1.1 200 OK\r\nContent-Length: 51\r\n\r\n"]
        if name == "nm304late":
            return [b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"]
        if name == "headbody":
            return [b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n" + SMUGGLED]
        if name == "dupcl-same":
            return [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"]
        if name == "dupcl-diff":
            return [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 16\r\n\r\nhello" +
                    SMUGGLED]
        if name == "clte":
            return [b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED]
        if name == "switch101":
            return [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\n\r\n" + SMUGGLED]
        return [self.ok(b"default")]


class ProxyFraming(UpstreamCase):
    upstream = RawUpstream
    prefix = "/raw/"
    route = {"upstream_timeout_ms": 20000}
    top = {"threads": 1}

    def setUp(self):
        self.up.alice_arrived.clear()
        self.up.interim_sent.clear()

    def get(self, path, method="GET"):
        return request(self.tg.port, method, path, timeout=20)

    def assertNextClientGetsItsOwn(self, n=3):
        """The pool's next requests, one at a time (each reuses the idle
        connection when there is one), get their own answers."""
        for i in range(n):
            r = self.get("/raw/alice/next%d" % i)
            self.assertEqual((r.status, r.body), (200, b"answer-for-next%d" % i), r)

    def interim_then_final(self, name):
        """Bob's request gets a 1xx; while it waits, Alice asks.  Before, the
        1xx was taken for Bob's answer, the connection went back to the pool,
        Alice's request went out on it and Alice got Bob's 200."""
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("bob", self.get("/raw/" + name)))
        t.start()
        self.assertTrue(self.up.interim_sent.wait(10 * SLOW), "upstream never saw Bob")
        alice = self.get("/raw/alice/alice")
        t.join(20 * SLOW)
        self.assertEqual((alice.status, alice.body), (200, b"answer-for-alice"), alice)
        bob = out["bob"]
        self.assertEqual((bob.status, bob.body), (200, b"bob-secret"), bob)
        self.assertNextClientGetsItsOwn()

    def test_103_early_hints_are_skipped(self):
        self.interim_then_final("early103")

    def test_102_processing_is_skipped(self):
        self.interim_then_final("processing102")

    def test_many_interim_answers(self):
        r = self.get("/raw/many103")
        self.assertEqual((r.status, r.body), (200, b"after-many"), r)
        self.assertNextClientGetsItsOwn()

    def test_interim_flood_is_refused(self):
        r = self.get("/raw/interimflood")
        self.assertEqual(r.status, 502, r)
        self.assertNextClientGetsItsOwn()

    def test_status_line_in_pieces(self):
        r = self.get("/raw/split")
        self.assertEqual((r.status, r.body), (200, b"split"), r)
        self.assertNextClientGetsItsOwn()

    def test_bytes_past_content_length_never_reach_the_next_client(self):
        r = self.get("/raw/extra")
        self.assertEqual((r.status, r.body), (200, b"hello"), r)
        self.assertNextClientGetsItsOwn()

    def test_body_to_head_never_reaches_the_next_client(self):
        r = self.get("/raw/headbody", method="HEAD")
        self.assertEqual((r.status, r.body), (200, b""), r)
        self.assertNextClientGetsItsOwn()

    def test_late_bytes_after_a_bodiless_answer(self):
        """An upstream that sends a body to HEAD (or to a 304) a moment later:
        the connection is not reused after such answers, so those bytes can
        never become the next client's answer."""
        r = self.get("/raw/headlate", method="HEAD")
        self.assertEqual((r.status, r.body), (200, b""), r)
        self.assertNextClientGetsItsOwn()
        r = self.get("/raw/nm304late")
        self.assertEqual((r.status, r.body), (304, b""), r)
        self.assertNextClientGetsItsOwn()

    def test_ambiguous_framing_is_502(self):
        for name in ("dupcl-same", "dupcl-diff", "clte", "switch101"):
            r = self.get("/raw/" + name)
            self.assertEqual(r.status, 502, (name, r))
            self.assertEqual(r.json()["error"]["code"], "bad_gateway", (name, r.body))
            self.assertNotIn(SMUGGLED, r.body)
            self.assertNextClientGetsItsOwn(2)
        # libevent itself fails the Content-Length + chunked answer
        # (upstream_error); tollgate refuses the other three
        def refused():
            return [a for a in self.tg.audit() if a.get("reason") == "upstream_bad_answer"]
        wait_for(lambda: len(refused()) >= 3, 5)
        self.assertEqual([a["status"] for a in refused()], [502] * 3)

    def test_a_killed_connection_is_closed(self):
        """After an answer with bytes left over, the connection is closed:
        the next request arrives on a new upstream connection."""
        self.get("/raw/extra")
        with self.up.lock:
            used = self.up.seen[-1][0]
        self.get("/raw/alice/after")
        with self.up.lock:
            self.assertNotEqual(self.up.seen[-1][0], used, self.up.seen[-5:])


if __name__ == "__main__":
    import unittest
    unittest.main()
