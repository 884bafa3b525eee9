#!/usr/bin/env bash
# CI check of the embedding story (docs/embedding.md): installs the stage from a build tree into
# a fresh prefix, builds examples/embed against that prefix only (find_package(ExportItems)),
# and runs it against its in-process simulator. Exits non-zero when any step fails.
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

# The release build exists after `make build`; otherwise configure it. Only the installed
# libraries are needed (all of them are dependencies of ei_pipeline).
if [ ! -f "$build/CMakeCache.txt" ]; then cmake --preset release >/dev/null; fi
cmake --build "$build" --target ei_pipeline -j "${JOBS:-2}" >/dev/null

# A fresh prefix, so that a header missing from the install rules cannot hide behind a stale copy.
rm -rf "$prefix" "$example"
cmake --install "$build" --prefix "$prefix" >/dev/null

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S examples/embed -B "$example" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" >/dev/null
cmake --build "$example"

echo "embed-example: running $example/embed_example" >&2
if ! timeout "${EMBED_TIMEOUT:-120}" "$example/embed_example"; then
  echo "embed-example: FAILED (the example exited non-zero or ran out of time)" >&2
  exit 1
fi
echo "embed-example: ok" >&2
