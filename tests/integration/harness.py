"""Integration test harness for tollgate (Python 3 standard library only).

What it gives a test:
  * Tollgate   - one real `tollgate` process (TOLLGATE_BIN) listening on
                 127.0.0.1:0 (both listeners): the kernel picks the ports and
                 tollgate writes them to its --port-file, which the harness
                 waits for (bounded), so no port is guessed and none can be
                 taken between a guess and the bind.  Its config, key file,
                 audit log and stderr live in a temp dir; started with a
                 bounded wait for /readyz on the admin port, stopped by PID
                 (SIGTERM, then SIGKILL after a bound).
  * Upstream   - a real HTTP server (ThreadingHTTPServer in a thread) that
                 echoes method, path, headers and body as JSON, and can be told
                 to delay or to answer with a given status.
  * make_jwt   - HS256 (and deliberately broken) JWTs, built with hmac.
  * raw_request- bytes over a plain socket, for input http.client won't send.
  * TollgateCase - a unittest.TestCase base class that starts a server per
                 class (or per test) and always stops it, checking stderr for
                 sanitizer reports.

Every wait is bounded; nothing here sleeps longer than it must.
"""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

TOLLGATE_BIN = os.environ.get("TOLLGATE_BIN", "")
# Under ASan everything is slower: scale the waits, not the logic.
SLOW = 3.0 if ("asan" in TOLLGATE_BIN or os.environ.get("TOLLGATE_SLOW")) else 1.0

JWT_SECRET = "integration-test-jwt-secret-0123456789abcdef"  # >= 32 bytes
ADMIN_TOKEN = "integration-admin-token-0123456789"
ISSUER = "https://issuer.test"
AUDIENCE = "tollgate"

# Route option naming the upstream timeout (cfg_route_t.upstream_timeout_ms).
ROUTE_TIMEOUT_KEY = "upstream_timeout_ms"

# Test API keys: id -> (plaintext key, scopes, tier).
KEYS = {
    "alice": ("it-key-alice-0123456789abcdef0123", ["orders:read", "orders:write"], "gold"),
    "bob": ("it-key-bob-0123456789abcdef012345", ["orders:read"], None),
    "carol": ("it-key-carol-0123456789abcdef01234", [], None),
}


def key_of(client_id):
    return KEYS[client_id][0]


def sha256_hex(s):
    return hashlib.sha256(s.encode() if isinstance(s, str) else s).hexdigest()


def key_line(client_id, key, scopes=None, tier=None):
    line = "%s %s" % (client_id, sha256_hex(key))
    if scopes:
        line += " scopes=" + ",".join(scopes)
    if tier:
        line += " tier=" + tier
    return line


_HANDED_OUT = set()


def _ephemeral_low():
    """The first port of the kernel's ephemeral range (32768 by default)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(lo=22000, hi=None):
    """A loopback TCP port that is free now, and never one this test process
    handed out before.  Only for processes that cannot report a port they
    bound themselves (redis-server, nginx, HAProxy, a port that must
    refuse): tollgate listens on port 0 and says which ports it got
    (--port-file).

    Picked at random in [lo, hi), below the kernel's ephemeral range: a port
    of that range (what bind to port 0 gives) is also the source port of
    outgoing connections, which a busy suite opens by the thousand, so it
    could be taken between this pick and the server's bind (a chart Redis
    pod once found its port in use).  Below it only another listener can
    take it.  scripts/redis-cluster.sh picks in 10000-21999, hence 22000."""
    hi = min(hi or 32768, _ephemeral_low())
    for _ in range(1000):
        if hi - lo >= 1000:
            port = random.randrange(lo, hi)
        else:  # an unusual ephemeral range: take the kernel's pick
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no fresh loopback port")


def metric(text, name, **labels):
    """The value of one Prometheus sample of /metrics text (labels in any
    order), or None when absent."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r'^%s(?:\{([^}]*)\})? (\S+)$' % re.escape(name), line)
        if m and ",".join(sorted((m.group(1) or "").split(","))).strip(",") == want:
            return float(m.group(2))
    return None

