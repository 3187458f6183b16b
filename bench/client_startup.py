"""What one ``--cmd`` costs the client on a reused agent, next to a bare ``python -c pass``.

Starts tests/targets/service_target.py (main thread sleeping), attaches once, then
runs, alternately, ROUNDS times each: ``python -c pass`` (the floor: interpreter
start-up), ``flight_profiler PID --cmd "module os" --json`` and the same in text
(no colour). Each is a fresh process of the interpreter this script runs under,
as a user or an AI agent starts it. Reported: medians and the cost above the
floor (issue 14's goal: at most 40 ms). Nothing is asserted; results go to
stdout and bench/RESULTS-client.md, stamped.

    .venv/bin/python bench/client_startup.py [--rounds 30]
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

COMMAND = "module os"


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s %s" % (argv, proc.stdout, proc.stderr))
    return seconds


def measure(pid: int, rounds: int) -> dict[str, float]:
    cli = [sys.executable, "-m", "flight_profiler", str(pid), "--cmd", COMMAND]
    variants = {
        "floor": [sys.executable, "-c", "pass"],
        "json": [*cli, "--json"],
        "text": [*cli, "--no-color"],
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):  # interleaved: a change of load touches every variant alike
        for name, argv in variants.items():
            samples[name].append(timed(argv))
    return {name: statistics.median(values) * 1000 for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    python = find_interpreters()[-1][1]  # any target will do: the agent is reused
    target = start_target(python, "service_target.py", "sleep")
    try:
        timed([sys.executable, "-m", "flight_profiler", str(target.pid), "--cmd", COMMAND, "--json"])  # attach
        found = measure(target.pid, args.rounds)
        subprocess.run([sys.executable, "-m", "flight_profiler", str(target.pid), "--cmd", "detach"], check=False)
    finally:
        target.stop()
    print(found)
    write_results(found, args.rounds)
    return 0


def write_results(found: dict[str, float], rounds: int) -> None:
    floor = found["floor"]
    lines = [
        "# Client start-up: one --cmd on a reused agent",
        "",
        "`bench/client_startup.py`: medians of %d interleaved rounds, each a fresh process of Python %s"
        % (rounds, sys.version.split()[0]),
        "(the client's interpreter). The agent is already in the target: what is measured is the client's",
        "start-up, its imports, the handshake and `%s`. Goal (issue 14): at most the floor + 40 ms." % COMMAND,
        "",
        "| run | median | above `python -c pass` |",
        "| --- | ---: | ---: |",
        "| `python -c pass` (floor) | %.1f ms | - |" % floor,
        '| `--cmd "%s" --json` | %.1f ms | **+%.1f ms** |' % (COMMAND, found["json"], found["json"] - floor),
        '| `--cmd "%s" --no-color` (text) | %.1f ms | **+%.1f ms** |' % (COMMAND, found["text"], found["text"] - floor),
        "",
        "Not a test: nothing is asserted. `python -X importtime -m flight_profiler PID --cmd ...` shows where",
        "the rest goes.",
        "",
    ]
    with open(os.path.join(HERE, "RESULTS-client.md"), "w") as fh:
        fh.write(lines[0] + "\n\n" + stamp() + "\n".join(lines[1:]))


if __name__ == "__main__":
    sys.exit(main())
