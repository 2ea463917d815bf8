"""Deployment rehearsal (issues 8, 20): the Helm chart with its DEFAULT shared
state, deployed on this machine the way a kubelet would run it, with real
parts.

- `helm template` (a real helm) renders the chart with the chart's defaults
  for everything a production install gets by default -- above all its own
  Redis (redis.deploy: standalone, generated password) -- plus the
  rehearsal's keys, limits and routes, and 3 replicas;
- the chart's Redis is started from its rendered StatefulSet: the rendered
  command (sh redis-start.sh), env, redis.conf and password Secret, each
  volume laid out like a kubelet's;
- every tollgate replica gets the rendered container args and env, and its
  ConfigMap and Secret volumes laid out like a kubelet's (hidden
  `..<timestamp>` dir, `..data` symlink, one `KEY -> ..data/KEY` link per
  key, the rendered items and defaultMode).  A pod's own filesystem and
  network stand in for by rewriting each mountPath to a directory of its
  own, each listen/admin_listen and Redis's port to free loopback ports, and
  the Redis Service's name in redis.nodes to that loopback address --
  nothing else of the rendered objects is changed;
- HAProxy (the Service's load balancer) in front, health-checking the
  rendered readiness probe.  HAProxy checks every 300 ms: it stands in for
  the endpoints controller, which drops a terminating pod on its deletion
  (not on probe timing).

Then: the limit holds in total across replicas; a re-rendered limit reaches
every replica with no restart and the bucket kept; a broken ConfigMap is
refused; a rotated Secret adds and removes keys; and a rolling update under
load (maxUnavailable 0: start the new pod, wait until ready, SIGTERM the old
one) fails no request and loses no audit line.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import k8s_render as k8s
import redis_harness as rh
from harness import (ADMIN_TOKEN, KubeVolume, TOLLGATE_BIN, free_port, key_line, metric,
                     request, wait_for, SLOW)

REPLICAS = 3
LOAD_RPS = 200
LOAD_SECONDS = 20
LOAD_THREADS = 4

KEYS = {  # id -> key; "load" has a tier of its own so the load is never limited
    "alice": "rehearsal-key-alice-0123456789abcdef",
    "bob": "rehearsal-key-bob-0123456789abcdef01",
    "carol": "rehearsal-key-carol-0123456789abcdef",
    "dave": "rehearsal-key-dave-0123456789abcdef0",
    "load": "rehearsal-key-load-0123456789abcdef0",
}


def key_file(ids):
    lines = []
    for i in ids:
        lines.append(key_line(i, KEYS[i], ["orders:read"], "bulk" if i == "load" else None))
    return "\n".join(lines) + "\n"


def values(counted_rate="10/minute", key_ids=("alice", "bob", "carol", "load")):
    """The rehearsal's values. No redis.* and no config.redis.mode / nodes:
    the chart's default shared state (its own Redis) is what runs."""
    return {
        "replicaCount": REPLICAS,
        "secrets": {"apiKeys": key_file(key_ids), "adminToken": ADMIN_TOKEN},
        "config": {
            # A Redis call on this shared 2-core machine (other test runs,
            # sanitizers) can take longer than the default 50 ms; a timeout
            # would send a limit into the local fallback and make the exact
            # counts below depend on the load.
            "redis": {"timeout_ms": 200},
            # Every client reaches tollgate from HAProxy's 127.0.0.1, so an
            # IP lockout would lock them all out together: off here.
            "auth": {"mode": "api_key", "lockout": {"max_failures": 0}},
            "limits": [
                {"name": "default", "match": {}, "by": ["client"], "rate": "600/minute"},
                {"name": "counted", "match": {"path_prefix": "/counted/"}, "by": ["client"],
                 "rate": counted_rate},
            ],
            "tiers": {"bulk": {"default": "1000000/minute"}},
            "routes": [
                {"name": "orders", "match": {"path_prefix": "/orders/"}, "auth": "required",
                 "scopes": ["orders:read"]},
                {"name": "counted", "match": {"path_prefix": "/counted/"}, "auth": "required"},
            ],
        },
    }


