#!/usr/bin/env bash
# `make fuzz`: build every tests/fuzz/fuzz_NAME.c with libFuzzer + ASan + UBSan
# against the library sources and run each for FUZZ_SECONDS (default 20),
# seeded from tests/fuzz/seeds/NAME/ when present.  Exits non-zero when a
# target fails to build or a run finds a crash (the reproducer is left in
# build-fuzz/NAME/).   Usage: fuzz.sh tests/fuzz/fuzz_NAME.c...
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
OUT=build-fuzz
CC_FUZZ=${CC_FUZZ:-clang}
PKGS="libevent libevent_openssl libevent_pthreads hiredis openssl jansson libjwt yaml-0.1"

if [ $# -eq 0 ]; then
    echo "fuzz: no tests/fuzz/fuzz_*.c targets"
    exit 0
fi
command -v "$CC_FUZZ" >/dev/null || { echo "fuzz: $CC_FUZZ not found (make deps)" >&2; exit 1; }

mkdir -p "$OUT/gen"
scripts/embed-lua.sh $(ls lua/*.lua 2>/dev/null | sort) > "$OUT/gen/lua_scripts.c"

lib_srcs=()
for f in util/*.c auth/*.c limiter/*.c server/*.c; do
    [ -f "$f" ] || continue
    [ "$f" = server/main.c ] && continue
    lib_srcs+=("$f")
done

CFLAGS=(-std=c11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -Iinclude -I"$OUT/gen"
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -pthread)
read -r -a pkg_cflags <<< "$(pkg-config --cflags $PKGS)"
read -r -a pkg_libs <<< "$(pkg-config --libs $PKGS)"

failed=()
for src in "$@"; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    dir="$OUT/$name"
    mkdir -p "$dir/corpus"
    echo "== fuzz $name: build"
    if ! "$CC_FUZZ" "${CFLAGS[@]}" "${pkg_cflags[@]}" "$src" "${lib_srcs[@]}" \
            "$OUT/gen/lua_scripts.c" -o "$dir/fuzz_$name" "${pkg_libs[@]}" -lm; then
        echo "fuzz $name: build FAILED" >&2
        failed+=("$name(build)")
        continue
    fi
    seeds=()
    [ -d "tests/fuzz/seeds/$name" ] && seeds=("$PWD/tests/fuzz/seeds/$name")
    echo "== fuzz $name: run ${FUZZ_SECONDS}s"
    if ! (cd "$dir" && ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            "./fuzz_$name" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
            -artifact_prefix="./crash-" corpus \
            "${seeds[@]}" > run.log 2>&1); then
        echo "fuzz $name: CRASH — see $dir/run.log and $dir/crash-*" >&2
        tail -n 40 "$dir/run.log" >&2
        failed+=("$name")
        continue
    fi
    grep -E '^stat::number_of_executed_units' "$dir/run.log" | sed "s/^/   $name /" || true
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all $# targets ran ${FUZZ_SECONDS}s without a crash"
