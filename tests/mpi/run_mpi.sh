#!/bin/sh
# run_mpi.sh MPIRUN NP PROGRAM [ARGS...]: PROGRAM under `MPIRUN -np NP`, or exit 77 (CTest: skipped)
# with the reason when there is no mpirun.
mpirun="$1"; np="$2"; shift 2
if [ -z "$mpirun" ] || [ ! -x "$mpirun" ] && ! command -v "$mpirun" >/dev/null 2>&1; then
  echo "SKIPPED: no mpirun found (Debian: apt-get install openmpi-bin)"; exit 77
fi
exec "$mpirun" -np "$np" --oversubscribe "$@"
