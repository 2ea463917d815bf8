#!/usr/bin/env bash
# RSS per active bucket of the memory backend: tollgate (memory backend, one
# limit by a header) takes N requests, each with its own header value, so
# each creates one bucket; RSS is read from /proc before and after.
#   tests/bench/buckets-rss.sh BIN [N]      (N = 1000000)
# Loopback only; the tollgate started here is stopped by PID.
set -euo pipefail
BIN=${1:?usage: buckets-rss.sh BIN [N]}
N=${2:-1000000}
TMP=$(mktemp -d /tmp/tollgate-rss.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null; then wait "$PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P=$(port)
A=$(port)
cat > "$TMP/t.yaml" <<YAML
listen: "127.0.0.1:$P"
admin_listen: "127.0.0.1:$A"
threads: 2
auth: {mode: none}
default_route: {auth: none}
limits:
  - {name: b, match: {}, by: ["header:X-B"], rate: 10/hour}  # not full again for 6 min: every bucket stays
audit: {path: "off"}
YAML
"$BIN" --config "$TMP/t.yaml" > "$TMP/out" 2> "$TMP/err" &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$A/readyz" >/dev/null && break; sleep 0.1; done
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
cat > "$TMP/unique.lua" <<'LUA'
-- every request its own X-B: "<slice>-<thread>-<n>" (the slice from the
-- command line, so successive wrk runs never repeat a value)
local n, slice = 0, "w"
tid = 0
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args) slice = args[1] or "w" end
function request()
    n = n + 1
    return wrk.format(nil, nil, { ["X-B"] = slice .. "-" .. tid .. "-" .. n })
end
LUA
# warm: allocator arenas, connections, one bucket per thread
wrk -t2 -c16 -d1s -s "$TMP/unique.lua" "http://127.0.0.1:$P/auth/x" > /dev/null
R0=$(rss)
B0=$(curl -s "http://127.0.0.1:$A/metrics" | awk '/^tollgate_requests_total/ {s += $2} END {print s + 0}')
# N more requests, each a new bucket (wrk runs until N are sent: -d long, stop by count)
python3 - "$P" "$N" "$TMP" <<'PY'
import subprocess, sys, time
port, n, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# wrk has no request-count option: run in slices until N requests are made
done = 0
while done < n:
    out = subprocess.run(["wrk", "-t2", "-c32", "-d2s", "-s", tmp + "/unique.lua",
                          "http://127.0.0.1:%s/auth/x" % port, "--", "s%d" % done],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if " requests in " in line:
            done += int(line.split()[0])
print(done)
PY
R1=$(rss)
B1=$(curl -s "http://127.0.0.1:$A/metrics" | awk '/^tollgate_requests_total/ {s += $2} END {print s + 0}')
REQS=$((B1 - B0))
echo "requests (one new bucket each): $REQS"
echo "RSS before: ${R0} KiB, after: ${R1} KiB"
awk -v a="$R0" -v b="$R1" -v n="$REQS" 'BEGIN { printf "RSS per bucket: %.1f bytes (capacity 1,000,000 buckets: beyond that the oldest idle ones are evicted)\n", (b - a) * 1024 / n }'
