#!/usr/bin/env bash
# `make fuzz`: build every tests/fuzz/fuzz_NAME.c with libFuzzer + ASan + UBSan
# against the library sources and run each for FUZZ_SECONDS (default 20),
# seeded from tests/fuzz/seeds/NAME/ when present.  Exits non-zero when a
# target fails to build or a run finds a crash (the reproducer is left in
# build-fuzz/NAME/crash-*; replay it with `build-fuzz/NAME/fuzz_NAME FILE`).
#   Usage: fuzz.sh tests/fuzz/fuzz_NAME.c...
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
OUT=build-fuzz
CC_FUZZ=${CC_FUZZ:-clang}
PKGS="libevent libevent_openssl libevent_pthreads hiredis openssl jansson libcurl libjwt yaml-0.1"

if [ $# -eq 0 ]; then
    echo "fuzz: no tests/fuzz/fuzz_*.c targets"
    exit 0
fi
command -v "$CC_FUZZ" >/dev/null || { echo "fuzz: $CC_FUZZ not found (make deps)" >&2; exit 1; }

mkdir -p "$OUT/gen"
# shellcheck disable=SC2046
scripts/embed-lua.sh $(ls lua/*.lua 2>/dev/null | sort) > "$OUT/gen/lua_scripts.c"

# The library: util/ http/ redis/ auth/ limiter/ cfg/ decide/ server/ minus server/main.c, plus the
# embedded Lua scripts.
lib_srcs=()
for f in util/*.c http/*.c redis/*.c auth/*.c limiter/*.c cfg/*.c decide/*.c server/*.c; do
    [ -f "$f" ] && [ "$f" != server/main.c ] && lib_srcs+=("$f")
done
lib_srcs+=("$OUT/gen/lua_scripts.c")

read -r -a pkg_cflags <<< "$(pkg-config --cflags $PKGS)"
read -r -a pkg_libs <<< "$(pkg-config --libs $PKGS)"
CFLAGS=(-std=c11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -Iinclude -I"$OUT/gen" -pthread
        -fsanitize=address,undefined -fno-sanitize-recover=all "${pkg_cflags[@]}")

# Build the library once, instrumented for coverage (fuzzer-no-link), in
# parallel; every target links against these objects.
objs=()
pids=()
jobs_max=$(nproc)
for f in "${lib_srcs[@]}"; do
    o="$OUT/obj/${f%.c}.o"
    o=${o/obj\/$OUT\//obj/}
    objs+=("$o")
    mkdir -p "$(dirname "$o")"
    "$CC_FUZZ" "${CFLAGS[@]}" -fsanitize=fuzzer-no-link -c "$f" -o "$o" 2> "$o.log" &
    pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do sleep 0.05; done
done
lib_ok=1
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "fuzz: cannot compile ${lib_srcs[$i]}:" >&2
        grep -m5 error "${objs[$i]}.log" >&2 || true
        lib_ok=0
    fi
done
[ "$lib_ok" = 1 ] || { echo "fuzz: FAILED: the library does not build" >&2; exit 1; }

# One target: build it, run it for FUZZ_SECONDS; its output goes to
# $dir/job.log, its result to $dir/result ("ok", "build", "crash").
fuzz_one() {
    local src=$1 name dir
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    dir="$OUT/$name"
    mkdir -p "$dir/corpus"
    rm -f "$dir/result"
    if ! "$CC_FUZZ" "${CFLAGS[@]}" -fsanitize=fuzzer "$src" "${objs[@]}" -o "$dir/fuzz_$name" \
            "${pkg_libs[@]}" -lm > "$dir/build.log" 2>&1; then
        echo build > "$dir/result"
        return
    fi
    local seeds=()
    [ -d "tests/fuzz/seeds/$name" ] && seeds=("$PWD/tests/fuzz/seeds/$name")
    if ! (cd "$dir" && ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            "./fuzz_$name" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
            -artifact_prefix="./crash-" corpus "${seeds[@]}" > run.log 2>&1); then
        echo crash > "$dir/result"
        return
    fi
    echo ok > "$dir/result"
}

# Every target is one process on one core (libFuzzer without -jobs), so
# nproc of them run side by side: the same fuzzing time per target in
# 1/nproc of the wall time.
echo "== fuzz: $# targets, ${FUZZ_SECONDS}s each, $jobs_max at a time"
for src in "$@"; do
    fuzz_one "$src" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do sleep 0.2; done
done
wait

failed=()
for src in "$@"; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    dir="$OUT/$name"
    case "$(cat "$dir/result" 2>/dev/null || echo missing)" in
    ok)
        grep -E '^stat::number_of_executed_units' "$dir/run.log" | sed "s/^/   $name /" || true
        ;;
    build)
        echo "fuzz $name: build FAILED" >&2
        tail -n 20 "$dir/build.log" >&2
        failed+=("$name(build)")
        ;;
    crash)
        echo "fuzz $name: CRASH — see $dir/run.log and $dir/crash-*" >&2
        tail -n 40 "$dir/run.log" >&2
        failed+=("$name")
        ;;
    *)
        echo "fuzz $name: no result (the job died)" >&2
        failed+=("$name(lost)")
        ;;
    esac
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all $# targets ran ${FUZZ_SECONDS}s without a crash"
