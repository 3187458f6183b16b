"""``cli.runner.Runner`` on the paths a live agent rarely takes: Ctrl-C, a time limit, a lost agent, a
malformed result, a refused outside read answered by the agent already there, detach. The connection
is a stand-in that plays a script; the runner's own logic and the commands' specs are the real ones."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from flight_profiler.attach.attacher import AttachOptions
from flight_profiler.attach.connection import Cancelled, ConnectionLost, Goodbye, NoAnswer
from flight_profiler.cli import runner as runner_module
from flight_profiler.cli.runner import AgentLost, Detached, Runner
from flight_profiler.errors import CommandError, TargetError
from flight_profiler.mcp.executor import Collector


class FakeConnection:
    def __init__(
        self, events: list[Any], cancel_events: list[Any] | None = None, busy: str = "", confirmed: bool = True
    ) -> None:
        self.script = events
        self.cancel_script = cancel_events or []
        self.busy = busy
        self.confirmed = confirmed
        self.detach_waits: list[float] = []
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.cancelled = threading.Event()
        self.closed = False
        self.detached = False

    def start(self, command: str, request: dict[str, Any]) -> int:
        self.started.append((command, request))
        return len(self.started)

    def events(self, job: int, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        script = self.cancel_script if self.cancelled.is_set() else self.script
        for item in script:
            if item == "wait-for-cancel":
                assert self.cancelled.wait(10)
                raise Cancelled()
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self, job: int) -> None:
        self.cancelled.set()

    def detach(self, timeout: float) -> Goodbye:
        self.detach_waits.append(timeout)
        if isinstance(self.busy, BaseException):
            raise self.busy
        self.detached = True
        return Goodbye(self.confirmed, self.busy)

    def close(self) -> None:
        self.closed = True


def _runner(conn: FakeConnection | None, pid: int | None = None) -> tuple[Runner, Collector]:
    out = Collector()
    runner = Runner(pid or os.getpid(), out, AttachOptions())
    runner._conn = conn  # type: ignore[assignment]  # the stand-in plays the agent
    return runner, out


@pytest.fixture
def dead_pid() -> int:
    """A pid that existed and is gone (reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_results_reach_the_output_and_a_failed_expression_fails_the_command() -> None:
    conn = FakeConnection([{"value": 1}, {"error": "NameError: x"}])
    runner, out = _runner(conn)
    assert runner.execute("getglobal __main__ X -x 2") is False  # the agent reported a failed expression
    assert conn.started == [("getglobal", conn.started[0][1])] and conn.started[0][1]["expand"] == 2
    assert out.results == [{"value": 1}, {"error": "NameError: x"}] and out.errors == []


def test_bad_lines_are_one_line_errors() -> None:
    runner, out = _runner(FakeConnection([]))
    assert runner.execute("   ") is True
    assert runner.execute("getglobal 'open") is False
    assert runner.execute("nosuch x") is False
    assert out.errors[0].startswith("cannot parse the line: no closing quote")
    assert out.errors[1] == "unknown command 'nosuch'; 'help' lists them"


def test_an_os_error_on_our_side_is_one_line() -> None:
    conn = FakeConnection([PermissionError(13, "Permission denied")])
    runner, out = _runner(conn)
    assert runner.execute("getglobal m x") is False
    assert out.errors == ["getglobal failed: [Errno 13] Permission denied"]


def test_ctrl_c_cancels_the_job_and_says_what_the_agent_answered() -> None:
    conn = FakeConnection(
        [{"n": 1}, KeyboardInterrupt()], cancel_events=[CommandError("filter still in C on thread 7")]
    )
    runner, out = _runner(conn)
    runner.execute("watch m f")
    assert runner.interrupted and conn.cancelled.is_set()
    assert out.notes == ["filter still in C on thread 7"]
    conn = FakeConnection([KeyboardInterrupt()], cancel_events=[{"late": 1}])
    runner, out = _runner(conn)
    runner.execute("watch m f")
    assert out.notes == ["cancelled"]


def test_a_cancel_the_agent_did_not_answer_in_time_is_not_called_done() -> None:
    conn = FakeConnection([{"n": 1}, KeyboardInterrupt()], cancel_events=[NoAnswer("no answer")])
    runner, out = _runner(conn)
    runner.execute("watch m f")
    assert runner.interrupted and conn.cancelled.is_set()
    assert out.notes == [
        "cancel sent; no answer within 2 s (busy threads keep the agent from running): the job ends when it runs"
    ]


def test_a_time_limit_cancels_the_job_and_keeps_what_came() -> None:
    conn = FakeConnection([{"n": 1}, "wait-for-cancel"])
    runner, out = _runner(conn)
    runner.time_limit = 0.05
    assert runner.execute("watch m f") is True
    assert out.results == [{"n": 1}] and out.notes == ["cancelled"]


def test_a_malformed_result_is_a_protocol_error_in_text_mode(capsys: pytest.CaptureFixture[str]) -> None:
    conn = FakeConnection([{"kind": "call"}])  # a watch call without any of its fields
    runner, out = _runner(conn)
    out.as_json = False
    assert runner.execute("watch m f") is False
    assert out.errors == ["the agent sent a malformed watch result (KeyError)"]


def test_a_lost_agent_is_explained_and_never_silently_replaced(dead_pid: int) -> None:
    conn = FakeConnection([ConnectionLost("closed")])
    runner, out = _runner(conn, pid=dead_pid)
    assert runner.execute("getglobal m x") is False
    assert out.errors == ["pid %d exited" % dead_pid] and conn.closed
    assert runner.lost == "pid %d exited" % dead_pid
    with pytest.raises(AgentLost, match="exited"):
        runner.connection()
    assert not runner.target_alive()


def test_a_lost_agent_of_a_live_target_was_detached_by_someone_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "existing_agent", lambda pid, *args: None)
    monkeypatch.setattr(runner_module, "_exited_soon", lambda pid, wait=0.5: False)
    runner, out = _runner(FakeConnection([ConnectionLost("closed")]))
    runner.execute("getglobal m x")
    assert out.errors == ["the agent was detached by another client"]
    other = FakeConnection([])
    monkeypatch.setattr(runner_module, "existing_agent", lambda pid, *args: other)
    monkeypatch.setattr(runner_module, "DETACH_SETTLE", 0.3)
    runner, out = _runner(FakeConnection([ConnectionLost("closed")]))
    runner.execute("getglobal m x")
    assert out.errors == ["lost the connection to the agent in pid %d (a new agent answers there)" % os.getpid()]
    assert other.closed


