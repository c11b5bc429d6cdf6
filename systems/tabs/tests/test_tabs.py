#!/usr/bin/env python3
"""walls-tabs as a user runs it: the hostile battery, each item beside ten
well-behaved tabs, behind the Lua wall alone and with it taken down
(--unsafe-lua), where only the process wall holds; the Lua API; bad scripts;
the shared kitchen (--threads) for contrast; bad command lines. After every
run, no process the run started is left (this test is a subreaper, so
orphans would become its children)."""
import ctypes
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time

BIN, TESTS = sys.argv[1], sys.argv[2]
KILL_SHIM = sys.argv[3] if len(sys.argv) > 3 else None
GOOD = sorted(os.path.join(TESTS, "good", f) for f in os.listdir(os.path.join(TESTS, "good"))
              if f.endswith(".lua"))
EXPECTED = json.load(open(os.path.join(TESTS, "good", "expected.json")))
ORIGINS = ["--origin", "store-a=shop", "--origin", "store-b=shop"]
# Sanitizer builds are slower; the infinite loops wait out this limit.
TIMEOUT = ["--timeout-ms", "3000"]
failures = []
# Under ThreadSanitizer, signals reach a thread only at its next intercepted
# call: a Lua loop makes none, so --threads' watchdog cannot stop it there,
# and TSan's own SIGSEGV handler ends a crashing program with status 66.
TSAN = b"__tsan_init" in open(BIN, "rb").read()
SANITIZED = TSAN or b"__asan_init" in open(BIN, "rb").read()

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_CHILD_SUBREAPER = 36
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    print("cannot become a subreaper; process checks would not mean anything")
    sys.exit(77)


def fail(what):
    failures.append(what)
    print("FAIL:", what, flush=True)


def children():
    found = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return found


def leftovers(label):
    # Reap what already exited, then anything still alive is a leak.
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        if not children():
            return
        time.sleep(0.05)
    pids = children()
    names = []
    for p in pids:
        try:
            names.append(open(f"/proc/{p}/comm").read().strip())
        except OSError:
            names.append("?")
        os.kill(p, signal.SIGKILL)
    fail(f"{label}: processes left running: {list(zip(pids, names))}")


def run(args, label, expect_rc=None):
    proc = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=120)
    leftovers(label)
    if expect_rc is not None and proc.returncode != expect_rc:
        fail(f"{label}: exit status {proc.returncode}, wanted {expect_rc}; stderr: {proc.stderr[-500:]}")
    return proc


def tabs_of(proc, label):
    out = {}
    for line in proc.stdout.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            fail(f"{label}: not JSON: {line!r}")
            continue
        for key in ("name", "outcome", "detail", "sent", "received"):
            if key not in obj:
                fail(f"{label}: no key {key} in {line}")
        out[obj.get("name")] = obj
    return out


def check_good(tabs, label):
    for name, result in EXPECTED.items():
        t = tabs.get(name)
        if t is None:
            fail(f"{label}: well-behaved tab {name} missing from the report")
        elif t["outcome"] != "ok" or t.get("result") != result:
            fail(f"{label}: well-behaved tab {name}: {t['outcome']} {t['detail']!r} "
                 f"result {t.get('result')}, wanted ok {result}")


def item(script, outcomes, detail, unsafe=False, result=None, limit=TIMEOUT):
    name = os.path.basename(script)[:-4]
    label = f"{name}{' (unsafe)' if unsafe else ''}"
    args = ["run", "--json", "--quiet"] + limit + ORIGINS + (["--unsafe-lua"] if unsafe else [])
    proc = run(args + GOOD + [os.path.join(TESTS, script)], label)
    tabs = tabs_of(proc, label)
    check_good(tabs, label)
    t = tabs.get(name)
    if t is None:
        fail(f"{label}: no line for the tab; stdout {proc.stdout!r} stderr {proc.stderr[-300:]!r}")
        return
    if t["outcome"] not in outcomes or not re.search(detail, t["detail"]):
        fail(f"{label}: {t['outcome']} {t['detail']!r}, wanted {outcomes} matching {detail!r}")
    if result is not None and t.get("result") != result:
        fail(f"{label}: result {t.get('result')}, wanted {result}")
    want_rc = 0 if outcomes == ("ok",) else 1
    if proc.returncode != want_rc:
        fail(f"{label}: exit status {proc.returncode}, wanted {want_rc}")
    print(f"ok   {label:28} {t['outcome']:14} {t['detail']}", flush=True)


