"""The chart's `redis.deploy: cluster` (issue 20), rehearsed on loopback with
real parts, like test_k8s_rehearsal does for the default standalone Redis:

- `helm template` renders the chart with redis.deploy: cluster;
- each of the rendered StatefulSet's 6 pods runs its rendered command (sh
  redis-start.sh), env, redis.conf and password Secret (RedisPod); the one
  loopback change besides ports and paths: the nodes announce 127.0.0.1
  instead of their DNS names <pod>.<headless Service>.<ns>.svc.cluster.local,
  which do not resolve here (ANNOUNCE_HOSTNAME, which the start script takes);
- the rendered hook Job runs its rendered command (sh cluster-init.sh) with
  the nodes' loopback addresses (NODES, the script's outside-Kubernetes
  input) in place of the names it would derive;
- 2 tollgate replicas from the rendered Deployment, redis.nodes rewritten
  from each node's stable name to its loopback address.

Then: the Job formed a healthy 3+3 cluster and a second run (post-upgrade)
leaves it alone; a limit holds exactly across the replicas.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

import k8s_render as k8s
import redis_harness as rh
import test_k8s_rehearsal as rehearsal
from harness import KubeVolume, TOLLGATE_BIN, wait_for, SLOW

REPLICAS = 2


class ClusterRedis:
    """The rendered cluster: its pods, and redis.nodes as rendered -> loopback."""

    def __init__(self, objs, root):
        sts = k8s.find(objs, "StatefulSet", "-redis")
        self.headless = sts["spec"]["serviceName"]
        self.nodes = [rehearsal.RedisPod(objs, root, i, extra_env={"ANNOUNCE_HOSTNAME": "127.0.0.1"},
                                         cluster=True)
                      for i in range(sts["spec"]["replicas"])]
        self.node_map = {"%s.%s:6379" % (n.name, self.headless): n.addr for n in self.nodes}


def run_init_job(objs, root, nodes):
    """The rendered cluster-init Job's container, run once to completion."""
    job = k8s.find(objs, "Job", "-redis-init")
    spec = job["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    base = os.path.join(root, "redis-init")
    mount_map = sorted(((m["mountPath"].rstrip("/"), os.path.join(base, "vol-" + m["name"]))
                        for m in c["volumeMounts"]), key=lambda x: -len(x[0]))
    for m in c["volumeMounts"]:
        files, mode = k8s.volume_files(objs, volumes[m["name"]])
        if "configMap" in volumes[m["name"]]:
            files = {k: rehearsal._map_paths(v, mount_map) for k, v in files.items()}
        KubeVolume(os.path.join(base, "vol-" + m["name"]), files, mode=mode)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    for e in c["env"]:
        env[e["name"]] = rehearsal._map_paths(e["value"], mount_map)
    env["NODES"] = " ".join(n.addr for n in nodes)
    cmd = [rehearsal._map_paths(a, mount_map) for a in c["command"] + c.get("args", [])]
    return subprocess.run(cmd, env=env, cwd=base, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=120 * SLOW)


def info(node):
    text = node.call("CLUSTER", "INFO")
    return dict(line.split(":", 1) for line in text.split() if ":" in line)


class ChartCluster(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not TOLLGATE_BIN or not os.access(TOLLGATE_BIN, os.X_OK):
            raise unittest.SkipTest("TOLLGATE_BIN not set or not executable")
        for tool in ("node", "redis-server", "redis-cli"):
            if shutil.which(tool) is None:
                raise AssertionError("%s not installed: run `make deps`" % tool)
        cls.tmp = tempfile.mkdtemp(prefix="tollgate-chart-cluster-")
        cls.redis, cls.replicas = None, []
        try:
            vals = rehearsal.values()
            vals["replicaCount"] = REPLICAS
            vals["redis"] = {"deploy": "cluster"}
            cls.objs = k8s.render(vals)
            cls.redis = ClusterRedis(cls.objs, cls.tmp)
            for n in cls.redis.nodes:
                n.start()
            for n in cls.redis.nodes:
                n.wait_up()
            cls.init = run_init_job(cls.objs, cls.tmp, cls.redis.nodes)
            if cls.init.returncode != 0:
                raise AssertionError("cluster-init exited %d:\n%s"
                                     % (cls.init.returncode, cls.init.stdout[-3000:]))
            cls.replicas = [rehearsal.Replica("pod-%d" % i, cls.objs, cls.tmp, cls.redis)
                            for i in range(REPLICAS)]
            for r in cls.replicas:
                r.start()
            for r in cls.replicas:
                r.wait_ready()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for r in cls.replicas:
            if r.alive():
                r.terminate(timeout=15)
        if cls.redis:
            for n in cls.redis.nodes:
                n.close()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_1_the_init_job_formed_the_cluster(self):
        self.assertIn("cluster_state:ok on all 6 nodes", self.init.stdout)
        roles = []
        for n in self.redis.nodes:
            i = info(n)
            self.assertEqual((i["cluster_state"], i["cluster_known_nodes"],
                              i["cluster_slots_assigned"]), ("ok", "6", "16384"), n.name)
            roles.append(n.call("ROLE")[0])
            # AOF on and the node config on the pod's volume
            self.assertEqual(n.config("appendonly"), ["appendonly", "yes"])
            self.assertTrue(os.path.exists(os.path.join(n.dir, "vol-data", "nodes.conf")))
        self.assertEqual(sorted(roles), ["master"] * 3 + ["slave"] * 3)
        # post-upgrade runs it again: a formed cluster is left alone
        again = run_init_job(self.objs, self.tmp, self.redis.nodes)
        self.assertEqual(again.returncode, 0, again.stdout)
        self.assertIn("already formed", again.stdout)

    def test_2_replicas_share_the_cluster(self):
        for r in self.replicas:
            body = r.probe("readiness").body
            self.assertIn(b'"redis":"ok"', body, r.name)
        allowed = 0
        for i in range(14):
            resp = self.replicas[i % REPLICAS].get("/auth/counted/%d" % i, "carol")
            self.assertIn(resp.status, (200, 429), resp.body)
            allowed += resp.status == 200
        self.assertEqual(allowed, 10, "10/minute across %d replicas on the chart's cluster"
                         % REPLICAS)


if __name__ == "__main__":
    unittest.main()
