#!/usr/bin/env bash
# `make bench-scale`: the capacity model's check (docs/capacity.md).  1, 2
# and 3 tollgate replicas (one worker thread each, as one pod per CPU would
# run) against 1 Redis shard (standalone) and 3 shards (a 6-node Redis
# Cluster), all on loopback.  Each replica gets its own wrk (-t1 -c32) for
# the same SECONDS; the row is the sum.  Printed per row: total req/s, CPU
# of all replicas, of Redis (every node), of wrk, requests per tollgate
# CPU-second and per Redis CPU-second, script calls per request.
#
# On a machine with fewer cores than replicas + Redis + load generators the
# sum stops growing when the box is full (the idle column says when): what
# must stay flat for the sizing formula to hold is the per-CPU-second
# columns.
#
# Usage: tests/bench/scale.sh BIN   (BENCH_SECONDS, default 5; BENCH_KEYS 1000)
# Every process started is stopped by PID on exit.
set -euo pipefail
BIN=${1:?usage: scale.sh BIN}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECS=${BENCH_SECONDS:-5}
NKEYS=${BENCH_KEYS:-1000}
[[ $SECS =~ ^[0-9]+$ && $SECS -ge 1 ]] || { echo "scale: BENCH_SECONDS must be >= 1" >&2; exit 2; }
for t in wrk python3 curl redis-server redis-cli; do
    command -v "$t" >/dev/null || { echo "scale: $t not found (make deps)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/tollgate-scale.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -d "$TMP/redis" ]; then "$ROOT/scripts/redis-standalone.sh" down "$TMP/redis" || true; fi
    if [ -d "$TMP/cluster" ]; then "$ROOT/scripts/redis-cluster.sh" down "$TMP/cluster" || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=tests/bench/lib.sh
. "$HERE/lib.sh"
HZ=$(getconf CLK_TCK)

gen_keys "$TMP" "$NKEYS" scale

echo "scale: starting redis-server and a 6-node Redis Cluster" >&2
REDIS_ADDR=$("$ROOT/scripts/redis-standalone.sh" up "$TMP/redis")
REDIS_PIDS=$(cat "$TMP/redis/redis.pid")
CLUSTER_SEEDS=$("$ROOT/scripts/redis-cluster.sh" up "$TMP/cluster")
CLUSTER_PIDS=$(cat "$TMP"/cluster/node-*/redis.pid | tr '\n' ',')
CLUSTER_PIDS=${CLUSTER_PIDS%,}
CLUSTER_ADDRS=$(tr ' ' ',' <<< "$CLUSTER_SEEDS")
CLUSTER_YAML="{mode: cluster, nodes: [$(sed 's/\([^ ]*\)/"\1"/g; s/ /, /g' <<< "$CLUSTER_SEEDS")]}"

start_replica() { # INDEX REDIS-YAML: appends to PIDS, tpids, ports
    local i=$1 port admin
    port=$(free_port)
    admin=$(free_port)
    cat > "$TMP/tg-$i.yaml" <<YAML
environment: development
listen: "127.0.0.1:$port"
admin_listen: "127.0.0.1:$admin"
threads: 1
redis: $2
auth: {mode: any, api_keys_file: "$TMP/api-keys", lockout: {max_failures: 0}}
limits:
  - {name: default, match: {}, by: [client], rate: 10000000/minute, on_redis_error: closed}
audit: {path: "$TMP/audit-$i.log"}
YAML
    ADMIN_TOKEN=scale-admin-token-0123456789 "$BIN" --config "$TMP/tg-$i.yaml" \
        > "$TMP/tg-$i.out" 2> "$TMP/tg-$i.err" &
    PIDS+=("$!")
    tpids+=("$!")
    ports+=("$port")
    wait_http "http://127.0.0.1:$admin/readyz" || { tail -5 "$TMP/tg-$i.err" >&2; exit 1; }
}

box_idle() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print $5 + $6, t; exit }' /proc/stat; }

printf '%-9s %8s %9s %9s %8s %8s %5s %10s %10s %10s\n' shards replicas "req/s" "tg cpu" \
    "redis cpu" "wrk cpu" idle "req/tg-cs" "req/rd-cs" "calls/req"
for shards in 1 3; do
    if [ "$shards" = 1 ]; then yaml="{mode: standalone, nodes: [\"$REDIS_ADDR\"]}"; rp=$REDIS_PIDS; ra=$REDIS_ADDR
    else yaml=$CLUSTER_YAML; rp=$CLUSTER_PIDS; ra=$CLUSTER_ADDRS; fi
    for n in 1 2 3; do
        tpids=() ports=()
        for i in $(seq "$n"); do start_replica "$shards-$n-$i" "$yaml"; done
        # warm-up: buckets created, connections up
        for port in "${ports[@]}"; do
            wrk -t1 -c32 -d1s -s "$HERE/rotate-keys.lua" "http://127.0.0.1:$port/auth/x" \
                -- "$TMP/keys.txt" > /dev/null
        done
        tlist=$(IFS=,; echo "${tpids[*]}")
        t0=$(cpu_ticks "$tlist"); r0=$(cpu_ticks "$rp"); e0=$(evalsha_total "$ra"); b0=$(box_idle)
        wpids=()
        for i in $(seq "$n"); do
            ( TIMEFORMAT='wrk-cpu %U %S'
              { time wrk -t1 -c32 -d"${SECS}s" -s "$HERE/rotate-keys.lua" \
                  "http://127.0.0.1:${ports[$((i - 1))]}/auth/x" -- "$TMP/keys.txt" \
                  > "$TMP/wrk-$i.txt"; } 2>> "$TMP/wrk-$i.txt" ) &
            wpids+=("$!")
        done
        for p in "${wpids[@]}"; do wait "$p"; done
        t1=$(cpu_ticks "$tlist"); r1=$(cpu_ticks "$rp"); e1=$(evalsha_total "$ra"); b1=$(box_idle)
        cat "$TMP"/wrk-*.txt | awk -v n="$n" -v s="$SECS" -v hz="$HZ" -v sh="$shards" \
            -v t="$((t1 - t0))" -v r="$((r1 - r0))" -v e="$((e1 - e0))" -v b0="$b0" -v b1="$b1" '
            / requests in / { req += $1 }
            /Non-2xx or 3xx responses:/ { bad += $NF }
            $1 == "wrk-cpu" { w += $2 + $3 }
            END {
                split(b0, x, " "); split(b1, y, " ")
                idle = (y[2] > x[2] ? (y[1] - x[1]) * 100 / (y[2] - x[2]) : 0)
                tc = t / hz; rc = r / hz
                printf "%-9s %8d %9.0f %8.0f%% %8.0f%% %7.0f%% %4.0f%% %10.0f %10.0f %10.3f%s\n",
                    sh, n, req / s, tc * 100 / s, rc * 100 / s, w * 100 / s, idle,
                    (tc > 0 ? req / tc : 0), (rc > 0 ? req / rc : 0), (req > 0 ? e / req : 0),
                    (bad > 0 ? "  (" bad " non-2xx)" : "")
            }'
        rm -f "$TMP"/wrk-*.txt
        for pid in "${tpids[@]}"; do kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; done
    done
done
cat <<EOF

$(nproc) CPUs shared by every replica, every Redis node and every wrk.  Each replica:
threads 1, API keys ($NKEYS rotated), one limit that never denies, audit log on.
req/tg-cs, req/rd-cs: requests per CPU-second of all replicas / of all Redis
nodes (3 primaries + 3 replicas for 3 shards).  calls/req: EVALSHA per request.
EOF
