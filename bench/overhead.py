"""Overhead benchmark: what watch, trace and tt cost a running target, ours and the reference's, side by side.

On one target (bench/overhead_target.py) running either a hot one-line function
or a method with 200 sub-calls in a loop, for each scenario:
  1. baseline: calls per second with nothing attached (measured right before);
  2. during: the command running (started from a CLI, warmed up), calls per second
     as a share of the baseline, the target's RSS growth, results received;
  3. after: the command stopped with Ctrl-C (SIGINT to the CLI; one scenario uses
     SIGKILL), calls per second again, and the RSS left behind;
  4. whether the target survived.
The same scenarios run against the reference flight-profiler==1.0.7, installed into
a venv of the target's own interpreter under bench/.venvs/ (it has to be importable
in the target); if it cannot be installed or run, the table says why.
Nothing is asserted: it prints a table and writes bench/RESULTS-overhead.md.

    .venv/bin/python bench/overhead.py [--pythons 3.11,3.13] [--seconds 3] [--only ours]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from stamp import stamp  # noqa: E402

from interpreters import find_interpreters  # noqa: E402

REFERENCE = "flight-profiler==1.0.7"
VENVS = os.path.join(HERE, ".venvs")
OURS_CLI = [sys.executable, "-m", "flight_profiler"]
NEVER = "args[0]<0"  # a filter that never matches: the hot function gets 0, 1, 2, ...
# (no spaces: the reference splits its --cmd on whitespace and ignores quotes; the same filter
# with spaces, quoted as a shell would, is a scenario of its own)
NEVER_SPACED = "args[0] < 0"
# -n: ours counts results shown, the reference counts calls entered (a never-matching
# watch -n 5 of the reference unhooks itself after five calls), so every scenario runs with
# a limit it never reaches and is stopped by the client
BIG = 100000000
RESULT_MARKERS = ('"kind": "call"', '"kind": "trace"', '"kind": "record"')  # ours, one JSON line per result
REFERENCE_RESULTS = ("✓ 20", "🔍")  # the reference's first line of a result


@dataclass
class Scenario:
    name: str
    workload: str  # "hot" or "method"
    ours: str
    reference: str | None  # None: the reference has no such command
    stop: int = signal.SIGINT


SCENARIOS = [
    Scenario(
        "watch, filter never matches",
        "hot",
        "watch __main__ hot -f %s -n %d" % (NEVER, BIG),
        "watch __main__ hot -f %s -n %d" % (NEVER, BIG),
    ),
    Scenario(
        "watch, filter with spaces never matches",
        "hot",
        "watch __main__ hot -f %s -n %d" % (shlex.quote(NEVER_SPACED), BIG),
        "watch __main__ hot -f %s -n %d" % (shlex.quote(NEVER_SPACED), BIG),
    ),
    Scenario("watch, every call shown", "hot", "watch __main__ hot -n %d" % BIG, "watch __main__ hot -n %d" % BIG),
    Scenario(
        "trace, default -i 0.1",
        "method",
        # our guards are off by default now (the seeds: every qualifying invocation); the row
        # measures them as they were measured before, asked for explicitly
        "trace __main__ Work handle -n %d --budget 20 --rate 10" % BIG,
        "trace __main__ Work handle -n %d" % BIG,
    ),
    Scenario("tt recording", "hot", "tt -t __main__ hot -n %d" % BIG, "tt -t __main__ hot -n %d" % BIG),
    Scenario(
        "tt, filter never matches",
        "hot",
        "tt -t __main__ hot -f %s -n %d" % (NEVER, BIG),
        "tt -t __main__ hot -f %s -n %d" % (NEVER, BIG),
    ),
    Scenario("monitor, every call", "hot", "monitor __main__ hot -c 1", None),
    Scenario("monitor, filter never matches", "hot", "monitor __main__ hot -c 1 -f %s" % NEVER, None),
    Scenario(
        "watch, client SIGKILLed",
        "hot",
        "watch __main__ hot -f %s -n %d" % (NEVER, BIG),
        "watch __main__ hot -f %s -n %d" % (NEVER, BIG),
        stop=signal.SIGKILL,
    ),
]


@dataclass
class Outcome:
    during: float | None = None  # share of the baseline rate, per CPU second of the target
    during_wall: float | None = None  # the same per wall-clock second (the machine's other load shows)
    after: float | None = None
    rss_growth_mb: float | None = None
    rss_left_mb: float | None = None
    results_per_s: float | None = None
    survived: bool = True
    note: str = ""
    baseline: float = 0.0
    added_ns: float | None = None  # CPU time the command added to each call of the workload


QUANTILE = 0.8  # of the per-tick rates in a window (see Target.measure)

# the floors: the cheapest hooks on the hot function, measured in each target (overhead_target.py)
FLOORS = ("plain", "inline")
FLOOR_NAMES = {
    "plain": "floor: wrapper that only calls the original",
    "inline": "floor: + never-matching filter inline",
}


class Target:
    """The benchmark workload process and its tick stream."""

    def __init__(self, python: str, attach_first: Any = None) -> None:
        self.proc = subprocess.Popen(
            [python, os.path.join(HERE, "overhead_target.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("benchmark target did not start")
        self.ticks: list[tuple[float, int, int, float]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        if attach_first is not None:  # the agent's own footprint is then part of every baseline
            client = attach_first(self.pid, "getglobal __main__ MODE")
            client.proc.wait(120)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if parts and parts[0] == "tick":
                with self.lock:
                    self.ticks.append((float(parts[1]), int(parts[2]), int(parts[3]), float(parts[4])))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def workload(self, name: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()

    def measure(self, seconds: float) -> tuple[float, float, int, int]:
        """(calls per CPU second, calls per wall second, peak RSS kB, last RSS kB) over the next ``seconds``.

        Per CPU second of the target process (all its threads, the agent's included): the other
        processes on the machine then matter much less than they do to a wall-clock rate.
        """
        start = time.monotonic()
        time.sleep(seconds)
        with self.lock:
            window = [tick for tick in self.ticks if tick[0] >= start]
        if len(window) < 2:
            return 0.0, 0.0, 0, 0
        (t0, c0, _, cpu0), (t1, c1, rss, cpu1) = window[0], window[-1]
        per_cpu = (c1 - c0) / (cpu1 - cpu0) if cpu1 > cpu0 else 0.0
        # the rate of each 0.2 s tick, and a high quantile of them: on a shared machine the other
        # processes slow some ticks a lot (caches, the sibling hyperthread), rarely speed one up
        rates = sorted(
            (b[1] - a[1]) / (b[3] - a[3]) for a, b in zip(window, window[1:]) if b[3] - a[3] > 0.02 and b[1] > a[1]
        )
        if len(rates) >= 5:
            per_cpu = rates[int(len(rates) * QUANTILE)]
        return per_cpu, (c1 - c0) / (t1 - t0), max(tick[2] for tick in window), rss

    def stop(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)


class Client:
    """A CLI running one command; counts the lines of results it prints."""

    def __init__(self, argv: list[str], started_marker: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines = 0
        self.results = 0
        self.started = threading.Event()
        self.first_lines: list[str] = []
        self.last_line = ""
        self.marker = started_marker
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines += 1
            if len(self.first_lines) < 5:
                self.first_lines.append(line.rstrip()[:200])
            if line.strip():
                self.last_line = line.strip()[:200]
            if self.marker in line:
                self.started.set()
            if any(marker in line for marker in RESULT_MARKERS) or line.startswith(REFERENCE_RESULTS):
                self.results += 1
        self.started.set()

    def stop(self, how: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(how)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def ours(pid: int, command: str) -> Client:
    return Client([*OURS_CLI, str(pid), "--cmd", command, "--json"], '"kind": "start"')


def reference(venv: str, pid: int, command: str) -> Client:
    argv = [os.path.join(venv, "bin", "flight_profiler"), str(pid), "--cmd", command, "--no-color"]
    return Client(argv, "Ctrl-C", env={**os.environ, "PYTHONUNBUFFERED": "1"})  # its lines as they come


def run_scenario(target: Target, scenario: Scenario, start: Any, seconds: float) -> Outcome:
    """``start(pid)`` starts the client running the scenario's command."""
    outcome = Outcome()
    target.workload(scenario.workload)
    time.sleep(1.0)
    base, base_wall, _, base_rss = target.measure(seconds)
    outcome.baseline = base
    client = start(target.pid)
    if not client.started.wait(60) or (client.proc.poll() is not None and client.lines == 0):
        client.stop(signal.SIGKILL)
        outcome.note = "did not start: %s" % " | ".join(client.first_lines)
        return outcome
    time.sleep(1.0)
    results_before = client.results
    rate, wall, peak_rss, _ = target.measure(seconds)
    outcome.results_per_s = (client.results - results_before) / seconds
    outcome.during = rate / base if base else None
    outcome.added_ns = _added_ns(base, rate)
    outcome.during_wall = wall / base_wall if base_wall else None
    outcome.rss_growth_mb = (peak_rss - base_rss) / 1024.0
    if client.proc.poll() is not None:  # it ended by itself: nothing was hooked while measuring
        outcome.note = "the command ended by itself: %s" % client.last_line
    client.stop(scenario.stop)
    if not target.alive():
        outcome.survived = False
        outcome.note = "target died (exit %s)" % target.proc.returncode
        return outcome
    time.sleep(1.5)
    after, _, _, after_rss = target.measure(seconds)
    outcome.after = after / base if base else None
    outcome.rss_left_mb = (after_rss - base_rss) / 1024.0
    outcome.survived = target.alive()
    if not outcome.survived:
        outcome.note = "target died (exit %s)" % target.proc.returncode
    return outcome


def _added_ns(base: float, rate: float) -> float | None:
    """Nanoseconds of target CPU added per call: the difference of the two rates' inverses."""
    return (1.0 / rate - 1.0 / base) * 1e9 if base and rate else None


def measure_floor(target: Target, kind: str, seconds: float) -> Outcome:
    """The target's hot function behind the floor's wrapper, against the same target just before."""
    outcome = Outcome()
    target.workload("hot")
    target.workload("floor-off")
    time.sleep(1.0)
    base, _, _, _ = target.measure(seconds)
    target.workload("floor-" + kind)
    time.sleep(0.5)
    rate, _, _, _ = target.measure(seconds)
    target.workload("floor-off")
    outcome.baseline = base
    outcome.during = rate / base if base else None
    outcome.added_ns = _added_ns(base, rate)
    return outcome


def reference_venv(version: str, python: str) -> tuple[str | None, str]:
    """The venv with the reference installed for this interpreter, or None and why not."""
    venv = os.path.join(VENVS, "py%s" % version)
    flight = os.path.join(venv, "bin", "flight_profiler")
    if os.access(flight, os.X_OK):
        return venv, ""
    try:
        subprocess.run([python, "-m", "venv", venv], check=True, capture_output=True, timeout=120)
        proc = subprocess.run(
            [os.path.join(venv, "bin", "pip"), "install", "-q", REFERENCE],
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, "cannot create the venv: %s" % exc
    if proc.returncode != 0:
        return None, "pip install %s failed: %s" % (REFERENCE, (proc.stderr or proc.stdout).strip().splitlines()[-1:])
    return venv, ""


def bench_python(label: str, python: str, seconds: float, only: str | None) -> list[dict[str, Any]]:
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    venv, why = reference_venv(version, python)
    target_python = os.path.join(venv, "bin", "python") if venv else python
    rows = []
    tools: list[tuple[str, Any]] = []
    if only in (None, "ours"):
        tools.append(("ours", lambda pid, command: ours(pid, command)))
    if only in (None, "reference"):
        tools.append(("reference 1.0.7", (lambda pid, command: reference(venv, pid, command)) if venv else None))
    for tool, start in tools:
        target = Target(target_python, attach_first=start)
        try:
            if start is not None:  # the floors, in the same target (twice: before and after, averaged)
                for kind in FLOORS:
                    rows.append(floor_row(label, tool, kind, measure_floor(target, kind, seconds)))
                    print(_line(rows[-1]), flush=True)
            for scenario in SCENARIOS:
                if start is not None and scenario.reference is None and tool != "ours":
                    continue  # the reference has no such command
                if start is None:
                    rows.append(
                        {
                            "python": label,
                            "tool": tool,
                            "scenario": scenario.name,
                            "workload": "",
                            "outcome": Outcome(note=why),
                        }
                    )
                    continue
                command = scenario.ours if tool == "ours" else scenario.reference
                assert command is not None
                outcome = run_scenario(target, scenario, lambda pid, c=command, s=start: s(pid, c), seconds)
                rows.append(
                    {
                        "python": label,
                        "tool": tool,
                        "scenario": scenario.name,
                        "workload": scenario.workload,
                        "outcome": outcome,
                    }
                )
                print(_line(rows[-1]), flush=True)
                if not target.alive():
                    target.stop()
                    target = Target(target_python, attach_first=start)
            if start is not None:
                for kind in FLOORS:
                    rows.append(floor_row(label, tool, kind, measure_floor(target, kind, seconds)))
                    print(_line(rows[-1]), flush=True)
        finally:
            target.stop()
    return rows


def floor_row(label: str, tool: str, kind: str, outcome: Outcome) -> dict[str, Any]:
    return {"python": label, "tool": tool, "scenario": FLOOR_NAMES[kind], "workload": "hot", "outcome": outcome}


def _pct(value: float | None) -> str:
    return "-" if value is None else "%.1f %%" % (value * 100.0)


def _mb(value: float | None) -> str:
    return "-" if value is None else "%+.1f MB" % value


def _line(row: dict[str, Any]) -> str:
    o: Outcome = row["outcome"]
    return "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        row["python"],
        row["scenario"],
        row["tool"],
        _pct(o.during),
        _ns(o.added_ns),
        _pct(o.during_wall),
        "-" if o.results_per_s is None else "%.0f" % o.results_per_s,
        _mb(o.rss_growth_mb),
        _pct(o.after),
        _mb(o.rss_left_mb),
        ("yes" if o.survived else "**no**") + (" (%s)" % o.note if o.note else ""),
    )


HEADER = (
    "| Python | scenario | tool | throughput during | CPU added per call | (wall clock) | results/s "
    "| RSS growth during | throughput after | RSS left after | target survived |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def _ns(value: float | None) -> str:
    return "-" if value is None else "%+.0f ns" % value


# the scenarios compared with the floors, by the column they get
FLOOR_COLUMNS = (
    ("watch -f never", "watch, filter never matches"),
    ("tt -f never", "tt, filter never matches"),
    ("monitor -f never", "monitor, filter never matches"),
    ("monitor", "monitor, every call"),
)


def floor_table(rows: list[dict[str, Any]]) -> list[str]:
    """Per interpreter and tool: ns of target CPU added per call of the hot function, the floors'
    (mean of the measurement before and after the scenarios) and each command's, and the ratios."""
    out = [
        "| Python | tool | floor: plain wrapper | floor: inline filter | "
        + " | ".join(name for name, _ in FLOOR_COLUMNS)
        + " | "
        + " | ".join("%s / inline floor" % name for name, _ in FLOOR_COLUMNS[:3])
        + " | monitor's throughput / never-matching watch's |",
        "|---" * (4 + 2 * len(FLOOR_COLUMNS) - 1 + 1) + "|",
    ]
    keys = sorted({(row["python"], row["tool"]) for row in rows}, key=lambda k: (_version_key(k[0]), k[1] != "ours"))
    for python, tool in keys:
        mine = [row for row in rows if row["python"] == python and row["tool"] == tool]
        floors = {kind: _mean(_added(mine, FLOOR_NAMES[kind])) for kind in FLOORS}
        if floors["inline"] is None:
            continue
        added = {name: _mean(_added(mine, scenario)) for name, scenario in FLOOR_COLUMNS}
        ratios = [_ratio(added[name], floors["inline"]) for name, _ in FLOOR_COLUMNS[:3]]
        share = _ratio(_mean(_during(mine, "monitor, every call")), _mean(_during(mine, "watch, filter never matches")))
        out.append(
            "| %s | %s | %s | %s | %s | %s | %s |"
            % (
                python,
                tool,
                _ns(floors["plain"]),
                _ns(floors["inline"]),
                " | ".join(_ns(added[name]) for name, _ in FLOOR_COLUMNS),
                " | ".join(ratios),
                "-" if share == "-" else "%.0f %%" % (float(share[:-1]) * 100.0),
            )
        )
    return out


def _version_key(label: str) -> tuple[int, ...]:
    digits = label.replace("deb", "")
    return tuple(int(part) for part in digits.split(".") if part.isdigit())


def _added(rows: list[dict[str, Any]], scenario: str) -> list[float]:
    return [
        row["outcome"].added_ns for row in rows if row["scenario"] == scenario and row["outcome"].added_ns is not None
    ]


def _during(rows: list[dict[str, Any]], scenario: str) -> list[float]:
    return [row["outcome"].during for row in rows if row["scenario"] == scenario and row["outcome"].during is not None]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ratio(value: float | None, floor: float | None) -> str:
    if value is None or floor is None or floor <= 0:
        return "-"
    return "%.2fx" % (value / floor)


README_BEGIN = "<!-- bench/overhead.py: floors begin -->"
README_END = "<!-- bench/overhead.py: floors end -->"


def write_readme(rows: list[dict[str, Any]]) -> None:
    """Regenerate the README's table of hook costs from these results (between the two markers)."""
    path = os.path.join(REPO, "README.md")
    with open(path) as fh:
        text = fh.read()
    if README_BEGIN not in text or README_END not in text:
        print("README.md has no markers for the table; not updated")
        return
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    table = "\n".join(floor_table(rows))
    with open(path, "w") as fh:
        fh.write(head + README_BEGIN + "\n" + table + "\n" + README_END + tail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythons", default="3.11,3.13", help="interpreter ids (tests/interpreters.py)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measurement window")
    parser.add_argument("--only", choices=("ours", "reference"), help="run one tool only")
    parser.add_argument("--from-json", help="rewrite the report from bench/results/overhead.json of a previous run")
    args = parser.parse_args()
    wanted = args.pythons.split(",")
    found = [(label, path) for label, path in find_interpreters() if label in wanted]
    rows: list[dict[str, Any]] = []
    print(HEADER)
    if args.from_json:  # only rewrite the report from a previous run's numbers
        write_results(load_rows(args.from_json), args)
        write_readme(load_rows(args.from_json))
        return 0
    for label, path in found:
        rows.extend(bench_python(label, path, args.seconds, args.only))
    save_rows(rows)
    write_results(rows, args)
    write_readme(rows)
    return 0


def _typical_call_ns(rows: list[dict[str, Any]]) -> str:
    bases = [row["outcome"].baseline for row in rows if row["workload"] == "hot" and row["outcome"].baseline]
    if not bases:
        return "?"
    return "%.0f-%.0f" % (1e9 / max(bases), 1e9 / min(bases))


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """One line per scenario and tool: the range over the interpreters."""
    out = [
        "| scenario | tool | throughput during | throughput after | RSS growth during (max) "
        "| RSS left after (max) | results/s | targets lost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for row in rows:
        groups.setdefault((row["scenario"], row["tool"]), []).append(row["outcome"])
    order = [scenario.name for scenario in SCENARIOS]
    for (scenario, tool), outcomes in sorted(
        groups.items(), key=lambda item: (order.index(item[0][0]) if item[0][0] in order else 99, item[0][1] != "ours")
    ):
        out.append(
            "| %s | %s | %s | %s | %s | %s | %s | %d of %d |"
            % (
                scenario,
                tool,
                _span([o.during for o in outcomes], _pct),
                _span([o.after for o in outcomes], _pct),
                _mb(_max([o.rss_growth_mb for o in outcomes])),
                _mb(_max([o.rss_left_mb for o in outcomes])),
                _span([o.results_per_s for o in outcomes], lambda v: "-" if v is None else "%.0f" % v),
                sum(not o.survived for o in outcomes),
                len(outcomes),
            )
        )
    return out


def _span(values: list[float | None], show: Any) -> str:
    known = [value for value in values if value is not None]
    if not known:
        return "-"
    low, high = min(known), max(known)
    return show(low) if show(low) == show(high) else "%s - %s" % (show(low), show(high))


def _max(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return max(known) if known else None


def save_rows(rows: list[dict[str, Any]]) -> None:
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "overhead.json"), "w") as fh:
        json.dump([{**row, "outcome": row["outcome"].__dict__} for row in rows], fh, indent=1)


def load_rows(path: str) -> list[dict[str, Any]]:
    with open(path) as fh:
        return [{**row, "outcome": Outcome(**row["outcome"])} for row in json.load(fh)]


def write_results(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    lines = [
        "# Overhead of watch, trace, tt and monitor on a running target",
        "",
        "Produced by `bench/overhead.py --pythons %s --seconds %g` on %s (%d CPUs); not a test."
        % (args.pythons, args.seconds, time.strftime("%Y-%m-%d"), os.cpu_count() or 0),
        "Throughput is the workload's calls per CPU second of the target process (all its threads,",
        "the agent's included) as a share of the same target's rate measured right before the command",
        "(hot: a one-line function in a loop; method: a method making 200 calls of a one-line",
        "function); per CPU second because the machine is shared and its load varies, which a",
        "wall-clock rate (next column) shows too. *After* is measured 1.5 s after the client was stopped",
        "(Ctrl-C, or SIGKILL where the scenario says so). RSS is the target's resident memory; each",
        "tool's agent is attached (one `getglobal`) before the first baseline, so its own footprint",
        "is not counted as growth. Results/s: results the client received per second.",
        "",
        "Reading it:",
        "- The hot function's rate is in the per-Python baselines at the end; a fixed cost per call",
        "  weighs more the faster the function (CPU added per call is the column that compares).",
        "- A never-matching filter of ours (watch, tt, monitor) is compiled into the hook's wrapper",
        "  (services/inline.py): the ratio to the inline floor is the cost of what the floor leaves",
        "  out: the filter's two `try` blocks, its result kept for after them and, before 3.11, a",
        "  look at the watchdog's posted stops (each instruction costs 1-3 ns on this machine).",
        "- The reference's rows at ~100 % with no results are a failed attach, not a free hook: in",
        "  the 2026-12-01 run flight-profiler 1.0.7 answered ERROR_FLIGHT_SERVER_NO_RESPONSE on this",
        "  host (reproduced by hand on an idle target), so those rows measure an unhooked target;",
        "  runs from then on name such a row's last line in its last column.",
        "- Per-call figures of a few ns are below this shared machine's noise (load average in the",
        "  stamp): bench/hook_floor.py measures the same hooks in one process (RESULTS-hook-floor.md).",
        "- `monitor` times every call: two `perf_counter()` calls and a thread check, which on this",
        "  host cost 60-70 ns and ~40 ns each under load; its counts, failures, avg/min/max are exact.",
        "- Ours shows at most `--rate` results a second (watch 20, tt 50 by default; trace here with",
        "  `--rate 10 --budget 20`, which trace no longer applies unless asked); the skipped calls",
        "  are counted and reported.",
        "- `-n` differs: ours counts results shown, the reference counts calls entered (its",
        "  never-matching `watch -n 5` unhooks itself after five calls), so every scenario uses a",
        "  limit it never reaches and is stopped by the client.",
        "- *After* varies by about +-25 % from one 3-second window to the next on this shared",
        "  machine; the SIGKILL row is the one that tells the tools apart: the reference's hook",
        "  stays when its client is killed.",
        "",
        HEADER,
    ]
    floors = [
        "",
        "Against the floors (the hot function, ~%s ns a call unhooked; CPU time of the target added"
        % _typical_call_ns(rows),
        "per call, from the rates with and without (each rate: the 80th percentile of the 0.2 s ticks'",
        "rates in its window, calls per CPU second); the floors are the cheapest hooks possible, put",
        "on the same function in the same target by `bench/overhead_target.py`: a wrapper that only",
        "calls a copy of the original, and the same wrapper with the never-matching filter `args[0] < 0`",
        "compiled in without any guard; each measured before and after the scenarios, averaged):",
        "",
        *floor_table(rows),
        "",
    ]
    lines[-1:-1] = [*summary(rows), *floors, "", "Every run:", ""]
    lines.extend(_line(row) for row in rows)
    lines.append("")
    lines.append("Baseline rates (calls/s, median of the per-scenario baselines):")
    by_key: dict[str, list[float]] = {}
    for row in rows:
        if row["outcome"].baseline:
            key = "Python %s, %s workload, %s's target" % (row["python"], row["workload"], row["tool"])
            by_key.setdefault(key, []).append(row["outcome"].baseline)
    for key, values in by_key.items():
        lines.append("- %s: %s" % (key, f"{statistics.median(values):,.0f}"))
    with open(os.path.join(HERE, "RESULTS-overhead.md"), "w") as fh:
        fh.write(lines[0] + "\n\n" + stamp() + "\n".join(lines[1:]) + "\n")
    print("\nwritten to bench/RESULTS-overhead.md")


if __name__ == "__main__":
    sys.exit(main())
