"""Methods are deny-by-default (issue 19): a method tollgate does not serve
never falls through to a weaker route.

Before: a route's `match.methods` that did not list the request's method
simply did not match, so `PURGE /orders/admin/x` (any extension method,
which matched no `methods:` rule) or `DELETE` on a route that lists only
GET and POST was decided by the next route that matched, one with fewer
scopes: 200 for a client the admin route refuses.  Now `allowed_methods`
(default GET HEAD POST PUT PATCH DELETE OPTIONS) refuses every other
method before routing, 405 with Allow (the nginx dialect: 403, which nginx
passes on), and `other_methods: deny` makes a route's own method list
final for its paths.  Proxy mode refuses the same, and methods libevent
cannot parse (PURGE, "get") are refused with the same answer instead of
its 501.
"""
import socket
import uuid

from harness import (TollgateCase, UpstreamCase, Upstream, api_key, nginx_headers,
                     raw_request, raw_status, recv_response, traefik_headers, wait_for)

DEFAULT_ALLOW = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


def methods_config(cfg):
    cfg["routes"] = [
        # the admin route's method list is final for its paths
        {"name": "admin", "match": {"path_prefix": "/orders/admin", "methods": ["GET", "POST"]},
         "auth": "required", "scopes": ["orders:write"], "other_methods": "deny"},
        # the same shape without it: other methods go on (and --check-config warns)
        {"name": "legacy-admin", "match": {"path_prefix": "/legacy/admin", "methods": ["GET"]},
         "auth": "required", "scopes": ["orders:write"]},
        {"name": "orders", "match": {"path_prefix": "/orders/"}, "auth": "required",
         "scopes": ["orders:read"]},
        {"name": "legacy", "match": {"path_prefix": "/legacy/"}, "auth": "required",
         "scopes": ["orders:read"]},
        {"name": "public", "match": {"path_prefix": "/public/"}, "auth": "none"},
    ]
    return cfg


def header_of(resp, name):
    for line in resp.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.lower() == name.lower():
            return v.strip()
    return None


