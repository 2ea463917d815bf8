#!/usr/bin/env bash
# One standalone redis-server on a free loopback port, for benches and local
# runs (the tests use tests/integration/redis_harness.py instead).
#
#   scripts/redis-standalone.sh up     [DIR]   start; print 127.0.0.1:PORT
#   scripts/redis-standalone.sh down   [DIR]   stop exactly the PID started in DIR
#   scripts/redis-standalone.sh status [DIR]   exit 1 unless it runs
#
# DIR (default build/redis-standalone) holds redis.conf, redis.pid, redis.log
# and `addr`.  Extra redis.conf lines may be given in REDIS_EXTRA_CONF.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMD=${1:-}
DIR=${2:-$ROOT/build/redis-standalone}
HOST=127.0.0.1

log() { echo "redis-standalone.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# Is $1 running (a zombie is not)?
alive() {
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

live_pid() {
    local pid
    [ -f "$DIR/redis.pid" ] || return 1
    pid=$(cat "$DIR/redis.pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q redis-server || return 1
    echo "$pid"
}

free_port() {
    local used p
    used=" $(ss -Htan 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]}' |
        sort -un | tr '\n' ' ') "
    for _ in $(seq 1 1000); do
        p=$((10000 + RANDOM % 12000))
        case "$used" in *" $p "*) continue ;; esac
        echo "$p"
        return 0
    done
    return 1
}

cmd_up() {
    local port pid attempt
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    if live_pid > /dev/null && [ -f "$DIR/addr" ]; then
        log "already up in $DIR"
        cat "$DIR/addr"
        return 0
    fi
    rm -f "$DIR/redis.pid" "$DIR/addr"
    for attempt in 1 2 3; do
        port=$(free_port) || die "no free port"
        cat > "$DIR/redis.conf" <<EOF
port $port
bind $HOST
daemonize yes
pidfile $DIR/redis.pid
logfile $DIR/redis.log
dir $DIR
appendonly no
save ""
${REDIS_EXTRA_CONF:-}
EOF
        redis-server "$DIR/redis.conf" || continue
        for _ in $(seq 1 100); do
            if pid=$(live_pid) &&
                [ "$(redis-cli -h $HOST -p "$port" info server 2>/dev/null | tr -d '\r' |
                    sed -n 's/^process_id://p')" = "$pid" ]; then
                echo "$HOST:$port" | tee "$DIR/addr"
                return 0
            fi
            sleep 0.05
        done
        log "attempt $attempt on port $port failed: $(tail -n 2 "$DIR/redis.log" 2>/dev/null)"
        cmd_down
    done
    die "redis-server did not start"
}

cmd_down() {
    local pid
    [ -d "$DIR" ] || return 0
    if pid=$(live_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            alive "$pid" || break
            sleep 0.05
        done
        if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$DIR/redis.pid" "$DIR/addr"
}

cmd_status() {
    local pid
    if pid=$(live_pid); then
        echo "$(cat "$DIR/addr" 2>/dev/null || echo '?') pid=$pid"
    else
        echo "down"
        return 1
    fi
}

command -v redis-server > /dev/null || die "redis-server not found (make deps)"
case "$CMD" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
    echo "usage: $0 up|down|status [DIR]" >&2
    exit 2
    ;;
esac
