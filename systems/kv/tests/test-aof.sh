#!/bin/sh
# test-aof.sh - walls-kv's append-only file: what was written comes back
# after kill -9 of the whole server; a torn last record is dropped with a
# log line and the file cut there; a damaged file stops the start with a
# message; every fsync policy keeps what a clean stop wrote; relative
# expiries come back as instants, and expiries that passed while the
# server was down take effect after the load; nothing is left running.
#
#   test-aof.sh WALLS_KV_BINARY
#
# Exit 0: passed; 1: failed; 77: skipped (redis-cli missing).
set -eu
LC_ALL=C
export LC_ALL
KV=$1
command -v redis-cli >/dev/null 2>&1 || { echo "SKIP: redis-cli is not installed"; exit 77; }
WORK=$(mktemp -d /tmp/walls-kv-aof.XXXXXX)
PID=""
FAILED=
cleanup() {
    rc=$?
    # A command that failed outside a check stops the script (set -e):
    # say so, so that the failure is not a bare exit status.
    if [ "$rc" -ne 0 ] && [ -z "$FAILED" ]; then
        echo "FAIL: stopped by a failed command (exit $rc); the last lines above show where"
    fi
    [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

fail() {
    FAILED=1
    echo "FAIL: $*"
    [ -f "$WORK/log" ] && sed 's/^/  log: /' "$WORK/log"
    exit 1
}

# start FSYNC: the server on a free port, its log in $WORK/log.
start() {
    rm -f "$WORK/port"
    "$KV" --port 0 --bind 127.0.0.1 --backends 2 --threads 1 --appendonly yes \
        --appendfsync "$1" --dir "$WORK" > "$WORK/port" 2> "$WORK/log" &
    PID=$!
    for _ in $(seq 1 100); do
        [ -s "$WORK/port" ] && break
        kill -0 "$PID" 2>/dev/null || fail "walls-kv did not start"
        sleep 0.05
    done
    PORT=$(head -n 1 "$WORK/port")
    [ -n "$PORT" ] || fail "no port"
}

cli() {
    redis-cli -h 127.0.0.1 -p "$PORT" "$@"
}

expect() {
    want=$1
    shift
    got=$(cli "$@" | tr '\n' ' ' | sed 's/ $//')
    [ "$got" = "$want" ] || fail "$* -> '$got', wanted '$want'"
}

# 1. Written under always, then kill -9: all of it comes back.
start always
expect OK set greeting hello
expect 3 rpush list a b c
expect 2 hset hash f1 v1 f2 v2
expect OK set soon gone px 300
expect OK set later stays ex 1000
expect 1 pexpire greeting 100000000
for i in $(seq 1 50); do cli incr counter > /dev/null; done
expect 3 sadd set m1 m2 m3
popped=$(cli spop set)
kill -KILL "$PID"
wait "$PID" 2>/dev/null || true
PID=""
sleep 0.5 # let "soon" expire meanwhile

start always
expect hello get greeting
expect "a b c" lrange list 0 -1
expect v1 hget hash f1
expect v2 hget hash f2
expect 2 hlen hash
expect 50 get counter
expect 0 exists soon
expect 2 scard set
expect 0 sismember set "$popped"
ttl=$(cli ttl later)
[ "$ttl" -gt 990 ] && [ "$ttl" -le 1000 ] || fail "ttl of later: $ttl (an instant, not a new 1000 s)"
ttl=$(cli ttl greeting)
[ "$ttl" -gt 99000 ] || fail "ttl of greeting: $ttl"
grep -q "DB loaded from append only file" "$WORK/log" || fail "no replay said"
kill -TERM "$PID"
wait "$PID" || fail "walls-kv did not stop cleanly"
PID=""

# 2. A torn last record: dropped, said, and the file cut to the whole ones.
size=$(wc -c < "$WORK/appendonly.aof")
printf '*3\r\n$3\r\nSET\r\n$4\r\ntorn\r\n$5\r\nab' >> "$WORK/appendonly.aof"
start everysec
grep -q "torn record" "$WORK/log" || fail "the torn record was not reported"
expect "" get torn
expect 50 get counter
now=$(wc -c < "$WORK/appendonly.aof")
[ "$now" -eq "$size" ] || fail "the file is $now bytes after the cut, wanted $size"
expect OK set after kept
kill -TERM "$PID"
wait "$PID" || fail "walls-kv did not stop cleanly"
PID=""

# 3. Every policy keeps what a clean stop wrote.
for policy in no everysec always; do
    start "$policy"
    expect kept get after
    expect OK set "policy:$policy" yes
    kill -TERM "$PID"
    wait "$PID" || fail "walls-kv did not stop cleanly ($policy)"
    PID=""
done
start no
expect "yes yes yes" mget policy:no policy:everysec policy:always
kill -TERM "$PID"
wait "$PID" || fail "walls-kv did not stop cleanly"
PID=""

# 4. A damaged file (not a torn end): the start stops, and says where.
cp "$WORK/appendonly.aof" "$WORK/good.aof"
printf 'garbage that is not RESP\r\n*1\r\n$4\r\nPING\r\n' > "$WORK/bad"
cat "$WORK/bad" "$WORK/good.aof" > "$WORK/appendonly.aof"
if timeout 10 "$KV" --port 0 --appendonly yes --dir "$WORK" --quiet > /dev/null 2> "$WORK/log"; then
    fail "walls-kv started on a damaged file"
fi
grep -q "damaged at byte" "$WORK/log" || fail "no message for the damaged file"

# 5. --appendonly no leaves the file alone and starts empty.
cp "$WORK/good.aof" "$WORK/appendonly.aof"
rm -f "$WORK/port"
"$KV" --port 0 --bind 127.0.0.1 --dir "$WORK" --quiet > "$WORK/port" 2> "$WORK/log" &
PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
PORT=$(head -n 1 "$WORK/port")
expect 0 dbsize
kill -TERM "$PID"
wait "$PID" || fail "walls-kv did not stop cleanly"
PID=""
cmp -s "$WORK/good.aof" "$WORK/appendonly.aof" || fail "the file changed with --appendonly no"

# 6. Expiries across a restart, as Redis replays them (nothing expires
#    while the file loads): a key changed before its expiry and restarted
#    after it is gone, not back without its expiry; one that expired
#    while the server ran and was made again (by a write, or after a read
#    met it expired) comes back as made again.
rm -f "$WORK/appendonly.aof"
start always
expect OK set s abc px 1500
expect 6 append s XYZ
expect OK set n 5 px 1500
expect 6 incr n
expect 1 rpush l a
expect 1 pexpire l 1500
expect 2 rpush l b
expect 1 hset h f 1
expect 1 pexpire h 1500
expect 11 hincrby h f 10
expect 1 sadd st a
expect 1 pexpire st 1500
expect 1 sadd st b
expect OK set w old px 200
expect OK set r old px 200
sleep 0.4
expect 3 append w new
expect "" get r
expect 1 rpush r x
sleep 1.4
kill -TERM "$PID"
wait "$PID" || fail "walls-kv did not stop cleanly"
PID=""
start always
for k in s n l h st; do
    expect none type "$k"
done
expect new get w
expect -1 pttl w
expect x lrange r 0 -1
expect -1 pttl r
expect 2 dbsize
kill -TERM "$PID"
wait "$PID" || fail "walls-kv did not stop cleanly"
PID=""

sleep 0.2
# Only this test's servers: each was given --dir $WORK.
if pgrep -f -- "--dir $WORK" > /dev/null; then
    fail "a walls-kv is left running"
fi
echo "PASS: append-only file"
