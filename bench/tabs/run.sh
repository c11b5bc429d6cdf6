#!/bin/sh
# walls-tabs beside the shared kitchen: the figures (walls-tabs bench) and
# the hostile battery in both modes. Usage: bench/tabs/run.sh [build dir]
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
BIN=$BUILD/systems/tabs/walls-tabs
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
"$BIN" bench ${TABS_BENCH_FLAGS:-}
echo
python3 "$ROOT/bench/tabs/battery.py" "$BIN" "$ROOT"
