"""Process lifecycle (docs/operator-guide.md §1, §3, §4): SIGTERM drains and
exits 0 promptly, SIGUSR1 reopens the audit file, health endpoints."""
import json
import os
import signal
import threading
import time

import redis_harness as rh
from harness import (TollgateCase, Tollgate, Upstream, api_key, free_port, request,
                     standard_config, wait_for, SLOW)


class Lifecycle(TollgateCase):
    shared_server = False

    def test_sigterm_exits_zero_promptly(self):
        tg = self.spawn(standard_config)
        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 200)
        t0 = time.monotonic()
        tg.signal(signal.SIGTERM)
        self.assertTrue(wait_for(lambda: tg.proc.poll() is not None, 10),
                        "still running 10 s after SIGTERM")
        self.assertEqual(tg.proc.returncode, 0, tg.stderr()[-2000:])
        # Promptly: nothing is in flight, so it must not wait out the drain
        # bound (SRV_DRAIN_TIMEOUT_MS, 10 s); half of it, unscaled, says so.
        self.assertLess(time.monotonic() - t0, 5)

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


class ShutdownDelay(TollgateCase):
    """docs/operator-guide.md §3: on SIGTERM /readyz turns 503 at once, the listeners keep
    answering for shutdown_delay (with Connection: close, so keep-alive
    clients move on), then tollgate drains and exits 0."""
    shared_server = False

    def spawn_delayed(self, delay):
        def configure(cfg):
            standard_config(cfg)
            cfg["shutdown_delay"] = delay
        return self.spawn(configure)

    def test_unready_but_answering_during_delay(self):
        # Every check below is answered by the process itself, so it was
        # made during the delay (after it, nothing listens): no need to race
        # a stopwatch against the delay.  3 s leaves them room on a busy box.
        tg = self.spawn_delayed("3s")
        t0 = time.monotonic()
        tg.signal(signal.SIGTERM)
        self.assertTrue(wait_for(lambda: tg.readyz()[0] == 503, 2, 0.01),
                        "/readyz still 200 after SIGTERM")
        status, body = tg.readyz()
        self.assertEqual(body["status"], "draining")
        r = tg.get("/auth/orders/1", api_key("bob"))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Connection"), "close")
        self.assertTrue(wait_for(lambda: tg.proc.poll() is not None, 10),
                        "still running long after shutdown_delay")
        # not before the delay: it started after t0 (timer slack 0.1 s)
        self.assertGreaterEqual(time.monotonic() - t0, 2.9, "exited before shutdown_delay")
        self.assertEqual(tg.proc.returncode, 0, tg.stderr()[-2000:])
        self.assertIn("shutdown_delay", tg.stderr())

    def test_second_signal_skips_delay(self):
        tg = self.spawn_delayed("30s")
        tg.signal(signal.SIGTERM)
        self.assertTrue(wait_for(lambda: tg.readyz()[0] == 503, 1, 0.01))
        t0 = time.monotonic()
        tg.signal(signal.SIGTERM)
        self.assertTrue(wait_for(lambda: tg.proc.poll() is not None, 10),
                        "a second SIGTERM did not cut the delay short")
        # a third of the 30 s delay, unscaled: it did not wait it out
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(tg.proc.returncode, 0)

    def test_bad_delay_is_a_config_error(self):
        tg = Tollgate(lambda cfg: cfg.update(shutdown_delay="-1s"), start=False)
        self.addCleanup(tg.cleanup)
        r = tg.run_cli("--check-config", "--config", tg.config_path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("shutdown_delay", r.stderr)


class StartReadiness(TollgateCase):
    """docs/operator-guide.md §4: /readyz is 503 "starting" until the first Redis connection
    attempt has settled, so a rollout never routes to a replica whose answer
    (redis down, fallback false) contradicts itself."""
    shared_server = False

    def watch_start(self, configure):
        tg = Tollgate(configure, start=False)
        self.addCleanup(tg.cleanup)
        tg.start(wait=False)
        seen = []
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline:
            try:
                r = request(tg.admin_port, "GET", "/readyz", timeout=0.5)
            except OSError:
                time.sleep(0.005)
                continue
            body = json.loads(r.body)
            seen.append((r.status, body))
            if r.status == 200:
                break
        self.assertTrue(seen and seen[-1][0] == 200,
                        "never ready: %r\n%s" % (seen[-3:], tg.stderr()[-2000:]))
        for status, body in seen[:-1]:
            self.assertEqual((status, body["status"]), (503, "starting"))
        return tg, seen

    def test_redis_down_at_start(self):
        dead = free_port()

        def configure(cfg):
            cfg["redis"] = {"mode": "standalone", "nodes": ["127.0.0.1:%d" % dead],
                            "timeout_ms": 50}
        tg, seen = self.watch_start(configure)
        first = seen[-1][1]
        self.assertEqual((first["redis"], first["fallback"]), ("down", True), seen[-1])

    def test_redis_up_at_start(self):
        if not rh.have_redis():
            self.skipTest("redis-server not installed")
        redis = rh.RedisServer().start()
        self.addCleanup(redis.close)

        def configure(cfg):
            cfg["redis"] = {"mode": "standalone", "nodes": [redis.addr]}
        tg, seen = self.watch_start(configure)
        first = seen[-1][1]
        self.assertEqual((first["redis"], first["fallback"]), ("ok", False), seen[-1])
