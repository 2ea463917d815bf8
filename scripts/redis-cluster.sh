#!/usr/bin/env bash
# A real 6-node Redis Cluster (3 primaries + 3 replicas) on free loopback ports,
# for tests and local runs.
#
#   scripts/redis-cluster.sh up     [DIR]   start, create, wait; print the seeds
#   scripts/redis-cluster.sh down   [DIR]   stop exactly the PIDs started in DIR
#   scripts/redis-cluster.sh status [DIR]   one line per node; exit 1 if not all up
#
# DIR (default build/redis-cluster) holds node-PORT/{redis.conf,redis.pid,
# redis.log,nodes.conf}, create.log and `seeds`.  `up` prints the seeds on
# stdout as "127.0.0.1:PORT ..." (one line); everything else goes to stderr.
# `up` returns only when cluster_state:ok is seen on every node and
# master_link_status:up on every replica (bounded: REDIS_CLUSTER_WAIT, 20 s),
# so a failover test can kill a primary right away.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMD=${1:-}
DIR=${2:-$ROOT/build/redis-cluster}
NODES=6
WAIT_S=${REDIS_CLUSTER_WAIT:-20}
HOST=127.0.0.1

log() { echo "redis-cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }

usage() {
    echo "usage: $0 up|down|status [DIR]" >&2
    exit 2
}

# Is $1 running?  A zombie is not: a daemonized node's parent is init, which
# may be slow to reap it.
alive() {
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# The PID in $1's pidfile if that process is alive and is a redis-server.
live_pid() {
    local f=$1 pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q redis-server || return 1
    echo "$pid"
}

node_ports() {
    local d
    for d in "$DIR"/node-*; do
        if [ -d "$d" ]; then echo "${d##*/node-}"; fi
    done | sort -n
}

cli() {
    local port=$1
    shift
    redis-cli -h "$HOST" -p "$port" "$@" 2>/dev/null
}

# Stop every node of DIR by the PID in its pidfile: TERM, then KILL after 5 s.
stop_nodes() {
    local port pid pids=()
    for port in $(node_ports); do
        if pid=$(live_pid "$DIR/node-$port/redis.pid"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        rm -f "$DIR/node-$port/redis.pid"
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 100); do
            alive "$pid" || break
            sleep 0.05
        done
        if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
}

# NODES random ports in 10000-21999 whose cluster bus port (+10000) is free
# too; both stay below the ephemeral range (32768+).
pick_ports() {
    local used p picked=() tries=0
    used=" $(ss -Htan 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]}' |
        sort -un | tr '\n' ' ') "
    while [ ${#picked[@]} -lt $NODES ] && [ $tries -lt 1000 ]; do
        tries=$((tries + 1))
        p=$((10000 + RANDOM % 12000))
        case "$used ${picked[*]} " in
        *" $p "* | *" $((p + 10000)) "*) continue ;;
        esac
        picked+=("$p")
    done
    [ ${#picked[@]} -eq $NODES ] || return 1
    echo "${picked[@]}"
}

write_conf() {
    local port=$1 d="$DIR/node-$1"
    mkdir -p "$d"
    cat > "$d/redis.conf" <<EOF
port $port
bind $HOST
daemonize yes
pidfile $d/redis.pid
logfile $d/redis.log
dir $d
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 1000
repl-diskless-sync-delay 0
appendonly no
save ""
EOF
    # Redis 7: allow DEBUG from loopback (tests: DEBUG SLEEP), and do not
    # let a primary's shutdown wait for its replicas (`down` stays quick).
    if [ "$REDIS_MAJOR" -ge 7 ]; then
        printf 'enable-debug-command local\nshutdown-timeout 0\n' >> "$d/redis.conf"
    fi
}

# Start one node per port; 0 when every node wrote its pidfile and answers
# PING as itself (so a port taken by someone else in the meantime is noticed).
start_nodes() {
    local port pid ok
    for port in "$@"; do
        write_conf "$port"
        redis-server "$DIR/node-$port/redis.conf" || return 1
    done
    for port in "$@"; do
        ok=0
        for _ in $(seq 1 100); do
            if pid=$(live_pid "$DIR/node-$port/redis.pid") &&
                [ "$(cli "$port" info server | tr -d '\r' |
                    sed -n 's/^process_id://p')" = "$pid" ]; then
                ok=1
                break
            fi
            sleep 0.05
        done
        if [ $ok -ne 1 ]; then
            log "node $port did not start: $(tail -n 3 "$DIR/node-$port/redis.log" 2>/dev/null)"
            return 1
        fi
    done
}

cluster_ready() {
    local port info repl masters=0 replicas=0
    for port in "$@"; do
        info=$(cli "$port" cluster info | tr -d '\r') || return 1
        grep -q '^cluster_state:ok$' <<< "$info" || return 1
        grep -q "^cluster_known_nodes:$NODES\$" <<< "$info" || return 1
        repl=$(cli "$port" info replication | tr -d '\r') || return 1
        if grep -q '^role:master$' <<< "$repl"; then
            masters=$((masters + 1))
        elif grep -q '^master_link_status:up$' <<< "$repl"; then
            replicas=$((replicas + 1))
        else
            return 1
        fi
    done
    [ $masters -eq $((NODES / 2)) ] && [ $replicas -eq $((NODES / 2)) ]
}

seeds_of() {
    local port out=()
    for port in "$@"; do out+=("$HOST:$port"); done
    echo "${out[*]}"
}

cmd_up() {
    local attempt port end ports=()
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    read -r -a ports <<< "$(node_ports | tr '\n' ' ')"
    if [ ${#ports[@]} -gt 0 ] && cmd_status > /dev/null 2>&1; then
        log "already up in $DIR"
        seeds_of "${ports[@]}"
        return 0
    fi
    stop_nodes
    rm -rf "$DIR"/node-* "$DIR/seeds" "$DIR/create.log"
    for attempt in 1 2 3; do
        read -r -a ports <<< "$(pick_ports)" || die "no free ports"
        [ ${#ports[@]} -eq $NODES ] || die "no free ports"
        if start_nodes "${ports[@]}"; then
            break
        fi
        log "attempt $attempt failed, retrying on other ports"
        stop_nodes
        rm -rf "$DIR"/node-*
        ports=()
    done
    [ ${#ports[@]} -eq $NODES ] || die "could not start $NODES nodes"

    local addrs=()
    for port in "${ports[@]}"; do addrs+=("$HOST:$port"); done
    if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 \
        --cluster-yes > "$DIR/create.log" 2>&1; then
        log "cluster create failed:"
        tail -n 20 "$DIR/create.log" >&2
        stop_nodes
        exit 1
    fi

    end=$((SECONDS + WAIT_S))
    until cluster_ready "${ports[@]}"; do
        if [ $SECONDS -ge $end ]; then
            log "cluster not ready after ${WAIT_S}s (state ok + replicas linked)"
            for port in "${ports[@]}"; do
                log "  $port: $(cli "$port" cluster info | tr -d '\r' | grep cluster_state)" \
                    "$(cli "$port" info replication | tr -d '\r' | grep -E '^(role|master_link_status)')"
            done
            stop_nodes
            exit 1
        fi
        sleep 0.1
    done
    seeds_of "${ports[@]}" | tee "$DIR/seeds"
}

cmd_down() {
    [ -d "$DIR" ] || return 0
    DIR=$(cd "$DIR" && pwd)
    stop_nodes
    rm -f "$DIR/seeds"
}

cmd_status() {
    local port pid up=0 total=0 state role
    [ -d "$DIR" ] || { echo "down: no $DIR"; return 1; }
    for port in $(node_ports); do
        total=$((total + 1))
        if pid=$(live_pid "$DIR/node-$port/redis.pid"); then
            state=$(cli "$port" cluster info | tr -d '\r' | sed -n 's/^cluster_state://p')
            role=$(cli "$port" info replication | tr -d '\r' | sed -n 's/^role://p')
            echo "$HOST:$port pid=$pid role=${role:-?} cluster_state=${state:-?}"
            up=$((up + 1))
        else
            echo "$HOST:$port down"
        fi
    done
    [ $total -eq $NODES ] && [ $up -eq $NODES ]
}

command -v redis-server > /dev/null || die "redis-server not found (make deps)"
command -v redis-cli > /dev/null || die "redis-cli not found (make deps)"
REDIS_MAJOR=$(redis-server --version | sed -n 's/.* v=\([0-9]*\).*/\1/p')
REDIS_MAJOR=${REDIS_MAJOR:-0}

case "$CMD" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*) usage ;;
esac
