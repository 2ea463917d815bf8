#!/usr/bin/env python3
"""`make soak`: tollgate under mixed traffic for SOAK_SECONDS (default 300),
against a real redis-server, while its RSS and open file descriptors are
sampled every second.  Not part of `make test` or CI.

Traffic, from SOAK_CLIENTS threads (default 4) on keep-alive connections:
allowed API-key requests, requests over a tight limit (429), unknown keys
from ever-new client IPs (401, lockout state for each), HS256 JWTs (some
expired, some revoked), and proxy-less health checks.  Meanwhile: a JWT
revocation through the admin API every second, a config reload (SIGHUP,
with a changed rate) every 10 s, and one Redis restart half-way.

It fails (exit 1) when, after the first 90 s (warm-up: buckets, caches,
pools and the lockout store, whose entries live 1 min, fill), RSS grows by more than SOAK_RSS_MB (default 32) or the open
descriptors by more than SOAK_FDS (default 64), or when any request errs
other than as the mix expects.  Prints start/end/max of both.
Loopback only; everything it starts is stopped by PID.

Expected growth: the 401s come from ever-new client IPs, and each refused
IP is a lockout entry for the 1 min window (up to the store's cap of
100,000); RSS rises for that minute and then stays (measured: 12 MB at
start, 43.6 MB at 75 s, 44.0 MB at 300 s).
"""
import os
import random
import signal
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
import redis_harness as rh  # noqa: E402
from harness import Tollgate, api_key, bearer, make_jwt, standard_config  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "300"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "4"))
RSS_MB = float(os.environ.get("SOAK_RSS_MB", "32"))
FDS = int(os.environ.get("SOAK_FDS", "64"))
WARMUP = min(90, SECONDS // 3)  # past the 1 min lockout window: its store is full by then


def sample(pid):
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024.0
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def main():
    redis = rh.RedisServer().start()
    rate = {"n": 100000}

    def configure(cfg):
        standard_config(cfg)
        cfg["redis"] = {"mode": "standalone", "nodes": [redis.addr], "timeout_ms": 200}
        cfg["auth"]["lockout"] = {"max_failures": 5, "window": "1m", "base_backoff": "1s",
                                  "max_backoff": "5s"}
        for lim in cfg["limits"]:
            lim["on_redis_error"] = "local"
            if lim["name"] == "default":  # the reload changes it every 10 s
                lim["rate"] = "%d/second" % rate["n"]
        return cfg

    tg = Tollgate(configure)
    stop = threading.Event()
    counts, bad, lock = {}, [], threading.Lock()

    def note(kind, status, ok, body=b""):
        with lock:
            counts[(kind, status)] = counts.get((kind, status), 0) + 1
            if not ok and len(bad) < 20:
                bad.append((kind, status, body[:160]))

    def client(i):
        rnd = random.Random(i)
        while not stop.is_set():
            pick = rnd.random()
            try:
                if pick < 0.45:
                    r = tg.get("/auth/orders/1", api_key("alice"), timeout=5)
                    note("allow", r.status, r.status == 200, r.body)
                elif pick < 0.6:
                    h = dict(api_key("bob"), **{"X-Test-Bucket": "soak-%d" % (i % 3)})
                    r = tg.get("/auth/limited/x", h, timeout=5)
                    note("deny", r.status, r.status in (200, 429))
                elif pick < 0.75:
                    ip = "198.18.%d.%d" % (rnd.randrange(256), rnd.randrange(1, 255))
                    r = tg.get("/auth/orders/1", {"X-API-Key": "soak-unknown-key-%d" % pick,
                                                  "X-Forwarded-For": ip}, timeout=5)
                    note("401", r.status, r.status in (401, 429))  # 429: locked out
                elif pick < 0.9:
                    claims = {"sub": "soak-%d" % rnd.randrange(50), "scope": "orders:read",
                              "jti": "soak-jti-%d" % rnd.randrange(200)}
                    h = {}
                    if rnd.random() < 0.2:  # refused: from its own IP, or 127.0.0.1 locks out
                        claims["exp"] = int(time.time()) - 60
                        h["X-Forwarded-For"] = "198.19.%d.%d" % (rnd.randrange(256),
                                                                 rnd.randrange(1, 255))
                    h.update(bearer(make_jwt(claims)))
                    r = tg.get("/auth/orders/1", h, timeout=5)
                    note("jwt", r.status, r.status in (200, 401))  # 401: expired
                else:
                    r = tg.get("/healthz", timeout=5)
                    note("health", r.status, r.status == 200)
            except OSError as e:
                note("error", type(e).__name__, False)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    samples = []
    t0 = time.monotonic()
    restarted = False
    next_reload = 10
    try:
        while time.monotonic() - t0 < SECONDS:
            time.sleep(1)
            el = time.monotonic() - t0
            samples.append((el,) + sample(tg.proc.pid))
            tok = make_jwt({"sub": "soak-rev", "jti": "rev-%s" % uuid.uuid4().hex})
            tg.admin("POST", "/admin/v1/revocations", {"Content-Type": "application/json"},
                     ('{"token":"%s"}' % tok).encode())
            if el >= next_reload:
                next_reload += 10
                rate["n"] = 100000 + int(el)
                tg.config = configure(harness.base_config(tg.port, tg.admin_port, tg.tmp))
                tg.write_config()
                tg.signal(signal.SIGHUP)
            if not restarted and el >= SECONDS / 2:
                restarted = True
                redis.stop()
                time.sleep(2)
                redis.start()
            if not tg.alive():
                print("soak: tollgate died:\n" + tg.stderr()[-3000:])
                return 1
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        tg.stop()
        report = tg.sanitizer_report()
        tg.cleanup()
        redis.close()

    warm = [s for s in samples if s[0] >= WARMUP] or samples
    rss0, fd0 = warm[0][1], warm[0][2]
    rss1, fd1 = samples[-1][1], samples[-1][2]
    rss_max = max(s[1] for s in samples)
    fd_max = max(s[2] for s in samples)
    total = sum(counts.values())
    print("soak: %d s, %d requests (%.0f/s), %d reloads, 1 Redis restart" %
          (SECONDS, total, total / max(1, SECONDS), SECONDS // 10))
    print("soak: RSS MB  start %.1f (after %d s warm-up), end %.1f, max %.1f  (first sample %.1f)"
          % (rss0, WARMUP, rss1, rss_max, samples[0][1]))
    quarters = [samples[min(len(samples) - 1, len(samples) * q // 4)] for q in (1, 2, 3, 4)]
    print("soak: RSS MB at 25/50/75/100%%: %s" % " ".join("%.1f" % q[1] for q in quarters))
    print("soak: fds     start %d, end %d, max %d  (first sample %d)"
          % (fd0, fd1, fd_max, samples[0][2]))
    for (kind, status), n in sorted(counts.items(), key=lambda kv: str(kv[0])):
        print("soak:   %-7s %-18s %d" % (kind, status, n))
    failed = False
    if rss_max - rss0 > RSS_MB:
        print("soak: FAIL: RSS grew %.1f MB past warm-up (bound %.0f)" % (rss_max - rss0, RSS_MB))
        failed = True
    if fd_max - fd0 > FDS:
        print("soak: FAIL: %d more descriptors past warm-up (bound %d)" % (fd_max - fd0, FDS))
        failed = True
    if bad:
        print("soak: FAIL: unexpected answers: %s" % bad)
        failed = True
    if report:
        print("soak: FAIL: sanitizer report:\n" + report)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
