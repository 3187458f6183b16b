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
from typing import Any, Iterator

import pytest

from flight_profiler.commands.stack import agent as stack_agent


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
