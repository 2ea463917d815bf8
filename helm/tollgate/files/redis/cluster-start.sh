#!/bin/sh
# Starts one Redis Cluster node: the password of the Secret redis-auth
# (mounted at /etc/redis-auth) as requirepass and masterauth, and the pod's
# stable DNS name as cluster-announce-hostname, written into an emptyDir
# config include -- never on the command line, where `ps` would show the
# password.  Refuses an empty or odd password.
set -eu
pw="$(cat "${REDIS_PASSWORD_FILE:-/etc/redis-auth/redis-password}")"
case "$pw" in
    "")
        echo "redis-start: the Secret redis-auth has an empty redis-password: fill it (k8s/README.md)" >&2
        exit 1 ;;
    *[!A-Za-z0-9._+/=-]*)
        echo "redis-start: redis-password may hold only A-Z a-z 0-9 . _ + / = - (e.g. openssl rand -hex 32)" >&2
        exit 1 ;;
esac
: "${POD_NAME:?}" "${POD_NAMESPACE:?}"
host="${ANNOUNCE_HOSTNAME:-$POD_NAME.${SERVICE:-redis-cluster-headless}.$POD_NAMESPACE.svc.${CLUSTER_DOMAIN:-cluster.local}}"
umask 077
printf 'requirepass %s\nmasterauth %s\ncluster-announce-hostname %s\n' "$pw" "$pw" "$host" \
    > "${REDIS_RUN_DIR:-/run/redis}/auth.conf"
exec redis-server "${REDIS_CONF:-/etc/redis/redis.conf}"
