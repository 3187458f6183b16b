"""Fan-out wall time: `stack` and `getglobal` over 1, 8 and 32 idle workers, against one.

Starts tests/targets/ps_prefork.py with 32 forked workers (each idle in a sleep loop) and
times the real CLI (`flight_profiler -p PID,PID,... --cmd ... --json`, start-up included)
over the first 1, 8 and 32 workers: `stack` (read from outside by py-spy, no agent), and
`getglobal` the first time (agents injected, 8 at a time) and again (agents reused). Then
every agent is detached. The figure that matters is the ratio to one worker (goal: 32
within 3x). Results go to stdout and bench/RESULTS-fleet.md. Nothing is asserted.

    .venv/bin/python bench/fleet.py [--runs N] [--python PATH] [--concurrency N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from stamp import stamp  # noqa: E402

from support import TARGETS  # noqa: E402

CLI = [sys.executable, "-m", "flight_profiler"]
SIZES = (1, 8, 32)
GETGLOBAL = "getglobal __main__ STATE"


def run(pids: list[int], command: str, concurrency: int) -> float:
    argv = [*CLI, "-p", ",".join(map(str, pids)), "--cmd", command, "--json", "--concurrency", str(concurrency)]
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    ok = [record for record in results if "result" in record]
    if proc.returncode != 0 or len({record["target"]["pid"] for record in ok}) != len(pids):
        raise RuntimeError("%s over %d failed: %s %s" % (command, len(pids), proc.stdout[-2000:], proc.stderr))
    return seconds


def detach(pids: list[int]) -> None:
    subprocess.run([*CLI, "-p", ",".join(map(str, pids)), "--cmd", "detach"], capture_output=True, check=False)


def measure(workers: list[int], runs: int, concurrency: int) -> dict[str, dict[int, float]]:
    table: dict[str, dict[int, list[float]]] = {"stack": {}, "getglobal, first (injects)": {}, "getglobal, again": {}}
    for _ in range(runs):
        for size in SIZES:
            pids = workers[:size]
            table["stack"].setdefault(size, []).append(run(pids, "stack", concurrency))
            table["getglobal, first (injects)"].setdefault(size, []).append(run(pids, GETGLOBAL, concurrency))
            table["getglobal, again"].setdefault(size, []).append(run(pids, GETGLOBAL, concurrency))
            detach(pids)
    return {name: {size: statistics.median(times) for size, times in row.items()} for name, row in table.items()}


def report(medians: dict[str, dict[int, float]], python: str, runs: int, concurrency: int) -> str:
    lines = [
        "# Fan-out wall time over idle workers (bench/fleet.py)",
        "",
        stamp(),
        "Target: tests/targets/ps_prefork.py, %d forked workers idle in a sleep loop, %s. The CLI "
        "(start-up included) over the first N workers with `-p`, `--concurrency %d`; medians of %d runs. "
        "The agents are detached after each size, so every `first` injects." % (max(SIZES), python, concurrency, runs),
        "",
        "| command | %s | 32 / 1 |" % " | ".join("%d worker(s)" % size for size in SIZES),
        "| --- | %s | --- |" % " | ".join("---" for _ in SIZES),
    ]
    for name, row in medians.items():
        cells = " | ".join("%.0f ms" % (row[size] * 1000) for size in SIZES)
        lines.append("| %s | %s | %.1fx |" % (name, cells, row[max(SIZES)] / row[min(SIZES)]))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", default=sys.executable, help="the targets' interpreter")
    parser.add_argument("--concurrency", type=int, default=8)
    args, _ = parser.parse_known_args()  # ./dev bench passes the same options to every bench
    proc = subprocess.Popen(
        [args.python, os.path.join(TARGETS, "ps_prefork.py"), "--workers", str(max(SIZES))],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        workers = [int(pid) for pid in proc.stdout.readline().split()[2].split(",")]
        version = subprocess.run(
            [args.python, "-c", "import sys; print('Python %d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        text = report(measure(workers, args.runs, args.concurrency), version, args.runs, args.concurrency)
    finally:
        proc.kill()
        proc.wait()
    print(text)
    with open(os.path.join(HERE, "RESULTS-fleet.md"), "w") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
