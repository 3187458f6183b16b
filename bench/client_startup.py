"""What one ``--cmd`` costs the client on a reused agent, next to a bare ``python -c pass``.

Starts tests/targets/service_target.py (main thread sleeping), attaches once, then
runs, alternately, ROUNDS times each: ``python -c pass`` (the floor: interpreter
start-up), ``flight_profiler PID --cmd "module os" --json`` and the same in text
(no colour). Each is a fresh process of the interpreter this script runs under,
as a user or an AI agent starts it, with bytecode caches as an install has them
(PYTHONDONTWRITEBYTECODE is dropped, caches go to a temporary PYTHONPYCACHEPREFIX,
warmed once). ``--baseline DIR`` adds the same two runs with another copy of the
sources first on the path (e.g. ``git archive OLD src | tar -x -C DIR``: before
and after in one run). Reported: medians and the cost above the floor (issue 14's
goal: at most 40 ms). Nothing is asserted; results go to stdout and
bench/RESULTS-client.md, stamped.

    .venv/bin/python bench/client_startup.py [--rounds 30] [--baseline DIR --baseline-name COMMIT]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from stamp import stamp  # noqa: E402

from interpreters import find_interpreters  # noqa: E402
from support import start_target  # noqa: E402

COMMAND = "module os"


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds of one run, and the CPU seconds (user + system) the process used: on a loaded host
    the wall time mostly measures the wait for a core, the CPU time much less so."""
    used = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s %s" % (argv, proc.stdout, proc.stderr))
    return seconds, _children_cpu() - used


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def environment(cache: str, src: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([src, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    return env


def measure(pid: int, rounds: int, baseline: str | None, cache: str) -> dict[str, float]:
    cli = [sys.executable, "-m", "flight_profiler", str(pid), "--cmd", COMMAND]
    ours, old = environment(cache, None), environment(cache, baseline)
    variants = {
        "floor": ([sys.executable, "-c", "pass"], ours),
        "json": ([*cli, "--json"], ours),
        "text": ([*cli, "--no-color"], ours),
    }
    if baseline is not None:
        variants["json_before"] = ([*cli, "--json"], old)
        variants["text_before"] = ([*cli, "--no-color"], old)
    for argv, env in variants.values():
        timed(argv, env)  # writes the bytecode caches
    samples: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for _ in range(rounds):  # interleaved, in a new order each round: load and order touch every variant alike
        random.shuffle(order)
        for name in order:
            argv, env = variants[name]
            wall, used = timed(argv, env)
            samples[name].append(wall)
            cpu[name].append(used)
    found = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    found.update({"cpu_" + name: statistics.median(values) * 1000 for name, values in cpu.items()})
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--baseline", help="another copy of src/ to measure in the same run (before)")
    parser.add_argument("--baseline-name", default="baseline", help="what to call it in the results")
    args = parser.parse_args()
    python = find_interpreters()[-1][1]  # any target will do: the agent is reused
    target = start_target(python, "service_target.py", "sleep")
    try:
        attach = [sys.executable, "-m", "flight_profiler", str(target.pid), "--cmd", COMMAND, "--json"]
        timed(attach, dict(os.environ))
        with tempfile.TemporaryDirectory(prefix="fp-client-bench-") as cache:
            found = measure(target.pid, args.rounds, args.baseline, cache)
        subprocess.run([sys.executable, "-m", "flight_profiler", str(target.pid), "--cmd", "detach"], check=False)
    finally:
        target.stop()
    print(found)
    write_results(found, args.rounds, args.baseline_name)
    return 0


def write_results(found: dict[str, float], rounds: int, baseline_name: str) -> None:
    floor = found["floor"]
    lines = [
        "# Client start-up: one --cmd on a reused agent",
        "",
        "`bench/client_startup.py`: medians of %d rounds (each variant once a round, in a shuffled order)," % rounds,
        "each a fresh process of Python %s (the client's interpreter), with bytecode caches." % sys.version.split()[0],
        "The agent is already in the target: what is measured is the client's start-up, its imports,",
        "the handshake and `%s`." % COMMAND,
        "Goal (issue 14): at most the floor + 40 ms.",
        "",
        "CPU: the median user + system time of the process (less sensitive to the host's load than the wall time).",
        "",
        "| run | median | above `python -c pass` | CPU | CPU above the floor's |",
        "| --- | ---: | ---: | ---: | ---: |",
        "| `python -c pass` (floor) | %.1f ms | - | %.1f ms | - |" % (floor, found["cpu_floor"]),
    ]
    for key, label in (
        ("json", '`--cmd "%s" --json`' % COMMAND),
        ("text", '`--cmd "%s" --no-color` (text)' % COMMAND),
        ("json_before", "`--json`, %s" % baseline_name),
        ("text_before", "text, %s" % baseline_name),
    ):
        if key in found:
            cpu = found["cpu_" + key]
            lines.append(
                "| %s | %.1f ms | **+%.1f ms** | %.1f ms | +%.1f ms |"
                % (label, found[key], found[key] - floor, cpu, cpu - found["cpu_floor"])
            )
    lines += [
        "",
        "Not a test: nothing is asserted. `python -X importtime -m flight_profiler PID --cmd ...` shows where",
        "the rest goes (it does not list what `importlib.import_module` loads: the command's spec).",
        "",
    ]
    stamped = stamp()  # before the file is opened: truncating it would make the commit read "-dirty"
    with open(os.path.join(HERE, "RESULTS-client.md"), "w") as fh:
        fh.write(lines[0] + "\n\n" + stamped + "\n".join(lines[1:]))


if __name__ == "__main__":
    sys.exit(main())
