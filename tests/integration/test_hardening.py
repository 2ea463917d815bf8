"""Hostile clients and exhausted resources (server/listener.c): a second
instance on the same address, accept() failing with EMFILE."""
import http.client
import os
import resource
import socket
import time

from harness import (TollgateCase, Tollgate, api_key, standard_config, metric, request, SLOW,
                     _finish)


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
        time.sleep(0.5 * SLOW)  # the fds run out; accept() starts failing

        cpu0, t0 = cpu_seconds(tg.proc.pid), time.monotonic()
        answered = 0
        for _ in range(30):
            healthy.request("GET", "/auth/orders/1", headers=api_key("alice"))
            r = healthy.getresponse()
            r.read()
            answered += r.status == 200
            time.sleep(0.05)
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
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline and not fresh():
            time.sleep(0.1)
        self.assertTrue(fresh(), "no new connection accepted after the fds came back")
        m = request(tg.admin_port, "GET", "/metrics").body.decode()
        self.assertGreater(metric(m, "tollgate_accept_errors_total", error="emfile") or 0, 0,
                           tg.stderr()[-1500:] + [ln for ln in m.splitlines() if "accept" in ln].__repr__())


if __name__ == "__main__":
    import unittest
    unittest.main()
