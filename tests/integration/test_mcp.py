"""``flight_profiler mcp`` driven by a real MCP client session (the official SDK) against real targets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Callable

import pytest

from flight_profiler.cli import registry
from flight_profiler.cli.demo import SERVICE
from interpreters import find_interpreters, spot_interpreters
from json_schemas import problems, validator
from support import cli

mcp = pytest.importorskip("mcp", reason="the mcp extra is not installed (pip install 'flight_profiler[mcp]')")
anyio = pytest.importorskip("anyio")

INTERPRETERS = find_interpreters()
EDGES = spot_interpreters()  # the any_interpreter tier's: oldest and newest (tests/interpreters.py)
SRC = os.path.dirname(os.path.dirname(os.path.abspath(str(__import__("flight_profiler").__file__))))
ALWAYS = {"ps", "stack", "getglobal", "vmtool", "module", "detach", "command"}
WHEN_REGISTERED = (
    "watch",
    "trace",
    "tt",
    "mem",
    "perf",
    "thread",
    "monitor",
    "logger",
    "sc",
    "sm",
    "source",
    "line",
    "dashboard",
)
CHANGES = {"vmtool", "tt", "command", "logger"}
# tools that take Python run in the target (expr, filter) or write a file, or hook functions: never read-only
NOT_READ_ONLY = {"getglobal", "vmtool", "watch", "trace", "tt", "perf", "command", "detach", "monitor", "line"}


@asynccontextmanager
async def session(*options: str) -> AsyncIterator[Any]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "flight_profiler", "mcp", *options],
        # the SDK passes a minimal environment; COVERAGE_*: ./dev test measures the server too (and its cache)
        env={"PYTHONPATH": SRC, "PATH": os.environ.get("PATH", ""), **_coverage_env()},
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


def _coverage_env() -> dict[str, str]:
    """COVERAGE_*, and the run's own bytecode cache (conftest): not the user's ~/.cache."""
    return {
        name: value for name, value in os.environ.items() if name.startswith("COVERAGE_") or name == "XDG_CACHE_HOME"
    }


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    anyio.run(scenario)


def structured(result: Any) -> dict[str, Any]:
    """The tool's structured result (attribute names differ between SDK 1.x and 2.x)."""
    assert not _is_error(result), _text(result)
    data = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    assert isinstance(data, dict), result
    assert not list(validator("mcp-result").iter_errors(data)), data
    for item in data["results"]:
        if data["command"] != "detach":
            assert not problems({"schema": 1, "command": data["command"], "result": item}), item
    return data


def _is_error(result: Any) -> bool:
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


