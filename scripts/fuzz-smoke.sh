#!/usr/bin/env bash
# CI smoke run of the libFuzzer targets (tests/fuzz/README.md): configures the `fuzz` preset
# (clang, ASan, UBSan), builds only the fuzz targets and runs each for a bounded time on a
# COPY of its seed corpus (the repository is never modified). Exits non-zero on any crash,
# leak, sanitizer report, timeout or broken promise; the crashing input is kept and named.
#   FUZZ_SECONDS=30 (per target)  FUZZ_KEEP=1 (keep the work directory)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${FUZZ_SECONDS:-30}"
cd "$root"

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

work="$(mktemp -d "${TMPDIR:-/tmp}/ei-fuzz-smoke.XXXXXX")"
cleanup() { if [ -z "${FUZZ_KEEP:-}" ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

status=0
for target in page_parser state_record; do
  bin="build/fuzz/tests/fuzz/${target}_fuzz"
  mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
  cp tests/fuzz/corpus/"$target"/* "$work/$target/corpus/"
  dict=()
  if [ -f "tests/fuzz/$target.dict" ]; then dict=("-dict=tests/fuzz/$target.dict"); fi
  echo "fuzz-smoke: $target for ${seconds}s" >&2
  if ! "$bin" "${dict[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10 \
       -print_final_stats=1 -artifact_prefix="$work/$target/artifacts/" \
       "$work/$target/corpus" >"$work/$target/log" 2>&1; then
    status=1
    echo "fuzz-smoke: $target FAILED; last lines of its log:" >&2
    tail -n 40 "$work/$target/log" >&2
    for a in "$work/$target/artifacts"/*; do
      [ -e "$a" ] || continue
      mkdir -p build/fuzz/artifacts
      cp "$a" build/fuzz/artifacts/
      echo "fuzz-smoke: reproduce with: $bin build/fuzz/artifacts/$(basename "$a")" >&2
    done
  else
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
      "$work/$target/log" | sed "s/^/fuzz-smoke: $target /" >&2 || true
    grep -E 'cov: [0-9]+' -o "$work/$target/log" | tail -n 1 | sed "s/^/fuzz-smoke: $target /" >&2 || true
  fi
done
exit "$status"
