"""The thread, monitor and logger MCP tools against a real target (the official SDK's client)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flight_profiler.cli import registry
from interpreters import find_interpreters
from support import cli, start_target

pytest.importorskip("mcp", reason="the mcp extra is not installed (pip install 'flight_profiler[mcp]')")
from test_mcp import error_text, run, session, structured

INTERPRETERS = find_interpreters()
NEWEST = INTERPRETERS[-1:]


@pytest.fixture(scope="module", params=NEWEST, ids=[i for i, _ in NEWEST])
def pid(request: pytest.FixtureRequest) -> Iterator[int]:
    target = start_target(request.param[1], "diag_target.py")
    yield target.pid
    cli(target.pid, "detach")
    target.stop()


def test_diagnostic_tools(pid: int) -> None:
    missing = [name for name in ("thread", "monitor", "logger", "sc", "sm", "source") if name not in registry.COMMANDS]
    if missing:
        pytest.skip("not in this build: %s" % ", ".join(missing))

    async def scenario() -> None:
        async with session() as client:
            call = client.call_tool
            busiest = structured(await call("thread", {"pid": pid, "view": "busiest", "top": 1, "interval_ms": 300}))
            assert busiest["results"][0]["threads"][0]["name"] == "cpu-hog"
            graph = structured(await call("thread", {"pid": pid, "view": "blocking"}))["results"][0]
            assert len(graph["cycles"]) == 2
            assert "needs thread_id" in error_text(await call("thread", {"pid": pid, "view": "one"}))

            args = {"pid": pid, "module": "__main__", "cls": "Service", "method": "work", "cycle_s": 0.5}
            monitored = structured(await call("monitor", {**args, "cycles": 1}))
            assert [event["kind"] for event in monitored["results"]] == ["start", "cycle", "end"]
            assert "shorter than timeout_s" in error_text(await call("monitor", {**args, "timeout_s": 0.5}))

            changed = structured(
                await call("logger", {"pid": pid, "name": "diag.app.db", "level": "DEBUG", "for_s": 0.5})
            )
            assert [event["kind"] for event in changed["results"]] == ["changed", "reverted"]
            tree = structured(await call("logger", {"pid": pid, "name": "diag.app"}))["results"][0]
            assert [logger["name"] for logger in tree["loggers"]] == ["diag.app", "diag.app.db"]

            found = structured(await call("sm", {"pid": pid, "pattern": "*.Service.*", "detail": True}))["results"][0]
            assert found["matches"][0]["signature"] == "(self, n)"
            assert "no loaded class" in error_text(await call("sc", {"pid": pid, "pattern": "NoSuch"}))
            shown = structured(await call("source", {"pid": pid, "module": "__main__", "cls": "Service"}))
            assert shown["results"][0]["status"] == "matches"

        async with session("--read-only") as client:
            refused = await client.call_tool("logger", {"pid": pid, "name": "diag.app", "level": "DEBUG"})
            assert "read-only" in error_text(refused)

    run(scenario)
