"""``stack -a`` finds asyncio tasks without looking through the heap (in process).

It used to fall back on ``gc.get_objects()`` whenever asyncio's registries were empty: always on
3.14+ (C tasks live in per-thread lists), and on every version when the program had imported asyncio
but ran no task. That one C call holds the GIL ~12 ms per million objects and builds a list as large.
Now the loops come from the threads' stacks (asyncio's run loop frame) and their tasks from
``asyncio.all_tasks(loop)``.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import Any, Iterator

import pytest

from agent_threads import in_thread
from flight_profiler.commands.stack import agent as stack_agent
from flight_profiler.services import cpuquota, usercode


def _no_heap_scan(*args: Any) -> Any:
    raise AssertionError("stack -a looked through the heap")


@pytest.fixture
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def sleeper() -> None:
        await asyncio.sleep(3600)

    async def main() -> None:
        sleepers = [asyncio.ensure_future(sleeper()) for _ in range(3)]
        for index, task in enumerate(sleepers):
            task.set_name("sleeper-%d" % index)  # type: ignore[attr-defined]
        started.set()
        await asyncio.gather(*sleepers, return_exceptions=True)  # until the teardown cancels them

    runner = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    runner.start()
    assert started.wait(10)
    yield loop
    for task in asyncio.all_tasks(loop):
        if task.get_name().startswith("sleeper-"):  # type: ignore[attr-defined]
            loop.call_soon_threadsafe(task.cancel)
    runner.join(10)
    loop.close()


def test_the_tasks_of_a_loop_running_in_another_thread_are_found_from_its_stack(
    running_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc, "get_objects", _no_heap_scan)
    assert stack_agent._running_loops() == [running_loop]
    names = {task.get_name() for task in stack_agent._tasks_of_running_loops(asyncio.tasks)}
    assert names >= {"sleeper-0", "sleeper-1", "sleeper-2"}


def test_no_task_anywhere_costs_no_heap_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc, "get_objects", _no_heap_scan)
    assert stack_agent._all_tasks() == []


class _Emitted:
    """What ``stack -a`` asks of its job context."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.waits: list[float] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def wait(self, seconds: float) -> bool:
        """The pause between two slices of reading; never cancelled here."""
        self.waits.append(seconds)
        time.sleep(seconds)
        return False


def _hostile_tasks(loop: asyncio.AbstractEventLoop, stop: threading.Event) -> list[asyncio.Task[Any]]:
    """A task whose get_name never returns while ``stop`` is clear, and one whose get_coro raises: a
    Task subclass's methods are the program's code."""

    class LoopingTask(asyncio.Task):  # type: ignore[type-arg]
        def get_name(self) -> str:
            while not stop.is_set():
                time.sleep(0.005)
            return "looped"

    class RaisingTask(asyncio.Task):  # type: ignore[type-arg]
        def get_coro(self) -> Any:
            raise RuntimeError("a hostile get_coro")

    made: list[asyncio.Task[Any]] = []
    ready = threading.Event()

    def make() -> None:
        made.extend(kind(asyncio.sleep(3600), loop=loop) for kind in (LoopingTask, RaisingTask))
        ready.set()

    loop.call_soon_threadsafe(make)
    assert ready.wait(10)
    return made


