"""An MCP tool refuses arguments it does not have, and its schema says so. The SDK dropped them
silently: an agent's misspelt ``filter`` ran the watch unfiltered (every call captured), a misspelt
``count`` ran it to the default."""

from __future__ import annotations

import pytest

pytest.importorskip("mcp")
anyio = pytest.importorskip("anyio")

from flight_profiler.mcp import server  # noqa: E402


def test_every_tool_schema_forbids_unknown_arguments() -> None:
    tools = server.build()._tool_manager.list_tools()  # the SDK keeps no public accessor for them
    assert len(tools) >= 20
    assert [tool.name for tool in tools if tool.parameters.get("additionalProperties") is not False] == []


@pytest.mark.parametrize(
    ("name", "arguments", "unknown"),
    [
        ("watch", {"pid": 1, "module": "m", "method": "f", "condition": "args[0] > 1"}, "condition"),
        ("watch", {"pid": 1, "module": "m", "method": "f", "limits": 2}, "limits"),
        ("getglobal", {"pid": 1, "module": "m", "field": "X", "depth": 3}, "depth"),
        ("stack", {"pid": 1, "natve": True}, "natve"),
    ],
)
def test_a_call_with_an_unknown_argument_is_refused_before_it_runs(
    name: str, arguments: dict[str, object], unknown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[tuple[object, ...]] = []

    class Recorder:  # the executor every tool call goes through: nothing may reach it
        def __init__(self, read_only: bool) -> None:
            pass

        def __getattr__(self, method: str) -> object:
            def record(*args: object) -> dict[str, object]:
                ran.append((method, *args))
                return {}

            return record

    monkeypatch.setattr(server, "Executor", Recorder)
    built = server.build()
    with pytest.raises(Exception, match=r"(?s)%s.*Extra inputs are not permitted" % unknown) as refused:
        anyio.run(built.call_tool, name, arguments)
    assert type(refused.value).__name__ == "ToolError" and ran == []
    known = {key: value for key, value in arguments.items() if key != unknown}
    anyio.run(built.call_tool, name, known)  # the same call without it reaches the executor
    assert ran and ran[0][1] == 1, ran
