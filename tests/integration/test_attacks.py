"""Attacks through the ways ingresses pass client headers on (issue 7):
forward-auth dialect confusion, forged identity headers through CGI-style
header merging, request smuggling into pooled upstream connections,
ambiguous paths, one identity namespace for keys and JWT subjects, audit
redaction.  Each test sends what an attacker would and asserts the
decision did not move."""
import http.server
import json
import socket
import threading
import urllib.parse
import wsgiref.simple_server

from harness import (TollgateCase, Tollgate, Upstream, api_key, bearer, make_jwt,
                     nginx_headers, raw_request, raw_status, standard_config, traefik_headers,
                     unique, _finish)


def attack_config(cfg):
    standard_config(cfg)
    cfg["routes"].insert(0, {"name": "public-host",
                             "match": {"host": "public.example", "path_prefix": "/h/"},
                             "auth": "none"})
    return cfg


# The original request of each dialect, as its ingress sends it: (auth path,
# headers).  `target` is what the dialect's own headers say.
def dialect_request(dialect, target, method="GET", host="secure.example"):
    if dialect == "nginx-url":
        return "/auth", nginx_headers(target, method, host=host)
    if dialect == "nginx-uri":
        h = nginx_headers(target, method, url=False)
        h["Host"] = host
        return "/auth", h
    if dialect == "traefik":
        return "/auth", traefik_headers(target, method, host=host)
    return "/auth" + target, {"Host": host}  # envoy: method is the request's own


# Headers a client adds for another path, host or method: the ingress passes
# them through unchanged.
FOREIGN = [
    ("X-Original-URL", "http://public.example/orders/1"),
    ("X-Original-URL", "http://public.example/h/x"),
    ("X-Original-URI", "/orders/1"),
    ("X-Original-Method", "OPTIONS"),
    ("X-Sent-From", "nginx-ingress-controller"),
    ("X-Forwarded-Uri", "/orders/1"),
    ("X-Forwarded-Method", "OPTIONS"),
    ("X-Forwarded-Host", "public.example"),
]
# X-Forwarded-Host is what Traefik itself sets: a client's copy is replaced.
OWN = {"traefik": {"X-Forwarded-Host", "X-Forwarded-Uri", "X-Forwarded-Method"},
       "nginx-url": {"X-Original-URL", "X-Original-Method", "X-Sent-From"},
       "nginx-uri": {"X-Original-URI", "X-Original-Method", "X-Sent-From"},
       "envoy": set()}
PINNED = {"nginx-url": "nginx", "nginx-uri": "nginx", "traefik": "traefik", "envoy": "envoy"}


