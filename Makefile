# The README's two commands are `make demo` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= 2
WERROR ?= $(if $(FEDSHARE_WERROR),$(FEDSHARE_WERROR),OFF)
SANITIZE ?=

.PHONY: all deps configure build test crash demo bench format clean

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

bench: build
	$(BUILD_DIR)/bin/fedshare-bench

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR)
