# porta's two-command setup:
#   make demo   install dependencies, build (Release, build/), run the side-by-side benchmark
#   make test   install dependencies, build and run the test suite, then again under ASan+UBSan
# Other targets: deps, configure, build, asan, install (PREFIX=/usr/local), format, format-check,
# clean, help. CMake does the real work; this file only strings the steps together.

SHELL := /bin/bash
.DEFAULT_GOAL := build

BUILD_DIR  ?= build
ASAN_DIR   ?= build-asan
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc)
# Extra arguments for both configure steps, e.g. make test CMAKE_ARGS=-DPORTA_WERROR=ON
CMAKE_ARGS ?=
# Ninja when it is installed (scripts/install-deps.sh installs it): it keeps every core busy across
# targets. A build folder keeps the generator it was first configured with.
GENERATOR  ?= $(if $(shell command -v ninja 2>/dev/null),Ninja,Unix Makefiles)
# These targets build whole trees from scratch (a fresh clone, CI): unity batches make that
# several times cheaper (CMakeLists.txt, PORTA_UNITY_BUILD). FAST_BUILD_ARGS= turns them off.
FAST_BUILD_ARGS ?= -DPORTA_UNITY_BUILD=ON

# The sanitizer build: Debug semantics (assertions on) but -Og, because the numerical tests run
# several times slower at -O0 under ASan, while -O1 doubles the compile time of ASan+UBSan code
# (GCC 12: 15.6 s at -O1, 9.4 s at -Og for a loader file); and -g1 (line tables: what a
# sanitizer's stack trace needs, at a fraction of full debug info's cost). Benchmarks are not built there: they are never
# run under the sanitizers and would only add compile time. The template backend is built there,
# so that the skeleton new devices start from is compiled, registered and tested in every CI run.
ASAN_CMAKE_ARGS ?= -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1 -Og" \
                   -DPORTA_SANITIZE=ON -DPORTA_BUILD_BENCH=OFF -DPORTA_BACKEND_TEMPLATE=ON

# cmake_configure(dir, args): configures `dir`, choosing the generator only for a new folder.
cmake_configure = cmake -S . -B $(1) $(if $(wildcard $(1)/CMakeCache.txt),,-G "$(GENERATOR)") $(2)

# Any sanitizer report fails the test that produced it, with a stack trace.
# intercept_tls_get_addr=0: GCC 12's LeakSanitizer records the dynamic-TLS blocks handed out by
# __tls_get_addr and, in a process that has loaded PoCL's kernels, read a bogus block ("DTLS 10
# at 0x3826-0x800004928") and crashed in its tracer after the tests had passed ("Tracer caught
# signal 11 ... LeakSanitizer has encountered a fatal error"), depending only on the binary's
# layout. Without the interception it does not scan dlopen'ed modules' TLS; no porta memory lives
# there (porta is linked, not dlopen'ed, so its thread_locals are static TLS, still scanned).
export ASAN_OPTIONS  ?= halt_on_error=1:detect_leaks=1:check_initialization_order=1:intercept_tls_get_addr=0
export UBSAN_OPTIONS ?= halt_on_error=1:print_stacktrace=1
# PoCL, its LLVM, the OpenCL ICD loader and CLBlast keep allocations until exit: suppressed by
# library name in tests/lsan.supp, never any porta frame.
export LSAN_OPTIONS  ?= suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0

CTEST_ARGS ?= --output-on-failure -j2

FORMAT_DIRS := include lib backends tools tests examples bench

.PHONY: help deps configure build demo test test-release asan-configure asan-build asan install format format-check clean

help:
	@echo "make demo          install deps, build Release in $(BUILD_DIR)/, run '$(BUILD_DIR)/tools/porta bench'"
	@echo "make test          install deps, build + ctest in $(BUILD_DIR)/, then ASan+UBSan build + ctest in $(ASAN_DIR)/"
	@echo "make deps          install missing Debian packages (scripts/install-deps.sh)"
	@echo "make build         configure and build Release in $(BUILD_DIR)/"
	@echo "make asan          configure, build and test the sanitizer build in $(ASAN_DIR)/"
	@echo "make install       build, then install into PREFIX (now $(PREFIX))"
	@echo "make format        clang-format -i every C++ source; format-check only reports"
	@echo "make clean         remove $(BUILD_DIR)/ and $(ASAN_DIR)/"

deps:
	@bash scripts/install-deps.sh

configure: deps
	$(call cmake_configure,$(BUILD_DIR),-DCMAKE_BUILD_TYPE=Release $(FAST_BUILD_ARGS) $(CMAKE_ARGS))

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

# The demo needs the porta program only (it links every backend): the tests, benchmark programs
# and examples are left for `make build` and `make test`, so a fresh machine reaches the table in
# half the compile time.
demo: configure
	cmake --build $(BUILD_DIR) -j$(JOBS) --target porta_cli
	$(BUILD_DIR)/tools/porta bench --suite demo --format json -o $(BUILD_DIR)/bench-demo.json \
	  --plot $(BUILD_DIR)/bench-demo.svg

test-release: build
	ctest --test-dir $(BUILD_DIR) $(CTEST_ARGS)

# The sanitizer pass runs after the Release pass so that a plain failure is reported first and fast.
test: test-release
	@$(MAKE) --no-print-directory asan

# .ci/run calls these steps one by one (make -o <done step> ...) to time each.
asan-configure: deps
	$(call cmake_configure,$(ASAN_DIR),$(ASAN_CMAKE_ARGS) $(FAST_BUILD_ARGS) $(CMAKE_ARGS))

asan-build: asan-configure
	cmake --build $(ASAN_DIR) -j$(JOBS)

asan: asan-build
	ctest --test-dir $(ASAN_DIR) $(CTEST_ARGS)

install: build
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

FORMAT_FILES = $(shell find $(FORMAT_DIRS) -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) 2>/dev/null)

format:
	@command -v clang-format >/dev/null || { echo "format: clang-format not found (apt-get install clang-format)"; exit 1; }
	clang-format -i $(FORMAT_FILES)

format-check:
	@command -v clang-format >/dev/null || { echo "format: clang-format not found (apt-get install clang-format)"; exit 1; }
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
