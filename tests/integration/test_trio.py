"""trio: ``stack -a`` lists a trio program's tasks, their await chains and its nurseries' tree.

trio keeps its run state in a thread-local that no other thread can read, and its tasks in no
registry; the agent finds each ``trio.run`` in progress as the ``runner`` variable of that call's
frame and reads the runner's and the tasks' slots (nothing of the program's runs). Real trio
(pure-Python wheels, tests/targets/ensure_wheel_dir.sh) on 3.11, 3.12 and 3.15.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

import pytest

from interpreters import find_interpreters
from json_schemas import problems
from support import RunningTarget, cli, start_target, wheel_dir

WANTED = ("3.11", "3.12", "3.15")  # (pip --target resolves trio for older ones wrong)
INTERPRETERS = [(name, python) for name, python in find_interpreters() if name in WANTED]


@pytest.fixture(params=INTERPRETERS, ids=[name for name, _ in INTERPRETERS], scope="module")
def target(request: pytest.FixtureRequest) -> Iterator[RunningTarget]:
    name, python = request.param
    env = dict(os.environ, PYTHONPATH=wheel_dir("trio", name, python), PYTHONFAULTHANDLER="1")
    running = start_target(python, "trio_target.py", env=env)
    yield running
    cli(running.pid, "detach")
    running.stop()


def test_stack_a_lists_the_trio_tasks_and_their_nurseries(target: RunningTarget) -> None:
    result = cli(target.pid, "stack -a", timeout=120)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    for line in result.stdout.splitlines():
        assert problems(json.loads(line)) == [], problems(json.loads(line))
    [run] = result.results[0]["loops"]
    assert run["loop"].startswith("<trio run at 0x") and run["running"], run
    tasks: dict[str, Any] = {task["coro"].rsplit(".", 1)[-1]: task for task in run["tasks"]}
    assert tasks["sleeper"].get("alike") == 4, tasks["sleeper"]  # five at one place: one entry
    assert set(tasks["main"]["awaits"]) == {"__main__.sleeper", "__main__.hold_it", "__main__.wait_on"}
    assert tasks["wait_on"]["frames"][0]["name"] == "wait_on" and tasks["wait_on"]["awaited_by"] == ["__main__.main"]
    waiting = [frame["name"] for frame in tasks["wait_on"]["frames"]]
    assert "acquire" in waiting, waiting  # down to trio's lock
    text = cli(target.pid, "stack -a", "--no-color", json_output=False).stdout
    assert "Loop <trio run at 0x" in text and "in hold_it" in text, text


def test_thread_b_says_trio_tasks_are_not_in_its_graph(target: RunningTarget) -> None:
    """Not "no thread or task is waiting" while a trio task waits on a held trio.Lock."""
    result = cli(target.pid, "thread -b", timeout=120)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert problems(json.loads(result.stdout.splitlines()[0])) == []
    # main, 5 sleepers, the holder, the waiter, and trio's own two (<init>, the run_sync_soon task)
    assert result.results[0]["trio_tasks"] == 10, result.results
    text = cli(target.pid, "thread -b", "--no-color", json_output=False).stdout
    assert "10 trio task(s): their waits are not in this graph" in text, text
