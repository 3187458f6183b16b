"""The in-target code, in-process, on any interpreter: no pytest needed (stdlib only, Python 3.8+).

``tests/integration/test_inproc_interpreters.py`` runs this under every
interpreter found (``python tests/unit/inproc_smoke.py`` with ``src`` and
``tests/unit`` on the path); it prints ``ok N`` after N checks. The unit tests
proper run under the development venv's interpreter only: pytest is not
installed in the others.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Callable, List

import hook_shapes as S
from agent_harness import InProcessAgent

from flight_profiler.services import hooks, ratelimit

CHECKS: List[Callable[[], None]] = []


def check(fn: Callable[[], None]) -> Callable[[], None]:
    CHECKS.append(fn)
    return fn


def _watch(agent: InProcessAgent, cls: Any, method: str, call: Callable[[], Any], nested: Any = None) -> Any:
    request = {"module": "hook_shapes", "cls": cls, "method": method, "nested": nested, "limit": 1, "rate": 0}
    job = agent.start("watch", request)
    start = agent.wait_for(job, "start")
    call()
    events, end = agent.finish(job)
    assert end["status"] == "ok", end
    assert [e["kind"] for e in events] == ["start", "call", "end"], events
    return start["callable"]


@check
def every_kind_through_watch() -> None:
    agent = InProcessAgent()
    try:
        cases = [
            (None, "plain", lambda: S.plain(1), "function", None),
            (None, "kwonly", lambda: S.kwonly(1, k=2), "function", None),
            (None, "mixed", lambda: S.mixed(1, 2, 3, k=4, z=5), "function", None),
            (None, "closure", lambda: S.closure(1), "function", None),
            (None, "decorated", lambda: S.decorated(1), "function", None),
            ("Shapes", "method", lambda: S.Shapes().method(1), "method", None),
            ("Shapes", "klass", lambda: S.Shapes.klass(1), "classmethod", None),
            ("Shapes", "static", lambda: S.Shapes.static(1), "staticmethod", None),
            ("Shapes", "prop", lambda: S.Shapes().prop, "property getter", None),
            (None, "gen", lambda: list(S.gen(2)), "function", None),
            (None, "coro", lambda: asyncio.run(S.coro(1)), "function", None),
            (None, "agen", lambda: asyncio.run(_collect(S.agen(2))), "function", None),
            (None, "outer", lambda: S.outer(1), "nested function", "inner"),
            (None, "outer_class", lambda: S.outer_class(1), "nested method", "Local.method"),
        ]
        for cls, method, call, kind, nested in cases:
            before = S.all_functions()
            codes = [f.__code__ for f in before]
            got = _watch(agent, cls, method, call, nested)
            assert got == kind, (method, got)
            assert hooks.installed() == [], method
            assert [f.__code__ for f in before] == codes, method
    finally:
        agent.close()


async def _collect(agen: Any) -> List[Any]:
    return [item async for item in agen]


@check
def a_trace_tree_of_real_calls() -> None:
    agent = InProcessAgent()
    try:
        request = {"module": "hook_shapes", "method": "outer", "limit": 1, "interval": 0.0, "rate": 0}
        job = agent.start("trace", request)
        agent.wait_for(job, "start")
        S.outer(2)
        events, end = agent.finish(job)
        assert end["status"] == "ok", end
        root = events[1]["root"]
        assert root["name"] == "outer" and [c["name"] for c in root["children"]] == ["inner", "uses_nothing"]
    finally:
        agent.close()
    assert sys.getprofile() is None


@check
def cancel_and_detach() -> None:
    agent = InProcessAgent()
    job = agent.start("watch", {"module": "hook_shapes", "method": "plain", "limit": 5, "rate": 0})
    agent.wait_for(job, "start")
    agent.cancel(job)
    assert agent.finish(job)[1]["status"] == "cancelled"
    job = agent.start("watch", {"module": "hook_shapes", "method": "plain", "limit": 5, "rate": 0})
    agent.wait_for(job, "start")
    agent.send({"type": "detach"})
    assert agent.finish(job)[1]["status"] == "cancelled"
    assert agent.recv() == {"type": "end", "job": 0, "status": "ok"}
    agent.close()
    assert hooks.installed() == []


@check
def bad_input_is_answered() -> None:
    agent = InProcessAgent()
    try:
        agent.send({"type": "bogus"})
        assert agent.recv()["type"] == "error"
        assert agent.run("nope", {})[1]["error"] == "unknown command 'nope'"
    finally:
        agent.close()


@check
def a_rate_limit_with_a_fake_clock() -> None:
    now = [10.0]
    real = ratelimit.perf_counter
    ratelimit.perf_counter = lambda: now[0]
    try:
        bucket = ratelimit.TokenBucket(2.0)
        assert [bucket.take() for _ in range(3)] == [True, True, False]
        now[0] += 0.5
        assert bucket.take() and bucket.take_skipped() == 1
    finally:
        ratelimit.perf_counter = real


def _may_fail(x: int) -> int:
    if x % 4 == 0:
        raise KeyError(x)
    return x * 2


def _may_fail_gen(x: int) -> Any:
    yield x
    if x % 4 == 0:
        raise KeyError(x)


def _hammer(func: Any, wrong: List[Any]) -> None:
    for i in range(3000):
        try:
            got = list(func(i)) if func is _may_fail_gen else func(i)
            if got != ([i] if func is _may_fail_gen else i * 2):
                wrong.append(got)
        except KeyError:
            pass


@check
def monitor_counts_exactly_on_busy_threads() -> None:
    # the compiled wrapper's count (one item of the picker's chain per call) and its timed path
    # (start and result in one list): exact under threads switching as often as the interpreter
    # lets them, while the stride changes under them; a timed call still returns the result
    import itertools
    import threading
    import time

    from flight_profiler.commands.monitor.agent import MonitorProbe

    for func in (_may_fail, _may_fail_gen):
        probe = MonitorProbe(False, None)
        handle = hooks.install(func, probe)  # type: ignore[arg-type]
        wrong: List[Any] = []
        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        summaries = []
        try:
            workers = [threading.Thread(target=_hammer, args=(func, wrong)) for _ in range(6)]
            for worker in workers:
                worker.start()
            strides = itertools.cycle([1, 2, 1024, 16, 4])
            while any(worker.is_alive() for worker in workers):
                # paced as the job's drains are (a timed call that loaded the cost list before a
                # drain appends to it later: RETIRED_DRAINS drains look for that, 2 s at DRAIN_S)
                time.sleep(0.01)
                probe.picker.set_stride(next(strides))
                summaries.append(probe.swap().summary())
            for worker in workers:
                worker.join()
        finally:
            sys.setswitchinterval(previous)
            handle.remove()
            probe.close()
        summaries.append(probe.swap().summary())
        assert not wrong, wrong[:3]
        assert sum(s["calls"] for s in summaries) == 18000, summaries
        assert sum(s["fail"] for s in summaries) == 4500, summaries


def main() -> int:
    for fn in CHECKS:
        fn()
    print("ok %d" % len(CHECKS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