class DialectMatrix(TollgateCase):
    """For every dialect and every foreign header a client could add, the
    decision stays what the dialect's own headers say, or is a 400."""
    shared_server = False

    @classmethod
    def setUpClass(cls):
        cls.servers = {}
        for d in ("auto", "nginx", "traefik", "envoy"):
            def conf(cfg, d=d):
                attack_config(cfg)
                cfg["forward_auth"] = {"dialect": d}
                return cfg
            cls.servers[d] = Tollgate(conf)
            cls.addClassCleanup(_finish, cls.servers[d])

    # (target, credential, expected baseline): a denied one and an allowed one,
    # and a host-route case where the credential is missing.
    CASES = [("/orders/admin/x", "bob", 403), ("/orders/7", "bob", 200),
             ("/orders/7", None, 401), ("/h/x", None, 401)]

    def decide(self, tg, dialect, target, cred, extra=None):
        path, h = dialect_request(dialect, target)
        h = dict(h)
        if cred:
            h.update(api_key(cred))
        h.update(extra or {})
        return tg.get(path, h).status

    def test_matrix(self):
        n = 0
        for dialect in ("nginx-url", "nginx-uri", "traefik", "envoy"):
            for config in ("auto", PINNED[dialect]):
                tg = self.servers[config]
                for target, cred, want in self.CASES:
                    base = self.decide(tg, dialect, target, cred)
                    self.assertEqual(base, want, (dialect, config, target))
                    for name, value in FOREIGN:
                        if name in OWN[dialect]:
                            continue
                        got = self.decide(tg, dialect, target, cred, {name: value})
                        # A pinned dialect ignores the others' headers; a client's
                        # X-Original-URI next to nginx's X-Original-URL (or the
                        # reverse) is ambiguous within the dialect: 400.
                        allowed = {base} if config != "auto" else {base, 400}
                        if config == "nginx" and name in ("X-Original-URI", "X-Original-URL"):
                            allowed.add(400)
                        with self.subTest(dialect=dialect, config=config, target=target,
                                          header=name):
                            self.assertIn(got, allowed)
                        n += 1
        self.assertGreater(n, 100)

    def test_auto_refuses_two_dialects(self):
        tg = self.servers["auto"]
        h = dict(traefik_headers("/orders/admin/x"), **api_key("bob"))
        h["X-Original-URI"] = "/orders/7"
        r = tg.get("/auth", h)
        self.assertEnvelope(r, 400, "bad_request")
        self.assertEqual(tg.audit_for(r.header("X-Request-ID"))["reason"], "dialect_conflict")
        # Envoy-style path plus nginx headers: two dialects.
        r = tg.get("/auth/orders/admin/x", dict(api_key("bob"), **{"X-Original-URI": "/orders/7"}))
        self.assertEnvelope(r, 400, "bad_request")

    def test_original_url_and_uri_must_agree(self):
        for config in ("auto", "nginx"):
            tg = self.servers[config]
            h = dict(nginx_headers("/orders/admin/x"), **api_key("bob"))
            h["X-Original-URI"] = "/orders/7"
            self.assertEqual(tg.get("/auth", h).status, 400, config)
            h["X-Original-URI"] = "/orders/admin/x"
            self.assertEqual(tg.get("/auth", h).status, 400, config)  # host not Host
            h["Host"] = "app.example.com"  # what nginx_headers() puts in the URL
            self.assertEqual(tg.get("/auth", h).status, 403, config)

    def test_nginx_uri_host_is_host_header(self):
        """Plain nginx passes a client's X-Forwarded-Host through: never the host."""
        for config in ("auto", "nginx"):
            tg = self.servers[config]
            path, h = dialect_request("nginx-uri", "/h/x", host="secure.example")
            self.assertEqual(tg.get(path, h).status, 401)
            h["X-Forwarded-Host"] = "public.example"
            self.assertEqual(tg.get(path, h).status, 401, config)
            h["Host"] = "public.example"
            self.assertEqual(tg.get(path, h).status, 200, config)

    def test_pinned_envoy_ignores_dialect_headers_from_anyone(self):
        tg = self.servers["envoy"]
        h = dict(api_key("bob"), **{"X-Original-URI": "/orders/7", "X-Forwarded-Uri": "/orders/7"})
        self.assertEqual(tg.get("/auth/orders/admin/x", h).status, 403)

    def test_duplicate_dialect_header_refused(self):
        tg = self.servers["auto"]
        key = api_key("bob")["X-API-Key"]
        req = ("GET /auth HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\n"
               "X-Original-URI: /orders/admin/x\r\nX-Original-URI: /orders/7\r\n"
               "Connection: close\r\n\r\n" % key).encode()
        self.assertEqual(raw_status(raw_request(tg.port, req)), 400)


# ------------------------------------------------------------- WSGI upstream

class WsgiUpstream:
    """A real WSGI app (Python stdlib wsgiref) that answers with the HTTP_*
    variables it sees, as gunicorn or any CGI bridge would merge them."""

    def __init__(self):
        def app(environ, start):
            seen = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
            body = json.dumps(seen).encode()
            start("200 OK", [("Content-Type", "application/json"),
                             ("Content-Length", str(len(body)))])
            return [body]

        class Quiet(wsgiref.simple_server.WSGIRequestHandler):
            def log_message(self, *a):
                pass

        self.server = wsgiref.simple_server.make_server("127.0.0.1", 0, app,
                                                        handler_class=Quiet)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


FORGED = {
    "X_Auth_Client_Id": "root", "X_Auth_Scopes": "orders:write admin",
    "X.Auth.Subject": "root", "X_AUTH_METHOD": "api_key", "X-Auth-Client-Id": "root",
    "X_Real_IP": "6.6.6.6", "X-Real-IP": "6.6.6.6", "X_Forwarded_For": "6.6.6.6",
    "X_Request_ID": "forged", "X_Forwarded_Host": "evil.example",
    "X-Forwarded-Prefix": "/evil", "X-Original-URI": "/evil", "Forwarded": "for=6.6.6.6",
}


