"""The class, tested as a class (issue 19): tollgate decides on the request
the upstream will execute, or refuses.

For each front (plain nginx auth_request, ingress-nginx with auth-method,
Traefik forwardAuth, Envoy ext_authz HTTP) and each common upstream reading
of a request (strict; trailing-slash-insensitive like Express, Rails,
Spring 5; case-insensitive like ASP.NET or IIS; dot-segment- and
double-slash-resolving like many routers; method-override-honouring like
Rails, Symfony, Laravel), every request variant (slashes, dots and their
encodings, case, method spellings and overrides) is either refused by
tollgate (400), or decided exactly as tollgate decides the request that
upstream will actually execute, asked through the same front.  tollgate is
configured as docs/ says for that upstream (path_match: case_insensitive
for a case-insensitive one).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import unittest
from urllib.parse import unquote

from harness import (SLOW, TollgateCase, Tollgate, _finish, api_key, free_port, raw_request,
                     raw_status, wait_for)

HOST = "app.example.com"
CONFIGS = {"default": {}, "icase": {"path_match": "case_insensitive"}}


def configure_for(extra):
    def configure(cfg):
        cfg["forward_auth"] = {"dialect": "auto"}
        cfg["routes"] = [
            {"name": "admin", "match": {"path": "/p/admin"}, "auth": "required",
             "scopes": ["orders:write"]},
            {"name": "admin-tree", "match": {"path_prefix": "/p/admin/"}, "auth": "required",
             "scopes": ["orders:write"]},
            {"name": "delete", "match": {"path_prefix": "/p/items/", "methods": ["DELETE"]},
             "auth": "required", "scopes": ["orders:write"]},
            {"name": "public", "match": {"path_prefix": "/p/"}, "auth": "none"},
        ]
        cfg.update(extra)
    return configure


# ---- fronts: what each sends tollgate for (method, target, client headers)

def front_nginx(method, target, headers):
    h = {"Host": HOST, "X-Original-URI": target, "X-Original-Method": method,
         "X-Real-IP": "203.0.113.5"}
    return "GET", "/auth", {**headers, **h}


def front_ingress_nginx(method, target, headers):
    h = {"Host": "tollgate.tollgate.svc", "X-Original-URL": "https://%s%s" % (HOST, target),
         "X-Original-URI": target, "X-Original-Method": method,
         "X-Sent-From": "nginx-ingress-controller", "X-Real-IP": "203.0.113.5"}
    return "GET", "/auth", {**headers, **h}


def front_traefik(method, target, headers):
    h = {"X-Forwarded-Method": method, "X-Forwarded-Uri": target, "X-Forwarded-Host": HOST,
         "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"}
    return "GET", "/auth", {**headers, **h}


def front_envoy(method, target, headers):
    return method, "/auth" + target, {**headers, "Host": HOST}


FRONTS = {"nginx": front_nginx, "ingress-nginx": front_ingress_nginx,
          "traefik": front_traefik, "envoy": front_envoy}
PINS = {"nginx": "nginx", "ingress-nginx": "ingress-nginx", "traefik": "traefik",
        "envoy": "envoy"}


# ---- upstream readings: the (method, path) an upstream executes

def split(target):
    path, _, query = target.partition("?")
    return path, query


def decode_unreserved(path):
    return re.sub(r"%([0-9A-Fa-f]{2})",
                  lambda m: chr(int(m.group(1), 16))
                  if re.match(r"[A-Za-z0-9._~-]", chr(int(m.group(1), 16))) else m.group(0),
                  path)


def resolve_dots(path):
    out = []
    for seg in path.split("/")[1:]:
        if seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    trail = path.endswith(("/.", "/.."))
    return "/" + "/".join(out) + ("/" if trail and out else "")


def read_strict(method, target, headers):
    path, query = split(target)
    return method, path, query


def read_trailing_slash(method, target, headers):
    m, path, query = read_strict(method, target, headers)
    return m, (path[:-1] if len(path) > 1 and path.endswith("/") else path), query


def read_case_insensitive(method, target, headers):
    m, path, query = read_strict(method, target, headers)
    return m, path.lower(), query


def read_resolving(method, target, headers):
    m, path, query = read_strict(method, target, headers)
    return m, resolve_dots(re.sub("/+", "/", decode_unreserved(path))), query


def read_override(method, target, headers):
    m, path, query = read_strict(method, target, headers)
    for k, v in headers.items():
        if k.lower().replace("_", "-") in ("x-http-method-override", "x-http-method",
                                           "x-method-override"):
            m = v.upper()
    q = re.search(r"(?:^|[&;])_method=([^&;]*)", query, re.I)
    if q and method == "POST":
        m = unquote(q.group(1)).upper()
    return m, path, query


READINGS = {"strict": (read_strict, "default"),
            "trailing-slash": (read_trailing_slash, "default"),
            "case-insensitive": (read_case_insensitive, "icase"),
            "resolving": (read_resolving, "default"),
            "method-override": (read_override, "default")}

PATHS = ["/p/admin", "/p/admin/", "/p/admin//", "/p//admin", "/p/admin/.", "/p/./admin",
         "/p/pub/../admin", "/p/pub/%2e%2e/admin", "/p/pub/%2E%2e/admin", "/p/pub/.%2e/admin",
         "/p/Admin", "/P/ADMIN", "/p/admin/x", "/p/%61dmin", "/p/admin%2f", "/p/admin;x",
         "/p/pub/x", "/p/items/1", "/p/items/1/", "/p/ITEMS/1"]
METHODS = [("GET", {}), ("POST", {}), ("DELETE", {}), ("delete", {}), ("Delete", {}),
           ("POST", {"X-HTTP-Method-Override": "DELETE"}),
           ("POST", {"X_HTTP_Method_Override": "DELETE"}), ("POST", "?_method=DELETE")]


class Differential(TollgateCase):
    shared_server = False

    @classmethod
    def setUpClass(cls):
        cls.servers = {}

    def server(self, config, dialect):
        key = (config, dialect)
        if key not in self.servers:
            tg = Tollgate(configure_for({**CONFIGS[config],
                                         "forward_auth": {"dialect": dialect}}))
            self.addClassCleanup(_finish, tg)
            self.servers[key] = tg
        return self.servers[key]

    def decide(self, tg, front, method, target, headers):
        own_method, own_target, h = FRONTS[front](method, target, headers)
        return tg.req(own_method, own_target, {**h, **api_key("bob")}).status

    def test_fronts_decide_the_plain_requests(self):
        """The harness itself: each front's plain requests get the route's answer."""
        for front in FRONTS:
            tg = self.server("default", PINS[front])
            for method, path, want in (("GET", "/p/admin", 403), ("GET", "/p/pub/x", 200),
                                       ("DELETE", "/p/items/1", 403), ("GET", "/p/items/1", 200),
                                       ("GET", "/p/admin/x", 403)):
                self.assertEqual(self.decide(tg, front, method, path, {}), want,
                                 (front, method, path))

    def test_decision_is_about_the_executed_request(self):
        checked = refused = 0
        wrong = []
        for front in FRONTS:
            for reading, (read, config) in READINGS.items():
                for dialect in ("auto", PINS[front]):
                    tg = self.server(config, dialect)
                    for path in PATHS:
                        for method, extra in METHODS:
                            target, headers = path, {}
                            if isinstance(extra, str):
                                target += extra
                            else:
                                headers = extra
                            got = self.decide(tg, front, method, target, headers)
                            if got == 400:
                                refused += 1
                                continue
                            m, p, q = read(method, target, headers)
                            executed = p + ("?" + q if q else "")
                            want = self.decide(tg, front, m, executed, {})
                            checked += 1
                            if got != want:
                                wrong.append((front, dialect, reading, method, target,
                                              headers, got, "executed", m, executed, want))
        print("differential: %d decided as executed, %d refused" % (checked, refused))
        self.assertEqual(wrong, [], "%d of %d decisions differ from the executed request's"
                         % (len(wrong), checked))
        self.assertGreater(checked, 500)
        self.assertGreater(refused, 100)


# ---- a real nginx in front: auth_request as docs/forward-auth.md says

NGINX_CONF = """
daemon off;
worker_processes 1;
%(user)s
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %(dir)s/client_body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    upstream tollgate { server 127.0.0.1:%(tg)d; keepalive 32; }
    upstream backend { server 127.0.0.1:%(up)d; }
    server {
        listen 127.0.0.1:%(port)d;
%(snippet)s
    }
}
"""


def docs_nginx_snippet():
    """The body of the server block of docs/forward-auth.md's plain nginx
    example (its upstream block and `listen` are the test's own)."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "docs", "forward-auth.md")) as f:
        text = f.read()
    block = text.split("## nginx `auth_request` (without the ingress controller)", 1)[1]
    block = block.split("```nginx", 1)[1].split("```", 1)[0]
    body = block.split("server {", 1)[1].rsplit("}", 1)[0]
    return "\n".join(l for l in body.splitlines() if not l.strip().startswith("listen "))


class RawUpstream:
    """A socket server that records each request's exact request line and
    headers, and answers 200."""

    def __init__(self):
        self.seen = []  # (request line, X-Diff-Id, [(name, value)...] as received)
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        conn.settimeout(10)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                hdrs, pairs = {}, []
                for l in lines[1:]:
                    k, _, v = l.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                    pairs.append((k.strip(), v.strip()))
                n = int(hdrs.get("content-length", "0") or 0)
                while len(buf) < n:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                buf = buf[n:]
                with self.lock:
                    self.seen.append((lines[0], hdrs.get("x-diff-id"), pairs))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nupstream")
        except OSError:
            return
        finally:
            conn.close()

    def close(self):
        self.sock.close()


class RealNginx(unittest.TestCase):
    """nginx auth_request (a real nginx, configured with docs/forward-auth.md's
    snippet) in front of a raw upstream: every request variant nginx
    forwarded was allowed by tollgate for the request the upstream received
    (asked again directly, under each upstream reading tollgate's default
    config is meant for), and every refused one never reached it."""

    @classmethod
    def setUpClass(cls):
        binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
        if binary is None:
            raise unittest.SkipTest("nginx not installed (make deps: nginx-light)")
        cls.up = RawUpstream()
        cls.addClassCleanup(cls.up.close)
        cls.tg = Tollgate(configure_for({"forward_auth": {"dialect": "nginx"}}))
        cls.addClassCleanup(_finish, cls.tg)
        cls.dir = tempfile.mkdtemp(prefix="tollgate-it-nginx-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.err = open(os.path.join(cls.dir, "stderr.log"), "wb")
        cls.addClassCleanup(cls.err.close)
        cls.nginx = None
        cls.addClassCleanup(cls._stop_nginx)
        # nginx cannot bind port 0 and say which port it got: a port free a
        # moment ago may be taken when it binds, so a start that fails on
        # the bind is retried on another port (a bounded number of times).
        for _ in range(3):
            state = cls._start_nginx(binary)
            if state == "ok":
                return
            with open(os.path.join(cls.dir, "error.log"), "rb") as f:
                log = f.read()[-2000:]
            cls._stop_nginx()
            if b"Address already in use" not in log:
                break
        raise AssertionError("nginx did not start (%s): %r" % (state, log))

    @classmethod
    def _start_nginx(cls, binary):
        cls.port = free_port()
        if os.path.exists(os.path.join(cls.dir, "error.log")):
            os.unlink(os.path.join(cls.dir, "error.log"))  # this attempt's alone
        with open(os.path.join(cls.dir, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF % {"dir": cls.dir, "tg": cls.tg.port, "up": cls.up.port,
                                  "port": cls.port, "snippet": docs_nginx_snippet(),
                                  "user": "user root;" if os.geteuid() == 0 else ""})
        cls.nginx = subprocess.Popen([binary, "-p", cls.dir, "-c", "nginx.conf",
                                      "-e", os.path.join(cls.dir, "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=cls.err, stderr=cls.err)

        def listening():
            if cls.nginx.poll() is not None:
                return "exited"
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=0.5).close()
                return "ok"
            except OSError:
                return None
        return wait_for(listening, 10)

    @classmethod
    def _stop_nginx(cls):
        if cls.nginx is not None and cls.nginx.poll() is None:
            cls.nginx.send_signal(signal.SIGTERM)  # by PID: only ours
            try:
                cls.nginx.wait(5 * SLOW)
            except subprocess.TimeoutExpired:
                cls.nginx.kill()
                cls.nginx.wait(5)

    def via_nginx(self, method, target, headers, n):
        extra = "".join("%s: %s\r\n" % kv for kv in headers.items())
        body = "Content-Length: 2\r\n\r\n{}" if method.upper() in ("POST", "PUT") else "\r\n"
        resp = raw_request(self.port, ("%s %s HTTP/1.1\r\nHost: %s\r\nX-Diff-Id: %d\r\n"
                                       "X-API-Key: %s\r\n%sConnection: close\r\n%s"
                                       % (method, target, HOST, n, api_key("bob")["X-API-Key"],
                                          extra, body)).encode("latin-1"))
        return raw_status(resp)

    def direct(self, method, target):
        """tollgate's decision on (method, target) as nginx would ask it."""
        own_method, own_target, h = front_nginx(method, target, {})
        return self.tg.req(own_method, own_target, {**h, **api_key("bob")}).status

    def test_plain_requests(self):
        """The setup itself: nginx asks tollgate, and only an allow goes on."""
        self.assertEqual(self.via_nginx("GET", "/p/pub/x", {}, 900001), 200)
        self.assertEqual(self.via_nginx("GET", "/p/admin", {}, 900002), 403)
        self.assertEqual(self.via_nginx("DELETE", "/p/items/1", {}, 900003), 403)
        ids = [i for _, i, _ in self.up.seen]
        self.assertIn("900001", ids)
        self.assertNotIn("900002", ids)
        self.assertNotIn("900003", ids)

    def test_forwarded_only_when_allowed_for_what_upstream_received(self):
        variants = METHODS + [("PURGE", {}), ("TRACE", {}), ("PATCH", {})]
        sent = {}
        n = 0
        for path in PATHS:
            for method, extra in variants:
                target, headers = path, {}
                if isinstance(extra, str):
                    target += extra
                else:
                    headers = extra
                n += 1
                sent[str(n)] = (method, target, headers,
                                self.via_nginx(method, target, headers, n))
        with self.up.lock:
            seen = list(self.up.seen)
        forwarded = {i: (line, hdrs) for line, i, hdrs in seen if i in sent}
        wrong = []
        for i, (method, target, headers, status) in sent.items():
            if (status == 200) != (i in forwarded):
                wrong.append(("nginx said", status, "upstream got it", i in forwarded,
                              method, target, headers))
        for i, (line, received) in forwarded.items():
            method, target, _ = line.split(" ", 2)
            # the headers the upstream got (nginx drops X_HTTP_Method_Override:
            # underscores_in_headers is off), not the ones the client sent
            headers = dict(received)
            # forwarded: tollgate allowed; it must allow what the upstream
            # executes, under each reading the default config is meant for
            for reading in ("strict", "trailing-slash", "resolving", "method-override"):
                m, p, q = READINGS[reading][0](method, target, headers)
                executed = p + ("?" + q if q else "")
                got = self.direct(m, executed)
                if got != 200:
                    wrong.append(("allowed", sent[i][:3], "upstream received", line, reading,
                                  "executes", m, executed, "decided", got))
        statuses = sorted(set(v[3] for v in sent.values()))
        print("real nginx: %d variants, %d forwarded; nginx answers %s"
              % (len(sent), len(forwarded), statuses))
        self.assertEqual(wrong, [])
        # nginx's own 400s (e.g. "delete"), tollgate's 403, its 400 as nginx's 500
        self.assertTrue({200, 400, 403, 500} <= set(statuses), statuses)
        self.assertGreater(len(forwarded), 20)
        self.assertGreater(len(sent) - len(forwarded), 60)


if __name__ == "__main__":
    import unittest
    unittest.main()
