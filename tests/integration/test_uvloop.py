"""asyncio on uvloop: ``stack -a`` and ``thread -b`` find the tasks of a loop whose run loop has no frame.

From 3.14 asyncio keeps no registry of tasks that the agent could read: they are listed through
the loops the threads run, found in the threads' frames. uvloop's run loop is compiled, so
there is no frame of it: on 3.14 and 3.15 a uvloop service (uvicorn's default) showed "no
pending asyncio tasks". The loop is found as ``asyncio.Runner.run``'s (``uvloop.run``,
``asyncio.run(..., loop_factory=...)``) or as a variable of the frame that waits in it
(``loop.run_until_complete``). Real uvloop wheels (tests/targets/ensure_wheel_dir.sh), real
targets (tests/targets/uvloop_target.py); 3.8 for the registry that older versions have.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest

from interpreters import find_interpreters
from support import RunningTarget, cli, start_target, wheel_dir

WANTED = ("3.8", "3.14", "3.15")
INTERPRETERS = [(name, python) for name, python in find_interpreters() if name in WANTED]


@pytest.fixture(
    params=[(name, python, how) for name, python in INTERPRETERS for how in ("run", "until")],
    ids=["%s-%s" % (name, how) for name, _ in INTERPRETERS for how in ("run", "until")],
    scope="module",
)
def target(request: pytest.FixtureRequest) -> Iterator[RunningTarget]:
    name, python, how = request.param
    env = dict(os.environ, PYTHONPATH=wheel_dir("uvloop", name, python), PYTHONFAULTHANDLER="1")
    running = start_target(python, "uvloop_target.py", how, env=env)
    yield running
    cli(running.pid, "detach")
    running.stop()


def _answer(pid: int, command: str) -> dict[str, Any]:
    result = cli(pid, command, timeout=120)
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
    answer: dict[str, Any] = result.results[0]
    return answer


def test_stack_a_lists_every_task_of_the_uvloop_loop(target: RunningTarget) -> None:
    found = _answer(target.pid, "stack -a")
    [loop] = found["loops"]
    assert "uvloop" in loop["loop"] and loop["running"], loop
    counts = {task["coro"].rsplit(".", 1)[-1]: 1 + task.get("alike", 0) for task in loop["tasks"]}
    outer = counts.pop("wrapper", 0) + counts.pop("main", 0)  # uvloop.run wraps main in a coroutine of its own
    assert outer == 1 and counts == {"sleeper": 5, "hold_it": 1, "wait_on": 1}, loop["tasks"]


def test_thread_b_names_the_holder_of_the_lock(target: RunningTarget) -> None:
    [graph] = [_answer(target.pid, "thread -b")]
    waits = {wait["waiter"].get("coro"): wait for wait in graph["waits"]}
    assert [holder.get("coro") for holder in waits["wait_on"]["holders"]] == ["hold_it"], graph["waits"]
