#!/bin/sh
# screenshot.sh - a picture of the live page of `walls-tabs serve`, taken
# with headless Chromium (for the docs and for looking, never pass/fail).
#
#   bench/tabs/screenshot.sh <walls-tabs> <out.png> [script.lua...]
#
# Starts `walls-tabs serve --ui 127.0.0.1:0` with the scripts (default: the
# ones in systems/tabs/tests/ui/ that need no --unsafe-lua: a ticker, a
# ping-pong pair, a tab that fails once and one that logs markup), waits
# for the page, lets the tabs run for a moment, shoots 1280x800 and stops
# the server. Needs chromium (apt-get install chromium) and curl.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 <walls-tabs> <out.png> [script.lua...]" >&2
    exit 2
fi
BIN=$1
OUT=$2
shift 2
TOP=$(cd "$(dirname "$0")/../.." && pwd)
UI=$TOP/systems/tabs/tests/ui
if [ $# -eq 0 ]; then
    set -- "$UI/ticker.lua" "$UI/ping.lua" "$UI/pong.lua" "$UI/flaky.lua" "$UI/evil.lua"
fi
[ -x "$BIN" ] || { echo "screenshot.sh: $BIN is not an executable" >&2; exit 1; }
CHROMIUM=""
for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null 2>&1; then
        CHROMIUM=$c
        break
    fi
done
[ -n "$CHROMIUM" ] || { echo "screenshot.sh: no chromium (apt-get install chromium)" >&2; exit 1; }
command -v curl >/dev/null 2>&1 || { echo "screenshot.sh: no curl" >&2; exit 1; }

WORK=$(mktemp -d)
PID=""
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN" serve --ui 127.0.0.1:0 --quiet "$@" >"$WORK/out" 2>"$WORK/err" &
PID=$!

# The port, from the one line serve prints once it listens.
PORT=""
i=0
while [ $i -lt 100 ]; do
    PORT=$(sed -n 's#^walls-tabs: ui on http://127\.0\.0\.1:\([0-9][0-9]*\)/$#\1#p' "$WORK/out")
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$PORT" ]; then
    echo "screenshot.sh: the server did not start:" >&2
    cat "$WORK/err" >&2
    exit 1
fi
URL=http://127.0.0.1:$PORT/
curl -fsS -o /dev/null "$URL"
# Long enough for the failing tab to fail and the others to count.
sleep 2

# Chromium's profile goes to the scratch directory, not the user's home.
"$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$WORK/profile" --window-size=1280,800 \
    --virtual-time-budget=3000 --screenshot="$OUT" "$URL" >"$WORK/chromium.log" 2>&1 || {
    echo "screenshot.sh: chromium failed:" >&2
    tail -20 "$WORK/chromium.log" >&2
    exit 1
}
[ -s "$OUT" ] || { echo "screenshot.sh: no screenshot written" >&2; exit 1; }
echo "screenshot.sh: wrote $OUT ($URL)"
