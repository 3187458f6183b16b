"""``monitor`` in the target: calls, failures and cost percentiles of a function, per cycle.

The function is hooked (``services.hooks``) for as long as the job runs and
every call is counted on the calling thread: a cost histogram of fixed size
(``model.BUCKETS`` counters, log-spaced) gives the percentiles, so memory does
not grow with the call rate, and nothing is captured or sent per call. The
job thread swaps the statistics at the end of each cycle and sends one
summary. The hook goes on every exit path: -n cycles done, Ctrl-C, the client
gone (however it died), detach.
"""

from __future__ import annotations

import time
from threading import Lock, get_ident

from ...services import hooks
from ...services.callexpr import CallExpression
from ...services.context import AGENT_THREAD_IDS, CommandFailed, JobContext
from ...services.hooks import OWN_WORK
from ...services.location import resolve
from .model import BUCKETS, MAX_CYCLE_S, SCALE, SUB_BITS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable

perf_counter = time.perf_counter
_LINEAR = 2 << SUB_BITS  # below this many eighths of a microsecond every value has its own bucket


class Stats:
    """One cycle's counts; changed only under the probe's lock."""

    __slots__ = ("calls", "fail", "filter_errors", "histogram", "max", "min", "started", "total")

    def __init__(self) -> None:
        self.calls = 0
        self.fail = 0
        self.total = 0.0
        self.max = 0.0
        self.min = 0.0
        self.filter_errors = 0
        self.histogram = [0] * BUCKETS
        self.started = time.monotonic()

    def add(self, cost_ms: float, failed: bool) -> None:
        self.calls += 1
        if cost_ms < self.min or self.calls == 1:
            self.min = cost_ms
        if failed:
            self.fail += 1
        self.total += cost_ms
        if cost_ms > self.max:
            self.max = cost_ms
        self.histogram[bucket(cost_ms)] += 1

    def summary(self) -> dict[str, Any]:
        calls = self.calls
        out: dict[str, Any] = {
            "seconds": round(time.monotonic() - self.started, 3),
            "calls": calls,
            "success": calls - self.fail,
            "fail": self.fail,
            "fail_rate": round(self.fail / calls, 4) if calls else 0.0,
            "avg_ms": round(self.total / calls, 4) if calls else None,
            "p50_ms": self.percentile(0.50),
            "p99_ms": self.percentile(0.99),
            "max_ms": round(self.max, 4) if calls else None,
            "filter_errors": self.filter_errors,
        }
        return out

    def percentile(self, share: float) -> float | None:
        if not self.calls:
            return None
        rank = max(1, -int(-share * self.calls // 1))  # ceil without the math module
        seen = 0
        for index, count in enumerate(self.histogram):
            seen += count
            if seen >= rank:
                return round(min(max(middle_ms(index), self.min), self.max), 4)
        return round(self.max, 4)


def bucket(cost_ms: float) -> int:
    value = int(cost_ms * (1000 * SCALE))
    if value < _LINEAR:
        return max(value, 0)
    shift = value.bit_length() - SUB_BITS - 1
    return min(BUCKETS - 1, (shift << SUB_BITS) + (value >> shift))


def middle_ms(index: int) -> float:
    """The middle of a bucket's range, in milliseconds."""
    if index < _LINEAR:
        return (index + 0.5) / (1000.0 * SCALE)
    shift = (index >> SUB_BITS) - 1
    mantissa = index - (shift << SUB_BITS)
    return (mantissa + 0.5) * (1 << shift) / (1000.0 * SCALE)


class MonitorProbe:
    """Counts every call of the hooked function; never raises into the target's call."""

    steps = False

    def __init__(self, is_method: bool, filter_source: str | None) -> None:
        self.lock = Lock()
        self.stats = Stats()
        self.internal_errors = 0
        self.exit_filter: Callable[..., Any] | None = None
        self.enter: Callable[[Any, Any], Any] = self._start
        if filter_source:
            expression = CallExpression(filter_source)  # a syntax error is a one-line error here
            if expression.needs_exit:
                self.exit_filter = expression.evaluator(is_method)
            else:
                self.enter = expression.gate(is_method, self._passed)

    @staticmethod
    def _start(args: Any, kwargs: Any) -> float | None:
        ident = get_ident()
        if ident in AGENT_THREAD_IDS or ident in OWN_WORK:
            return None
        return perf_counter()

    def _passed(self, args: Any, kwargs: Any, error: BaseException | None) -> float | None:
        if error is not None:
            with self.lock:
                self.stats.filter_errors += 1
            return None
        return self._start(args, kwargs)

    def leave(self, state: Any, args: Any, kwargs: Any, returned: Any, error: BaseException | None) -> None:
        cost = (perf_counter() - state) * 1000.0
        try:
            if self.exit_filter is not None and not self._exit_passes(args, kwargs, returned, cost):
                return
            with self.lock:
                self.stats.add(cost, error is not None)
        except Exception:  # noqa: BLE001 - never let our bug reach the target's call
            self.internal_errors += 1

    def _exit_passes(self, args: Any, kwargs: Any, returned: Any, cost: float) -> bool:
        check: Any = self.exit_filter
        ident = get_ident()
        OWN_WORK.add(ident)  # what the filter calls is not counted in turn
        try:
            return bool(check(args, kwargs, returned, cost))
        except Exception:  # noqa: BLE001 - the filter's error: counted, the call left out
            with self.lock:
                self.stats.filter_errors += 1
            return False
        finally:
            OWN_WORK.discard(ident)

    def drive(self, state: Any, inner: Any) -> Any:
        return inner

    def swap(self) -> Stats:
        """This cycle's statistics; the next cycle starts empty."""
        fresh = Stats()
        with self.lock:
            done, self.stats = self.stats, fresh
        return done


def run(request: dict[str, Any], ctx: JobContext) -> None:
    cycle = float(request.get("cycle", 0))
    cycles = int(request.get("cycles", 0))
    if not 0 < cycle <= MAX_CYCLE_S:
        raise CommandFailed("-c must be more than 0 and at most %g seconds" % MAX_CYCLE_S)
    if cycles < 0:
        raise CommandFailed("-n must not be negative")
    target = resolve(request["module"], request.get("cls"), request["method"], request.get("nested"))
    probe = MonitorProbe(target.is_method, request.get("filter"))  # the filter is checked before the hook
    handle = hooks.install(target.func, probe, target.nested)
    ctx.add_cleanup(handle.remove)
    ctx.emit({"kind": "start", **target.describe(), "cycle": cycle, "cycles": cycles})
    probe.swap()  # the first cycle starts now, when the hook is in place and announced
    done = 0
    totals = {"calls": 0, "fail": 0}
    while not ctx.wait(cycle):
        done += 1
        summary = probe.swap().summary()
        totals["calls"] += summary["calls"]
        totals["fail"] += summary["fail"]
        ctx.emit({"kind": "cycle", "index": done, "time": time.time(), **summary})
        if cycles and done >= cycles:
            break
    handle.remove()  # the function is itself again before the summary is sent
    if ctx.cancelled.is_set():
        return  # nobody is reading any more
    ctx.emit({"kind": "end", "cycles": done, **totals})
