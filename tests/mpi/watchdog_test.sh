#!/bin/bash
# The MPI transport's communication thread, under mpirun:
#   1. MPI initialised by the program with MPI_THREAD_FUNNELED is refused, the message naming the
#      level granted and the one needed (MPI_THREAD_SERIALIZED);
#   2. a rank that hangs while the other waits for a gradient sum (the communication thread's wait)
#      ends the job non-zero through the watchdog (UNETSRNN_MPI_TIMEOUT=2) within 30 s.
# Usage: watchdog_test.sh MPIRUN TEST_MPI_TRAIN. Exit 77 (skipped) without mpirun.
set -u
mpirun="$1" program="$2"
if [ -z "$mpirun" ] || ! command -v "$mpirun" >/dev/null 2>&1; then
  echo "SKIPPED: no mpirun found (Debian: apt-get install openmpi-bin)"; exit 77
fi
fail() { echo "FAIL: $*"; exit 1; }
out=$("$mpirun" -np 1 "$program" --funneled 2>&1) || { echo "$out"; fail "--funneled"; }
echo "$out"
echo "ok: MPI_THREAD_FUNNELED is refused with a message naming the level needed"

t=$(date +%s.%N)
out=$(UNETSRNN_MPI_TIMEOUT=2 timeout 60 "$mpirun" -np 2 --oversubscribe "$program" \
      --hang-in-gradient-sum 2>&1); status=$?
elapsed=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "$out" | grep -v '^$' | head -5
[ "$status" -ne 0 ] || fail "the job exited 0 with a hung rank"
[ "$status" -ne 124 ] || fail "the job hung (killed after 60 s)"
echo "$out" | grep -q "gradient all-reduce got no answer in 2 s" || fail "no watchdog message"
awk -v e="$elapsed" 'BEGIN { exit !(e < 30) }' || fail "the job took ${elapsed} s (limit 30)"
echo "ok: a rank hung during a gradient sum ends the job (status $status) in ${elapsed} s"
echo "watchdog_test: all passed"
