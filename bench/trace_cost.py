"""What a traced sub-call costs: ours, the reference's C tracer and cProfile, in the same run.

On bench/overhead_target.py's method with 50 sub-calls (``Work.handle(50)``) in a loop:
  1. baseline: invocations per CPU second of the target with nothing tracing;
  2. ours: ``trace __main__ Work handle`` tracing every invocation (no budget, the default
     -i 0.1), the same rate;
  3. reference 1.0.7: its ``trace`` of the same method, in a target of the same interpreter
     with the reference installed (bench/overhead.py loads it the same way);
  4. cProfile: the same loop with cProfile enabled in the target's own worker thread.
µs per sub-call = (1/rate traced - 1/rate baseline) / 50, the hook's own cost included;
"kept" = traced rate / baseline rate. Then, in one process per interpreter, where that cost goes
(bench/trace_inprocess.py). Nothing is asserted; it appends its run to bench/RESULTS-trace.md.

    .venv/bin/python bench/trace_cost.py [--pythons 3.8,3.12] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from overhead import BIG, Target, ours, reference, reference_venv  # noqa: E402
from stamp import stamp  # noqa: E402

from interpreters import find_interpreters  # noqa: E402

SUB_CALLS = 50
OURS = "trace __main__ Work handle -n %d" % BIG  # every invocation traced and shown: no budget, no rate
OURS_RATED = OURS + " --rate 10"  # every invocation traced, 10 a second shown: the tracing's own cost
REFERENCE = "trace __main__ Work handle -n %d" % BIG


def _rate(target: Target, seconds: float) -> float:
    return target.measure(seconds)[0]


def _traced(target: Target, start: Any, command: str, seconds: float, lines: bool = False) -> tuple[float, float, str]:
    """(baseline rate, traced rate, note: results a second) for one tool's trace on the method50 workload."""
    target.workload("method50")
    time.sleep(1.0)
    base = _rate(target, seconds)
    client = start(target.pid, command)
    if not client.started.wait(60):
        client.stop(9)
        return base, 0.0, "did not start: %s" % " | ".join(client.first_lines)
    time.sleep(1.0)
    results, printed = client.results, client.lines
    traced = _rate(target, seconds)
    note = "%.0f results/s" % ((client.results - results) / seconds)
    if lines:  # the reference prints a line per traced invocation under -i ("... below 0.1ms, skip display")
        note = "%.0f lines/s" % ((client.lines - printed) / seconds)
    client.stop(2)
    if not target.alive():
        note += ", target died"
    return base, traced, note


def _cprofile(target: Target, seconds: float) -> tuple[float, float]:
    target.workload("method50")
    time.sleep(1.0)
    base = _rate(target, seconds) or _rate(target, seconds)  # a window with no tick: measure again
    target.workload("cprofile50")
    time.sleep(1.0)
    profiled = _rate(target, seconds)
    target.workload("method50")
    return base, profiled


def _per_sub_call(base: float, traced: float) -> float | None:
    if base <= 0 or traced <= 0:
        return None
    return (1.0 / traced - 1.0 / base) / SUB_CALLS * 1e6


def bench_python(label: str, python: str, seconds: float) -> list[dict[str, Any]]:
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    rows: list[dict[str, Any]] = []
    target = Target(python, attach_first=ours)
    try:
        base, traced, note = _traced(target, ours, OURS, seconds)
        rows.append({"python": label, "tool": "ours, every trace shown", "base": base, "traced": traced, "note": note})
        base, traced, note = _traced(target, ours, OURS_RATED, seconds)
        rows.append({"python": label, "tool": "ours, --rate 10", "base": base, "traced": traced, "note": note})
        base, profiled = _cprofile(target, seconds)
        rows.append({"python": label, "tool": "cProfile", "base": base, "traced": profiled, "note": ""})
    finally:
        target.stop()
    venv, why = reference_venv(version, python)
    if venv is None:
        rows.append({"python": label, "tool": "reference 1.0.7", "base": 0.0, "traced": 0.0, "note": why})
        return rows
    start = lambda pid, command: reference(venv, pid, command)  # noqa: E731
    target = Target(os.path.join(venv, "bin", "python"), attach_first=start)
    try:
        base, traced, note = _traced(target, start, REFERENCE, seconds, lines=True)
        rows.append({"python": label, "tool": "reference 1.0.7", "base": base, "traced": traced, "note": note})
    finally:
        target.stop()
    return rows


def breakdown(python: str) -> dict[str, float]:
    """bench/trace_inprocess.py's figures for one interpreter (µs per sub-call), or {} if it failed."""
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(HERE), "src")}
    script = os.path.join(HERE, "trace_inprocess.py")
    out = subprocess.run([python, script], capture_output=True, text=True, timeout=600, env=env, check=False)
    if out.returncode != 0:
        print(out.stderr[-1000:], file=sys.stderr)
        return {}
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


