#!/bin/bash
# The train program under mpirun -np 2 (global batch 4, synthetic 32 x 32 data, unet2d_lw):
#   1. two identical distributed runs write bit-identical weights;
#   2. a rank killed (SIGKILL) mid-epoch ends the job with a non-zero status within 60 s;
#   3. --resume then completes and its weights equal the uninterrupted run's bit for bit;
#   4. a rank that hangs (SIGSTOP) ends the job within the watchdog's deadline
#      (UNETSRNN_MPI_TIMEOUT=5) plus 30 s, non-zero.
# Usage: fault_test.sh MPIRUN TRAIN TEST_MPI_TRAIN WORKDIR. Exit 77 (skipped) without mpirun.
set -u
mpirun="$1" train="$2" writer="$3" work="$4"
if [ -z "$mpirun" ] || ! command -v "$mpirun" >/dev/null 2>&1; then
  echo "SKIPPED: no mpirun found (Debian: apt-get install openmpi-bin)"; exit 77
fi
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$work" && mkdir -p "$work"
"$writer" --write-data "$work/data" 40 32 32 || fail "cannot write synthetic data"
args=(--data "$work/data" --height 32 --width 32 --model unet2d_lw --batch 4 --epochs 4 --seed 3
      --lr 1e-3 --augment --quiet --test-fraction 0.1 --val-fraction 0.1)
run() { "$mpirun" -np 2 --oversubscribe "$train" "${args[@]}" "$@"; }

run --out "$work/full" > "$work/full.txt" 2>&1 || { cat "$work/full.txt"; fail "distributed run failed"; }
grep -q "data parallel over 2 ranks" "$work/full.txt" || fail "the run was not data parallel"
run --out "$work/full2" > "$work/full2.txt" 2>&1 || fail "second distributed run failed"
cmp "$work/full/last.weights" "$work/full2/last.weights" || fail "two identical runs differ"
echo "ok: two identical distributed runs wrote bit-identical weights"

# Starts a run in the background, waits for the checkpoint of epoch 1, then sends SIGNAL to rank 1
# (found in /proc by a tag in its environment and OMPI_COMM_WORLD_RANK); sets `elapsed` (s) and
# `status`.
interrupt() {
  local out="$1" signal="$2" limit="$3"
  UNETSRNN_FAULT_TAG="$out" run --out "$out" > "$out.txt" 2>&1 &
  local job=$! victim="" t
  for _ in $(seq 1 1200); do
    grep -qs "^epoch 1$" "$out/checkpoint.txt" && break
    kill -0 $job 2>/dev/null || break
    sleep 0.05
  done
  grep -qs "^epoch 1$" "$out/checkpoint.txt" || { cat "$out.txt"; fail "no checkpoint of epoch 1"; }
  for environ in /proc/[0-9]*/environ; do
    if tr '\0' '\n' < "$environ" 2>/dev/null | grep -qx "UNETSRNN_FAULT_TAG=$out" &&
       tr '\0' '\n' < "$environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1; then
      victim=$(basename "$(dirname "$environ")")
    fi
  done
  [ -n "$victim" ] || fail "rank 1 not found"
  t=$(date +%s.%N)
  kill -"$signal" "$victim"
  # Bounded wait: past `limit` the job is declared hung (and killed).
  ( sleep "$limit"; kill -9 $job 2>/dev/null ) & local guard=$!
  wait $job; status=$?
  kill $guard 2>/dev/null; wait $guard 2>/dev/null
  kill -9 "$victim" 2>/dev/null  # a stopped rank that outlived the job
  elapsed=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
}

interrupt "$work/cut" KILL 60
echo "killed rank 1 after epoch 1: job status $status after ${elapsed} s"
[ "$status" -ne 0 ] || fail "the job exited 0 after a rank was killed"
awk -v e="$elapsed" 'BEGIN { exit !(e < 60) }' || fail "the job did not end within 60 s"
epoch=$(sed -n 's/^epoch //p' "$work/cut/checkpoint.txt")
[ "$epoch" -lt 4 ] || fail "the kill came after the last epoch (checkpoint epoch $epoch)"
echo "ok: killed mid-run (checkpoint epoch $epoch of 4), job ended non-zero in ${elapsed} s"
run --out "$work/cut" --resume > "$work/resume.txt" 2>&1 || { cat "$work/resume.txt"; fail "resume failed"; }
grep -q "resumed from epoch $epoch" "$work/resume.txt" || fail "did not resume from epoch $epoch"
cmp "$work/full/last.weights" "$work/cut/last.weights" || fail "resumed weights differ"
cmp "$work/full/best.weights" "$work/cut/best.weights" || fail "resumed best weights differ"
echo "ok: --resume completed; weights equal the uninterrupted run's bit for bit"

UNETSRNN_MPI_TIMEOUT=5 interrupt "$work/hang" STOP 35
echo "stopped rank 1 after epoch 1: job status $status after ${elapsed} s"
[ "$status" -ne 0 ] || fail "the job exited 0 with a hung rank"
awk -v e="$elapsed" 'BEGIN { exit !(e < 35) }' || fail "a hung rank kept the job alive past 35 s"
grep -q "got no answer in 5 s" "$work/hang.txt" || { cat "$work/hang.txt"; fail "no watchdog message"; }
echo "ok: a hung rank ends the job (watchdog) in ${elapsed} s"
rm -rf "$work"
echo "fault_test: all passed"
