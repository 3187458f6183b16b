"""Every command's agent half, in this process through the session, and its renderer on what it sent.

Requests are built by the commands' own parsers from command lines; the events
the agent sends are rendered by the client's ``SPEC.render`` (no exception, no
control character reaches the text). Golden text for a few of them:
``test_recorded_golden.py``.
"""

from __future__ import annotations

import importlib
import io
import threading
from collections.abc import Iterator
from typing import Any, Callable

import hook_shapes as S
import pytest
from agent_harness import InProcessAgent, run_untraced

from flight_profiler.render.console import make_console

KEEP = [S.Shapes(9), S.Shapes(10)]  # live instances for vmtool -a getInstances


def _nothing() -> None:
    return None


def _call_plain_a_few_times() -> None:
    for n in range(3):
        S.plain(n)


def _call_plain_untraced() -> None:
    run_untraced(_call_plain_a_few_times)


# (command, command line, what the application does once the command is in place)
LINES: list[Any] = [
    ("sc", "hook_shapes.Shapes", _nothing),
    ("sc", "-d hook_shapes.Shapes", _nothing),
    ("sm", "hook_shapes.Shapes.*", _nothing),
    ("sm", "hook_shapes.Shapes.method -d", _nothing),
    ("source", "hook_shapes plain", _nothing),
    ("source", "hook_shapes Shapes method", _nothing),
    ("getglobal", "hook_shapes BASE", _nothing),
    ("module", __file__, _nothing),
    ("complete", "module hook_sh", _nothing),
    ("mem", "summary --limit 5", _nothing),
    ("vmtool", "-a forceGc", _nothing),
    ("vmtool", "-a getInstances -c hook_shapes Shapes", _nothing),
    ("vmtool", "-a getInstances -c hook_shapes Shapes -e len(instances)", _nothing),
    ("vmtool", "-a referenceAnalyze -c hook_shapes Shapes -n 2", _nothing),
    ("logger", "", _nothing),
    ("thread", "", _nothing),
    ("thread", "-n 2", _nothing),
    ("line", "hook_shapes plain 14 -n 1", _call_plain_untraced),
    ("line", "hook_shapes plain 14 --expr a,b -n 2", _call_plain_untraced),
    ("monitor", "hook_shapes plain -c 0.05 -n 1", _call_plain_a_few_times),
    ("stack", "hook_shapes plain -n 1", _call_plain_a_few_times),
    ("tt", "-t hook_shapes coro -n 1", lambda: __import__("asyncio").run(S.coro(1))),
    ("trace", "hook_shapes outer_class -n 1 -i 0", lambda: S.outer_class(3)),
    ("watch", "hook_shapes agen -n 1 -x 3", lambda: __import__("asyncio").run(_drain(S.agen(2)))),
]


async def _drain(agen: Any) -> None:
    async for _ in agen:
        pass


@pytest.fixture(scope="module")
def agent() -> Iterator[InProcessAgent]:
    agent = InProcessAgent()
    yield agent
    agent.close()


def _spec(command: str) -> Any:
    return importlib.import_module("flight_profiler.commands.%s.client" % command).SPEC


def _rendered(spec: Any, events: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    console = make_console(color=False, file=out, width=120)
    for event in events:
        renderable = spec.render(event)
        if renderable is not None:
            console.print(renderable)
    return out.getvalue()


@pytest.mark.parametrize(
    ("command", "line", "act"), LINES, ids=[" ".join(p.values[:2] if hasattr(p, "values") else p[:2]) for p in LINES]
)
def test_a_command_runs_in_process_and_its_events_render(
    agent: InProcessAgent, command: str, line: str, act: Callable[[], Any]
) -> None:
    spec = _spec(command)
    request = spec.parse_line(line)
    job = agent.start(command, request)
    if act is not _nothing:
        agent.wait_for(job, "start")
        act()
    events, end = agent.finish(job)
    assert end["status"] == "ok", end
    assert events, "no event"
    text = _rendered(spec, events)
    assert text.strip() and not any(ch < " " and ch != "\n" for ch in text)


def test_console_runs_statements_and_shows_their_output(agent: InProcessAgent) -> None:
    spec = _spec("console")
    events, end = agent.run("console", {"source": "print('hi')\nvalue = [1, 2]\nvalue"})
    assert end["status"] == "ok"
    assert "hi" in _rendered(spec, events) and "[1, 2]" in _rendered(spec, events)
    events, end = agent.run("console", {"source": "1 / 0"})
    assert end["status"] == "ok" and "ZeroDivisionError" in _rendered(spec, events)
    end = agent.run("console", {"source": "def (:"})[1]
    assert end["status"] == "error" and end["error"].startswith("SyntaxError")


def test_getglobal_evaluates_an_expression_on_the_value(agent: InProcessAgent) -> None:
    events, end = agent.run("getglobal", {"module": "hook_shapes", "field": "BASE", "expr": "target * 2"})
    assert end["status"] == "ok" and "200" in repr(events)


def test_thread_names_a_thread_blocked_on_a_lock(agent: InProcessAgent) -> None:
    lock = threading.Lock()
    lock.acquire()
    holder = threading.Thread(target=lock.acquire, name="h15-waiter", daemon=True)
    holder.start()
    try:
        events, end = agent.run("thread", _spec("thread").parse_line("-b"))
        assert end["status"] == "ok"
        _rendered(_spec("thread"), events)
    finally:
        lock.release()
        holder.join(10)
