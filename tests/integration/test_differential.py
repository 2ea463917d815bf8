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
import re
from urllib.parse import unquote

from harness import TollgateCase, Tollgate, _finish, api_key

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


if __name__ == "__main__":
    import unittest
    unittest.main()
