"""Who is limited (issue 22, item 1): GET /admin/v1/limits/{name}/top and
tollgate_limit_top_denied, through the real admin API.

The load: 1,000 identities (header X-Tenant), skewed: the 10 heaviest send
400, 375, ..., 175 requests, the 990 others 1 or 2 each (4,360 in all),
shuffled and spread over three replicas on one redis-server.  The limit
allows 5 per hour per tenant, so a tenant of c requests is denied c - 5.
Each worker's Space-Saving summary keeps 48 counters; every identity whose
share of a worker's stream is above 1/48 (the 10th heaviest has 4 %) is
kept, so the true top 10 must be listed first, in order, and every listed
count must bound the true one: count - error <= true <= count.
"""
import random
import threading
import time
import unittest

from harness import TollgateCase, metric, wait_for

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and rh.have_redis()

HEAVY = [400 - 25 * i for i in range(10)]
COUNTS = {"t%04d" % i: (HEAVY[i] if i < 10 else 1 + i % 2) for i in range(1000)}
BURST = 5


def top_conf(nodes=None, metric_clients=3, mode="standalone"):
    def configure(cfg):
        if nodes:
            cfg["redis"] = {"mode": mode, "nodes": list(nodes), "timeout_ms": 500}
        cfg["threads"] = 1
        cfg["top"] = {"publish_interval": "1s", "metric_clients": metric_clients}
        cfg["routes"] = [{"name": "open", "match": {"path_prefix": "/open/"}, "auth": "none"}]
        cfg["limits"] = [
            {"name": "hot", "match": {"path_prefix": "/open/"}, "by": ["header:X-Tenant"],
             "rate": "%d/hour" % BURST},
            {"name": "quiet", "match": {"path_prefix": "/never/"}, "by": ["ip"],
             "rate": "5/hour"},
            {"name": "secret", "match": {"path_prefix": "/open/s/"},
             "by": ["header:Authorization"], "rate": "1/hour", "mode": "shadow"},
        ]
        return cfg
    return configure


