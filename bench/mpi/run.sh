#!/bin/sh
# run.sh - bench_mpi's figures on this machine, one per line.
#
#  (a) empty tasks: round trip and throughput through an MPI pool of 3
#      ranks (2 serving ranks of 1 process) beside a local pool of 2
#      processes on rank 0;
#  (b) 200 CPU-bound tasks of 20 ms: 1 serving rank x 1 process (the
#      baseline), 1 rank x 2 processes, 2 ranks x 1 process, and the
#      speedup of each over the baseline;
#  (c) 1,000 tasks, 10 of which crash, over 3 serving ranks.
#
# usage: bench/mpi/run.sh [DIR]   DIR: a build directory, or the directory
#        of bench_mpi (default: build, beside this script's project)
# Extra mpirun options may come in MPIRUN_FLAGS. Ranks run unbound
# (--bind-to none): bound, as Open MPI binds when there are as many cores as
# ranks, a serving rank's worker processes would all share its one core.
# About 3 minutes on 2 CPUs, most of it (a)'s 500,000 tasks through MPI.
set -u

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/../../build}
if [ -x "$dir/bench_mpi" ]; then
    bench=$dir/bench_mpi
elif [ -x "$dir/bench/mpi/bench_mpi" ]; then
    bench=$dir/bench/mpi/bench_mpi
else
    echo "run.sh: no bench_mpi in $dir or $dir/bench/mpi (build it first)" >&2
    exit 1
fi
if ! command -v mpirun >/dev/null 2>&1; then
    echo "SKIP: mpirun not found (install openmpi-bin and libopenmpi-dev)"
    exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/walls-bench-mpi.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

# shellcheck disable=SC2086 # MPIRUN_FLAGS is a list of options
mpi() {
    np=$1
    shift
    mpirun --allow-run-as-root --oversubscribe --bind-to none ${MPIRUN_FLAGS:-} -np "$np" "$bench" "$@"
}

# save FILE NP ARGS...: one run of bench_mpi, shown and kept in FILE; stops
# the script if it fails.
save() {
    file=$1
    shift
    mpi "$@" >"$file" 2>&1
    rc=$?
    cat "$file"
    if [ "$rc" -ne 0 ]; then
        echo "run.sh: bench_mpi $* failed (exit status $rc)" >&2
        exit 1
    fi
}

# A figure from a saved run: the last field of the line starting with $2.
figure() {
    awk -v key="$2" 'index($0, key " ") == 1 { v = $NF } END { print v }' "$1"
}

echo "# bench_mpi on $(uname -n): $(nproc) CPUs, $(mpirun --version 2>/dev/null | head -n 1)"

echo "# (a) empty tasks, 3 ranks"
save "$tmp/latency" 3 latency

echo "# (b) 200 CPU-bound tasks of 20 ms"
# The baseline calibrates the spin loop; the others do as many iterations.
iters=
for layout in "2 1 1x1" "2 2 1x2" "3 1 2x1"; do
    # shellcheck disable=SC2086 # three words: ranks, processes, name
    set -- $layout
    echo "# $3: $(($1 - 1)) serving rank(s) x $2 process(es)"
    # shellcheck disable=SC2086 # iters is empty or one number
    save "$tmp/cpu-$3" "$1" cpu "$2" 200 20 3 $iters
    iters=$(figure "$tmp/cpu-1x1" "cpu iterations_per_task")
done
base=$(figure "$tmp/cpu-1x1" "cpu wall_ms")
for layout in 1x1 1x2 2x1; do
    wall=$(figure "$tmp/cpu-$layout" "cpu wall_ms")
    echo "cpu $layout wall_ms $wall"
    awk -v a="$base" -v b="$wall" -v l="$layout" \
        'BEGIN { if (b > 0) printf "cpu %s speedup_over_1x1 %.2f\n", l, a / b }'
done

echo "# (c) crash containment: 1,000 tasks, 10 crash, 3 serving ranks"
save "$tmp/crash" 4 crash
