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
