#!/usr/bin/env bash
# `make bench`: wrk against yardsticks and against tollgate's /auth, all in
# one run so the ratios compare like with like, then one table:
#
#   nginx               nginx `return 200` (one worker)           yardstick
#   tollgate-memory     tollgate /auth, memory backend            vs nginx
#   bare-evalsha        tests/bench/bare_evalsha.c: one thread,   yardstick
#                       evhttp + hiredis async EVALSHA of
#                       lua/bucket.lua, standalone Redis
#   tollgate-redis      tollgate /auth, standalone Redis          vs bare-evalsha
#   tollgate-cluster    tollgate /auth, 6-node Redis Cluster      vs bare-evalsha
#   tollgate-proxy      (BENCH_PROXY=1) tollgate proxying to the nginx
#                       yardstick, memory backend                 vs nginx
#   tollgate-jwt-rs256  tollgate /auth, memory backend, one RS256
#                       token repeated (verified-token cache on)  vs memory
#   tollgate-jwt-nocache the same with the cache off (cache_entries 0):
#                       one RS256 signature check per request     vs memory
#   tollgate-deny       standalone Redis, every request over its
#                       limit (its 429s are the "errors"): the
#                       over-limit cache's row                    vs redis
#   tollgate-hotkey     standalone Redis, one API key for all load vs redis
#   tollgate-redis-1thread  standalone Redis, --threads 1         vs redis
#   tollgate-hotkey-leased  the hot key with consistency: leased  vs redis
#
# Columns besides req/s and latency: req/cpu-s = requests per CPU-second of
# the server under test (the fair figure on a shared machine), evalsha/req =
# script calls Redis ran per request (INFO commandstats before and after the
# run, every node of the cluster).
#
# Before the table, tests/bench/jwt_verify.c prints the cost of one
# verification per algorithm (RS256, PS256, ES256, EdDSA) through tollgate's
# verifier, with and without the cache; after it, the JWT rows' cache hit
# rate from /metrics.
#
# Every row: wrk -t1 -cCONNS --latency with rotate-keys.lua over NKEYS API
# keys (one bucket per key).  tollgate: API key auth, limits that never deny
# (on_redis_error: closed, so a Redis failure shows up as an error, never as a
# silent local fallback), audit log on (to a file).  Each row is measured
# REPEAT times in round-robin passes (all rows, then all rows again) and the
# best req/s is kept, with the p50/p99 of that same run.  The CPU columns are
# the CPU time each party used during the kept run (100 % = one core).
#
# Usage: tests/bench/run.sh BIN   (BIN = build/tollgate)
#   BENCH_SECONDS     seconds per measured run (10)
#   BENCH_REPEAT      passes; best kept (2)
#   BENCH_CONNECTIONS wrk connections (64)      BENCH_THREADS  wrk threads (1)
#   BENCH_KEYS        API keys rotated (1000)   BENCH_TG_THREADS tollgate threads (2)
#   BENCH_PROXY=1     add the tollgate-proxy row
#   BENCH_PERF=1      afterwards, perf record (cpu-clock, -g) tollgate under the
#                     memory and standalone-Redis loads (and the Redis server in
#                     the latter); top symbols printed, reports kept in
#                     build/bench/perf-*.txt.  Not part of the measured runs.
#   KEEP_TMP=1        keep the temporary directory (wrk outputs, logs)
# Loopback only; everything started is stopped by PID on exit.
set -euo pipefail
BIN=${1:?usage: run.sh BIN}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECS=${BENCH_SECONDS:-${BENCH_DURATION:-10}}
SECS=${SECS%s}
REPEAT=${BENCH_REPEAT:-2}
CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_THREADS:-1}
NKEYS=${BENCH_KEYS:-1000}
TG_THREADS=${BENCH_TG_THREADS:-2}
PERF_SECS=${BENCH_PERF_SECONDS:-5}
[[ $SECS =~ ^[0-9]+$ && $SECS -ge 1 ]] || { echo "bench: BENCH_SECONDS must be a whole number >= 1" >&2; exit 2; }
[[ $REPEAT =~ ^[0-9]+$ && $REPEAT -ge 1 ]] || { echo "bench: BENCH_REPEAT must be >= 1" >&2; exit 2; }

