"""The user-code budget (services/usercode.py), in this process: stopping, containing, and no stray exception."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flight_profiler.services import usercode
from flight_profiler.services.context import AGENT_THREAD_IDS, CommandFailed


@pytest.fixture(autouse=True)
def hooks_record() -> Iterator[list[Any]]:
    """Every exception that reaches threading.excepthook during a test: must stay empty."""
    seen: list[Any] = []
    previous = threading.excepthook
    threading.excepthook = seen.append
    yield seen
    threading.excepthook = previous
    assert seen == []
    assert usercode.ACTIVE == {} and usercode._POSTED == {}


def in_thread(fn: Any, agent: bool = False) -> Any:
    """Run ``fn`` on a fresh thread (an application thread unless ``agent``); its result or what it raised."""
    out: list[Any] = []

    def body() -> None:
        if agent:
            AGENT_THREAD_IDS.add(threading.get_ident())
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(("raised", exc))
        finally:
            AGENT_THREAD_IDS.discard(threading.get_ident())

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    return out[0]


def forever() -> None:
    while True:
        pass


def test_a_guard_returns_values_and_is_switched_off_once_by_an_exception() -> None:
    guard = usercode.Guard("filter 'x'", 200)
    try:
        assert guard.call(lambda a: a + 1, 1) == 2
        assert guard.call(lambda: 1 / 0) is usercode.FAILED
        assert guard.off and guard.tripped.is_set()
        assert guard.reason is not None and "filter 'x' raised ZeroDivisionError: division by zero" in guard.reason
        first = guard.reason
        assert guard.call(lambda: 5) is usercode.FAILED  # off for the rest of the command
        guard.trip(ValueError("later"), threading.get_ident())
        assert guard.reason == first  # reported once
    finally:
        guard.close()


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_base_exceptions_are_contained_in_an_application_thread(error: BaseException) -> None:
    guard = usercode.Guard("filter 'x'", 200)

    def raising() -> None:
        raise error

    try:
        assert in_thread(lambda: guard.call(raising)) is usercode.FAILED
        assert guard.reason is not None and type(error).__name__ in guard.reason
    finally:
        guard.close()


def test_a_never_ending_filter_is_stopped_and_its_thread_goes_on() -> None:
    guard = usercode.Guard("filter 'loop'", 100)

    def app() -> Any:
        result = guard.call(forever)
        total = sum(i for i in range(200000))  # bytecodes after it: nothing pending may land here
        return result, total

    try:
        assert in_thread(app) == (usercode.FAILED, sum(range(200000)))
        assert guard.reason is not None and "ran over its budget of 100 ms" in guard.reason
    finally:
        guard.close()


def test_a_filter_blocked_in_c_is_switched_off_while_it_blocks() -> None:
    guard = usercode.Guard("filter 'sleep'", 50)
    inside = threading.Event()
    seen: list[Any] = []

    def blocked() -> bool:
        inside.set()
        time.sleep(1.0)  # the stop cannot land in C: it lands when the sleep returns
        return True

    def watcher() -> None:
        inside.wait(10)
        deadline = time.monotonic() + 0.8
        while not guard.off and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(guard.off)  # switched off while the call still sleeps: other calls skip the filter

    helper = threading.Thread(target=watcher)
    helper.start()
    try:
        assert in_thread(lambda: guard.call(blocked)) is usercode.FAILED
        helper.join(10)
        assert seen == [True]
        assert guard.call(lambda: True) is usercode.FAILED
    finally:
        guard.close()


def test_traced_threads_go_on_while_a_stopped_filter_blocks_in_c() -> None:
    """3.11: a stop pending for a thread blocked in C held every thread with a trace function at its
    next check point until the C call returned (1 call in 1 s); it is now taken back after a moment."""
    guard = usercode.Guard("filter 'sleep'", 50)
    inside = threading.Event()

    def blocked() -> bool:
        inside.set()
        time.sleep(3.0)
        return True

    def step(n: int) -> int:
        return n + 1

    def traced_steps() -> int:
        sys.settrace(lambda frame, event, arg: None)  # a debugger's or coverage's, in the application
        try:
            count = 0
            while not guard.off:  # until the watchdog has posted the stop
                time.sleep(0.01)
            time.sleep(0.1)  # the stop is pending from now on (or was taken back already)
            for _ in range(2000):
                count = step(count)
            return count
        finally:
            sys.settrace(None)

    app = threading.Thread(target=lambda: guard.call(blocked))
    app.start()
    try:
        inside.wait(10)
        assert in_thread(traced_steps) == 2000
        assert app.is_alive(), "the traced thread only went on once the blocked call had returned"
    finally:
        app.join(10)
        guard.close()


def test_no_stray_exception_when_evaluations_end_around_their_deadline() -> None:
    """Evaluations that end just before, at or just after their deadline: the stop never lands outside."""
    stray: list[BaseException] = []
    outcomes = {"ok": 0, "stopped": 0}

    def busy(seconds: float) -> bool:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
        return True

    def app() -> None:
        rng = random.Random(7)
        for _ in range(150):
            guard = usercode.Guard("filter 'busy'", 2)
            try:
                result = guard.call(busy, rng.uniform(0.0005, 0.08))
                outcomes["ok" if result is True else "stopped"] += 1
                for _ in range(2000):  # bytecodes right after: a stop left pending would land here
                    pass
            except BaseException as exc:
                stray.append(exc)
            finally:
                guard.close()

    in_thread(app)
    assert stray == []
    assert outcomes["stopped"] > 0  # the watchdog did stop some of them


def test_contain_in_an_agent_thread() -> None:
    def exiting() -> None:
        raise SystemExit(3)

    raised = in_thread(lambda: usercode.contain(exiting, (), 1000, "-e 'exit(3)'"), agent=True)
    assert isinstance(raised[1], usercode.UserError) and "SystemExit: 3" in str(raised[1])
    raised = in_thread(lambda: usercode.contain(forever, (), 100, "-e 'loop'"), agent=True)
    assert isinstance(raised[1], CommandFailed) and "ran over its budget of 100 ms" in str(raised[1])
    raised = in_thread(lambda: usercode.contain(lambda: 1 / 0, (), 1000, "-e"), agent=True)
    assert isinstance(raised[1], ZeroDivisionError)  # the handler shows the user's own errors
    assert in_thread(lambda: usercode.contain(lambda: 7, (), None, "-e"), agent=True) == 7


def test_interrupt_stops_code_without_a_budget_even_when_it_swallows_the_first_stop() -> None:
    started = threading.Event()
    ident: list[int] = []

    def stubborn() -> None:
        ident.append(threading.get_ident())
        started.set()
        swallowed = 0
        while swallowed < 1:
            try:
                forever()
            except BaseException:
                swallowed += 1
        forever()

    def stopper() -> None:
        started.wait(10)
        while not usercode.interrupt(ident[0]):  # again until it lands (the first is swallowed)
            time.sleep(0.05)
        time.sleep(usercode.REPOST_AFTER + 0.2)
        usercode.interrupt(ident[0])

    helper = threading.Thread(target=stopper)
    helper.start()
    raised = in_thread(lambda: usercode.contain(stubborn, (), None, "console"), agent=True)
    helper.join(10)
    assert isinstance(raised[1], usercode.Stopped)


def test_describe_threads_names_a_thread_and_its_frames() -> None:
    text = usercode.describe_threads([threading.get_ident()])
    assert "MainThread (tid %d) at " % threading.get_ident() in text
    assert "test_describe_threads_names_a_thread_and_its_frames" in text


def test_the_inlined_filter_guard_contains_errors_and_never_ending_filters() -> None:
    from flight_profiler.services.callexpr import CallExpression

    raising = usercode.Guard("filter 'args[0] / 0'", 200)
    never = usercode.Guard("filter 'loop'", 100)
    try:
        check = CallExpression("args[0] / 0").guarded(False, raising)
        assert in_thread(lambda: [check((1,), None), check((2,), None)]) == [False, False]
        assert raising.reason is not None and "ZeroDivisionError" in raising.reason
        loop = CallExpression("all(True for _ in iter(int, 1))").guarded(False, never, on_exit=True)
        assert in_thread(lambda: (loop((1,), None, None, 0.0), sum(range(100000)))) == (False, sum(range(100000)))
        assert never.reason is not None and "ran over its budget of 100 ms" in never.reason
        matches = CallExpression("kwargs['a'] == 1 and target is None").guarded(False, usercode.Guard("f", 200))
        assert matches((), {"a": 1}) is True and matches((), {"a": 2}) is False
    finally:
        raising.close()
        never.close()
