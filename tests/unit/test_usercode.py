"""The user-code budget (services/usercode.py), in this process: stopping, containing, and no stray exception."""

from __future__ import annotations

import functools
import random
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent_threads import in_thread
from flight_profiler.services import usercode
from flight_profiler.services.context import CommandFailed


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


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the stop's pending window is 3.11's alone")
def test_a_stopped_thread_ends_the_watchdogs_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """3.11: the watchdog leaves a stop pending for a window, holding the lock every stopped thread settles
    under; it slept out the whole window (40 ms) even when the stop had landed at once, so a stopped
    thread waited that long and the next stop waited behind it (8 threads: 0.3 s per stop). The window
    now ends when the thread settles: with a window of 60 s, two stops in turn take moments."""
    from flight_profiler.services import watchdog

    monkeypatch.setattr(watchdog, "PENDING_WINDOW", 60.0)
    for _ in range(2):
        guard = usercode.Guard("filter 'forever'", 5)
        try:
            started = time.monotonic()
            assert in_thread(functools.partial(guard.call, forever)) is usercode.FAILED  # in_thread waits 30 s at most
            assert guard.off and time.monotonic() - started < 30
        finally:
            guard.close()
    assert usercode._wake == {}


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


# ---------------------------------------------------------------- the program's code a capture runs


class _Endless:
    """An object whose own code never returns: a __repr__, or a list's __len__."""

    def __repr__(self) -> str:
        forever()
        return "never"


class _EndlessLen(list):  # type: ignore[type-arg]
    def __len__(self) -> int:
        forever()
        return 0


class _Exits:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __repr__(self) -> str:
        raise self.error


def test_a_capture_in_an_agent_thread_stops_the_programs_code_and_shows_why() -> None:
    from flight_profiler.services.capture import CaptureOptions, bounded_repr, capture

    def captures() -> list[Any]:
        options = CaptureOptions(budget_ms=100)
        exits = [_Exits(SystemExit(2)), _Exits(KeyboardInterrupt())]
        shown: list[Any] = [capture(value, CaptureOptions(raw=True, budget_ms=100)) for value in exits]
        shown.append(capture([1, _Endless(), _EndlessLen(), 2], options))  # two: the second is not run
        shown.append(capture(_Endless(), CaptureOptions(raw=True, budget_ms=100)))
        shown.append(bounded_repr({"k": _Endless()}, 200))  # the console's value: the default budget
        return shown

    usercode.CAPTURE_BUDGET_MS, default = 100.0, usercode.CAPTURE_BUDGET_MS
    try:
        exits, interrupt, mixed, raw, console = in_thread(captures, agent=True)
    finally:
        usercode.CAPTURE_BUDGET_MS = default
    assert exits["error"] == "repr failed: SystemExit: 2" and interrupt["error"] == "repr failed: KeyboardInterrupt"
    first, endless, endless_len, last = mixed["items"]
    assert (first, last) == ({"t": "int", "v": 1}, {"t": "int", "v": 2})
    assert endless["t"].endswith("_Endless") and endless["error"].endswith(
        "ran over the budget of 100 ms and was stopped (--budget-ms)"
    )
    assert endless_len["error"].endswith("for an earlier value: not run again in this command")
    assert raw["error"].startswith("not shown: its own code")
    assert console.startswith("{'k': <") and "ran over the budget of" in console, console


def test_a_capture_in_an_application_thread_is_left_to_its_guard() -> None:
    from flight_profiler.services.capture import CaptureOptions, capture

    guard = usercode.Guard("capturing a call's values", 100)
    try:
        value = in_thread(lambda: guard.call(capture, _Endless(), CaptureOptions(budget_ms=100000)))
        assert value is usercode.FAILED and guard.off  # the guard's budget, not the capture's, and switched off
        assert guard.reason is not None and "ran over its budget of 100 ms" in guard.reason
    finally:
        guard.close()


def test_a_description_in_an_agent_thread_has_a_budget() -> None:
    from flight_profiler.services.describe import safe_repr

    usercode.CAPTURE_BUDGET_MS, default = 100.0, usercode.CAPTURE_BUDGET_MS
    try:
        text = in_thread(lambda: safe_repr(_Endless()), agent=True)
        exits = in_thread(lambda: safe_repr(_Exits(SystemExit(1))), agent=True)
    finally:
        usercode.CAPTURE_BUDGET_MS = default
    assert text == "<_Endless: its __repr__ ran over the budget of 100 ms and was stopped>"
    assert exits == "<_Exits>"


def test_ctrl_c_during_a_capture_ends_the_command() -> None:
    from flight_profiler.services.capture import CaptureOptions, capture

    started = threading.Event()

    class Waits:
        def __repr__(self) -> str:
            started.set()
            forever()
            return "never"

    ident: list[int] = []

    def command() -> Any:
        ident.append(threading.get_ident())
        return usercode.contain(lambda: capture(Waits(), CaptureOptions(raw=True)), (), None, "getglobal")

    def interrupt() -> None:
        assert started.wait(30)
        assert usercode.interrupt(ident[0])

    helper = threading.Thread(target=interrupt)
    helper.start()
    outcome = in_thread(command, agent=True)
    helper.join(30)
    assert outcome[0] == "raised" and isinstance(outcome[1], usercode.Stopped)