BREAKDOWN = (
    "plain invocation",
    "hook only",
    "do-nothing profile function",
    "recording only",
    "trace",
    "trace, sys.monitoring recorder",
    "cProfile",
    "trace, 4 threads waiting 30 deep",
    "trace, events held, 4 threads waiting 30 deep",
    "sys.monitoring callbacks, local events set once",
)


def _breakdown_table(found: list[tuple[str, dict[str, float]]]) -> str:
    lines = ["| Python | %s |" % " | ".join(BREAKDOWN), "|---|%s" % ("---|" * len(BREAKDOWN))]
    for label, figures in found:
        cells = ["-" if name not in figures else "%.2f" % figures[name] for name in BREAKDOWN]
        lines.append("| %s | %s |" % (label, " | ".join(cells)))
    return "\n".join(lines) + "\n"


def _line(row: dict[str, Any]) -> str:
    cost = _per_sub_call(row["base"], row["traced"])
    kept = row["traced"] / row["base"] if row["base"] else 0.0
    return "| %s | %s | %.0f | %.0f | %s | %.1f %% | %s |" % (
        row["python"],
        row["tool"],
        row["base"],
        row["traced"],
        "-" if cost is None else "%.2f" % cost,
        kept * 100.0,
        row["note"],
    )


HEADER = (
    "| Python | tool | invocations/CPU s, untraced | traced | µs per traced sub-call | throughput kept | note |\n"
    "|---|---|---|---|---|---|---|"
)


READING = """Reading it:
- "every trace shown" sends every traced invocation's tree to the client (the default: no --rate);
  "--rate 10" still traces every invocation but shows 10 trees a second: the tracing's own cost.
- The recorder is a profile function that only appends; the tree is built when the invocation
  ends, and a call shorter than -i that called nothing costs no node (the breakdown below).
- On 3.12+ turning a profile function (or a sys.monitoring tool's events) on or off
  re-instruments the code every thread is running, so each traced invocation pays for the
  target's other threads' stacks ("trace, 4 threads waiting 30 deep" against "trace"). Before
  3.12 it does not. Since commit 6936269, while traced invocations take at least half the wall
  time, a thread of ours holds a do-nothing profile function, so the traced thread's switches
  change no event and re-instrument nothing ("events held"); the others then pass the
  interpreter's C check for a profile function on each call, as they do while an invocation is
  traced.
- The sys.monitoring recorder (used on 3.12+ only on a thread that has a profiler of its own)
  needs three callbacks per Python call (CALL, PY_START, PY_RETURN) against two calls of a
  profile function, and every other thread calls them too while it is on: it is the dearer one.
  "local events set once" is an experiment, not a recorder trace has: the same callbacks with
  events set once on the two code objects of the workload (``set_local_events``), i.e. what a
  recorder that knew the traced subtree's code objects in advance would pay per sub-call.
- The reference's throughput shows how few invocations it traces, not what a traced sub-call
  costs it: its rate cannot be read as a per-sub-call cost.

"""


def _write(path: str, pythons: str, seconds: float, rows: list[dict[str, Any]], found: list[Any]) -> None:
    """Append this run, stamped, to the results (the file's head, written once, says how to read them)."""
    fresh = not os.path.exists(path)
    with open(path, "a") as fh:
        if fresh:
            fh.write("# What a traced sub-call costs\n\n")
            fh.write(__doc__.split("\n\n", 2)[1] + "\n\n")
            fh.write(READING)
        fh.write("\n## Run of %s\n\n" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        fh.write(stamp())
        fh.write("\nProduced by `bench/trace_cost.py --pythons %s --seconds %g`; not a test.\n\n" % (pythons, seconds))
        fh.write(HEADER + "\n")
        for row in rows:
            fh.write(_line(row) + "\n")
        fh.write("\n### Where it goes (one process, µs per sub-call; plain invocation: µs per invocation)\n\n")
        fh.write(_breakdown_table(found))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythons", default="3.8,3.12", help="interpreter ids (tests/interpreters.py)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measurement window")
    args = parser.parse_args()
    wanted = args.pythons.split(",")
    rows: list[dict[str, Any]] = []
    found: list[tuple[str, dict[str, float]]] = []
    print(HEADER, flush=True)
    for label, path in find_interpreters():
        if label in wanted:
            for row in bench_python(label, path, args.seconds):
                rows.append(row)
                print(_line(row), flush=True)
            found.append((label, breakdown(path)))
            print(found[-1], flush=True)
    _write(os.path.join(HERE, "RESULTS-trace.md"), args.pythons, args.seconds, rows, found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
