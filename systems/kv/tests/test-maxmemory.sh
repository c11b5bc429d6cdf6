#!/bin/sh
# test-maxmemory.sh - walls-kv's --maxmemory: under noeviction, writes past
# the limit get redis-server's OOM error while reads and deletes go on,
# and room made by a DEL is used again; under allkeys-lru, writes go on,
# keys are evicted (INFO says how many), the memory stays near the limit,
# and the keys used last are the ones kept. Without --maxmemory, a value
# larger than its stripe's heap is refused with an OOM error that says so.
#
#   test-maxmemory.sh WALLS_KV_BINARY
#
# Exit 0: passed; 1: failed; 77: skipped (redis-cli missing).
set -eu
LC_ALL=C
export LC_ALL
KV=$1
command -v redis-cli >/dev/null 2>&1 || { echo "SKIP: redis-cli is not installed"; exit 77; }
WORK=$(mktemp -d /tmp/walls-kv-maxmem.XXXXXX)
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
    exit 1
}

start() {
    # The last server's port must not be read for this one's.
    rm -f "$WORK/port"
    "$KV" --port 0 --bind 127.0.0.1 --backends 2 --threads 1 --quiet --dir "$WORK" "$@" > "$WORK/port" &
    PID=$!
    for _ in $(seq 1 100); do
        [ -s "$WORK/port" ] && break
        sleep 0.05
    done
    PORT=$(head -n 1 "$WORK/port")
    [ -n "$PORT" ] || fail "walls-kv did not start"
}

stop() {
    kill -TERM "$PID"
    wait "$PID" || fail "walls-kv did not stop cleanly"
    PID=""
}

cli() {
    redis-cli -h 127.0.0.1 -p "$PORT" "$@"
}

info() {
    cli info "$1" | tr -d '\r' | sed -n "s/^$2://p"
}

# 400 SETs of 10 KB values (4 MB) in one pipeline; their replies in $WORK/replies.
fill() {
    value=$(head -c 10000 /dev/zero | tr '\0' v)
    i=0
    while [ $i -lt 400 ]; do
        printf 'SET %s:%d %s\r\n' "$1" "$i" "$value"
        i=$((i + 1))
    done > "$WORK/cmds"
    cli < "$WORK/cmds" > "$WORK/replies"
}

# noeviction: 2 MB holds about 200 of them.
start --maxmemory 2mb --maxmemory-policy noeviction
fill a
ok=$(grep -c '^OK$' "$WORK/replies" || true)
oom=$(grep -c "^OOM command not allowed when used memory > 'maxmemory'.$" "$WORK/replies" || true)
[ "$ok" -gt 50 ] && [ "$ok" -lt 400 ] || fail "noeviction: $ok SETs took, wanted some but not all"
[ $((ok + oom)) -eq 400 ] || fail "noeviction: $ok OK and $oom OOM replies of 400"
[ "$(cli get a:0 | head -c 3)" = vvv ] || fail "a read failed over the limit"
[ "$(cli dbsize)" -eq "$ok" ] || fail "dbsize $(cli dbsize), wanted $ok"
[ "$(info memory maxmemory_policy)" = noeviction ] || fail "INFO does not say noeviction"
# Over the limit, a command that may grow the table is refused whatever
# key it names, existing ones too, before it runs (as redis-server):
# writes to existing keys cannot take the table past the limit.
OOMTEXT="OOM command not allowed when used memory > 'maxmemory'."
big=$(head -c 10000 /dev/zero | tr '\0' w)
for cmd in "rpush a:list $big" "sadd a:set $big" "hset a:hash f $big" "append a:1 $big" \
    "incrby a:count 1" "incr a:1"; do
    [ "$(cli $cmd)" = "$OOMTEXT" ] || fail "over the limit: $(echo "$cmd" | cut -c1-20) was not refused"
done
used=$(info memory used_memory)
[ "$used" -le 2200000 ] || fail "used_memory $used after refused writes"
# A MULTI queues nothing over the limit, and its EXEC aborts.
printf 'MULTI\r\nDEL a:5\r\nSET q 1\r\nEXEC\r\n' | cli > "$WORK/multi"
[ "$(grep -v '^$' "$WORK/multi" | tr '\n' '|')" = \
  "OK|$OOMTEXT|$OOMTEXT|EXECABORT Transaction discarded because of previous errors.|" ] ||
    fail "MULTI over the limit: $(tr '\n' '|' < "$WORK/multi")"
[ "$(cli exists a:5)" -eq 1 ] || fail "an aborted EXEC deleted a key"
# A delete is not refused, and its room is used again.
[ "$(cli del a:0 a:1 a:2 a:3 a:4)" -eq 5 ] || fail "DEL over the limit"
[ "$(cli set again x)" = OK ] || fail "a SET after a DEL was refused"
[ "$(cli config get maxmemory | tail -n 1)" = 2097152 ] || fail "CONFIG GET maxmemory"
stop

