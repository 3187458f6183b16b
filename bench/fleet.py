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
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from stamp import stamp  # noqa: E402

from support import TARGETS  # noqa: E402

CLI = [sys.executable, "-m", "flight_profiler"]
SIZES = (1, 8, 32)
GETGLOBAL = "getglobal __main__ STATE"


def run(pids: list[int], command: str, concurrency: int) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of the CLI and what it ran (py-spy, privsep helpers)."""
    argv = [*CLI, "-p", ",".join(map(str, pids)), "--cmd", command, "--json", "--concurrency", str(concurrency)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    ok = [record for record in results if "result" in record]
    if proc.returncode != 0 or len({record["target"]["pid"] for record in ok}) != len(pids):
        raise RuntimeError("%s over %d failed: %s %s" % (command, len(pids), proc.stdout[-2000:], proc.stderr))
    return seconds, cpu


def detach(pids: list[int]) -> None:
    subprocess.run([*CLI, "-p", ",".join(map(str, pids)), "--cmd", "detach"], capture_output=True, check=False)


Cell = Tuple[float, float]  # wall, CPU


def measure(workers: list[int], runs: int, concurrency: int) -> dict[str, dict[int, Cell]]:
    names = ("stack", "getglobal, first (injects)", "getglobal, again")
    table: dict[str, dict[int, list[Cell]]] = {name: {} for name in names}
    for _ in range(runs):
        for size in SIZES:
            pids = workers[:size]
            for name, command in zip(names, ("stack", GETGLOBAL, GETGLOBAL)):
                table[name].setdefault(size, []).append(run(pids, command, concurrency))
            detach(pids)
    return {
        name: {size: (median(c[0] for c in cells), median(c[1] for c in cells)) for size, cells in row.items()}
        for name, row in table.items()
    }


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def report(medians: dict[str, dict[int, Cell]], python: str, runs: int, concurrency: int) -> str:
    lines = [
        "# Fan-out wall time over idle workers (bench/fleet.py)",
        "",
        stamp(),
        "Target: tests/targets/ps_prefork.py, %d forked workers idle in a sleep loop, %s. The CLI "
        "(start-up included) over the first N workers with `-p`, `--concurrency %d`; medians of %d runs. "
        "The agents are detached after each size, so every `first` injects. Each cell: wall time, and in "
        "brackets the CPU time of the CLI and the processes it ran (py-spy, the privsep helpers; not the "
        "targets' own work): on a host with fewer free cores than that, the fan-out waits for CPU."
        % (max(SIZES), python, concurrency, runs),
        "",
        "| command | %s | 32 / 1 |" % " | ".join("%d worker(s)" % size for size in SIZES),
        "| --- | %s | --- |" % " | ".join("---" for _ in SIZES),
    ]
    for name, row in medians.items():
        cells = " | ".join("%.0f ms (%.0f ms CPU)" % (row[size][0] * 1000, row[size][1] * 1000) for size in SIZES)
        lines.append("| %s | %s | %.1fx |" % (name, cells, row[max(SIZES)][0] / row[min(SIZES)][0]))
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