class ForgedIdentity(TollgateCase):
    shared_server = False

    @classmethod
    def setUpClass(cls):
        cls.up = WsgiUpstream()
        cls.addClassCleanup(cls.up.close)

        def conf(cfg, reserved="drop", hide=False):
            cfg["routes"] = [{"name": "api", "match": {"path_prefix": "/api/"},
                              "upstream": cls.up.url, "auth": "required"},
                             {"name": "open", "match": {"path_prefix": "/open/"},
                              "upstream": cls.up.url, "auth": "none"},
                             {"name": "fa", "match": {"path_prefix": "/fa/"}, "auth": "none"}]
            cfg["proxy"] = {"reserved_headers": reserved, "hide_credentials": hide}
            cfg["trusted_proxies"] = ["10.0.0.0/8"]  # the test client is not trusted
            return cfg
        cls.tg = Tollgate(conf)
        cls.addClassCleanup(_finish, cls.tg)
        cls.strict = Tollgate(lambda c: conf(c, "reject", True))
        cls.addClassCleanup(_finish, cls.strict)

    def test_wsgi_app_sees_only_tollgates_identity(self):
        h = dict(FORGED, **api_key("bob"))
        r = self.tg.get("/api/x", h)
        self.assertEqual(r.status, 200, r)
        env = r.json()
        self.assertEqual(env["HTTP_X_AUTH_CLIENT_ID"], "bob")
        self.assertEqual(env["HTTP_X_AUTH_SCOPES"], "orders:read")
        self.assertEqual(env["HTTP_X_AUTH_SUBJECT"], "bob")
        self.assertEqual(env["HTTP_X_AUTH_METHOD"], "api_key")
        self.assertEqual(env["HTTP_X_REAL_IP"], "127.0.0.1")
        self.assertEqual(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1")
        self.assertEqual(env["HTTP_X_REQUEST_ID"], r.header("X-Request-ID"))
        for gone in ("HTTP_FORWARDED", "HTTP_X_FORWARDED_PREFIX", "HTTP_X_ORIGINAL_URI"):
            self.assertNotIn(gone, env)
        self.assertNotEqual(env.get("HTTP_X_FORWARDED_HOST"), "evil.example")
        self.assertIn("it-key-bob", env["HTTP_X_API_KEY"])  # hide_credentials is off here

    def test_anonymous_route_gets_no_forged_identity(self):
        r = self.tg.get("/open/x", FORGED)
        self.assertEqual(r.status, 200, r)
        env = r.json()
        for name in ("HTTP_X_AUTH_CLIENT_ID", "HTTP_X_AUTH_SCOPES", "HTTP_X_AUTH_SUBJECT"):
            self.assertNotIn(name, env)

    def test_reject_mode_refuses(self):
        for name, value in FORGED.items():
            if name in ("X-Real-IP", "X-Forwarded-Prefix", "X-Original-URI", "Forwarded"):
                continue  # exact spellings of proxy headers are dropped, not refused
            with self.subTest(header=name):
                r = self.strict.get("/api/x", dict(api_key("bob"), **{name: value}))
                self.assertEnvelope(r, 400, "bad_request")
        r = self.strict.get("/api/x", api_key("bob"))
        self.assertEqual(r.status, 200)

    def test_hide_credentials(self):
        r = self.strict.get("/api/x", api_key("bob"))
        self.assertEqual(r.status, 200)
        self.assertNotIn("HTTP_X_API_KEY", r.json())
        r = self.strict.get("/api/x", bearer(make_jwt(sub="jwt-user")))
        self.assertEqual(r.status, 200)
        self.assertNotIn("HTTP_AUTHORIZATION", r.json())

    def test_forward_auth_refuses_variant_identity_names(self):
        """An ingress passes X_Auth_Scopes on to the upstream: refuse it."""
        for name in ("X_Auth_Scopes", "X.Auth.Client.Id", "x_auth_method"):
            r = self.tg.get("/auth/fa/x", {name: "admin"})
            self.assertEnvelope(r, 400, "bad_request")
        r = self.tg.get("/auth/fa/x")
        self.assertEqual(r.status, 200)
        # Anonymous allows still carry the identity headers, empty.
        self.assertEqual(r.header("X-Auth-Method"), "none")
        self.assertEqual(r.header("X-Auth-Client-Id"), "")


# ---------------------------------------------------------------- smuggling

def smuggle_cases(key):
    k = "X-API-Key: %s\r\n" % key
    five, chunk = "Content-Length: 5\r\n", "0\r\n\r\n"
    return [  # (case, extra headers, body)
        ("space before colon", five + "Transfer-Encoding : chunked\r\n", "hello"),
        ("space in name", "X-Foo bar: 1\r\n", ""),
        ("two content lengths", five + "Content-Length: 6\r\n", "hello"),
        ("same content length twice", five + five, "hello"),
        ("signed content length", "Content-Length: +5\r\n", "hello"),
        ("te not chunked", "Transfer-Encoding: xchunked\r\n", ""),
        ("te and cl", "Transfer-Encoding: chunked\r\n" + five, chunk),
        ("two api keys", k + "X-API-Key: other\r\n", ""),
        ("two authorizations", "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n", ""),
        ("two hosts", "Host: b\r\n", ""),
        ("control byte", "X-Foo: a\x01b\r\n", ""),
    ]


class Smuggling(TollgateCase):
    shared_server = False

    @classmethod
    def setUpClass(cls):
        cls.up = Upstream()
        cls.addClassCleanup(cls.up.close)

        def conf(cfg):
            standard_config(cfg)
            cfg["routes"].insert(0, {"name": "api", "match": {"path_prefix": "/api/"},
                                     "upstream": cls.up.url, "auth": "none"})
            return cfg
        cls.tg = Tollgate(conf)
        cls.addClassCleanup(_finish, cls.tg)

    def test_refused_in_both_modes(self):
        key = api_key("bob")["X-API-Key"]
        before = len(self.up.requests)
        for path in ("/api/x", "/auth/orders/1"):
            for name, extra, body in smuggle_cases(key):
                req = ("POST %s HTTP/1.1\r\nHost: a\r\n%s%s\r\n%s"
                       % (path, "" if "two api" in name else "X-API-Key: %s\r\n" % key,
                          extra, body))
                resp = raw_request(self.tg.port, req.encode(), timeout=3)
                with self.subTest(path=path, case=name):
                    self.assertEqual(raw_status(resp), 400, resp[:300])
                    head = resp.split(b"\r\n\r\n", 1)[0].lower()
                    if b'"code":"bad_request"' in resp:
                        self.assertIn(b"connection: close", head)
        self.assertEqual(len(self.up.requests), before, "a refused request reached the upstream")
        self.assertServing()

    def test_clean_requests_still_pass(self):
        key = api_key("bob")["X-API-Key"]
        req = ("POST /api/x HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\nContent-Length: 5\r\n"
               "Connection: close\r\n\r\nhello" % key).encode()
        self.assertEqual(raw_status(raw_request(self.tg.port, req)), 200)
        req = ("POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
               "Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n").encode()
        self.assertEqual(raw_status(raw_request(self.tg.port, req)), 200)


# -------------------------------------------------------------------- paths

class AmbiguousPaths(TollgateCase):
    shared_server = False

    @classmethod
    def setUpClass(cls):
        cls.up = Upstream()
        cls.addClassCleanup(cls.up.close)

        def conf(cfg, icase=False):
            standard_config(cfg)
            cfg["routes"] = [
                {"name": "admin", "match": {"path_prefix": "/papi/admin"},
                 "upstream": cls.up.url, "auth": "required", "scopes": ["orders:write"]},
                {"name": "files", "match": {"path_prefix": "/files/"}, "upstream": cls.up.url,
                 "auth": "none", "allow_encoded_percent": True, "allow_semicolon": True},
                {"name": "papi", "match": {"path_prefix": "/papi/"}, "upstream": cls.up.url,
                 "auth": "required"},
            ] + cfg["routes"]
            if icase:
                cfg["path_match"] = "case_insensitive"
            return cfg
        cls.tg = Tollgate(conf)
        cls.addClassCleanup(_finish, cls.tg)
        cls.icase = Tollgate(lambda c: conf(c, True))
        cls.addClassCleanup(_finish, cls.icase)

    BAD = ["/papi/x/..;/admin", "/papi/x/.;/admin", "/papi/x/%2e%2e;/admin", "/papi\\admin",
           "/papi/%5cadmin", "/papi/%5Cadmin", "/papi/%2561dmin", "/papi;x/admin"]

    def test_refused_in_proxy_and_every_dialect(self):
        for p in self.BAD:
            with self.subTest(path=p):
                r = self.tg.get(p, api_key("bob"))
                self.assertEnvelope(r, 400, "bad_request")
                self.assertEqual(self.tg.get("/auth" + p, api_key("bob")).status, 400)
                self.assertEqual(self.tg.get("/auth", dict(api_key("bob"),
                                 **nginx_headers(p))).status, 400)
                self.assertEqual(self.tg.get("/auth", dict(api_key("bob"),
                                 **traefik_headers(p))).status, 400)

    def test_route_may_allow_percent25_and_semicolon(self):
        r = self.tg.get("/files/a%2541;v=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/files/a%2541;v=1")
        # a dot segment with parameters is refused even there
        self.assertEqual(self.tg.get("/files/x/..;/y").status, 400)

    def test_case_variants(self):
        # case-sensitive (default): /papi/ADMIN is the papi route, not admin
        self.assertEqual(self.tg.get("/papi/ADMIN", api_key("bob")).status, 200)
        # case_insensitive: it is the admin route, and its limits apply too
        self.assertEqual(self.icase.get("/papi/ADMIN", api_key("bob")).status, 403)
        self.assertEqual(self.icase.get("/PAPI/Admin/x", api_key("alice")).status, 200)
        bucket = unique("ci")
        h = dict(api_key("bob"), **{"X-Test-Bucket": bucket})
        got = [self.icase.get(p, h).status for p in
               ("/auth/limited/a", "/auth/LIMITED/a", "/auth/Limited/a", "/auth/LiMiTeD/a")]
        self.assertEqual(got, [200, 200, 200, 429])


# ---------------------------------------------------- identity namespace

class IdentityNamespace(TollgateCase):
    configure = staticmethod(standard_config)

    def test_jwt_sub_named_like_a_key_has_its_own_bucket(self):
        bucket = unique("ns")
        tok = make_jwt(sub="bob", scope="orders:read")
        jh = dict(bearer(tok), **{"X-Test-Bucket": bucket})
        for _ in range(3):
            r = self.tg.get("/auth/limited/x", jh)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("X-Auth-Method"), "jwt")
        self.assertEqual(self.tg.get("/auth/limited/x", jh).status, 429)
        kh = dict(api_key("bob"), **{"X-Test-Bucket": bucket})
        r = self.tg.get("/auth/limited/x", kh)
        self.assertEqual(r.status, 200, "the key shared the JWT subject's bucket")
        self.assertEqual(r.header("X-Auth-Method"), "api_key")
        self.assertEqual(r.header("X-RateLimit-Remaining"), "2")

    def test_subject_bytes_are_percent_encoded(self):
        tok = make_jwt(sub="\u00fcser, admin; x", scope="orders:read a,b")
        r = self.tg.get("/auth/orders/1", bearer(tok))
        self.assertEqual(r.status, 200, r)
        raw = r.headers.get_all("X-Auth-Subject")
        self.assertEqual(raw, ["%C3%BCser%2C%20admin;%20x"])
        self.assertEqual(urllib.parse.unquote(raw[0]), "\u00fcser, admin; x")
        self.assertEqual(r.header("X-Auth-Client-Id"), raw[0])
        self.assertEqual(r.header("X-Auth-Scopes"), "orders:read a%2Cb")


