# Wraps the commands the README shows. `make bench` builds and runs
# `walls bench`; `make test` builds and runs the test suite plain, under
# ASan+UBSan and under TSan.
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build bench test test-plain test-asan test-tsan clean

all: build

deps:
	@sh scripts/deps.sh

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWALLS_WERROR=ON $(CMAKE_FLAGS)
	cmake --build build -j$(JOBS)

bench: build
	./build/walls bench

test: test-plain test-asan test-tsan

test-plain: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWALLS_WERROR=ON $(CMAKE_FLAGS)
	cmake --build build -j$(JOBS)
	cd build && ctest --output-on-failure -j$(JOBS)

test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DWALLS_WERROR=ON \
	    -DWALLS_SANITIZE=address,undefined -DWALLS_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ctest --output-on-failure -j$(JOBS)

test-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DWALLS_WERROR=ON \
	    -DWALLS_SANITIZE=thread -DWALLS_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build build-tsan -j$(JOBS)
	cd build-tsan && ctest --output-on-failure -j$(JOBS)

clean:
	rm -rf build build-asan build-tsan
