"""Helpers for the instrumentation tests (watch, trace, tt, reload, hook removal)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator

from support import CliResult, RunningTarget, cli, start_target

TARGETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "targets")


def start_instr(python: str, reload_dir: str | None = None) -> RunningTarget:
    args = [reload_dir] if reload_dir else []
    target = start_target(python, "instr_target.py", *args)
    time.sleep(0.3)  # every caller has made a round: the functions are warm
    return target


def evaluate(pid: int, expression: str) -> Any:
    """The value of a Python expression evaluated in the target (through ``console``), as a Python value."""
    result = cli(pid, "console -c %s" % _quote("import __main__ as m\n" + expression))
    assert result.returncode == 0, (result.stdout, result.stderr)
    event = result.results[0]
    assert not event.get("error"), event["error"]
    return ast.literal_eval(event["value"]) if event["value"] is not None else None


def state(pid: int) -> dict[str, Any]:
    value: dict[str, Any] = evaluate(pid, "m.state()")
    return value


def assert_clean(pid: int, globals_before: list[str] | None = None) -> dict[str, Any]:
    """Nothing left behind in the target and nothing broken in it."""
    now = state(pid)
    assert now["hooks_gone"] == [], now
    assert now["errors"] == [], now
    assert now["logger"] == "the app's logger"
    assert now["monitoring"] == []
    if globals_before is not None:
        assert now["globals"] == globals_before  # nothing written into the target's namespace
    assert now["installed"] == []
    return now


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def cli_many(pid: int, commands: list[str], timeout: float = 60.0) -> list[CliResult]:
    """Run several CLI commands at once (each its own client process) and wait for all."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flight_profiler", str(pid), "--cmd", command, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append(CliResult(proc.returncode, out, err))
    return results


def of_kind(result: CliResult, kind: str, status: int = 0) -> list[dict[str, Any]]:
    """The events of ``kind``; ``status`` 1 where an expression or filter failed (the skill's exit status)."""
    assert result.returncode == status, (result.stdout, result.stderr)
    return [event for event in result.results if event.get("kind") == kind]


@dataclass
class Background:
    """A CLI running a long command; ``start`` is its first event (the hook is in place)."""

    proc: subprocess.Popen[str]
    start: dict[str, Any]

    def lines(self) -> list[dict[str, Any]]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def background(pid: int, command: str) -> Background:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flight_profiler", str(pid), "--cmd", command, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    record = json.loads(line)
    assert record["result"]["kind"] == "start", record
    return Background(proc, record["result"])


def instr_target_fixture() -> Any:
    """The module's ``target``: instr_target.py once per module on each interpreter found, its globals
    noted (``extra["globals"]``, for assert_clean), detached at the end and checked still healthy
    (every caller of its functions went on without an error). ``target = instr_target_fixture()``."""
    import pytest

    from interpreters import find_interpreters

    chosen = find_interpreters()

    @pytest.fixture(scope="module", params=chosen, ids=[name for name, _ in chosen])
    def each(request: pytest.FixtureRequest) -> Iterator[RunningTarget]:
        running = start_instr(request.param[1])
        try:
            running.extra["globals"] = state(running.pid)["globals"]
            yield running
            cli(running.pid, "detach")
            assert running.healthy(), "a caller in instr_target.py failed, or it no longer answers SIGUSR1"
        finally:
            running.stop()

    return each
