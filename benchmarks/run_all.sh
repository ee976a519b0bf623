#!/usr/bin/env bash
# Runs every benchmark and writes benchmarks/RESULTS.md:
#   - builds bench_models (and bench_srnn when present) in build-bench, Release;
#   - bench_models: the FMA peak per vector width, Eigen SGEMM rate and per-layer times, then each
#     of the original's four models in its own process (so each peak RSS is that model's own), on
#     the CPU path the library picks (ISA=avx512|avx2|portable forces one: UNETSRNN_CPU_ISA);
#   - bench_srnn, if built;
#   - the PyTorch peer (benchmarks/torch_peer.py) on the same models, shapes and thread count, and,
#     when that python also has openvino and onnx, OpenVINO's float32 inference of the same graphs
#     exported to ONNX;
#   - benchmarks/make_results.py turns the raw results (build-bench/results/) into RESULTS.md.
#
# Environment: THREADS (default: nproc), STEPS (timed steps per measurement, default 3),
# WARMUP (default 1), ROUNDS (interleaved rounds of ours, PyTorch and OpenVINO per model; default
# 3), BATCH / HEIGHT / WIDTH (default 2 / 160 / 192, the original's), MODELS
# (default: the four models of the original), ISA (default: the library's choice), PYTHON_TORCH (a
# python3 with torch; default: the virtual environment /opt/peers (pip install torch onnx
# openvino) when it has torch, then /usr/bin/python3 (Debian's python3-torch 1.13), then python3),
# OUT (default benchmarks/RESULTS.md), README_SUMMARY (a file whose <!-- bench:begin/end --> part gets
# the summary table: README.md for the published numbers; default none).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

threads=${THREADS:-$(nproc)}
steps=${STEPS:-3}
warmup=${WARMUP:-1}
rounds=${ROUNDS:-3}
size=(--batch "${BATCH:-2}" --height "${HEIGHT:-160}" --width "${WIDTH:-192}")
models=${MODELS:-unet2d_lw unet2d_res_hw crunet_res_hw crunet_res_lw}
out=${OUT:-benchmarks/RESULTS.md}
build=build-bench
results=$build/results

python_torch=${PYTHON_TORCH:-}
if [ -z "$python_torch" ]; then
  for candidate in /opt/peers/bin/python /usr/bin/python3 python3; do
    if "$candidate" -c 'import torch' >/dev/null 2>&1; then
      python_torch=$candidate
      break
    fi
  done
fi

mkdir -p "$results"
rm -f "$results"/*.json "$results"/*.txt
commands=$results/commands.txt
: >"$commands"
# Runs a command, records it in commands.txt, and sends its stdout to the file $1.
run_logged() {
  local dest=$1
  shift
  echo "$*" >>"$commands"
  echo "+ $*" >&2
  "$@" >"$dest"
}

date -u '+%Y-%m-%d %H:%M UTC' >"$results/date.txt"
[ -n "${ISA:-}" ] && export UNETSRNN_CPU_ISA=$ISA
# The code measured: commit, with "-dirty" when the working tree had uncommitted changes.
git -C "$root" describe --always --dirty >"$results/commit.txt" 2>/dev/null || echo unknown >"$results/commit.txt"
# The machine may be shared: sample the load average while the benchmarks run.
(while true; do cat /proc/loadavg; sleep 15; done) >"$results/load_samples.txt" &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true' EXIT

echo "== build ($build, Release)" >&2
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DUNETSRNN_BUILD_BENCHMARKS=ON \
  -DUNETSRNN_BUILD_TESTS=OFF -DUNETSRNN_BUILD_EXAMPLES=OFF >"$results/cmake.txt"
targets=(bench_models)
[ -f benchmarks/bench_srnn.cpp ] && targets+=(bench_srnn)
for target in "${targets[@]}"; do
  cmake --build "$build" --target "$target" -j 1 >>"$results/cmake.txt"
done
{
  "${CXX:-c++}" --version | head -n 1
  grep -h 'CXX_FLAGS\|CXX_DEFINES' "$build/benchmarks/CMakeFiles/bench_models.dir/flags.make"
} >"$results/compiler.txt"

export OMP_NUM_THREADS=$threads
bench=$build/benchmarks/bench_models
echo "== ours: GEMM rate and layers" >&2
run_logged "$results/ours_layers.txt" "$bench" --sections peak,gemm,layers "${size[@]}" \
  --steps "$steps" --warmup "$warmup" --json "$results/ours_layers.json"
if [ -x "$build/benchmarks/bench_srnn" ]; then
  echo "== bench_srnn" >&2
  run_logged "$results/bench_srnn.txt" "$build/benchmarks/bench_srnn"
fi

have_openvino=0
peer=benchmarks/torch_peer.py
if [ -n "$python_torch" ]; then
  "$python_torch" -c 'import sys; print(sys.executable)' >"$results/peer_python.txt"
  if "$python_torch" -c 'import openvino, onnx' >/dev/null 2>&1; then
    have_openvino=1
  else
    echo "$python_torch has no openvino + onnx: OpenVINO columns left empty (pip install openvino onnx)" >&2
  fi
  echo "== pytorch: SRNN skips" >&2
  run_logged "$results/torch_srnn.json" "$python_torch" "$peer" bench-srnn "${size[@]}" --threads "$threads" \
    --steps "$steps" --warmup "$warmup"
else
  echo "no python3 with torch: PyTorch columns left empty (apt-get install python3-torch)" >&2
fi

# Rounds: each round measures every model with ours, then PyTorch, then OpenVINO, one right after
# the other, so that a ratio compares runs minutes apart at most. A shared (virtual) machine's speed
# drifts by tens of percent over minutes; make_results.py reports the median over the rounds and
# the range of the per-round ratios.
for round in $(seq 1 "$rounds"); do
  for model in $models; do
    echo "== round $round: ours: $model" >&2
    run_logged "$results/ours_$model.r$round.txt" "$bench" --sections models --models "$model" \
      "${size[@]}" --steps "$steps" --warmup "$warmup" --json "$results/ours_$model.r$round.json"
    if [ -n "$python_torch" ]; then
      echo "== round $round: pytorch: $model" >&2
      run_logged "$results/torch_$model.r$round.json" "$python_torch" "$peer" bench --model "$model" \
        "${size[@]}" --threads "$threads" --steps "$steps" --warmup "$warmup"
    fi
    if [ "$have_openvino" = 1 ]; then
      echo "== round $round: openvino (float32, ONNX export of the peer's graph): $model" >&2
      run_logged "$results/openvino_$model.r$round.json" "$python_torch" "$peer" bench-openvino \
        --model "$model" --height "${HEIGHT:-160}" --width "${WIDTH:-192}" --threads "$threads" \
        --steps "$steps" --warmup "$warmup"
    fi
  done
done

kill "$sampler" 2>/dev/null || true
python3 benchmarks/make_results.py "$results" --threads "$threads" --steps "$steps" \
  --warmup "$warmup" --rounds "$rounds" ${README_SUMMARY:+--readme "$README_SUMMARY"} >"$out"
echo "wrote $out" >&2