for t in wrk nginx python3 curl redis-server redis-cli cc pkg-config; do
    command -v "$t" >/dev/null || { echo "bench: $t not found (make deps)" >&2; exit 1; }
done
pkg-config --exists libevent hiredis ||
    { echo "bench: pkg-config cannot find libevent/hiredis (make deps)" >&2; exit 1; }

# ---- the bare yardstick, built next to tollgate
BARE=$ROOT/build/bench/bare_evalsha
if [ ! -x "$BARE" ] || [ "$HERE/bare_evalsha.c" -nt "$BARE" ]; then
    mkdir -p "$ROOT/build/bench"
    # shellcheck disable=SC2046
    cc -std=c11 -O2 -g -Wall -Wextra -o "$BARE" "$HERE/bare_evalsha.c" \
        $(pkg-config --cflags --libs libevent hiredis)
fi

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
    # Both scripts stop exactly the PIDs recorded in their directory.
    if [ -d "$TMP/redis" ]; then "$ROOT/scripts/redis-standalone.sh" down "$TMP/redis" || true; fi
    if [ -d "$TMP/cluster" ]; then "$ROOT/scripts/redis-cluster.sh" down "$TMP/cluster" || true; fi
    if [ -n "${KEEP_TMP:-}" ]; then echo "bench: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=tests/bench/lib.sh
. "$HERE/lib.sh"

# ---- API keys (plain for wrk, hashed for tollgate)
gen_keys "$TMP" "$NKEYS" bench scopes=bench:read
FIRST_KEY=$(head -1 "$TMP/keys.txt")

# ---- JWTs: a JWKS of one key per algorithm and a token each (openssl CLI,
# tests/integration/jose.py); the RS256 one is what the JWT rows send.
TOLLGATE_BIN="$BIN" python3 - "$TMP" "$ROOT/tests/integration" <<'PY'
import os, sys
tmp = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from jose import Key, jwks, token
keys = {"RS256": Key("rsa", "rs"), "PS256": Key("rsa", "ps"), "ES256": Key("ec256", "es"),
        "EdDSA": Key("ed25519", "ed")}
with open(os.path.join(tmp, "jwks.json"), "w") as f:
    f.write(jwks(*[k.jwk(a) for a, k in keys.items()]))
toks = {a: token(k, a, {"sub": "bench-user", "scope": "bench:read"},
                 iss="https://bench.test", aud="tollgate", lifetime=86400)
        for a, k in keys.items()}
with open(os.path.join(tmp, "tokens.txt"), "w") as f:
    for a, t in toks.items():
        f.write("%s %s\n" % (a, t))
with open(os.path.join(tmp, "bearer.txt"), "w") as f:
    f.write("Bearer %s\n" % toks["RS256"])
PY
JWT_BENCH=$ROOT/build/bench/jwt_verify
# shellcheck disable=SC2046
cc -std=c11 -O2 -g -D_GNU_SOURCE -I"$ROOT/include" -o "$JWT_BENCH" "$HERE/jwt_verify.c" \
    "$ROOT/build/libtollgate.a" $(pkg-config --cflags --libs libevent libevent_openssl \
    libevent_pthreads hiredis openssl jansson libcurl libjwt yaml-0.1) -lm -pthread
echo "bench: one JWT verification through tollgate's verifier (2000 runs each; cached: 40000)" >&2
JWT_COSTS=$("$JWT_BENCH" "$TMP/jwks.json" "$TMP/tokens.txt" 2000)

# ---- nginx yardstick
NGX_PORT=$(free_port)
mkdir -p "$TMP/nginx"
sed -e "s|@DIR@|$TMP/nginx|g" -e "s|@PORT@|$NGX_PORT|g" "$HERE/nginx.conf.in" > "$TMP/nginx/nginx.conf"
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" 2> "$TMP/nginx/stderr.log" &
NGX_PID=$!
PIDS+=("$NGX_PID")
wait_http "http://127.0.0.1:$NGX_PORT/" || { cat "$TMP/nginx/stderr.log" >&2; exit 1; }

