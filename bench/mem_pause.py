"""How long `mem summary` and `vmtool -a getInstances` stall the other threads of a target, and its RSS growth.

For every interpreter the test suite finds: start tests/targets/prof_mem_pause_target.py
(1 M objects with __slots__ + 1 M lists, so about 2 M GC-tracked objects, plus a
thread that wakes every 1 ms and records its longest gap), attach once, then for
each measured window: start a window (SIGUSR1), run one command, read the
longest gap (SIGUSR2). Measured: `mem summary` and `vmtool -a getInstances -c
__main__ Item -n 3` (the same sliced walk, RUNS times each, with the target's RSS
at its peak during each command),
an idle window of the same length (the baseline), and, for comparison, one
`gc.get_objects()` call in the target (what a heap walk built on it pays before
it even starts). Each walk's result says how long the walk itself held the GIL at most between two of
its pauses (``pacing``: wall and CPU time of its thread), a figure the host's load does
not make up (the CPU one at least), beside the stall the ticker saw.
With ``--before SRC`` each interpreter is measured twice in the same run: with the
code in SRC (an earlier checkout's ``src``), then with ``--after`` (this checkout's).
Results go to stdout and bench/RESULTS-mem.md. Nothing is asserted.

    .venv/bin/python bench/mem_pause.py [--runs N] [--pythons 3.8,3.14] [--objects 1000000]
        [--before /tmp/old/src] [--after src]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from stamp import stamp  # noqa: E402

from interpreters import find_interpreters  # noqa: E402
from support import RunningTarget, start_target  # noqa: E402

CLI = [sys.executable, "-m", "flight_profiler"]
RT_PRIORITY = 10
SOURCES = {"src": os.path.join(HERE, "..", "src")}  # the code the CLI (and so the agent) is run from


def run_cli(pid: int, command: str) -> tuple[float, dict]:
    started = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=os.path.abspath(SOURCES["src"]))
    proc = subprocess.run(
        [*CLI, str(pid), "--cmd", command, "--json"], capture_output=True, text=True, check=False, env=env
    )
    seconds = time.perf_counter() - started
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines or "error" in lines[-1]:
        raise RuntimeError("%s failed: %s %s" % (command, proc.stdout, proc.stderr))
    return seconds, lines[-1]["result"]


def window(target: RunningTarget, action) -> tuple[float, int, object]:
    """Longest gap (ms) of the ticker and its tick count while ``action`` runs."""
    assert target.proc.stdout is not None
    os.kill(target.pid, signal.SIGUSR1)
    time.sleep(0.05)
    result = action()
    os.kill(target.pid, signal.SIGUSR2)
    words = target.proc.stdout.readline().split()
    return float(words[1]), int(words[2]), result


def status_kb(pid: int, field: str) -> int:
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> int:
    """Reset the target's peak RSS (VmHWM) to its current RSS; return that RSS in KiB."""
    with open("/proc/%d/clear_refs" % pid, "w") as fh:
        fh.write("5")
    return status_kb(pid, "VmRSS")


def peak_growth(pid: int, before: int) -> int:
    """How far the RSS rose above ``before`` at its peak since ``reset_peak`` (a freed list still counts)."""
    return status_kb(pid, "VmHWM") - before


def measured_runs(target: RunningTarget, command: str, runs: int) -> tuple[list[float], list[dict], list[int]]:
    """Longest gap, result and RSS growth (KiB) of each of ``runs`` runs of ``command``."""
    gaps, results, growth = [], [], []
    for _ in range(runs):
        before = reset_peak(target.pid)
        gap, _, (_, result) = window(target, lambda: run_cli(target.pid, command))
        growth.append(peak_growth(target.pid, before))
        gaps.append(gap)
        results.append(result)
    return gaps, results, growth


def renice(pid: int) -> None:
    """Put the target's threads above other load, so the gaps are the GIL's, not the CPU queue's.

    Real-time (SCHED_FIFO) when allowed: on a shared machine with other work running,
    nice alone still leaves gaps of 50-100 ms that have nothing to do with the GIL.
    """
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
        except OSError:
            try:
                os.setpriority(os.PRIO_PROCESS, int(tid), -10)
            except OSError as exc:  # not root: measure anyway, the idle column shows the noise
                print("cannot raise the target's priority: %s" % exc, file=sys.stderr)