# Storage changes a busy tab cannot take yet: all of them reach it in the
# end (its copy is never stale), yet the broker does not queue each one
# past the tab's bound. Run first, so that the children's peak size is
# this run's; checked outside a sanitizer, whose allocator keeps freed
# memory. With every change queued, the broker peaked near 150 MiB; with
# the bound, near 13.
proc = run(["run", "--json", "--quiet", "--timeout-ms", "20000", "--origin", "store-writer=flood",
            "--origin", "store-reader=flood", os.path.join(TESTS, "api/store-writer.lua"),
            os.path.join(TESTS, "api/store-reader.lua")], "storage flood", 0)
tabs = tabs_of(proc, "storage flood")
if tabs.get("store-writer", {}).get("result") != {"written": 3600}:
    fail(f"storage flood: writer {tabs.get('store-writer')}; stderr {proc.stderr[-300:]!r}")
if tabs.get("store-reader", {}).get("result") != {"last": "3600", "len": 60004}:
    fail(f"storage flood: reader {tabs.get('store-reader')}; stderr {proc.stderr[-300:]!r}")
peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
if not SANITIZED and peak_mib > 64:
    fail(f"storage flood: the broker grew to {peak_mib} MiB")
print(f"ok   storage flood: every change reached the busy tab; peak {peak_mib} MiB", flush=True)

# Fresh keys set and deleted while a tab is busy: each change is of a key
# no queued change holds, so only holding changes back past the bound (and
# sending the whole storage after) keeps the busy tab's queue bounded. One
# event per fresh key reached it before (1,284 events); now its script, the
# whole storage and a timer or two do.
proc = run(["run", "--json", "--quiet", "--timeout-ms", "60000", "--origin", "store-fresh=fresh",
            "--origin", "store-behind=fresh", os.path.join(TESTS, "api/store-fresh.lua"),
            os.path.join(TESTS, "api/store-behind.lua")], "fresh keys", 0)
tabs = tabs_of(proc, "fresh keys")
behind = tabs.get("store-behind", {})
if tabs.get("store-fresh", {}).get("result") != {"fresh": 1200}:
    fail(f"fresh keys: writer {tabs.get('store-fresh')}; stderr {proc.stderr[-300:]!r}")
elif behind.get("result") != {"kept": 12, "stale": 0}:
    fail(f"fresh keys: the busy tab's copy is stale: {behind}")
elif not isinstance(behind.get("events"), int) or behind["events"] >= 600:
    fail(f"fresh keys: the busy tab was handed {behind.get('events')} events, one a change")
else:
    print(f"ok   fresh keys: the busy tab's copy is whole after {behind['events']} events", flush=True)


