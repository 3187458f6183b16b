"""``mcp.executor.Executor``: one call at a time per target, results collected, the runner always closed.

The runner is replaced by a stand-in that plays a script (results, errors, notes, a wait); the parsing,
read-only judgement, per-pid lock, outcome and detach logic are the real ones.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from flight_profiler.cli.output import JSON_SCHEMA_VERSION
from flight_profiler.cli.runner import Detached
from flight_profiler.errors import FlightProfilerError, UsageError
from flight_profiler.mcp import executor
from flight_profiler.mcp.executor import Executor


class FakeRunner:
    """Plays ``SCRIPT`` into the collector it was given, as the real runner reports a command's output."""

    made: list[FakeRunner] = []
    script: list[tuple[str, Any]] = []
    release: threading.Event | None = None
    entered: threading.Event | None = None

    def __init__(self, pid: int, output: Any, options: Any) -> None:
        self.pid, self.output, self.options = pid, output, options
        self.time_limit: float | None = None
        self.closed = False
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.lines: list[str] = []
        FakeRunner.made.append(self)

    def execute_request(self, spec: Any, request: dict[str, Any]) -> bool:
        self.requests.append((spec.name, request))
        if FakeRunner.entered is not None:
            FakeRunner.entered.set()
        if FakeRunner.release is not None:
            assert FakeRunner.release.wait(10)
        self._play()
        return True

    def execute(self, line: str) -> bool:
        self.lines.append(line)
        self._play()
        return True

    def _play(self) -> None:
        for kind, value in FakeRunner.script:
            if kind == "result":
                self.output.result("cmd", value, None)
            elif kind == "error":
                self.output.error("cmd", value)
            elif kind == "note":
                self.output.note(value)
            elif kind == "raise":
                raise value

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def fake_runner(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(executor, "Runner", FakeRunner)
    FakeRunner.made, FakeRunner.script, FakeRunner.release, FakeRunner.entered = [], [], None, None
    yield


def test_a_call_returns_what_the_command_produced_and_closes_its_runner() -> None:
    FakeRunner.script = [("result", {"value": 1}), ("error", "one expression failed"), ("result", {"value": 2})]
    out = Executor().run(4242, "getglobal __main__ CONFIG -x 2", 7.5)
    assert out["pid"] == 4242 and out["command"] == "getglobal" and out["line"] == "getglobal __main__ CONFIG -x 2"
    assert out["results"] == [{"value": 1}, {"value": 2}] and out["errors"] == ["one expression failed"]
    assert out["stopped"] == "done" and out["elapsed_s"] >= 0 and out["schema"] == JSON_SCHEMA_VERSION
    (runner,) = FakeRunner.made
    assert runner.requests == [("getglobal", runner.requests[0][1])] and runner.requests[0][1]["expand"] == 2
    assert runner.time_limit == 7.5 and runner.options.timeout == 7.5  # attach bounded by the call's limit
    assert runner.closed


def test_argument_vectors_are_shown_as_a_shell_would_take_them() -> None:
    out = Executor().run_argv(1, ["watch", "__main__", "f", "-f", "args[0] == 'a b'"], 100.0)
    assert out["line"] == "watch __main__ f -f 'args[0] == '\"'\"'a b'\"'\"''"
    assert FakeRunner.made[0].requests[0][1]["filter"] == "args[0] == 'a b'"
    assert FakeRunner.made[0].options.timeout == executor.ATTACH_TIMEOUT


def test_a_time_limit_that_cut_the_command_short_is_said() -> None:
    FakeRunner.script = [("result", {"n": 1}), ("note", "cancelled")]
    assert Executor().run(1, "stack", 5)["stopped"] == "time limit"


def test_errors_without_any_result_are_the_calls_error() -> None:
    FakeRunner.script = [("error", "no such module 'x'"), ("error", "and another")]
    with pytest.raises(FlightProfilerError, match="no such module 'x'; and another"):
        Executor().run(1, "getglobal x y", 5)
    assert FakeRunner.made[0].closed


def test_the_runner_is_closed_when_the_command_raises() -> None:
    FakeRunner.script = [("raise", FlightProfilerError("results truncated"))]
    ex = Executor()
    with pytest.raises(FlightProfilerError, match="truncated"):
        ex.run(1, "stack", 5)
    assert FakeRunner.made[0].closed and ex._active == {}


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("console -c 1", "would change the target"),
        ("watch m f -f cost>1", "runs Python in the target (filter)"),
        ("vmtool -a forceGc", "would change the target"),
    ],
)
def test_a_read_only_server_refuses_before_attaching(line: str, why: str) -> None:
    with pytest.raises(
        UsageError,
        match=r"'%s' %s, and this MCP server is read-only" % (line, why.replace("(", r"\(").replace(")", r"\)")),
    ):
        Executor(read_only=True).run(1, line, 5)
    assert FakeRunner.made == []
    assert Executor(read_only=True).run(1, "watch m f", 5)["command"] == "watch"


def test_one_call_per_target_at_a_time_and_abandon_closes_the_running_one() -> None:
    FakeRunner.release, FakeRunner.entered = threading.Event(), threading.Event()
    ex = Executor()
    first: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: first.update(ex.run(7, "stack", 30)))
    thread.start()
    assert FakeRunner.entered.wait(10)
    with pytest.raises(UsageError, match="another call to pid 7 is still running"):
        ex.run(7, "stack", 0.05)
    running = FakeRunner.made[0]
    ex.abandon(7)
    assert running.closed
    ex.abandon(8)  # nothing runs there: nothing to do
    FakeRunner.release.set()
    thread.join(10)
    assert first["command"] == "stack"
    FakeRunner.release = None
    assert ex.run(7, "stack", 5)["command"] == "stack"  # the lock was given back


def test_detach_never_injects_an_agent_just_to_remove_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "agent_running", lambda pid: False)
    out = Executor().detach(9, 5)
    assert out["results"] == [{"detached": False, "message": "no agent in pid 9: nothing to remove"}]
    assert out["command"] == "detach" and FakeRunner.made == []


def test_detach_reports_the_runners_last_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "agent_running", lambda pid: True)
    FakeRunner.script = [("note", "agent removed from pid 9"), ("raise", Detached())]
    out = Executor().detach(9, 5)
    assert out["results"] == [{"detached": True, "message": "agent removed from pid 9"}]
    assert FakeRunner.made[0].lines == ["detach"] and FakeRunner.made[0].closed


def test_a_detach_that_did_not_detach_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "agent_running", lambda pid: True)
    FakeRunner.script = [("error", "the agent did not answer")]
    with pytest.raises(FlightProfilerError, match="the agent did not answer"):
        Executor().detach(9, 5)
    FakeRunner.script = []
    with pytest.raises(FlightProfilerError, match="detach failed"):
        Executor().detach(9, 5)


def test_a_detach_not_confirmed_in_time_is_not_reported_as_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "agent_running", lambda pid: True)
    FakeRunner.script = [("error", "pid 9 did not confirm the detach within 5 s (...)"), ("raise", Detached(False))]
    out = Executor().detach(9, 5)
    assert out["results"] == [{"detached": False, "message": "pid 9 did not confirm the detach within 5 s (...)"}]