def send_load(tgs, counts):
    """Every request of `counts`, shuffled, round-robin over `tgs` (one
    thread each); returns the statuses seen."""
    reqs = [t for t, c in counts.items() for _ in range(c)]
    random.Random(22).shuffle(reqs)
    statuses = {}
    lock = threading.Lock()

    def run(k):
        seen = {}
        for t in reqs[k::len(tgs)]:
            r = tgs[k].get("/auth/open/x", {"X-Tenant": t})
            seen[r.status] = seen.get(r.status, 0) + 1
        with lock:
            for s, n in seen.items():
                statuses[s] = statuses.get(s, 0) + n

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(tgs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return statuses


def top(tg, query="window=5m"):
    r = tg.admin("GET", "/admin/v1/limits/hot/top?" + query)
    return r.status, (r.json() if r.body else None)


def fleet_top(tg, query, replicas=3, total=None, timeout=20):
    """The fleet's answer to `query` once it counts `replicas` replicas (and
    `total`, when given): a replica's lists count for 3 publish intervals,
    and on a loaded machine one publication may come late, so a single
    answer can miss a replica for a moment.  The last answer on timeout."""
    last = [None]

    def ready():
        st, body = top(tg, query)
        last[0] = body
        return (st == 200 and body["scope"] == "fleet" and body["replicas"] == replicas and
                (total is None or body["total"] == total))
    wait_for(ready, timeout, 0.2)
    return last[0]


class TopChecks:
    def assert_true_top(self, body, truth, n=10):
        """The first n entries are truth's n largest, in order, each within
        its stated error; nothing unlisted can be larger than max_unlisted."""
        want = sorted(truth, key=lambda t: (-truth[t], t))[:n]
        got = [e["client"] for e in body["top"][:n]]
        self.assertEqual(got, ["h:x-tenant=" + t for t in want], body)
        for e in body["top"]:
            true = truth.get(e["client"].split("=", 1)[1], 0)
            self.assertLessEqual(e["count"] - e["error"], true, e)
            self.assertGreaterEqual(e["count"], true, e)
        self.assertGreaterEqual(body["top"][n - 1]["count"] - body["top"][n - 1]["error"],
                                body["max_unlisted"], "the 10th is known to beat the rest")


@unittest.skipUnless(HAVE_REDIS, "redis-server / redis-cli not installed")
class TopFleet(TollgateCase, TopChecks):
    shared_server = False

    def test_fleet_top_ten_from_any_replica(self):
        redis = rh.RedisServer().start()
        self.addCleanup(redis.close)
        tgs = [self.spawn(top_conf([redis.addr])) for _ in range(3)]
        t0 = time.monotonic()
        statuses = send_load(tgs, COUNTS)
        took = time.monotonic() - t0
        total = sum(COUNTS.values())
        self.assertEqual(sum(statuses.values()), total, statuses)
        denied_truth = {t: max(0, c - BURST) for t, c in COUNTS.items()}
        self.assertEqual(statuses.get(429), sum(denied_truth.values()), statuses)

        def fleet_complete():
            return all(top(tg)[1]["scope"] == "fleet" and top(tg)[1]["replicas"] == 3 and
                       top(tg, "window=5m&by=requests")[1]["total"] == total for tg in tgs)
        self.assertTrue(wait_for(fleet_complete, 20, 0.2),
                        "fleet lists incomplete: %r" % [top(tg)[1] for tg in tgs])
        for tg in tgs:
            for window in ("1m", "5m", "15m"):
                body = fleet_top(tg, "window=%s&by=requests&n=10" % window, total=total)
                self.assertEqual((body["scope"], body["replicas"], body["rejected"]),
                                 ("fleet", 3, 0), body)
                self.assertEqual(len(body["top"]), 10)
                self.assert_true_top(body, COUNTS)
            body = fleet_top(tg, "window=5m&by=denied&n=12", total=sum(denied_truth.values()))
            self.assertEqual(len(body["top"]), 10, "only the 10 heavy ones were denied")
            self.assertEqual(body["total"], sum(denied_truth.values()))
            self.assert_true_top(body, denied_truth)
        errs = [e["error"] for e in top(tgs[0], "by=requests&n=10")[1]["top"]]
        print("\n    3 replicas, 1,000 tenants, %d requests in %.1f s: true top 10 listed "
              "in order by every replica; errors of the top 10: %r" % (total, took, errs))

        # the metric: this replica's top 3 of `hot` only, never more
        for tg in tgs:
            lines = [l for l in tg.metrics().splitlines()
                     if l.startswith("tollgate_limit_top_denied{")]
            hot = [l for l in lines if 'limit="hot"' in l]
            self.assertEqual(len(hot), 3, lines)
            self.assertEqual(len(lines), 3, "no other limit has denials: %r" % lines)
            vals = [int(l.rsplit(" ", 1)[1]) for l in hot]
            self.assertEqual(vals, sorted(vals, reverse=True), hot)
            for l in hot:  # this replica's third of the load: its own top 3
                self.assertIn(l.split('client="h:x-tenant=')[1][:5],
                              ("t0000", "t0001", "t0002", "t0003", "t0004"), hot)

        # a replica's lists in Redis that are not well-formed are left out
        c = redis.client()
        c.call("HSET", "tg:{top}:hot:lists", "f" * 32, "tg-top 1\n1 r 1 5\n5 9 x\n")
        c.call("ZADD", "tg:{top}:hot:until", str(int(time.time() * 1000) + 60000), "f" * 32)
        body = fleet_top(tgs[1], "by=requests")
        self.assertEqual((body["replicas"], body["rejected"]), (3, 1), body)
        self.assert_true_top(body, COUNTS)

        # a replica that stops fades within 3 publish intervals (1 s here)
        self.assertEqual(tgs[0].stop(), 0)
        t0 = time.monotonic()
        self.assertTrue(wait_for(lambda: top(tgs[1])[1]["replicas"] == 2, 3 + 3, 0.1),
                        top(tgs[1]))
        faded = time.monotonic() - t0
        self.assertLess(top(tgs[1], "by=requests")[1]["total"], total)
        print("    a stopped replica's lists faded after %.1f s (bound 3 s + 1 s)" % faded)

        # Redis gone: this replica's own lists, and it says so
        redis.proc.kill()
        redis.proc.wait(5)
        redis.proc = None
        st, body = top(tgs[2], "by=requests&n=1")
        self.assertEqual(st, 200, body)
        self.assertEqual((body["scope"], body["replicas"]), ("replica", 1), body)
        self.assertLess(body["total"], total)
        self.assertEqual(body["top"][0]["client"], "h:x-tenant=t0000")


@unittest.skipUnless(HAVE_REDIS, "redis-server / redis-cli not installed")
class TopCluster(TollgateCase, TopChecks):
    """Both keys of a limit's lists share the {top} hash tag: one slot of a
    real 6-node cluster; the fleet's answer is the same as on one server."""
    shared_server = False

    @classmethod
    def setUpClass(cls):
        cls.cluster = rh.RedisCluster().up()
        cls.addClassCleanup(cls.cluster.close)

    def test_fleet_top_on_cluster(self):
        tgs = [self.spawn(top_conf(self.cluster.seeds, mode="cluster")) for _ in range(3)]
        send_load(tgs, COUNTS)
        total = sum(COUNTS.values())

        def complete():
            st, body = top(tgs[0], "by=requests")
            return st == 200 and body["scope"] == "fleet" and body["total"] == total
        self.assertTrue(wait_for(complete, 20, 0.2), top(tgs[0], "by=requests"))
        for tg in tgs:
            body = fleet_top(tg, "window=15m&by=requests", total=total)
            self.assertEqual((body["scope"], body["replicas"], body["total"]),
                             ("fleet", 3, total), body)
            self.assert_true_top(body, COUNTS)
        key = "tg:{top}:hot:until"
        with self.cluster.client_for_key(key) as c:
            self.assertEqual(c.call("ZCARD", key), 3)
            self.assertEqual(c.call("HLEN", "tg:{top}:hot:lists"), 3)


class TopReplica(TollgateCase, TopChecks):
    """Without Redis: this replica's lists, exact under 48 identities."""
    configure = staticmethod(top_conf(None, metric_clients=0))

    def test_replica_scope_without_redis(self):
        counts = {"t%04d" % i: 12 - i for i in range(12)}
        send_load([self.tg], counts)
        truth = {t: c - BURST for t, c in counts.items() if c > BURST}

        def complete():
            st, body = top(self.tg, "window=1m")
            return st == 200 and body["total"] == sum(truth.values())
        self.assertTrue(wait_for(complete, 10, 0.1), top(self.tg, "window=1m"))
        st, body = top(self.tg, "window=1m")
        self.assertEqual((body["scope"], body["replicas"], body["mode"]),
                         ("replica", 1, "enforce"), body)
        self.assertEqual([(e["client"], e["count"], e["error"]) for e in body["top"]],
                         [("h:x-tenant=" + t, truth[t], 0)
                          for t in sorted(truth, key=lambda t: -truth[t])])
        self.assertEqual(body["max_unlisted"], 0)
        self.assertNotIn("tollgate_limit_top_denied", self.tg.metrics(),
                         "metric_clients 0 disables the metric")

    def test_credential_header_is_never_shown(self):
        """A limit keyed on Authorization lists "h:authorization=*": the
        credential reaches neither the API nor the metrics."""
        for _ in range(3):
            self.tg.get("/auth/open/s/x", {"Authorization": "Bearer sekrit-0123456789"})

        def listed():
            r = self.tg.admin("GET", "/admin/v1/limits/secret/top?by=denied")
            return r.status == 200 and r.json()["top"]
        self.assertTrue(wait_for(listed, 10, 0.1))
        r = self.tg.admin("GET", "/admin/v1/limits/secret/top?by=denied")
        body = r.json()
        self.assertEqual(body["mode"], "shadow", "a shadow limit's would-be denials")
        self.assertEqual([(e["client"], e["count"]) for e in body["top"]],
                         [("h:authorization=*", 2)])
        self.assertNotIn(b"sekrit", r.body)
        self.assertNotIn("sekrit", self.tg.metrics())

    def test_bad_queries(self):
        for path, status in [
            ("/admin/v1/limits/nope/top", 404),
            ("/admin/v1/limits/hot/bottom", 404),
            ("/admin/v1/limits/hot/top/x", 404),
            ("/admin/v1/limits//top", 404),
            ("/admin/v1/limits/hot/top?window=2m", 400),
            ("/admin/v1/limits/hot/top?window=", 400),
            ("/admin/v1/limits/hot/top?by=allowed", 400),
            ("/admin/v1/limits/hot/top?n=0", 400),
            ("/admin/v1/limits/hot/top?n=49", 400),
            ("/admin/v1/limits/hot/top?n=-1", 400),
            ("/admin/v1/limits/hot/top?n=1x", 400),
            ("/admin/v1/limits/hot/top?n=0010", 400),
            ("/admin/v1/limits/hot/top?window=1m&window=5m", 400),
            ("/admin/v1/limits/hot/top?limit=hot", 400),
        ]:
            r = self.tg.admin("GET", path)
            self.assertEqual(r.status, status, (path, r))
            self.assertIn("error", r.json(), path)
            self.assertIn(r.json()["error"]["code"], ("not_found", "bad_request"))
        r = self.tg.admin("GET", "/admin/v1/limits/hot/top", token=None)
        self.assertEqual(r.status, 401)
        r = self.tg.admin("GET", "/admin/v1/limits/hot/top", token="wrong")
        self.assertEqual(r.status, 401)
        r = self.tg.admin("GET", "/admin/v1/limits/quiet/top?window=15m&by=requests&n=48")
        self.assertEqual(r.status, 200)
        self.assertEqual((r.json()["top"], r.json()["total"]), ([], 0))
        self.assertEqual(metric(self.tg.metrics(), "tollgate_limit_top_denied"), None)


if __name__ == "__main__":
    unittest.main()
