# lib-debian.sh — sourced by scripts/image.sh and scripts/test-fresh.sh (both
# debootstrap a Debian root from the machine's own mirror).  The caller
# defines say() and die() first.

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# First URI of an apt source whose path ends in /debian (or /debian-security).
apt_uri() {
    local want="$1" f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v want="$want" '
            /^[[:space:]]*#/ { next }
            $1 == "URIs:" || $1 == "deb" {
                for (i = 2; i <= NF; i++) {
                    u = $i; sub(/\/+$/, "", u)
                    if (u ~ /^https?:\/\// && u ~ ("/" want "$")) { print u; exit }
                }
            }' "$f"
    done | head -n 1
}

mirror() {
    local m="${DEBIAN_MIRROR:-$(apt_uri debian)}"
    [ -n "$m" ] || die "no Debian mirror found in /etc/apt/sources*; set DEBIAN_MIRROR"
    echo "$m"
}

# rm_tree DIR: unmount what is mounted under DIR (deepest first; lazily when
# busy), then remove it, never crossing into another file system.
rm_tree() {
    local d="$1" m
    [ -d "$d" ] || return 0
    for m in $(findmnt -rn -o TARGET | grep -F "$d/" | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" || true
    done
    if findmnt -rn -o TARGET | grep -qF "$d/"; then
        say "not removing $d: something is still mounted under it"
        return 0
    fi
    rm -rf --one-file-system "$d"
}

# wait_200 PID URL SECONDS BODY: poll URL (its body into BODY) until it
# answers 200, PID has exited, or SECONDS have passed; print the last status.
wait_200() {
    local pid="$1" url="$2" body="$4" code="" deadline
    deadline=$(( $(date +%s) + $3 ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        kill -0 "$pid" 2>/dev/null || break
        code="$(curl -s -m 5 -o "$body" -w '%{http_code}' "$url" || true)"
        [ "$code" = 200 ] && break
        sleep 0.2
    done
    echo "$code"
}