# --------------------------------------------------------------- redaction

class AuditRedaction(TollgateCase):
    @staticmethod
    def configure(cfg):
        standard_config(cfg)
        cfg["audit"]["redact_query"] = ["session_hint", "X-Sig"]
        return cfg

    NAMES = ["token", "access_token", "api_key", "ticket", "password", "apikey", "api-key",
             "key", "jwt", "id_token", "refresh_token", "client_secret", "secret",
             "session_hint", "x-sig"]

    def test_each_name_redacted_any_case(self):
        for name in self.NAMES:
            for spelled in (name, name.upper()):
                rid = unique("red")
                secret = "s3cr3t-%s" % rid
                r = self.tg.get("/auth/public/x?a=1&%s=%s&b=2" % (spelled, secret),
                                {"X-Request-ID": rid})
                self.assertEqual(r.status, 200)
                rec = self.tg.audit_for(rid)
                with self.subTest(name=spelled):
                    self.assertNotIn(secret, rec["path"])
                    self.assertIn("%s=REDACTED" % spelled, rec["path"])
                    self.assertIn("a=1", rec["path"])
        self.assertNotIn(b"s3cr3t", self.tg.audit_raw().replace(b"REDACTED", b""))

    def test_config_rejects_bad_names(self):
        tg = Tollgate(lambda c: dict(c, audit={"path": "-", "redact_query": ["a b"]}),
                      start=False)
        self.addCleanup(_finish, tg)
        out = tg.run_cli("--check-config", "--config", tg.config_path)
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("redact_query", out.stdout + out.stderr)
