"""``mcp.server.Tools``: every call bounded by its time limit, errors as the SDK's ToolError, a call that
does not return abandoned. The executor is a stand-in (its own logic: test_mcp_executor_calls.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

pytest.importorskip("mcp")
anyio = pytest.importorskip("anyio")

from flight_profiler.errors import FlightProfilerError  # noqa: E402
from flight_profiler.mcp import server  # noqa: E402


class ToolError(Exception):
    pass


class FakeExecutor:
    def __init__(self, raises: Exception | None = None, block: threading.Event | None = None) -> None:
        self.raises = raises
        self.block = block
        self.calls: list[tuple[Any, ...]] = []
        self.abandoned: list[int] = []

    def _work(self, *call: Any) -> dict[str, Any]:
        self.calls.append(call)
        if self.block is not None:
            self.block.wait(10)
        if self.raises is not None:
            raise self.raises
        return {"ok": call}

    def run_argv(self, pid: int, argv: list[str], limit: float) -> dict[str, Any]:
        return self._work("argv", pid, argv, limit)

    def run(self, pid: int, line: str, limit: float) -> dict[str, Any]:
        return self._work("line", pid, line, limit)

    def detach(self, pid: int, limit: float) -> dict[str, Any]:
        return self._work("detach", pid, limit)

    def abandon(self, pid: int) -> None:
        self.abandoned.append(pid)


def _tools(executor: FakeExecutor, max_timeout: float = 30.0) -> Any:
    tools = server.Tools(max_timeout, False, ToolError)
    tools.executor = executor  # type: ignore[assignment]  # the stand-in plays the executor
    return tools


def test_the_time_limit_is_clamped_between_half_a_second_and_the_servers_maximum() -> None:
    executor = FakeExecutor()
    tools = _tools(executor, max_timeout=30.0)
    anyio.run(tools.call, 7, ["stack"], 0.01)
    anyio.run(tools.call_line, 7, "stack", 1e9)
    anyio.run(tools.detach_call, 7, 3.0)
    assert executor.calls == [("argv", 7, ["stack"], 0.5), ("line", 7, "stack", 30.0), ("detach", 7, 3.0)]


def test_errors_become_tool_errors_with_the_one_line_message() -> None:
    tools = _tools(FakeExecutor(raises=FlightProfilerError("no such module 'x'")))
    with pytest.raises(ToolError, match=r"^no such module 'x'$"):
        anyio.run(tools.call, 7, ["getglobal", "x", "y"], 5.0)


def test_a_call_that_does_not_return_is_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "GRACE", 0.0)
    monkeypatch.setattr(server, "ATTACH_TIMEOUT", 0.0)
    release = threading.Event()
    executor = FakeExecutor(block=release)
    tools = _tools(executor)
    try:
        with pytest.raises(ToolError, match=r"pid 7 did not answer within 0 s; the call was abandoned"):
            anyio.run(tools.call, 7, ["stack"], 0.5)
    finally:
        release.set()
    assert executor.abandoned == [7]


def test_ps_is_bounded_and_shaped_like_the_other_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "listing", lambda pids, attachable_only: {"processes": pids, "only": attachable_only})
    out = anyio.run(_tools(FakeExecutor()).ps, [3, 4], True, 1.0)
    assert out["command"] == "ps" and out["results"] == [{"processes": [3, 4], "only": True}] and out["errors"] == []

    def refused(pids: list[int], attachable_only: bool) -> dict[str, Any]:
        raise FlightProfilerError("cannot read /proc")

    monkeypatch.setattr(server, "listing", refused)
    with pytest.raises(ToolError, match="cannot read /proc"):
        anyio.run(_tools(FakeExecutor()).ps, None, False, 1.0)
