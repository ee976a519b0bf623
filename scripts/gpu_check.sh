#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: builds the CUDA tests and benchmark, runs the CPU-vs-GPU tests,
# then the GPU benchmark of the four models and (when python3 has torch with CUDA) the PyTorch peer
# on the same GPU. Prints everything; the exit status is the tests'.
#
#   bash scripts/gpu_check.sh            # build dir: build-gpu
#   BIN=dir bash scripts/gpu_check.sh    # run already-built test_cuda_* and bench_cuda from dir
#
# Needs nvcc, cuBLAS, CMake, Eigen, doctest and stb (the README's test command installs all but
# CUDA). CMAKE_CUDA_ARCHITECTURES defaults to 90 (H100/H200); set CUDA_ARCH to change it.
set -uo pipefail
cd "$(dirname "$0")/.."
nvidia-smi -L || true
if [ -z "${BIN:-}" ]; then
  build=${BUILD_DIR:-build-gpu}
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DUNETSRNN_BUILD_BENCHMARKS=ON \
    -DUNETSRNN_BUILD_EXAMPLES=OFF -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" >/dev/null || exit 1
  cmake --build "$build" -j "$(nproc)" --target test_cuda_ops test_cuda_srnn test_cuda_train bench_cuda demo || exit 1
  BIN=$build
  tests=("$build"/tests/test_cuda_*)
  bench=$build/benchmarks/bench_cuda
else
  tests=("$BIN"/test_cuda_*)
  bench=$BIN/bench_cuda
fi

status=0
for t in "${tests[@]}"; do
  echo "== $t"
  "$t"
  rc=$?
  echo "== $t: exit $rc"
  [ "$rc" = 0 ] || status=1
done

echo "== $bench"
"$bench" "$@" || status=1

python=${PYTHON_TORCH:-python3}
if "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  for model in unet2d_lw unet2d_res_hw crunet_res_hw crunet_res_lw; do
    echo "== pytorch (cuda, float32): $model"
    "$python" benchmarks/torch_peer.py bench --model "$model" --device cuda --steps 10 --warmup 3
  done
else
  echo "== no python3 with CUDA torch: PyTorch GPU peer skipped"
fi
exit $status
