"""Filters compiled into a hook's wrapper (services/inline.py), in this process.

What a compiled filter must keep from a filter of its own: the same names and nothing else, a
failure switched off and reported once (and never evaluated again), an overrun stopped by the
watchdog without anything reaching the application, every kind of callable, and the function's
own code back after removal.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flight_profiler.commands.monitor.agent import MonitorProbe
from flight_profiler.services import hooks, inline, usercode
from flight_profiler.services.callprobe import CallProbe
from flight_profiler.services.context import AGENT_THREAD_IDS


class Recorder(CallProbe):
    def record(self, index: int, args: Any, kwargs: Any, returned: Any, error: Any, cost: float, fe: Any) -> Any:
        return {"index": index, "args": args, "kwargs": kwargs, "returned": returned, "error": error}


@pytest.fixture(autouse=True)
def no_stray_exception() -> Iterator[list[Any]]:
    seen: list[Any] = []
    previous = threading.excepthook
    threading.excepthook = seen.append
    yield seen
    threading.excepthook = previous
    assert seen == []
    # a command's compiled filters are watched until the watchdog finds no thread inside
    deadline = time.monotonic() + 10
    while usercode.REGIONS and time.monotonic() < deadline:
        time.sleep(0.01)
    assert usercode.REGIONS == {}


def watch(func: Any, source: str | None, limit: int = 100, is_method: bool = False, budget: float = 200) -> Any:
    probe = Recorder(is_method, source, limit, 0, False, budget)
    handle = hooks.install(func, probe)
    return probe, handle


def end(probe: Any, handle: Any) -> list[Any]:
    handle.remove()
    probe.close()
    return probe.outbox.drain()  # type: ignore[no-any-return]


def compiled(func: Any) -> bool:
    """The function runs a wrapper with the filter compiled in (not the generic one)."""
    return func.__code__.co_filename == hooks.HOOK_FILE and any(
        isinstance(c, list) or (callable(c) and getattr(c, "__name__", "") == "handle") for c in func.__code__.co_consts
    )


def plain(a: Any, b: Any = 2, *rest: Any, key: Any = 4, **extra: Any) -> Any:
    return a + b


def test_the_filter_sees_args_kwargs_and_the_call_is_shown_with_its_values() -> None:
    original = plain.__code__
    probe, handle = watch(plain, "args[0] > 5 and kwargs['key'] == 4 and len(args) >= 2")
    assert plain.__code__ is not original and plain.__code__.co_filename == hooks.HOOK_FILE
    assert compiled(plain)  # a filter naming a builtin (``len``) is compiled in too
    assert [plain(i) for i in range(8)] == [i + 2 for i in range(8)]
    shown = end(probe, handle)
    assert [(s["args"], s["kwargs"], s["returned"]) for s in shown] == [
        ((6, 2), {"key": 4}, 8),
        ((7, 2), {"key": 4}, 9),
    ]
    assert plain.__code__ is original  # the very code object, back


def test_the_filter_does_not_see_the_parameters_or_the_module_by_their_names() -> None:
    # ``a`` is plain's parameter and ``pytest`` a global of this module: in a filter neither exists
    for source in ("a > 0", "pytest is not None"):
        probe, handle = watch(plain, source)
        assert plain(1) == 3 and plain(2) == 4  # the application's calls go on
        assert end(probe, handle) == []
        reason = probe.switched_off()
        assert reason is not None and "NameError" in reason and reason.endswith("switched off"), reason


def test_a_raising_filter_is_switched_off_once_and_never_evaluated_again() -> None:
    calls: list[int] = []

    class Check:
        def __init__(self, value: int) -> None:
            self.value = value

        def __lt__(self, other: Any) -> bool:
            calls.append(self.value)
            raise ValueError("no order here")

    def target(x: Any) -> Any:
        return x

    original = target.__code__
    probe, handle = watch(target, "args[0] < 0")
    assert compiled(target)
    objs = [Check(i) for i in range(5)]
    assert [target(o) for o in objs] == objs  # never an exception in the application's call
    assert calls == [0]  # switched off by the first: the others never ran the filter
    reason = probe.switched_off()
    assert reason is not None and "raised ValueError: no order here" in reason
    assert probe.full.is_set() and end(probe, handle) == []
    assert target.__code__ is original


def test_a_filter_past_its_budget_is_stopped_and_the_call_goes_on() -> None:
    class Slow:
        def wait(self) -> bool:
            time.sleep(1.5)  # blocked in C: the stop lands when it returns, inside the filter
            return True

    def target(x: Any) -> str:
        return "done"

    probe, handle = watch(target, "args[0].wait()", budget=100)
    assert compiled(target)
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(target(Slow())))
    thread.start()
    thread.join(30)
    assert out == ["done"]  # the original ran and returned its value; nothing was shown
    reason = probe.switched_off()
    assert reason is not None and "ran over its budget of 100 ms" in reason, reason
    assert end(probe, handle) == []


def test_a_filter_looping_in_python_code_it_calls_is_stopped() -> None:
    class Spin:
        def forever(self) -> bool:
            while True:
                pass

    def target(x: Any) -> int:
        return 7

    probe, handle = watch(target, "args[0].forever()", budget=100)
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(target(Spin())))
    thread.start()
    thread.join(30)
    assert out == [7]
    reason = probe.switched_off()
    assert reason is not None and "ran over its budget" in reason
    end(probe, handle)


# serial: the stop must find the thread already blocked in C; on a loaded machine it could reach the
# thread while it is still on its way there, end the filter, and the thread would be gone
@pytest.mark.serial
def test_a_thread_in_a_compiled_filter_is_named_as_busy() -> None:
    if sys.gettrace() is not None:  # coverage's tracer is inherited by the thread below
        pytest.skip("under a trace function the stop reaches the thread before it blocks (./dev test's coverage)")

    class Slow:
        def wait(self) -> bool:
            gate.wait(30)  # blocked in C until the test has looked (a sleep could end first under load)
            return False

    def target(x: Any) -> int:
        return 1

    gate = threading.Event()
    probe, handle = watch(target, "args[0].wait()", budget=300)
    thread = threading.Thread(target=lambda: target(Slow()), name="busy-one")
    try:
        thread.start()
        deadline = time.monotonic() + 10
        while thread.ident not in usercode.overdue() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert thread.ident in usercode.overdue()
        assert "busy-one" in usercode.describe_threads([thread.ident or 0])
        assert "<expression> (filter of target)" in usercode.describe_threads([thread.ident or 0])
    finally:
        gate.set()
        thread.join(30)
        end(probe, handle)


@pytest.mark.parametrize("source", ["[a for a in args if a < 0]", "(lambda: args[0] < 0)()", "(y := args[0]) < 0"])
def test_filters_with_scopes_of_their_own_keep_a_function_and_still_work(source: str) -> None:
    def target(x: Any) -> Any:
        return x

    probe, handle = watch(target, source)
    assert not compiled(target)
    assert [target(i) for i in (-1, 2)] == [-1, 2]
    shown = end(probe, handle)
    assert [s["args"] for s in shown] == [(-1,)]


def test_our_placeholder_text_in_a_filter_is_just_text() -> None:
    def target(x: Any) -> Any:
        return x

    probe, handle = watch(target, "args[0] == %r" % (inline.MARK + "GATE"))
    assert not compiled(target)  # refused to compile in, evaluated as a function of its own
    assert target(inline.MARK + "GATE") == inline.MARK + "GATE" and target(1) == 1
    assert [s["args"] for s in end(probe, handle)] == [(inline.MARK + "GATE",)]


def test_target_is_the_instance_for_methods() -> None:
    class Thing:
        size = 3

        def get(self, n: int) -> int:
            return n * self.size

    probe, handle = watch(Thing.get, "target.size == 3 and args[1] == 2", is_method=True)
    thing = Thing()
    assert [thing.get(n) for n in range(4)] == [0, 3, 6, 9]
    assert [s["args"][1] for s in end(probe, handle)] == [2]


def test_generators_and_coroutines_keep_their_kind_and_values() -> None:
    def gen(n: int) -> Iterator[int]:
        yield from range(n)

    async def coro(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    probe, handle = watch(gen, "args[0] == 3")
    assert list(gen(2)) == [0, 1] and list(gen(3)) == [0, 1, 2]
    assert [s["args"] for s in end(probe, handle)] == [(3,)]
    probe, handle = watch(coro, "args[0] == 3")
    assert asyncio.iscoroutinefunction(coro)
    assert asyncio.run(coro(3)) == 6 and asyncio.run(coro(1)) == 2
    assert [(s["args"], s["returned"]) for s in end(probe, handle)] == [((3,), 6)]


def test_the_limit_and_the_rate_are_applied_in_the_wrapper() -> None:
    def target(x: int) -> int:
        return x

    probe, handle = watch(target, None, limit=2)
    for i in range(10):
        target(i)
    assert [s["index"] for s in end(probe, handle)] == [1, 2]
    probe = Recorder(False, None, 100, 5.0, False)  # 5 a second, a burst of 5
    handle = hooks.install(target, probe)  # type: ignore[arg-type]
    for i in range(1000):
        target(i)
    assert len(end(probe, handle)) == 5 and probe.bucket.skipped_total >= 990


def test_monitor_counts_every_call_exactly_and_not_the_agents() -> None:
    def target(x: int) -> int:
        if x % 4 == 0:
            raise KeyError(x)
        return x

    probe = MonitorProbe(False, "args[0] >= 0")
    handle = hooks.install(target, probe)  # type: ignore[arg-type]
    for i in range(100):
        try:
            target(i)
        except KeyError:
            pass

    def from_agent() -> None:
        AGENT_THREAD_IDS.add(threading.get_ident())
        try:
            target(1)
        finally:
            AGENT_THREAD_IDS.discard(threading.get_ident())

    thread = threading.Thread(target=from_agent)
    thread.start()
    thread.join()
    target(-1)  # not passed by the filter
    handle.remove()
    probe.close()
    stats = probe.swap()
    assert (stats.calls, stats.fail) == (100, 25)


def _counted(x: int) -> int:
    if x % 4 == 0:
        raise KeyError(x)
    return x


def _counted_gen(x: int) -> Iterator[int]:
    yield x
    if x % 4 == 0:
        raise KeyError(x)


async def _counted_coro(x: int) -> int:
    if x % 4 == 0:
        raise KeyError(x)
    return x


def _call_counted(func: Any, x: int) -> None:
    try:
        if func is _counted_gen:
            list(func(x))
        elif func is _counted_coro:
            next(func(x).__await__())  # raises StopIteration (its value) or the KeyError: it never suspends
        else:
            func(x)
    except (KeyError, StopIteration):
        pass


def _calls_from_threads(func: Any, threads: int, calls: int) -> None:
    def loop() -> None:
        for i in range(calls):
            _call_counted(func, i)

    running = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()


@pytest.mark.parametrize(
    ("func", "filter_source"),
    [(_counted, None), (_counted, "args[0] >= 0"), (_counted_gen, None), (_counted_coro, None)],
)
def test_monitor_at_a_stride_counts_every_call_and_times_one_in_the_stride(func: Any, filter_source: Any) -> None:
    original = func.__code__
    probe = MonitorProbe(False, filter_source)
    handle = hooks.install(func, probe)
    # compiled in for every kind (coroutines too: an ``async def`` wrapper, so still a coroutine function)
    assert any(c is probe.picker.chain for c in func.__code__.co_consts)
    assert hooks.code_kind(func.__code__) == hooks.code_kind(original)
    probe.picker.set_stride(16)
    _calls_from_threads(func, 4, 4000)
    _call_counted(func, -4)  # the filter says no; without one a call that raises: 16001 calls, 4001 failed
    handle.remove()
    probe.close()
    summary = probe.swap().summary()
    counted = 16000 if filter_source else 16001
    assert (summary["calls"], summary["fail"]) == (counted, 4000 + (counted - 16000)), summary
    # one in 16 of each block
    assert counted // 16 - 200 <= summary["timed"] <= counted // 16 + 200, summary
    assert summary["avg_ms"] is not None and summary["p99_ms"] is not None
    assert func.__code__ is original


def test_monitor_counts_exactly_while_the_stride_changes_under_busy_threads() -> None:
    probe = MonitorProbe(False, None)
    handle = hooks.install(_counted, probe)  # type: ignore[arg-type]
    summaries = []
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads switch often: inside our reads and the stride's change too
    try:
        workers = threading.Thread(target=_calls_from_threads, args=(_counted, 4, 5000))
        workers.start()
        strides = itertools.cycle([1, 2, 4, 64, 1024, 16])
        while workers.is_alive():
            time.sleep(0.002)
            probe.picker.set_stride(next(strides))
            probe.drain()  # (which sets a stride of its own from the rate)
            summaries.append(probe.swap().summary())
        workers.join()
    finally:
        sys.setswitchinterval(previous)
        handle.remove()
        probe.close()
    summaries.append(probe.swap().summary())
    assert all(s["calls"] >= s["fail"] >= 0 and s["calls"] >= s["timed"] for s in summaries)
    assert sum(s["calls"] for s in summaries) == 20000 and sum(s["fail"] for s in summaries) == 5000


def test_monitor_goes_to_a_stride_when_the_rate_is_high_and_back_when_it_is_low() -> None:
    def target(x: int) -> int:
        return x

    probe = MonitorProbe(False, None)
    handle = hooks.install(target, probe)  # type: ignore[arg-type]
    try:
        for _ in range(20000):  # a burst: far more than TIMED_RATE a second
            target(1)
        probe.drain()
        assert probe.picker.stride > 1
        for _ in range(20000):
            target(1)
        probe.drained_at -= 100.0  # as if they had come over 100 s: a low rate
        probe.drain()
        assert probe.picker.stride == 1
        target(1)
        summary = probe.swap().summary()
        assert summary["calls"] == 40001 and 0 < summary["timed"] < 40001
    finally:
        handle.remove()
        probe.close()


def test_removal_while_a_second_probe_is_on_keeps_the_first_compiled() -> None:
    def target(x: int) -> int:
        return x

    original = target.__code__
    first, h1 = watch(target, "args[0] == 1")
    second, h2 = watch(target, "args[0] == 2")
    assert not compiled(target)  # two probes: the generic wrapper asks both
    target(1)
    target(2)
    h2.remove()
    second.close()
    assert compiled(target)
    target(1)
    assert [s["args"] for s in end(first, h1)] == [(1,), (1,)]
    assert [s["args"] for s in second.outbox.drain()] == [(2,)]
    assert target.__code__ is original


def test_names_that_look_like_the_wrappers_own_are_not_reachable() -> None:
    def target(x: int) -> int:
        return x

    for source in ("_fp_n is not None", "_fp_K_GATE", "_fp_FILTER", "x"):
        probe, handle = watch(target, source)
        assert target(1) == 1
        assert end(probe, handle) == []
        reason = probe.switched_off()
        assert reason is not None and "NameError" in reason, (source, reason)


def test_after_the_limit_the_filter_is_not_evaluated_again() -> None:
    seen: list[int] = []

    class Note:
        def __init__(self, value: int) -> None:
            self.value = value

        def ok(self) -> bool:
            seen.append(self.value)
            return True

    def target(x: Any) -> Any:
        return x

    probe, handle = watch(target, "args[0].ok()", limit=2)
    for i in range(6):
        target(Note(i))
    assert [s["index"] for s in end(probe, handle)] == [1, 2]
    assert seen == [0, 1]  # the third call ran the generic wrapper: the closed probe turned it away
