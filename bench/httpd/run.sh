#!/bin/sh
# run.sh - walls-httpd beside nginx, on this machine, one run of everything
# (figures only; see docs/benchmarks.md for what they mean).
#
#   bench/httpd/run.sh [BUILD_DIR]      (default: build-release)
#
# Needs nginx-light, libfcgi-dev, spawn-fcgi and wrk (installed if missing,
# as root). Same worker counts on both sides: 2 nginx workers and 2
# walls-httpd loops; 2 FastCGI processes and 2 walls workers per route.
# Each figure is the median of RUNS (3) runs of wrk -t2 -c64 -d10s
# (DURATION, in seconds, to shorten it: 5s). Everything listens on 127.0.0.1.
#
#   a. static: the fixed "hello" response (nginx's return beside walls-httpd's
#      --return, both answered by the event loops, and beside the hello
#      handler on a thread pool), and a 13-byte file
#   b. dynamic: /dyn?n=K ({"n":K,"sq":K*K}) on threads, processes and
#      hybrid, beside nginx + the same handler as a FastCGI application
#   c. one request in a hundred crashes its handler (processes, and nginx +
#      FastCGI): statuses, throughput and p99 beside run b; and on walls,
#      RUNS pairs of the same scripted requests without and with crashes
#   d. a route whose handler sleeps past its 1 s limit (504s) while /dyn
#      keeps its throughput: /dyn alone and beside it, alternated, RUNS
#      pairs
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$TOP/build-release}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
SERVER=$BUILD/systems/httpd/walls-httpd
PLUGIN=$BUILD/systems/httpd/walls-httpd-examples.so
[ -x "$SERVER" ] || { echo "build first: make build-release ($SERVER missing)"; exit 1; }

need=""
for p in nginx-light libfcgi-dev spawn-fcgi wrk; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
    echo "installing$need"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

WORK=$(mktemp -d /tmp/walls-httpd-bench.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill -QUIT "$p" 2>/dev/null || true; done
    [ -f "$WORK/nginx.pid" ] && kill -QUIT "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    pkill -f "$WORK/fcgi_dyn" 2>/dev/null || true
    sleep 0.5
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

chmod 755 "$WORK"   # nginx workers read the root as an unprivileged user
mkdir -p "$WORK/www"
printf 'thirteen byte' > "$WORK/www/13.txt"
cc -O2 -o "$WORK/fcgi_dyn" "$TOP/bench/httpd/fcgi_dyn.c" -lfcgi

# The wrk script of run c: one request in a hundred asks for a crash;
# statuses counted over all threads. same.lua sends the same requests
# without the crashes: a script's request() and response() cost wrk up
# to a fifth of its speed here, so run c is also compared with it (run
# c's crashes alone), besides plain run b.
cat > "$WORK/crash.lua" <<'LUA'
local counter, threads = 0, {}
local every = 100
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} end
function request()
    counter = counter + 1
    if every > 0 and counter % every == 0 then return wrk.format("GET", "/dyn?n=7&crash=1") end
    return wrk.format("GET", "/dyn?n=" .. counter % 1000)
end
function response(status) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
    local all = {}
    for _, t in ipairs(threads) do
        for k, v in pairs(t:get("codes")) do all[k] = (all[k] or 0) + v end
    end
    local line = "statuses:"
    for k, v in pairs(all) do line = line .. " " .. k .. "=" .. v end
    print(line)
end
LUA
sed 's/^local every = 100$/local every = 0/' "$WORK/crash.lua" > "$WORK/same.lua"

free_port() {
    # A port the kernel hands out, released again for the server to take.
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + $$ % 20000))
}

