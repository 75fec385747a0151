# Developer and CI entry points for etcd-sidecar. Everything builds out of tree in $(BUILD_DIR).
#   make build | run | test | test-unit | test-integration | test-fault | bench | clean

BUILD_DIR  ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
CTEST      := ctest --test-dir $(BUILD_DIR) --output-on-failure

.PHONY: all deps configure build run test test-unit test-integration test-fault bench clean

all: build

deps:
	scripts/install-deps.sh

# Re-running configure is cheap and picks up new source files (the CMake globs are CONFIGURE_DEPENDS).
configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# --dev starts a throwaway etcd for the agent, so no system etcd is needed.
run: build
	./$(BUILD_DIR)/etcd-sidecar --manifest config/example.yaml --dev

# Every label: unit, integration, fault.
test: build
	$(CTEST) -j2

test-unit: build
	$(CTEST) -j2 -L '^unit$$'

test-integration: build
	$(CTEST) -j2 -L '^integration$$'

test-fault: build
	$(CTEST) -j2 -L '^fault$$'

bench: build
	@if [ -x $(BUILD_DIR)/bench/sidecar_bench ]; then \
	  ./$(BUILD_DIR)/bench/sidecar_bench; \
	else \
	  echo "bench: $(BUILD_DIR)/bench/sidecar_bench not built (SIDECAR_BUILD_BENCH=OFF or no bench/)"; \
	fi

clean:
	rm -rf $(BUILD_DIR)
