# The README's two commands are `make demo` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= 2
WERROR ?= $(if $(FEDSHARE_WERROR),$(FEDSHARE_WERROR),OFF)
SANITIZE ?=

# Fuzzing, sanitizers and static checks (docs/fuzzing.md, DEVELOPERS.md):
# each in its own build folder.
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
# Stop a target after this many executions too (0: time only).
FUZZ_RUNS ?= 0
FUZZ_TARGETS ?= sql csv json column_block consent ingest config agreements rpc call_home call_home_answer receipt
SANITIZE_DIR ?= build-asan
TSA_DIR ?= build-tsa
CLANG_CXX ?= clang++-14
CLANG_CC ?= clang-14

.PHONY: all deps configure build test crash demo bench bench-q1 bench-ingest bench-fanout format clean fuzz fuzz-build test-sanitize tsa

all: build

deps:
	@bash deploy/install-deps.sh

$(BUILD_DIR)/build.ninja:
	@bash deploy/install-deps.sh
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DFEDSHARE_WERROR=$(WERROR) -DFEDSHARE_SANITIZE=$(SANITIZE) \
	  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON

configure: $(BUILD_DIR)/build.ninja

build: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 600

# The crash harness: seeded SIGKILLs during ingest, consent import and
# questions (tests/crash_test.cc). CRASH_TRIALS and CRASH_SEED vary it.
CRASH_TRIALS ?= 100
CRASH_SEED ?= 1
crash: build
	cd $(BUILD_DIR) && FEDSHARE_CRASH_TRIALS=$(CRASH_TRIALS) FEDSHARE_CRASH_SEED=$(CRASH_SEED) \
	  ctest --output-on-failure -R 'CrashHarness' --timeout 3600 -V

demo: build
	bash deploy/local/demo.sh $(BUILD_DIR)

# The benchmarks of docs/performance.md one after the other (never at once:
# they measure the same cores): question Q1 five ways and the CLI's ingest and
# start (bench-q1), then the fan-out (bench-fanout).
BENCH_ARGS ?=
bench: build
	$(BUILD_DIR)/bin/fedshare-bench $(BENCH_ARGS)
	bash bench/fanout_bench.sh $(BUILD_DIR)

# Question Q1 five ways as one table, then ingest and start from the CLI
# (docs/performance.md); BENCH_ARGS=--large for 10M records.
bench-q1: build
	$(BUILD_DIR)/bin/fedshare-bench $(BENCH_ARGS)

# Ingest rows/s end to end from the CLI, the node's peak RSS and its cold
# start on the loaded store (bench/ingest_bench.sh). BENCH_ROWS sets the size.
BENCH_ROWS ?= 1000000
bench-ingest: build
	bash bench/ingest_bench.sh $(BUILD_DIR) $(BENCH_ROWS)

# Fan-out latency and the foundation's footprint against simulated partners
# and real partner processes, as one table (docs/performance.md, "Fan-out";
# bench/fanout_bench.sh). FANOUT_PARTNERS lists the sizes (default 10 100
# 1000 5000; 5000 takes several minutes per mode); FANOUT_REAL real
# fedshare-node partners (default 50, 0: none).
bench-fanout: build
	bash bench/fanout_bench.sh $(BUILD_DIR)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

# libFuzzer targets (clang, ASan+UBSan), each run for FUZZ_SECONDS from its
# seed corpus; new inputs go to $(FUZZ_DIR)/corpus/NAME, crashes to
# $(FUZZ_DIR)/artifacts/. Fails on the first target that finds a crash.
$(FUZZ_DIR)/build.ninja:
	@bash deploy/install-deps.sh
	CC=$(CLANG_CC) CXX=$(CLANG_CXX) cmake -S . -B $(FUZZ_DIR) -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFEDSHARE_FUZZ=ON

fuzz-build: $(FUZZ_DIR)/build.ninja
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz_targets

fuzz: fuzz-build
	@mkdir -p $(FUZZ_DIR)/artifacts
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	  echo "== $${t}_fuzz for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_DIR)/fuzz/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(if $(filter-out 0,$(FUZZ_RUNS)),-runs=$(FUZZ_RUNS)) \
	    -rss_limit_mb=2048 -artifact_prefix=$(FUZZ_DIR)/artifacts/$${t}- \
	    $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# The whole suite under ASan+UBSan (any finding fails the test), except the
# container and install tests, which ship the build's binaries to a clean
# Debian root where the sanitizer runtimes are not installed. Built with
# clang-14 and its thread-safety analysis, so the same build is also `make
# tsa`'s check over every target: CI builds the project twice, not three times.
$(SANITIZE_DIR)/build.ninja:
	@bash deploy/install-deps.sh
	CC=$(CLANG_CC) CXX=$(CLANG_CXX) cmake -S . -B $(SANITIZE_DIR) -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFEDSHARE_WERROR=$(WERROR) \
	  -DFEDSHARE_SANITIZE=address,undefined -DFEDSHARE_THREAD_SAFETY=ON

test-sanitize: $(SANITIZE_DIR)/build.ninja
	cmake --build $(SANITIZE_DIR) -j $(JOBS)
	cd $(SANITIZE_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 1200 -E '^(container|install)$$'

# clang's -Wthread-safety over the node's libraries and binaries alone, an
# unoptimised build quicker than test-sanitize's (ABSL_GUARDED_BY violations
# fail the build). CI relies on test-sanitize, which checks the same.
$(TSA_DIR)/build.ninja:
	@bash deploy/install-deps.sh
	CC=$(CLANG_CC) CXX=$(CLANG_CXX) cmake -S . -B $(TSA_DIR) -G Ninja \
	  -DCMAKE_BUILD_TYPE=Debug -DFEDSHARE_THREAD_SAFETY=ON

tsa: $(TSA_DIR)/build.ninja
	cmake --build $(TSA_DIR) -j $(JOBS) --target fedshare-node fedshare

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_DIR) $(SANITIZE_DIR) $(TSA_DIR)
