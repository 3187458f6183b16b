"""Hooks on the stdlib's own threading code, which our code in the program's threads must never
call: a hook on threading.Condition.notify, met again inside our threading.Event.set (under that
event's lock), waited on the same lock for ever, and the program's producer hung with its queue's
lock held, and every consumer with it. Every command that hooks, on every interpreter found.
"""

from __future__ import annotations

import pytest

from interpreters import find_interpreters
from support import cli, served

INTERPRETERS = find_interpreters()
COMMANDS = [
    "watch threading Condition.notify -n 2",
    "tt -t threading Condition.notify -n 2",
    "stack threading Condition.notify -n 2",
    "trace threading Condition.notify -n 2",
    "watch threading Condition.wait -n 2",
    "watch queue Queue.get -n 2",  # only answers when the queue still moves
]


@pytest.mark.parametrize("python", [path for _, path in INTERPRETERS], ids=[name for name, _ in INTERPRETERS])
def test_hooks_on_threading_leave_the_programs_queue_moving(python: str) -> None:
    with served(python, "queue_target.py", healthy=True) as target:  # healthy: the queue moves after detach
        for command in COMMANDS:
            result = cli(target.pid, command, timeout=30)
            assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
            assert result.results[-1]["kind"] == "end", (command, result.results[-1])
