"""Proxy mode streams upstream answers (server/proxy.c, server/pipeline.c).

The answer is passed on as it arrives, never held whole: past 256 KiB
queued for a client that does not read, tollgate stops reading the upstream
and TCP holds the upstream back.  Before, 10 clients not reading a 32 MiB
answer took tollgate's RSS from 11 to 316 MiB.  A raw-socket upstream
(below) answers with Content-Length or chunked bodies, cuts them short, goes
silent, and reports when its socket send blocks (the stall) and when
tollgate closed its connection.  Clients are raw sockets too, so that every
byte of framing is checked: Content-Length passed as is, chunked re-framed,
a truncated answer seen as truncated (closed short of its length, or without
its last chunk), never as a complete 200.
"""
import hashlib
import os
import select
import signal
import socket
import sys
import threading
import time

from harness import RawServer, UpstreamCase, TollgateCase, metric, wait_for, SLOW

BIG = 32 << 20
BLOCK = hashlib.sha256(b"block").digest() * 2048  # 64 KiB, not compressible by accident


def body_of(size):
    """The deterministic body of `size` bytes the upstream sends."""
    n, rest = divmod(size, len(BLOCK))
    return BLOCK * n + BLOCK[:rest]


def _big_sha():
    h = hashlib.sha256()
    for _ in range(BIG // len(BLOCK)):
        h.update(BLOCK)
    return h.hexdigest()


BIG_SHA = _big_sha()


class StreamUpstream(RawServer):
    """Accepts keep-alive connections; answers each request by its path
    (/s/<scenario>/<id>).  Records, per request id, whether its socket send
    blocked for a while (`stalled`), how many body bytes it sent, and whether
    tollgate closed the connection under it (`peer_closed`)."""

    sndbuf = 65536

    def __init__(self):
        super().__init__()
        self.stalled, self.sent, self.peer_closed = set(), {}, set()
        self.conns = []  # connection number of each request, in order
        self.start()

    def send(self, s, rid, data):
        """sendall, noting when the socket stays unwritable (tollgate
        stopped reading) for 300 ms."""
        view = memoryview(data)
        while view:
            _, w, _ = select.select([], [s], [], 0.3)
            if not w:
                with self.lock:
                    self.stalled.add(rid)
                select.select([], [s], [], 60)
                continue
            try:
                n = s.send(view[:65536], socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            view = view[n:]
            with self.lock:
                self.sent[rid] = self.sent.get(rid, 0) + n

    def wait_peer_close(self, s, rid):
        """Stay silent until tollgate closes the connection (bounded)."""
        s.settimeout(30)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass
        with self.lock:
            self.peer_closed.add(rid)

    def serve(self, s, n):
        buf = b""
        try:
            while True:
                req, buf = self.read_request(s, buf)
                path = req[1] if req is not None else None
                if path is None:
                    return
                _, _, scenario, rid = path.split("/", 3)
                with self.lock:
                    self.conns.append((rid, n))
                if not self.answer(s, scenario, rid):
                    return
        except OSError:
            with self.lock:
                self.peer_closed.add(rid)
        finally:
            s.close()

    def answer(self, s, scenario, rid):
        """Answer one request; False: the connection is done."""
        if scenario == "small":
            body = b"answer-for-" + rid.encode()
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            return True
        if scenario == "big":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
            for _ in range(BIG // len(BLOCK)):
                self.send(s, rid, BLOCK)
            return True
        if scenario == "chunked":  # pieces of every size, 1 byte to 300 KiB
            s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            data, off = body_of(1 << 20), 0
            for size in (1, 7, 4096, 65536, 300000, 17, 100000):
                piece = data[off:off + size]
                off += size
                self.send(s, rid, b"%x\r\n%s\r\n" % (len(piece), piece))
            self.send(s, rid, b"0\r\n\r\n")
            return True
        if scenario == "close":  # no framing: the body ends when the upstream closes
            s.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            self.send(s, rid, body_of(500000))
            return False
        if scenario == "cutcl":  # 300 KiB of a 1 MiB Content-Length, then closed
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 20))
            self.send(s, rid, body_of(300 << 10))
            return False
        if scenario == "cutchunked":  # two chunks, then closed without the last
            s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            self.send(s, rid, b"10000\r\n%s\r\n" % body_of(65536) * 2)
            return False
        if scenario == "silent":  # 100 KiB, then nothing: tollgate's idle timeout
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 20))
            self.send(s, rid, body_of(100 << 10))
            self.wait_peer_close(s, rid)
            return False
        if scenario == "endless":  # a chunked answer that never ends
            s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"%x\r\n%s\r\n" % (len(BLOCK), BLOCK)
            while True:
                self.send(s, rid, piece)
        if scenario == "badlen":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\nhello")
            return False
        if scenario == "bighead":  # to HEAD: the length of a body not sent
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (65 << 20))
            return False
        if scenario == "toobig":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nhello" % (65 << 20))
            return False
        if scenario == "gzipte":
            s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                      b"5\r\nhello\r\n0\r\n\r\n")
            return False
        s.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return True


