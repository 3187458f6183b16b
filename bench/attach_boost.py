"""The switch interval of the agent's start, before/after (issue 14, goal 3): first attach and target throughput.

Two source trees take turns on fresh targets (``bench/attach_boost_target.py``: N threads,
half of them busy counting their loops): the wall time of ``flight_profiler PID --cmd
"module /x" --json`` and the busy threads' loops per second during that attach as a share of
their rate over the same length of time just before it. The after side shortens the switch
interval while its agent starts (``attach/bootstrap.SWITCH_BOOST``); the before side (another
checkout, e.g. main) does not. Not a test: nothing is asserted. Prints a stamped Markdown table.

    .venv/bin/python bench/attach_boost.py --before /other/checkout/src [--threads 50,200] [--runs 3] [--python 3.12]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from stamp import stamp  # noqa: E402

from interpreters import find_interpreters  # noqa: E402
from support import RunningTarget, start_target  # noqa: E402


def _count(target: RunningTarget) -> tuple[int, float]:
    """The busy threads' loops so far and the target's clock, read by a signal to its main thread."""
    os.kill(target.pid, signal.SIGUSR2)
    assert target.proc.stdout is not None
    words = target.proc.stdout.readline().split()
    return int(words[1]), float(words[2])


def one_run(python: str, threads: int, src: str) -> tuple[float | None, float]:
    """(seconds to the first answer or None if it failed, throughput kept during it)."""
    target = start_target(python, os.path.join(HERE, "attach_boost_target.py"), str(threads), timeout=120)
    env = dict(os.environ, PYTHONPATH=src)
    cli = [sys.executable, "-m", "flight_profiler", str(target.pid)]
    try:
        time.sleep(1.0)
        before = _count(target)
        started = time.monotonic()
        proc = subprocess.run([*cli, "--cmd", "module /x", "--json", "--timeout", "60"], capture_output=True, env=env)
        seconds = time.monotonic() - started
        during = _count(target)
        # the same length of time without an attach, just after (our agent idle, the interval the app's)
        time.sleep(max(0.5, seconds))
        after = _count(target)
        rate_during = (during[0] - before[0]) / (during[1] - before[1])
        rate_idle = (after[0] - during[0]) / (after[1] - during[1])
        subprocess.run([*cli, "--cmd", "detach"], capture_output=True, env=env)
        return (seconds if proc.returncode == 0 else None), rate_during / rate_idle
    finally:
        target.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="the other checkout's src directory")
    parser.add_argument("--after", default=os.path.join(HERE, "..", "src"), help="default: this checkout's src")
    parser.add_argument("--threads", default="50,200", help="threads of the target, half busy")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", default="3.12", help="interpreter id")
    args = parser.parse_args()
    python = dict(find_interpreters())[args.python]
    sides = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for src in sides.values():
        subprocess.run([sys.executable, "-m", "compileall", "-q", src], env=env, capture_output=True)
    print(stamp())
    print(
        "| target (%s) | side | first attach, median s | runs, s | throughput during it, median | failed |"
        % args.python
    )
    print("|---|---|---|---|---|---|")
    for threads in (int(n) for n in args.threads.split(",")):
        runs: dict[str, list[tuple[float | None, float]]] = {side: [] for side in sides}
        for _ in range(args.runs):
            for side, src in sides.items():
                runs[side].append(one_run(python, threads, src))
        for side, results in runs.items():
            ok = [t for t, _ in results if t is not None]
            median = "%.2f" % statistics.median(ok) if ok else "-"
            listed = ", ".join("%.2f" % t if t is not None else "failed" for t, _ in results)
            kept = "%.0f %%" % (100 * statistics.median(k for _, k in results))
            label = "%d threads, %d busy" % (threads, threads // 2)
            print("| %s | %s | %s | %s | %s | %d |" % (label, side, median, listed, kept, len(results) - len(ok)))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
