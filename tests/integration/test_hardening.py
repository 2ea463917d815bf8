"""Hostile clients and exhausted resources: a second instance on the same
address, accept() failing with EMFILE (server/listener.c); slow requests
and connection floods (server/conn.c)."""
import http.client
import os
import resource
import socket
import time

from harness import (TollgateCase, api_key, standard_config, metric, request, wait_for, SLOW)


def cpu_seconds(pid):
    """User + system CPU seconds used so far by process `pid` (all threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SecondInstance(TollgateCase):
    @staticmethod
    def configure(cfg):
        standard_config(cfg)

    def test_second_instance_on_the_same_address_fails(self):
        """SO_REUSEPORT would let a second process join the listener and take
        a share of the connections with its own config: it must not start."""
        other = self.spawn(start=False)
        other.config["listen"] = "127.0.0.1:%d" % self.tg.port
        other.write_config()
        other.start(wait=False)
        try:
            rc = other.proc.wait(10 * SLOW)
        except Exception:
            self.fail("the second instance is still running")
        self.assertEqual(rc, 3, other.stderr())
        self.assertIn("127.0.0.1:%d: Address already in use" % self.tg.port, other.stderr())
        # the first one still answers every connection
        for _ in range(20):
            self.assertEqual(self.tg.get("/auth/orders/1", api_key("alice")).status, 200)


class FileDescriptorsRunOut(TollgateCase):
    """Started with a limit of 64 open files and offered 100 connections that
    never send anything: accept() fails with EMFILE.  Before, both workers
    spun on accept() at about 1.4 cores and wrote millions of log lines; now
    the listener pauses 100 ms at a time, logs one line per 10 s, and an open
    keep-alive connection keeps its answers."""
    shared_server = False
    NOFILE = 64

    def test_emfile_pauses_the_listener(self):
        tg = self.spawn(standard_config, start=False)
        tg.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                (self.NOFILE, self.NOFILE))
        tg.start()
        healthy = http.client.HTTPConnection("127.0.0.1", tg.port, timeout=5 * SLOW)
        self.addCleanup(healthy.close)
        healthy.request("GET", "/auth/orders/1", headers=api_key("alice"))
        self.assertEqual(healthy.getresponse().read() is not None, True)

        idle = []
        self.addCleanup(lambda: [s.close() for s in idle])
        for _ in range(100):
            s = socket.socket()
            s.settimeout(2)
            s.connect(("127.0.0.1", tg.port))  # completes in the kernel's backlog
            idle.append(s)
        # the fds run out: accept() fails (logged at once, then once per 10 s)
        self.assertTrue(wait_for(lambda: "Too many open files" in tg.stderr(), 10),
                        tg.stderr()[-2000:])

        cpu0, t0 = cpu_seconds(tg.proc.pid), time.monotonic()
        answered = 0
        for _ in range(30):
            healthy.request("GET", "/auth/orders/1", headers=api_key("alice"))
            r = healthy.getresponse()
            r.read()
            answered += r.status == 200
            time.sleep(0.05)  # pacing: the CPU is sampled over 1.5 s or more
        busy = (cpu_seconds(tg.proc.pid) - cpu0) / (time.monotonic() - t0)
        self.assertEqual(answered, 30)
        # A resource bound, not a benchmark: spinning on accept() took more
        # than a core; paused, the process is nearly idle.
        self.assertLess(busy, 0.5, "tollgate used %.0f%% of a core" % (busy * 100))
        lines = [ln for ln in tg.stderr().splitlines() if "accept:" in ln]
        self.assertGreaterEqual(len(lines), 1, tg.stderr()[-2000:])
        self.assertLessEqual(len(lines), 4, "\n".join(lines[:10]))
        self.assertIn("Too many open files", lines[0])

        # Recovery: the idle connections go, new ones are accepted again.
        for s in idle:
            s.close()
        idle.clear()
        healthy.close()

        def fresh():
            try:
                return request(tg.port, "GET", "/healthz", timeout=1).status == 200
            except OSError:
                return False
        self.assertTrue(wait_for(fresh, 10, 0.1),
                        "no new connection accepted after the fds came back")
        m = request(tg.admin_port, "GET", "/metrics").body.decode()
        self.assertGreater(metric(m, "tollgate_accept_errors_total", error="emfile") or 0, 0,
                           tg.stderr()[-1500:] + [ln for ln in m.splitlines() if "accept" in ln].__repr__())


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


class Slowloris(TollgateCase):
    """Clients that send their headers a byte at a time keep a connection
    forever against an idle timer that every byte resets.  A request now has
    request_read_timeout_ms from its first byte; a healthy client keeps its
    answers meanwhile."""
    shared_server = False
    N = 300
    TIMEOUT_MS = 2000

    def test_slow_headers_are_cut_at_the_deadline(self):
        def configure(cfg):
            standard_config(cfg)
            cfg["request_read_timeout_ms"] = self.TIMEOUT_MS
        tg = self.spawn(configure)
        healthy = http.client.HTTPConnection("127.0.0.1", tg.port, timeout=5 * SLOW)
        self.addCleanup(healthy.close)

        def healthy_round(n):
            lat = []
            for _ in range(n):
                t = time.monotonic()
                healthy.request("GET", "/auth/orders/1", headers=api_key("alice"))
                r = healthy.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
                lat.append(time.monotonic() - t)
            return lat

        base = healthy_round(200)
        slow, first_byte = [], []
        self.addCleanup(lambda: [s.close() for s in slow])
        for _ in range(self.N):
            s = socket.create_connection(("127.0.0.1", tg.port), timeout=5)
            first_byte.append(time.monotonic())  # before tollgate can see it
            s.sendall(b"GET /auth/orders/1 HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            slow.append(s)
        start = time.monotonic()
        cut_at = {}  # connection -> seconds from its own first byte
        under_attack = []
        # One more byte per connection per round (0.2 s apart): each keeps
        # evhttp's idle timer fresh; only the request deadline can end them.
        # That deadline plus the once-a-second check is 3 s; wait 3x that.
        deadline = start + 3 * (self.TIMEOUT_MS / 1000 + 1) * SLOW
        while len(cut_at) < self.N and time.monotonic() < deadline:
            for i, s in enumerate(slow):
                if i in cut_at:
                    continue
                try:
                    s.send(b"a")
                except OSError:
                    cut_at[i] = time.monotonic() - first_byte[i]
            under_attack += healthy_round(20)
            time.sleep(0.2)  # pacing of the attack, not a wait
        # a shut-down socket may still take a send or two: read to be sure
        for i, s in enumerate(slow):
            if i not in cut_at:
                s.settimeout(0.5)
                try:
                    if s.recv(1) == b"":
                        cut_at[i] = time.monotonic() - first_byte[i]
                except socket.timeout:
                    pass  # still open: counted below
                except OSError:
                    cut_at[i] = time.monotonic() - first_byte[i]
        self.assertEqual(len(cut_at), self.N, "%d slow connections still open after %.1f s"
                         % (self.N - len(cut_at), time.monotonic() - start))
        # Not before the deadline: each is measured from its own first byte,
        # sent before tollgate could start its clock (ms clock: 10 ms slack).
        self.assertGreater(min(cut_at.values()), self.TIMEOUT_MS / 1000 - 0.01)
        m = request(tg.admin_port, "GET", "/metrics").body.decode()
        self.assertGreaterEqual(metric(m, "tollgate_request_read_timeouts_total"), self.N)
        # The loop ran at least the 2 s until the first cut, a round of 20
        # healthy requests (each asserted 200) per pass: two rounds or more,
        # however slow the machine (was > 100: five rounds, a speed bet).
        self.assertGreaterEqual(len(under_attack), 40)
        self.report = ("healthy p99 %.2f ms before, %.2f ms under %d slow connections; "
                       "cut after %.1f-%.1f s" % (percentile(base, 0.99) * 1000,
                                                 percentile(under_attack, 0.99) * 1000,
                                                 self.N, min(cut_at.values()),
                                                 max(cut_at.values())))
        print("\n  slowloris: " + self.report)

        def count():
            body = request(tg.admin_port, "GET", "/metrics").body.decode()
            return metric(body, "tollgate_connections")
        # the cut ones are forgotten by the next sweep (once a second)
        wait_for(lambda: count() == 1, 5, 0.1)
        self.assertEqual(count(), 1)  # only the healthy one


class IdleTimeout(TollgateCase):
    """idle_timeout_ms closes a kept-alive connection that says nothing, and
    one that went quiet half-way through its request."""
    shared_server = False

    def test_idle_connections_are_closed(self):
        def configure(cfg):
            standard_config(cfg)
            cfg["idle_timeout_ms"] = 1000
            cfg["request_read_timeout_ms"] = 60000  # not what closes `quiet`
        tg = self.spawn(configure)
        kept = socket.create_connection(("127.0.0.1", tg.port), timeout=20)
        quiet = socket.create_connection(("127.0.0.1", tg.port), timeout=20)
        self.addCleanup(kept.close)
        self.addCleanup(quiet.close)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertIn(b"200 OK", kept.recv(4096))
        t0 = time.monotonic()  # before quiet's last byte: its idle clock starts after
        quiet.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")  # and no more
        for s in (kept, quiet):
            while True:
                data = s.recv(4096)
                if not data:
                    break
        took = time.monotonic() - t0
        # not before idle_timeout_ms (ms clock: 10 ms slack)...
        self.assertGreater(took, 0.99)
        # ...and by the idle timer: nothing else would close `quiet` before
        # request_read_timeout_ms (60 s); 10 s is far from both.
        self.assertLess(took, 10)


class ConnectionBound(TollgateCase):
    """Past max_connections a new connection is closed at its first bytes;
    those already open keep being served, and when they go, new ones are
    accepted again."""
    shared_server = False

    def test_connections_over_the_bound_are_closed(self):
        def configure(cfg):
            standard_config(cfg)
            cfg["max_connections"] = 20
        tg = self.spawn(configure)
        keep = []
        self.addCleanup(lambda: [c.close() for c in keep])
        for _ in range(20):
            c = http.client.HTTPConnection("127.0.0.1", tg.port, timeout=5 * SLOW)
            c.request("GET", "/healthz")
            self.assertEqual(c.getresponse().read(), b'{"status":"ok"}')
            keep.append(c)
        refused = 0
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", tg.port), timeout=5 * SLOW)
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
                refused += s.recv(100) == b""
            except ConnectionResetError:
                refused += 1
            finally:
                s.close()
        self.assertEqual(refused, 10)
        for c in keep:  # the open ones are still served
            c.request("GET", "/auth/orders/1", headers=api_key("alice"))
            self.assertEqual(c.getresponse().status, 200)
        m = request(tg.admin_port, "GET", "/metrics").body.decode()
        self.assertEqual(metric(m, "tollgate_connections_refused_total"), 10)

        def count():
            body = request(tg.admin_port, "GET", "/metrics").body.decode()
            return metric(body, "tollgate_connections")
        # the refused ones are not counted (at once, or from the next sweep)
        wait_for(lambda: count() == 20, 5, 0.05)
        self.assertEqual(count(), 20)
        for c in keep[:5]:
            c.close()
        wait_for(lambda: count() == 15, 5, 0.05)
        self.assertEqual(count(), 15)
        self.assertEqual(request(tg.port, "GET", "/healthz").status, 200)


if __name__ == "__main__":
    import unittest
    unittest.main()
