#!/usr/bin/env bash
# Times bench_models' training step and inference at two commits, alternating A B A B, so that a
# change that should not change speed (a refactoring) can be checked against its parent.
#   bash benchmarks/compare_commits.sh A B            # e.g. 57b5f7a^ 57b5f7a
# Environment: MODELS (default: the original's four), REPS (default 2), STEPS (default 3), THREADS
# (default 1), NICE (default -20 when root, else 0: on a shared machine a nice -20 single thread
# keeps its core). Each commit is built once in build-compare/<commit>/ from a detached worktree.
# Prints the machine and one bench_models row per run; compare the fastest runs of each commit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 COMMIT_A COMMIT_B" >&2; exit 2; }
models=${MODELS:-unet2d_lw crunet_res_lw unet2d_res_hw crunet_res_hw}
reps=${REPS:-2}
steps=${STEPS:-3}
threads=${THREADS:-1}
nice=${NICE:-$([ "$(id -u)" = 0 ] && echo -20 || echo 0)}
declare -A bin
for c in "$1" "$2"; do
  sha=$(git rev-parse --short "$c")
  dir=build-compare/$sha
  if [ ! -x "$dir/build/benchmarks/bench_models" ]; then
    rm -rf "$dir/src"
    mkdir -p "$dir"
    git worktree add -f --detach "$dir/src" "$sha" >/dev/null
    cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DUNETSRNN_BUILD_BENCHMARKS=ON \
      -DUNETSRNN_BUILD_TESTS=OFF -DUNETSRNN_BUILD_EXAMPLES=OFF -DUNETSRNN_CUDA=OFF \
      -DUNETSRNN_MPI=OFF >/dev/null
    cmake --build "$dir/build" --target bench_models -j "$(nproc)" >/dev/null
    git worktree remove --force "$dir/src"
  fi
  bin[$c]=$dir/build/benchmarks/bench_models
done
echo "date: $(date -u '+%F %T UTC'); CPU:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2);" \
  "$(nproc) logical CPUs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "threads $threads, nice $nice, $steps steps after 1 warm-up; A = $1 ($(git rev-parse --short "$1")), B = $2 ($(git rev-parse --short "$2"))"
echo "run  commit model              params    step ms     GFLOP  GFLOP/s   %GEMM   infer ms   img/s b   infer GF   RSS MiB"
for rep in $(seq "$reps"); do
  for m in $models; do
    for c in "$1" "$2"; do
      row=$(OMP_NUM_THREADS=$threads nice -n "$nice" "${bin[$c]}" --sections models --models "$m" \
        --steps "$steps" --warmup 1 2>/dev/null | tail -n 1)
      printf '%-4s %-6s %s\n' "$rep" "$([ "$c" = "$1" ] && echo A || echo B)" "$row"
    done
  done
done
