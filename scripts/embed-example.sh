#!/usr/bin/env bash
# CI check of the embedding story (docs/embedding.md): installs the stage from a build tree into
# a fresh prefix, builds examples/embed against that prefix only (find_package(ExportItems);
# its CMake refuses an installed tree with headers outside export_items/ or with the simulator),
# and runs it against the simulator as a separate program (export-items-sim, port 0). Exits
# non-zero when any step fails.
#   EMBED_BUILD_DIR=build/release  EMBED_PREFIX=build/install  EMBED_EXAMPLE_DIR=build/embed-example
#   EMBED_TIMEOUT=120 (seconds for the run)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${EMBED_BUILD_DIR:-build/release}"
prefix="$root/${EMBED_PREFIX:-build/install}"
example="${EMBED_EXAMPLE_DIR:-build/embed-example}"

# docs/embedding.md quotes tests/embed/embed_test.cpp: every fenced block after a
# "<!-- verbatim: FILE -->" line must still appear in FILE, character for character.
check_verbatim() {
  local doc="$1" file="" block="" inside=0 checked=0 line
  while IFS= read -r line; do
    if [ "$inside" = 1 ]; then
      if [ "$line" = '```' ]; then
        if [[ "$(cat "$file")" != *"$block"* ]]; then
          echo "embed-example: a block of $doc is no longer verbatim in $file" >&2
          return 1
        fi
        inside=0 file="" checked=$((checked + 1))
      else
        block+="${block:+$'\n'}$line"
      fi
    elif [[ "$line" =~ ^\<!--\ verbatim:\ (.+)\ --\>$ ]]; then
      file="${BASH_REMATCH[1]}"
    elif [ -n "$file" ] && [[ "$line" == '```'* ]]; then
      inside=1 block=""
    fi
  done <"$doc"
  if [ "$checked" = 0 ]; then echo "embed-example: no verbatim block found in $doc" >&2; return 1; fi
}
check_verbatim docs/embedding.md

# The release build exists after `make build`; otherwise configure it. The installed libraries
# (all of them dependencies of ei_pipeline) and the simulator program the example talks to.
if [ ! -f "$build/CMakeCache.txt" ]; then cmake --preset release >/dev/null; fi
cmake --build "$build" --target ei_pipeline export-items-sim -j "${JOBS:-2}" >/dev/null

# A fresh prefix, so that a header missing from the install rules cannot hide behind a stale copy.
rm -rf "$prefix" "$example"
cmake --install "$build" --prefix "$prefix" >/dev/null

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S examples/embed -B "$example" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" >/dev/null
cmake --build "$example"

# The API: the simulator as its own process, 6 jobs all in progress, on a port the OS picks. Its
# first stdout line is "listening on HOST:PORT".
key="embed-example-key"
mkfifo "$example/sim.fifo"
"$build/simulator/export-items-sim" --api-key "$key" --jobs 6 --companies 3 --items 500 \
    --all-in-progress >"$example/sim.fifo" 2>"$example/sim.err" &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null; wait "$sim_pid" 2>/dev/null || true' EXIT
exec 3<"$example/sim.fifo"  # held open until the end: the simulator never writes to a closed pipe
address="" line=""
if IFS= read -r -t 30 line <&3; then address="${line#listening on }"; fi
if [ -z "$address" ] || [ "$address" = "$line" ]; then
  echo "embed-example: the simulator did not start: $(cat "$example/sim.err")" >&2
  exit 1
fi

echo "embed-example: running $example/embed_example against the simulator at $address" >&2
if ! PLEO_API_KEY="$key" timeout "${EMBED_TIMEOUT:-120}" "$example/embed_example" \
       --base-url "http://$address" --expect-jobs 6; then
  echo "embed-example: FAILED (the example exited non-zero or ran out of time)" >&2
  exit 1
fi
echo "embed-example: ok" >&2
