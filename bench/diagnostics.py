"""Cost of the diagnostics of issue 12: ``line``, ``thread -n`` and ``monitor`` on a hot function.

1. ``line`` scoped to one function: the throughput of *another* function of the same
   thread (calls per CPU second of the target), with nothing running vs with ``line`` on the
   watched function (a never-matching ``-f``, and every hit shown), in alternating windows of
   the same run; the goal is under 2 % of slow-down.
2. ``thread -n 3`` vs ``stack``: the wall time of one ``--cmd`` each on an agent already
   present (medians of 5), on the same target.
3. ``monitor`` on the hot function ``other`` (about 10**6 calls a second): the share of its
   throughput (calls per CPU second of the target) kept while ``monitor`` runs, against the window
   just before, beside the share a never-matching ``watch -f`` keeps, in the same run; the goal is
   that monitor keeps at least as much (monitor / watch >= 100 %).
Nothing is asserted: it prints a table and writes bench/RESULTS-diagnostics.md.

    .venv/bin/python bench/diagnostics.py [--pythons 3.8,3.12,3.14] [--seconds 2] [--rounds 3] [--only monitor]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from stamp import stamp  # noqa: E402

from interpreters import find_interpreters  # noqa: E402

CLI = [sys.executable, "-m", "flight_profiler"]
# the client (and so the agent it injects) from this checkout, not whichever copy the venv installed
os.environ["PYTHONPATH"] = os.pathsep.join(
    [os.path.join(os.path.dirname(HERE), "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
)
TARGET = os.path.join(HERE, "diagnostics_target.py")
BIG = 100000000


def probed_line() -> int:
    with open(TARGET) as fh:
        return next(number for number, text in enumerate(fh, 1) if "PROBED_LINE" in text)


class Target:
    def __init__(self, python: str) -> None:
        self.proc = subprocess.Popen(
            [python, TARGET], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("benchmark target did not start")
        self.ticks: list[tuple[float, int, float]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if parts[:1] == ["tick"]:
                with self.lock:
                    self.ticks.append((float(parts[1]), int(parts[2]), float(parts[3])))

    def rate(self, seconds: float) -> float:
        """Calls of ``other`` per CPU second of the whole target over the next ``seconds``."""
        start = time.monotonic()
        time.sleep(seconds)
        with self.lock:
            window = [tick for tick in self.ticks if tick[0] >= start]
        if len(window) < 2 or window[-1][2] <= window[0][2]:
            return 0.0
        return (window[-1][1] - window[0][1]) / (window[-1][2] - window[0][2])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def cli(pid: int, command: str, timeout: float = 120) -> float:
    """Wall seconds of one ``--cmd``; raises when it failed."""
    start = time.monotonic()
    proc = subprocess.run([*CLI, str(pid), "--cmd", command, "--json"], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError("%s: %s" % (command, (proc.stderr or proc.stdout).strip()[-200:]))
    return time.monotonic() - start


def line_cost(target: Target, command: str, seconds: float, rounds: int) -> float:
    """Median slow-down (%) of ``other`` while ``command`` runs, against the window just before."""
    losses = []
    for _ in range(rounds):
        before = target.rate(seconds)
        running = subprocess.Popen(
            [*CLI, str(target.proc.pid), "--cmd", command, "--json"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # attached, hooked, warm
        during = target.rate(seconds)
        running.send_signal(signal.SIGINT)
        running.wait(60)
        if before > 0:
            losses.append(100.0 * (1.0 - during / before))
    return statistics.median(losses) if losses else float("nan")


def kept(target: Target, command: str, seconds: float, rounds: int) -> float:
    """Median share (%) of ``other``'s throughput kept while ``command`` runs."""
    return 100.0 - line_cost(target, command, seconds, rounds)


def measure_monitor(target: Target, seconds: float, rounds: int) -> dict[str, float]:
    """Scenarios interleaved round by round, so that the machine's load drifts over all of them alike."""
    commands = {
        "watch_never": "watch __main__ other -f 'args[0] < 0' -n %d" % BIG,
        "monitor": "monitor __main__ other -c 1",
        "monitor_never": "monitor __main__ other -c 1 -f 'args[0] < 0'",
    }
    shares: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            shares[name].append(kept(target, command, seconds, 1))
            print("  %s: %.1f %% kept" % (name, shares[name][-1]), file=sys.stderr, flush=True)
    row = {name: statistics.median(values) for name, values in shares.items()}
    for name, values in shares.items():  # the spread says how much of a difference the machine can resolve
        row[name + "_low"], row[name + "_high"] = min(values), max(values)
    return row


