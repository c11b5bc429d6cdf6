#!/bin/sh
# run-mpi-tests.sh - libwalls-mpi's checks under mpirun, on this machine.
#
# Runs each subcommand of test-mpi (test-mpi.c says what each asserts) as a
# job of 3 ranks and checks its exit status; Open MPI's --timeout bounds
# every job, so a hang fails instead of blocking. After each job: no
# process of it is left (none with the job's WALLS_MPI_TEST_DIR in its
# environment, which every rank's fork server and workers inherit, and
# none running test-mpi from BINDIR), and no /dev/shm entry appeared that
# nothing holds open. Then a serving rank is killed with SIGKILL in the
# middle of a job: mpirun must end the job, nonzero, within 60 s, saying
# which rank died, and leave nothing behind. Last, a serving rank is
# stopped with SIGSTOP: rank 0 must give up its limited tasks within the
# grace and run the rest on the other rank.
#
# usage: run-mpi-tests.sh BINDIR    (the directory of test-mpi and test-mpi-other)
# Exit: 0 all passed, 1 a check failed, 77 mpirun missing (skipped).
set -u

bindir=${1:?usage: run-mpi-tests.sh BINDIR}
if ! command -v mpirun >/dev/null 2>&1; then
    echo "SKIP: mpirun not found (install openmpi-bin and libopenmpi-dev)"
    exit 77
fi
bindir=$(cd "$bindir" && pwd) || exit 1
for program in test-mpi test-mpi-other; do
    if [ ! -x "$bindir/$program" ]; then
        echo "run-mpi-tests.sh: FAIL: $bindir/$program missing" >&2
        exit 1
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/walls-mpi-tests.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

# Open MPI's --timeout aborts a job after that many seconds; wait_job's own
# bound is a little longer, in case mpirun itself hangs.
JOB_TIMEOUT=120
MPIRUN="mpirun --allow-run-as-root --oversubscribe --timeout $JOB_TIMEOUT -x WALLS_MPI_TEST_DIR"
failed=0

fail() {
    echo "run-mpi-tests.sh: FAIL: $*" >&2
    failed=1
}

# start_job NAME COMMAND...: runs COMMAND in the background with its own
# WALLS_MPI_TEST_DIR, output to $tmp/NAME.log; sets job_pid and job_dir.
start_job() {
    job_name=$1
    shift
    job_dir=$tmp/$job_name
    mkdir -p "$job_dir"
    # shellcheck disable=SC2012 # names in /dev/shm are plain
    ls -A /dev/shm 2>/dev/null | sort >"$tmp/$job_name.shm-before"
    job_start=$(date +%s)
    WALLS_MPI_TEST_DIR=$job_dir "$@" >"$tmp/$job_name.log" 2>&1 &
    job_pid=$!
}

# wait_job SECONDS: waits for the job at most that long (killing mpirun
# past it), prints its output, and sets job_rc and job_seconds.
wait_job() {
    bound=$1
    while kill -0 "$job_pid" 2>/dev/null && [ $(($(date +%s) - job_start)) -lt "$bound" ]; do
        sleep 1
    done
    if kill -0 "$job_pid" 2>/dev/null; then
        fail "$job_name: mpirun still running after ${bound} s: killed"
        kill -TERM "$job_pid" 2>/dev/null
        sleep 5
        kill -KILL "$job_pid" 2>/dev/null
    fi
    wait "$job_pid"
    job_rc=$?
    job_seconds=$(($(date +%s) - job_start))
    sed "s/^/[$job_name] /" "$tmp/$job_name.log"
}

# Processes of the current job: those whose environment holds its
# WALLS_MPI_TEST_DIR, and any running a test-mpi of BINDIR.
job_processes() {
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}
        pid=${pid%/environ}
        if tr '\0' '\n' 2>/dev/null <"$environ" | grep -qxF "WALLS_MPI_TEST_DIR=$job_dir"; then
            echo "$pid"
        fi
    done
    pgrep -f "$bindir/test-mpi" 2>/dev/null
}