# ---- Redis: one standalone server, one 6-node cluster (temporary dirs)
echo "bench: starting redis-server and a 6-node Redis Cluster" >&2
REDIS_ADDR=$("$ROOT/scripts/redis-standalone.sh" up "$TMP/redis")
REDIS_PID=$(cat "$TMP/redis/redis.pid")
CLUSTER_SEEDS=$("$ROOT/scripts/redis-cluster.sh" up "$TMP/cluster")
CLUSTER_PIDS=$(cat "$TMP"/cluster/node-*/redis.pid | tr '\n' ' ')

# ---- bare evhttp + hiredis EVALSHA loop on the standalone server
BARE_PORT=$(free_port)
"$BARE" "$BARE_PORT" "${REDIS_ADDR%:*}" "${REDIS_ADDR##*:}" "$ROOT/lua/bucket.lua" \
    > "$TMP/bare.out" 2> "$TMP/bare.err" &
BARE_PID=$!
PIDS+=("$BARE_PID")
wait_http "http://127.0.0.1:$BARE_PORT/" -H "X-API-Key: $FIRST_KEY" ||
    { cat "$TMP/bare.err" >&2; exit 1; }

# ---- tollgate: three instances (memory, standalone, cluster)
declare -A TG_PORT TG_ADMIN TG_PID
start_tollgate() { # NAME REDIS-YAML [JWT-CACHE-ENTRIES] [THREADS] [CONSISTENCY]
    local name=$1 redis=$2 cache=${3:-10000} threads=${4:-$TG_THREADS}
    local consistency=${5:-exact} port admin code
    port=$(free_port)
    admin=$(free_port)
    cat > "$TMP/tollgate-$name.yaml" <<YAML
environment: development
listen: "127.0.0.1:$port"
admin_listen: "127.0.0.1:$admin"
threads: $threads
redis: $redis
auth:
  mode: any
  api_keys_file: "$TMP/api-keys"
  lockout: {max_failures: 0}
  jwt:
    cache_entries: $cache
    providers:
      - {name: bench, issuer: "https://bench.test", audiences: [tollgate],
         algorithms: [RS256, PS256, ES256, EdDSA], keys_file: "$TMP/jwks.json"}
limits:
  - name: default
    match: {}
    by: [client]
    rate: 10000000/minute
    on_redis_error: closed
    consistency: $consistency
  - name: deny
    match: {path_prefix: /deny}
    by: [client]
    rate: 1/hour
    on_redis_error: closed
routes:
  - name: proxied
    match: {path_prefix: /proxy/}
    upstream: "http://127.0.0.1:$NGX_PORT"
    auth: required
audit: {path: "$TMP/audit-$name.log"}
YAML
    ADMIN_TOKEN=bench-admin-token-0123456789 "$BIN" --config "$TMP/tollgate-$name.yaml" \
        > "$TMP/tollgate-$name.out" 2> "$TMP/tollgate-$name.err" &
    TG_PID[$name]=$!
    PIDS+=("$!")
    TG_PORT[$name]=$port
    TG_ADMIN[$name]=$admin
    wait_http "http://127.0.0.1:$admin/readyz" || { tail -20 "$TMP/tollgate-$name.err" >&2; exit 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $FIRST_KEY" \
        "http://127.0.0.1:$port/auth/bench")
    [ "$code" = 200 ] || { echo "bench: tollgate ($name) answered $code to a bench key" >&2; exit 1; }
}
start_tollgate memory "{mode: none}"
start_tollgate jwtnocache "{mode: none}" 0
start_tollgate redis "{mode: standalone, nodes: [\"$REDIS_ADDR\"]}"
start_tollgate cluster "{mode: cluster, nodes: [$(sed 's/\([^ ]*\)/"\1"/g; s/ /, /g' <<< "$CLUSTER_SEEDS")]}"
start_tollgate redis1 "{mode: standalone, nodes: [\"$REDIS_ADDR\"]}" 10000 1
start_tollgate leased "{mode: standalone, nodes: [\"$REDIS_ADDR\"]}" 10000 "$TG_THREADS" leased
head -1 "$TMP/keys.txt" > "$TMP/hot.txt"

# ---- rows: NAME URL BASELINE SERVER-PIDS REDIS-PIDS CREDENTIALS REDIS-ADDRS
# CREDENTIALS: keys (NKEYS API keys rotated), bearer (one RS256 token), hot
# (one API key); REDIS-ADDRS: the nodes whose EVALSHA calls are counted.
CLUSTER_ADDRS=$(tr ' ' ',' <<< "$CLUSTER_SEEDS")
ROWS=(
    "nginx http://127.0.0.1:$NGX_PORT/ - $NGX_PID - keys -"
    "tollgate-memory http://127.0.0.1:${TG_PORT[memory]}/auth/bench nginx ${TG_PID[memory]} - keys -"
    "bare-evalsha http://127.0.0.1:$BARE_PORT/ - $BARE_PID $REDIS_PID keys $REDIS_ADDR"
    "tollgate-redis http://127.0.0.1:${TG_PORT[redis]}/auth/bench bare-evalsha ${TG_PID[redis]} $REDIS_PID keys $REDIS_ADDR"
    "tollgate-cluster http://127.0.0.1:${TG_PORT[cluster]}/auth/bench bare-evalsha ${TG_PID[cluster]} ${CLUSTER_PIDS// /,} keys $CLUSTER_ADDRS"
    "tollgate-jwt-rs256 http://127.0.0.1:${TG_PORT[memory]}/auth/bench tollgate-memory ${TG_PID[memory]} - bearer -"
    "tollgate-jwt-nocache http://127.0.0.1:${TG_PORT[jwtnocache]}/auth/bench tollgate-memory ${TG_PID[jwtnocache]} - bearer -"
    "tollgate-deny http://127.0.0.1:${TG_PORT[redis]}/auth/deny tollgate-redis ${TG_PID[redis]} $REDIS_PID keys $REDIS_ADDR"
    "tollgate-hotkey http://127.0.0.1:${TG_PORT[redis]}/auth/bench tollgate-redis ${TG_PID[redis]} $REDIS_PID hot $REDIS_ADDR"
    "tollgate-redis-1thread http://127.0.0.1:${TG_PORT[redis1]}/auth/bench tollgate-redis ${TG_PID[redis1]} $REDIS_PID keys $REDIS_ADDR"
    "tollgate-hotkey-leased http://127.0.0.1:${TG_PORT[leased]}/auth/bench tollgate-redis ${TG_PID[leased]} $REDIS_PID hot $REDIS_ADDR"
)
if [ -n "${BENCH_PROXY:-}" ] && [ "$BENCH_PROXY" != 0 ]; then
    ROWS+=("tollgate-proxy http://127.0.0.1:${TG_PORT[memory]}/proxy/bench nginx ${TG_PID[memory]},$NGX_PID - keys -")
fi

to_ms() { # "1.23ms" / "456.00us" / "1.02s" -> milliseconds
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "%s", v }'
}