def held(results: list[dict], field: str) -> float | None:
    """The longest GIL hold (ms) the walks reported, or None where the code does not report it."""
    found = [result["pacing"][field] for result in results if "pacing" in result]
    return max(found) if found else None


def held_where(results: list[dict]) -> str | None:
    """Where the walk's longest slice (in CPU time) ended, over the runs (``pacing.longest_where``)."""
    found = [result["pacing"] for result in results if "pacing" in result]
    return max(found, key=lambda pacing: pacing["longest_cpu_ms"]).get("longest_where") if found else None


def measure(python: str, runs: int, objects: int) -> dict[str, object]:
    load = os.getloadavg()[0]
    target = start_target(python, "prof_mem_pause_target.py", str(objects), timeout=120)
    try:
        run_cli(target.pid, 'console -c "0"')  # attach, not measured
        renice(target.pid)
        # first, on a heap no walk has touched yet: what one gc.get_objects() call costs
        before = reset_peak(target.pid)
        naive, _, (_, result) = window(
            target, lambda: run_cli(target.pid, 'console -c "import gc; len(gc.get_objects())"')
        )
        naive_growth = peak_growth(target.pid, before)
        gaps, summaries, mem_growth = measured_runs(target, "mem summary --limit 5", runs)
        walks = [summary["seconds"] for summary in summaries]
        started = time.perf_counter()
        inst_gaps, instances, inst_growth = measured_runs(target, "vmtool -a getInstances -c __main__ Item -n 3", runs)
        inst_seconds = (time.perf_counter() - started) / runs
        idle, _, _ = window(target, lambda: time.sleep(max(walks)))
        return {
            "max_gap_ms": max(gaps),
            "gaps_ms": gaps,
            "walk_s": max(walks),
            "objects": max(summary["objects"] for summary in summaries),
            "rss_growth_kb": max(mem_growth),
            "held_ms": held(summaries, "longest_ms"),
            "held_cpu_ms": held(summaries, "longest_cpu_ms"),
            "instances_held_ms": held(instances, "longest_ms"),
            "instances_held_cpu_ms": held(instances, "longest_cpu_ms"),
            "held_where": held_where(summaries),
            "instances_held_where": held_where(instances),
            "load": (load, os.getloadavg()[0]),
            "instances_gap_ms": max(inst_gaps),
            "instances_gaps_ms": inst_gaps,
            "instances_s": inst_seconds,
            "instances_count": instances[-1]["count"],
            "instances_rss_growth_kb": max(inst_growth),
            "idle_gap_ms": idle,
            "get_objects_gap_ms": naive,
            "get_objects_rss_growth_kb": naive_growth,
            "tracked": result.get("value"),
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


def add_sources(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--before", help="src of the code before a change: each interpreter is measured with both")
    parser.add_argument("--after", default=SOURCES["src"], help="src of the code after it (default: this checkout's)")


def sources(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(label, src) of each code measured, before first."""
    if not args.before:
        return [("", args.after)]
    return [("before", args.before), ("after", args.after)]


def ms(value: float | None) -> str:
    return "-" if value is None else "%.1f" % value


def save(path: str, lines: list[str], args: argparse.Namespace, columns: list[str] | None = None) -> None:
    """Write the results; where the file exists, append them as a new stamped section under the earlier ones.

    The section is the table alone (the text above it says what each column is), with the
    load when the run started beside the stamp's (taken at the end), and ``columns``: what
    the columns added since the text above was written are.
    """
    stamped = stamp()  # before the file is opened: truncating it would make the commit read "-dirty"
    if not os.path.exists(path):
        with open(path, "w") as fh:
            fh.write(lines[0] + "\n\n" + stamped + "\n".join(lines[1:]))
        return
    table = [line for line in lines if line.startswith("|")]
    notes = "".join(line + "\n" for line in columns or [])
    with open(path, "a") as fh:
        fh.write(
            "\n## Re-measured (%d objects, %d runs each)\n\n%sLoad average when the run started: %s.\n\n%s%s\n"
            % (args.objects, args.runs, stamped, STARTED_LOAD, notes + "\n" if notes else "", "\n".join(table))
        )


STARTED_LOAD = " / ".join("%.2f" % value for value in os.getloadavg())


def write_results(rows: list[tuple[str, dict]], args: argparse.Namespace) -> None:
    lines = [
        "# Heap walks (mem summary, vmtool -a getInstances): longest stall of the target's other threads",
        "",
        "`bench/mem_pause.py` on %s (%d CPUs), %s. Target: %d objects with `__slots__` plus one list each"
        % (platform.machine(), os.cpu_count() or 0, time.strftime("%Y-%m-%d"), args.objects),
        "(about %d GC-tracked objects), and a thread that sleeps 1 ms in a loop and records its longest"
        % (2 * args.objects),
        "gap between wake-ups. A window is opened, one command is run with the CLI, the window is read.",
        "The target's threads run under SCHED_FIFO (real-time priority %d) when allowed so that other load"
        % RT_PRIORITY,
        "on the machine does not dominate the figure; the idle column is the noise floor that remains.",
        "",
        "- **mem summary**: longest gap over %d runs of `mem summary` (our walk, in slices)." % args.runs,
        "- **getInstances**: longest gap over %d runs of `vmtool -a getInstances -c __main__ Item -n 3`" % args.runs,
        "  (the same walk, keeping 3 instances and the count), and its wall time through the CLI.",
        "- **RSS +**: the target's largest peak RSS growth over one command of that kind (VmHWM, reset through",
        "  `/proc/PID/clear_refs` before the command, minus VmRSS before it): memory freed again still counts.",
        "- **idle**: the same thread with nothing running, for as long as the slowest walk (the baseline).",
        "- **gc.get_objects()**: one `gc.get_objects()` call in the target via `console` (measured first,",
        "  before any walk warmed the caches): what getInstances paid before (one call) and what a heap walk",
        "  built on it (the reference's) pays in one stall before it even starts.",
        "",
        "| python | objects walked | walk | stall, mem summary | each run | held | RSS + | getInstances"
        " | stall, getInstances | each run | held | RSS + | idle | stall, gc.get_objects() | RSS + | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for ident, found in rows:
        lines.append(
            "| %s | %s | %.1f s | **%.1f ms** | %s | %s / %s ms | %.1f MB | %.1f s | **%.1f ms** | %s | %s / %s ms"
            " | %.1f MB | %.1f ms | %.1f ms | %.1f MB | %.0f-%.0f |"
            % (
                ident,
                "{:,}".format(found["objects"]),
                found["walk_s"],
                found["max_gap_ms"],
                " / ".join("%.0f" % gap for gap in found["gaps_ms"]),
                ms(found["held_ms"]),
                ms(found["held_cpu_ms"]),
                found["rss_growth_kb"] / 1024,
                found["instances_s"],
                found["instances_gap_ms"],
                " / ".join("%.0f" % gap for gap in found["instances_gaps_ms"]),
                ms(found["instances_held_ms"]),
                ms(found["instances_held_cpu_ms"]),
                found["instances_rss_growth_kb"] / 1024,
                found["idle_gap_ms"],
                found["get_objects_gap_ms"],
                found["get_objects_rss_growth_kb"] / 1024,
                *found["load"],
            )
        )
    lines += [
        "",
        "The gap includes the 1 ms sleep itself and the switch interval (5 ms) the ticker may wait for",
        "the GIL while the walk runs Python code. Not a test: nothing is asserted.",
        "",
        "Why the reference froze asyncio targets on 3.12.1: `gc.get_referents(_asyncio)` hands Python the",
        "free list of future iterators (CPython gh-122695, fixed in 3.12.6 and 3.13.0); dropping them again",
        "double-frees them and loops the free list, so the next traverse of `_asyncio` never ends (the GIL",
        "is never released again) or the process crashes. Our walk hit it too (tests/integration/test_mem.py,",
        "20 commands on an asyncio target, hung on 3.12.1) before it learnt to follow a module through its",
        "`__dict__` instead of its traverse function.",
        "",
    ]
    save(os.path.join(HERE, "RESULTS-mem.md"), lines, args, COLUMNS)


COLUMNS = [
    "Columns added: **each run**, the ticker's longest gap in each run; **held**, the longest time",
    "the walk itself held the GIL between two of its pauses, wall / CPU time of its thread, the largest",
    "over the runs (`pacing` in the result; `-` where the code does not report it); **load**, the",
    "1-minute load average when the interpreter's measure began and ended. `before` / `after`: the",
    "same interpreter measured with the code before the change, then after it, in this one run.",
]


if __name__ == "__main__":
    sys.exit(main())
