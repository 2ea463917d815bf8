"""Process lifecycle (DESIGN §3, §5, operator guide): SIGTERM drains and
exits 0 promptly, SIGUSR1 reopens the audit file, health endpoints."""
import os
import signal
import threading
import time

from harness import (TollgateCase, Tollgate, Upstream, api_key, request, standard_config,
                     wait_for, SLOW)


class Lifecycle(TollgateCase):
    shared_server = False

    def test_sigterm_exits_zero_promptly(self):
        tg = self.spawn(standard_config)
        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 200)
        t0 = time.monotonic()
        tg.signal(signal.SIGTERM)
        self.assertTrue(wait_for(lambda: tg.proc.poll() is not None, 5),
                        "still running 5 s after SIGTERM")
        self.assertEqual(tg.proc.returncode, 0, tg.stderr()[-2000:])
        self.assertLess(time.monotonic() - t0, 3 * SLOW)

    def test_sigterm_drains_in_flight_request(self):
        up = Upstream()
        self.addCleanup(up.close)

        def configure(cfg):
            cfg["routes"] = [{"name": "api", "match": {"path_prefix": "/api/"},
                              "upstream": up.url, "auth": "none"}]
        tg = self.spawn(configure)
        out = {}

        def slow():
            try:
                out["r"] = tg.get("/api/slow", {"X-Echo-Delay-Ms": "800"}, timeout=5)
            except OSError as e:
                out["e"] = e
        t = threading.Thread(target=slow)
        t.start()
        self.assertTrue(wait_for(lambda: len(up.requests) == 1, 3))
        tg.signal(signal.SIGTERM)
        t.join(10)
        self.assertNotIn("e", out, "in-flight request was cut: %r" % out.get("e"))
        self.assertEqual(out["r"].status, 200)
        self.assertTrue(wait_for(lambda: tg.proc.poll() is not None, 5))
        self.assertEqual(tg.proc.returncode, 0)

    def test_sigusr1_reopens_audit(self):
        tg = self.spawn(standard_config)
        r = tg.get("/auth/orders/1", api_key("bob"))
        tg.audit_for(r.header("X-Request-ID"))
        os.rename(tg.audit_path, tg.audit_path + ".1")
        tg.signal(signal.SIGUSR1)

        def new_file_used():
            tg.get("/auth/orders/1", api_key("bob"))
            return os.path.exists(tg.audit_path) and os.path.getsize(tg.audit_path) > 0
        self.assertTrue(wait_for(new_file_used, 3, 0.2), "audit file not reopened on SIGUSR1")
        self.assertTrue(tg.alive())

    def test_health_on_both_listeners(self):
        tg = self.spawn()
        for port in (tg.port, tg.admin_port):
            for path in ("/healthz", "/readyz"):
                r = request(port, "GET", path)
                self.assertEqual(r.status, 200, (port, path))

    def test_custom_health_paths(self):
        def configure(cfg):
            cfg["health"] = {"healthz_path": "/live", "readyz_path": "/ready"}
        tg = Tollgate(configure, start=False)
        self.addCleanup(tg.cleanup)
        tg.start(wait=False)
        ok = wait_for(lambda: _status(tg.port, "/ready") == 200, 10)
        self.assertTrue(ok, tg.stderr()[-2000:])
        self.assertEqual(_status(tg.port, "/live"), 200)
        self.assertEqual(_status(tg.port, "/healthz"), 404)


def _status(port, path):
    try:
        return request(port, "GET", path, timeout=1).status
    except OSError:
        return None
