#!/usr/bin/env bash
# Build and run a subset of the CUnit suites with only the sources named, so a
# module can be tested while other modules are mid-change.  ASan + UBSan on.
#   scripts/unit-one.sh SUITE[,SUITE...] SOURCE.c...
#   e.g. scripts/unit-one.sh rl_bucket limiter/rl_bucket.c util/log.c
set -euo pipefail
suites=$1; shift
out=build-one/$(echo "$suites" | tr ',' '_')
mkdir -p "$out/gen"
: > "$out/gen/unit_suites.h"
tests=()
# the Redis test support needs the rc client: only when it is being built
case " $* " in *redis/rc*) tests+=(tests/unit/support_redis.c) ;; esac
for s in ${suites//,/ }; do echo "SUITE($s)" >> "$out/gen/unit_suites.h"; tests+=("tests/unit/test_$s.c"); done
PKGS="libevent libevent_openssl libevent_pthreads hiredis openssl jansson libjwt yaml-0.1"
[ -f "$out/gen/lua_scripts.c" ] || scripts/embed-lua.sh lua/*.lua > "$out/gen/lua_scripts.c" 2>/dev/null || true
cc -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
   -Wall -Wextra -Wpedantic -Wshadow -Werror -Wformat=2 -Wstrict-prototypes -Wwrite-strings \
   -Wmissing-prototypes -D_GNU_SOURCE -Iinclude -I"$out/gen" -Itests/unit $(pkg-config --cflags $PKGS) -pthread \
   tests/unit/test_main.c "${tests[@]}" "$@" -o "$out/unit-tests" \
   $(pkg-config --libs $PKGS) -lcunit -lm
cd tests/unit && "../../$out/unit-tests"
