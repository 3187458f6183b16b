"""Attach benchmark: first-attach latency against the target's threads, repeated --cmd, stop time, footprint.

For every interpreter the test suite finds, on targets with more and more threads
fighting for the GIL: idle (main thread in Event.wait, plus the asyncio thread), 2 busy
threads (main + one worker), 52 threads of which 26 busy (busy main + 25 busy + 25 idle)
and 202 threads of which 101 busy (busy main + 100 busy + 100 idle):
- first attach: wall time of `flight_profiler PID --cmd "module /x"` with no agent
  running (CLI start-up, injection, agent start, one command), median of N runs
  with a detach in between, and its ratio to the idle target's (issue 14: 52 threads
  within 2x, 202 threads within 1 s);
- attaches ok: how many of the N succeeded (within --timeout 60);
- repeated --cmd: the same command with the agent already running;
- stopped: how long the injector kept the target thread stopped (from --debug);
- agent RSS and threads: the target's VmRSS and thread count with vs without the agent.
Every wait of the agent's start for the GIL costs up to one switch interval (5 ms) per busy
thread, so the many-thread rows show how many such waits the start still has.
Results are printed and written to bench/RESULTS-attach.md. Not a test: nothing is asserted.
`PYTHONPATH=/other/src` measures another checkout's client and agent (a before/after).

    .venv/bin/python bench/attach.py [--runs N] [--pythons 3.8,3.14] [--no-extreme] [--label TEXT]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from stamp import stamp  # noqa: E402

from interpreters import find_interpreters  # noqa: E402
from support import start_target  # noqa: E402

CLI = [sys.executable, "-m", "flight_profiler"]


def run_cli(pid: int, command: str, *extra: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    proc = subprocess.run(
        [*CLI, str(pid), "--cmd", command, "--json", *extra], capture_output=True, text=True, check=False
    )
    return time.perf_counter() - started, proc


def status(pid: int) -> tuple[int, int]:
    with open("/proc/%d/status" % pid) as fh:
        fields = dict(line.split(":", 1) for line in fh if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


SCENARIOS = [
    ("idle", ("event",)),
    ("2 busy threads", ("busy2",)),
    ("52 threads, 26 busy", ("threadsbusy", "50")),
    ("202 threads, 101 busy", ("threadsbusy", "200")),
]
EXTREME = 2  # the scenarios from this index on take minutes per interpreter


def measure(python: str, scenario: tuple[str, ...], runs: int) -> dict[str, float]:
    target = start_target(python, "service_target.py", *scenario)
    try:
        time.sleep(0.5)
        rss0, threads0 = status(target.pid)
        first, stopped, failures = [], [], 0
        for _ in range(runs):
            seconds, proc = run_cli(target.pid, "module /x", "--debug", "--timeout", "60")
            if proc.returncode != 0:
                failures += 1
            else:
                first.append(seconds)
            match = re.search(r"stopped ([0-9.]+) ms", proc.stderr)
            if match:
                stopped.append(float(match.group(1)))
            run_cli(target.pid, "detach")
        run_cli(target.pid, "module /x")
        repeated = [run_cli(target.pid, "module /x")[0] for _ in range(runs * 2)]
        rss1, threads1 = status(target.pid)
        run_cli(target.pid, "detach")
        return {
            "first_ms": statistics.median(first) * 1000 if first else float("nan"),
            "ok": runs - failures,
            "runs": runs,
            "repeat_ms": statistics.median(repeated) * 1000,
            "stopped_ms": statistics.median(stopped) if stopped else float("nan"),
            "rss_kb": rss1 - rss0,
            "threads": threads1 - threads0,
        }
    finally:
        target.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pythons", help="comma-separated interpreter ids")
    parser.add_argument("--no-extreme", action="store_true", help="skip the 52- and 202-thread targets (minutes)")
    parser.add_argument("--label", default="", help="a note for the results file (what is measured)")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS-attach.md"))
    args = parser.parse_args()
    wanted = set(args.pythons.split(",")) if args.pythons else None
    rows = [
        "| python | target | first attach (median) | / idle | attaches ok | repeated --cmd | thread stopped "
        "| agent RSS | agent threads |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, python in find_interpreters():
        if wanted and name not in wanted:
            continue
        idle = float("nan")
        for index, (label, scenario) in enumerate(SCENARIOS):
            if args.no_extreme and index >= EXTREME:
                break
            r = measure(python, scenario, args.runs)
            if index == 0:
                idle = r["first_ms"]
            row = "| %s | %s | %.0f ms | %.1fx | %d/%d | %.0f ms | %.1f ms | %+.1f MB | %+d |" % (
                name,
                label,
                r["first_ms"],
                r["first_ms"] / idle,
                r["ok"],
                r["runs"],
                r["repeat_ms"],
                r["stopped_ms"],
                r["rss_kb"] / 1024,
                r["threads"],
            )
            print(row, flush=True)
            rows.append(row)
    with open(args.output, "w") as fh:
        fh.write(
            "# Attach benchmark (bench/attach.py, %d runs per cell)\n\n" % args.runs
            + stamp()
            + "\n"
            + (args.label + "\n\n" if args.label else "")
            + "\n".join(rows)
            + "\n"
        )


if __name__ == "__main__":
    main()
