# tollgate — build, run, test, bench, lint.  `make help` lists the targets.
#
# Sources are picked up by directory: the modules of MODULES make
# libtollgate.a (server/main.c excepted, it is the program); every
# tests/unit/test_*.c is a CUnit suite linked into one runner, which runs
# two sets (tests/unit/unit.h): `make test-unit` the suites that start no
# server (seconds), `make test-unit-redis` those that start redis-server or
# the 6-node cluster; `make test`, valgrind and coverage run both.

BUILD    ?= build
CC       ?= cc
PKGS     := libevent libevent_openssl libevent_pthreads hiredis openssl jansson libcurl \
            libjwt yaml-0.1
V        ?= 0
Q        := $(if $(filter 1,$(V)),,@)

# Sanitizer builds (make test-asan) drop the hardening flags: -D_FORTIFY_SOURCE and
# -fstack-protector get in the sanitizers' way and hide what they report.
# Coverage builds (make coverage, COV=1) too: -O0 keeps lines and branches as
# written, and _FORTIFY_SOURCE needs optimisation.  SAN=1 COV=1 is both
# (ASan's -O1): `make coverage SAN=1` is CI's sanitizer run and its coverage
# in one pass of the suites.
ifeq ($(SAN),1)
OPT      ?= -O1 -g -fno-omit-frame-pointer
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all $(if $(filter 1,$(COV)),--coverage)
HARDEN   :=
else ifeq ($(COV),1)
OPT      ?= -O0 -g
SANFLAGS := --coverage
HARDEN   :=
else
OPT      ?= -O2 -g
SANFLAGS :=
HARDEN   := -fstack-protector-strong -D_FORTIFY_SOURCE=2
endif

WARN     := -Wall -Wextra -Wpedantic -Wshadow -Werror -Wformat=2 \
            -Wstrict-prototypes -Wwrite-strings -Wmissing-prototypes
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CPPFLAGS := -D_GNU_SOURCE -Iinclude -I$(BUILD)/gen $(PKG_CFLAGS)
CFLAGS   := -std=c11 $(OPT) $(WARN) $(HARDEN) $(SANFLAGS) -pthread -MMD -MP
LDFLAGS  := $(SANFLAGS) -pthread
LDLIBS   := $(PKG_LIBS) -lm

