"""How long `vmtool -a referenceAnalyze` takes on a big heap, how long it stalls the target's other threads, its RSS growth.

For every interpreter the test suite finds: start tests/targets/prof_refs_target.py (1 M
objects with __slots__ + 1 M lists: about 2 M GC-tracked objects, plus one ``Leak`` eight
references from a root, deeper than all of them, and a thread that wakes every 1 ms and
records its longest gap), attach once, then per measured window: start a window (SIGUSR1),
run one command with the CLI, read the longest gap (SIGUSR2). Measured, RUNS times each:

- ``vmtool -a referenceAnalyze -c __main__ Leak``: the worst case, the whole heap walked
  before the one instance is met (and, -n 3 not reached, the young generations after it);
- ``vmtool -a referenceAnalyze -c __main__ Item``: instances near a root (the search stops
  at the third);
- ``mem summary``: the plain heap walk over the same heap, for the ratio;
- an idle window as long as the slowest search (the noise floor).

Each search's result says how long it held the GIL at most between two of its pauses and
how long its own young collections took (``pacing``), beside the stall the ticker saw;
``--before SRC`` measures each interpreter with that code first, then with ``--after``.
Results go to stdout and bench/RESULTS-reference.md. Nothing is asserted.

    .venv/bin/python bench/reference_analyze.py [--runs N] [--pythons 3.8,3.14] [--objects 1000000]
        [--before /tmp/old/src] [--after src]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time

from mem_pause import SOURCES, add_sources, held, measured_runs, ms, renice, run_cli, save, sources, window

from interpreters import find_interpreters  # on the path mem_pause adds (tests/)
from support import start_target

HERE = os.path.dirname(os.path.abspath(__file__))
WORST = "vmtool -a referenceAnalyze -c __main__ Leak"
NEAR = "vmtool -a referenceAnalyze -c __main__ Item"


def timed_runs(target: object, command: str, runs: int) -> tuple[list[float], list[float], list[dict], list[int]]:
    """Wall seconds, longest gap, result and RSS growth (KiB) of each run of ``command``."""
    seconds, gaps, results, growth = [], [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        gap, result, grew = measured_runs(target, command, 1)  # type: ignore[arg-type]
        seconds.append(time.perf_counter() - started)
        gaps += gap
        results += result
        growth += grew
    return seconds, gaps, results, growth


def measure(python: str, runs: int, objects: int) -> dict[str, object]:
    load = os.getloadavg()[0]
    target = start_target(python, "prof_refs_target.py", str(objects), timeout=180)
    try:
        run_cli(target.pid, 'console -c "0"')  # attach, not measured
        renice(target.pid)
        worst_s, worst_gaps, worst, worst_growth = timed_runs(target, WORST, runs)
        chain = worst[-1]["chains"][0]
        near_s, near_gaps, _, near_growth = timed_runs(target, NEAR, runs)
        mem_s, mem_gaps, mem, _ = timed_runs(target, "mem summary --limit 5", runs)
        idle, _, _ = window(target, lambda: time.sleep(max(worst_s)))
        return {
            "worst_s": max(worst_s),
            "worst_gap_ms": max(worst_gaps),
            "worst_gaps_ms": worst_gaps,
            "worst_rss_kb": max(worst_growth),
            "held_ms": held(worst, "longest_ms"),
            "held_cpu_ms": held(worst, "longest_cpu_ms"),
            "collection_ms": held(worst, "longest_collection_ms"),
            "mem_held_ms": held(mem, "longest_ms"),
            "load": (load, os.getloadavg()[0]),
            "walked": worst[-1]["walked"],
            "levels": worst[-1]["levels"],
            "chain": [chain["root"]["name"], *[step["via"] for step in chain["steps"]]],
            "near_s": max(near_s),
            "near_gap_ms": max(near_gaps),
            "near_rss_kb": max(near_growth),
            "mem_s": max(mem_s),
            "mem_walk_s": max(summary["seconds"] for summary in mem),
            "mem_gap_ms": max(mem_gaps),
            "idle_gap_ms": idle,
        }
    finally:
        os.kill(target.pid, signal.SIGTERM)
        target.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pythons", help="interpreter ids, e.g. 3.8,3.14")
    parser.add_argument("--objects", type=int, default=1_000_000, help="Item objects (each adds one list too)")
    add_sources(parser)
    args = parser.parse_args()
    if args.pythons:
        os.environ["FLIGHT_PROFILER_TEST_PYTHONS"] = args.pythons
        find_interpreters.cache_clear()
    rows = []
    for ident, python in find_interpreters():
        for label, src in sources(args):
            SOURCES["src"] = src
            print("measuring %s %s ..." % (ident, label), file=sys.stderr, flush=True)
            found = measure(python, args.runs, args.objects)
            print(ident, label, json.dumps(found), flush=True)
            rows.append(((ident + " " + label).strip(), found))
    write_results(rows, args)
    return 0


def write_results(rows: list[tuple[str, dict]], args: argparse.Namespace) -> None:
    lines = [
        "# vmtool -a referenceAnalyze on a big heap: time, longest stall of the target's other threads, memory",
        "",
        "`bench/reference_analyze.py` on %s (%d CPUs), %s. Target: %d objects with `__slots__` plus one list"
        % (platform.machine(), os.cpu_count() or 0, time.strftime("%Y-%m-%d"), args.objects),
        "each (about %d GC-tracked objects) under one global, one `Leak` eight references from a root"
        % (2 * args.objects),
        "(`CACHE['k'][0][0][0][0][0][0]`, deeper than every other object), and a thread that sleeps 1 ms in",
        "a loop and records its longest gap between wake-ups. The target's threads run under SCHED_FIFO when",
        "allowed (see RESULTS-mem.md); the idle column is the noise floor that remains. Each figure is the",
        "largest of %d runs, through the CLI with the agent already attached." % args.runs,
        "",
        "- **worst case**: `%s`: the whole heap is walked before the one instance is met, then the" % WORST,
        "  young generations (-n 3 not reached); wall time, longest stall, peak RSS growth (VmHWM reset",
        "  through `/proc/PID/clear_refs` before each run).",
        "- **near**: `%s`: the search stops at the third instance." % NEAR,
        "- **mem summary**: the plain heap walk over the same heap (wall time through the CLI), for the ratio.",
        "",
        "| python | objects walked | levels | worst case | stall | each run | held | collection | RSS + | near"
        " | stall | mem summary | ratio | stall, mem | held, mem | idle | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for ident, found in rows:
        lines.append(
            "| %s | %s | %d | %.1f s | **%.1f ms** | %s | %s / %s ms | %s ms | %.1f MB | %.2f s | %.1f ms | %.1f s | %.2f"
            " | %.1f ms | %s ms | %.1f ms | %.0f-%.0f |"
            % (
                ident,
                "{:,}".format(found["walked"]),
                found["levels"],
                found["worst_s"],
                found["worst_gap_ms"],
                " / ".join("%.0f" % gap for gap in found["worst_gaps_ms"]),
                ms(found["held_ms"]),
                ms(found["held_cpu_ms"]),
                ms(found["collection_ms"]),
                found["worst_rss_kb"] / 1024,
                found["near_s"],
                found["near_gap_ms"],
                found["mem_s"],
                found["worst_s"] / found["mem_s"],
                found["mem_gap_ms"],
                ms(found["mem_held_ms"]),
                found["idle_gap_ms"],
                *found["load"],
            )
        )
    chain = rows[-1][1]["chain"] if rows else []
    lines += [
        "",
        "The chain found: `%s`. Ratio: worst case / mem summary wall times." % "".join(chain),
        "The search keeps, per level, the objects that may refer to others (8 bytes each) until it has",
        "gone back to the roots: on this heap, where the instance is met last, that is every container",
        "(the RSS + column); where instances are near a root (near) it is what lies nearer than them.",
        "The gap includes the 1 ms sleep itself and the switch interval (5 ms) the ticker may wait for the",
        "GIL while the search runs Python code. On a loaded host single runs vary (each run column; the",
        "near case, a 0.3 s command, has shown 50 ms too): run in process with a stack sample taken at each",
        "gap over 20 ms, the search thread stood in `time.sleep` (GIL released) or in a Python loop at most",
        "gaps, that is the host's CPU queue, not a C call holding the GIL. Before the levels were kept in",
        "chunks, a young collection that met a level's list of a million entries stalled 31 ms on 3.8.",
        "Not a test: nothing is asserted.",
        "",
    ]
    save(os.path.join(HERE, "RESULTS-reference.md"), lines, args, COLUMNS)


COLUMNS = [
    "Columns added: **held**, the longest time the worst-case search held the GIL between two of its",
    "pauses, wall / CPU time of its thread (`pacing` in the result; `-` where the code does not report",
    "it); **collection**, the longest of the young collections it ran itself; **held, mem**, the same",
    "for `mem summary` (wall); **load**, the 1-minute load average when the interpreter's measure began",
    "and ended. `before` / `after`: the same interpreter with the code before the change, then after it.",
]


if __name__ == "__main__":
    sys.exit(main())
