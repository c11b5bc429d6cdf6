#!/bin/sh
# test-ui.sh - the live page of `walls-tabs serve`, as curl sees it.
#
#   sh test-ui.sh <walls-tabs> <tests dir>
#
# Starts serve on a free port with the scripts in ui/ and checks: the page
# and its JSON; a tab that fails (flaky.lua) shows its error and comes back
# on reload while the others keep running; close; 404, 405, 413 and 431;
# garbage, an idle connection and more connections than the server takes
# do not stop it; with --unsafe-lua a tab whose process really crashes
# (crasher.lua) shows SIGSEGV and reload restarts it; SIGTERM ends the
# server with status 0 and leaves none of its processes behind. Every
# failed check prints what it expected and what it got. Skips (77) without
# curl.
set -u
BIN=$1
UI=$2/ui
if ! command -v curl >/dev/null 2>&1; then
    echo "skip: curl is not installed"
    exit 77
fi
command -v python3 >/dev/null 2>&1 || { echo "FAIL: python3 is needed for the JSON checks"; exit 1; }

WORK=$(mktemp -d)
FAILED=0
SERVERS=""

# Stops whatever is still running, on any exit.
cleanup() {
    for p in $SERVERS; do
        kill -KILL "$p" 2>/dev/null
    done
    [ -f "$WORK/watcher.pid" ] && kill "$(cat "$WORK/watcher.pid")" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*"
    FAILED=$((FAILED + 1))
}

ok() {
    echo "ok: $*"
}

# expect WHAT GOT WANT
expect() {
    if [ "$2" = "$3" ]; then
        ok "$1"
    else
        fail "$1: expected [$3], got [$2]"
    fi
}

# JSON checks on a saved /api/tabs answer.
cat >"$WORK/j.py" <<'EOF'
import json, sys

def load(path):
    with open(path) as f:
        return json.load(f)

def show(v):
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)

cmd, path = sys.argv[1], sys.argv[2]
if cmd == "flat":
    # flat FILE: one line per tab and key, TAB<tab>KEY<tab>VALUE
    try:
        tabs = load(path)
    except ValueError as e:
        tabs = [{"name": "<bad json>", "error": str(e)}]
    for t in tabs:
        for k, v in t.items():
            v = show(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            print("%s\t%s\t%s" % (t.get("name"), k, v))
elif cmd == "shape":
    # shape FILE NAME...: a list of objects with exactly the keys, one per tab
    keys = sorted("name origin state outcome detail lua_bytes cpu_ms events sent received "
                  "dropped queued timers last_log result".split())
    tabs = load(path)
    problems = []
    if not isinstance(tabs, list):
        problems.append("not a list: %r" % type(tabs))
        tabs = []
    names = sorted(t.get("name") for t in tabs)
    if names != sorted(sys.argv[3:]):
        problems.append("tabs %s, expected %s" % (names, sorted(sys.argv[3:])))
    for t in tabs:
        if sorted(t) != keys:
            problems.append("%s has keys %s, expected %s" % (t.get("name"), sorted(t), keys))
        if t.get("state") not in ("running", "busy", "stopped", "closed"):
            problems.append("%s has state %r" % (t.get("name"), t.get("state")))
        for k in ("lua_bytes", "events", "sent", "received", "dropped", "queued", "timers"):
            if not isinstance(t.get(k), int):
                problems.append("%s: %s is %r" % (t.get("name"), k, t.get(k)))
        if not isinstance(t.get("cpu_ms"), (int, float)):
            problems.append("%s: cpu_ms is %r" % (t.get("name"), t.get("cpu_ms")))
    print("; ".join(problems) if problems else "ok")
EOF

# start_server LOG ARGS...: starts serve in the background; sets PID, URL.
start_server() {
    log=$1
    shift
    "$BIN" serve --ui 127.0.0.1:0 --quiet "$@" >"$WORK/$log.out" 2>"$WORK/$log.err" &
    PID=$!
    SERVERS="$SERVERS $PID"
    URL=""
    i=0
    while [ $i -lt 100 ]; do
        port=$(sed -n 's#^walls-tabs: ui on http://127\.0\.0\.1:\([0-9][0-9]*\)/$#\1#p' \
            "$WORK/$log.out")
        if [ -n "$port" ]; then
            URL=http://127.0.0.1:$port
            ok "serve $* listens on $URL"
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    fail "serve $* printed no ui line; stdout: [$(cat "$WORK/$log.out")] stderr: [$(cat "$WORK/$log.err")]"
    exit 1
}

# Python starts slowly on a busy machine: one run per snapshot, not per field.
PY="python3 -I -S"

# tabs: saves GET /api/tabs in $WORK/tabs.json, flattened in $WORK/tabs.tsv.
tabs() {
    curl -sS --max-time 5 -o "$WORK/tabs.json" "$URL/api/tabs" || echo "[]" >"$WORK/tabs.json"
    $PY "$WORK/j.py" flat "$WORK/tabs.json" >"$WORK/tabs.tsv"
}

# field TAB KEY (from the last tabs call)
field() {
    awk -F '\t' -v t="$1" -v k="$2" '$1 == t && $2 == k { print $3; found = 1 }
        END { if (!found) print "<no " t "." k ">" }' "$WORK/tabs.tsv"
}

# wait_for TAB KEY WANT: polls for about 5 s for the value, then checks it.
wait_for() {
    until=$(($(date +%s) + 6))
    while [ "$(date +%s)" -lt "$until" ]; do
        tabs
        [ "$(field "$1" "$2")" = "$3" ] && break
        sleep 0.1
    done
    expect "$1 $2" "$(field "$1" "$2")" "$3"
}

# http METHOD PATH [curl args]: prints the status; body in $WORK/body,
# headers in $WORK/headers.
http() {
    m=$1
    p=$2
    shift 2
    curl -sS --max-time 5 -X "$m" -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}' "$@" \
        "$URL$p" 2>"$WORK/curl.err" || echo " (curl: $(cat "$WORK/curl.err"))"
}