class ForwardAuthMethods(TollgateCase):
    configure = staticmethod(methods_config)

    # (name, status of a refusal, how to ask about METHOD PATH with headers H)
    def dialects(self):
        tg = self.tg

        def envoy(method, path, h):
            return tg.req(method, "/auth" + path, h)

        def nginx(method, path, h):
            return tg.get("/auth", {**h, **nginx_headers(path, method=method, url=False,
                                                         sent_from=False)})

        def ingress(method, path, h):
            return tg.get("/auth", {**h, **nginx_headers(path, method=method)})

        def traefik(method, path, h):
            return tg.get("/auth", {**h, **traefik_headers(path, method=method)})

        return [("envoy", 405, envoy), ("nginx", 403, nginx), ("ingress-nginx", 403, ingress),
                ("traefik", 405, traefik)]

    def assertRefused(self, r, status, allow, what):
        self.assertEqual(r.status, status, (what, r))
        if r.body:  # HEAD: no body
            self.assertEqual(r.json()["error"]["code"], "method_not_allowed", what)
        self.assertEqual(r.header("Allow"), allow, what)

    def test_unlisted_methods_refused_before_routing(self):
        # alice holds every scope: even she gets no PURGE through
        for name, status, ask in self.dialects():
            for method in ("PURGE", "TRACE", "CONNECT", "PROPFIND", "X-CUSTOM"):
                if name == "envoy" and method in ("CONNECT",):
                    continue  # http.client cannot send it with a path; raw below
                rid = uuid.uuid4().hex
                r = ask(method, "/orders/admin/x", {**api_key("alice"), "X-Request-ID": rid})
                self.assertRefused(r, status, DEFAULT_ALLOW, (name, method))
                # Envoy: a method libevent cannot parse is refused before
                # its headers are read (a new request id)
                rec = self.tg.audit_for(r.header("X-Request-ID"))
                self.assertEqual(rec["reason"], "method_not_allowed", rec)
                self.assertEqual(rec["method"], method, rec)

    def test_route_method_list_is_final_with_other_methods_deny(self):
        for name, status, ask in self.dialects():
            for who in ("bob", "alice"):
                for method in ("DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"):
                    r = ask(method, "/orders/admin/x", api_key(who))
                    self.assertRefused(r, status, "GET, POST", (name, who, method))
            # what it lists is decided by it
            self.assertEqual(ask("GET", "/orders/admin/x", api_key("bob")).status, 403, name)
            self.assertEqual(ask("POST", "/orders/admin/x", api_key("alice")).status, 200,
                             name)
            # other paths are not its business
            self.assertEqual(ask("DELETE", "/orders/1", api_key("bob")).status, 200, name)

    def test_without_deny_other_methods_go_on_as_documented(self):
        # The documented fall-through (next_route): DELETE is decided by
        # `legacy`; the config load warned about exactly this route.
        for name, _, ask in self.dialects():
            self.assertEqual(ask("DELETE", "/legacy/admin/x", api_key("bob")).status, 200, name)
            self.assertEqual(ask("GET", "/legacy/admin/x", api_key("bob")).status, 403, name)
        err = self.tg.stderr()
        self.assertRegex(err, r"routes\[1\] \(legacy-admin\) lists methods; another method on "
                              r"its paths falls through to routes\[3\] \(legacy\), which asks "
                              r"less \(no scope orders:write\)")
        self.assertNotIn("routes[0] (admin) lists methods", err)

    def test_raw_envoy_methods(self):
        # Methods libevent does not parse, sent as they are on the wire: the
        # same 405 and Allow, the method in the audit line, no 501.
        for method in (b"PURGE", b"get", b"Delete", b"CONNECT", b"MKCOL",
                       b"AVERYLONGEXTENSIONMETHODNAME"):
            resp = raw_request(self.tg.port, method + b" /auth/orders/admin/x HTTP/1.1\r\n"
                               b"Host: t\r\nX-API-Key: " + api_key("alice")["X-API-Key"].encode()
                               + b"\r\nContent-Length: 3\r\n\r\nabcGET /auth/public/x HTTP/1.1"
                               b"\r\nHost: t\r\n\r\n")
            self.assertEqual(raw_status(resp), 405, (method, resp[:400]))
            self.assertEqual(header_of(resp, "Allow"), DEFAULT_ALLOW, method)
            self.assertEqual(header_of(resp, "Connection"), "close", method)
            # the pipelined request behind it is not answered
            self.assertEqual(resp.count(b"HTTP/1.1 "), 1, resp)
            rec = self.tg.audit_for(header_of(resp, "X-Request-ID"))
            self.assertEqual(rec["reason"], "method_not_allowed", rec)
            self.assertEqual(rec["method"], method.decode()[:15], rec)
        # a method that is no token is still libevent's to refuse (its 501)
        resp = raw_request(self.tg.port, b"G\x01T /auth/x HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertIn(raw_status(resp), (400, 501), resp[:300])
        self.assertServing()


def narrowed(cfg):
    methods_config(cfg)
    cfg["allowed_methods"] = ["GET", "HEAD", "TRACE"]
    return cfg


class NarrowedAllowedMethods(TollgateCase):
    configure = staticmethod(narrowed)

    def test_narrowed_list(self):
        tg = self.tg
        r = tg.req("POST", "/auth/public/x", body=b"{}")
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.header("Allow"), "GET, HEAD, TRACE")
        # nginx asks with a GET subrequest: the original method is what counts
        r = tg.get("/auth", nginx_headers("/public/x", method="DELETE", url=False,
                                          sent_from=False))
        self.assertEqual(r.status, 403, r)
        self.assertEqual(r.header("Allow"), "GET, HEAD, TRACE")
        # listed: TRACE is decided like any method
        r = tg.get("/auth", traefik_headers("/public/x", method="TRACE"))
        self.assertEqual(r.status, 200, r)
        r = tg.get("/auth", {**api_key("bob"), **traefik_headers("/orders/1", method="GET")})
        self.assertEqual(r.status, 200, r)
        # the route's Allow is its list within allowed_methods
        r = tg.get("/auth", traefik_headers("/orders/admin/x", method="HEAD"))
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.header("Allow"), "GET")


