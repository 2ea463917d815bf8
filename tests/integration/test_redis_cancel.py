"""A client that leaves while its Redis call is in flight (docs/architecture.md §5, issue 3):
the request is cancelled, the late Redis reply is discarded, nothing is freed
twice.  `make test-asan` runs this against the ASan+UBSan build, where a
use-after-free would show in tollgate's stderr (checked at the end)."""
import json
import shutil
import socket
import struct
import unittest

from faultproxy import FaultProxy
from harness import (ADMIN_TOKEN, TollgateCase, api_key, key_of, standard_config, unique,
                     wait_for)

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and shutil.which("redis-server")


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class InFlightCancel(TollgateCase):
    """Redis's replies are held by a proxy of the tests' own (faultproxy
    "hold": Redis runs every command, its answers wait) for as long as the
    test needs: each client leaves once its request's Redis call is seen on
    the wire, and the replies are let go only after every request was
    cancelled.  No window of a DEBUG SLEEP to send everything within."""
    shared_server = False

    def setUp(self):
        self.redis = rh.RedisServer().start()
        self.addCleanup(self.redis.close)
        self.proxy = FaultProxy(("127.0.0.1", self.redis.port)).start()
        self.addCleanup(self.proxy.close)

    def spawn_via_proxy(self, extra=None):
        def configure(cfg):
            standard_config(cfg)
            # far longer than the test holds a reply: nothing times out
            cfg["redis"] = {"mode": "standalone", "nodes": [self.proxy.addr],
                            "timeout_ms": 60000}
            if extra:
                extra(cfg)
            return cfg
        tg = self.spawn(configure)
        self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "ok", 5), tg.readyz())
        return tg

    def leave_in_flight(self, tg, req, marker, reset, port=None):
        """Send `req` (to tg's main listener, or `port`), wait until its
        Redis call (bytes with `marker`) has gone out, then close (RST when
        `reset`) with the reply held."""
        before = self.proxy.sent(marker)
        s = socket.create_connection(("127.0.0.1", port or tg.port), timeout=5)
        try:
            if reset:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(req)
            self.assertTrue(wait_for(lambda: self.proxy.sent(marker) > before, 10, 0.005),
                            "no Redis call for %r" % marker)
        finally:
            s.close()

    def test_disconnect_while_redis_call_in_flight(self):
        tg = self.spawn_via_proxy()
        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 200)
        tag = unique("cxl")
        self.proxy.mode = "hold"
        try:
            for i in range(20):
                marker = ("%s-%d-" % (tag, i)).encode()
                req = (b"GET /auth/limited/x HTTP/1.1\r\nHost: x\r\nX-API-Key: " +
                       key_of("bob").encode() + b"\r\nX-Test-Bucket: " + marker +
                       b"\r\n\r\n")
                self.leave_in_flight(tg, req, marker, reset=bool(i % 2))  # half RST
            # every one cancelled while its reply is still held
            closed = lambda: sum(1 for a in tg.audit() if a["reason"] == "client_closed")
            self.assertTrue(wait_for(lambda: closed() >= 20, 5),
                            "only %d of 20 in-flight requests were cancelled" % closed())
            # the audit line of a client that left says who asked for what,
            # as far as the decision had found out: the original target,
            # the request id, the client ip, the authenticated client
            ok = [a for a in tg.audit() if a["reason"] == "ok"][0]
            for a in (a for a in tg.audit() if a["reason"] == "client_closed"):
                self.assertEqual(a["path"], "/limited/x", a)
                self.assertEqual(a.get("client_id"), ok["client_id"], a)
                self.assertEqual(a.get("ip"), ok["ip"], a)
                self.assertRegex(a.get("request_id") or "", r"^[0-9a-f-]{36}$", a)
        finally:
            self.proxy.mode = "pass"  # the late replies come, to be discarded
        # each worker's connection answers in order: an answer on Redis now
        # comes after the late replies (on a worker, at least; both are
        # checked by ASan until the stop below)
        r = tg.get("/auth/orders/1", api_key("bob"))
        self.assertEqual(r.status, 200, r)
        self.assertTrue(tg.alive())
        tg.stop()
        self.assertIsNone(tg.sanitizer_report())

    def test_leaving_does_not_dodge_the_lockout(self):
        """A refused credential's 401 waits for lua/lockout.lua; a client that
        leaves meanwhile is still counted."""
        def lockout(cfg):
            cfg["auth"]["lockout"] = {"max_failures": 2, "window": "1m",
                                      "base_backoff": "30s", "max_backoff": "1m"}
        tg = self.spawn_via_proxy(lockout)
        ip = "198.51.100.%d" % (len(tg.tmp) % 200 + 30)
        req = (b"GET /auth/orders/1 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: " + ip.encode() +
               b"\r\nX-API-Key: it-key-wrong-cancel-0123456789ab\r\n\r\n")
        self.proxy.mode = "hold"
        try:
            for _ in range(2):  # two bad keys, each client gone before Redis answers
                self.leave_in_flight(tg, req, ip.encode(), reset=False)
        finally:
            self.proxy.mode = "pass"
        bad = {"X-API-Key": "it-key-wrong-cancel-0123456789ab", "X-Forwarded-For": ip}
        self.assertTrue(wait_for(lambda: tg.get("/auth/orders/1", bad).status == 429, 5),
                        "failures of clients that left were not counted")
        self.assertEqual(tg.get("/auth/orders/1", dict(api_key("bob"),
                                                       **{"X-Forwarded-For": ip})).status, 429)
        tg.stop()
        self.assertIsNone(tg.sanitizer_report())

    def test_admin_redis_command_pending_at_shutdown(self):
        """An admin request whose Redis command is still pending when the
        replica stops: it stops at once and cleanly (exit 0), and the Redis
        client's last callbacks, which answer that request while the admin
        listener is torn down, touch nothing freed (the ASan and valgrind
        runs check tollgate's stderr)."""
        tg = self.spawn_via_proxy()
        marker = unique("shutdown")
        key = "c=bob|h:x-test-bucket=" + marker
        self.proxy.mode = "hold"
        s = socket.create_connection(("127.0.0.1", tg.admin_port), timeout=5)
        try:
            s.sendall(("GET /admin/v1/buckets?limit=tight&key=%s HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer %s\r\n\r\n"
                       % (key.replace("|", "%7C"), ADMIN_TOKEN)).encode())
            self.assertTrue(wait_for(lambda: self.proxy.sent(marker.encode()) > 0, 10, 0.005),
                            "the bucket's Redis command was not sent")
            self.assertEqual(tg.stop(), 0, tg.stderr()[-2000:])
        finally:
            s.close()
            self.proxy.mode = "pass"
        self.assertIsNone(tg.sanitizer_report())



