"""First attach, before/after: two checkouts' client and agent alternating on fresh targets (issue 14, goal 3).

On a shared host single attaches vary 2x and more with the load, so the two sides
take turns, each on a fresh target of the same kind, and every run is listed with
the median. Each run: wall time of ``flight_profiler PID --cmd "module /x" --json
--timeout 60`` (CLI start-up, injection, agent start, one command), then a detach.
Targets: ``tests/targets/service_target.py`` idle (``event``) or ``threadsbusy N``
(a busy main thread, N/2 CPU-bound and N/2 idle threads, the asyncio thread).
Prints a Markdown table, stamped; not a test: nothing is asserted. The before side is
expected to have its bytecode compiled (an install has); the after side is compiled here.

    .venv/bin/python bench/attach_ab.py --before /other/checkout/src [--threads 0,50,200] [--runs 5] [--python 3.12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from stamp import stamp  # noqa: E402

from interpreters import find_interpreters  # noqa: E402
from support import start_target  # noqa: E402


def first_attach(python: str, threads: int, src: str) -> float | None:
    """Seconds to the first answer on a fresh target, None if the attach failed."""
    target = start_target(python, "service_target.py", *(("threadsbusy", str(threads)) if threads else ("event",)))
    env = dict(os.environ, PYTHONPATH=src)
    cli = [sys.executable, "-m", "flight_profiler", str(target.pid)]
    try:
        time.sleep(0.5)
        started = time.monotonic()
        proc = subprocess.run([*cli, "--cmd", "module /x", "--json", "--timeout", "60"], capture_output=True, env=env)
        seconds = time.monotonic() - started
        subprocess.run([*cli, "--cmd", "detach"], capture_output=True, env=env)
        return seconds if proc.returncode == 0 else None
    finally:
        target.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="the other checkout's src directory")
    parser.add_argument("--after", default=os.path.join(HERE, "..", "src"), help="default: this checkout's src")
    parser.add_argument("--threads", default="0,50,200", help="extra threads of the target (half busy); 0: idle")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--python", default="3.12", help="interpreter id")
    args = parser.parse_args()
    python = dict(find_interpreters())[args.python]
    sides = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    # the after side's client compiled ahead, as an install is (PYTHONDONTWRITEBYTECODE=1 would make
    # it compile every module on every run: ~100 ms that the before side may not pay)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", sides["after"]], env=env, capture_output=True)
    print(stamp())
    print("| target (%s) | side | median, s | runs, s | failed |" % args.python)
    print("|---|---|---|---|---|")
    for threads in (int(n) for n in args.threads.split(",")):
        times: dict[str, list[float | None]] = {side: [] for side in sides}
        for _ in range(args.runs):
            for side, src in sides.items():
                times[side].append(first_attach(python, threads, src))
        label = "idle" if not threads else "%d threads, %d busy" % (threads + 2, threads // 2 + 1)
        for side, runs in times.items():
            ok = [t for t in runs if t is not None]
            median = "%.2f" % statistics.median(ok) if ok else "-"
            listed = ", ".join("%.2f" % t if t is not None else "failed" for t in runs)
            print("| %s | %s | %s | %s | %d |" % (label, side, median, listed, len(runs) - len(ok)), flush=True)


if __name__ == "__main__":
    main()
