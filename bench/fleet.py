"""Fan-out wall time: `stack` and `getglobal` over 1, 8 and 32 idle workers, against one.

Starts tests/targets/ps_prefork.py with 32 forked workers (each idle in a sleep loop) and
times the real CLI (`flight_profiler -p PID,PID,... --cmd ... --json`, start-up included)
over the first 1, 8 and 32 workers: `stack` (read from outside by py-spy, no agent), and
`getglobal` the first time (agents injected, 8 at a time) and again (agents reused). Then
every agent is detached. The figure that matters is the ratio to one worker (goal: 32
within 3x). Each cell also gives the CPU time of the CLI (and what it ran) and of the
targets: a first `getglobal` costs every target its agent's start (compiling our modules),
which on a host with few cores is what the fan-out waits for. With ``--user NAME`` the
workers run as that (existing) user, so each attach goes through a forked privsep helper
as it does when root attaches to a service's workers. Results go to stdout and are appended
to bench/RESULTS-fleet.md. Nothing is asserted. With ``--src DIR`` given twice or more (source
trees, e.g. main's ``src`` and a branch's), the CLI of each tree is timed in turn in every run,
against the same workers, and each gets its table: before and after in the same run. The bundle
is made from the CLI's own tree, so that compares the agents' start-up as well.

    .venv/bin/python bench/fleet.py [--runs N] [--python PATH] [--concurrency N] [--user NAME] [--src DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
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


# The clients' cache of the bytecode target interpreters make (attach/codecache): one of the bench's own,
# kept from call to call as a user's is (the first call over workers of another minor version than the
# client's fills it); with --cold-cache, an empty one for every call (each first getglobal compiles).
CACHE = {"dir": "", "cold": False}


def _env(src: str) -> dict[str, str]:
    import shutil
    import tempfile

    if CACHE["cold"] or not CACHE["dir"]:
        if CACHE["dir"]:
            shutil.rmtree(str(CACHE["dir"]), ignore_errors=True)
        CACHE["dir"] = tempfile.mkdtemp(prefix="fp-bench-cache-")
    env = dict(os.environ, XDG_CACHE_HOME=str(CACHE["dir"]))
    if src:
        env["PYTHONPATH"] = src
    return env


def run(pids: list[int], command: str, concurrency: int, src: str = "") -> Cell:
    """Wall seconds, CPU seconds of the CLI and what it ran (py-spy, privsep helpers), and of the targets."""
    argv = [*CLI, "-p", ",".join(map(str, pids)), "--cmd", command, "--json", "--concurrency", str(concurrency)]
    env = _env(src)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    targets_before = targets_cpu(pids)
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    targets = targets_cpu(pids) - targets_before
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    ok = [record for record in results if "result" in record]
    if proc.returncode != 0 or len({record["target"]["pid"] for record in ok}) != len(pids):
        raise RuntimeError("%s over %d failed: %s %s" % (command, len(pids), proc.stdout[-2000:], proc.stderr))
    return seconds, cpu, targets


def targets_cpu(pids: list[int]) -> float:
    """CPU seconds the processes have used so far (their threads, the agent's included)."""
    ticks = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def detach(pids: list[int], src: str = "") -> None:
    env = _env(src)
    argv = [*CLI, "-p", ",".join(map(str, pids)), "--cmd", "detach"]
    subprocess.run(argv, capture_output=True, check=False, env=env)


Cell = Tuple[float, float, float]  # wall, CPU of the CLI, CPU of the targets


def measure(workers: list[int], runs: int, concurrency: int, trees: list[str]) -> list[dict[str, dict[int, Cell]]]:
    """Per source tree (``""``: this interpreter's own import path), the medians of each command and size."""
    names = ("stack", "getglobal, first (injects)", "getglobal, again")
    tables: list[dict[str, dict[int, list[Cell]]]] = [{name: {} for name in names} for _ in trees]
    for _ in range(runs):
        for table, src in zip(tables, trees):  # the trees in turn: the same load for each
            for size in SIZES:
                pids = workers[:size]
                for name, command in zip(names, ("stack", GETGLOBAL, GETGLOBAL)):
                    table[name].setdefault(size, []).append(run(pids, command, concurrency, src))
                detach(pids, src)
    return [
        {
            name: {
                size: (median(c[0] for c in cells), median(c[1] for c in cells), median(c[2] for c in cells))
                for size, cells in row.items()
            }
            for name, row in table.items()
        }
        for table in tables
    ]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def report(medians: dict[str, dict[int, Cell]], python: str, runs: int, concurrency: int, user: str, note: str) -> str:
    lines = [
        "## Fan-out wall time over idle workers (bench/fleet.py)",
        "",
        stamp(),
        "Target: tests/targets/ps_prefork.py, %d forked workers idle in a sleep loop, %s, running as %s. The CLI "
        "(start-up included) over the first N workers with `-p`, `--concurrency %d`; medians of %d runs. "
        "The agents are detached after each size, so every `first` injects. Each cell: wall time, and in "
        "brackets the CPU time of the CLI and the processes it ran (py-spy, the privsep helpers), then "
        "of the targets (the agent's start and the command): on a host with fewer free cores than their "
        "sum, the fan-out waits for CPU."
        % (max(SIZES), python, user, concurrency, runs)
        + (" " + note if note else ""),
        "",
        "| command | %s | 32 / 1 |" % " | ".join("%d worker(s)" % size for size in SIZES),
        "| --- | %s | --- |" % " | ".join("---" for _ in SIZES),
    ]
    for name, row in medians.items():
        cells = " | ".join(
            "%.0f ms (CPU %.0f + %.0f ms)" % (row[size][0] * 1000, row[size][1] * 1000, row[size][2] * 1000)
            for size in SIZES
        )
        lines.append("| %s | %s | %.1fx |" % (name, cells, row[max(SIZES)][0] / row[min(SIZES)][0]))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", default=sys.executable, help="the targets' interpreter")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--user", help="run the workers as this existing user (root attaches through privsep)")
    parser.add_argument("--note", default="", help="a sentence added to the results (e.g. which client was timed)")
    parser.add_argument("--src", action="append", default=[], help="a source tree to run the CLI from (repeatable)")
    parser.add_argument(
        "--cold-cache", action="store_true", help="an empty bytecode cache for every CLI call (attach/codecache)"
    )
    args, _ = parser.parse_known_args()  # ./dev bench passes the same options to every bench
    CACHE["cold"] = args.cold_cache
    account = pwd.getpwnam(args.user) if args.user else pwd.getpwuid(os.getuid())
    proc = subprocess.Popen(
        [args.python, os.path.join(TARGETS, "ps_prefork.py"), "--workers", str(max(SIZES))],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd="/",
        user=account.pw_uid if args.user else None,
        group=account.pw_gid if args.user else None,
        extra_groups=[] if args.user else None,
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
        trees = [os.path.abspath(tree) for tree in args.src] or [""]
        text = ""
        for tree, medians in zip(trees, measure(workers, args.runs, args.concurrency, trees)):
            note = (args.note + " " if args.note else "") + ("Client and agent from `%s`." % tree if tree else "")
            note += (
                " An empty bytecode cache for every call (--cold-cache)."
                if args.cold_cache
                else " The bench's own bytecode cache, kept from call to call."
            )
            text += ("\n" if text else "") + report(
                medians, version, args.runs, args.concurrency, account.pw_name, note.strip()
            )
    finally:
        proc.kill()
        proc.wait()
        if CACHE["dir"]:
            import shutil

            shutil.rmtree(str(CACHE["dir"]), ignore_errors=True)
    print(text)
    with open(os.path.join(HERE, "RESULTS-fleet.md"), "a") as fh:  # the history stays: before and after
        fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
