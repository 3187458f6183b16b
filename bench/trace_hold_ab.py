"""What holding the profiling events on saves a traced sub-call on 3.12+, in the target, in one run.

On bench/overhead_target.py's 50-sub-call method, ``trace __main__ Work handle --rate 10`` (every
invocation traced, 10 trees a second shown) alternately with the holder allowed (the default
HOLD_SHARE) and never started (HOLD_SHARE set out of reach in the target's agent through
``console``); each window is a new trace command. µs per sub-call and "kept" as in
bench/trace_cost.py. Nothing is asserted; it appends its run to bench/RESULTS-trace.md.

    .venv/bin/python bench/trace_hold_ab.py [--pythons 3.12,3.13,3.14] [--rounds 3] [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from overhead import OURS_CLI, Target, ours  # noqa: E402
from stamp import stamp  # noqa: E402
from trace_cost import OURS_RATED, _per_sub_call, _traced  # noqa: E402

from interpreters import find_interpreters  # noqa: E402

AGENT = "sys.modules['_flight_profiler.commands.trace.agent']"
SHARES = {"holder allowed": 0.5, "never held": 1e9}


def _set_share(pid: int, share: float) -> None:
    code = "import sys\nsetattr(%s, 'HOLD_SHARE', %r)" % (AGENT, share)
    subprocess.run([*OURS_CLI, str(pid), "--cmd", "console -c %s" % _quote(code)], capture_output=True, check=True)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def bench_python(label: str, python: str, rounds: int, seconds: float) -> list[tuple[str, str, float, float]]:
    rows = []
    target = Target(python, attach_first=ours)
    try:
        _traced(target, ours, OURS_RATED, 0.5)  # loads the trace agent
        for _ in range(rounds):
            for name, share in SHARES.items():
                _set_share(target.pid, share)
                base, traced, _ = _traced(target, ours, OURS_RATED, seconds)
                rows.append((label, name, base, traced))
                print(_line(rows[-1]), flush=True)
    finally:
        target.stop()
    return rows


def _line(row: tuple[str, str, float, float]) -> str:
    label, name, base, traced = row
    cost = _per_sub_call(base, traced)
    kept = traced / base * 100.0 if base else 0.0
    return "| %s | %s | %.0f | %.0f | %s | %.1f %% |" % (
        label,
        name,
        base,
        traced,
        "-" if cost is None else "%.2f" % cost,
        kept,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythons", default="3.12,3.13,3.14", help="interpreter ids (tests/interpreters.py)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each measurement window")
    args = parser.parse_args()
    header = (
        "| Python | events | invocations/CPU s, untraced | traced | µs per traced sub-call | throughput kept |\n"
        "|---|---|---|---|---|---|"
    )
    print(header, flush=True)
    rows = []
    for label, path in find_interpreters():
        if label in args.pythons.split(","):
            rows.extend(bench_python(label, path, args.rounds, args.seconds))
    with open(os.path.join(HERE, "RESULTS-trace.md"), "a") as fh:
        fh.write(
            "\n## Holding the events on, in the target (%s)\n\n" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        )
        fh.write(stamp())
        fh.write(
            "\nProduced by `bench/trace_hold_ab.py --pythons %s --rounds %d --seconds %g`; not a test. "
            % (args.pythons, args.rounds, args.seconds)
        )
        fh.write(" ".join(__doc__.split("\n\n", 2)[1].split()) + "\n\n")
        fh.write(header + "\n")
        fh.write("\n".join(_line(row) for row in rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