def wait_for(pred, timeout, interval=0.02):
    """Poll pred() until it returns a true value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# --------------------------------------------------------------------- YAML

def _scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def _flow(v):
    if isinstance(v, dict):
        return "{" + ", ".join("%s: %s" % (k, _flow(x)) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    return _scalar(v)


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts/lists of scalars (enough for configs)."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                lines.append("%s%s:" % (pad, k))
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, list) and v and any(isinstance(x, dict) for x in v):
                lines.append("%s%s:" % (pad, k))
                lines.append(to_yaml(v, indent + 2))
            else:
                lines.append("%s%s: %s" % (pad, k, _flow(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                sub = to_yaml(item, indent + 2).split("\n")
                sub[0] = pad + "- " + sub[0].lstrip()
                lines.extend(sub)
            else:
                lines.append("%s- %s" % (pad, _flow(item)))
    return "\n".join(lines)


# ----------------------------------------------------------------- HTTP

class Response:
    def __init__(self, status, reason, headers, body, elapsed):
        self.status = status
        self.reason = reason
        self.headers = headers  # http.client.HTTPMessage: case-insensitive
        self.body = body
        self.elapsed = elapsed

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


def request(port, method, path, headers=None, body=None, timeout=5.0, host="127.0.0.1"):
    """One HTTP/1.1 request on a new connection; the path is sent verbatim."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout * SLOW)
    try:
        t0 = time.monotonic()
        hdrs = dict(headers or {})
        conn.putrequest(method, path, skip_accept_encoding=True,
                        skip_host=any(k.lower() == "host" for k in hdrs))
        if body is not None and not any(k.lower() == "content-length" for k in hdrs):
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            conn.send(body if isinstance(body, bytes) else body.encode())
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.reason, r.headers, data, time.monotonic() - t0)
    finally:
        conn.close()