H = "hostile/"
SEEN = {"seen": "cart=mine shop:cart=nil shop/cart=nil ../shop/cart=nil gone=nil"}
# The Lua wall: the libraries are not there.
item(H + "read-file.lua", ("error",), r"global 'io'")
item(H + "socket.lua", ("error",), r"global 'require'")
item(H + "exec.lua", ("error",), r"global 'os'")
item(H + "fork-bomb.lua", ("error",), r"global 'os'")
item(H + "signal-broker.lua", ("error",), r"global 'os'")
item(H + "trace-broker.lua", ("error",), r"global 'debug'")
item(H + "bytecode.lua", ("error",), r"binary chunk")
item(H + "other-origin.lua", ("ok",), r"^$", result=SEEN)
# Limits, the same in both modes.
for unsafe in (False, True):
    item(H + "loop.lua", ("unresponsive",), r"ran past 3000 ms; killed", unsafe)
    # Under a sanitizer's malloc (TSan's most), on a busy machine, the
    # 64 MiB may take longer to fill than the event's 3 s: either wall holds.
    item(H + "memory-bomb.lua", ("out-of-memory",) + (("unresponsive",) if SANITIZED else ()),
         r"not enough memory|memory limit|ran past", unsafe)
    item(H + "rep-bomb.lua", ("out-of-memory",), r"not enough memory|memory limit", unsafe)
    # A million frames take seconds under a sanitizer's malloc.
    item(H + "recursion.lua", ("error", "out-of-memory") + (("unresponsive",) if SANITIZED else ()),
         r"stack overflow|not enough memory|ran past", unsafe)
    item(H + "flood.lua", ("violation",), r"flooded the broker", unsafe)
    item(H + "pattern-bomb.lua", ("unresponsive",), r"ran past 3000 ms; killed", unsafe)
    item(H + "pcall-loop.lua", ("unresponsive",), r"ran past 3000 ms; killed", unsafe)
    # Thousands of events queued for itself, the first never returning: a
    # batch holds at most 8 events, so it is killed within 8 limits.
    item(H + "batch-loop.lua", ("unresponsive",), r"ran past 300 ms; killed", unsafe,
         limit=["--timeout-ms", "300"])
# An event that returns, but after more than its own limit of CPU.
item("api/overtime.lua", ("unresponsive",), r"an event used \d+ ms of CPU, past its 300 ms", True,
     limit=["--timeout-ms", "300"])
# The Lua wall down: only the process wall stands, and holds.
item(H + "read-file.lua", ("violation",), r"^open(at)?$", True)
item(H + "socket.lua", ("violation",), r"^socket$", True)
item(H + "exec.lua", ("violation",), r"^execve$", True)
item(H + "fork-bomb.lua", ("violation",), r"^(fork|clone|clone3|vfork)$", True)
item(H + "signal-broker.lua", ("violation",), r"^kill$", True)
item(H + "trace-broker.lua", ("violation",), r"^ptrace$", True)
item(H + "bytecode.lua", ("crashed",), r"^SIGSEGV$", True)
item(H + "other-origin.lua", ("violation",), r"^process_vm_readv$", True)
if os.path.exists("/tmp/walls-tabs-escaped"):
    fail("a tab ran a program of the host: /tmp/walls-tabs-escaped exists")
    os.unlink("/tmp/walls-tabs-escaped")
# Bad scripts.
item("bad/syntax.lua", ("error",), r"syntax.lua:1: unexpected symbol near '='")
item("bad/runtime.lua", ("error",), r"runtime.lua:2: attempt to index a nil value")
item("bad/never-returns.lua", ("unresponsive",), r"ran past 3000 ms")
# The API's edges.
item("api/big-message.lua", ("error",), r"message too large \(limit 65536 bytes\)")
item("api/bad-message.lua", ("error",), r"cannot hold a function")
item("api/cycle.lua", ("error",), r"more than 32 deep")
item("api/timers-limit.lua", ("error",), r"too many pending timers \(limit 256\)")
item("api/quota.lua", ("error",), r"storage quota exceeded")
item("api/unknown-target.lua", ("ok",), r"^$", result={"posted": True})
item("api/arg-name.lua", ("error",), r"^bad argument #1 to 'tab\.set_timeout'")
item("api/nul-error.lua", ("error",), r"^before after$")
item("api/ctl-error.lua", ("error",), r"ctl-error\.lua:4: a   b  c d$")
item("api/utf8.lua", ("ok",), r"^$", result={"s": "h\u00e9llo \u2713 \U0001F600 bad\ufffdend"})
item("api/cut-utf8.lua", ("ok",), r"^$", result={"truncated": True, "bytes": 4104})
item("api/shebang.lua", ("ok",), r"^$", result={"where": "shebang.lua:4: here"})
item("api/bom.lua", ("ok",), r"^$", result={"bom": True})
item("api/echo-types.lua", ("ok",), r"^$",
     result={"int": 42, "float": 0.25, "yes": True, "no": False, "str": "a\"b\n",
             "big": 9223372036854775807, "neg": -7, "type1": "integer", "type2": "float"})