# wrk_median URL [wrk args]: prints "median_req_s p99_ms errors" over RUNS runs.
wrk_median() {
    url=$1
    shift
    : > "$WORK/runs"
    i=0
    while [ $i -lt "$RUNS" ]; do
        wrk -t2 -c64 -d"$DURATION" --latency "$@" "$url" > "$WORK/wrk.out" 2>&1
        rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$WORK/wrk.out")
        p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) sub(/ms/,"",v); else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$WORK/wrk.out")
        errs=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$WORK/wrk.out")
        sock=$(sed -n 's/.*Socket errors: \(.*\)/\1/p' "$WORK/wrk.out" | tr -d ' ')
        stat=$(sed -n 's/^statuses: *//p' "$WORK/wrk.out")
        echo "${rps:-0} ${p99:-0} ${errs:-0} ${sock:-none} | ${stat:-}" >> "$WORK/runs"
        i=$((i + 1))
    done
    sort -n "$WORK/runs" | sed -n "$(( (RUNS + 1) / 2 ))p"
}

# wrk_once URL [wrk args]: the same for one run.
wrk_once() {
    runs=$RUNS
    RUNS=1
    wrk_median "$@"
    RUNS=$runs
}

# ratio FIRST SECOND: the second wrk result's requests a second over the
# first's, as 0.000.
ratio() {
    awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN { printf "%.3f", (a > 0 ? b / a : 0) }'
}

# wait_up URL: until the server answers (at most 5 s).
wait_up() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$1/13.txt" && return 0
        sleep 0.05
    done
    echo "the server at $1 did not come up"
    exit 1
}

start_walls() {
    port=$(free_port)
    "$SERVER" --listen 127.0.0.1:"$port" --loops 2 --workers 2 --root "$WORK/www" \
        --error-log "$WORK/walls.err" "$@" &
    PIDS="$PIDS $!"
    WPID=$!
    WURL=http://127.0.0.1:$port
    wait_up "$WURL"
}

stop_walls() {
    kill -TERM "$WPID"
    wait "$WPID" 2>/dev/null || true
}

start_nginx() {
    port=$(free_port)
    fport=$(free_port)
    spawn-fcgi -a 127.0.0.1 -p "$fport" -F 2 -P "$WORK/fcgi.pid" -- "$WORK/fcgi_dyn" >/dev/null
    cat > "$WORK/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    default_type application/octet-stream;
    upstream fcgi { server 127.0.0.1:$fport; }
    server {
        listen 127.0.0.1:$port;
        root $WORK/www;
        location = /hello { default_type text/plain; return 200 "hello\n"; }
        location /dyn {
            include /etc/nginx/fastcgi_params;
            fastcgi_pass fcgi;
        }
    }
}
CONF
    nginx -c "$WORK/nginx.conf" -p "$WORK" -g 'daemon on;'
    NURL=http://127.0.0.1:$port
    wait_up "$NURL"
}

stop_nginx() {
    kill -QUIT "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    pkill -f "$WORK/fcgi_dyn" 2>/dev/null || true
    sleep 0.5
}

row() { printf '  %-44s %10s req/s   p99 %8s ms   non-2xx %-6s socket errors: %s\n' "$@"; }

show() {
    label=$1
    set -- $2
    row "$label" "$1" "$2" "$3" "$(echo "$4" | tr -d '|')"
}

echo "walls-httpd beside nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'): wrk -t2 -c64 -d$DURATION, median of $RUNS runs"
echo "machine: $(nproc) CPUs, $(uname -r); walls-httpd: 2 loops, 2 workers a route; nginx: 2 workers, 2 FastCGI processes"

echo
echo "a. static"
start_nginx
show "nginx: return 200 \"hello\"" "$(wrk_median "$NURL/hello")"
show "nginx: 13-byte file" "$(wrk_median "$NURL/13.txt")"
echo
echo "b. dynamic /dyn?n=K"
show "nginx + FastCGI (spawn-fcgi -F 2)" "$(wrk_median "$NURL/dyn?n=12")"
echo
echo "c. one request in a hundred crashes its handler"
r=$(wrk_median "$NURL/" -s "$WORK/crash.lua")
show "nginx + FastCGI" "$r"
echo "     statuses: ${r#*|}"
echo "     FastCGI processes left alive afterwards: $(pgrep -fc "$WORK/fcgi_dyn" || true) of 2"
stop_nginx

start_walls --route "/hello=$PLUGIN:hello:threads" --route "/dyn=$PLUGIN:dyn:threads" \
    --return '/ret=200:hello\n'
