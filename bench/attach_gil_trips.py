"""Every wait for the GIL of our threads, from the injection to the first answer (issue 14, goal 3).

Why: on a target whose N busy threads fight for the GIL, each time the agent lets go of it
(a system call made through Python, a thread start, a forced switch after a switch interval of
its own bytecode) it waits behind them to get it back. This counts those waits and times each.

How: a fresh ``service_target.py threadsbusy N`` (3.12 by default: a pyenv build, whose
take_gil is in the symbol table), the GIL probe of ``gilstat`` (frida, ``commands/gilstat/probe``)
hooked into it before the attach: it counts every ``take_gil`` per thread and records each wait
longer than ``--min-ms`` with its time. Then the CLI runs ``--cmd "module /x"``. The threads
that appear after the attach started and take the GIL are ours (the agent thread, the
session thread); the target's main thread runs the bootstrap (its waits are listed from the
attach's start on, mixed with the app's own). Needs frida. Not a test: nothing is asserted.

    .venv/bin/python bench/attach_gil_trips.py [--threads 50,200] [--python 3.12] [--src other/src]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from stamp import stamp  # noqa: E402

from flight_profiler.commands.gilstat import probe  # noqa: E402
from interpreters import find_interpreters  # noqa: E402
from support import start_target  # noqa: E402


def _tids(pid: int) -> set[int]:
    return {int(name) for name in os.listdir("/proc/%d/task" % pid)}


def measure(python: str, threads: int, src: str, min_ms: float) -> None:
    target = start_target(python, "service_target.py", *(("threadsbusy", str(threads)) if threads else ("event",)))
    scratch = tempfile.mkdtemp(prefix="fp-gil-trips-")
    phases = os.path.join(scratch, "phases")
    env = dict(os.environ, PYTHONPATH=src, FLIGHT_PROFILER_TEST_PHASE_LOG=phases)
    cli = [sys.executable, "-m", "flight_profiler", str(target.pid)]
    gil = probe.Probe(probe.import_frida(), target.pid, probe.find_functions(target.pid), min_ms, 1e9)
    warnings: list[probe.GilWarning] = []
    done = threading.Event()

    def reader() -> None:  # the ring holds 1024 waits: the busy threads fill it in about a second
        while not done.wait(0.05):
            warnings.extend(gil.read().warnings)

    try:
        time.sleep(0.5)
        before = _tids(target.pid)
        base = gil.read()
        warnings.extend(base.warnings)
        pump = threading.Thread(target=reader)
        pump.start()
        started = time.monotonic_ns()
        proc = subprocess.run([*cli, "--cmd", "module /x", "--json", "--timeout", "60"], capture_output=True, env=env)
        ended = time.monotonic_ns()
        done.set()
        pump.join()
        last = gil.read()
        warnings.extend(last.warnings)
        ours = sorted(set(last.threads) - before)  # the probe keeps the counts of threads that ended since
        print("\n%d extra threads, rc %d, first answer %.0f ms" % (threads, proc.returncode, (ended - started) / 1e6))
        if os.path.exists(phases):
            with open(phases) as fh:
                steps = [line.split() for line in fh if len(line.split()) == 2]
            print(
                "injector phases, ms: " + ", ".join("%s %.0f" % (n, (float(t) * 1e9 - started) / 1e6) for n, t in steps)
            )
        print(
            "\n| thread | GIL takes | waited, ms | longest, ms | held, ms | waits >= %g ms, in order: at ms (waited ms) |"
            % min_ms
        )
        print("|---|---|---|---|---|---|")
        first_take = min((w.at_ns for w in warnings if w.tid in ours and started <= w.at_ns <= ended), default=None)
        if first_take is not None:  # what the agent's own start costs, without the injection and the pending call
            print("from the agent thread's first take to the answer: %.0f ms" % ((ended - first_take) / 1e6))
        rows = [("main (bootstrap + app)", target.pid)] + [("ours %d" % n, tid) for n, tid in enumerate(ours, 1)]
        for label, tid in rows:
            now = last.threads.get(tid)
            if now is None:
                continue
            was = base.threads.get(tid)
            takes = now.takes - (was.takes if was else 0)
            waited = (now.wait_ns - (was.wait_ns if was else 0)) / 1e6
            waits = [w for w in warnings if w.tid == tid and w.kind == "wait" and started <= w.at_ns <= ended]
            if label.startswith("main"):
                waits = [w for w in waits if w.ns >= 10e6]  # the app's own waits too: only the long ones
            detail = ", ".join("%.0f (%.0f)" % ((w.at_ns - started) / 1e6, w.ns / 1e6) for w in waits)
            held = (now.hold_ns - (was.hold_ns if was else 0)) / 1e6
            print("| %s | %d | %.0f | %.0f | %.0f | %s |" % (label, takes, waited, now.wait_max_ns / 1e6, held, detail))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        gil.stop()
        subprocess.run([*cli, "--cmd", "detach"], capture_output=True, env=env)
        target.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", default="50", help="comma-separated extra threads of the target (half busy)")
    parser.add_argument("--python", default="3.12", help="interpreter id (its libpython must keep its symbols)")
    parser.add_argument("--src", default=os.path.join(HERE, "..", "src"), help="the checkout's src to attach with")
    parser.add_argument("--min-ms", type=float, default=0.001, help="waits listed one by one from this length on")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    python = dict(find_interpreters())[args.python]
    print(stamp())
    for threads in [int(n) for n in args.threads.split(",")]:
        for _ in range(args.runs):
            measure(python, threads, os.path.abspath(args.src), args.min_ms)


if __name__ == "__main__":
    main()
