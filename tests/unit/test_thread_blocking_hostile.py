"""``thread -b`` in this process, among the program's hostile objects: it reads them, never runs them.

A lock's waiters and holders are found through the waiter's frame (its ``self``'s attributes) and
the garbage collector's referrers of the lock, which may be any of the program's objects; the
asyncio tasks through their methods. Each of these ran the program's code (a ``__dict__`` property,
a ``__getattr__``, a Task subclass's ``get_name``) on the job's thread with no budget: one that looped
held ``thread -b`` for good.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

from agent_threads import in_thread
from flight_profiler.commands.thread import agent as thread_agent
from flight_profiler.services import usercode
from flight_profiler.services.context import CommandFailed

LOCK = threading.Lock()
STOP = threading.Event()


def _until_stopped() -> None:
    while not STOP.is_set():
        time.sleep(0.005)


class Sticky:
    """Refers to the lock from a slot: the gc hands this object itself to ``thread -b`` as a referrer."""

    __slots__ = ("lock",)

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def __getattr__(self, name: str) -> Any:
        _until_stopped()
        raise AttributeError(name)


class Worker:
    """Waits on the lock in a method: its ``self`` is the frame's, and its ``__dict__`` is a property."""

    @property  # type: ignore[misc]
    def __dict__(self) -> Dict[str, Any]:  # type: ignore[override]
        _until_stopped()
        return {}

    def wait_for_lock(self) -> None:
        with LOCK:
            pass


class _Emitted:
    def __init__(self) -> None:
        self.events: List[Dict[str, Any]] = []

    def emit(self, event: Dict[str, Any]) -> None:
        self.events.append(event)


@pytest.fixture
def waiter() -> Iterator[threading.Thread]:
    """A thread that holds LOCK and one that waits for it in Worker.wait_for_lock."""
    STOP.clear()
    sticky = Sticky(LOCK)  # not a module global: pytest's collection would ask it for attributes
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with LOCK:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, name="fp-holder", daemon=True)
    holder.start()
    assert held.wait(10)
    waiting = threading.Thread(target=Worker().wait_for_lock, name="fp-waiter", daemon=True)
    waiting.start()
    time.sleep(0.2)  # into the lock's futex wait
    yield waiting
    STOP.set()
    release.set()
    holder.join(10)
    waiting.join(10)
    del sticky


def _blocking() -> Any:
    ctx = _Emitted()
    thread_agent.run({"interval": 0}, ctx)  # type: ignore[arg-type, typeddict-item]
    return ctx.events[0]


def test_a_lock_wait_is_found_without_running_the_program_s_getattr_or_dict_property(
    waiter: threading.Thread,
) -> None:
    started = time.monotonic()
    event = in_thread(_blocking, agent=True)
    took = time.monotonic() - started
    assert isinstance(event, dict), event
    waits = [wait for wait in event["waits"] if wait["waiter"]["name"] == "fp-waiter"]
    assert len(waits) == 1, event["waits"]
    assert waits[0]["on"]["type"] == "lock"
    assert waits[0]["at"]["name"] == "wait_for_lock"
    assert took < 3  # nothing of the program's ran: no budget was spent either


def test_the_program_s_code_past_the_budget_ends_thread_b_with_one_line(
    waiter: threading.Thread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever thread -b still reads of the program's (an owner's attributes) is within the budget."""
    monkeypatch.setattr(usercode, "AGENT_BUDGET_MS", 300.0)
    monkeypatch.setattr(thread_agent, "_owner", lambda lock: _until_stopped())
    started = time.monotonic()
    outcome = in_thread(_blocking, agent=True)
    assert time.monotonic() - started < 5
    assert isinstance(outcome, tuple) and isinstance(outcome[1], CommandFailed), outcome
    assert "ran over the budget of 300 ms and was stopped" in str(outcome[1])
