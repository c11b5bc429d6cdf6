#!/usr/bin/env python3
"""The hostile battery of walls-tabs in both modes, side by side: each item
runs beside the ten well-behaved tabs of systems/tabs/tests/good, as walls
processes and as threads of one process (--threads), and the table says how
the item ended and how many neighbours still finished with the right
result. Usage: battery.py <walls-tabs> <repository root>."""
import json
import os
import subprocess
import sys

BIN, ROOT = sys.argv[1], sys.argv[2]
TESTS = os.path.join(ROOT, "systems/tabs/tests")
GOOD = sorted(os.path.join(TESTS, "good", f) for f in os.listdir(os.path.join(TESTS, "good"))
              if f.endswith(".lua"))
EXPECTED = json.load(open(os.path.join(TESTS, "good/expected.json")))
ORIGINS = ["--origin", "store-a=shop", "--origin", "store-b=shop"]
ESCAPED = "/tmp/walls-tabs-escaped"

ITEMS = [
    ("read a file", "read-file", True), ("open a socket", "socket", True),
    ("exec", "exec", True), ("fork bomb", "fork-bomb", True),
    ("infinite loop", "loop", False), ("memory bomb", "memory-bomb", False),
    ("string.rep bomb", "rep-bomb", False), ("deep recursion", "recursion", False),
    ("stuck in one C call", "pattern-bomb", False),
    ("malformed bytecode", "bytecode", True), ("another origin's storage", "other-origin", True),
    ("flood the broker", "flood", False), ("signal the broker", "signal-broker", True),
    ("trace the broker", "trace-broker", True),
]


def run(name, threads, unsafe):
    if threads and unsafe and name == "fork-bomb":
        return "not run: in one process it would fork-bomb this machine", None
    args = [BIN, "run", "--json", "--quiet", "--timeout-ms", "1000"] + ORIGINS
    args += (["--threads"] if threads else []) + (["--unsafe-lua"] if unsafe else [])
    if os.path.exists(ESCAPED):
        os.unlink(ESCAPED)
    p = subprocess.run(args + GOOD + [os.path.join(TESTS, "hostile", name + ".lua")],
                       capture_output=True, text=True, timeout=120)
    tabs = {}
    for line in p.stdout.splitlines():
        try:
            o = json.loads(line)
            tabs[o["name"]] = o
        except ValueError:
            pass
    ok = sum(1 for n, r in EXPECTED.items()
             if tabs.get(n, {}).get("outcome") == "ok" and tabs[n].get("result") == r)
    t = tabs.get(name)
    if t is None:
        sig = -p.returncode if p.returncode < 0 else None
        what = f"the whole program died ({'signal ' + str(sig) if sig else 'status ' + str(p.returncode)})"
    else:
        what = t["outcome"] + (": " + t["detail"] if t["detail"] else "")
        if t["outcome"] == "ok" and t.get("result") is not None:
            what += " " + json.dumps(t["result"])[:60]
    if os.path.exists(ESCAPED):
        what += "; it ran a program of the host"
        os.unlink(ESCAPED)
    return what[:90], ok


print("| item | Lua wall | walls processes: item | neighbours ok | threads: item | neighbours ok |")
print("|---|---|---|---|---|---|")
for label, name, unsafe_too in ITEMS:
    for unsafe in ([False, True] if unsafe_too else [False]):
        proc, pok = run(name, False, unsafe)
        thr, tok = run(name, True, unsafe)
        print(f"| {label} | {'down' if unsafe else 'up'} | {proc} | {pok}/10 | {thr} | "
              f"{'-' if tok is None else str(tok) + '/10'} |", flush=True)