HZ=$(getconf CLK_TCK)
box_ticks() { # "idle total" of the whole box from /proc/stat
    awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print $5 + $6, t; exit }' /proc/stat
}

wrk_run() { # URL SECONDS OUTFILE [CREDENTIALS]: wrk, with its own CPU time appended
    local TIMEFORMAT='wrk-cpu %U %S' creds="$TMP/keys.txt"
    [ "${4:-}" = bearer ] && creds="$TMP/bearer.txt"
    [ "${4:-}" = hot ] && creds="$TMP/hot.txt"
    { time wrk -t"$WRK_THREADS" -c"$CONNS" -d"$2s" --latency \
        -s "$HERE/rotate-keys.lua" "$1" -- "$creds" > "$3"; } 2>> "$3"
}

declare -A BEST
ALL_RUNS=()
measure() { # ROW PASS
    local name url base spids rpids creds raddrs f s0 r0 s1 r1 b0 b1 idle rps p50 p99 errs sock
    local wcpu e0 e1 nreq
    read -r name url base spids rpids creds raddrs <<< "$1"
    f="$TMP/wrk-$name-$2.txt"
    echo "bench: pass $2/$REPEAT  $name  ($url, ${SECS}s)" >&2
    e0=$(evalsha_total "${raddrs:--}")
    s0=$(cpu_ticks "$spids")
    r0=$(cpu_ticks "$rpids")
    b0=$(box_ticks)
    wrk_run "$url" "$SECS" "$f" "${creds:-}"
    b1=$(box_ticks)
    s1=$(cpu_ticks "$spids")
    r1=$(cpu_ticks "$rpids")
    e1=$(evalsha_total "${raddrs:--}")
    nreq=$(awk '/ requests in / {print $1}' "$f")
    idle=$(awk -v a="$b0" -v b="$b1" 'BEGIN { split(a, x, " "); split(b, y, " ");
        printf "%.0f", (y[2] > x[2] ? (y[1] - x[1]) * 100 / (y[2] - x[2]) : 0) }')
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
    errs=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$f")
    sock=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$f")
    errs=$((${errs:-0} + ${sock:-0}))
    wcpu=$(awk -v s="$SECS" '$1 == "wrk-cpu" {printf "%.0f", ($2 + $3) * 100 / s}' "$f")
    local scpu rcpu
    scpu=$(awk -v a="$s0" -v b="$s1" -v hz="$HZ" -v s="$SECS" 'BEGIN {printf "%.0f", (b - a) * 100 / hz / s}')
    rcpu=$(awk -v a="$r0" -v b="$r1" -v hz="$HZ" -v s="$SECS" 'BEGIN {printf "%.0f", (b - a) * 100 / hz / s}')
    [ "$rpids" = - ] && rcpu=-
    local percpu evreq
    percpu=$(awk -v r="${rps:-0}" -v c="$scpu" 'BEGIN { printf "%.0f", (c > 0 ? r * 100 / c : 0) }')
    evreq=-
    [ "${raddrs:--}" = - ] ||
        evreq=$(awk -v a="$e0" -v b="$e1" -v n="${nreq:-0}" 'BEGIN { printf "%.3f", (n > 0 ? (b - a) / n : 0) }')
    ALL_RUNS+=("$name:$(printf '%.0f' "${rps:-0}")")
    if [ -z "${BEST[$name]:-}" ] ||
        awk -v a="${rps:-0}" -v b="${BEST[$name]%% *}" 'BEGIN {exit !(a > b)}'; then
        BEST[$name]="${rps:-0} $p50 $p99 $scpu $rcpu ${wcpu:-?} $idle $errs $percpu $evreq"
    fi
}

