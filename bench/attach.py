"""Attach benchmark: first-attach latency, repeated --cmd, thread stop time, agent footprint.

For every interpreter the test suite finds, on an idle target (main thread in
Event.wait), a busy one (two CPU-bound threads: main + one worker) and an extreme
one (busy main + 25 busy + 25 idle threads):
- first attach: wall time of `flight_profiler PID --cmd "module /x"` with no agent
  running (CLI start-up, injection, agent start, one command), median of N runs
  with a detach in between;
- repeated --cmd: the same command with the agent already running;
- stopped: how long the injector kept the target thread stopped (from --debug);
- agent RSS and threads: the target's VmRSS and thread count with vs without the agent.
Results are printed and written to bench/RESULTS-attach.md. Not a test: nothing is asserted.

    .venv/bin/python bench/attach.py [--runs N] [--pythons 3.8,3.14]
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


def measure(python: str, scenario: str, runs: int) -> dict[str, float]:
    target = start_target(python, "service_target.py", scenario)
    try:
        time.sleep(0.5)
        rss0, threads0 = status(target.pid)
        first, stopped, failures = [], [], 0
        for _ in range(runs):
            seconds, proc = run_cli(target.pid, "module /x", "--debug")
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
    parser.add_argument("--no-extreme", action="store_true", help="skip the 51-thread target (minutes per interpreter)")
    args = parser.parse_args()
    wanted = set(args.pythons.split(",")) if args.pythons else None
    rows = [
        "| python | target | first attach (median) | attaches ok | repeated --cmd | thread stopped | agent RSS | agent threads |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, python in find_interpreters():
        if wanted and name not in wanted:
            continue
        scenarios = [("idle", "event"), ("2 busy threads", "busy2"), ("51 threads, 26 busy", "threadsbusy")]
        for label, scenario in scenarios[:2] if args.no_extreme else scenarios:
            r = measure(python, scenario, args.runs if scenario != "threadsbusy" else max(1, args.runs // 2))
            row = "| %s | %s | %.0f ms | %d/%d | %.0f ms | %.1f ms | %+.1f MB | %+d |" % (
                name,
                label,
                r["first_ms"],
                r["ok"],
                r["runs"],
                r["repeat_ms"],
                r["stopped_ms"],
                r["rss_kb"] / 1024,
                r["threads"],
            )
            print(row, flush=True)
            rows.append(row)
    with open(os.path.join(HERE, "RESULTS-attach.md"), "w") as fh:
        fh.write(
            "# Attach benchmark (bench/attach.py, %d runs per cell)\n\n" % args.runs
            + stamp()
            + "\n"
            + "\n".join(rows)
            + "\n"
        )


if __name__ == "__main__":
    main()