item("api/load-text.lua", ("ok",), r"^$", result={"answer": 42, "dofile": True, "loadfile": True,
                                                  "close": True})

# Counts: unknown-target's message was dropped; ping sent 11 and got 10.
proc = run(["run", "--json", "--quiet"] + ORIGINS + GOOD + [os.path.join(TESTS, "api/unknown-target.lua")],
           "counts", 0)
tabs = tabs_of(proc, "counts")
if tabs.get("unknown-target", {}).get("dropped") != 1:
    fail(f"counts: unknown-target dropped {tabs.get('unknown-target')}, wanted 1")
if (tabs.get("ping", {}).get("sent"), tabs.get("ping", {}).get("received")) != (11, 10):
    fail(f"counts: ping {tabs.get('ping')}, wanted sent 11 received 10")

# The plain report: one line per tab, name first.
proc = run(["run", "--quiet"] + ORIGINS + GOOD, "plain", 0)
lines = proc.stdout.splitlines()
if len(lines) != len(GOOD) or not all(re.match(r"^\S+ +ok +sent=\d+ received=\d+ ", l) for l in lines):
    fail(f"plain: {proc.stdout!r}")

# A timer that keeps a tab busy past the deadline is reported, not waited for.
proc = run(["run", "--json", "--quiet", "--deadline-ms", "300", os.path.join(TESTS, "good/timers.lua"),
            os.path.join(TESTS, "api/unknown-target.lua")], "deadline")
t = tabs_of(proc, "deadline")
if "timers" not in t:
    fail("deadline: no report")

# The shared kitchen: the same API in one process, and what a hostile tab does there.
proc = run(["run", "--threads", "--json", "--quiet"] + ORIGINS + GOOD, "threads", 0)
check_good(tabs_of(proc, "threads"), "threads")
proc = run(["run", "--threads", "--json", "--quiet"] + TIMEOUT + ORIGINS + GOOD +
           [os.path.join(TESTS, "hostile/loop.lua")], "threads loop", 1)
t = tabs_of(proc, "threads loop")
check_good(t, "threads loop")
stopped = "Lua hook" in t.get("loop", {}).get("detail", "") or \
    (TSAN and "its thread runs on" in t.get("loop", {}).get("detail", ""))
if t.get("loop", {}).get("outcome") != "unresponsive" or not stopped:
    fail(f"threads loop: {t.get('loop')}")
# Stuck in one C call, a thread cannot be stopped: its neighbours finish,
# the report comes, and the program leaves the thread behind by exiting.
proc = run(["run", "--threads", "--json", "--quiet", "--timeout-ms", "1000"] + ORIGINS + GOOD +
           [os.path.join(TESTS, "hostile/pattern-bomb.lua")], "threads pattern-bomb", 1)
t = tabs_of(proc, "threads pattern-bomb")
check_good(t, "threads pattern-bomb")
if "its thread runs on" not in t.get("pattern-bomb", {}).get("detail", ""):
    fail(f"threads pattern-bomb: {t.get('pattern-bomb')}")
# A finalizer that never returns, pending when the tab closes: the tab ends
# ok and the program exits in both modes (lua_close() would run it for
# ever in a thread, which no hook can stop).
for mode in ([], ["--threads"]):
    label = "gc-loop" + (" threads" if mode else "")
    try:
        proc = run(["run", "--json", "--quiet"] + mode + ORIGINS + GOOD +
                   [os.path.join(TESTS, "hostile/gc-loop.lua")], label, 0)
    except subprocess.TimeoutExpired:
        leftovers(label)
        fail(f"{label}: the program never exited")
        continue
    t = tabs_of(proc, label)
    check_good(t, label)
    if t.get("gc-loop", {}).get("outcome") != "ok":
        fail(f"{label}: {t.get('gc-loop')}")