# Warm-up (not measured): buckets and keys created, caches and connections hot.
for row in "${ROWS[@]}"; do
    read -r _ url _ _ _ creds _ <<< "$row"
    wrk_run "$url" 1 "$TMP/warmup.txt" "${creds:-}"
done
redis_calls() { # NAME: "result=count ..." from tollgate's /metrics
    curl -s "http://127.0.0.1:${TG_ADMIN[$1]}/metrics" |
        sed -n 's/^tollgate_redis_requests_total{result="\([a-z_]*\)"} \([0-9]*\).*/\1 \2/p'
}
declare -A CALLS0
for name in redis cluster; do CALLS0[$name]=$(redis_calls "$name"); done
for pass in $(seq "$REPEAT"); do
    for row in "${ROWS[@]}"; do
        measure "$row" "$pass"
    done
done

# ---- table
printf '\nOne JWT verification (us), tollgate verifier, this machine:\n%s\n' "$JWT_COSTS"
printf '\n%-22s %9s %7s %7s %17s %8s %9s %7s %5s %6s %9s %11s\n' target "req/s" "p50 ms" \
    "p99 ms" "ratio" "srv cpu" "redis cpu" "wrk cpu" idle errors "req/cpu-s" "evalsha/req"
for row in "${ROWS[@]}"; do
    read -r name _ base _ <<< "$row"
    read -r rps p50 p99 scpu rcpu wcpu idle errs percpu evreq <<< "${BEST[$name]}"
    if [ "$base" = - ]; then
        ratio="(yardstick)"
    else
        ratio=$(awk -v a="$rps" -v b="${BEST[$base]%% *}" -v n="${base#tollgate-}" \
            'BEGIN { printf "%.2f vs %s", (b > 0 ? a / b : 0), n }')
    fi
    [ "$rcpu" = - ] || rcpu="$rcpu%"
    printf '%-22s %9.0f %7s %7s %17s %7s%% %9s %6s%% %4s%% %6s %9s %11s\n' "$name" "$rps" \
        "$p50" "$p99" "$ratio" "$scpu" "$rcpu" "$wcpu" "$idle" "$errs" "$percpu" "$evreq"