# allkeys-lru: every write takes; old keys go.
start --maxmemory 2mb --maxmemory-policy allkeys-lru
fill b
[ "$(grep -c '^OK$' "$WORK/replies")" -eq 400 ] || fail "allkeys-lru refused writes"
evicted=$(info stats evicted_keys)
[ "$evicted" -gt 100 ] || fail "allkeys-lru evicted $evicted keys"
used=$(info memory used_memory)
[ "$used" -le 2400000 ] || fail "used_memory $used, far over maxmemory"
keys=$(cli dbsize)
[ $((keys + evicted)) -eq 400 ] || fail "dbsize $keys + evicted $evicted is not 400"
# The last written are kept rather than the first.
last=0
first=0
for i in 390 391 392 393 394 395 396 397 398 399; do
    [ "$(cli exists "b:$i")" -eq 1 ] && last=$((last + 1))
done
for i in 0 1 2 3 4 5 6 7 8 9; do
    [ "$(cli exists "b:$i")" -eq 1 ] && first=$((first + 1))
done
[ "$last" -gt "$first" ] || fail "allkeys-lru kept $first of the first keys and $last of the last"
stop

# A large list deleted is freed in pieces after its DEL; a write over the
# limit meanwhile frees what is pending before it evicts a live key.
start --maxmemory 16mb --maxmemory-policy allkeys-lru
big=$(head -c 100 /dev/zero | tr '\0' l)
i=0
while [ $i -lt 10 ]; do
    # shellcheck disable=SC2046
    cli rpush biglist $(yes "$big" | head -n 5000) > /dev/null || fail "RPUSH to the big list"
    i=$((i + 1))
done
j=0
while [ $j -lt 100 ]; do
    cli set "live:$j" v > /dev/null
    j=$((j + 1))
done
[ "$(cli del biglist)" -eq 1 ] || fail "DEL of the big list"
chunk=$(head -c 1000000 /dev/zero | tr '\0' n)
j=0
while [ $j -lt 13 ]; do
    printf '%s' "$chunk" | cli -x set "new:$j" > /dev/null || fail "SET new:$j"
    j=$((j + 1))
done
evicted=$(info stats evicted_keys)
[ "$evicted" -eq 0 ] || fail "$evicted live keys evicted while a deleted list was pending"
[ "$(cli dbsize)" -eq 113 ] || fail "dbsize $(cli dbsize), not 113"
stop

# Without --maxmemory a value is still bounded by its stripe's heap (256
# MiB): one larger is refused with an OOM error that says so, not one
# that names maxmemory, and the server goes on.
start
head -c 300000000 /dev/zero | tr '\0' x > "$WORK/huge"
got=$(cli -x set huge < "$WORK/huge" 2>&1)
rm -f "$WORK/huge"
case $got in
"OOM no room left for this value in the heap of its key's stripe"*) ;;
*) fail "a 300 MB value without maxmemory: $got" ;;
esac
[ "$(cli set after ok)" = "OK" ] || fail "a SET after the refused value failed"
[ "$(cli exists huge)" -eq 0 ] || fail "the refused value is there"
# A value set again larger each time (2, 4, ... 40 MB, 420 MB in all)
# fits the same heap: the freed blocks merge. Without that, a stripe
# filled at 23 MB, and after a DEL a 30 MB value was still refused.
mb=2
while [ $mb -le 40 ]; do
    head -c $((mb * 1048576)) /dev/zero | tr '\0' g > "$WORK/grow"
    got=$(cli -x set grow < "$WORK/grow" 2>&1)
    [ "$got" = OK ] || fail "SET of $mb MB over a smaller value: $got"
    mb=$((mb + 2))
done
[ "$(cli strlen grow)" -eq $((40 * 1048576)) ] || fail "the grown value has the wrong length"
[ "$(cli del grow)" -eq 1 ] || fail "DEL of the grown value"
head -c 200000000 /dev/zero | tr '\0' h > "$WORK/grow"
got=$(cli -x set grow < "$WORK/grow" 2>&1)
[ "$got" = OK ] || fail "a 200 MB value where grown ones were deleted: $got"
rm -f "$WORK/grow"
# APPEND grows a value in place, past half its stripe's heap.
chunk=$(head -c 1048576 /dev/zero | tr '\0' a)
i=0
while [ $i -lt 150 ]; do
    printf '%s' "$chunk" | cli -x append app > /dev/null 2>&1 || break
    i=$((i + 1))
done
[ "$(cli strlen app)" -eq $((150 * 1048576)) ] ||
    fail "APPEND of 1 MB 150 times reached $(cli strlen app) bytes"
stop
# Nothing of any server is left: each was given --dir $WORK.
sleep 0.2
if pgrep -f -- "--dir $WORK" > /dev/null; then
    fail "a walls-kv is left running"
fi
echo "PASS: maxmemory"