# ---------------------------------------------------------------- client side

def connect(port, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(20 * SLOW)
    s.connect(("127.0.0.1", port))
    return s


class Reader:
    """Reads one answer off a raw socket, keeping every byte of framing."""

    def __init__(self, s):
        self.s, self.buf, self.eof = s, b"", False

    def more(self):
        try:
            chunk = self.s.recv(1 << 20)
        except (ConnectionResetError, socket.timeout):
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk
        return bool(chunk)

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            if not self.more():
                raise AssertionError("no answer head: %r" % self.buf[:300])
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs.setdefault(k.strip().lower(), []).append(v.strip())
        return int(lines[0].split(" ")[1]), hdrs

    def until_close(self):
        while self.more():
            pass
        out, self.buf = self.buf, b""
        return out

    def exactly(self, n, sha=None):
        """n body bytes (hashed as they come when `sha` is given, to keep
        memory flat); returns (bytes or hex digest, complete)."""
        h = hashlib.sha256() if sha else None
        got, keep = 0, []
        while got < n:
            if not self.buf and not self.more():
                break
            take = self.buf[:n - got]
            self.buf = self.buf[len(take):]
            got += len(take)
            (h.update if h else keep.append)(take)
        return (h.hexdigest() if h else b"".join(keep)), got == n

    def chunked(self):
        """De-chunk; returns (body, saw the last chunk)."""
        body = []
        while True:
            while b"\r\n" not in self.buf:
                if not self.more():
                    return b"".join(body), False
            line, _, self.buf = self.buf.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while b"\r\n" not in self.buf:  # the (empty) trailer
                    if not self.more():
                        return b"".join(body), False
                self.buf = self.buf.partition(b"\r\n")[2]
                return b"".join(body), True
            while len(self.buf) < size + 2:
                if not self.more():
                    body.append(self.buf[:size])
                    return b"".join(body), False
            body.append(self.buf[:size])
            self.buf = self.buf[size + 2:]


def ask(s, path, version="1.1", extra=b"", method=b"GET"):
    s.sendall(b"%s %s HTTP/%s\r\nHost: t\r\n%s\r\n" % (method, path.encode(),
                                                        version.encode(), extra))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class StreamCase(UpstreamCase):
    upstream = StreamUpstream
    prefix = "/s/"
    route = {"upstream_timeout_ms": 2000}
    top = {"threads": 1, "idle_timeout_ms": 60000}
    n = [0]

    def rid(self, name):
        self.n[0] += 1
        return "%s%d" % (name, self.n[0])

    def assertNextClientGetsItsOwn(self, n=2):
        for _ in range(n):
            rid = self.rid("next")
            s = connect(self.tg.port)
            try:
                ask(s, "/s/small/" + rid)
                r = Reader(s)
                status, hdrs = r.head()
                body, whole = r.exactly(int(hdrs["content-length"][0]))
                self.assertEqual((status, body, whole),
                                 (200, b"answer-for-" + rid.encode(), True))
            finally:
                s.close()

    def audit_reason(self, rid):
        """The audit reason of the request whose upstream id is `rid`."""
        def find():
            for a in self.tg.audit():
                if a.get("path", "").endswith("/" + rid):
                    return a
            return None
        a = wait_for(find, 5)
        self.assertIsNotNone(a, "no audit line for " + rid)
        return a


class SlowClients(StreamCase):
    def test_ten_clients_not_reading_32_mib(self):
        """Memory per slow client is bounded whatever the answer's size."""
        self.assertNextClientGetsItsOwn(1)  # warm: the pool, the allocator
        before = rss_kib(self.tg.proc.pid)
        socks, rids = [], []
        for i in range(10):
            rid = self.rid("big")
            s = connect(self.tg.port, rcvbuf=65536)
            self.addCleanup(s.close)
            ask(s, "/s/big/" + rid)
            socks.append(s)
            rids.append(rid)
        # Every upstream send has blocked: tollgate stopped reading them.
        stalled = wait_for(lambda: self.up.stalled.issuperset(rids), 30)
        with self.up.lock:
            sent = dict(self.up.sent)
        self.assertTrue(stalled, "upstreams never stalled; sent %r" % sent)
        # and stays so: what they could send is bounded (socket buffers
        # and 256 KiB in tollgate), well short of the answer
        for rid in rids:
            self.assertLess(sent.get(rid, 0), 16 << 20, (rid, sent))
        grown = rss_kib(self.tg.proc.pid) - before
        if os.environ.get("STREAM_REPORT"):
            print("\nRSS before %d KiB, with 10 stalled 32 MiB answers %d KiB (+%d KiB)"
                  % (before, before + grown, grown), file=sys.stderr)
        # 48 MiB (+5 MiB measured; holding the answers took +316 MiB).  ASan
        # keeps freed memory in its quarantine (256 MiB) and adds shadow
        # pages: there the bound is looser, still well under the answers.
        bound = (48 if SLOW == 1.0 else 160) << 10
        self.assertLess(grown, bound, "RSS grew %d KiB" % grown)
        # Now every client reads its answer: exactly the 32 MiB, in order.
        out = {}

        def read(i):
            r = Reader(socks[i])
            status, hdrs = r.head()
            out[i] = (status, hdrs.get("content-length"), hdrs.get("transfer-encoding"),
                      r.exactly(BIG, sha=True))
        threads = [threading.Thread(target=read, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60 * SLOW)
        for i in range(10):
            self.assertEqual(out.get(i), (200, [str(BIG)], None, (BIG_SHA, True)), i)
        self.assertNextClientGetsItsOwn()


class Framing(StreamCase):
    def test_content_length_is_passed_as_is(self):
        s = connect(self.tg.port)
        self.addCleanup(s.close)
        rid = self.rid("big")
        ask(s, "/s/big/" + rid)
        r = Reader(s)
        status, hdrs = r.head()
        self.assertEqual((status, hdrs.get("content-length"), hdrs.get("transfer-encoding")),
                         (200, [str(BIG)], None))
        self.assertEqual(r.exactly(BIG, sha=True), (BIG_SHA, True))
        # kept alive: the same connection serves the next request
        ask(s, "/s/small/again")
        status, hdrs = r.head()
        self.assertEqual((status, r.exactly(int(hdrs["content-length"][0]))),
                         (200, (b"answer-for-again", True)))

    def test_chunked_is_streamed_and_reframed(self):
        s = connect(self.tg.port)
        self.addCleanup(s.close)
        ask(s, "/s/chunked/" + self.rid("c"))
        r = Reader(s)
        status, hdrs = r.head()
        self.assertEqual((status, hdrs.get("transfer-encoding"), hdrs.get("content-length")),
                         (200, ["chunked"], None))
        body, last = r.chunked()
        want = body_of(1 << 20)[:1 + 7 + 4096 + 65536 + 300000 + 17 + 100000]
        self.assertEqual((len(body), body == want, last), (len(want), True, True))
        self.assertNextClientGetsItsOwn()

    def test_close_delimited_upstream_is_chunked_to_the_client(self):
        s = connect(self.tg.port)
        self.addCleanup(s.close)
        ask(s, "/s/close/" + self.rid("d"))
        r = Reader(s)
        status, hdrs = r.head()
        self.assertEqual(hdrs.get("transfer-encoding"), ["chunked"])
        body, last = r.chunked()
        self.assertEqual((body == body_of(500000), last), (True, True))

    def test_http10_client_gets_a_close_delimited_body(self):
        """HTTP/1.0 has no chunks: without the upstream's Content-Length the
        body ends when tollgate closes the connection, keep-alive or not."""
        for extra in (b"", b"Connection: keep-alive\r\n"):
            s = connect(self.tg.port)
            self.addCleanup(s.close)
            ask(s, "/s/chunked/" + self.rid("h"), version="1.0", extra=extra)
            r = Reader(s)
            status, hdrs = r.head()
            self.assertEqual((status, hdrs.get("transfer-encoding"), hdrs.get("content-length"),
                              hdrs.get("connection")), (200, None, None, ["close"]), extra)
            body = r.until_close()
            self.assertEqual(len(body), 1 + 7 + 4096 + 65536 + 300000 + 17 + 100000, extra)
        # with a Content-Length, a 1.0 keep-alive client keeps its connection
        s = connect(self.tg.port)
        self.addCleanup(s.close)
        ask(s, "/s/small/k10", version="1.0", extra=b"Connection: keep-alive\r\n")
        r = Reader(s)
        status, hdrs = r.head()
        self.assertEqual(r.exactly(int(hdrs["content-length"][0])), (b"answer-for-k10", True))
        ask(s, "/s/small/k10b", version="1.0", extra=b"Connection: keep-alive\r\n")
        status, hdrs = r.head()
        self.assertEqual(r.exactly(int(hdrs["content-length"][0])), (b"answer-for-k10b", True))

    def test_head_refused_before_anything_is_sent(self):
        """What libevent would only fail once the body is read is refused at
        the head: a clean 502, never a 200 cut short."""
        for name, reason in (("badlen", "upstream_bad_answer"), ("gzipte", "upstream_bad_answer"),
                             ("toobig", "upstream_error")):
            rid = self.rid(name)
            s = connect(self.tg.port)
            self.addCleanup(s.close)
            ask(s, "/s/%s/%s" % (name, rid))
            r = Reader(s)
            status, hdrs = r.head()
            self.assertEqual(status, 502, name)
            self.assertEqual(self.audit_reason(rid)["reason"], reason, name)
            self.assertNextClientGetsItsOwn(1)

    def test_head_of_a_large_body_is_not_refused(self):
        """The 64 MiB bound is for bodies read: a HEAD answer's Content-Length
        describes one that is not sent."""
        s = connect(self.tg.port)
        self.addCleanup(s.close)
        ask(s, "/s/bighead/" + self.rid("bh"), method=b"HEAD")
        r = Reader(s)
        status, hdrs = r.head()
        self.assertEqual((status, hdrs.get("content-length")), (200, [str(65 << 20)]))
        self.assertNextClientGetsItsOwn(1)


class Truncation(StreamCase):
    def check_cut(self, name, chunked):
        rid = self.rid(name)
        s = connect(self.tg.port)
        self.addCleanup(s.close)
        ask(s, "/s/%s/%s" % (name, rid))
        r = Reader(s)
        status, hdrs = r.head()
        self.assertEqual(status, 200)
        if chunked:
            self.assertEqual(hdrs.get("transfer-encoding"), ["chunked"])
            body, last = r.chunked()
            self.assertFalse(last, "a cut answer ended with the last chunk")
        else:
            self.assertEqual(hdrs.get("content-length"), [str(1 << 20)])
            body, whole = r.exactly(1 << 20)
            self.assertFalse(whole, "a cut answer arrived whole")
        self.assertTrue(r.eof, "the connection was not closed")
        a = self.audit_reason(rid)
        self.assertEqual((a["status"], a["decision"], a["reason"], a["upstream_status"]),
                         (200, "allow", "upstream_truncated", 200), a)
        self.assertNextClientGetsItsOwn()
        return body

    def test_upstream_cut_mid_content_length(self):
        body = self.check_cut("cutcl", chunked=False)
        self.assertEqual(body, body_of(len(body)))  # what came is the upstream's

    def test_upstream_cut_mid_chunked(self):
        body = self.check_cut("cutchunked", chunked=True)
        self.assertEqual(body, body_of(len(body)))

    def test_upstream_silent_mid_body_is_an_idle_timeout(self):
        """upstream_timeout_ms (2 s here) without a byte after the head: cut,
        and the upstream connection closed (the upstream sees EOF)."""
        t0 = time.monotonic()
        self.check_cut("silent", chunked=False)
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)
        self.assertTrue(wait_for(lambda: any(r.startswith("silent") for r in self.up.peer_closed),
                                 10))

    def test_client_leaving_mid_stream_closes_the_upstream(self):
        before = metric(self.tg.metrics(), "tollgate_requests_total",
                        decision="allow", reason="client_closed") or 0
        rid = self.rid("endless")
        s = connect(self.tg.port)
        ask(s, "/s/endless/" + rid)
        r = Reader(s)
        self.assertEqual(r.head()[0], 200)
        self.assertTrue(r.more())
        s.close()
        self.assertTrue(wait_for(lambda: rid in self.up.peer_closed, 10),
                        "the upstream connection was kept open")
        self.assertNextClientGetsItsOwn()
        with self.up.lock:
            used = [n for q, n in self.up.conns if q == rid]
            later = [n for q, n in self.up.conns[self.up.conns.index((rid, used[0])) + 1:]]
        self.assertNotIn(used[0], later, "the abandoned connection was reused")
        self.assertTrue(wait_for(lambda: metric(self.tg.metrics(), "tollgate_requests_total",
                                                decision="allow",
                                                reason="client_closed") == before + 1, 5))
        self.assertTrue(wait_for(lambda: metric(self.tg.metrics(),
                                                "tollgate_connections") == 0, 10))


class OwnServer(TollgateCase):
    """A tollgate per test (it is stopped by the test), proxying /s/;
    `route` adds keys to the route, `env` environment variables."""
    shared_server = False
    top = {}
    route = {}

    def setUp(self):
        self.up = StreamUpstream()
        self.addCleanup(self.up.close)

        def configure(cfg):
            cfg["threads"] = 1
            cfg.update(self.top)
            cfg["routes"] = [dict({"name": "s", "match": {"path_prefix": "/s/"},
                                   "upstream": self.up.url, "auth": "none"}, **self.route)]
        self.tg = self.spawn(configure, env=self.env)


class Drain(OwnServer):
    """SIGTERM waits for a streamed answer to be written, and counts it."""

    def test_sigterm_waits_for_a_streamed_answer(self):
        s = connect(self.tg.port, rcvbuf=65536)
        self.addCleanup(s.close)
        ask(s, "/s/big/drain")
        self.assertTrue(wait_for(lambda: "drain" in self.up.stalled, 30))
        self.tg.signal(signal.SIGTERM)
        r = Reader(s)
        status, hdrs = r.head()
        self.assertEqual(r.exactly(BIG, sha=True), (BIG_SHA, True))
        self.assertEqual(self.tg.proc.wait(10 * SLOW), 0)
        self.assertNotIn("drain timeout", self.tg.stderr())

    def test_counters_come_back_after_a_client_leaves(self):
        """A client that left mid-stream is no longer waited for: the drain
        ends at once, not at its 10 s deadline."""
        s = connect(self.tg.port)
        ask(s, "/s/endless/gone")
        r = Reader(s)
        self.assertEqual(r.head()[0], 200)
        s.close()
        self.assertTrue(wait_for(lambda: "gone" in self.up.peer_closed, 10))
        self.assertTrue(wait_for(lambda: metric(self.tg.metrics(),
                                                "tollgate_connections") == 0, 10))
        t0 = time.monotonic()
        self.tg.signal(signal.SIGTERM)
        self.assertEqual(self.tg.proc.wait(10 * SLOW), 0)
        self.assertLess(time.monotonic() - t0, 5 * SLOW)
        self.assertNotIn("drain timeout", self.tg.stderr())


class NeverReads(OwnServer):
    """A client that never reads is not held forever: the connection write
    timeout (idle_timeout_ms, 1 s here) closes it, and its upstream."""
    top = {"idle_timeout_ms": 1000}

    def test_a_client_that_never_reads_is_closed(self):
        s = connect(self.tg.port, rcvbuf=65536)
        self.addCleanup(s.close)
        ask(s, "/s/big/never")
        self.assertTrue(wait_for(lambda: "never" in self.up.stalled, 30))
        self.assertTrue(wait_for(lambda: "never" in self.up.peer_closed, 10),
                        "the upstream connection was kept")
        self.assertTrue(wait_for(lambda: metric(self.tg.metrics(),
                                                "tollgate_connections") == 0, 10))
        self.assertEqual(metric(self.tg.metrics(), "tollgate_requests_total",
                                decision="allow", reason="client_closed"), 1)


class PausedStreamsGiveWay(OwnServer):
    """Clients that never read cannot hold the upstream pool (attack review:
    256 such clients, SRV_PROXY_MAX_CONNS, made the next request wait for
    upstream_timeout_ms and get a 504).  The pool is 4 here
    (TOLLGATE_DEBUG_PROXY_MAX_CONNS); upstream_timeout_ms is 30 s and the
    victim's socket times out after 5 s, so a 200 can only come from a
    connection taken from a paused stream: the one paused longest, whose
    client sees its answer cut short (audit reason client_too_slow)."""
    env = {"TOLLGATE_DEBUG_PROXY_MAX_CONNS": "4"}
    top = {"idle_timeout_ms": 60000}
    route = {"upstream_timeout_ms": 30000}
    POOL = 4

    def small(self, rid):
        s = connect(self.tg.port)
        s.settimeout(5 * SLOW)
        try:
            ask(s, "/s/small/" + rid)
            r = Reader(s)
            status, hdrs = r.head()
            return status, r.exactly(int(hdrs["content-length"][0]))
        finally:
            s.close()

    def slow_count(self):
        return metric(self.tg.metrics(), "tollgate_requests_total",
                      decision="allow", reason="client_too_slow") or 0

    def test_paused_streams_never_starve_the_pool(self):
        self.assertIn("TOLLGATE_DEBUG_PROXY_MAX_CONNS", self.tg.stderr())
        holders, rids = [], []
        # One at a time, each stalled (paused) before the next: the pause
        # order is the holders' order.
        for i in range(self.POOL):
            rid = "hold%d" % i
            s = connect(self.tg.port, rcvbuf=4096)
            self.addCleanup(s.close)
            ask(s, "/s/big/" + rid)
            self.assertTrue(wait_for(lambda: rid in self.up.stalled, 30),
                            "%s never stalled" % rid)
            holders.append(s)
            rids.append(rid)
        self.assertEqual(self.up.nconn, self.POOL)  # the pool is full, all paused
        self.assertEqual(self.slow_count(), 0)

        # The victim gets its answer, on the slot of the stream paused longest.
        self.assertEqual(self.small("victim1"), (200, (b"answer-for-victim1", True)))
        self.assertEqual(self.slow_count(), 1)
        self.assertTrue(wait_for(lambda: rids[0] in self.up.peer_closed, 10),
                        "the cut stream's upstream connection was kept")
        cut = wait_for(lambda: [a for a in self.tg.audit()
                                if a.get("reason") == "client_too_slow"], 5) or []
        self.assertEqual([(a["path"], a["status"], a["decision"], a["upstream_status"])
                          for a in cut], [("/s/big/" + rids[0], 200, "allow", 200)])
        # Its client sees the answer truncated: short of its Content-Length,
        # then closed; what came is the upstream's.
        r = Reader(holders[0])
        status, hdrs = r.head()
        self.assertEqual((status, hdrs.get("content-length")), (200, [str(BIG)]))
        got = []
        while r.buf or r.more():
            got.append(r.buf)
            r.buf = b""
        body = b"".join(got)
        self.assertTrue(r.eof)
        self.assertLess(len(body), BIG)
        self.assertEqual(body, body_of(len(body)))

        # The victim's connection went back to the pool: the next request
        # takes it, no other paused stream is cut.
        self.assertEqual(self.small("victim2"), (200, (b"answer-for-victim2", True)))
        self.assertEqual(self.slow_count(), 1)
        with self.up.lock:
            used = [n for q, n in self.up.conns if q == rids[0]]
            later = [n for q, n in self.up.conns if q.startswith("victim")]
        self.assertNotIn(used[0], later, "the cut connection was reused")

        # The other paused streams were never touched: every byte, in order.
        for s in holders[1:]:
            r = Reader(s)
            status, hdrs = r.head()
            self.assertEqual((status, r.exactly(BIG, sha=True)), (200, (BIG_SHA, True)))
        for s in holders:
            s.close()
        self.assertEqual(self.small("after"), (200, (b"answer-for-after", True)))
        self.assertTrue(wait_for(lambda: metric(self.tg.metrics(),
                                                "tollgate_connections") == 0, 10))
        self.assertEqual(self.slow_count(), 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