def test_the_detaching_agent_answering_for_a_moment_is_not_a_new_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A detach shuts the sessions before the listener: the agent that is going away may still answer once."""
    answers = [FakeConnection([]), None]
    monkeypatch.setattr(runner_module, "existing_agent", lambda pid, *args: answers.pop(0))
    monkeypatch.setattr(runner_module, "_exited_soon", lambda pid, wait=0.5: False)
    runner, out = _runner(FakeConnection([ConnectionLost("closed")]))
    runner.execute("getglobal m x")
    assert out.errors == ["the agent was detached by another client"] and answers == []


def test_a_refused_outside_read_is_answered_by_the_agent_already_there(monkeypatch: pytest.MonkeyPatch) -> None:
    from flight_profiler.commands.stack import client as stack_client

    def refused(request: dict[str, Any], context: Any) -> Iterator[dict[str, Any]]:
        raise TargetError("py-spy may not read pid %d" % context.pid)
        yield {}

    spec = stack_client.SPEC._replace(run_local=refused)
    conn = FakeConnection([{"threads": []}])
    runner, out = _runner(None)
    monkeypatch.setattr(runner_module, "existing_agent", lambda pid, timeout=None: conn)
    assert runner.execute_request(spec, spec.parse_line("")) is True
    assert conn.started and conn.started[0][0] == "stack" and out.results == [{"threads": []}]
    monkeypatch.setattr(runner_module, "existing_agent", lambda pid, timeout=None: None)
    runner, out = _runner(None)
    assert runner.execute_request(spec, spec.parse_line("")) is False
    assert out.errors == ["py-spy may not read pid %d" % os.getpid()]  # no agent there: never injects one


def test_detach_removes_the_agent_or_says_there_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = FakeConnection([], busy="a filter still runs in thread 9")
    runner, out = _runner(conn)
    with pytest.raises(Detached) as done:
        runner._dispatch("detach", "")
    assert done.value.confirmed is True
    assert conn.detached and runner._conn is None
    assert conn.detach_waits == [runner.attach_options.timeout]  # --timeout governs the wait for the goodbye
    assert out.notes == [
        "detached: the agent and its hooks are gone from pid %d" % os.getpid(),
        "a filter still runs in thread 9",
    ]
    monkeypatch.setattr(runner_module, "existing_agent", lambda pid, *args: None)
    runner, out = _runner(None)
    runner.detach()
    assert out.notes == ["no agent in pid %d: nothing to remove" % os.getpid()]


def test_a_detach_the_agent_did_not_confirm_in_time_is_an_error_not_a_claim() -> None:
    conn = FakeConnection([], confirmed=False)
    runner, out = _runner(conn)
    with pytest.raises(Detached) as done:
        runner._dispatch("detach", "")
    assert done.value.confirmed is False and runner._conn is None
    assert out.notes == []
    assert out.errors == [
        "pid %d did not confirm the detach within %g s (busy threads or a held GIL keep the agent "
        "from running): it removes itself and its hooks when it runs; `flight_profiler ps %d` says whether it "
        "is gone" % (os.getpid(), runner.attach_options.timeout, os.getpid())
    ]


def test_detach_of_an_agent_that_just_went_away(dead_pid: int) -> None:
    conn = FakeConnection([], busy=ConnectionLost("closed"))  # type: ignore[arg-type]
    runner, out = _runner(conn, pid=dead_pid)
    runner.detach()
    assert out.notes == ["pid %d exited: nothing to remove" % dead_pid] and conn.closed
