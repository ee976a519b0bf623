#!/usr/bin/env bash
# Installs the build dependencies (Debian 12, as root), builds everything with warnings as errors and
# runs the whole test suite. This is the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq cmake g++ make libeigen3-dev doctest-dev libstb-dev libcli11-dev \
    nlohmann-json3-dev python3-torch \
    libopenmpi-dev openmpi-bin iproute2 clang-14 libclang-rt-14-dev libomp-14-dev \
    g++-aarch64-linux-gnu qemu-user >/dev/null
fi
# Every option the suite depends on is given explicitly, so that a cache left by another
# configuration (scripts/demo.sh uses build-demo/, but a user may point both at one folder) cannot
# switch the tests off; ctest fails when it finds no test at all.
build=${BUILD_DIR:-build}
# The fuzzers (tests/fuzz, built when clang is found) run UNETSRNN_FUZZ_SECONDS each.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DUNETSRNN_WERROR=ON -DUNETSRNN_BUILD_TESTS=ON \
  -DUNETSRNN_BUILD_EXAMPLES=ON -DUNETSRNN_BUILD_BENCHMARKS=ON -DUNETSRNN_CUDA=ON -DUNETSRNN_NATIVE=OFF \
  -DUNETSRNN_FUZZ_SECONDS="${UNETSRNN_FUZZ_SECONDS:-15}"
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure --no-tests=error -j 1
