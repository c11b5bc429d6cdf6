#!/bin/sh
# run.sh - walls-kv beside redis-server on this machine, one after the
# other, with the same persistence settings (figures only; see
# docs/benchmarks.md for what they mean).
#
#   bench/kv/run.sh [BUILD_DIR]      (default: build-release)
#
# Needs redis-server and redis-tools (installed if missing, as root).
# RUNS (3) runs of each redis-benchmark line, medians; KV_FLAGS are extra
# flags for walls-kv (default: --backends 2 --threads 2); KILL_SECONDS (30)
# is the length of the kill -9 experiment. Everything listens on 127.0.0.1.
#
#   1. redis-benchmark -q -n 200000 -c 50 -t set,get,incr,lpush,rpush,lpop,
#      rpop,hset,mset at -P 1 and -P 16, without persistence and with
#      appendonly yes / appendfsync everysec
#   2. kill -9 of one backend every 2 s during a KILL_SECONDS run of
#      clients doing INCR and RPUSH (kv-crash), beside the same run
#      undisturbed; the checker's verdict
#   3. kill -9 of redis-server during a redis-benchmark run: what its
#      clients see
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$TOP/build-release}
RUNS=${RUNS:-3}
KV_FLAGS=${KV_FLAGS:---backends 2 --threads 2}
KILL_SECONDS=${KILL_SECONDS:-30}
KV=$BUILD/systems/kv/walls-kv
CRASH=$BUILD/systems/kv/kv-crash
[ -x "$KV" ] && [ -x "$CRASH" ] || { echo "build first: make build-release ($KV missing)"; exit 1; }
need=""
for p in redis-server redis-tools; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
    echo "installing$need"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
# The Debian service, if it runs, would take CPU from both sides.
systemctl stop redis-server 2>/dev/null || true

WORK=$(mktemp -d /tmp/walls-kv-bench.XXXXXX)
PID=""
cleanup() {
    [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
TESTS=set,get,incr,lpush,rpush,lpop,rpop,hset,mset
PORT=26379

start_kv() {
    rm -rf "$WORK/data" && mkdir -p "$WORK/data"
    # shellcheck disable=SC2086
    "$KV" --port $PORT --quiet --dir "$WORK/data" $KV_FLAGS "$@" &
    PID=$!
    wait_up
}

start_redis() {
    rm -rf "$WORK/data" && mkdir -p "$WORK/data"
    redis-server --port $PORT --bind 127.0.0.1 --save '' --dir "$WORK/data" --daemonize no \
        --loglevel warning "$@" > /dev/null &
    PID=$!
    wait_up
}

wait_up() {
    for _ in $(seq 1 100); do
        redis-cli -p $PORT ping > /dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "the server did not come up"
    exit 1
}

stop() {
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}

# bench P: one file per test with RUNS figures, then the medians.
bench() {
    : > "$WORK/raw"
    i=0
    while [ $i -lt "$RUNS" ]; do
        redis-cli -p $PORT flushall > /dev/null
        redis-benchmark -p $PORT -q -n 200000 -c 50 -P "$1" -t $TESTS --csv 2>/dev/null |
            sed 1d | tr -d '"' | awk -F, '{print $1, $2}' >> "$WORK/raw"
        i=$((i + 1))
    done
    for t in $(echo $TESTS | tr ',' ' '); do
        name=$(echo "$t" | tr 'a-z' 'A-Z')
        grep -i "^$name" "$WORK/raw" | awk '{print $NF}' | sort -n |
            sed -n "$(( (RUNS + 1) / 2 ))p" | sed "s/^/$name /"
    done
}

row() { printf '  %-16s %12s %12s %8s\n' "$@"; }

compare() {
    label=$1
    shift
    for p in 1 16; do
        start_kv "$@"
        bench $p > "$WORK/kv"
        stop
        start_redis "$@"
        bench $p > "$WORK/redis"
        stop
        echo
        echo "$label, -P $p (requests per second, median of $RUNS)"
        row test walls-kv redis ratio
        while read -r name kv; do
            redis=$(awk -v n="$name" '$1 == n {print $2}' "$WORK/redis")
            ratio=$(awk -v a="$kv" -v b="$redis" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')
            row "$name" "$kv" "$redis" "${ratio}x"
        done < "$WORK/kv"
    done
}

echo "walls-kv ($KV_FLAGS) beside redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
echo "machine: $(nproc) CPUs, $(uname -r); redis-benchmark -q -n 200000 -c 50"
compare "1. no persistence" --appendonly no
compare "1. appendonly yes, appendfsync everysec" --appendonly yes --appendfsync everysec

echo
echo "2. kill -9 of one backend every 2 s for ${KILL_SECONDS} s (walls-kv, kv-crash's clients: INCR on 100 keys, RPUSH of 200 on 10 lists, 8 connections)"
"$CRASH" "$KV" timed "$KILL_SECONDS" 0 8 > "$WORK/calm" 2>&1 || true
"$CRASH" "$KV" timed "$KILL_SECONDS" 2000 8 > "$WORK/kills" 2>&1 || verdict=failed
calm=$(sed -n 's/.*: \([0-9]*\) replies\/s.*/\1/p' "$WORK/calm")
kills=$(sed -n 's/.*: \([0-9]*\) replies\/s.*/\1/p' "$WORK/kills")
echo "  undisturbed: ${calm} replies/s; with kills: ${kills} replies/s; ratio $(awk -v a="$kills" -v b="$calm" 'BEGIN {printf "%.2f", a / b}')x"
sed 's/^/  /' "$WORK/kills"
echo "  checker: ${verdict:-passed}"

echo
echo "3. kill -9 of redis-server during redis-benchmark -t incr -c 50"
start_redis --appendonly no
redis-benchmark -p $PORT -t incr -n 100000000 -c 50 > "$WORK/rb" 2>&1 &
RB=$!
sleep 3
kill -KILL "$PID"
wait "$PID" 2>/dev/null || true
PID=""
sleep 1
kill "$RB" 2>/dev/null || true
wait "$RB" 2>/dev/null || true
echo "  what redis-benchmark said once the server was gone:"
tr '\r' '\n' < "$WORK/rb" | grep -iv "requests per second\|^$\|rps=" | tail -3 | sed 's/^/    /'
echo "  the server's data: gone with it (no persistence); with appendonly, up to the last sync"