# descendants PID: every process below it, recursively.
descendants() {
    for c in $(ps -o pid= --ppid "$1"); do
        echo "$c"
        descendants "$c"
    done
}

# stop_server: SIGTERM; it must exit with 0 within 5 s and leave none of
# its processes (the forkserver, workers, spares) behind.
stop_server() {
    kids=$(descendants "$PID")
    groups=""
    for k in $kids; do
        groups="$groups $(ps -o pgid= -p "$k" | tr -d ' ')"
    done
    [ -n "$kids" ] || fail "serve has no worker processes to check"
    kill -TERM "$PID"
    i=0
    while kill -0 "$PID" 2>/dev/null && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$PID" 2>/dev/null; then
        fail "serve still running 5 s after SIGTERM"
        kill -KILL "$PID"
    fi
    wait "$PID"
    expect "exit status after SIGTERM" "$?" 0
    sleep 0.2
    left=""
    for k in $kids; do
        kill -0 "$k" 2>/dev/null && left="$left $k($(ps -o comm= -p "$k"))"
    done
    # Anything else in their process groups (a spare forked after the count).
    for g in $groups; do
        [ "$g" = "$$" ] && continue
        for k in $(ps -eo pid=,pgid= | awk -v g="$g" '$2 == g { print $1 }'); do
            case " $kids " in *" $k "*) ;; *) left="$left $k($(ps -o comm= -p "$k"))" ;; esac
        done
    done
    expect "processes left after SIGTERM (of:$(echo $kids))" "${left:-none}" none
}

# ---- server A: the safe tabs ----

start_server a "$UI/ticker.lua" "$UI/flaky.lua" "$UI/ping.lua" "$UI/pong.lua" "$UI/evil.lua"
A_URL=$URL

