#!/usr/bin/env bash
# `make bench`: builds the `bench` preset (Release), installs what the peers and plots need,
# and runs the harness (benchmarks/harness.py), which writes benchmarks/results/latest.{json,md}
# and PNG plots. About 14 minutes of measuring on 2 cores (6 of them the write-back scenarios),
# plus the build.
#
#   benchmarks/run.sh [--rounds N] [--only small,big,many,latency,recovery,writeback,loop,ratelimit,distributed]
#   (with --only, the new figures are merged into the existing results/latest.{json,md})
#   benchmarks/run.sh --smoke --build-dir DIR --work-dir DIR   (ctest bench_smoke: seconds,
#                                                               nothing installed or committed)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
smoke=0
build_dir=""
work_dir=""
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1; shift ;;
    --build-dir) build_dir="$2"; shift 2 ;;
    --work-dir) work_dir="$2"; shift 2 ;;
    *) pass+=("$1"); shift ;;
  esac
done

if [ "$smoke" -eq 1 ]; then
  # Uses an existing build (ctest's) and whatever peers are installed; never installs.
  : "${build_dir:?--smoke needs --build-dir}"
  work_dir="${work_dir:-$build_dir/benchmarks/smoke}"
  rm -rf "$work_dir"
  exec /usr/bin/python3 "$here/harness.py" --smoke --build-dir "$build_dir" \
    --work-dir "$work_dir" "${pass[@]}"
fi

# Packages for the peers, the plots and the measurements (Debian), only when missing.
need=()
for p in python3-requests gnuplot-nox time nodejs npm; do
  case "$p" in
    nodejs|npm) command -v "${p/nodejs/node}" >/dev/null 2>&1 && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Node.js peer's one dependency (better-sqlite3@12; 13 needs Node 22), never committed.
if [ ! -d "$here/peers/node/node_modules/better-sqlite3" ]; then
  echo "bench: npm install in benchmarks/peers/node" >&2
  (cd "$here/peers/node" && npm install --no-package-lock --no-audit --no-fund --loglevel=error)
fi

build_dir="${build_dir:-$root/build/bench}"
work_dir="${work_dir:-$build_dir/bench-work}"
cd "$root"
# -Wno-error=restrict: GCC 12 at -O3 reports a false -Wrestrict inside libstdc++'s
# std::string operator+ (api/query.cpp); the release preset (-O2) does not.
cmake --preset bench -DCMAKE_CXX_FLAGS=-Wno-error=restrict >/dev/null
cmake --build --preset bench -j "${JOBS:-2}" --target export-items export-items-sim \
  ei_storage_throughput ei_bench_wire ei_bench_parse
rm -rf "$work_dir"
mkdir -p "$here/results"
start=$(date +%s)
# The rate-limit runs (ratelimit.py, ~4 minutes) unless --only leaves them out; harness.py
# does not know the key, so it gets --only without it.
only=""
hpass=()
for ((i = 0; i < ${#pass[@]}; i++)); do
  if [ "${pass[$i]}" = "--only" ]; then
    only="${pass[$((i + 1))]}"
    rest="$(echo ",$only," | sed 's/,ratelimit,/,/g; s/,distributed,/,/g; s/^,//; s/,$//')"
    [ -n "$rest" ] && hpass+=(--only "$rest")
    i=$((i + 1))
  else
    hpass+=("${pass[$i]}")
  fi
done
if [ -z "$only" ] || [ -n "${rest:-}" ]; then
  /usr/bin/python3 "$here/harness.py" --build-dir "$build_dir" --work-dir "$work_dir" \
    --results-dir "$here/results" "${hpass[@]}"
fi
if [ -z "$only" ] || [[ ",$only," == *",ratelimit,"* ]]; then
  /usr/bin/python3 "$here/ratelimit.py" --build-dir "$build_dir" \
    --work-dir "$work_dir/ratelimit" --results-dir "$here/results"
fi
# The distributed batch through etcd (docs/distributed.md): 1,000 x 1,000 with 1, 2 and 4
# workers, etcd overhead per job. About 4 minutes; EI_BENCH_DISTRIBUTED=0 or an --only without
# `distributed` skips it.
if [ "${EI_BENCH_DISTRIBUTED:-1}" != 0 ] && { [ -z "$only" ] || [[ ",$only," == *",distributed,"* ]]; }; then
  /usr/bin/python3 "$here/distributed.py" --build-dir "$build_dir" --results-dir "$here/results"
fi
echo "bench: measured in $(( $(date +%s) - start )) s; results in benchmarks/results/latest.md" >&2
