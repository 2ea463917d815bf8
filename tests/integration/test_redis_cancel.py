"""A client that leaves while its Redis call is in flight (DESIGN §9, issue 3):
the request is cancelled, the late Redis reply is discarded, nothing is freed
twice.  `make test-asan` runs this against the ASan+UBSan build, where a
use-after-free would show in tollgate's stderr (checked at the end)."""
import shutil
import socket
import struct
import threading
import time
import unittest

from harness import TollgateCase, api_key, key_of, standard_config, wait_for

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and shutil.which("redis-server")


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class InFlightCancel(TollgateCase):
    shared_server = False

    @classmethod
    def setUpClass(cls):
        cls.redis = rh.RedisServer(extra=["--enable-debug-command", "local"]).start()
        cls.addClassCleanup(cls.redis.close)

    def test_disconnect_while_redis_call_in_flight(self):
        def configure(cfg):
            standard_config(cfg)
            # long enough that the calls are still waiting when clients leave
            cfg["redis"] = {"mode": "standalone", "nodes": [self.redis.addr],
                            "timeout_ms": 3000}
            return cfg
        tg = self.spawn(configure)
        self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "ok", 5), tg.readyz())
        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 200)

        # Redis stops answering for 0.8 s: every bucket call stays in flight.
        sleeper = threading.Thread(
            target=lambda: self.redis.client(timeout=5).call("DEBUG", "SLEEP", "0.8"))
        sleeper.start()
        time.sleep(0.1)
        req = (b"GET /auth/orders/1 HTTP/1.1\r\nHost: x\r\nX-API-Key: " +
               key_of("bob").encode() + b"\r\n\r\n")
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", tg.port), timeout=2)
            if i % 2:  # half reset, half close
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(req)
            time.sleep(0.01)
            s.close()
        sleeper.join(5)

        # The late replies came and were discarded; the server still serves.
        r = tg.get("/auth/orders/1", api_key("bob"))
        self.assertEqual(r.status, 200, r)
        closed = lambda: sum(1 for a in tg.audit() if a["reason"] == "client_closed")
        self.assertTrue(wait_for(lambda: closed() >= 20, 3),
                        "only %d of 20 in-flight requests were cancelled" % closed())
        self.assertTrue(tg.alive())
        tg.stop()
        self.assertIsNone(tg.sanitizer_report())

    def test_leaving_does_not_dodge_the_lockout(self):
        """A refused credential's 401 waits for lua/lockout.lua; a client that
        leaves meanwhile is still counted."""
        def configure(cfg):
            standard_config(cfg)
            cfg["redis"] = {"mode": "standalone", "nodes": [self.redis.addr],
                            "timeout_ms": 3000}
            cfg["auth"]["lockout"] = {"max_failures": 2, "window": "1m",
                                      "base_backoff": "30s", "max_backoff": "1m"}
            return cfg
        tg = self.spawn(configure)
        self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "ok", 5), tg.readyz())
        ip = "198.51.100.%d" % (len(tg.tmp) % 200 + 30)
        req = (b"GET /auth/orders/1 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: " + ip.encode() +
               b"\r\nX-API-Key: it-key-wrong-cancel-0123456789ab\r\n\r\n")
        sleeper = threading.Thread(
            target=lambda: self.redis.client(timeout=5).call("DEBUG", "SLEEP", "0.5"))
        sleeper.start()
        time.sleep(0.1)
        for _ in range(2):  # two bad keys, each client gone before Redis answers
            s = socket.create_connection(("127.0.0.1", tg.port), timeout=2)
            s.sendall(req)
            time.sleep(0.02)
            s.close()
        sleeper.join(5)
        bad = {"X-API-Key": "it-key-wrong-cancel-0123456789ab", "X-Forwarded-For": ip}
        self.assertTrue(wait_for(lambda: tg.get("/auth/orders/1", bad).status == 429, 2),
                        "failures of clients that left were not counted")
        self.assertEqual(tg.get("/auth/orders/1", dict(api_key("bob"),
                                                       **{"X-Forwarded-For": ip})).status, 429)
        tg.stop()
        self.assertIsNone(tg.sanitizer_report())