# An idle connection, watched in the background: the server should close it
# after about 10 s while answering everyone else.
$PY - "${URL#http://127.0.0.1:}" "$WORK/idle" <<'EOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(20)
t = time.monotonic()
try:
    got = s.recv(100)
    what = "closed" if got == b"" else "answered %r" % got[:40]
except socket.timeout:
    what = "open"
except OSError as e:
    what = "closed"
with open(sys.argv[2], "w") as f:
    f.write("%s %.1f\n" % (what, time.monotonic() - t))
EOF
echo $! >"$WORK/watcher.pid"

code=$(http GET /)
expect "GET / status" "$code" 200
ctype=$(sed -n 's/^[Cc]ontent-[Tt]ype: *\([^;\r]*\).*/\1/p' "$WORK/headers")
expect "GET / content type" "$ctype" text/html
for want in "<title>walls-tabs</title>" "<table" "fetch('/api/tabs'" "textContent"; do
    if grep -qF "$want" "$WORK/body"; then ok "page has $want"; else fail "page lacks $want"; fi
done
if grep -q "innerHTML" "$WORK/body"; then fail "page uses innerHTML"; else ok "page uses no innerHTML"; fi

code=$(http GET /api/tabs)
expect "GET /api/tabs status" "$code" 200
ctype=$(sed -n 's/^[Cc]ontent-[Tt]ype: *\([^;\r]*\).*/\1/p' "$WORK/headers")
expect "GET /api/tabs content type" "$ctype" application/json
expect "GET /api/tabs shape" "$($PY "$WORK/j.py" shape "$WORK/body" ticker flaky ping pong evil)" ok

# flaky fails from its first timer; its error is shown.
wait_for flaky state stopped
expect "flaky outcome" "$(field flaky outcome)" error
case $(field flaky detail) in
*boom*) ok "flaky detail has boom" ;;
*) fail "flaky detail: expected something with boom, got [$(field flaky detail)]" ;;
esac
# evil's markup arrives as text in valid JSON.
case $(field evil last_log) in
"<img src=x onerror="*) ok "evil's log is passed as text" ;;
*) fail "evil last_log: got [$(field evil last_log)]" ;;
esac
ticker_events=$(field ticker events)
pong_received=$(field pong received)

code=$(http POST /api/tabs/flaky/reload)
expect "POST reload flaky" "$code $(cat "$WORK/body")" '200 {"ok":true}'
wait_for flaky result '{"recovered": true}'
wait_for flaky state running
expect "flaky outcome after reload" "$(field flaky outcome)" ok

# The others did not notice.
sleep 0.5
tabs
for t in ticker ping pong evil; do
    expect "$t outcome" "$(field "$t" outcome)" ok
    expect "$t state" "$(field "$t" state | sed 's/busy/running/')" running
done
now=$(field ticker events)
if [ "$now" -gt "$ticker_events" ]; then
    ok "ticker kept running ($ticker_events -> $now events)"
else
    fail "ticker events: expected more than $ticker_events, got $now"
fi
now=$(field pong received)
if [ "$now" -gt "$pong_received" ]; then
    ok "ping and pong kept playing ($pong_received -> $now received)"
else
    fail "pong received: expected more than $pong_received, got $now"
fi

code=$(http POST /api/tabs/evil/close)
expect "POST close evil" "$code $(cat "$WORK/body")" '200 {"ok":true}'
wait_for evil state closed

# Errors.
code=$(http POST /api/tabs/nosuch/reload)
expect "reload of an unknown tab" "$code $(cat "$WORK/body")" '404 {"error":"no such tab"}'
code=$(http POST /api/tabs/nosuch/close)
expect "close of an unknown tab" "$code $(cat "$WORK/body")" '404 {"error":"no such tab"}'
code=$(http GET /nope)
expect "unknown path" "$code" 404
code=$(http POST /api/tabs/flaky/explode)
expect "unknown action" "$code" 404
code=$(http GET /api/tabs/flaky/reload)
allow=$(sed -n 's/^[Aa]llow: *\([A-Z, ]*\).*/\1/p' "$WORK/headers")
expect "GET on reload" "$code allow=$allow" "405 allow=POST"
code=$(http DELETE /api/tabs)
allow=$(sed -n 's/^[Aa]llow: *\([A-Z, ]*\).*/\1/p' "$WORK/headers")
expect "DELETE /api/tabs" "$code allow=$allow" "405 allow=GET"
code=$(http POST /api/tabs/flaky/close -H "Origin: http://evil.example")
expect "cross-origin POST" "$code" 403
code=$(http GET /api/tabs -H "Host: rebound.example:80")
expect "GET with a domain Host" "$code" 403
tabs
expect "flaky after the refused requests" "$(field flaky state | sed 's/busy/running/')" running

