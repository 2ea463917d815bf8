"""Real Redis for integration tests: a standalone redis-server, the 6-node
cluster of scripts/redis-cluster.sh, and a small RESP client.

Standard library only.  Every process is started on a free loopback port in a
temporary directory and stopped by its PID, also when a test fails or the
interpreter exits (atexit).

    with RedisServer() as srv:
        c = srv.client()
        c.call("SET", "k", "v")

    with RedisCluster() as cl:          # ~3 s: create + wait for every replica
        c = cl.client_for_key("tg:{x}:b:default")
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLUSTER_SCRIPT = os.path.join(REPO, "scripts", "redis-cluster.sh")
BUCKET_LUA = os.path.join(REPO, "lua", "bucket.lua")


def keep_tmp():
    """KEEP_TMP=1 keeps temp dirs (logs) for inspection, as run.py says."""
    return os.environ.get("KEEP_TMP", "") not in ("", "0")


def have_redis():
    """True when redis-server and redis-cli are on PATH."""
    return all(shutil.which(b) for b in ("redis-server", "redis-cli"))


from harness import free_port  # noqa: E402  (one registry of handed-out ports)


# ---------------------------------------------------------------- RESP client


class RespError(Exception):
    """An error reply (`-ERR ...`, `-MOVED ...`, RESP3 `!`)."""

    @property
    def code(self):
        return str(self).split(" ", 1)[0]


class RespClient:
    """One blocking connection speaking RESP2 (and reading RESP3 types).

    Replies map to Python: simple string -> str, bulk -> bytes (None for nil),
    integer -> int, array -> list (None for nil), error -> RespError (raised by
    call(), returned in place by pipeline()), RESP3 double -> float,
    boolean -> bool, map -> dict, set -> set-like list, big number -> int.
    """

    def __init__(self, host="127.0.0.1", port=6379, timeout=5.0):
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def encode(*args):
        """A command as a RESP array of bulk strings."""
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = b"%d" % a
            elif isinstance(a, float):
                a = repr(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def send(self, *args):
        self.sock.sendall(self.encode(*args))

    def call(self, *args):
        """Send one command, return its reply; an error reply is raised."""
        self.send(*args)
        r = self.read_reply()
        if isinstance(r, RespError):
            raise r
        return r

    def pipeline(self, commands):
        """Send every command at once, then read the replies in order; error
        replies are returned as RespError objects, not raised."""
        self.sock.sendall(b"".join(self.encode(*c) for c in commands))
        return [self.read_reply() for _ in commands]

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read_reply(self):
        """Read one reply of any RESP2/RESP3 type."""
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"(":
            return int(rest)
        if t == b",":
            return float(rest)
        if t == b"#":
            return rest == b"t"
        if t == b"_":
            return None
        if t in (b"$", b"!", b"="):
            n = int(rest)
            if n < 0:
                return None
            data = self._exact(n)
            if t == b"!":
                return RespError(data.decode())
            return data
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            return [self.read_reply() for _ in range(n)]
        if t == b"%":
            n = int(rest)
            d = {}
            for _ in range(n):
                k = self.read_reply()
                d[k] = self.read_reply()
            return d
        if t == b"|":  # attribute: skip it, the real reply follows
            for _ in range(2 * int(rest)):
                self.read_reply()
            return self.read_reply()
        raise ValueError("bad RESP type byte in %r" % line)


def server_pid(client):
    """The process_id a Redis server reports in INFO server."""
    info = client.call("INFO", "server")
    if isinstance(info, bytes):
        info = info.decode()
    for line in info.splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None


def wait_ping(host, port, timeout=10.0, pid=None):
    """Wait until host:port answers PING; raise TimeoutError otherwise.
    With `pid`, the server that answers must be that process: a port picked
    free and taken by another test's redis-server before ours bound it is
    answered by theirs (ours exits a moment later), and a test must never
    talk to someone else's server (RuntimeError at once: pick another)."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            with RespClient(host, port, timeout=1.0) as c:
                if c.call("PING") == "PONG":
                    if pid is not None and server_pid(c) != pid:
                        raise RuntimeError("port %d answered by another server" % port)
                    return
        except (OSError, RespError) as e:  # LOADING, refused, ...
            last = e
        time.sleep(0.02)
    raise TimeoutError("redis %s:%d did not answer PING: %s" % (host, port, last))


