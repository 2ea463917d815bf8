#!/usr/bin/env bash
# `make bench`: wrk against an nginx `return 200` yardstick and against
# tollgate (memory backend, 1000 API keys rotated per request, limits that
# never deny, audit to a file), then a table: target, req/s, p50, p99 and
# the ratio of req/s to nginx.   Usage: tests/bench/run.sh BIN
#
# BENCH_DURATION (10s), BENCH_CONNECTIONS (64), BENCH_THREADS (1),
# BENCH_KEYS (1000), BENCH_TG_THREADS (tollgate threads, 0 = one per CPU).
set -euo pipefail
BIN=${1:?usage: run.sh BIN}
HERE=$(cd "$(dirname "$0")" && pwd)
DURATION=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_THREADS:-1}
NKEYS=${BENCH_KEYS:-1000}
TG_THREADS=${BENCH_TG_THREADS:-0}

for t in wrk nginx python3 curl; do
    command -v "$t" >/dev/null || { echo "bench: $t not found (make deps)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [ -n "${KEEP_TMP:-}" ] && echo "bench: kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL: wait (bounded, 10 s) until it answers 200
    for _ in $(seq 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" = 200 ] && return 0
        sleep 0.1
    done
    echo "bench: $1 did not come up" >&2
    return 1
}

# ---- nginx yardstick
NGX_PORT=$(free_port)
mkdir -p "$TMP/nginx"
sed -e "s|@DIR@|$TMP/nginx|g" -e "s|@PORT@|$NGX_PORT|g" "$HERE/nginx.conf.in" > "$TMP/nginx/nginx.conf"
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" 2> "$TMP/nginx/stderr.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$NGX_PORT/" || { cat "$TMP/nginx/stderr.log" >&2; exit 1; }

# ---- tollgate: NKEYS generated keys, limits that never deny
TG_PORT=$(free_port)
ADMIN_PORT=$(free_port)
python3 - "$TMP" "$NKEYS" <<'PY'
import hashlib, os, sys
tmp, n = sys.argv[1], int(sys.argv[2])
with open(os.path.join(tmp, "keys.txt"), "w") as plain, \
        open(os.path.join(tmp, "api-keys"), "w") as kf:
    for i in range(n):
        key = "bench-%05d-%s" % (i, os.urandom(12).hex())
        plain.write(key + "\n")
        kf.write("bench-%05d %s scopes=bench:read\n" % (i, hashlib.sha256(key.encode()).hexdigest()))
PY
cat > "$TMP/tollgate.yaml" <<YAML
environment: development
listen: "127.0.0.1:$TG_PORT"
admin_listen: "127.0.0.1:$ADMIN_PORT"
threads: $TG_THREADS
redis: {mode: none}
auth:
  mode: api_key
  api_keys_file: "$TMP/api-keys"
  lockout: {max_failures: 0}
limits:
  - name: default
    match: {}
    by: [client]
    rate: 10000000/minute
routes:
  - name: proxied
    match: {path_prefix: /proxy/}
    upstream: "http://127.0.0.1:$NGX_PORT"
    auth: required
audit: {path: "$TMP/audit.log"}
YAML
ADMIN_TOKEN=bench-admin-token-0123456789 "$BIN" --config "$TMP/tollgate.yaml" \
    > "$TMP/tollgate.out" 2> "$TMP/tollgate.err" &
PIDS+=($!)
wait_http "http://127.0.0.1:$ADMIN_PORT/readyz" || { tail -20 "$TMP/tollgate.err" >&2; exit 1; }
first_key=$(head -1 "$TMP/keys.txt")
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $first_key" \
    "http://127.0.0.1:$TG_PORT/auth/bench")
[ "$code" = 200 ] || { echo "bench: tollgate answered $code to a demo key" >&2; exit 1; }

# ---- runs
to_ms() { # "1.23ms" / "456.00us" / "1.02s" -> milliseconds
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "%s", v }'
}

ROWS=()
run() { # NAME URL
    local name=$1 url=$2 out rps p50 p99 errs sock
    echo "bench: $name  ($url, ${DURATION}, ${CONNS} connections)" >&2
    out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" --latency \
        -s "$HERE/rotate-keys.lua" "$url" -- "$TMP/keys.txt")
    echo "$out" > "$TMP/wrk-$name.txt"
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<< "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<< "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<< "$out")")
    errs=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<< "$out")
    errs=${errs:-0}
    sock=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<< "$out")
    errs=$((errs + ${sock:-0}))
    ROWS+=("$name $rps $p50 $p99 $errs")
}

run nginx "http://127.0.0.1:$NGX_PORT/"
run tollgate-auth "http://127.0.0.1:$TG_PORT/auth/bench"
run tollgate-proxy "http://127.0.0.1:$TG_PORT/proxy/bench"

base=$(awk '{print $2}' <<< "${ROWS[0]}")
printf '\n%-16s %12s %10s %10s %9s %8s\n' target "req/s" "p50 ms" "p99 ms" "vs nginx" errors
for row in "${ROWS[@]}"; do
    read -r name rps p50 p99 errs <<< "$row"
    ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    printf '%-16s %12.0f %10s %10s %9s %8s\n' "$name" "$rps" "$p50" "$p99" "$ratio" "$errs"
done
echo
echo "(wrk -t$WRK_THREADS -c$CONNS -d$DURATION --latency, $NKEYS keys rotated; tollgate-proxy" \
     "forwards to the nginx yardstick, so it pays for both hops; $(nproc) CPUs shared by all)"
