#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the tests and the demo need, only when missing.
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config clang clang-format
  libclang-rt-14-dev  # libFuzzer/ASan/UBSan runtimes for clang 14 (only Recommended by clang)
  libcaf-dev libboost1.74-dev libboost-system1.74-dev libssl-dev openssl
  nlohmann-json3-dev libsimdjson-dev librocksdb-dev libcli11-dev
  libspdlog-dev  # structured logs (common/log.cpp)
  zlib1g-dev  # gzip response bodies (api/http_client.cpp, simulator)
  libgtest-dev libbenchmark-dev  # GoogleTest; Google Benchmark (benchmarks/parse_bench.cpp)
  python3 procps
  python3-prometheus-client  # tests/apps: --metrics-file checked by an OpenMetrics parser
  time python3-requests  # benchmarks: /usr/bin/time and the Python peer (bench_smoke)
  etcd-server etcd-client  # distributed workers coordinate through etcd (tests/distributed)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts a default etcd member on 127.0.0.1:2379 where systemd runs; the
# tests start their own clusters on free ports, so one installed only now is stopped again.
if printf '%s\n' "${missing[@]}" | grep -qx etcd-server && command -v systemctl >/dev/null &&
   systemctl is-active --quiet etcd 2>/dev/null; then
  $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
fi
echo "install-deps: done" >&2
