# The two commands the README promises: `make demo` and `make test`. Each installs what it
# needs (scripts/install-deps.sh), configures and builds from scratch if necessary.
.PHONY: deps build build-asan demo test check test-release test-asan fuzz-smoke embed-example bench format format-check tidy clean

JOBS ?= 2
export CCACHE_DIR ?= $(CURDIR)/.cache/ccache

deps:
	@bash scripts/install-deps.sh

build: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)

build-asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)

demo: build
	@bash scripts/demo.sh build/release

test: test-release test-asan fuzz-smoke embed-example

# The quick loop while working (under 2 minutes once built): formatting, then the release
# build and its in-process unit tests (ctest label `unit`; no crash, distributed or CLI tests).
check: format-check build
	ctest --preset check

test-release: build
	ctest --preset release

test-asan: build-asan
	ctest --preset asan

# libFuzzer targets (clang), 30 s each on a copy of the seed corpus: tests/fuzz/README.md.
fuzz-smoke: deps
	@bash scripts/fuzz-smoke.sh

# The embedding example built against an installed tree and run (docs/embedding.md).
embed-example: build
	@bash scripts/embed-example.sh

bench: deps
	@bash benchmarks/run.sh

format:
	git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

format-check:
	git ls-files '*.cpp' '*.hpp' | xargs clang-format --dry-run --Werror

clean:
	rm -rf build
