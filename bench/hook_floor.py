"""Hooks against the floor, in one process per interpreter: ns of CPU added per call of a small function.

bench/overhead.py measures the commands on a real target through the CLI, per CPU second of
the whole process, on a shared machine; at a few ns per call its noise is larger than the
differences. This one runs our hook code (services/hooks.py and the commands' own probes, the
same code the agent runs) in a plain interpreter, with the floors beside it: rounds of 100 000
calls of a one-line function, each variant in turn, the thread's CPU time, the best round of
each (the least disturbed by the machine's other load). Variants:
  floor plain        a wrapper that only calls a copy of the original (a constant of its code)
  floor inline       the same with the never-matching filter `args[0] < 0` compiled in, unguarded
  watch -f never     watch's probe with `-f 'args[0]<0'`
  tt -f never        tt's probe with the same filter
  monitor -f never   monitor's probe with the same filter
  monitor, all timed monitor's probe timing every call (what it does while the rate is low)
  monitor, hot       monitor's probe at the stride a hot function gets (one call in 1024 timed)
  generic -f never   the generic wrapper (the probe asked through enter/leave, as before)
Nothing is asserted: it prints a table and appends it to bench/RESULTS-hook-floor.md.

    .venv/bin/python bench/hook_floor.py [--pythons 3.8,3.12,3.14] [--rounds 25]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from stamp import stamp  # noqa: E402

from interpreters import find_interpreters  # noqa: E402

# runs in the measured interpreter (3.8 syntax, stdlib and our sources only)
CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from flight_profiler.services import hooks
from flight_profiler.commands.monitor.agent import MonitorProbe
from flight_profiler.commands.monitor.model import PICK_BLOCK
from flight_profiler.commands.tt.agent import TtProbe
from flight_profiler.commands.watch.agent import WatchProbe

NEVER = "args[0]<0"

class Target:
    is_method = False

def hot(x):
    return x + 1

ORIGINAL = hot.__code__

def floor(kind):
    shadow = type(hot)(ORIGINAL.replace(), globals(), "hot")
    call = "('S' if 1 else 0)(x)"
    body = "    return %s\n" % call if kind == "plain" else "    if x < 0:\n        return %s\n    return %s\n" % (call, call)
    code = compile("def hot(x):\n" + body, "<floor>", "exec").co_consts[0]
    return code.replace(co_consts=tuple(shadow if c == "S" else c for c in code.co_consts))

def run(n=100000):
    started = time.thread_time()
    for i in range(n):
        hot(i)
    return (time.thread_time() - started) / n * 1e9

def probe(kind):
    request = {"filter": NEVER, "limit": 10 ** 9, "rate": 0.0}
    if kind == "watch -f never":
        return WatchProbe(request, False)
    if kind == "tt -f never":
        return TtProbe(request, Target(), "function")
    if kind == "monitor -f never":
        return MonitorProbe(False, NEVER)
    if kind.startswith("monitor"):
        made = MonitorProbe(False, None)
        made.picker.set_stride(PICK_BLOCK if kind == "monitor, hot" else 1)
        return made
    made = WatchProbe(request, False)
    made.inline_plan = lambda: None  # generic
    return made

KINDS = ["unhooked", "floor plain", "floor inline", "watch -f never", "tt -f never", "monitor -f never",
         "monitor, all timed", "monitor, hot", "generic -f never"]
best = {kind: float("inf") for kind in KINDS}
for _ in range(int(sys.argv[2])):
    for kind in KINDS:
        if kind == "unhooked":
            best[kind] = min(best[kind], run())
        elif kind.startswith("floor"):
            hot.__code__ = floor(kind.split()[1])
            best[kind] = min(best[kind], run())
            hot.__code__ = ORIGINAL
        else:
            made = probe(kind)
            handle = hooks.install(hot, made)
            best[kind] = min(best[kind], run())
            handle.remove()
            made.close()
            if hot.__code__ is not ORIGINAL:
                raise SystemExit("the hook was not removed")
print(json.dumps(best))
"""

COLUMNS = (
    "floor plain",
    "floor inline",
    "watch -f never",
    "tt -f never",
    "monitor -f never",
    "monitor, all timed",
    "monitor, hot",
    "generic -f never",
)


def measure(python: str, rounds: int) -> dict[str, float]:
    out = subprocess.run(
        [python, "-c", CHILD, os.path.join(REPO, "src"), str(rounds)], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _over(added: dict[str, float], kind: str) -> str:
    floor = added["floor inline"]
    return "%.2fx" % (added[kind] / floor) if floor > 0 else "-"


def table(results: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        "| Python | unhooked | "
        + " | ".join(COLUMNS)
        + " | watch / inline floor | tt / inline floor | monitor -f / inline floor "
        + "| monitor hot: throughput / never-matching watch's |",
        "|---|---|" + "---|" * (len(COLUMNS) + 4),
    ]
    for label, best in results.items():
        base = best["unhooked"]
        added = {kind: value - base for kind, value in best.items()}
        lines.append(
            "| %s | %.0f ns | %s | %s | %s | %s | %.0f %% |"
            % (
                label,
                base,
                " | ".join("%+.0f ns" % added[kind] for kind in COLUMNS),
                _over(added, "watch -f never"),
                _over(added, "tt -f never"),
                _over(added, "monitor -f never"),
                100.0 * best["watch -f never"] / best["monitor, hot"],  # calls per CPU second, hot vs watch
            )
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythons", default="3.8,3.12,3.14")
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    wanted = args.pythons.split(",")
    results = {}
    for label, path in find_interpreters():
        if label in wanted:
            results[label] = measure(path, args.rounds)
            print(table({label: results[label]})[-1], flush=True)
    lines = [
        "# Hooks against the floor, in-process",
        "",
        stamp(),
        "`bench/hook_floor.py --pythons %s --rounds %d`: CPU time added per call of a one-line"
        % (args.pythons, args.rounds),
        "function (best round of 100 000 calls per variant, rounds interleaved; see the script's doc).",
        "Goals: a never-matching filter adds at most 1.25x the inline floor (issue 14); monitor on a hot",
        "function keeps at least the throughput a never-matching watch keeps (issue 12: last column >= 100 %).",
        "",
        *table(results),
        "",
    ]
    path = os.path.join(HERE, "RESULTS-hook-floor.md")
    if os.path.exists(path):  # each run is appended: earlier ones stay for comparison
        lines = ["", "## Run", *lines[1:]]
    with open(path, "a") as fh:
        fh.write("\n".join(lines))
    print("appended to bench/RESULTS-hook-floor.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