class ProxyMethods(UpstreamCase):
    def setUp(self):
        self.up.requests.clear()

    def send(self, line, extra=b""):
        return raw_request(self.tg.port, line + b"\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                           + extra)

    def test_unparsed_and_unlisted_methods_never_reach_the_upstream(self):
        for method in (b"PURGE", b"get", b"Delete", b"TRACE", b"PROPFIND", b"CONNECT"):
            target = b"127.0.0.1:80" if method == b"CONNECT" else b"/up/x"
            resp = self.send(method + b" " + target + b" HTTP/1.1",
                             b"GET /up/after HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(raw_status(resp), 405, (method, resp[:400]))
            # proxy mode never forwards TRACE: not offered
            self.assertEqual(header_of(resp, "Allow"), DEFAULT_ALLOW, method)
            self.assertIn(b"method_not_allowed", resp)
            self.assertEqual(resp.count(b"HTTP/1.1 "), 1, resp)
        self.assertEqual(self.up.requests, [])
        resp = self.send(b"DELETE /up/x HTTP/1.1")
        self.assertEqual(raw_status(resp), 200, resp[:300])
        self.assertEqual([r["method"] for r in self.up.requests], ["DELETE"])


    def test_method_in_the_body_is_refused(self):
        """Rack::MethodOverride (on by default in Rails), Symfony/Laravel
        and Express's method-override read _method from a POST's form body
        (Laravel from a JSON body too): the upstream would run a DELETE
        that was decided as a POST.  Refused, never forwarded."""
        mp = (b"--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n"
              b"--b--\r\n")
        for ctype, body in ((b"application/x-www-form-urlencoded", b"a=1&_method=DELETE"),
                            (b"application/x-www-form-urlencoded", b"%5Fmethod=DELETE"),
                            (b"multipart/form-data; boundary=b", mp),
                            (b"application/json", b'{"_method":"DELETE"}')):
            resp = raw_request(self.tg.port, b"POST /up/x HTTP/1.1\r\nHost: t\r\n"
                               b"Content-Type: " + ctype + b"\r\nContent-Length: "
                               + str(len(body)).encode() + b"\r\n\r\n" + body)
            self.assertEqual(raw_status(resp), 400, (ctype, resp[:300]))
            self.assertIn(b"method override", resp)
        self.assertEqual(self.up.requests, [])
        # the same fields elsewhere, or another method: forwarded
        for method, ctype, body in ((b"POST", b"application/x-www-form-urlencoded", b"a=_method"),
                                    (b"POST", b"text/plain", b"_method=DELETE"),
                                    (b"PUT", b"application/x-www-form-urlencoded",
                                     b"_method=DELETE")):
            resp = raw_request(self.tg.port, method + b" /up/x HTTP/1.1\r\nHost: t\r\n"
                               b"Content-Type: " + ctype + b"\r\nContent-Length: "
                               + str(len(body)).encode() + b"\r\n\r\n" + body)
            self.assertEqual(raw_status(resp), 200, (method, ctype, resp[:300]))
        self.assertEqual([r["method"] for r in self.up.requests], ["POST", "POST", "PUT"])

    def test_pipelined_behind_a_kept_alive_request(self):
        # PURGE arrives behind a GET on one connection, in one packet and
        # in a later one: refused all the same, never forwarded
        for split in (False, True):
            s = socket.create_connection(("127.0.0.1", self.tg.port), timeout=5)
            try:
                first = b"GET /up/a HTTP/1.1\r\nHost: t\r\n\r\n"
                second = b"PURGE /up/b HTTP/1.1\r\nHost: t\r\n\r\n"
                if split:
                    s.sendall(first)
                    one = recv_response(s)
                    s.sendall(second)
                    two = recv_response(s)
                else:
                    s.sendall(first + second)
                    both = recv_response(s)
                    one = both
                    two = both[both.find(b"HTTP/1.1 ", 1):] if both.count(b"HTTP/1.1 ") > 1 \
                        else recv_response(s)
            finally:
                s.close()
            self.assertEqual(raw_status(one), 200, one[:300])
            self.assertEqual(raw_status(two), 405, two[:300])
            self.assertEqual(header_of(two, "Allow"), DEFAULT_ALLOW)
        self.assertEqual([r["path"] for r in self.up.requests], ["/up/a", "/up/a"])


class ProxyOtherMethodsDeny(TollgateCase):
    shared_server = False

    def setUp(self):
        self.up, self.up2 = Upstream(), Upstream()
        self.addCleanup(self.up.close)
        self.addCleanup(self.up2.close)

    def test_route_list_is_final(self):
        # a second, wider route to another upstream is behind it
        def configure(cfg):
            cfg["routes"] = [
                {"name": "ro", "match": {"path_prefix": "/up/ro/", "methods": ["GET", "HEAD"]},
                 "upstream": self.up.url, "auth": "none", "other_methods": "deny"},
                {"name": "rw", "match": {"path_prefix": "/up/"}, "upstream": self.up2.url,
                 "auth": "none"},
            ]
        tg = self.spawn(configure)
        for method in (b"DELETE", b"POST", b"PUT", b"PATCH", b"OPTIONS"):
            resp = raw_request(tg.port, method + b" /up/ro/x HTTP/1.1\r\nHost: t\r\n"
                               b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            self.assertEqual(raw_status(resp), 405, (method, resp[:300]))
            self.assertEqual(header_of(resp, "Allow"), "GET, HEAD", method)
        self.assertEqual(self.up2.requests, [])
        resp = raw_request(tg.port, b"GET /up/ro/x HTTP/1.1\r\nHost: t\r\n"
                           b"Connection: close\r\n\r\n")
        self.assertEqual(raw_status(resp), 200, resp[:300])
        # a CORS preflight there is still tollgate's to answer (proxy mode),
        # offering the route's methods; without Origin it is a plain OPTIONS
        resp = raw_request(tg.port, b"OPTIONS /up/ro/x HTTP/1.1\r\nHost: t\r\n"
                           b"Origin: https://app.example.com\r\n"
                           b"Access-Control-Request-Method: GET\r\n"
                           b"Connection: close\r\n\r\n")
        self.assertEqual(raw_status(resp), 204, resp[:300])
        self.assertEqual(header_of(resp, "Access-Control-Allow-Methods"), "GET, HEAD")
        resp = raw_request(tg.port, b"OPTIONS /up/ro/x HTTP/1.1\r\nHost: t\r\n"
                           b"Connection: close\r\n\r\n")
        self.assertEqual(raw_status(resp), 405, resp[:300])
        self.assertEqual(self.up.requests and [r["method"] for r in self.up.requests], ["GET"])
        resp = raw_request(tg.port, b"DELETE /up/rw/x HTTP/1.1\r\nHost: t\r\n"
                           b"Connection: close\r\n\r\n")
        self.assertEqual(raw_status(resp), 200, resp[:300])
        self.assertTrue(wait_for(lambda: len(self.up2.requests) == 1, 3))
        self.assertEqual(self.up2.requests[0]["path"], "/up/rw/x")


class CheckConfig(TollgateCase):
    shared_server = False

    def test_errors_and_warnings(self):
        tg = self.spawn(start=False)
        tg.write_config(
            "allowed_methods: [GET, get, PURGE, CONNECT]\n"
            "routes:\n"
            "  - {name: x, match: {path_prefix: /x}, other_methods: deny}\n"
            "  - {name: y, match: {path_prefix: /y, methods: [GET]}, other_methods: maybe}\n")
        out = tg.run_cli("--check-config", tg.config_path)
        self.assertNotEqual(out.returncode, 0)
        text = out.stdout + out.stderr
        self.assertRegex(text, r"tollgate\.yaml:1: allowed_methods\[1\]: 'get' is not GET")
        self.assertRegex(text, r"tollgate\.yaml:1: allowed_methods\[2\]: 'PURGE' is not GET")
        self.assertRegex(text, r"tollgate\.yaml:1: allowed_methods\[3\]: CONNECT cannot be")
        self.assertRegex(text, r"tollgate\.yaml:3: routes\[0\] \(x\): other_methods: deny needs "
                               r"match\.methods")
        self.assertRegex(text, r"tollgate\.yaml:4: routes\[1\]\.other_methods: 'maybe' is not "
                               r"one of next_route, deny")
        # the fall-through warning: to a later route or default_route that
        # asks less; none where the later route asks as much, or with deny
        tg.write_config(
            "auth: {mode: api_key, api_keys_file: api-keys}\n"
            "routes:\n"
            "  - {name: a, match: {path_prefix: /a/, methods: [GET]}, scopes: [s1]}\n"
            "  - {name: b, match: {path_prefix: /b/, methods: [GET]}, scopes: [s1]}\n"
            "  - {name: b-rest, match: {path_prefix: /b/}, scopes: [s1, s2]}\n"
            "  - {name: c, match: {path: /c/x, methods: [POST]}, scopes: [s1],\n"
            "     other_methods: deny}\n"
            "  - {name: d, match: {path: /d/x, methods: [POST]}, auth: required}\n"
            "  - {name: d-rest, match: {path_prefix: /d/}, auth: optional}\n"
            "  - {name: e, match: {path_prefix: /e/, methods: [PUT]}, auth: none}\n"
            "  - {name: f, match: {path_prefix: /f/, methods: [TRACE]}}\n")
        out = tg.run_cli("--check-config", tg.config_path)
        text = out.stdout + out.stderr
        self.assertEqual(out.returncode, 0, text)
        self.assertRegex(text, r"tollgate\.yaml:3: routes\[0\] \(a\) lists methods; in "
                               r"forward-auth another method on its paths falls through to "
                               r"default_route, which asks less \(no scope s1\)")
        self.assertRegex(text, r"tollgate\.yaml:8: routes\[4\] \(d\) lists methods; another "
                               r"method on its paths falls through to routes\[5\] \(d-rest\), "
                               r"which asks less \(auth optional\)")
        self.assertRegex(text, r"tollgate\.yaml:11: routes\[7\] \(f\): none of its methods "
                               r"is in allowed_methods; it never matches")
        for quiet in ("(b)", "(c)", "(e)"):
            self.assertNotIn(quiet + " lists methods", text)
        tg.write_config("allowed_methods: []\n")
        out = tg.run_cli("--check-config", tg.config_path)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("allowed_methods: list at least one method", out.stdout + out.stderr)
