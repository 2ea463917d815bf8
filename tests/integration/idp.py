"""A real local identity provider over HTTPS for the tests.

A CA and a server certificate for 127.0.0.1 are made with the openssl command
line; the server is the standard library's http.server wrapped in ssl.  It
serves OIDC discovery (/.well-known/openid-configuration) and a JWKS (/jwks)
that the test changes at will, and counts what it was asked.

    idp = Idp()                       # started; idp.issuer, idp.ca_file
    idp.set_keys(key1.jwk("RS256"))   # what /jwks answers from now on
    idp.down = True                   # answers 503 (connection kept)
    idp.hits["/jwks"]                 # how many times the JWKS was fetched
    idp.last_hit()                    # time.monotonic() the last one arrived
    idp.stop()
"""
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """ca.pem / ca.key, and srv.pem / srv.key for 127.0.0.1 signed by it."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", "2", "-subj", "/CN=tollgate test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
             "-subj", "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)


class Idp:
    def __init__(self, keys=(), max_age=None):
        self.dir = tempfile.mkdtemp(prefix="tollgate-idp-")
        make_pki(self.dir)
        self.ca_file = os.path.join(self.dir, "ca.pem")
        self.jwks_path = "/jwks"
        self.keys = list(keys)
        self.max_age = max_age
        self.down = False
        self.discovery_issuer = None  # None: our issuer; set to lie
        self.hits = {}
        self.hit_at = {}  # path -> time.monotonic() of its last request
        self.lock = threading.Lock()
        idp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # a client that stalls (mid-handshake too) frees its thread

            def log_message(self, *a):
                pass

            def do_GET(self):
                with idp.lock:
                    idp.hits[self.path] = idp.hits.get(self.path, 0) + 1
                    idp.hit_at[self.path] = time.monotonic()
                    down, keys, max_age = idp.down, list(idp.keys), idp.max_age
                if down:
                    return self.answer(503, b'{"error":"down"}')
                if self.path == "/.well-known/openid-configuration":
                    doc = {"issuer": idp.discovery_issuer or idp.issuer,
                           "jwks_uri": idp.issuer + idp.jwks_path,
                           "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
                    return self.answer(200, json.dumps(doc).encode())
                if self.path == idp.jwks_path:
                    return self.answer(200, json.dumps({"keys": keys}).encode(), max_age)
                self.answer(404, b"{}")

            def answer(self, code, body, max_age=None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if max_age is not None:
                    self.send_header("Cache-Control", "public, max-age=%d" % max_age)
                self.end_headers()
                self.wfile.write(body)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(self.dir, "srv.pem"), os.path.join(self.dir, "srv.key"))

        class TlsServer(http.server.ThreadingHTTPServer):
            """serve_forever's thread only accepts plain TCP connections;
            TLS (wrap, handshake, its failures) happens in each connection's
            own thread.  With the listening socket wrapped instead, the
            accept thread ran ssl code, and twice in CI the loop stopped
            answering: the first JWKS fetch timed out, and once stop()'s
            shutdown() waited until the suite's 600 s guard."""
            daemon_threads = True
            accept_timeouts = 0  # select() said ready, accept() found nothing

            def server_activate(self):
                super().server_activate()
                # accept() with a deadline: serve_forever's select() can
                # report the listener ready when accept() then finds no
                # connection, and a blocking accept() then stopped the
                # loop for good (seen in full-suite runs: the thread sat in
                # accept() while tollgate's fetch timed out unaccepted).
                # Accepted sockets are blocking again (socket.accept).
                self.socket.settimeout(0.5)

            def get_request(self):
                try:
                    return super().get_request()
                except socket.timeout:
                    TlsServer.accept_timeouts += 1
                    raise

            def finish_request(self, request, client_address):
                request.settimeout(Handler.timeout)  # a stalled handshake too
                try:
                    conn = ctx.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # a client that does not trust us (a test's point), or left
                try:
                    Handler(conn, client_address, self)
                except OSError:
                    pass  # the client left mid-request
                finally:
                    conn.close()

        # Port 0: the kernel's choice, held from the bind on (a port picked
        # earlier and bound later can be taken in between).
        self.httpd = TlsServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.issuer = "https://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def set_keys(self, *jwks):
        with self.lock:
            self.keys = list(jwks)

    def count(self, path="/jwks"):
        with self.lock:
            return self.hits.get(path, 0)

    def last_hit(self, path="/jwks"):
        """When the last request for `path` arrived (time.monotonic(), the
        clock tollgate's fetch scheduling runs on too); None when never."""
        with self.lock:
            return self.hit_at.get(path)

    def stacks(self):
        """Every thread's stack: what the IdP was doing when a test gave up
        on it (a fetch that timed out names where its server was)."""
        names = {t.ident: t.name for t in threading.enumerate()}
        return "accept timeouts: %d\n" % type(self.httpd).accept_timeouts + "\n".join("--- %s\n%s" % (names.get(ident, ident),
                                           "".join(traceback.format_stack(frame)))
                         for ident, frame in sys._current_frames().items())

    def stop(self):
        # shutdown() waits for serve_forever to notice, for ever if it is
        # stuck (CI saw one stop hang until the 600 s guard).  Wait with a
        # deadline instead, and when the loop is stuck say where, so the
        # failure names its cause rather than hanging the suite.
        stopper = threading.Thread(target=self.httpd.shutdown, daemon=True)
        stopper.start()
        stopper.join(10)
        stuck = stopper.is_alive()
        where = ""
        if stuck:
            frame = sys._current_frames().get(self.thread.ident)
            where = "".join(traceback.format_stack(frame)) if frame else "(no frame)"
        self.httpd.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if type(self.httpd).accept_timeouts:
            sys.stderr.write(" [test IdP: %d accept() found no connection after select()] "
                             % type(self.httpd).accept_timeouts)
            type(self.httpd).accept_timeouts = 0
        if stuck:
            raise AssertionError("the test IdP's serve_forever did not stop in 10 s:\n" + where)