def _text(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def error_text(result: Any) -> str:
    assert _is_error(result), result
    return _text(result)


def _annotation(tool: Any, name: str) -> Any:
    hints = tool.annotations
    return getattr(hints, name, None) if hasattr(hints, name) else getattr(hints, _snake(name))


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def test_tools_follow_the_registry_and_mark_changes() -> None:
    async def scenario() -> None:
        async with session() as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        wanted = ALWAYS | {name for name in WHEN_REGISTERED if name in registry.COMMANDS}
        assert set(tools) == wanted
        for name, tool in tools.items():
            schema = getattr(tool, "input_schema", None) or tool.inputSchema
            assert "timeout_s" in schema["properties"], name  # every call is bounded
            assert name == "ps" or "pid" in schema["required"], name
            changes = name in CHANGES
            assert ("CHANGES THE TARGET" in tool.description.upper()) == changes, name
            assert _annotation(tool, "destructiveHint") is changes, name
            assert _annotation(tool, "readOnlyHint") is (not changes and name not in NOT_READ_ONLY), name

    run(scenario)


@pytest.fixture(scope="module", params=EDGES, ids=[i for i, _ in EDGES])
def demo(request: pytest.FixtureRequest) -> Iterator[int]:
    proc = subprocess.Popen([request.param[1], SERVICE], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().startswith("demo service running")
    yield proc.pid
    cli(proc.pid, "detach")
    proc.kill()
    proc.wait(10)
    proc.stdout.close()


def test_tools_against_a_real_target(demo: int) -> None:
    async def scenario() -> None:
        async with session() as client:
            call = client.call_tool
            [listing] = structured(await call("ps", {"pids": [demo]}))["results"]
            assert [(p["pid"], p["attachable"]) for p in listing["processes"]] == [(demo, True)]

            threads = structured(await call("stack", {"pid": demo}))["results"][0]["threads"]
            assert threads[0]["name"] == "MainThread"

            got = structured(await call("getglobal", {"pid": demo, "module": "__main__", "field": "SETTINGS"}))
            assert got["line"] == "getglobal __main__ SETTINGS -x 1" and got["stopped"] == "done"
            assert got["results"][0]["value"]["len"] == 3
            got = structured(
                await call(
                    "getglobal",
                    {"pid": demo, "module": "__main__", "field": "SETTINGS", "expr": "target['retry']['attempts']"},
                )
            )
            assert got["results"][0]["value"] == {"t": "int", "v": 3}
            # the arguments reach the parser as words, not as text split again: a leading "-" and words
            # that look like options stay in the expression
            expr = "-target['retry']['attempts'] if ' -x 9 -v' else 0"
            got = structured(
                await call("getglobal", {"pid": demo, "module": "__main__", "field": "SETTINGS", "expr": expr})
            )
            assert got["results"][0]["value"] == {"t": "int", "v": -3}
            assert "did you mean SETTINGS" in error_text(
                await call("getglobal", {"pid": demo, "module": "__main__", "field": "SETTING"})
            )
            bad = await call("getglobal", {"pid": demo, "module": "__main__", "field": "SETTINGS", "expand": 0})
            assert "-x must be 1..4 or -1" in error_text(bad)  # the CLI's own checks apply

            args = {"pid": demo, "action": "getInstances", "module": "__main__", "cls": "Inventory"}
            assert structured(await call("vmtool", args))["results"][0]["count"] == 1
            assert structured(await call("vmtool", {"pid": demo, "action": "forceGc"}))["results"][0]["collected"] >= 0
            assert structured(await call("module", {"pid": demo, "filepath": SERVICE}))["results"][0]["modules"] == [
                "__main__"
            ]
            console = structured(await call("command", {"pid": demo, "line": "console -c '6 * 7'"}))
            assert console["results"] == [{"output": "", "value": "42", "error": None}]
            assert "interactive" in error_text(await call("command", {"pid": demo, "line": "console"}))
            assert "unknown command" in error_text(await call("command", {"pid": demo, "line": "nosuch"}))

            gone = structured(await call("detach", {"pid": demo}))["results"][0]
            assert gone["detached"] is True
            again = structured(await call("detach", {"pid": demo}))["results"][0]
            assert again["detached"] is False  # nothing injected just to remove it
            [listing] = structured(await call("ps", {"pids": [demo]}))["results"]
            assert listing["processes"][0]["agent"] is False

    run(scenario)


def test_read_only_refuses_what_changes_the_target(demo: int) -> None:
    async def scenario() -> None:
        async with session("--read-only") as client:
            call = client.call_tool
            assert "read-only" in error_text(await call("vmtool", {"pid": demo, "action": "forceGc"}))
            assert "read-only" in error_text(await call("command", {"pid": demo, "line": "console -c 1"}))
            if "tt" in registry.COMMANDS:
                replay = await call("tt", {"pid": demo, "action": "replay", "index": 1000})
                assert "read-only" in error_text(replay)
            args = {"pid": demo, "action": "getInstances", "module": "__main__", "cls": "Inventory"}
            assert structured(await call("vmtool", args))["results"][0]["count"] == 1
            args = {"pid": demo, "action": "referenceAnalyze", "module": "__main__", "cls": "Inventory", "limit": 1}
            [why] = structured(await call("vmtool", args))["results"]  # only reads: allowed
            assert len(why["chains"]) == 1 and why["chains"][0]["object"].startswith("__main__.Inventory at 0x")

    run(scenario)


def test_read_only_refuses_code_and_files(demo: int, tmp_path: Any) -> None:
    """Under --read-only nothing the model passes runs in the target, and nothing is written."""
    marker = tmp_path / "ran"
    code = "__import__('os').system('id > %s')" % marker
    written = tmp_path / "stacks.txt"

    async def scenario() -> None:
        async with session("--read-only") as client:
            call = client.call_tool
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            base = {"pid": demo, "module": "__main__", "field": "SETTINGS"}
            assert "read-only" in error_text(await call("getglobal", {**base, "expr": code}))
            assert "read-only" in error_text(
                await call("command", {"pid": demo, "line": 'getglobal __main__ SETTINGS -e "%s"' % code})
            )
            args = {"pid": demo, "action": "getInstances", "module": "__main__", "cls": "Inventory", "expr": code}
            assert "read-only" in error_text(await call("vmtool", args))
            assert "read-only" in error_text(await call("command", {"pid": demo, "line": "stack -f %s" % written}))
            for name, extra in (("watch", {"filter": code}), ("trace", {"filter": code}), ("watch", {"expr": code})):
                if name in tools:
                    hooked = {"pid": demo, "module": "__main__", "cls": "Inventory", "method": "reserve", **extra}
                    assert "read-only" in error_text(await call(name, hooked)), name
            if "tt" in tools:
                recorded = {"pid": demo, "action": "record", "module": "__main__", "cls": "Inventory"}
                assert "read-only" in error_text(await call("tt", {**recorded, "method": "reserve", "filter": code}))
            if "perf" in tools:
                profiled = {"pid": demo, "duration_s": 1, "filepath": str(tmp_path / "flame.svg")}
                assert "read-only" in error_text(await call("perf", profiled))
            # what only reads still works
            assert structured(await call("getglobal", base))["results"][0]["value"]["len"] == 3

    run(scenario)
    assert "untrusted data" in _instructions()
    assert not marker.exists() and not written.exists()
    assert not (tmp_path / "flame.svg").exists()


def _instructions() -> str:
    from flight_profiler.mcp.server import INSTRUCTIONS

    return INSTRUCTIONS


def test_instrumentation_and_profiling_tools(demo: int, tmp_path: Any) -> None:
    missing = [name for name in WHEN_REGISTERED if name not in registry.COMMANDS]
    if missing:
        pytest.skip("not in this build: %s" % ", ".join(missing))

    async def scenario() -> None:
        async with session() as client:
            call = client.call_tool
            args = {"pid": demo, "module": "__main__", "cls": "Inventory", "method": "reserve", "count": 2}
            watched = structured(await call("watch", args))
            assert [event["kind"] for event in watched["results"]] == ["start", "call", "call", "end"]
            assert watched["stopped"] == "done" and watched["line"].endswith("-n 2")
            traced = structured(
                await call("trace", {"pid": demo, "module": "__main__", "method": "handle", "depth": 2, "count": 1})
            )
            assert traced["results"][1]["root"]["name"] == "handle"

            recorded = structured(await call("tt", {"pid": demo, "action": "record", **args}))
            first = recorded["results"][1]["index"]
            listed = structured(await call("tt", {"pid": demo, "action": "list"}))["results"][0]
            assert first in [row["index"] for row in listed["records"]]
            shown = structured(await call("tt", {"pid": demo, "action": "show", "index": first}))["results"][0]
            assert shown["kind"] == "detail" and shown["method"] == "__main__.Inventory.reserve"
            assert "needs the record's index" in error_text(await call("tt", {"pid": demo, "action": "show"}))
            assert (
                structured(await call("tt", {"pid": demo, "action": "delete_all"}))["results"][0]["kind"] == "deleted"
            )

            summary = structured(await call("mem", {"pid": demo, "action": "summary", "limit": 3}))["results"][0]
            assert len(summary["types"]) == 3
            path = str(tmp_path / "flame.svg")
            profile = structured(await call("perf", {"pid": demo, "duration_s": 1, "filepath": path}))["results"][0]
            assert profile["path"] == path and os.path.getsize(path) > 0 and profile["samples"] > 0
            assert "shorter than timeout_s" in error_text(
                await call("perf", {"pid": demo, "duration_s": 5, "timeout_s": 2})
            )

    run(scenario)


def test_every_call_returns_in_time(demo: int) -> None:
    """A job still running at timeout_s is cancelled (results kept); a target that never answers is abandoned."""

    async def scenario() -> None:
        async with session() as client:
            call = client.call_tool
            if "watch" in registry.COMMANDS:  # a function nobody calls: only the time limit can end it
                args = {"pid": demo, "module": "__main__", "cls": "Inventory", "method": "__init__", "timeout_s": 1}
                idle = structured(await call("watch", args))
                assert idle["stopped"] == "time limit" and [e["kind"] for e in idle["results"]] == ["start"]
            if "mem" in registry.COMMANDS:
                got = structured(await call("mem", {"pid": demo, "action": "diff", "interval_s": 60, "timeout_s": 2}))
                assert got["stopped"] == "time limit" and got["results"][0]["phase"] == "first"

    run(scenario)


def test_a_stuck_call_is_abandoned(demo: int, request: pytest.FixtureRequest) -> None:
    """Code that ignores cancellation (a console sleep) cannot hold the call past its bound."""
    if request.node.callspec.params["demo"] != EDGES[-1]:
        pytest.skip("client-side logic: checked on one interpreter")

    async def scenario() -> None:
        async with session() as client:
            started = time.monotonic()
            line = "console -c 'import time; time.sleep(10)'"
            stuck = await client.call_tool("command", {"pid": demo, "line": line, "timeout_s": 1})
            # the agent answers at once, naming the thread still blocked in C (services/usercode.py)
            assert "still busy outside Python: flight_profiler-job-console" in error_text(stuck)
            assert time.monotonic() - started < 9.5  # 1 s + the attach bound (1 s) + 5 s grace
            args = {"pid": demo, "module": "__main__", "field": "SETTINGS"}
            assert structured(await client.call_tool("getglobal", args))["results"]

    run(scenario)


def test_old_python_is_refused_plainly() -> None:
    old = [path for name, path in INTERPRETERS if name in ("3.8", "3.9")]
    if not old:
        pytest.skip("no Python < 3.10 here")
    proc = subprocess.run(
        [old[0], "-m", "flight_profiler", "mcp"],
        env=dict(os.environ, PYTHONPATH=SRC),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "needs Python >= 3.10" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
