"""Kill sweep: SIGKILL a first attach at a random instant and count the targets it harmed.

For every interpreter the test suite finds: RUNS times, start a fresh target (rotating
idle / sleeping / select-blocked / busy main thread, see tests/kill_support.py), start
`flight_profiler PID --cmd "getglobal __main__ BEAT"`, SIGKILL it after a uniform
0-300 ms, then check the target: alive, not stopped, not traced, still doing its own
work, attachable (attach + command + detach) and its main thread still exits 0 on
SIGUSR1. A run that fails any check counts as harmed.

The client logs the injector phases it entered (FLIGHT_PROFILER_TEST_PHASE_LOG), so
each kill is classified: before the injector ran, while it held or armed the thread
(MAP_* .. RUN_ARMED), after it let the thread go (RUN_WAIT, DONE), or never used
(PEP 768 on 3.14+, an agent already answering).

    .venv/bin/python bench/kill_sweep.py [--runs 100] [--pythons 3.8,3.12] [--src DIR] [--out FILE]
                                         [--traced-ms 8] [--minutes M]

--src runs the client from another checkout's src/ (e.g. the previous injector) to
show the sweep does catch harm. Results are appended to bench/RESULTS-kill.md
(stamped with commit, host and load). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

import kill_support  # noqa: E402
from interpreters import find_interpreters  # noqa: E402
from kill_support import SITUATIONS, Served, kill_cli_after  # noqa: E402

HELD = {"MAP_SEIZED", "MAP_STOPPED", "MAP_WRITTEN", "MAP_ARMED", "MAP_WAIT"}
HELD |= {"RUN_SEIZED", "RUN_STOPPED", "RUN_WRITTEN", "RUN_ARMED", "UNMAP_WRITTEN", "UNMAP_ARMED"}


def bucket(phase: str) -> str:
    if not phase:
        return "no injector phase"
    if phase in HELD:
        return "injector holding/arming"
    return "after release"


def sweep(
    python: str, runs: int, rng: random.Random, workdir: str, traced_ms: float, deadline: float
) -> Dict[str, object]:
    """``runs`` kills, or as many as fit before ``deadline`` (time.time(); 0: none)."""
    harmed: List[str] = []
    buckets: Dict[str, int] = {}
    situations = list(SITUATIONS)
    done = 0
    for run in range(runs):
        if deadline and time.time() > deadline:
            break
        done += 1
        situation = situations[run % len(situations)]
        rundir = os.path.join(workdir, "%d" % run)
        os.makedirs(rundir)
        served = Served(python, situation, rundir)
        try:
            delay = rng.uniform(0.0, traced_ms / 1000.0 if traced_ms else 0.3)
            phase = kill_cli_after(served, delay, os.path.join(rundir, "phases"), after_traced=bool(traced_ms))
            where = bucket(phase)
            buckets[where] = buckets.get(where, 0) + 1
            harm = served.harm() or served.attach_harm()
            if harm:
                harmed.append("%s, killed at %.0f ms (%s): %s" % (situation, delay * 1000, phase or "-", harm[0]))
        except Exception as exc:  # a target that could not even start counts as a bench failure, not harm
            harmed.append("%s: bench error %r" % (situation, exc))
        finally:
            served.stop()
    return {"runs": done, "harmed": harmed, "buckets": buckets}


def git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per interpreter (default 100)")
    parser.add_argument("--pythons", default="", help="interpreter ids, e.g. 3.8,3.12 (default: all found)")
    parser.add_argument("--src", default="", help="run the client from this src/ directory instead")
    parser.add_argument("--out", default=os.path.join(HERE, "RESULTS-kill.md"))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--traced-ms",
        type=float,
        default=0.0,
        help="instead of 0-300 ms from the start, kill 0-N ms after the target is first seen traced",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=0.0,
        help="stop starting runs after this many minutes; the table states the runs each interpreter got",
    )
    args = parser.parse_args()
    if args.src:
        kill_support.SRC = os.path.abspath(args.src)
    interpreters = find_interpreters()
    if args.pythons:
        interpreters = [(i, p) for i, p in interpreters if i in args.pythons.split(",")]
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    commit = git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "--", "src") else "")
    load_before = loadavg()
    started = time.time()
    deadline = started + args.minutes * 60 if args.minutes else 0.0
    rows = []
    with tempfile.TemporaryDirectory(prefix="fp-kill-sweep-") as tmp:
        for interp, python in interpreters:
            result = sweep(python, args.runs, rng, os.path.join(tmp, interp), args.traced_ms, deadline)
            runs = result["runs"]
            assert isinstance(runs, int)
            if not runs:
                continue  # past the deadline: left out of the table
            harmed = result["harmed"]
            assert isinstance(harmed, list)
            buckets = result["buckets"]
            assert isinstance(buckets, dict)
            print("%-8s harmed %d/%d  %s  load %s" % (interp, len(harmed), runs, buckets, loadavg()), flush=True)
            for line in harmed:
                print("    " + line, flush=True)
            rows.append((interp, runs, harmed, buckets))
    stamp = (
        "commit %s, client src %s, host %s (%s, %d CPUs, Linux %s), load %s before / %s after, %s, %.0f min, seed %d"
        % (
            commit,
            "this checkout" if not args.src else args.src,
            platform.node(),
            platform.machine(),
            os.cpu_count() or 0,
            platform.release(),
            load_before,
            loadavg(),
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
            (time.time() - started) / 60,
            seed,
        )
    )
    when = "0-%g ms after the target was first seen traced" % args.traced_ms if args.traced_ms else "0-300 ms"
    write(args.out, "kills at %s; %s" % (when, stamp), rows)


def write(path: str, stamp: str, rows: List[tuple]) -> None:
    new = not os.path.exists(path)
    with open(path, "a") as fh:
        if new:
            fh.write("# Kill sweep (bench/kill_sweep.py)\n\n")
            fh.write(
                "SIGKILL of a first `flight_profiler PID --cmd ...` at a uniform 0-300 ms; targets rotate idle, "
                "sleeping, select-blocked and busy main threads. Harmed = dead, stopped, traced, not serving, "
                "not attachable afterwards, or main thread not exiting 0 on SIGUSR1. Where the kills landed "
                "comes from the client's injector phase log.\n"
            )
        fh.write("\n%s:\n\n" % stamp)
        fh.write(
            "| python | harmed / runs | kills before the injector | while it held/armed the thread | after it let go |\n"
        )
        fh.write("|---|---|---|---|---|\n")
        for interp, runs, harmed, buckets in rows:
            fh.write(
                "| %s | %d / %d | %d | %d | %d |\n"
                % (
                    interp,
                    len(harmed),
                    runs,
                    buckets.get("no injector phase", 0),
                    buckets.get("injector holding/arming", 0),
                    buckets.get("after release", 0),
                )
            )
        for interp, _, harmed, _ in rows:
            for line in harmed:
                fh.write("\n- %s: %s" % (interp, line))
        fh.write("\n")


if __name__ == "__main__":
    main()