def raw_request(port, data, timeout=5.0, read=True):
    """Send raw bytes, return what the server answers until it closes the
    connection, a full response has arrived, or `timeout` passes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if not read:
            return b""
        out = b""
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
            if _response_complete(out):
                break
        return out
    finally:
        s.close()


def recv_response(sock):
    """Read one response from `sock` (its socket timeout bounds each read):
    until its Content-Length is complete or the server closes."""
    buf = b""
    while not _response_complete(buf):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def _response_complete(buf):
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", buf[:end])
    if not m:
        return False
    return len(buf) >= end + 4 + int(m.group(1))


def raw_status(resp):
    """The status code of a raw response, or None."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------ JWT

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_jwt(claims=None, secret=JWT_SECRET, alg="HS256", header=None, sign=True,
             lifetime=300, **extra):
    """An HS256/384/512 JWT.  Defaults: sub, iss, aud, iat=now, exp=now+lifetime.
    alg="none" gives an unsigned token (empty signature)."""
    now = int(time.time())
    c = {"sub": "jwt-user", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + lifetime}
    c.update(claims or {})
    c.update(extra)
    c = {k: v for k, v in c.items() if v is not None}
    h = {"alg": alg, "typ": "JWT"}
    h.update(header or {})
    signing_input = b64url(json.dumps(h, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(c, separators=(",", ":")).encode())
    if alg == "none" or not sign:
        return signing_input + "."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return signing_input + "." + b64url(sig)


# ------------------------------------------------------------- upstream

class Upstream:
    """An echo server: answers every request with JSON
    {"method","path","headers":[[k,v],...],"body"}.  `status` / `delay` set
    the default answer; per request, X-Echo-Status and X-Echo-Delay-Ms
    override them.  Every request is recorded in `requests`."""

    def __init__(self):
        self.requests = []
        self.status = 200
        self.delay = 0.0
        up = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                body = self._body()
                rec = {"method": self.command, "path": self.path,
                       "headers": [[k, v] for k, v in self.headers.items()],
                       "body": body.decode("latin-1")}
                up.requests.append(rec)
                delay = float(self.headers.get("X-Echo-Delay-Ms") or up.delay * 1000) / 1000
                status = int(self.headers.get("X-Echo-Status") or up.status)
                if delay:
                    time.sleep(delay)
                out = json.dumps(rec).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("X-Upstream", "echo")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle
            do_OPTIONS = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def last(self):
        return self.requests[-1] if self.requests else None

    @staticmethod
    def header(rec, name):
        vals = [v for k, v in rec["headers"] if k.lower() == name.lower()]
        return vals

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------- tollgate

def base_config(listen_port, admin_port, tmp):
    """The config every test starts from; tests change what they need."""
    return {
        "environment": "development",
        "listen": "127.0.0.1:%d" % listen_port,
        "admin_listen": "127.0.0.1:%d" % admin_port,
        "threads": 2,
        "max_body_bytes": 4096,
        "shutdown_delay": "0s",
        "redis": {"mode": "none"},
        "auth": {
            "mode": "any",
            "api_keys_file": os.path.join(tmp, "api-keys"),
            "jwt": {"algorithms": ["HS256"], "issuer": ISSUER, "audience": AUDIENCE,
                    "leeway_seconds": 5},
            "lockout": {"max_failures": 0},
        },
        "limits": [
            {"name": "default", "match": {}, "by": ["client"], "rate": "1000/minute"},
        ],
        "routes": [],
        "cors": {"allowed_origins": ["https://app.example.com"]},
        "audit": {"path": os.path.join(tmp, "audit.log")},
    }


def standard_config(cfg):
    """Routes and limits shared by most forward-auth tests."""
    cfg["routes"] = [
        {"name": "orders-admin", "match": {"path_prefix": "/orders/admin"},
         "auth": "required", "scopes": ["orders:write"]},
        {"name": "orders", "match": {"path_prefix": "/orders/"},
         "auth": "required", "scopes": ["orders:read"]},
        {"name": "public", "match": {"path_prefix": "/public/"}, "auth": "none"},
        {"name": "maybe", "match": {"path_prefix": "/maybe/"}, "auth": "optional"},
    ]
    # X-Test-Bucket in `by` gives each test its own buckets on a shared server.
    cfg["limits"] += [
        {"name": "tight", "match": {"path_prefix": "/limited/"},
         "by": ["client", "header:X-Test-Bucket"], "rate": "3/minute"},
        {"name": "shadowed", "match": {"path_prefix": "/shadow/"},
         "by": ["client", "header:X-Test-Bucket"], "rate": "1/minute", "mode": "shadow"},
    ]
    return cfg


class KubeVolume:
    """A directory laid out like a kubelet's ConfigMap / Secret volume.

    Kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go) writes each
    version into a hidden `..<timestamp>` directory, points `..data` at it by
    renaming a fresh `..data_tmp` symlink over it (one atomic rename), and
    exposes every key as `KEY -> ..data/KEY`.  Readers that stat() through
    the key path therefore see a new inode on each update."""

    def __init__(self, root, files, mode=0o644):
        self.root = root
        self.mode = mode
        self.current = None
        self.keys = set()
        os.makedirs(root, exist_ok=True)
        self.update(files)

    def update(self, files):
        """Publish a new version with exactly `files` (name -> str|bytes)."""
        ts = "..%s.%09d" % (time.strftime("%Y_%m_%d_%H_%M_%S"), time.time_ns() % 10**9)
        new = os.path.join(self.root, ts)
        os.makedirs(new)
        for name, data in files.items():
            path = os.path.join(new, name)
            with open(path, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
            os.chmod(path, self.mode)
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(ts, tmp)
        os.replace(tmp, os.path.join(self.root, "..data"))
        for name in files:
            link = os.path.join(self.root, name)
            if not os.path.islink(link):
                os.symlink(os.path.join("..data", name), link)
        for name in self.keys - set(files):
            os.unlink(os.path.join(self.root, name))
        if self.current:
            shutil.rmtree(os.path.join(self.root, self.current), ignore_errors=True)
        self.current = ts
        self.keys = set(files)

    def path(self, name):
        return os.path.join(self.root, name)


class Tollgate:
    """One tollgate process in its own temp dir."""

    def __init__(self, configure=None, env=None, keys=None, start=True):
        if not TOLLGATE_BIN or not os.access(TOLLGATE_BIN, os.X_OK):
            raise unittest.SkipTest("TOLLGATE_BIN not set or not executable")
        self.tmp = tempfile.mkdtemp(prefix="tollgate-it-")
        # Port 0: tollgate binds, the kernel picks the ports, --port-file says
        # which (read on first use of .port / .admin_port after start()).
        self._port = self._admin_port = None
        self.port_file = os.path.join(self.tmp, "ports.json")
        self.config_path = os.path.join(self.tmp, "tollgate.yaml")
        self.keys_path = os.path.join(self.tmp, "api-keys")
        self.audit_path = os.path.join(self.tmp, "audit.log")
        self.stdout_path = os.path.join(self.tmp, "stdout.log")
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.proc = None
        self.returncode = None
        self.preexec = None  # run in the child before exec (e.g. setrlimit)
        self.write_keys(keys)
        self.config = base_config(0, 0, self.tmp)
        if configure:
            r = configure(self.config)
            if r is not None:
                self.config = r
        self.write_config()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "JWT_SECRET": JWT_SECRET,
            "ADMIN_TOKEN": ADMIN_TOKEN,
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                self.env[k] = os.environ[k]
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.env.update(env or {})
        self.env = {k: v for k, v in self.env.items() if v is not None}  # None: unset
        if start:
            self.start()

    @property
    def port(self):
        """The main listener's port as bound (None before start())."""
        if self._port is None and self.proc is not None:
            self.wait_ports()
        return self._port

    @property
    def admin_port(self):
        if self._admin_port is None and self.proc is not None:
            self.wait_ports()
        return self._admin_port

    def wait_ports(self, timeout=10.0):
        """Wait (bounded) for the --port-file tollgate writes once both
        listeners are bound, and take the ports from it."""
        def written():
            if os.path.exists(self.port_file):
                return "ok"
            return "exited" if self.proc.poll() is not None else None
        state = wait_for(written, timeout, 0.01)
        if state != "ok":
            raise AssertionError("tollgate wrote no port file (%s, rc=%s); stderr:\n%s"
                                 % (state, self.proc.poll(), self.stderr()[-3000:]))
        with open(self.port_file) as f:
            bound = json.load(f)
        self._port = int(bound["listen"].rsplit(":", 1)[1])
        self._admin_port = int(bound["admin"].rsplit(":", 1)[1])

    # -- files
    def write_keys(self, keys=None, extra_lines=()):
        lines = ["# integration test keys"]
        for cid, (key, scopes, tier) in (keys or KEYS).items():
            lines.append(key_line(cid, key, scopes, tier))
        lines.extend(extra_lines)
        with open(self.keys_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def write_config(self, text=None):
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text if text is not None else to_yaml(self.config) + "\n")
        os.replace(tmp, self.config_path)

    # -- process
    def start(self, args=(), wait=True):
        cmd = [TOLLGATE_BIN, "--config", self.config_path,
               "--port-file", self.port_file] + list(args)
        self._port = self._admin_port = None  # a restart binds new ports
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=self.env, cwd=self.tmp,
                                     preexec_fn=self.preexec)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=10.0):
        try:
            self.wait_ports(timeout)
        except AssertionError:
            self.stop()
            raise

        def ready():
            if self.proc.poll() is not None:
                return "exited"
            try:
                r = request(self.admin_port, "GET", "/readyz", timeout=1.0)
                return "ok" if r.status == 200 else None
            except OSError:
                return None
        state = wait_for(ready, timeout, 0.02)
        if state != "ok":
            rc = self.proc.poll()
            self.stop()
            raise AssertionError("tollgate did not become ready (%s, rc=%s); stderr:\n%s"
                                 % (state, rc, self.stderr()[-3000:]))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def run_cli(self, *args, timeout=10.0, env=None):
        """Run the binary once (not the server) with this instance's env."""
        e = dict(self.env)
        e.update(env or {})
        e = {k: v for k, v in e.items() if v is not None}
        return subprocess.run([TOLLGATE_BIN] + list(args), capture_output=True, text=True,
                              env=e, cwd=self.tmp, timeout=timeout * SLOW)

    def stop(self, timeout=5.0):
        """SIGTERM, wait, SIGKILL.  Returns the exit code (negative: signal)."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.returncode = self.proc.returncode
        self.proc = None
        for f in (self._out, self._err):
            f.close()
        return self.returncode

    def cleanup(self):
        self.stop()
        if os.environ.get("KEEP_TMP"):
            return
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- logs
    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:  # never started
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:  # never started
            return ""

    def audit_raw(self):
        try:
            with open(self.audit_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def audit(self):
        """Parsed audit lines (raises on a line that is not JSON)."""
        return [json.loads(l) for l in self.audit_raw().decode("utf-8").splitlines() if l.strip()]

    def audit_for(self, request_id, timeout=3.0):
        """The audit line of one request; the audit log is flushed every
        100 ms, so wait for it (bounded)."""
        def find():
            for rec in self.audit():
                if rec.get("request_id") == request_id:
                    return rec
            return None
        rec = wait_for(find, timeout, 0.05)
        if rec is None:
            raise AssertionError("no audit line with request_id %s in:\n%s"
                                 % (request_id, self.audit_raw()[-2000:]))
        return rec

    def sanitizer_report(self):
        err = self.stderr()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "ERROR: ThreadSanitizer"):
            i = err.find(marker)
            if i >= 0:
                return err[max(0, i - 200):i + 3000]
        return None

    # -- requests
    def get(self, path, headers=None, **kw):
        return request(self.port, "GET", path, headers, **kw)

    def req(self, method, path, headers=None, body=None, **kw):
        return request(self.port, method, path, headers, body, **kw)

    def admin(self, method, path, headers=None, body=None, token=ADMIN_TOKEN, **kw):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        return request(self.admin_port, method, path, h, body, **kw)

    def readyz(self):
        r = request(self.admin_port, "GET", "/readyz")
        return r.status, (r.json() if r.body else None)

    def metrics(self):
        return request(self.admin_port, "GET", "/metrics").body.decode()


# --------------------------------------------------------- test case base

def nginx_headers(uri, method="GET", host="app.example.com", scheme="https", url=True,
                  sent_from=True):
    """What ingress-nginx's auth-url subrequest carries (url=True) or what a
    plain nginx auth_request config sets (url=False: X-Original-URI)."""
    h = {"X-Original-Method": method, "X-Real-IP": "203.0.113.7",
         "X-Forwarded-For": "203.0.113.7"}
    if url:
        h["X-Original-URL"] = "%s://%s%s" % (scheme, host, uri)
    else:
        h["X-Original-URI"] = uri
    if sent_from:
        h["X-Sent-From"] = "nginx-ingress-controller"
    return h


def traefik_headers(uri, method="GET", host="app.example.com", proto="https"):
    return {"X-Forwarded-Method": method, "X-Forwarded-Proto": proto,
            "X-Forwarded-Host": host, "X-Forwarded-Uri": uri,
            "X-Forwarded-For": "203.0.113.8"}


def api_key(client_id):
    return {"X-API-Key": key_of(client_id)}


def bearer(token):
    return {"Authorization": "Bearer " + token}


_uniq = [0]


def unique(prefix="t"):
    _uniq[0] += 1
    return "%s%d-%d" % (prefix, os.getpid(), _uniq[0])


class TollgateCase(unittest.TestCase):
    """Base class: `configure(cfg)` (a staticmethod) shapes the config of the
    server shared by the class; `env` adds environment variables.  Tests that
    need their own server call self.spawn(...)."""

    configure = None
    env = None
    keys = None
    shared_server = True

    @classmethod
    def setUpClass(cls):
        cls.tg = None
        if cls.shared_server:
            cls.tg = cls.spawn_class()

    @classmethod
    def spawn_class(cls, configure=None, env=None, keys=None):
        conf = configure or cls.configure  # a staticmethod in subclasses
        tg = Tollgate(conf, env if env is not None else cls.env,
                      keys if keys is not None else cls.keys)
        cls.addClassCleanup(_finish, tg)
        return tg

    def spawn(self, configure=None, env=None, keys=None, start=True):
        tg = Tollgate(configure, env, keys, start=start)
        self.addCleanup(_finish, tg)
        return tg

    # -- assertions
    def assertServing(self):
        """tollgate is alive and answers an ordinary allowed request."""
        self.assertTrue(self.tg.alive(), "tollgate died:\n" + self.tg.stderr()[-3000:])
        r = self.tg.get("/auth/orders/1", api_key("bob"), timeout=2)
        self.assertEqual(r.status, 200)

    def assertEnvelope(self, r, status, code):
        self.assertEqual(r.status, status, "%r" % r)
        self.assertIn("application/json", r.header("Content-Type", ""))
        body = r.json()
        self.assertIn("error", body, body)
        self.assertEqual(body["error"].get("code"), code, body)
        self.assertIsInstance(body["error"].get("message"), str)
        rid = body["error"].get("request_id")
        self.assertTrue(isinstance(rid, str) and rid, "envelope without request_id: %r" % body)
        self.assertEqual(rid, r.header("X-Request-ID"), body)
        return body

    def assertSecurityHeaders(self, r, own=True):
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", r)
        self.assertEqual(r.header("X-Frame-Options"), "DENY", r)
        self.assertEqual(r.header("Referrer-Policy"), "strict-origin-when-cross-origin")
        self.assertTrue(r.header("Content-Security-Policy"), r)
        self.assertTrue(r.header("Permissions-Policy"), r)
        self.assertTrue(r.header("X-Request-ID"), r)
        if own:
            self.assertIn("no-store", r.header("Cache-Control", ""), r)


class RawServer:
    """A loopback TCP server for upstreams that must write exact bytes
    (framing attacks, stalls, cuts): accepts connections on its own thread
    and hands each to `self.serve(sock, n)` on a thread of its own, n being
    the connection's number (1, 2, ...).  Subclasses write serve();
    `sndbuf` bounds the kernel's send buffer of each accepted socket."""

    sndbuf = None

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.nconn = 0
        self.closed = False

    def start(self):
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def close(self):
        self.closed = True
        self.sock.close()

    def accept_loop(self):
        while not self.closed:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            if self.sndbuf is not None:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
            with self.lock:
                self.nconn += 1
                n = self.nconn
            threading.Thread(target=self.serve, args=(s, n), daemon=True).start()

    def serve(self, s, n):
        raise NotImplementedError

    @staticmethod
    def read_request(s, buf):
        """Read one request (its head, and a Content-Length body) from `s`
        after what `buf` already holds: ((method, path), rest of buf), or
        (None, buf) when the peer closed first."""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return None, buf
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        method, path, _ = lines[0].split(b" ", 2)
        clen = 0
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                clen = int(v.strip())
        while len(buf) < clen:
            chunk = s.recv(65536)
            if not chunk:
                return None, buf
            buf += chunk
        return (method.decode(), path.decode()), buf[clen:]


class UpstreamCase(TollgateCase):
    """A class whose tollgate (cls.tg) proxies one path prefix to cls.up, an
    instance of `upstream` (an echo Upstream unless a test brings its own
    with .url and .close()); `route` adds keys to that route, `top` to the
    top level of the config.  Both are stopped after the class."""
    shared_server = False
    upstream = None  # a class; Upstream when None
    prefix = "/up/"
    route = {}
    top = {}

    @classmethod
    def setUpClass(cls):
        cls.up = (cls.upstream or Upstream)()
        cls.addClassCleanup(cls.up.close)

        def configure(cfg):
            cfg.update(cls.top)
            cfg["routes"] = [dict({"name": "up", "match": {"path_prefix": cls.prefix},
                                   "upstream": cls.up.url, "auth": "none"}, **cls.route)]
        cls.tg = Tollgate(configure)
        cls.addClassCleanup(_finish, cls.tg)


def _finish(tg):
    """Stop a server and fail loudly when it reported memory errors."""
    tg.stop()
    report = tg.sanitizer_report()
    tg.cleanup()
    if report:
        raise AssertionError("sanitizer report in tollgate stderr:\n" + report)