REDIS_SECRET = "%s-tollgate-redis" % k8s.RELEASE


def upgrade(objs, vals):
    """`helm upgrade`'s render: the chart reads its generated Redis password
    back with `lookup`, which `helm template` (no cluster) cannot; keep the
    installed one, as the cluster would."""
    new = k8s.render(vals)
    (old_secret,) = [o for o in objs if o.get("kind") == "Secret" and
                     o["metadata"]["name"] == REDIS_SECRET]
    (new_secret,) = [o for o in new if o.get("kind") == "Secret" and
                     o["metadata"]["name"] == REDIS_SECRET]
    new_secret["data"] = dict(old_secret["data"])
    return new


def _map_paths(text, mount_map):
    """Rewrite every mountPath in `text` to its host directory."""
    for mount, host in mount_map:
        text = re.sub(r"(?<![\w/.-])%s(?=[/\s\"']|$)" % re.escape(mount), host, text,
                      flags=re.M)
    return text


def tollgate_yaml(objs):
    return k8s.configmap_files(objs, "%s-tollgate-config" % k8s.RELEASE)


# ------------------------------------------------------------------ a "pod"


class Replica:
    """One pod of the rendered Deployment, started as a kubelet would."""

    def __init__(self, name, objs, root, redis):
        self.name = name
        self.redis = redis  # .node_map: redis.nodes as rendered -> loopback addresses
        self.dir = os.path.join(root, name)
        self.port = free_port()
        self.admin_port = free_port()
        self.view = k8s.pod_view(objs)
        self.proc = None
        self.generation = 0
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.volumes = {}    # volume name -> KubeVolume
        self.mount_map = []  # (mountPath, host dir), longest first
        os.makedirs(self.dir)
        for m in self.view["mounts"]:
            vol = self.view["volumes"][m["name"]]
            host = os.path.join(self.dir, "vol-" + m["name"])
            got = k8s.volume_files(objs, vol)
            if got is not None:
                files, mode = got
                if "configMap" in vol:
                    files = self._patch(files)
            elif "emptyDir" in vol:
                os.makedirs(host)
                files, mode = None, None
            else:
                raise AssertionError("volume kind not rehearsed: %r" % vol)
            if files is not None:
                self.volumes[m["name"]] = KubeVolume(host, files, mode=mode)
            self.mount_map.append((m["mountPath"].rstrip("/"), host))
        self.mount_map.sort(key=lambda x: -len(x[0]))

    def _host_path(self, value):
        for mount, host in self.mount_map:
            if value == mount or value.startswith(mount + "/"):
                return host + value[len(mount):]
        return value

    def _patch(self, files):
        """Give this replica its own listen ports (its "pod IP")."""
        out = dict(files)
        if "tollgate.yaml" in out:
            text = out["tollgate.yaml"]
            for key, port, cport in (("listen", self.port, self.view["ports"]["http"]),
                                     ("admin_listen", self.admin_port,
                                      self.view["ports"]["admin"])):
                pat = re.compile(r'^%s:\s*"?[^"\s]*:%d"?\s*$' % (key, cport), re.M)
                if not pat.search(text):
                    raise AssertionError("%s of the rendered config is not on containerPort %d"
                                         % (key, cport))
                text = pat.sub('%s: "127.0.0.1:%d"' % (key, port), text)
            # redis.nodes names the chart's Redis (its Service, or each
            # cluster node's stable name): here, their loopback ports
            for rendered, loop in self.redis.node_map.items():
                pat = re.compile(r"^(\s*-\s*)%s(\s*)$" % re.escape(rendered), re.M)
                if len(pat.findall(text)) != 1:
                    raise AssertionError("redis.nodes of the rendered config lacks %s:\n%s"
                                         % (rendered, text))
                text = pat.sub(r"\g<1>%s\g<2>" % loop, text)
            out["tollgate.yaml"] = text
        return out

    def update_configmap(self, objs):
        for m in self.view["mounts"]:
            vol = self.view["volumes"][m["name"]]
            if "configMap" in vol:
                self.volumes[m["name"]].update(self._patch(k8s.volume_files(objs, vol)[0]))

    def update_configmap_text(self, key, text):
        for name, kv in self.volumes.items():
            if "configMap" in self.view["volumes"][name]:
                kv.update(self._patch({key: text}))

    def update_secret(self, objs):
        for m in self.view["mounts"]:
            vol = self.view["volumes"][m["name"]]
            if "secret" in vol or "projected" in vol:
                self.volumes[m["name"]].update(k8s.volume_files(objs, vol)[0])

    def command(self):
        args = [self._host_path(a) for a in self.view["args"]]
        if args and args[0] == "tollgate":
            args = args[1:]
        return [TOLLGATE_BIN] + args

    def environ(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        for e in self.view["env"]:
            if "value" in e:
                env[e["name"]] = self._host_path(e["value"])
            elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[e["name"]] = self.name
            else:
                raise AssertionError("env not rehearsed: %r" % e)
        return env

    def start(self):
        self.generation += 1
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, env=self.environ(),
                                     cwd=self.dir)

    def probe(self, which):
        """GET the rendered probe (liveness/readiness/startup) on this pod."""
        p = self.view[which]["httpGet"]
        port = p["port"]
        port = self.view["ports"][port] if isinstance(port, str) else port
        host_port = {self.view["ports"]["http"]: self.port,
                     self.view["ports"]["admin"]: self.admin_port}[port]
        return request(host_port, "GET", p["path"], timeout=1.0)

    def ready(self):
        try:
            return self.probe("readiness").status == 200
        except OSError:
            return False

    def wait_ready(self, timeout=10.0):
        if not wait_for(lambda: self.proc.poll() is not None or self.ready(), timeout * SLOW,
                        0.02) or self.proc.poll() is not None:
            raise AssertionError("%s not ready:\n%s" % (self.name, self.stderr()[-3000:]))

    def terminate(self, timeout=30.0):
        """SIGTERM, as the kubelet does; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for f in (self._out, self._err):
            f.close()
        rc, self.proc = self.proc.returncode, None
        return rc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def audit_ids(self):
        ids = set()
        with open(self.stdout_path, errors="replace") as f:
            for line in f:
                try:
                    ids.add(json.loads(line)["request_id"])
                except (ValueError, KeyError):
                    pass
        return ids

    def metrics(self):
        return request(self.admin_port, "GET", "/metrics").body.decode()

    def get(self, path, key, port=None):
        return request(port or self.port, "GET", path, {"X-API-Key": KEYS[key]}, timeout=3)


# ------------------------------------------------------------------ the chart's Redis


def _bus_free_port():
    """A free port whose cluster bus port (+10000) is free too, both below
    the ephemeral range (as scripts/redis-cluster.sh picks them)."""
    for _ in range(200):
        port = free_port(10000, 22000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisPod:
    """One pod of the chart's Redis StatefulSet, started from its rendered
    template: the container's command, args and env, its ConfigMap
    (redis.conf, the start script) and password Secret laid out like a
    kubelet's, its emptyDirs as directories.  Changed: mountPaths -> host
    directories (in the files and the command line), `port 6379` -> a free
    port, `bind` -> 127.0.0.1; `extra_env` for what a loopback run must add."""

    def __init__(self, objs, root, ordinal=0, namespace="default", extra_env=None,
                 cluster=False):
        self.sts = k8s.find(objs, "StatefulSet", "-redis")
        self.name = "%s-%d" % (self.sts["metadata"]["name"], ordinal)
        self.namespace = namespace
        self.extra_env = dict(extra_env or {})
        spec = self.sts["spec"]["template"]["spec"]
        (self.c,) = spec["containers"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        self.dir = os.path.join(root, self.name)
        self.port = _bus_free_port() if cluster else free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.mount_map = sorted(
            ((m["mountPath"].rstrip("/"), os.path.join(self.dir, "vol-" + m["name"]))
             for m in self.c["volumeMounts"]), key=lambda x: -len(x[0]))
        self.volumes = {}
        self.password = None
        claims = [t["metadata"]["name"] for t in self.sts["spec"].get("volumeClaimTemplates", [])]
        for m in self.c["volumeMounts"]:
            vol = volumes.get(m["name"])
            host = os.path.join(self.dir, "vol-" + m["name"])
            if vol is None and m["name"] in claims:
                os.makedirs(host)  # the pod's PersistentVolumeClaim: a directory of its own
                continue
            got = k8s.volume_files(objs, vol)
            if got is None:
                if "emptyDir" not in vol:
                    raise AssertionError("Redis volume not rehearsed: %r" % vol)
                os.makedirs(host)
                continue
            files, mode = got
            if "configMap" in vol:
                files = {k: self._patch(k, v) for k, v in files.items()}
            else:
                self.password = files["redis-password"].decode()
            self.volumes[m["name"]] = KubeVolume(host, files, mode=mode)
        if not self.password:
            raise AssertionError("no redis-password in the Redis pod's volumes")
        self.proc = None

    def _patch(self, name, text):
        if name == "redis.conf":
            for pat, repl in ((r"^port 6379$", "port %d" % self.port),
                              (r"^bind .*$", "bind 127.0.0.1")):
                text, n = re.subn(pat, repl, text, flags=re.M)
                if n != 1:
                    raise AssertionError("%d lines %r in the rendered redis.conf" % (n, pat))
        return _map_paths(text, self.mount_map)

    def environ(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        for e in self.c.get("env", []):
            field = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if "value" in e:
                env[e["name"]] = _map_paths(e["value"], self.mount_map)
            elif field == "metadata.name":
                env[e["name"]] = self.name
            elif field == "metadata.namespace":
                env[e["name"]] = self.namespace
            else:
                raise AssertionError("Redis env not rehearsed: %r" % e)
        env.update(self.extra_env)
        return env

    def start(self):
        cmd = [_map_paths(a, self.mount_map) for a in self.c["command"] + self.c.get("args", [])]
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(cmd, env=self.environ(), cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        return self

    def wait_up(self):
        def up():
            if self.proc.poll() is not None:
                return True
            try:
                with rh.RespClient(port=self.port, timeout=1.0) as c:
                    c.call("AUTH", self.password)
                    return c.call("PING") in ("PONG", b"PONG")
            except (OSError, rh.RespError):
                return False
        if not wait_for(up, 10 * SLOW, 0.05) or self.proc.poll() is not None:
            with open(os.path.join(self.dir, "redis.log"), errors="replace") as f:
                raise AssertionError("%s did not start:\n%s" % (self.name, f.read()[-3000:]))
        return self

    def call(self, *args):
        with rh.RespClient(port=self.port, timeout=2.0) as c:
            c.call("AUTH", self.password)
            r = c.call(*args)
        if isinstance(r, list):
            return [x.decode() if isinstance(x, bytes) else x for x in r]
        return r.decode() if isinstance(r, bytes) else r

    def config(self, key):
        return self.call("CONFIG", "GET", key)

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.log.close()


class ChartRedis(RedisPod):
    """The chart's standalone Redis (redis.deploy: standalone): one pod, which
    tollgate reaches through the Service that selects it."""

    def __init__(self, objs, root):
        super().__init__(objs, root)
        if self.sts["spec"]["replicas"] != 1:
            raise AssertionError("standalone Redis replicas: %r" % self.sts["spec"]["replicas"])
        (svc,) = [o for o in objs if o.get("kind") == "Service" and
                  o["spec"].get("clusterIP") != "None" and
                  o["spec"].get("selector") == self.sts["spec"]["selector"]["matchLabels"]]
        self.service_addr = "%s:%d" % (svc["metadata"]["name"], svc["spec"]["ports"][0]["port"])
        # redis.nodes as rendered -> where that is on loopback
        self.node_map = {self.service_addr: self.addr}

    def start(self):
        super().start()
        return self.wait_up()


# ------------------------------------------------------------------ HAProxy


class HAProxy:
    """The Service: round robin over the ready replicas."""

    def __init__(self, root, slots, check_path):
        self.dir = os.path.join(root, "haproxy")
        os.makedirs(self.dir)
        self.port = free_port()
        self.sock = os.path.join(self.dir, "admin.sock")
        servers = "\n".join(
            "    server %s 127.0.0.1:%d check port %d" % (name, port, admin)
            for name, port, admin in slots)
        cfg = """global
    maxconn 2000
    stats socket %(sock)s mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    # No retries and no redispatch: like kube-proxy, a request sent to a pod
    # that stopped accepting fails.  Only the readiness probe and
    # shutdown_delay keep the rollout clean.
    retries 0
