"""User-space instructions per forward-auth request, under callgrind.

    python3 tests/bench/callgrind_auth.py build/tollgate [N1 N2]

One worker thread, the memory backend, an API key, two limits (by client
and by ip) that never deny, audit off.  tollgate runs under
`valgrind --tool=callgrind` twice, answering N1 then N2 requests on one
keep-alive connection (defaults 500 and 2500); the difference of the two
totals over N2 - N1 is the cost of one request, start-up and shutdown
cancelled out.  Loopback only; every process is stopped by its PID.
"""
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KEY = "demo-key-alice-0123456789abcdef"  # config/demo-api-keys: public demo key


def run(binary, n, tmp):
    conf = os.path.join(tmp, "cg.yaml")
    with open(conf, "w") as f:
        f.write("environment: development\nlisten: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\n"
                "threads: 1\nshutdown_delay: 0s\nredis: {mode: none}\n"
                "auth: {mode: any, api_keys_file: %s}\n"
                "limits:\n"
                "  - {name: default, match: {}, by: [client], rate: 10000000/minute}\n"
                "  - {name: per-ip, match: {}, by: [ip], rate: 10000000/minute}\n"
                "audit: {path: 'off'}\n" % os.path.join(REPO, "config", "demo-api-keys"))
    pf, out = os.path.join(tmp, "ports-%d" % n), os.path.join(tmp, "cg-%d.out" % n)
    p = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                          binary, "--config", conf, "--threads", "1", "--port-file", pf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (os.path.exists(pf) and os.path.getsize(pf) > 0):
            if time.monotonic() > deadline or p.poll() is not None:
                raise SystemExit("tollgate did not start under valgrind")
            time.sleep(0.1)
        port = int(re.findall(r":(\d+)", open(pf).read())[0])
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(n):
            c.request("GET", "/auth/x", headers={"X-API-Key": KEY})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit("unexpected status %d" % r.status)
        c.close()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(120)
    total = 0
    for name in os.listdir(tmp):
        if name.startswith("cg-%d.out" % n):
            for line in open(os.path.join(tmp, name)):
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
                    break
    return total


def main():
    binary = os.path.abspath(sys.argv[1])
    n1, n2 = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (500, 2500)
    tmp = tempfile.mkdtemp(prefix="tollgate-cg-")
    try:
        a, b = run(binary, n1, tmp), run(binary, n2, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%s: %d instructions per /auth request ((%d - %d) / %d)"
          % (binary, (b - a) // (n2 - n1), b, a, n2 - n1))


if __name__ == "__main__":
    main()
