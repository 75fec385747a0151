# Developer and CI entry points for etcd-sidecar. Everything builds out of tree in $(BUILD_DIR).
#   make build | run | test | test-unit | test-integration | test-fault | soak | bench | clean
#   make test-sanitize | test-sanitize-all | fuzz      (separate build dirs: build-sanitize, build-fuzz)
#   make image | image-minimal | test-container | test-image-minimal   (podman, as root; build-static)

BUILD_DIR  ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc)
TEST_FUZZ_SECONDS ?= 20
CMAKE_ARGS ?=
CTEST      := ctest --test-dir $(BUILD_DIR) --output-on-failure
# ccache when installed (scripts/install-deps.sh installs it): paths are hashed relative to this checkout,
# so every clone on a machine shares one cache. CCACHE=0 turns it off.
CCACHE ?= $(shell command -v ccache 2>/dev/null)
LAUNCHER_ARGS :=
ifneq ($(filter-out 0,$(CCACHE)),)
  LAUNCHER_ARGS := -DCMAKE_C_COMPILER_LAUNCHER=$(CCACHE) -DCMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE)
  export CCACHE_BASEDIR := $(CURDIR)
  export CCACHE_NOHASHDIR := 1
endif
# ASan+UBSan (GCC) and libFuzzer (clang) builds live in their own directories.
SANITIZE_DIR  ?= build-sanitize
FUZZ_DIR      ?= build-fuzz
FUZZ_SECONDS  ?= 30
SOAK_SECONDS  ?= 600
# The fully static agent for the minimal image (packaging/Dockerfile.minimal).
STATIC_DIR    ?= build-static
STATIC_ARGS   := -DCMAKE_BUILD_TYPE=Release -DSIDECAR_STATIC_DEPS=ON -DSIDECAR_BUILD_TESTS=OFF -DSIDECAR_BUILD_BENCH=OFF
FUZZ_TARGETS  := manifest value render endpoint_set selector dns_packet
SANITIZE_ARGS := -DCMAKE_BUILD_TYPE=Debug -DSIDECAR_SANITIZE=ON -DSIDECAR_BUILD_BENCH=OFF -DSIDECAR_STATIC_DEPS=OFF

.PHONY: all deps configure build run test test-all-labels test-unit test-integration test-fault soak bench bench-dns clean \
        test-sanitize test-sanitize-all fuzz image image-minimal test-container test-image-minimal

all: build

deps:
	scripts/install-deps.sh

# Re-running configure is cheap and picks up new source files (the CMake globs are CONFIGURE_DEPENDS).
configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(LAUNCHER_ARGS) $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# --dev starts a throwaway etcd for the agent, so no system etcd is needed. Builds the agent alone: the
# tests, fuzz targets and benchmarks are built by `make build` / `make test`.
run: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target etcd-sidecar
	./$(BUILD_DIR)/etcd-sidecar --manifest config/example.yaml --dev

# Every label: unit (with the fuzz corpus replay), integration, fault, and a 60 s soak.
# Every suite (unit, integration, fault, 60 s soak), then the unit tests under ASan+UBSan and a short
# libFuzzer run of every target: what CI runs. `make test-all-labels` is the first part alone.
test: build
	$(CTEST) -j2
	$(MAKE) test-sanitize
	$(MAKE) fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

test-all-labels: build
	$(CTEST) -j2

test-unit: build
	$(CTEST) -j2 -L '^unit$$'

test-integration: build
	$(CTEST) -j2 -L '^integration$$'

test-fault: build
	$(CTEST) -j2 -L '^fault$$'

# The soak scenario alone, 10 minutes by default (SOAK_SECONDS=...).
soak: build
	SIDECAR_SOAK_SECONDS=$(SOAK_SECONDS) $(CTEST) -L '^soak$$'

# Unit tests and the fuzz corpus replay under ASan+UBSan: only the pure layers are built, so it is quick.
test-sanitize: deps
	cmake -S . -B $(SANITIZE_DIR) $(SANITIZE_ARGS) $(LAUNCHER_ARGS)
	cmake --build $(SANITIZE_DIR) -j $(JOBS) --target unit_tests $(addprefix fuzz_replay_,$(FUZZ_TARGETS))
	ctest --test-dir $(SANITIZE_DIR) --output-on-failure -j2 -L '^unit$$' -LE '^runtime$$'

# Every suite (unit, integration, fault, soak) with the agent and the tests built under ASan+UBSan.
test-sanitize-all: deps
	cmake -S . -B $(SANITIZE_DIR) $(SANITIZE_ARGS) $(LAUNCHER_ARGS)
	cmake --build $(SANITIZE_DIR) -j $(JOBS)
	ctest --test-dir $(SANITIZE_DIR) --output-on-failure -j2

# libFuzzer (clang, ASan+UBSan): each target for FUZZ_SECONDS; findings land in $(FUZZ_DIR)/fuzz-crashes.
fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIDECAR_FUZZ=ON $(LAUNCHER_ARGS) \
	  -DSIDECAR_BUILD_BENCH=OFF -DSIDECAR_STATIC_DEPS=OFF
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	scripts/run-fuzz.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# etcd-sidecar:<version>: this tree's .deb installed on a Debian 12 base debootstrapped once and cached
# (scripts/image-base.sh; no registry needed). cpack packages the whole build tree, hence `build`.
image: build
	scripts/build-image.sh full $(BUILD_DIR)

# etcd-sidecar:<version>-minimal: the static binary alone (CA certificates, passwd entry) on an empty image.
image-minimal: deps
	cmake -S . -B $(STATIC_DIR) $(STATIC_ARGS) $(LAUNCHER_ARGS)
	cmake --build $(STATIC_DIR) -j $(JOBS) --target etcd-sidecar
	scripts/build-image.sh minimal $(STATIC_DIR)

# The `container` label alone (builds the image, runs it with podman, plays the Kubernetes example).
test-container: build
	$(CTEST) -L '^container$$'

# The run test of the `container` label against the minimal image (not part of `make test`: the static
# build is a second compilation of the agent, ~10 min on 2 cores).
test-image-minimal: image-minimal
	tests/container/run_test.sh $(CURDIR) localhost/etcd-sidecar:$$($(STATIC_DIR)/etcd-sidecar --version | cut -d' ' -f2)-minimal \
	  $$(command -v etcd) $$(command -v etcdctl)

bench: build
	@if [ -x $(BUILD_DIR)/bench/sidecar_bench ]; then \
	  ./$(BUILD_DIR)/bench/sidecar_bench; \
	else \
	  echo "bench: $(BUILD_DIR)/bench/sidecar_bench not built (SIDECAR_BUILD_BENCH=OFF or no bench/)"; \
	fi
	bench/dns_bench.sh $(BUILD_DIR)

# Issue 13's DNS table alone: the agent against knotd with dnsperf (bench/dns_bench.sh).
bench-dns: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target etcd-sidecar
	bench/dns_bench.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(SANITIZE_DIR) $(FUZZ_DIR) $(STATIC_DIR)