def test_a_task_whose_own_methods_hang_or_raise_is_shown_unread_and_the_others_are_read(
    running_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_name, get_coro and get_loop of a Task subclass ran on the job's thread with no budget: one
    that looped held ``stack -a`` (and the job's thread) for good."""
    monkeypatch.setattr(stack_agent, "TASK_READ_MS", 200.0, raising=False)
    monkeypatch.setattr(usercode, "AGENT_BUDGET_MS", 2000.0)
    stop = threading.Event()
    hostile = _hostile_tasks(running_loop, stop)
    ctx = _Emitted()
    try:
        started = time.monotonic()
        assert in_thread(lambda: stack_agent.run({}, ctx), agent=True) is None  # type: ignore[arg-type]
        took = time.monotonic() - started
    finally:
        stop.set()
        for task in hostile:
            running_loop.call_soon_threadsafe(task.cancel)
    assert took < 10
    (event,) = ctx.events
    tasks = {task["name"]: task for loop in event["loops"] for task in loop["tasks"]}
    # read, before and after the hostile ones (the three at one place: one entry that names the others)
    assert {"sleeper-0", "sleeper-1", "sleeper-2"} <= _named(event)
    unread = {name: task["coro"] for name, task in tasks.items() if name.startswith("<")}
    assert set(unread.values()) == {
        "<not read: its own code ran over the budget>",
        "<not read: it raised RuntimeError: a hostile get_coro>",
    }, unread
    assert {name.split(" at ")[0] for name in unread} == {"<LoopingTask", "<RaisingTask"}


def _named(event: dict[str, Any]) -> set[str]:
    """The names of the tasks an answer of ``stack -a`` shows, those a crowd names included."""
    return {
        name
        for loop in event["loops"]
        for task in loop["tasks"]
        for name in [task["name"], *task.get("alike_names", ())]
    }


@pytest.fixture
def crowded_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """30 tasks waiting at one line of ``worker`` and, alone at another place, ``stuck``."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def worker(gate: asyncio.Event) -> None:
        await gate.wait()

    async def stuck(gate: asyncio.Event) -> None:
        await asyncio.sleep(3600)

    async def main() -> None:
        gate = asyncio.Event()
        crowd = [asyncio.ensure_future(worker(gate)) for _ in range(30)]
        alone = asyncio.ensure_future(stuck(gate))
        alone.set_name("alone")  # type: ignore[attr-defined]
        await asyncio.sleep(0)
        started.set()
        await asyncio.gather(*crowd, alone, return_exceptions=True)

    runner = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    runner.start()
    assert started.wait(10)
    yield loop
    for task in asyncio.all_tasks(loop):
        if task.get_coro().__name__ != "main":  # type: ignore[union-attr]  # main's gather then ends it
            loop.call_soon_threadsafe(task.cancel)
    runner.join(10)
    loop.close()


def _tasks_answer(request: dict[str, Any]) -> dict[str, Any]:
    ctx = _Emitted()
    assert in_thread(lambda: stack_agent.run(request, ctx), agent=True) is None  # type: ignore[arg-type]
    (event,) = ctx.events
    return event


def test_tasks_at_one_place_are_one_entry_and_the_odd_one_out_comes_first(
    crowded_loop: asyncio.AbstractEventLoop,
) -> None:
    """50,000 tasks at one ``await`` showed the first 200 listed: the one stuck elsewhere was not among them."""
    (loop,) = _tasks_answer({})["loops"]
    by_coro = {task["coro"].rsplit(".", 1)[-1]: task for task in loop["tasks"]}
    assert [task["coro"].rsplit(".", 1)[-1] for task in loop["tasks"]] == ["main", "stuck", "worker"]
    crowd = by_coro["worker"]
    assert crowd["alike"] == 29 and len(crowd["alike_names"]) == stack_agent.ALIKE_NAMED
    assert crowd["awaited_by"] == [by_coro["main"]["name"]]  # main gathers them: named by the crowd's names
    assert "alike" not in by_coro["stuck"] and by_coro["stuck"]["name"] == "alone"
    assert [frame["name"] for frame in by_coro["stuck"]["frames"]] == ["stuck", "sleep"]


def test_places_past_n_and_tasks_past_the_reading_time_are_counted(
    crowded_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    few = _tasks_answer({"tasks": 1})
    (shown,) = [task for loop in few["loops"] for task in loop["tasks"]]
    assert few["not_shown"] == 32 - 1 - shown.get("alike", 0) and "not_read" not in few
    monkeypatch.setattr(stack_agent, "READ_SECONDS", -1.0)
    none = _tasks_answer({})
    assert none["loops"] == [] and none["not_shown"] == none["not_read"] == 32


def test_tasks_are_read_in_slices_paced_to_a_cpu_quota(
    crowded_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading 50,000 tasks took up to 2 s of a CPU at a stretch: under a pod's CPU limit, all of the quota."""
    monkeypatch.setattr(cpuquota, "SLICE_BUDGET", 0.00005)
    monkeypatch.setattr(cpuquota, "quota", lambda: 0.05)
    ctx = _Emitted()
    assert in_thread(lambda: stack_agent.run({}, ctx), agent=True) is None  # type: ignore[arg-type]
    assert ctx.waits and ctx.waits == pytest.approx([0.00395] * len(ctx.waits))  # 1 on, 79 off
    assert "not_read" not in ctx.events[0]
