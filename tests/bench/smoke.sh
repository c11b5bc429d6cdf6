#!/bin/sh
# smoke.sh - does `walls bench` run, print valid JSON, write its HTML report
# and refuse bad options? Speed is never judged here; check_json checks the
# JSON's shape (timestamp, commit, clean labels, the noisy flag against its
# rule) and that figures stand in the order physics gives them (a fork with
# 1 GiB resident costs more than a small fork, ...), by wide margins.
#
# usage: smoke.sh WALLS_BINARY [CHECK_JSON_BINARY]
# Without CHECK_JSON_BINARY, tests/bench/check_json.c is compiled with cc if
# there is one, else python3 checks the syntax; with neither, exit 77 (skip).
set -u

walls=${1:?usage: smoke.sh WALLS_BINARY [CHECK_JSON_BINARY]}
checker=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/walls-bench-smoke.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

fail() {
    echo "smoke.sh: FAIL: $*" >&2
    exit 1
}

if [ -z "$checker" ]; then
    if command -v cc >/dev/null 2>&1 &&
        cc -std=c11 -O1 -o "$tmp/check_json" "$here/check_json.c" -lm 2>"$tmp/cc.err"; then
        checker=$tmp/check_json
    elif command -v python3 >/dev/null 2>&1; then
        checker=python3
    else
        echo "smoke.sh: no C compiler and no python3 to check JSON: skipped" >&2
        exit 77
    fi
fi

# 1. JSON from rows 1 and 2: strict syntax, sane figures, physical orders.
"$walls" bench --quick --only 1,2 --json >"$tmp/out.json" 2>"$tmp/err.txt" ||
    fail "walls bench --quick --only 1,2 --json exited $? ($(tail -n 3 "$tmp/err.txt"))"
if [ "$checker" = python3 ]; then
    python3 -c 'import json,sys; json.load(sys.stdin)' <"$tmp/out.json" ||
        fail "output is not JSON"
else
    "$checker" thread_create_join fork_small rt_threads_futex rt_processes_pipe \
        <"$tmp/out.json" || fail "JSON check failed"
fi
grep -q 'walls bench: row 1/8' "$tmp/err.txt" || fail "no progress line on stderr"
grep -q 'walls bench: row 3/8' "$tmp/err.txt" && fail "--only 1,2 ran row 3"

# 2. The HTML report holds inline SVG and nothing external.
"$walls" bench --quick --only 1 --html "$tmp/report.html" >"$tmp/table.txt" 2>/dev/null ||
    fail "walls bench --html exited $?"
[ -s "$tmp/report.html" ] || fail "no HTML report written"
grep -q '<svg' "$tmp/report.html" || fail "the HTML report has no <svg>"
# Row 1's chart says which colour is threads and which processes.
grep -q '>threads</text>' "$tmp/report.html" && grep -q '>processes</text>' "$tmp/report.html" ||
    fail "the HTML report's chart has no legend"
grep -qi '<script' "$tmp/report.html" && fail "the HTML report has a script"
grep -Eqi '(src|href)="https?:' "$tmp/report.html" && fail "the HTML report loads something"
awk 'length > 100 { bad = 1 } END { exit bad }' "$tmp/table.txt" ||
    fail "the table is wider than 100 columns"

# 3. Bad options: usage on stderr, status 2.
for bad in --bogus "--only 9" "--only 1,,2" "--only" "--html" "--quick --full" "--full --only 1 --quick"; do
    # shellcheck disable=SC2086
    "$walls" bench $bad >"$tmp/bad.out" 2>"$tmp/bad.err"
    status=$?
    [ "$status" -eq 2 ] || fail "'walls bench $bad' exited $status, not 2"
    grep -q usage "$tmp/bad.err" || fail "'walls bench $bad' printed no usage on stderr"
    [ -s "$tmp/bad.out" ] && fail "'walls bench $bad' wrote to stdout"
done

# 3b. An --html file that cannot be written: status 1 before any row ran.
"$walls" bench --only 1 --html "$tmp/no/such/dir/report.html" >"$tmp/bad.out" 2>"$tmp/bad.err"
status=$?
[ "$status" -eq 1 ] || fail "an unwritable --html file: exited $status, not 1"
grep -q "cannot write $tmp/no/such/dir/report.html" "$tmp/bad.err" ||
    fail "an unwritable --html file: no reason given ($(cat "$tmp/bad.err"))"
grep -q 'row 1/8' "$tmp/bad.err" && fail "an unwritable --html file: the rows ran first"
[ -s "$tmp/bad.out" ] && fail "an unwritable --html file: a table was printed"

# 3c. An --html path that is a FIFO nothing reads: refused at once, status
# 1 (it was waited on for ever).
mkfifo "$tmp/fifo"
timeout 20 "$walls" bench --only 1 --html "$tmp/fifo" >"$tmp/bad.out" 2>"$tmp/bad.err"
status=$?
[ "$status" -eq 1 ] || fail "an --html FIFO nothing reads: exited $status, not 1"
grep -q "a FIFO that nothing reads" "$tmp/bad.err" ||
    fail "an --html FIFO nothing reads: no reason given ($(cat "$tmp/bad.err"))"

# 3d. Results that cannot be written to standard output (a full disk):
# status 1 and the reason, not a quiet 0; the HTML report's reason is the
# write's own (ENOSPC), not a general I/O error.
if [ -w /dev/full ]; then
    "$walls" bench --quick --only 1 --json >/dev/full 2>"$tmp/bad.err"
    status=$?
    [ "$status" -eq 1 ] || fail "JSON to a full device: exited $status, not 1"
    grep -q "cannot write the JSON to standard output: No space left" "$tmp/bad.err" ||
        fail "JSON to a full device: no reason given ($(tail -n 1 "$tmp/bad.err"))"
    "$walls" bench --quick --only 1 --html /dev/full >/dev/null 2>"$tmp/bad.err"
    status=$?
    [ "$status" -eq 1 ] || fail "an HTML report to a full device: exited $status, not 1"
    grep -q "cannot write /dev/full: No space left" "$tmp/bad.err" ||
        fail "an HTML report to a full device: wrong reason ($(tail -n 1 "$tmp/bad.err"))"
fi

# 3e. A measurement that cannot be made (too few descriptors for a pipe or
# a process pool) makes its row's verdict "error" and the status 1, not a
# verdict drawn from the figures that were made.
(ulimit -n 6 && exec "$walls" bench --quick --only 2 --json) >"$tmp/few.json" 2>/dev/null
status=$?
[ "$status" -eq 1 ] || fail "a row with a failed measurement: exited $status, not 1"
grep -q '"verdict": "error"' "$tmp/few.json" ||
    fail "a row with a failed measurement: its verdict is not error"
grep -q 'a measurement could not be made' "$tmp/few.json" ||
    fail "a row with a failed measurement: the reason does not say so"

# 4. --help goes to stdout with status 0.
"$walls" bench --help >"$tmp/help.txt" 2>&1 || fail "--help exited $?"
grep -q -- '--only' "$tmp/help.txt" || fail "--help does not list --only"

echo "smoke.sh: ok"
exit 0