def measure(python: str, seconds: float, rounds: int, only: str) -> dict[str, float]:
    target = Target(python)
    try:
        cli(target.proc.pid, "getglobal __main__ COUNT")  # the agent is present in every window
        row: dict[str, float] = {}
        if only in ("", "monitor"):
            row.update(measure_monitor(target, seconds, rounds))
        if only in ("", "line"):
            line = probed_line()
            never = "line __main__ probed %d -f 'n < 0' -n %d" % (line, BIG)
            shown = "line __main__ probed %d -n %d" % (line, BIG)
            row.update(
                line_never=line_cost(target, never, seconds, rounds),
                line_shown=line_cost(target, shown, seconds, rounds),
                stack=statistics.median(cli(target.proc.pid, "stack") for _ in range(5)),
                thread_n=statistics.median(cli(target.proc.pid, "thread -n 3") for _ in range(5)),
                thread_n0=statistics.median(cli(target.proc.pid, "thread -n 3 -i 0") for _ in range(5)),
            )
        return row
    finally:
        target.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pythons", default="3.8,3.12,3.14", help="interpreter ids (tests/interpreters.py)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measuring window")
    parser.add_argument("--rounds", type=int, default=3, help="alternating before/during windows per scenario")
    parser.add_argument("--only", choices=("monitor", "line"), default="", help="one part (default: both)")
    args = parser.parse_args()
    found = dict(find_interpreters())
    rows = []
    for name in args.pythons.split(","):
        if name not in found:
            print("%s: not found on this machine" % name, file=sys.stderr)
            continue
        print("== %s" % name, file=sys.stderr)
        try:
            rows.append((name, measure(found[name], args.seconds, args.rounds, args.only)))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print("%s: %s" % (name, exc), file=sys.stderr)
    command = "`bench/diagnostics.py --pythons %s --seconds %g --rounds %d%s`" % (
        args.pythons,
        args.seconds,
        args.rounds,
        " --only " + args.only if args.only else "",
    )
    if args.only in ("", "line"):
        _write("RESULTS-diagnostics.md", _line_report(rows, command))
    if args.only in ("", "monitor"):
        _write("RESULTS-monitor.md", _monitor_report(rows, command))
    return 0


def _write(name: str, lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(HERE, name), "w") as fh:
        fh.write(text)


def _line_report(rows: list[tuple[str, dict[str, float]]], command: str) -> list[str]:
    lines = [
        "# Diagnostics benchmark (bench/diagnostics.py)",
        "",
        stamp(),
        "Produced by %s; not a test. "
        "`line`: slow-down of *another* function of the same thread while `line` watches `probed` "
        "(median of alternating windows, per CPU second of the target; negative = noise). "
        "`thread -n 3` vs `stack`: wall seconds of one `--cmd` on an agent already present (median of 5); "
        "`thread -n` waits its sampling interval (-i, default) before it answers." % command,
        "",
        "| python | line, -f never matches | line, every hit shown | stack | thread -n 3 | thread -n 3 -i 0 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in rows:
        lines.append(
            "| %s | %+.1f %% | %+.1f %% | %.2f s | %.2f s | %.2f s |"
            % (name, row["line_never"], row["line_shown"], row["stack"], row["thread_n"], row["thread_n0"])
        )
    return lines


def _monitor_report(rows: list[tuple[str, dict[str, float]]], command: str) -> list[str]:
    lines = [
        "# monitor on a hot function (bench/diagnostics.py)",
        "",
        stamp(),
        "Produced by %s; not a test. The target's hot function `other` (`return x + 1`, called in a "
        "loop) keeps this share of its calls per CPU second of the whole target while the command "
        "runs, against the window just before it (median of the rounds, scenarios interleaved). "
        "Goal (issue 12): monitor keeps at least what a never-matching watch keeps (last column >= 100 %%). "
        "monitor counts every call and times about 10 000 a second (one in the stride it sets from the rate; "
        "`timed` in its cycles)." % command,
        "",
        "| python | watch -f never matches | monitor | monitor -f never matches | monitor / watch -f never |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, row in rows:
        cells = [
            "%.1f %% (%.0f-%.0f)" % (row[key], row[key + "_low"], row[key + "_high"])
            for key in ("watch_never", "monitor", "monitor_never")
        ]
        share = 100.0 * row["monitor"] / row["watch_never"] if row["watch_never"] > 0 else float("nan")
        lines.append("| %s | %s | %.0f %% |" % (name, " | ".join(cells), share))
    lines += ["", "(median of the rounds, lowest-highest in brackets)"]
    return lines


if __name__ == "__main__":
    sys.exit(main())