# The modules, lowest first (docs/architecture.md): each may use those before it.
MODULES   := util http redis auth limiter cfg decide server
LIB_SRCS  := $(filter-out server/main.c,$(foreach m,$(MODULES),$(wildcard $(m)/*.c)))
LUA_SRCS  := $(sort $(wildcard lua/*.lua))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/lua_scripts.o
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c tests/unit/support_*.c))
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/%.o)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

BIN      := $(BUILD)/tollgate
UNIT_BIN := $(BUILD)/unit-tests
LIB      := $(BUILD)/libtollgate.a

.PHONY: all deps deps-check run test test-unit test-unit-redis test-integration test-asan valgrind fuzz bench bench-scale soak \
        lint lint-k8s format format-check clean help redis-cluster-up redis-cluster-down \
        image image-check image-smoke image-clean test-fresh

all: $(BIN)

help:
	@echo "make            build $(BIN)"
	@echo "make run        start with config/tollgate.yaml (memory backend, demo keys)"
	@echo "make test       lint-k8s, then unit + integration tests (real redis-server, real cluster)"
	@echo "make test-unit  the unit suites that start no server (seconds)"
	@echo "make test-unit-redis  the unit suites that start redis-server / a 6-node cluster"
	@echo "make test-asan  the same tests under ASan + UBSan"
	@echo "make valgrind   unit tests, then an integration subset, under valgrind"
	@echo "make fuzz       short libFuzzer runs over every parser of outside input"
	@echo "make coverage   unit + integration tests with gcov, per-module table; fails under 80% lines"
	@echo "                (SAN=1: under ASan + UBSan too, in one pass: what CI runs)"
	@echo "make audit-deps linked/image Debian packages vs bookworm-security, npm audit of tool packages"
	@echo "make bench      wrk against tollgate and yardsticks, prints a table"
	@echo "make bench-scale  1/2/3 replicas x 1/3 Redis shards, CPU per request"
	@echo "make soak       5 min of mixed traffic; fails on RSS/fd growth"
	@echo "make lint       -Werror build, cppcheck, format-check"
	@echo "make lint-k8s   helm lint, chart/kustomize renders validated offline, config checks"
	@echo "make image      build the container image with buildah (root, Debian mirror)"
	@echo "make image-smoke  build it, run it, GET /healthz (part of CI)"
	@echo "make deps       install Debian packages (root) or print the command"
	@echo "make test-fresh  make test + make run in a fresh Debian 12 minbase root (root, Debian mirror)"

deps:
	$(Q)scripts/deps.sh install

# Build-time check: run `deps` only when pkg-config cannot find a library.
deps-check:
	$(Q)scripts/deps.sh check || scripts/deps.sh install

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(filter 1,$(V)),,echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Lua scripts are embedded as C strings (scripts/embed-lua.sh).
$(BUILD)/gen/lua_scripts.c: $(LUA_SRCS) scripts/embed-lua.sh
	@mkdir -p $(dir $@)
	$(Q)scripts/embed-lua.sh $(LUA_SRCS) > $@

$(BUILD)/gen/lua_scripts.o: $(BUILD)/gen/lua_scripts.c
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# The unit runner's suite list is generated from the file names.
$(BUILD)/gen/unit_suites.h: $(UNIT_SRCS)
	@mkdir -p $(dir $@)
	$(Q)for f in $(filter-out tests/unit/test_main.c tests/unit/support_%,$(UNIT_SRCS)); do \
	    n=$$(basename $$f .c); echo "SUITE($${n#test_})"; done > $@

$(UNIT_OBJS): $(BUILD)/gen/unit_suites.h

$(LIB): $(LIB_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(BUILD)/server/main.o $(LIB)
	@$(if $(filter 1,$(V)),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(UNIT_BIN): $(UNIT_OBJS) $(LIB)
	@$(if $(filter 1,$(V)),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcunit

run: deps-check
	$(Q)$(MAKE) --no-print-directory $(BIN)
	$(Q)scripts/run-demo.sh $(BIN)

test: deps-check
	$(Q)$(MAKE) --no-print-directory $(BIN) $(UNIT_BIN)
	$(Q)$(if $(filter 1,$(SAN)),,$(MAKE) --no-print-directory lint-k8s)
	$(Q)$(MAKE) --no-print-directory test-unit test-unit-redis test-integration

test-unit: $(UNIT_BIN)
	$(Q)cd tests/unit && ../../$(UNIT_BIN) --set fast

test-unit-redis: $(UNIT_BIN)
	$(Q)cd tests/unit && ../../$(UNIT_BIN) --set server

test-integration: $(BIN)
	$(Q)TOLLGATE_BIN=$(abspath $(BIN)) python3 tests/integration/run.py

test-asan: deps-check
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan SAN=1 test

valgrind: $(UNIT_BIN) $(BIN)
	$(Q)cd tests/unit && valgrind --error-exitcode=1 --leak-check=full \
	    --errors-for-leak-kinds=definite ../../$(UNIT_BIN) --set all
	$(Q)scripts/valgrind-integration.sh $(BIN)

fuzz: deps-check
	$(Q)scripts/fuzz.sh $(FUZZ_SRCS)

# Line and branch coverage of the unit and integration suites together, in
# build-cov (scripts/coverage.sh); COVERAGE_MIN (80) is the overall line floor.
# SAN=1: the same under ASan + UBSan, in build-cov-asan (what CI runs: one
# pass of the suites for both).
.PHONY: coverage audit-deps
coverage: deps-check
	$(Q)SAN=$(SAN) scripts/coverage.sh

# Pending security fixes for what the binary and the image use, npm audit of
# the tool packages (scripts/audit-deps.sh); needs the mirror and the registry.
audit-deps: $(BIN)
	$(Q)scripts/audit-deps.sh $(abspath $(BIN))

bench: deps-check
	$(Q)$(MAKE) --no-print-directory $(BIN)
	$(Q)tests/bench/run.sh $(abspath $(BIN))

soak: deps-check $(BIN)
	$(Q)TOLLGATE_BIN=$(abspath $(BIN)) python3 tests/soak/soak.py

bench-scale: deps-check
	$(Q)$(MAKE) --no-print-directory $(BIN)
	$(Q)tests/bench/scale.sh $(abspath $(BIN))

redis-cluster-up:
	$(Q)scripts/redis-cluster.sh up

redis-cluster-down:
	$(Q)scripts/redis-cluster.sh down

lint: deps-check
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BIN)
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --inline-suppr -Iinclude $(MODULES)
	$(Q)$(MAKE) --no-print-directory format-check
	@echo "lint: C sources done; the chart and manifests: make lint-k8s"

# The Helm chart and kustomize manifests, validated offline (scripts/lint-k8s.sh).
lint-k8s: deps-check
	$(Q)$(MAKE) --no-print-directory $(BIN)
	$(Q)TOLLGATE_BIN=$(abspath $(BIN)) scripts/lint-k8s.sh
	$(Q)$(MAKE) --no-print-directory image-check

# The Dockerfile, statically: runtime packages = what the binary links, a
# numeric non-root USER, ENTRYPOINT, no secrets copied.  No daemon needed.
image-check: $(BIN)
	$(Q)scripts/check-dockerfile.sh Dockerfile $(abspath $(BIN))

# The image itself, daemonless (buildah --isolation chroot, a debootstrap
# base cached in .cache/image).  Root and the Debian mirror; not in `make test`.
image:
	$(Q)scripts/deps.sh image
	$(Q)scripts/image.sh build

image-smoke:
	$(Q)scripts/deps.sh image
	$(Q)scripts/image.sh build
	$(Q)scripts/image.sh smoke

image-clean:
	$(Q)scripts/image.sh clean

# A new user's first steps on a fresh Debian 12: a debootstrap minbase root
# (cached in .cache/fresh), a clone of HEAD, make test, make run answering.
# Root and the Debian mirror, a few minutes more than make test; not in CI.
test-fresh:
	$(Q)scripts/test-fresh.sh

FORMAT_SRCS = $(wildcard include/tollgate/*.h $(foreach m,$(MODULES),$(m)/*.[ch]))
format:
	$(Q)clang-format -i $(FORMAT_SRCS)

format-check:
	$(Q)clang-format --dry-run --Werror $(FORMAT_SRCS)

clean:
	rm -rf build build-asan build-fuzz build-cov build-cov-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