@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class ExplainInFlight(TollgateCase):
    """POST /admin/v1/explain whose dry run waits on Redis (bucket.lua's
    'D' form held by the proxy): its client leaves, or the replica stops."""
    shared_server = False
    setUp = InFlightCancel.setUp
    spawn_via_proxy = InFlightCancel.spawn_via_proxy
    leave_in_flight = InFlightCancel.leave_in_flight

    def explain_req(self, marker):
        body = json.dumps({"method": "GET", "path": "/auth/limited/x",
                           "headers": {"X-API-Key": key_of("bob"),
                                       "X-Test-Bucket": marker}}).encode()
        return (b"POST /admin/v1/explain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                ADMIN_TOKEN.encode() + b"\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    def test_explain_client_leaves(self):
        tg = self.spawn_via_proxy()
        tag = unique("exl")
        self.proxy.mode = "hold"
        try:
            for i in range(6):
                marker = "%s-%d-" % (tag, i)
                self.leave_in_flight(tg, self.explain_req(marker), marker.encode(),
                                     reset=bool(i % 2), port=tg.admin_port)
        finally:
            self.proxy.mode = "pass"  # the late replies come, to be discarded
        r = tg.admin("POST", "/admin/v1/explain", {"Content-Type": "application/json"},
                     json.dumps({"method": "GET", "path": "/auth/limited/x",
                                 "headers": {"X-API-Key": key_of("bob"),
                                             "X-Test-Bucket": tag}}).encode())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["decision"]["status"], 200, r.json())
        self.assertTrue(tg.alive())
        self.assertEqual(tg.stop(), 0, tg.stderr()[-2000:])
        self.assertIsNone(tg.sanitizer_report())

    def test_explain_pending_at_shutdown(self):
        tg = self.spawn_via_proxy()
        marker = unique("exshut")
        self.proxy.mode = "hold"
        s = socket.create_connection(("127.0.0.1", tg.admin_port), timeout=5)
        try:
            s.sendall(self.explain_req(marker))
            self.assertTrue(wait_for(lambda: self.proxy.sent(marker.encode()) > 0, 10, 0.005),
                            "the dry run's Redis command was not sent")
            self.assertEqual(tg.stop(), 0, tg.stderr()[-2000:])
        finally:
            s.close()
            self.proxy.mode = "pass"
        self.assertIsNone(tg.sanitizer_report())