proc = run(["run", os.path.join(TESTS, "api/nul-log.lua")], "nul-log", 0)
if "[nul-log] before after\n" not in proc.stderr:
    fail(f"nul-log: the log line on stderr: {proc.stderr!r}")
# The watchdog's hook stays set: catching its error does not escape it.
proc = run(["run", "--threads", "--json", "--quiet", "--timeout-ms", "500", "--deadline-ms", "20000",
            os.path.join(TESTS, "hostile/pcall-loop.lua")], "threads pcall-loop", 1)
t = tabs_of(proc, "threads pcall-loop").get("pcall-loop", {})
if t.get("outcome") != "unresponsive" or not ("Lua hook" in t.get("detail", "") or TSAN):
    fail(f"threads pcall-loop: {t}")
proc = run(["run", "--threads", "--unsafe-lua", "--json", "--quiet"] + ORIGINS + GOOD +
           [os.path.join(TESTS, "hostile/bytecode.lua")], "threads bytecode")
died = proc.returncode == -signal.SIGSEGV or (TSAN and proc.returncode == 66)
if not died or proc.stdout.strip():
    fail(f"threads bytecode: wanted the whole program dead of SIGSEGV with no report, got "
         f"status {proc.returncode} and {proc.stdout!r}")
else:
    print("ok   threads: malformed bytecode took every tab with it (SIGSEGV)")

# Bad command lines: status 2 and a message naming the problem.
bad = [
    ([], r"usage"),
    (["frobnicate"], r"unknown command"),
    (["run"], r"no scripts"),
    (["run", "--bogus", GOOD[0]], r"unknown or incomplete option"),
    (["run", "--timeout-ms", "0", GOOD[0]], r"--timeout-ms needs a number"),
    (["run", "--timeout-ms", "abc", GOOD[0]], r"--timeout-ms needs a number"),
    (["run", "--memory-mib", "-1", GOOD[0]], r"--memory-mib needs a number"),
    (["run", "--memory-mib"], r"--memory-mib needs a number"),
    (["run", "--origin", "x", GOOD[0]], r"TAB=ORIGIN"),
    (["run", "--origin", "nobody=a", GOOD[0]], r"names no tab"),
    (["run", "--origin", "coro=bad/origin", GOOD[0]], r"bad origin"),
    (["run", GOOD[0], GOOD[0]], r"two tabs are named"),
    (["serve", GOOD[0]], r"--ui"),
]
for args, msg in bad:
    proc = run(args, f"usage {args}", 2)
    if not re.search(msg, proc.stderr):
        fail(f"usage {args}: stderr {proc.stderr!r} does not say {msg!r}")
# A directory of this run's own, gone afterwards.
names_dir = tempfile.mkdtemp(prefix="walls-tabs-test.")
for fname, msg in (("broker.lua", r'not "broker"'), ("bad name!.lua", r"letters, digits")):
    path = os.path.join(names_dir, fname)
    open(path, "w").write("-- nothing\n")
    proc = run(["run", path], f"name {fname}", 2)
    if not re.search(msg, proc.stderr):
        fail(f"name {fname}: stderr {proc.stderr!r}")
    os.unlink(path)
os.rmdir(names_dir)
# A script that cannot be read is that tab's error, not the run's.
proc = run(["run", "--json", "--quiet", GOOD[0], "/nonexistent/gone.lua"], "missing file", 1)
t = tabs_of(proc, "missing file")
if t.get("gone", {}).get("outcome") != "error" or "cannot read" not in t["gone"]["detail"]:
    fail(f"missing file: {t.get('gone')}")
# A FIFO, a script one byte past 512 KiB and one exactly at it: the FIFO
# is refused at once (it would hold the broker), the large one names the
# limit it broke.
scripts_dir = tempfile.mkdtemp(prefix="walls-tabs-scripts-")
fifo = os.path.join(scripts_dir, "fifo.lua")
os.mkfifo(fifo)
for name, size in (("over", 512 * 1024 + 1), ("at", 512 * 1024)):
    with open(os.path.join(scripts_dir, name + ".lua"), "w") as f:
        f.write(" " * size)