def pid_alive(pid):
    """True while `pid` runs (a zombie does not: daemonized nodes are
    children of init, which may be slow to reap them)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


# -------------------------------------------------------- standalone server


class RedisServer:
    """A redis-server child on a free loopback port in its own temp dir.

    stop() and start() may be called again (same port, same dir) to test a
    restart; close() stops it and removes the dir.  `extra` are more
    redis-server arguments, e.g. ["--requirepass", "x"].
    """

    def __init__(self, extra=None, port=None):
        self.extra = list(extra or [])
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="tg-redis-")
        self.proc = None
        atexit.register(self.close)

    def start(self, attempts=5):
        last = None
        for _ in range(attempts):
            port = self.port or free_port()
            args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--daemonize", "no",
                    "--dir", self.dir, "--logfile",
                    os.path.join(self.dir, "redis.log")] + self.extra
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            try:
                self._wait_up(port)
                self.port = port
                return self
            except (TimeoutError, RuntimeError) as e:
                last = e
                self._kill()
                if self.port:  # a fixed port: do not try others
                    break
        raise RuntimeError("redis-server did not start: %s\n%s" % (last, self.log()))

    def _wait_up(self, port, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("exited with %s" % self.proc.returncode)
            try:
                wait_ping("127.0.0.1", port, timeout=0.2, pid=self.proc.pid)
                return
            except TimeoutError:
                pass
        raise TimeoutError("no PING answer on port %d" % port)

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to our child's PID
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self):
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        """Stop the server (by PID), keep port and dir for a restart."""
        self._kill()

    def close(self):
        self._kill()
        if self.dir and os.path.isdir(self.dir) and not keep_tmp():
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def client(self, timeout=5.0):
        return RespClient("127.0.0.1", self.port, timeout=timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------ cluster


class RedisCluster:
    """The 6-node cluster of scripts/redis-cluster.sh in a temp dir.

    up() runs `redis-cluster.sh up DIR` (which waits for cluster_state:ok on
    every node and master_link_status:up on every replica); close() runs
    `down DIR` and removes DIR.  seeds: ["127.0.0.1:PORT", ...].
    """

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tg-cluster-")
        self.seeds = []
        atexit.register(self.close)

    def _script(self, *args, timeout=60):
        return subprocess.run([CLUSTER_SCRIPT] + list(args), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, universal_newlines=True)

    def up(self):
        r = self._script("up", self.dir)
        if r.returncode != 0:
            self.close()
            raise RuntimeError("redis-cluster.sh up failed (%d):\n%s%s"
                               % (r.returncode, r.stdout, r.stderr))
        self.seeds = r.stdout.split()
        return self

    def close(self):
        if self.dir and os.path.isdir(self.dir):
            self._script("down", self.dir)
            if not keep_tmp():
                shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.close()

    @property
    def ports(self):
        return [int(s.rsplit(":", 1)[1]) for s in self.seeds]

    def pid(self, port):
        """The PID of the node on `port` (from its pidfile)."""
        with open(os.path.join(self.dir, "node-%d" % port, "redis.pid")) as f:
            return int(f.read().strip())

    def kill_node(self, port, sig=signal.SIGKILL, timeout=5.0):
        """Kill one node by its PID and wait until it is gone (failover
        tests).  `down` later skips it: its PID is no longer alive."""
        pid = self.pid(port)
        os.kill(pid, sig)
        end = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < end:
            time.sleep(0.01)

    def client(self, port=None, timeout=5.0):
        return RespClient("127.0.0.1", port or self.ports[0], timeout=timeout)

    def slots(self):
        """[(first, last, primary_port, [replica_ports])] from CLUSTER SLOTS,
        asked of any node that answers."""
        for port in self.ports:
            try:
                with self.client(port, timeout=2.0) as c:
                    rows = c.call("CLUSTER", "SLOTS")
            except (OSError, RespError):
                continue
            return [(r[0], r[1], r[2][1], [n[1] for n in r[3:]]) for r in rows]
        raise RuntimeError("no cluster node answers CLUSTER SLOTS")

    def keyslot(self, key):
        with self.client() as c:
            return c.call("CLUSTER", "KEYSLOT", key)

    def owner_of_slot(self, slot):
        for first, last, port, _ in self.slots():
            if first <= slot <= last:
                return port
        raise KeyError("slot %d is not served" % slot)

    def owner_of_key(self, key):
        return self.owner_of_slot(self.keyslot(key))

    def nodes(self):
        """CLUSTER NODES of any node that answers, as dicts: id, port,
        flags (set), master (id or None), slots ([(first, last)])."""
        for port in self.ports:
            try:
                with self.client(port, timeout=2.0) as c:
                    text = c.call("CLUSTER", "NODES").decode()
            except (OSError, RespError):
                continue
            out = []
            for line in text.splitlines():
                f = line.split()
                slots = []
                for s in f[8:]:
                    if s.startswith("["):
                        continue  # a slot being migrated or imported
                    a, _, b = s.partition("-")
                    slots.append((int(a), int(b or a)))
                out.append({"id": f[0], "port": int(f[1].split("@")[0].rsplit(":", 1)[1]),
                            "flags": set(f[2].split(",")),
                            "master": None if f[3] == "-" else f[3], "slots": slots})
            return out
        raise RuntimeError("no cluster node answers CLUSTER NODES")

    def replicas_of_key(self, key):
        """Ports of the replicas of the key's primary.  From CLUSTER NODES:
        Redis 7.0's CLUSTER SLOTS leaves out replicas whose replication
        offset is still 0, as on a fresh cluster."""
        owner = self.owner_of_key(key)
        nodes = self.nodes()
        oid = next(n["id"] for n in nodes if n["port"] == owner)
        return [n["port"] for n in nodes
                if n["master"] == oid and "fail" not in n["flags"]]

    def client_for_key(self, key, timeout=5.0):
        return self.client(self.owner_of_key(key), timeout=timeout)

    def primaries(self):
        return sorted({port for _, _, port, _ in self.slots()})

    def wait_ok(self, timeout=20.0):
        """Wait for cluster_state:ok on every live node (after a failover)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            states = []
            for port in self.ports:
                try:
                    with self.client(port, timeout=1.0) as c:
                        states.append(b"cluster_state:ok" in c.call("CLUSTER", "INFO"))
                except OSError:
                    continue  # a killed node
            if states and all(states):
                return
            time.sleep(0.1)
        raise TimeoutError("cluster not ok after %.0f s" % timeout)