# check_clean: within 10 s no process of the job is left (those found are
# named, then killed), and every /dev/shm entry that appeared during the
# job is gone or held by a live process (another program's, then).
check_clean() {
    left=
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        left=$(job_processes | sort -un)
        [ -z "$left" ] && break
        sleep 1
    done
    if [ -n "$left" ]; then
        fail "$job_name: processes left 10 s after the job ended:"
        for pid in $left; do
            ps -o pid=,ppid=,args= -p "$pid" >&2
        done
        for pid in $left; do
            kill -KILL "$pid" 2>/dev/null
        done
    fi
    # shellcheck disable=SC2012
    ls -A /dev/shm 2>/dev/null | sort >"$tmp/$job_name.shm-after"
    for name in $(comm -13 "$tmp/$job_name.shm-before" "$tmp/$job_name.shm-after"); do
        [ -e "/dev/shm/$name" ] || continue
        holder=
        for maps in /proc/[0-9]*/maps; do
            if grep -qF "/dev/shm/$name" "$maps" 2>/dev/null; then
                holder=${maps#/proc/}
                holder=${holder%/maps}
                break
            fi
        done
        if [ -z "$holder" ]; then
            for fd in /proc/[0-9]*/fd/*; do
                if [ "$(readlink "$fd" 2>/dev/null)" = "/dev/shm/$name" ]; then
                    holder=${fd#/proc/}
                    holder=${holder%%/*}
                    break
                fi
            done
        fi
        if [ -n "$holder" ]; then
            echo "[$job_name] note: /dev/shm/$name is new, held by pid $holder ($(ps -o args= -p "$holder"))"
        else
            fail "$job_name: /dev/shm/$name was left behind ($(ls -l "/dev/shm/$name"))"
        fi
    done
}

# run_check NAME EXPECTED_RC COMMAND...: one job that must exit EXPECTED_RC.
run_check() {
    check=$1
    want=$2
    shift 2
    start_job "$check" "$@"
    wait_job $((JOB_TIMEOUT + 30))
    if [ "$job_rc" -ne "$want" ]; then
        fail "$check: exit status $job_rc, expected $want ($job_seconds s; output above)"
    else
        echo "run-mpi-tests.sh: $check passed ($job_seconds s)"
    fi
    check_clean
}

for check in correct crash timeout cancel destroy fair args limits limits-own threads broken; do
    # shellcheck disable=SC2086
    run_check "$check" 0 $MPIRUN -np 3 "$bindir/test-mpi" "$check"
done

# Rank 0 runs one build, ranks 1 and 2 another.
# shellcheck disable=SC2086
run_check mismatch 0 $MPIRUN -np 1 "$bindir/test-mpi" mismatch : \
    -np 2 "$bindir/test-mpi-other" mismatch

# await_line LINE: waits up to 60 s for every rank's pid file and for LINE
# in the job's output; sets rank1 to rank 1's pid. Returns 1 (after
# failing and reaping the job) when the job did not get there.
await_line() {
    waited=0
    while [ "$waited" -lt 60 ]; do
        [ -s "$job_dir/rank-1.pid" ] && [ -s "$job_dir/rank-2.pid" ] &&
            [ -s "$job_dir/rank-0.pid" ] && grep -q "$1" "$tmp/$job_name.log" && break
        kill -0 "$job_pid" 2>/dev/null || break
        sleep 1
        waited=$((waited + 1))
    done
    rank1=$(cat "$job_dir/rank-1.pid" 2>/dev/null)
    if [ -z "$rank1" ] || ! kill -0 "$job_pid" 2>/dev/null; then
        fail "$job_name: the job did not start (no rank-1.pid, or mpirun ended)"
        wait_job 30
        return 1
    fi
}

# A serving rank dies: rank 1 is killed with SIGKILL while tasks run.
# shellcheck disable=SC2086
start_job victim $MPIRUN -np 3 "$bindir/test-mpi" victim
if await_line "ok victim submitted"; then
    victim=$rank1
    sleep 3 # tasks are running on both ranks now
    case $(tr '\0' ' ' 2>/dev/null <"/proc/$victim/cmdline") in
    *test-mpi*victim*) ;;
    *) fail "victim: pid $victim from rank-1.pid is not rank 1 of the job" ;;
    esac
    kill -KILL "$victim"
    killed_at=$(date +%s)
    job_start=$killed_at
    wait_job 60
    since=$(($(date +%s) - killed_at))
    if [ "$job_rc" -eq 0 ]; then
        fail "victim: mpirun exited 0 after rank 1 (pid $victim) was killed"
    elif ! grep -Eqi 'rank[^0-9a-z]*1([^0-9]|$)' "$tmp/victim.log"; then
        fail "victim: mpirun exited $job_rc but its output does not name rank 1"
    else
        echo "run-mpi-tests.sh: victim passed: mpirun exited $job_rc ${since} s after rank 1 was killed, naming it"
    fi
fi
check_clean

# A serving rank alive but silent: rank 1 is stopped with SIGSTOP; rank 0
# must give its limited tasks up within the grace and run the rest on
# rank 2. Rank 1 is resumed for the pool's destruction.
# shellcheck disable=SC2086
start_job silent $MPIRUN -np 3 "$bindir/test-mpi" silent
if await_line "ok silent ready"; then
    silent=$rank1
    kill -STOP "$silent"
    : >"$job_dir/stopped"
    waited=0
    while [ "$waited" -lt 60 ] && kill -0 "$job_pid" 2>/dev/null &&
        ! grep -q "ok silent given up" "$tmp/silent.log"; do
        sleep 1
        waited=$((waited + 1))
    done
    kill -CONT "$silent"
    wait_job 120
    if [ "$job_rc" -ne 0 ]; then
        fail "silent: exit status $job_rc, expected 0 (output above)"
    else
        echo "run-mpi-tests.sh: silent passed (${job_seconds} s)"
    fi
fi
check_clean

if [ "$failed" -ne 0 ]; then
    echo "run-mpi-tests.sh: some checks FAILED (see above)" >&2
    exit 1
fi
echo "run-mpi-tests.sh: all checks passed"
exit 0
