"""Repeated forwarded headers are flagged (issue 19).

A forward-auth request whose dialect headers repeat is refused (400
duplicate_header) already.  Such requests from a trusted proxy are the sign
of a Traefik with `trustForwardHeader` on behind a load balancer that
passes the client's own X-Forwarded-* on, so they are also counted in
tollgate_forwarded_header_repeats_total{dialect} and warned about on stderr
at most once per 10 s per process (saying how many were held back), naming
the header and never its value.
"""
import uuid

from harness import TollgateCase, metric, raw_request, raw_status, standard_config, wait_for

NAME = "tollgate_forwarded_header_repeats_total"


def ask(tg, headers, target=b"/auth"):
    """One raw request (header lines may repeat); returns the answer."""
    lines = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers)
    return raw_request(tg.port, b"GET " + target + b" HTTP/1.1\r\nHost: tollgate\r\n" + lines
                       + b"Connection: close\r\n\r\n")


def traefik_twice(secret):
    return [("X-Forwarded-Method", "GET"), ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.example.com"), ("X-Forwarded-Uri", "/public/x"),
            ("X-Forwarded-Uri", "/orders/admin/" + secret)]


class Repeats(TollgateCase):
    configure = staticmethod(standard_config)

    def count(self, dialect):
        return metric(self.tg.metrics(), NAME, dialect=dialect) or 0

    def lines(self):
        return [l for l in self.tg.stderr().splitlines() if "came twice" in l]

    def test_a_burst_counts_all_and_logs_once(self):
        secret = uuid.uuid4().hex
        before = self.count("traefik")
        for _ in range(50):
            resp = ask(self.tg, traefik_twice(secret))
            self.assertEqual(raw_status(resp), 400, resp[:300])
            self.assertIn(b"bad_request", resp)
        self.assertTrue(wait_for(lambda: self.count("traefik") == before + 50, 3),
                        self.tg.metrics())
        lines = self.lines()
        self.assertEqual(len(lines), 1, lines)  # the burst took < 10 s
        self.assertIn("X-Forwarded-Uri came twice from 127.0.0.1", lines[0])
        self.assertIn("trustForwardHeader", lines[0])
        self.assertNotIn(secret, self.tg.stderr())
        self.assertNotIn(secret.encode(), self.tg.audit_raw())

    def test_what_is_not_counted(self):
        before = {d: self.count(d) for d in ("traefik", "nginx")}
        # X-Forwarded-Proto twice without Traefik's -Uri/-Method (auto): any proxy's
        resp = ask(self.tg, [("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http")])
        self.assertEqual(raw_status(resp), 400, resp[:300])
        # not a forward-auth request
        resp = ask(self.tg, traefik_twice("x"), target=b"/public/x")
        self.assertEqual(raw_status(resp), 400, resp[:300])
        # another single header twice
        resp = ask(self.tg, [("X-API-Key", "a"), ("X-API-Key", "b"),
                             ("X-Forwarded-Uri", "/public/x")])
        self.assertEqual(raw_status(resp), 400, resp[:300])
        # nginx's own header twice: counted under nginx
        resp = ask(self.tg, [("X-Original-URI", "/public/x"), ("X-Original-URI", "/orders/1")])
        self.assertEqual(raw_status(resp), 400, resp[:300])
        self.assertTrue(wait_for(lambda: self.count("nginx") == before["nginx"] + 1, 3))
        self.assertEqual(self.count("traefik"), before["traefik"])

    def test_untrusted_peer_not_counted(self):
        tg = self.spawn(lambda cfg: dict(standard_config(cfg), trusted_proxies=[]))
        resp = ask(tg, traefik_twice("x"))
        self.assertEqual(raw_status(resp), 400, resp[:300])
        self.assertIsNone(metric(tg.metrics(), NAME, dialect="traefik"))
        self.assertNotIn("came twice", tg.stderr())