echo
echo "a. static (walls-httpd)"
show "walls-httpd: return 200 \"hello\"" "$(wrk_median "$WURL/ret")"
show "walls-httpd: hello handler on threads" "$(wrk_median "$WURL/hello")"
show "walls-httpd: 13-byte file" "$(wrk_median "$WURL/13.txt")"
echo
echo "b. dynamic (walls-httpd)"
show "walls-httpd: dyn on threads" "$(wrk_median "$WURL/dyn?n=12")"
stop_walls
for placement in processes hybrid; do
    start_walls --route "/dyn=$PLUGIN:dyn:$placement"
    show "walls-httpd: dyn on $placement" "$(wrk_median "$WURL/dyn?n=12")"
    stop_walls
done
echo
echo "c. one request in a hundred crashes its handler (walls-httpd, processes)"
start_walls --route "/dyn=$PLUGIN:dyn:processes" --restart-limit 100000
r=$(wrk_median "$WURL/" -s "$WORK/crash.lua")
show "walls-httpd: dyn on processes, 1% crashing" "$r"
echo "     statuses: ${r#*|}"
# The crashes alone: pairs in one sitting on this server, the same
# scripted requests without and with the crashing ones.
: > "$WORK/pairs"
i=0
while [ $i -lt "$RUNS" ]; do
    same=$(wrk_once "$WURL/" -s "$WORK/same.lua")
    crash=$(wrk_once "$WURL/" -s "$WORK/crash.lua")
    r=$(ratio "$same" "$crash")
    echo "     pair $((i + 1)): the same requests without crashes ${same%% *} req/s, with ${crash%% *} req/s: ${r}x"
    echo "$r" >> "$WORK/pairs"
    i=$((i + 1))
done
echo "     with / without the crashes, median of $RUNS pairs: $(sort -n "$WORK/pairs" | sed -n "$(( (RUNS + 1) / 2 ))p")x"
stop_walls
echo
echo "d. a route whose handler overruns its 1 s limit, beside /dyn (processes)"
# Pairs in one sitting, on one server: /dyn alone, then /dyn while two
# keep-alive clients ask /nap for 2 s naps (each ends at its 1 s limit:
# 504, and its worker is killed and replaced). "Keeps its throughput" is
# the ratio within each pair; run b, minutes earlier, is beside it only
# for reference.
start_walls --route "/dyn=$PLUGIN:dyn:processes" --route "/nap=$PLUGIN:nap:processes:1000"
cat > "$WORK/codes.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} end
function response(status) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
    local line = "statuses:"
    for _, t in ipairs(threads) do
        for k, v in pairs(t:get("codes")) do line = line .. " " .. k .. "=" .. v end
    end
    print(line)
end
LUA
secs=${DURATION%s}
: > "$WORK/pairs"
: > "$WORK/naps"
i=0
while [ $i -lt "$RUNS" ]; do
    alone=$(wrk_once "$WURL/dyn?n=12")
    wrk -t1 -c2 -d$((secs + 2))s --timeout 5s -s "$WORK/codes.lua" "$WURL/nap?ms=2000" \
        > "$WORK/nap.out" 2>&1 &
    NAPPER=$!
    sleep 1
    beside=$(wrk_once "$WURL/dyn?n=12")
    wait "$NAPPER" || true
    sed -n 's/^statuses: *//p' "$WORK/nap.out" >> "$WORK/naps"
    r=$(ratio "$alone" "$beside")
    echo "     pair $((i + 1)): /dyn alone ${alone%% *} req/s, beside the overrunning /nap ${beside%% *} req/s: ${r}x"
    echo "$r $beside" >> "$WORK/pairs"
    i=$((i + 1))
done
mid=$(sort -n "$WORK/pairs" | sed -n "$(( (RUNS + 1) / 2 ))p")
show "walls-httpd: /dyn while /nap times out" "${mid#* }"
echo "     beside / alone, median of $RUNS pairs: ${mid%% *}x"
echo "     /nap statuses: $(tr ' ' '\n' < "$WORK/naps" | awk -F= 'NF == 2 { n[$1] += $2 } END { for (k in n) printf "%s=%d ", k, n[k] }')"
stop_walls