# Oversized requests are refused, and the server still answers.
head -c 20480 /dev/zero | tr '\0' a >"$WORK/big"
code=$(http GET /api/tabs -H "X-Big: $(cat "$WORK/big")")
expect "a 20 KiB header" "$code" 431
code=$(http POST /api/tabs/flaky/close --data-binary "@$WORK/big")
expect "a 20 KiB body" "$code" 413
code=$(http GET /api/tabs)
expect "GET /api/tabs after oversized requests" "$code" 200
tabs
expect "flaky after the refused close" "$(field flaky state | sed 's/busy/running/')" running

# Garbage, then more connections than the server takes.
got=$($PY - "${URL#http://127.0.0.1:}" <<'EOF'
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n")
print(s.recv(12).decode("latin-1"))
EOF
)
expect "garbage" "$got" "HTTP/1.1 400"
got=$($PY - "${URL#http://127.0.0.1:}" <<'EOF'
import socket, sys, time
conns = [socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) for _ in range(70)]
for s in conns:
    s.setblocking(False)
refused, waiting = 0, list(conns)
deadline = time.monotonic() + 3
while refused < 70 - 64 and time.monotonic() < deadline:
    time.sleep(0.1)
    for s in list(waiting):
        try:
            got = s.recv(12)
        except BlockingIOError:
            continue
        waiting.remove(s)
        refused += got.startswith(b"HTTP/1.1 503")
print("enough" if refused >= 70 - 64 else "only %d refused" % refused)
EOF
)
expect "70 connections at once: at least 6 refused" "$got" enough
code=$(http GET /api/tabs)
expect "GET /api/tabs after garbage and a crowd" "$code" 200

# ---- server B: a process that really crashes ----

start_server b --unsafe-lua "$UI/ticker.lua" "$UI/crasher.lua"
wait_for crasher state stopped
expect "crasher outcome" "$(field crasher outcome)" crashed
expect "crasher detail" "$(field crasher detail)" SIGSEGV
code=$(http POST /api/tabs/crasher/reload)
expect "POST reload crasher" "$code $(cat "$WORK/body")" '200 {"ok":true}'
wait_for crasher result '{"restarted": true}'
wait_for crasher state running
expect "ticker beside the crash" "$(field ticker outcome)" ok
stop_server

# ---- back to server A: the idle connection, then SIGTERM ----

URL=$A_URL
PID=$(echo $SERVERS | cut -d' ' -f1)
i=0
while [ ! -s "$WORK/idle" ] && [ $i -lt 150 ]; do
    sleep 0.1
    i=$((i + 1))
done
idle=$(cat "$WORK/idle" 2>/dev/null)
case $idle in
closed\ *)
    secs=${idle#closed }
    if [ "${secs%.*}" -ge 5 ]; then ok "idle connection closed after $secs s"; else fail "idle connection closed early: $secs s"; fi
    ;;
*) fail "idle connection: expected the server to close it after about 10 s, got [$idle]" ;;
esac
code=$(http GET /api/tabs)
expect "GET /api/tabs at the end" "$code" 200
stop_server

if [ "$FAILED" -gt 0 ]; then
    echo "$FAILED checks failed"
    echo "--- server stderr:"
    cat "$WORK"/*.err 2>/dev/null
    exit 1
fi
echo "all checks passed"