proc = run(["run", "--json", "--quiet", "--deadline-ms", "20000", fifo,
            os.path.join(scripts_dir, "over.lua"), os.path.join(scripts_dir, "at.lua")],
           "script files", 1)
t = tabs_of(proc, "script files")
for name, outcome, detail in (("fifo", "error", "not a regular file"),
                              ("over", "error", "larger than 512 KiB"), ("at", "ok", "")):
    got = t.get(name, {})
    if got.get("outcome") != outcome or detail not in got.get("detail", "?"):
        fail(f"script files: {name}: {got}, wanted {outcome} {detail!r}")
for name in ("fifo.lua", "over.lua", "at.lua"):
    os.unlink(os.path.join(scripts_dir, name))
os.rmdir(scripts_dir)
# kill -9 of an idle tab's process: the tab ends at once, and says why,
# rather than at its next event (ten minutes away) as "replaced".
def descendants(pid):
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in os.listdir(f"/proc/{p}/task") if os.path.isdir(f"/proc/{p}/task") else []:
            try:
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                kids = []
            found += kids
            todo += kids
    return found


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


p = subprocess.Popen([BIN, "run", "--json", "--quiet", "--deadline-ms", "60000",
                      os.path.join(TESTS, "api/idle.lua")], stdout=subprocess.PIPE, text=True)
victim = None
for _ in range(200):
    workers = [d for d in descendants(p.pid) if comm(d) == "walls-worker"]
    if workers:
        victim = workers[0]
        break
    time.sleep(0.05)
if victim is None:
    fail("idle kill: the tab's process never showed")
    p.kill()
else:
    time.sleep(0.5)  # idle by now: its script has run
    os.kill(victim, signal.SIGKILL)
try:
    out, _ = p.communicate(timeout=30)
except subprocess.TimeoutExpired:
    p.kill()
    out, _ = p.communicate()
    fail("idle kill: the run did not end after its only tab's process was killed")
leftovers("idle kill")
t = tabs_of(subprocess.CompletedProcess(p.args, p.returncode, out, ""), "idle kill").get("idle", {})
if t.get("outcome") != "crashed" or "killed from outside" not in t.get("detail", ""):
    fail(f"idle kill: {t}")
# The same kill landing after the broker's poll, just before it sends the
# tab's next batch (kill_shim.c kills the tab's process inside the second
# walls_submit_ex(), the timer's batch): the batch runs in a replacement,
# which holds no tab, and the tab still ends as killed from outside.
# Before, it ended as "its process was replaced". Not under the
# sanitizers, whose runtimes must come first in a preloaded program.
if KILL_SHIM and not SANITIZED:
    env = dict(os.environ, LD_PRELOAD=KILL_SHIM, WALLS_TABS_TEST_KILL_AT="2")
    r = subprocess.run([BIN, "run", "--json", "--quiet", "--deadline-ms", "30000",
                        os.path.join(TESTS, "api/soon.lua")], capture_output=True, text=True,
                       env=env, timeout=60)
    leftovers("kill before a batch")
    t = tabs_of(r, "kill before a batch").get("soon", {})
    if t.get("outcome") != "crashed" or "killed from outside" not in t.get("detail", ""):
        fail(f"kill before a batch: {t}")
# SIGTERM mid-run: the report still comes, and nothing is left.
p = subprocess.Popen([BIN, "run", "--json", "--quiet", os.path.join(TESTS, "hostile/loop.lua")],
                     stdout=subprocess.PIPE, text=True)
time.sleep(0.5)
p.send_signal(signal.SIGTERM)
out, _ = p.communicate(timeout=30)
leftovers("sigterm")
if "loop" not in out:
    fail(f"sigterm: no report: {out!r}")

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("all passed")