frontend service
    bind 127.0.0.1:%(port)d
    default_backend pods
backend pods
    balance roundrobin
    option httpchk GET %(path)s
    http-check expect status 200
    default-server inter 300ms fall 1 rise 1
%(servers)s
""" % {"sock": self.sock, "port": self.port, "path": check_path, "servers": servers}
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(cfg)
        check = subprocess.run(["haproxy", "-c", "-f", self.cfg], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True)
        if check.returncode != 0:
            raise AssertionError("haproxy -c:\n" + check.stdout)
        self.log = open(os.path.join(self.dir, "haproxy.log"), "ab")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg], stdout=self.log,
                                     stderr=self.log, stdin=subprocess.DEVNULL)

    def states(self):
        """server name -> "UP" / "DOWN" / ... from the runtime API."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        try:
            s.connect(self.sock)
            s.sendall(b"show stat\n")
            with s.makefile("rb") as f:
                data = f.read()  # the runtime API answers, then closes
        finally:
            s.close()
        lines = data.decode().splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(head, line.split(",")))
            if row.get("pxname") == "pods" and row.get("svname") not in ("BACKEND", None):
                out[row["svname"]] = row["status"].split(" ")[0]
        return out

    def wait_state(self, want, timeout=10.0):
        def ok():
            try:
                st = self.states()
            except OSError:
                return False
            return all(st.get(k) == v for k, v in want.items())
        if not wait_for(ok, timeout * SLOW, 0.05):
            raise AssertionError("haproxy states %r, want %r" % (self.states(), want))

    def get(self, path, key):
        return request(self.port, "GET", path, {"X-API-Key": KEYS[key]}, timeout=5)

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


