#!/usr/bin/env bash
# Times bench_models' training step and batch-1 inference on every CPU path this machine runs
# (avx512, avx2, portable), the paths alternating per model and round, so that they compare in one
# run on one machine (issue 9's goal: the portable path within 3x of the AVX2 path). Writes
# benchmarks/CPU_PATHS.md (machine, CPU, instruction sets, date, commit, commands, the table) and
# the raw JSON under build-bench/results/isas/.
#   bash benchmarks/compare_isas.sh
# Environment: MODELS (default: the original's four), ROUNDS (default 3), STEPS (default 3),
# THREADS (default 2), BUILD (default build-bench; bench_models is (re)built there first), OUT
# (default benchmarks/CPU_PATHS.md), REPORT_ONLY=1 (measure nothing: rewrite OUT from the last
# run's raw results). Run it on a quiet machine: nothing else may load the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
models=${MODELS:-unet2d_lw unet2d_res_hw crunet_res_hw crunet_res_lw}
rounds=${ROUNDS:-3}
steps=${STEPS:-3}
threads=${THREADS:-2}
build=${BUILD:-build-bench}
out=${OUT:-benchmarks/CPU_PATHS.md}
raw=$build/results/isas
measure() {
  local bench=$build/benchmarks/bench_models isa m round cmd paths=""
  # Configured once; built every time, so that the timings are of the checked-out code.
  if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DUNETSRNN_BUILD_BENCHMARKS=ON \
      -DUNETSRNN_BUILD_TESTS=OFF -DUNETSRNN_BUILD_EXAMPLES=OFF -DUNETSRNN_CUDA=OFF \
      -DUNETSRNN_MPI=OFF >/dev/null
  fi
  cmake --build "$build" --target bench_models -j "$(nproc)" >/dev/null
  rm -rf "$raw"
  mkdir -p "$raw"
  # The paths this CPU runs: bench_models refuses one it lacks (non-zero exit, nothing timed).
  for isa in avx512 avx2 portable; do
    if OMP_NUM_THREADS=1 "$bench" --isa "$isa" --sections peak >/dev/null 2>&1; then
      paths="$paths $isa"
    else
      echo "compare_isas: the $isa path does not run on this CPU: not measured" >&2
    fi
  done
  date -u '+%F %H:%M UTC' >"$raw/started"
  git describe --always --dirty --abbrev=7 >"$raw/commit"
  echo "$rounds $threads $steps" >"$raw/settings"
  for round in $(seq "$rounds"); do
    for m in $models; do
      for isa in $paths; do
        cmd=("$bench" --isa "$isa" --sections models --models "$m" --threads "$threads" --steps
          "$steps" --warmup 1 --json "$raw/$m.$isa.r$round.json")
        echo "round $round: $m on $isa" >&2
        OMP_NUM_THREADS=$threads "${cmd[@]}" >/dev/null
        if [ "$round" = 1 ]; then echo "OMP_NUM_THREADS=$threads ${cmd[*]}" >>"$raw/commands"; fi
      done
    done
  done
}
if [ "${REPORT_ONLY:-0}" != 1 ]; then measure; fi
# REPORT_ONLY=1: rewrites $OUT from the raw results of the last run.
MODEL_ORDER="$models" python3 - "$raw" "$out" <<'EOF'
import glob, json, os, statistics, sys
raw, out = sys.argv[1:]
def text(name):
    with open(os.path.join(raw, name)) as f:
        return f.read().strip()
started, commit, commands = text("started"), text("commit"), text("commands").splitlines()
rounds, threads, steps = text("settings").split()
runs = {}
for path in sorted(glob.glob(os.path.join(raw, "*.json"))):
    model, isa, rnd = os.path.basename(path).rsplit(".", 3)[:3]
    with open(path) as f:
        doc = json.loads(f.read().strip().splitlines()[-1])
    for m in doc["models"]:
        runs.setdefault((model, isa), {})[rnd] = (m["train_step_ms"], m["infer_b1_ms"])
cpu = "unknown"
flags = set()
with open("/proc/cpuinfo") as f:
    for line in f:
        if line.startswith("model name") and cpu == "unknown":
            cpu = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
isas = " ".join(x for x in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "amx_tile")
                if x in flags)
paths = [p for p in ("avx512", "avx2", "portable") if any(k[1] == p for k in runs)]
models = [m for m in os.environ["MODEL_ORDER"].split() if any(k[0] == m for k in runs)]
med = {k: (statistics.median(s for s, _ in v.values()), statistics.median(i for _, i in v.values()))
       for k, v in runs.items()}
lines = [
    "# CPU paths compared",
    "",
    "Written by `benchmarks/compare_isas.sh`. Do not edit by hand.",
    "",
    f"- Date: {started}",
    f"- Code: commit `{commit}`",
    f"- CPU: {cpu}, {os.cpu_count()} logical CPUs; instruction sets: {isas}",
    f"- Paths measured: {', '.join(paths)} (a path this CPU cannot run is not measured); the "
    "portable path is compiled for the compiler's baseline target (x86-64: SSE2, no FMA), its "
    "convolution products through Eigen's GEMM",
    f"- Threads: {threads}; {steps} timed runs after 1 warm-up per process; {rounds} round(s), "
    "each running every path on one model right after one another; a time is the median over "
    "the rounds of each run's median; training batch 2, images 160 x 192 x 3",
    "- Ratio: the path's median time / the fastest path's (1.00x = the fastest; issue 9's goal "
    "is the portable path within 3x of the AVX2 path), with the smallest and largest per-round "
    "ratio in parentheses",
    "",
    "| model | path | train step ms | ratio | inference ms (b1) | ratio |",
    "|---|---|---:|---:|---:|---:|",
]
for m in models:
    have = [p for p in paths if (m, p) in med]
    best = {q: min(have, key=lambda p: med[(m, p)][q]) for q in (0, 1)}
    for p in have:
        cells = []
        for q in (0, 1):
            t, ref = med[(m, p)][q], med[(m, best[q])][q]
            per_round = [runs[(m, p)][r][q] / runs[(m, best[q])][r][q]
                         for r in runs[(m, p)] if r in runs[(m, best[q])]]
            spread = f" ({min(per_round):.2f}-{max(per_round):.2f})" if p != best[q] else ""
            cells.append(f"{t:.1f} | {t / ref:.2f}x{spread}")
        lines.append(f"| `{m}` | {p} | {cells[0]} | {cells[1]} |")
lines += ["", "## Commands", "", "```", *commands, "```", ""]
with open(out, "w") as f:
    f.write("\n".join(lines))
print("\n".join(lines))
EOF
