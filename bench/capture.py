"""What showing a big object costs the target: time, peak RSS, CPU per shown call.

For every interpreter the test suite finds (or --pythons): start
tests/targets/capture_target.py with a 1 GB bytearray global BIG, a thread that
passes a 100 MB bytes object to ``consume`` and a 100 000-entry dict to ``lookup``
every 20 ms. Then, over one agent connection:

- getglobal __main__ BIG: round-trip time (median of 5) and VmHWM growth;
- watch __main__ consume -n 5 -x 2: VmHWM growth per captured call;
- watch __main__ lookup -n 20 -x 1: the target's CPU time (utime+stime) per shown
  call, less the CPU it spends without the watch over the same time.

``--before SRC`` measures the last figure (and, with --before-big, the others) with
another source tree too, e.g. the commit before the bounded captures, in the same run.
Results go to stdout and bench/RESULTS-capture.md. Nothing is asserted.

    .venv/bin/python bench/capture.py [--pythons 3.8,3.14] [--before /path/to/old/src] [--before-big]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from interpreters import find_interpreters  # noqa: E402
from support import start_target  # noqa: E402

BIG_MB = 1024
TICKS = os.sysconf("SC_CLK_TCK")


def peak_rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure_in_this_tree(pid: int, big: bool) -> dict[str, float]:
    """Runs with whichever flight_profiler is first on sys.path (the tree under test)."""
    from flight_profiler.attach.attacher import AttachOptions, connect
    from flight_profiler.cli import registry

    conn = connect(pid, AttachOptions())
    found: dict[str, float] = {}

    def run(line: str) -> list[dict[str, object]]:
        words = line.split()
        spec = registry.get(words[0])
        assert spec is not None
        return conn.run(spec.name, spec.parse(words[1:]), timeout=600)

    run("getglobal __main__ BIG_DICT")  # warm: the agent's first command loads its modules
    if big:
        before = peak_rss_kb(pid)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            run("getglobal __main__ BIG")
            times.append((time.perf_counter() - started) * 1000)
        found["getglobal_ms"] = statistics.median(times)
        found["getglobal_rss_kb"] = peak_rss_kb(pid) - before
        before = peak_rss_kb(pid)
        calls = [e for e in run("watch __main__ consume -n 5 -x 2") if e.get("kind") == "call"]
        found["watch_rss_kb_per_call"] = (peak_rss_kb(pid) - before) / max(1, len(calls))
    idle_started, idle_cpu = time.monotonic(), cpu_s(pid)
    time.sleep(2.0)
    idle_rate = (cpu_s(pid) - idle_cpu) / (time.monotonic() - idle_started)
    started, cpu = time.monotonic(), cpu_s(pid)
    calls = [e for e in run("watch __main__ lookup -n 20 -x 1") if e.get("kind") == "call"]
    spent = cpu_s(pid) - cpu - idle_rate * (time.monotonic() - started)
    found["dict_cpu_ms_per_call"] = max(0.0, spent) * 1000 / max(1, len(calls))
    conn.detach()
    return found


def measure(python: str, src: str, big: bool) -> dict[str, float]:
    target = start_target(python, "capture_target.py", str(BIG_MB if big else 1), timeout=120)
    try:
        env = dict(os.environ, PYTHONPATH=src)
        code = "import sys, json; sys.path.insert(0, %r); import capture; print(json.dumps(capture.measure_in_this_tree(%d, %r)))"
        out = subprocess.run(
            [sys.executable, "-c", code % (HERE, target.pid, big)], env=env, capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "measurement failed")
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
    finally:
        target.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythons", help="interpreter ids, e.g. 3.8,3.14")
    parser.add_argument("--before", help="another source tree (its src/ directory) to compare with")
    parser.add_argument("--before-label", help="what --before is, for the results (default: its path)")
    parser.add_argument("--before-big", action="store_true", help="also the 1 GB/100 MB figures of --before (slow)")
    args = parser.parse_args()
    if args.pythons:
        os.environ["FLIGHT_PROFILER_TEST_PYTHONS"] = args.pythons
        find_interpreters.cache_clear()
    rows = []
    for ident, python in find_interpreters():
        print("measuring %s ..." % ident, file=sys.stderr, flush=True)
        row = {"after": measure(python, os.path.join(REPO, "src"), big=True)}
        if args.before:
            row["before"] = measure(python, args.before, big=args.before_big)
        print(ident, json.dumps(row), flush=True)
        rows.append((ident, row))
    write_results(rows, args)
    return 0


def _commit() -> str:
    out = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "src"], capture_output=True, text=True)
    return out.stdout.strip() + (" (+ uncommitted changes)" if dirty.stdout.strip() else "")


def _cell(row: dict[str, dict[str, float]], key: str, fmt: str) -> str:
    after = row["after"].get(key)
    before = row.get("before", {}).get(key)
    text = fmt % after if after is not None else "-"
    return text + (" (before: %s)" % (fmt % before) if before is not None else "")


def write_results(rows: list[tuple[str, dict[str, dict[str, float]]]], args: argparse.Namespace) -> None:
    with open("/proc/loadavg") as fh:
        load = " ".join(fh.read().split()[:3])
    lines = [
        "# Captures: what showing a big object costs the target",
        "",
        "`bench/capture.py` at commit %s on %s (%s, %d CPUs), %s, load average at the end %s."
        % (_commit(), platform.node(), platform.machine(), os.cpu_count() or 0, time.strftime("%Y-%m-%d %H:%M"), load),
        "Target: tests/targets/capture_target.py with a %d MB bytearray global, a thread passing a" % BIG_MB,
        "100 MB bytes object and a 100 000-entry dict to two functions every 20 ms.",
        "",
        "- **getglobal 1 GB**: round trip of `getglobal __main__ BIG` on an open connection (median of 5),",
        "  and how much the target's peak RSS (VmHWM) grew over the 5.",
        "- **watch 100 MB arg**: VmHWM growth per captured call of `watch __main__ consume -n 5 -x 2`.",
        "- **100 000-entry dict, -x 1**: the target's CPU time per shown call of `watch __main__ lookup -n 20`,",
        "  less its CPU time without the watch over as long."
        + (
            " Before: the same with %s." % (args.before_label or "the sources in `%s`" % args.before)
            if args.before
            else ""
        ),
        "",
        "| python | getglobal 1 GB | its peak RSS growth | watch 100 MB arg: peak RSS per call | dict 100k: target CPU per call |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for ident, row in rows:
        lines.append(
            "| %s | %s | %s | %s | %s |"
            % (
                ident,
                _cell(row, "getglobal_ms", "%.1f ms"),
                _cell(row, "getglobal_rss_kb", "%d kB"),
                _cell(row, "watch_rss_kb_per_call", "%d kB"),
                _cell(row, "dict_cpu_ms_per_call", "%.2f ms"),
            )
        )
    lines += [
        "",
        "CPU time comes from /proc/<pid>/stat in clock ticks (%d per second): per-call figures under" % TICKS,
        "a tick are an average over the calls. The watch's peak RSS includes loading the watch command",
        "into the agent (its first use). The 1 GB and 100 MB figures are not measured before the change",
        "unless --before-big: a full repr() of the bytearray is 4 GB of text (issue 9 measured 76 s for",
        "`bytearray(10**9)`, and +800 MB per captured call of a 100 MB argument). Not a test: nothing is asserted.",
        "",
    ]
    with open(os.path.join(HERE, "RESULTS-capture.md"), "w") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