# ------------------------------------------------------------------ load


class Load:
    """A bounded open-loop load through the Service: LOAD_RPS for LOAD_SECONDS."""

    def __init__(self, port):
        self.port = port
        self.ok, self.errors, self.statuses = [], [], {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(LOAD_THREADS)]

    def start(self):
        self.t0 = time.monotonic()
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(LOAD_SECONDS * 3)

    def _run(self, index):
        per = LOAD_RPS / LOAD_THREADS
        n = int(per * LOAD_SECONDS)
        conn = None
        for i in range(n):
            due = self.t0 + i / per + index / LOAD_RPS
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/auth/orders/%d" % i, headers={"X-API-Key": KEYS["load"]})
                resp = conn.getresponse()
                resp.read()
                rid = resp.getheader("X-Request-ID")
                with self.lock:
                    self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
                    if resp.status >= 500:
                        self.errors.append("%d %s" % (resp.status, rid))
                    else:
                        self.ok.append(rid)
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.errors.append("%s: %s" % (type(e).__name__, e))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()


# ------------------------------------------------------------------ the rehearsal


def reload_errors(metrics):
    m = re.search(r'^tollgate_config_reloads_total\{result="error"\}\s+(\S+)', metrics, re.M)
    return float(m.group(1)) if m else 0.0