def load_script(client, path=BUCKET_LUA):
    """SCRIPT LOAD a lua/ file; returns its sha1 (str)."""
    with open(path, "rb") as f:
        return client.call("SCRIPT", "LOAD", f.read()).decode()


# ------------------------------------------------------- cluster operations
# (additive helpers for test_redis_cluster.py / test_redis_failures.py)


def _cluster_node_id(cluster, port):
    with cluster.client(port, timeout=2.0) as c:
        return c.call("CLUSTER", "MYID").decode()


def cluster_wait_replicas_linked(cluster, timeout=20.0):
    """Wait until every live replica reports master_link_status:up (a replica
    that has not finished its first sync never fails over)."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        ok, last = True, []
        for port in cluster.ports:
            try:
                with cluster.client(port, timeout=1.0) as c:
                    info = c.call("INFO", "replication").decode()
            except OSError:
                continue  # a killed node
            if "role:slave" in info:
                up = "master_link_status:up" in info
                last.append((port, up))
                ok = ok and up
        if ok:
            return
        time.sleep(0.05)
    raise TimeoutError("replicas not linked after %.0f s: %r" % (timeout, last))


def cluster_live_port(cluster):
    """A node that answers (the first seed may have been killed)."""
    for port in cluster.ports:
        try:
            with cluster.client(port, timeout=1.0) as c:
                c.call("PING")
            return port
        except (OSError, RespError):
            continue
    raise RuntimeError("no cluster node answers")


def cluster_keyslot(cluster, key):
    with cluster.client(cluster_live_port(cluster), timeout=2.0) as c:
        return c.call("CLUSTER", "KEYSLOT", key)


def cluster_migrate_slot(cluster, slot, dst_port, between=None, timeout_ms=5000):
    """Move `slot` and its keys from its owner to the primary on `dst_port`,
    the way redis-cli --cluster reshard does: SETSLOT IMPORTING on the
    target, MIGRATING on the source, MIGRATE every key, then SETSLOT NODE on
    the target, the source and every other primary.  `between(step)` is
    called after each step ("migrating", "migrated", "node-dst",
    "node-all") so a test can send requests during the move."""
    src_port = cluster.owner_of_slot(slot)
    if src_port == dst_port:
        raise ValueError("slot %d already on %d" % (slot, dst_port))
    src_id = _cluster_node_id(cluster, src_port)
    dst_id = _cluster_node_id(cluster, dst_port)
    step = between or (lambda name: None)
    with cluster.client(dst_port) as dst, cluster.client(src_port) as src:
        dst.call("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.call("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        step("migrating")
        moved = []
        while True:
            keys = src.call("CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            src.call("MIGRATE", "127.0.0.1", dst_port, "", 0, timeout_ms, "KEYS", *keys)
            moved.extend(keys)
        step("migrated")
        dst.call("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        step("node-dst")
        src.call("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    for port in cluster.primaries():
        if port in (src_port, dst_port):
            continue
        with cluster.client(port) as c:
            c.call("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    step("node-all")
    return src_port, moved


# ------------------------------------------------------------------- TLS


def make_test_pki(directory, san="IP:127.0.0.1", name="ca", days=2):
    """A throw-away CA and a server certificate it signed (openssl CLI).
    Returns {"ca": path, "cert": path, "key": path}.  `san` is the server
    cert's subjectAltName (e.g. "IP:127.0.0.1" or "DNS:redis.example")."""
    os.makedirs(directory, exist_ok=True)
    p = lambda f: os.path.join(directory, "%s-%s" % (name, f))

    def run(*args):
        r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, universal_newlines=True)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr[-2000:]))

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"),
        "-out", p("ca.crt"), "-days", str(days), "-subj", "/CN=tollgate test CA %s" % name)
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("server.key"),
        "-out", p("server.csr"), "-subj", "/CN=127.0.0.1")
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n" % san)
    run("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-out", p("server.crt"), "-days", str(days),
        "-extfile", p("ext.cnf"))
    return {"ca": p("ca.crt"), "cert": p("server.crt"), "key": p("server.key")}


