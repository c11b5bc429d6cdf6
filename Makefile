# Wraps the commands the README shows. `make bench` builds and runs
# `walls bench`; `make test` builds and runs the test suite plain, under
# ASan+UBSan and under TSan, and builds everything twice more with warnings
# fatal: as a Release build and with clang.
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build bench test test-plain test-asan test-tsan build-release build-clang fuzz clean

all: build

deps:
	@sh scripts/deps.sh

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWALLS_WERROR=ON $(CMAKE_FLAGS)
	cmake --build build -j$(JOBS)

bench: build
	./build/walls bench

test: test-plain test-asan test-tsan build-release build-clang fuzz

# The host's reading of a hostile worker's mailbox, walls-httpd's request
# path, walls-kv's (RESP and the commands) and what a walls-tabs tab hands
# its broker, each fuzzed for a bounded
# time (FUZZ_SECONDS); a finding fails the run and leaves a crash file.
FUZZ_SECONDS ?= 60
fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DWALLS_FUZZ=ON \
	    -DWALLS_BUILD_TESTS=OFF -DWALLS_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build build-fuzz -j$(JOBS) --target fuzz_mailbox fuzz_httpd fuzz_kv fuzz_resp fuzz_tabs
	mkdir -p build-fuzz/corpus build-fuzz/corpus-httpd build-fuzz/corpus-kv build-fuzz/corpus-resp \
	    build-fuzz/corpus-tabs
	./build-fuzz/fuzz_mailbox -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/ build-fuzz/corpus
	./build-fuzz/systems/httpd/fuzz_httpd -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -max_len=4096 -artifact_prefix=build-fuzz/httpd- build-fuzz/corpus-httpd \
	    systems/httpd/fuzz/seeds
	./build-fuzz/systems/kv/fuzz_kv -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -max_len=4096 -artifact_prefix=build-fuzz/kv- build-fuzz/corpus-kv \
	    systems/kv/fuzz/seeds
	./build-fuzz/systems/kv/fuzz_resp -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -max_len=4096 -artifact_prefix=build-fuzz/resp- build-fuzz/corpus-resp \
	    systems/kv/fuzz/seeds
	./build-fuzz/systems/tabs/fuzz_tabs -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -max_len=4096 -artifact_prefix=build-fuzz/tabs- build-fuzz/corpus-tabs \
	    systems/tabs/fuzz/seeds

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

# Built, not run: -O3 and clang find warnings the other builds do not.
build-release: deps
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DWALLS_WERROR=ON $(CMAKE_FLAGS)
	cmake --build build-release -j$(JOBS)

build-clang: deps
	CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWALLS_WERROR=ON \
	    $(CMAKE_FLAGS)
	cmake --build build-clang -j$(JOBS)

clean:
	rm -rf build build-asan build-tsan build-release build-clang build-fuzz
