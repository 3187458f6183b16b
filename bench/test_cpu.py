"""Where the test suite's CPU goes: sums the lines ``FP_TEST_CPU_LOG=DIR`` makes tests/conftest.py write.

    FP_TEST_CPU_LOG=/tmp/cpu .venv/bin/python -m pytest --fp-pass parallel -n 4 --dist loadgroup ...
    .venv/bin/python bench/test_cpu.py /tmp/cpu [--top 30]

On CI's 2 cores the parallel pass is CPU-bound (issue 11): its wall time follows the CPU its tests spend
(the pytest process's own and that of the children it reaps: CLI runs, targets), not how long they wait.
Prints the CPU by module and by test (parameters folded), and how long each worker sat idle at the end
of the pass (a long group scheduled last). Not a test; nothing is asserted.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re


def _lines(directory: str) -> list[dict[str, object]]:
    found = []
    for path in sorted(glob.glob(os.path.join(directory, "*.jsonl"))):
        with open(path) as fh:
            found.extend(json.loads(line) for line in fh if line.strip())
    return found


def _table(title: str, totals: dict[str, list[float]], top: int) -> None:
    print("\n%s (CPU s = the pytest process + the children it reaped; wall s; tests)" % title)
    for key, (cpu, wall, count) in sorted(totals.items(), key=lambda kv: -kv[1][0])[:top]:
        print("%8.1f %8.1f %5d  %s" % (cpu, wall, count, key))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    lines = _lines(args.directory)
    if not lines:
        raise SystemExit("no lines in %s (was FP_TEST_CPU_LOG set?)" % args.directory)
    by_module: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])
    by_test: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])
    ends: dict[str, float] = {}
    for line in lines:
        cpu = float(line["self"]) + float(line["children"])  # type: ignore[arg-type]
        wall = float(line["wall"])  # type: ignore[arg-type]
        nodeid = str(line["id"])
        for table, key in ((by_module, nodeid.split("::")[0]), (by_test, re.sub(r"\[.*\]$", "", nodeid))):
            table[key][0] += cpu
            table[key][1] += wall
            table[key][2] += 1
        worker = str(line["worker"])
        ends[worker] = max(ends.get(worker, 0.0), float(line["start"]) + wall)  # type: ignore[arg-type]
    first = min(float(line["start"]) for line in lines)  # type: ignore[arg-type]
    last = max(ends.values())
    total = sum(v[0] for v in by_module.values())
    print(
        "%d tests, %.0f s of CPU, %.0f s of wall time from the first test to the last"
        % (len(lines), total, last - first)
    )
    print("idle at the end, per worker: " + ", ".join("%s %.0f s" % (w, last - e) for w, e in sorted(ends.items())))
    _table("by module", by_module, args.top)
    _table("by test", by_test, args.top)


if __name__ == "__main__":
    main()