def redis_has_tls():
    """(True, "") when this redis-server was built with TLS, else (False, why)."""
    try:
        r = subprocess.run(["redis-server", "--port", "0", "--tls-port", "1",
                            "--tls-cert-file", "/nonexistent", "--tls-key-file",
                            "/nonexistent", "--tls-auth-clients", "no"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=5,
                           universal_newlines=True)
        out = r.stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    if "not supported" in out.lower() or "bad directive" in out.lower():
        return False, "redis-server has no TLS support: " + out.strip()[-300:]
    return True, ""


def ssl_error():
    import ssl
    return ssl.SSLError


class TlsRespClient(RespClient):
    """RespClient over TLS, verifying the server against `ca`."""

    def __init__(self, host="127.0.0.1", port=6379, ca=None, timeout=5.0, server_name=None):
        import ssl
        ctx = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host, self.port = host, port
        self.sock = ctx.wrap_socket(raw, server_hostname=server_name or host)
        self.buf = b""


class TlsRedisServer(RedisServer):
    """A redis-server child that listens only on a TLS port (plain port 0),
    with the certificate files of make_test_pki().  `port` is the TLS port;
    `server_name` is the name the test client verifies (the certificate's
    SAN when it is not 127.0.0.1)."""

    def __init__(self, pki, extra=None, port=None, server_name=None):
        self.pki = pki
        self.server_name = server_name
        tls = ["--tls-cert-file", pki["cert"], "--tls-key-file", pki["key"],
               "--tls-ca-cert-file", pki["ca"], "--tls-auth-clients", "no"]
        super().__init__(extra=tls + list(extra or []), port=port)

    def start(self, attempts=5):
        last = None
        for _ in range(attempts):
            port = self.port or free_port()
            args = ["redis-server", "--port", "0", "--tls-port", str(port),
                    "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--daemonize", "no", "--dir", self.dir, "--logfile",
                    os.path.join(self.dir, "redis.log")] + self.extra
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    last = RuntimeError("exited with %s" % self.proc.returncode)
                    break
                try:
                    with self.client(port=port, timeout=0.5) as c:
                        if c.call("PING") == "PONG":
                            if server_pid(c) != self.proc.pid:
                                last = RuntimeError("port %d answered by another server" % port)
                                break
                            self.port = port
                            return self
                except (OSError, RespError) as e:
                    last = e
                time.sleep(0.02)
            self._kill()
            if self.port or isinstance(last, ssl_error()):
                break  # a fixed port, or a certificate problem: no retry
        raise RuntimeError("TLS redis-server did not start: %s\n%s" % (last, self.log()))

    def client(self, timeout=5.0, port=None):
        return TlsRespClient("127.0.0.1", port or self.port, ca=self.pki["ca"],
                             timeout=timeout, server_name=self.server_name)


# ----------------------------------------------------------- HTTP keep-alive


class KeepAlive:
    """One persistent HTTP/1.1 connection to a tollgate port, reconnecting
    when the server closes it; get() returns (status, headers, body)."""

    def __init__(self, port, timeout=5.0):
        import http.client
        self._mk = lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn = self._mk()

    def get(self, path, headers=None):
        """One request; never resent (a resent request would be charged
        twice): a connection error is raised after reconnecting."""
        import http.client
        try:
            self.conn.request("GET", path, headers=headers or {})
            r = self.conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = self._mk()
            raise
        if (r.getheader("Connection") or "").lower() == "close":
            self.conn.close()
            self.conn = self._mk()
        return r.status, r.headers, body

    def close(self):
        self.conn.close()


def key_slot(key):
    """Redis Cluster hash slot of `key` (CRC16/XMODEM of the {hash tag}),
    computed locally: no node needs to be up."""
    k = key.encode() if isinstance(key, str) else key
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    crc = 0
    for b in k:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % 16384