class Rehearsal(unittest.TestCase):
    """Order matters (test_1 ... test_5): one deployment, changed step by step."""

    @classmethod
    def setUpClass(cls):
        if not TOLLGATE_BIN or not os.access(TOLLGATE_BIN, os.X_OK):
            raise unittest.SkipTest("TOLLGATE_BIN not set or not executable")
        for tool in ("haproxy", "node", "redis-server"):
            if shutil.which(tool) is None:
                raise AssertionError("%s not installed: run `make deps`" % tool)
        cls.tmp = tempfile.mkdtemp(prefix="tollgate-rehearsal-")
        cls.replicas, cls.haproxy, cls.redis = [], None, None
        try:
            cls.objs = k8s.render(values())
            cls.view = k8s.pod_view(cls.objs)
            cls.redis = ChartRedis(cls.objs, cls.tmp).start()
            cls.replicas = [Replica("pod-%d" % i, cls.objs, cls.tmp, cls.redis)
                            for i in range(REPLICAS)]
            # Slots for the surge pods of the rolling update (down until started).
            cls.spares = [Replica("pod-%d-new" % i, cls.objs, cls.tmp, cls.redis)
                          for i in range(REPLICAS)]
            for r in cls.replicas:
                r.start()
            for r in cls.replicas:
                r.wait_ready()
            slots = [(r.name, r.port, r.admin_port) for r in cls.replicas + cls.spares]
            cls.haproxy = HAProxy(cls.tmp, slots, cls.view["readiness"]["httpGet"]["path"])
            cls.haproxy.wait_state(dict({r.name: "UP" for r in cls.replicas},
                                        **{r.name: "DOWN" for r in cls.spares}))
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.haproxy:
            cls.haproxy.close()
        for r in cls.replicas + getattr(cls, "spares", []):
            if r.alive():
                r.terminate(timeout=15)
        if cls.redis:
            cls.redis.close()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def live(self):
        return [r for r in self.replicas + self.spares if r.alive()]

    def test_0_default_shared_state_is_the_charts_redis(self):
        cfg = tollgate_yaml(self.objs)["tollgate.yaml"]
        self.assertRegex(cfg, r"(?m)^  mode: standalone$")
        self.assertIn("- %s" % self.redis.service_addr, cfg)
        self.assertEqual(self.redis.service_addr, "%s-tollgate-redis:6379" % k8s.RELEASE)
        env = {e["name"]: e["value"] for e in self.view["env"]}
        self.assertEqual(env["REDIS_PASSWORD_FILE"], "/etc/tollgate/secrets/redis-password")
        # AOF on (revocations survive a restart), and no way in without the password
        self.assertEqual(self.redis.config("appendonly"), ["appendonly", "yes"])
        self.assertEqual(self.redis.config("maxmemory-policy"), ["maxmemory-policy", "noeviction"])
        with rh.RespClient(port=self.redis.port, timeout=2.0) as c:
            with self.assertRaises(rh.RespError) as e:
                c.call("GET", "x")
            self.assertIn("NOAUTH", str(e.exception))
        # every replica is counting in it
        with rh.RespClient(port=self.redis.port, timeout=2.0) as c:
            c.call("AUTH", self.redis.password)
            clients = c.call("CLIENT", "LIST").decode()
        self.assertGreaterEqual(clients.count("\n"), REPLICAS, clients)

    def test_1_probes_answer_as_rendered(self):
        self.assertEqual(self.view["deployment"]["spec"]["strategy"]["rollingUpdate"]
                         ["maxUnavailable"], 0)
        for r in self.replicas:
            for which in ("liveness", "readiness", "startup"):
                if self.view[which] is None:
                    continue
                resp = r.probe(which)
                self.assertEqual(resp.status, 200, (r.name, which, resp.body))
            body = json.loads(r.probe("readiness").body)
            self.assertEqual((body["status"], body["redis"], body["fallback"]),
                             ("ok", "ok", False), r.name)

    def test_2_limit_holds_across_replicas(self):
        served = {}
        allowed = 0
        for i in range(15):
            resp = self.haproxy.get("/auth/counted/%d" % i, "carol")
            self.assertIn(resp.status, (200, 429), resp.body)
            allowed += resp.status == 200
        self.assertEqual(allowed, 10, "10/minute through 3 replicas")
        # Round robin did spread them: each replica decided some of them
        # (audit lines are flushed every 100 ms).
        def spread():
            served.update({r.name: len(r.audit_ids()) for r in self.replicas})
            return all(served.values())
        self.assertTrue(wait_for(spread, 3, 0.05), served)

    def test_3_limit_upgrade_reaches_every_replica(self):
        before = [r.proc.pid for r in self.replicas]
        # bob spends his 10 of 10 first.
        spent = sum(self.haproxy.get("/auth/counted/b%d" % i, "bob").status == 200
                    for i in range(12))
        self.assertEqual(spent, 10)
        objs = upgrade(self.objs, values(counted_rate="20/minute"))
        self.assertEqual(k8s.pod_view(objs)["template"], self.view["template"],
                         "a limits-only change must not change the pod template")
        t0 = time.monotonic()
        for r in self.replicas:
            r.update_configmap(objs)

        def applied():
            return all(r.get("/auth/counted/probe", "alice").header("X-RateLimit-Limit") == "20"
                       for r in self.replicas)
        self.assertTrue(wait_for(applied, 10, 0.05), "new limit not on every replica in 10 s")
        latency = time.monotonic() - t0
        print("\n  rehearsal: limit reload on %d replicas in %.2f s" % (REPLICAS, latency))
        self.assertEqual([r.proc.pid for r in self.replicas], before, "a replica restarted")
        # Bucket kept: bob does not get a fresh 20.
        more = sum(self.haproxy.get("/auth/counted/c%d" % i, "bob").status == 200
                   for i in range(20))
        self.assertLess(more, 10, "bucket state was reset by the upgrade")

    def test_4_broken_configmap_is_refused(self):
        # Each replica's version differs (its own listen ports are in it).
        good = [json.loads(r.probe("readiness").body)["config_version"] for r in self.replicas]
        errors = [reload_errors(r.metrics()) for r in self.replicas]
        text = tollgate_yaml(upgrade(self.objs, values("20/minute")))
        broken = text["tollgate.yaml"].replace("rate: 20/minute", "rate: twenty/minute")
        self.assertNotEqual(broken, text["tollgate.yaml"])
        for r in self.replicas:
            r.update_configmap_text("tollgate.yaml", broken)
        for r, n, version in zip(self.replicas, errors, good):
            self.assertTrue(wait_for(lambda: reload_errors(r.metrics()) > n, 10),
                            "%s did not count the refused reload" % r.name)
            body = json.loads(r.probe("readiness").body)
            self.assertEqual(body["config_version"], version)
            self.assertEqual(r.get("/auth/counted/x", "alice").header("X-RateLimit-Limit"), "20")
        # Put the good one back for the next steps.
        for r in self.replicas:
            r.update_configmap_text("tollgate.yaml", text["tollgate.yaml"])

    def test_5_key_rotation(self):
        objs = upgrade(self.objs, values("20/minute", key_ids=("alice", "bob", "dave", "load")))
        self.assertEqual(k8s.pod_view(objs)["template"], self.view["template"],
                         "a key rotation must not change the pod template")
        for r in self.replicas:
            self.assertEqual(r.get("/auth/orders/1", "dave").status, 401)
            r.update_secret(objs)

        def rotated():
            return all(r.get("/auth/orders/1", "dave").status == 200 and
                       r.get("/auth/orders/1", "carol").status == 401 for r in self.replicas)
        self.assertTrue(wait_for(rotated, 10, 0.05), "rotation not on every replica in 10 s")

    def test_6_rolling_update_under_load(self):
        load = Load(self.haproxy.port)
        load.start()
        # the rollout starts under load: answers are coming back
        self.assertTrue(wait_for(lambda: len(load.ok) >= 50, 10, 0.05), load.errors[:5])
        codes = []
        for old, new in zip(self.replicas, self.spares):
            new.start()                      # maxSurge 1: the new pod first
            new.wait_ready()
            self.haproxy.wait_state({new.name: "UP"})
            codes.append(old.terminate())   # then the old one: SIGTERM
            self.haproxy.wait_state({old.name: "DOWN"})
        load.join()
        sent = len(load.ok) + len(load.errors)
        print("\n  rehearsal: rolling update under load: %d sent, %d failed, statuses %r"
              % (sent, len(load.errors), load.statuses))
        self.assertEqual(codes, [0] * REPLICAS, "a replica did not exit 0")
        self.assertEqual(load.errors, [], "failed requests during the rollout")
        self.assertEqual(load.statuses, {200: len(load.ok)}, "the load was never limited")
        self.assertEqual(sent, int(LOAD_RPS / LOAD_THREADS * LOAD_SECONDS) * LOAD_THREADS)
        # Every answered request has its audit line: the old pods' were
        # written on exit (they are gone, nothing more comes from them); the
        # new ones flush every 100 ms, so wait for theirs.
        def missing():
            audited = set()
            for r in self.replicas + self.spares:
                audited |= r.audit_ids()
            return [rid for rid in load.ok if rid not in audited]
        wait_for(lambda: not missing(), 5, 0.05)
        self.assertEqual(missing(), [], "%d answered requests without an audit line"
                         % len(missing()))

    def test_7_redis_down_the_fleet_admits_about_the_rate(self):
        """Degraded limits follow the live fleet (docs/redis.md §3), through
        HAProxy: 4 pods live (the chart wrote expected_replicas 3, its
        replicaCount), a 60/minute limit, the chart's Redis SIGKILLed.  Each
        pod allows floor(60 / 4) = 15, so the fleet admits at most 60 plus
        what refills while the test runs (15/minute per pod); dividing by
        expected_replicas as before would let it admit 4 x 20 = 80."""
        extra = self.replicas[0]             # an old pod's slot: a 4th pod
        extra.start()
        extra.wait_ready()
        self.haproxy.wait_state({extra.name: "UP"})
        live = self.live()
        self.assertEqual(len(live), REPLICAS + 1, [r.name for r in live])
        objs = upgrade(self.objs, values("60/minute", key_ids=("alice", "bob", "dave", "load")))
        for r in live:
            r.update_secret(objs)
            r.update_configmap(objs)

        def ready_to_fall_back():
            return all(r.get("/auth/orders/1", "alice").status == 200 and
                       r.get("/auth/counted/probe", "alice").header("X-RateLimit-Limit") == "60"
                       and metric(r.metrics(), "tollgate_fleet_replicas") == len(live)
                       for r in live)
        # a lower count is taken after 6 s of lower replies: the old pods left
        self.assertTrue(wait_for(ready_to_fall_back, 20 * SLOW, 0.1),
                        [(r.name, metric(r.metrics(), "tollgate_fleet_replicas")) for r in live])
        self.redis.proc.send_signal(signal.SIGKILL)
        self.redis.proc.wait(5)
        self.assertTrue(wait_for(lambda: all(json.loads(r.probe("readiness").body)["fallback"]
                                             for r in live), 10 * SLOW, 0.05),
                        "not every pod fell back")
        t0 = time.monotonic()
        statuses = [self.haproxy.get("/auth/counted/f%d" % i, "alice").status
                    for i in range(40 * len(live))]
        elapsed = time.monotonic() - t0
        share = 60 // len(live)
        bound = len(live) * (share + int(share * elapsed / 60))
        admitted = statuses.count(200)
        print("\n  rehearsal: Redis down, %d pods, 60/minute: the fleet admitted %d of %d "
              "in %.1f s (bound %d)" % (len(live), admitted, len(statuses), elapsed, bound))
        self.assertEqual(set(statuses) - {200, 429}, set(), statuses)
        self.assertLessEqual(admitted, bound, "the fleet admitted more than the rate")
        self.assertGreaterEqual(admitted, share, "the fallback admitted nothing")


if __name__ == "__main__":
    unittest.main()
