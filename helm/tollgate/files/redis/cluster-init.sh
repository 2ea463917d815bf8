#!/bin/sh
# One-shot (Job redis-cluster-init): form the Redis Cluster of the StatefulSet
# redis-cluster once all its nodes are up; do nothing if it is formed already.
#   1. wait until every node's name resolves and the node answers PING;
#   2. if every node already sees a healthy cluster of all nodes: done;
#      if every node is empty (knows only itself): redis-cli --cluster create
#      with their IP addresses (redis-cli --cluster needs addresses, not names)
#      and one replica per primary;
#      otherwise (partly formed, e.g. a previous attempt still settling) do not
#      touch it;
#   3. wait until every node reports cluster_state:ok and knows all nodes.
# Bounded by WAIT_SECONDS overall; exits non-zero (the Job retries) otherwise.
#
# Environment: REPLICAS (6), STATEFULSET (redis-cluster), SERVICE
# (redis-cluster-headless), PORT (6379), WAIT_SECONDS (600), PASSWORD_FILE
# (/etc/redis-auth/redis-password); NODES="host:port ..." replaces the names
# derived from the others (for trying this outside Kubernetes).
set -eu
n="${REPLICAS:-6}"
sts="${STATEFULSET:-redis-cluster}"
svc="${SERVICE:-redis-cluster-headless}"
port="${PORT:-6379}"
wait_s="${WAIT_SECONDS:-600}"
if [ -z "${NODES:-}" ]; then
    NODES=""
    i=0
    while [ "$i" -lt "$n" ]; do NODES="$NODES $sts-$i.$svc:$port"; i=$((i + 1)); done
fi
# shellcheck disable=SC2086 # a word list
n=$(printf '%s\n' $NODES | grep -c .)
REDISCLI_AUTH="$(cat "${PASSWORD_FILE:-/etc/redis-auth/redis-password}")"
[ -n "$REDISCLI_AUTH" ] || { echo "cluster-init: the Secret redis-auth has an empty redis-password" >&2; exit 1; }
export REDISCLI_AUTH
deadline=$(( $(date +%s) + wait_s ))

log() { echo "cluster-init: $*"; }
cli() { _a="$1"; shift; redis-cli -h "${_a%:*}" -p "${_a##*:}" "$@" 2>&1 | tr -d '\r'; }
field() { cli "$1" cluster info | sed -n "s/^$2://p"; }
out_of_time() { [ "$(date +%s)" -ge "$deadline" ]; }

# 1. every node resolves and answers PING
while :; do
    addrs="" up=0 last=""
    for hp in $NODES; do
        h="${hp%:*}" p="${hp##*:}"
        ip="$(getent hosts "$h" | awk 'NR == 1 { print $1 }')" || ip=""
        if [ -z "$ip" ]; then last="$h does not resolve"; continue; fi
        r="$(cli "$ip:$p" ping)"
        if [ "$r" = PONG ]; then
            up=$((up + 1)) addrs="$addrs $ip:$p"
        else
            last="$h ($ip:$p) answers '$r'"
        fi
    done
    [ "$up" -eq "$n" ] && break
    if out_of_time; then log "gave up after ${wait_s}s: $up of $n nodes answer PING; $last"; exit 1; fi
    log "$up of $n nodes answer PING ($last); waiting"
    sleep 3
done
log "all $n nodes answer PING:$addrs"

# 2. formed, empty, or in between?
healthy=0 empty=0
for a in $addrs; do
    known="$(field "$a" cluster_known_nodes)" state="$(field "$a" cluster_state)"
    [ "$known" = "$n" ] && [ "$state" = ok ] && healthy=$((healthy + 1))
    [ "$known" = 1 ] && [ "$(field "$a" cluster_slots_assigned)" = 0 ] && empty=$((empty + 1))
done
if [ "$healthy" -eq "$n" ]; then
    log "already formed: every node reports cluster_state:ok with $n known nodes; nothing to do"
    exit 0
elif [ "$empty" -eq "$n" ]; then
    log "creating the cluster: redis-cli --cluster create$addrs --cluster-replicas 1 --cluster-yes"
    # shellcheck disable=SC2086
    redis-cli --cluster create $addrs --cluster-replicas 1 --cluster-yes
else
    log "partly formed ($healthy of $n nodes healthy, $empty empty): not creating; waiting for it to settle"
fi

# 3. every node: cluster_state ok, all nodes known
while :; do
    ok=0 last=""
    for a in $addrs; do
        known="$(field "$a" cluster_known_nodes)" state="$(field "$a" cluster_state)"
        if [ "$known" = "$n" ] && [ "$state" = ok ]; then ok=$((ok + 1)); else last="$a: state $state, $known known"; fi
    done
    if [ "$ok" -eq "$n" ]; then log "cluster_state:ok on all $n nodes"; exit 0; fi
    if out_of_time; then
        log "gave up after ${wait_s}s: $ok of $n nodes healthy ($last).  CLUSTER NODES of one node:"
        # shellcheck disable=SC2086
        set -- $addrs
        cli "$1" cluster nodes | sed "s/^/cluster-init:   /" || true
        log "an empty replacement node (lost volume) is not added automatically: see k8s/README.md"
        exit 1
    fi
    sleep 2
done
