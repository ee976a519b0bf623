#!/usr/bin/env bash
# Installs the build dependencies (Debian 12, as root), builds the demo trainer and runs it on the
# library's own synthetic data. This is the README's first command.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq cmake g++ make libeigen3-dev doctest-dev libstb-dev libcli11-dev \
    nlohmann-json3-dev >/dev/null
fi
# Its own build folder, configured with every option it depends on, so that it and the test command
# (build/) never reuse each other's cache. The demo runs on the CPU: no CUDA parts are built.
build=${BUILD_DIR:-build-demo}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DUNETSRNN_BUILD_TESTS=OFF \
  -DUNETSRNN_BUILD_EXAMPLES=ON -DUNETSRNN_BUILD_BENCHMARKS=OFF -DUNETSRNN_CUDA=OFF -DUNETSRNN_NATIVE=OFF
cmake --build "$build" -j "$(nproc)" --target demo
"$build/examples/demo" --out runs/demo "$@"