done
cat <<EOF

wrk -t$WRK_THREADS -c$CONNS -d${SECS}s --latency, $NKEYS API keys rotated; best of $REPEAT
round-robin passes (p50/p99 from the kept run).  All runs: ${ALL_RUNS[*]}
$(nproc) CPUs shared by wrk, the server under test and Redis: compare rows within
this run only.  tollgate: threads $TG_THREADS, API key auth, audit log to a file,
limits that never deny, on_redis_error closed.  bare-evalsha: one thread, one
hiredis connection, EVALSHA bucket.lua per request, no auth/headers/audit.
cpu = CPU time during the kept run, 100% = one core (redis cpu: all 6 nodes
for the cluster row); loopback softirq work is not charged to any of them.
idle = idle share of the whole box (all CPUs) during that run.  The cluster's
3 primaries + 3 replicas share these $(nproc) CPUs too.
EOF

# Redis calls during the measured runs, by result (a failed call is a 503,
# counted under errors; shown so that nothing can hide).
for name in redis cluster; do
    m=$({ while read -r l; do [ -n "$l" ] && echo "- $l"; done <<< "${CALLS0[$name]}"
        redis_calls "$name"; } | awk '
        $1 == "-" { before[$2] = $3; next }
        NF == 2 { printf "%s %d  ", $1, $2 - before[$1] }')
    echo "tollgate-$name Redis calls during all measured passes: ${m:-none}"
done

# The JWT rows' verified-token cache, over warm-up and every pass.
for name in memory jwtnocache; do
    curl -s "http://127.0.0.1:${TG_ADMIN[$name]}/metrics" | awk -v n="$name" '
        /^tollgate_jwt_cache_total\{result="hit"\}/ { h = $2 }
        /^tollgate_jwt_cache_total\{result="miss"\}/ { m = $2 }
        END { t = h + m; printf "tollgate-%s JWT cache: %d hits, %d misses (%.2f%% hits)\n",
              n, h, m, (t > 0 ? h * 100 / t : 0) }'
done

# ---- optional profile (separate runs: perf costs throughput)
if [ -n "${BENCH_PERF:-}" ] && [ "$BENCH_PERF" != 0 ]; then
    if ! command -v perf >/dev/null || ! perf record -e cpu-clock -o "$TMP/perf-probe.data" true \
        >/dev/null 2>&1; then
        echo "bench: BENCH_PERF: perf not usable here, skipped" >&2
        exit 0
    fi
    profile() { # NAME URL PIDS
        local name=$1 url=$2 pids=$3 data="$TMP/perf-$1.data" rep="$ROOT/build/bench/perf-$1.txt"
        echo "bench: perf record ($name, ${PERF_SECS}s)" >&2
        wrk_run "$url" $((PERF_SECS + 2)) "$TMP/wrk-perf-$name.txt" &
        local wpid=$!
        sleep 1
        perf record -F 999 -e cpu-clock -g -p "$pids" -o "$data" -- sleep "$PERF_SECS" \
            >/dev/null 2>"$TMP/perf-$name.err" || true
        wait "$wpid" || true
        {
            echo "# perf record -F 999 -e cpu-clock -g -p $pids ($name under wrk load)"
            echo "## by process / shared object"
            perf report -i "$data" --stdio --no-children --sort comm,dso -g none 2>/dev/null |
                grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -15 || true
            echo "## top symbols (self)"
            perf report -i "$data" --stdio --no-children --sort comm,dso,symbol -g none \
                --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' |
                head -45 || true
        } > "$rep"
        echo
        head -40 "$rep" || true
        echo "(full: $rep)"
    }
    profile memory "http://127.0.0.1:${TG_PORT[memory]}/auth/bench" "${TG_PID[memory]}"
    profile redis "http://127.0.0.1:${TG_PORT[redis]}/auth/bench" "${TG_PID[redis]},$REDIS_PID"
    profile bare "http://127.0.0.1:$BARE_PORT/" "$BARE_PID,$REDIS_PID"
fi
