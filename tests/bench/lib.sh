# shellcheck shell=bash
# Helpers shared by the bench scripts (run.sh, scale.sh); sourced, not run.
# Loopback only.

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL [CURL ARGS]: wait (bounded, 10 s) until it answers 200
    local url=$1
    shift
    for _ in $(seq 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url" 2>/dev/null)" = 200 ] && return 0
        sleep 0.1
    done
    echo "bench: $url did not come up" >&2
    return 1
}

evalsha_total() { # ADDRS (comma list, "-" none): EVALSHA calls so far, summed
    local a total=0 n
    [ "$1" = - ] && { echo 0; return; }
    for a in ${1//,/ }; do
        n=$(redis-cli -h "${a%:*}" -p "${a##*:}" INFO commandstats 2>/dev/null |
            sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\).*/\1/p')
        total=$((total + ${n:-0}))
    done
    echo "$total"
}

# CPU ticks (user + system, all threads) used so far by a comma-separated
# list of PIDs and their direct children (nginx's worker); "-" is 0.
cpu_ticks() {
    local list=$1 pid kid total=0 t
    [ "$list" = - ] && { echo 0; return; }
    for pid in ${list//,/ }; do
        for kid in $pid $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
            t=$(awk '{print $14 + $15}' "/proc/$kid/stat" 2>/dev/null) || t=0
            total=$((total + ${t:-0}))
        done
    done
    echo "$total"
}

# DIR N PREFIX [EXTRA]: N random API keys, plain in DIR/keys.txt (for wrk) and
# as key-file lines "PREFIX-NNNNN DIGEST EXTRA" in DIR/api-keys (for tollgate).
gen_keys() {
    python3 -c '
import hashlib, os, sys
tmp, n, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
extra = (" " + sys.argv[4]) if len(sys.argv) > 4 else ""
with open(os.path.join(tmp, "keys.txt"), "w") as plain, \
        open(os.path.join(tmp, "api-keys"), "w") as kf:
    for i in range(n):
        key = "%s-%05d-%s" % (prefix, i, os.urandom(12).hex())
        plain.write(key + "\n")
        kf.write("%s-%05d %s%s\n" % (prefix, i, hashlib.sha256(key.encode()).hexdigest(), extra))
' "$@"
}
