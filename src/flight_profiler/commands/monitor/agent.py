"""``monitor`` in the target: calls, failures and cost percentiles of a function, per cycle.

The function is hooked (``services.hooks``) for as long as the job runs. On the
target's threads a call costs two clock reads and one ``list.append`` (atomic
under the GIL, no lock): the cost goes to the list of successes or of failures.
The job thread collects those lists every ``DRAIN_S`` and aggregates them with
C-level built-ins (``len``, ``sum``, ``min``, ``max``, a slice for the sample),
so counts, failures, average, min and max are exact and the percentiles come
from a bounded uniform sample (``SAMPLE_MAX``). A collected list is looked at
again for a while, so an append that raced with the collection is still counted.
The hook goes on every exit path: -n cycles done, Ctrl-C, the client gone
(however it died), detach.
"""

from __future__ import annotations

import time
from threading import Lock, get_ident

from ...services import hooks
from ...services.callexpr import CallExpression
from ...services.context import AGENT_THREAD_IDS, CommandFailed, JobContext
from ...services.hooks import OWN_WORK
from ...services.location import resolve
from ...services.usercode import APP_BUDGET_MS, Guard, budget_of
from .model import DEFAULTS, DRAIN_S, MAX_CYCLE_S, RETIRED_DRAINS, SAMPLE_MAX

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable

    from .model import MonitorRequest

perf_counter = time.perf_counter


class Stats:
    """One cycle's numbers; only the job thread touches them."""

    __slots__ = ("calls", "fail", "filter_errors", "max", "min", "sample", "skip", "started", "stride", "total")

    def __init__(self) -> None:
        self.calls = 0
        self.fail = 0
        self.total = 0.0
        self.max = 0.0
        self.min = 0.0
        self.filter_errors = 0
        self.sample: list[float] = []
        self.stride = 1  # every stride-th call goes into the sample
        self.skip = 0  # calls to pass before the next one sampled
        self.started = time.monotonic()

    def add(self, cost_ms: float, failed: bool) -> None:
        self.absorb([cost_ms], failed)

    def absorb(self, costs: list[float], failed: bool) -> None:
        count = len(costs)
        if not count:
            return
        low, high = min(costs), max(costs)
        if not self.calls or low < self.min:
            self.min = low
        if high > self.max:
            self.max = high
        self.calls += count
        if failed:
            self.fail += count
        self.total += sum(costs)
        picked = costs[self.skip :: self.stride]
        self.skip = (self.skip - count) % self.stride if not picked else self.skip + len(picked) * self.stride - count
        self.sample.extend(picked)
        while len(self.sample) > SAMPLE_MAX:
            self.sample = self.sample[::2]  # keeps every 2*stride-th call: still uniform
            self.stride *= 2

    def summary(self) -> dict[str, Any]:
        calls = self.calls
        ordered = sorted(self.sample)
        return {
            "seconds": round(time.monotonic() - self.started, 3),
            "calls": calls,
            "success": calls - self.fail,
            "fail": self.fail,
            "fail_rate": round(self.fail / calls, 4) if calls else 0.0,
            "avg_ms": round(self.total / calls, 4) if calls else None,
            "p50_ms": _percentile(ordered, 0.50),
            "p99_ms": _percentile(ordered, 0.99),
            "max_ms": round(self.max, 4) if calls else None,
            "filter_errors": self.filter_errors,
        }


def _percentile(ordered: list[float], share: float) -> float | None:
    if not ordered:
        return None
    rank = -int(-share * len(ordered) // 1)  # ceil without the math module
    return round(ordered[max(0, min(len(ordered), rank) - 1)], 4)


class MonitorProbe:
    """Appends each call's cost to a list; never raises into the target's call."""

    steps = False

    def __init__(self, is_method: bool, filter_source: str | None, budget_ms: float | None = None) -> None:
        self.ok: list[float] = []  # costs of calls that returned, appended by the target's threads
        self.failed: list[float] = []  # costs of calls that raised
        self.filter_errors = 0
        self.internal_errors = 0
        self.exit_filter: Callable[..., Any] | None = None
        self.enter: Callable[[Any, Any], Any] = _stamp
        self.retired: list[list[Any]] = []  # [list, items already counted, is_failed, drains left]
        self.stats = Stats()
        self.lock = Lock()  # job thread only: drain vs swap
        self.guard: Guard | None = None
        if filter_source:
            expression = CallExpression(filter_source)  # a syntax error is a one-line error here
            # a filter that raises, blocks or runs over its budget is switched off and reported
            # once (services.usercode); until then a call it rejects is simply not counted
            self.guard = Guard("filter %r" % filter_source, budget_ms)
            if expression.needs_exit:
                self.exit_filter = expression.guarded(is_method, self.guard, on_exit=True)
                self.leave = self._leave_filtered  # type: ignore[method-assign]
            else:
                admit = expression.guarded(is_method, self.guard)
                self.enter = lambda args, kwargs: perf_counter() if admit(args, kwargs) else None

    def leave(self, state: Any, args: Any, kwargs: Any, returned: Any, error: BaseException | None) -> None:
        cost = (perf_counter() - state) * 1000.0
        ident = get_ident()
        if ident in AGENT_THREAD_IDS or ident in OWN_WORK:
            return
        if error is None:
            self.ok.append(cost)  # cannot raise: a float onto a list
        else:
            self.failed.append(cost)

    def _leave_filtered(self, state: Any, args: Any, kwargs: Any, returned: Any, error: BaseException | None) -> None:
        cost = (perf_counter() - state) * 1000.0
        try:
            ident = get_ident()
            if ident in AGENT_THREAD_IDS or ident in OWN_WORK:
                return
            if not self._exit_passes(args, kwargs, returned, cost):
                return
            (self.ok if error is None else self.failed).append(cost)
        except Exception:  # noqa: BLE001 - never let our bug reach the target's call
            self.internal_errors += 1

    def _exit_passes(self, args: Any, kwargs: Any, returned: Any, cost: float) -> bool:
        check: Any = self.exit_filter
        ident = get_ident()
        OWN_WORK.add(ident)  # what the filter calls is not counted in turn
        try:
            return bool(check(args, kwargs, returned, cost))  # guarded: never raises
        finally:
            OWN_WORK.discard(ident)

    @staticmethod
    def drive(state: Any, inner: Any) -> Any:
        return inner

    def drain(self) -> None:
        """Job thread: take the lists the target's threads append to, and count what is new in them."""
        with self.lock:
            ok, self.ok = self.ok, []
            failed, self.failed = self.failed, []
            self.retired.append([ok, 0, False, RETIRED_DRAINS])
            self.retired.append([failed, 0, True, RETIRED_DRAINS])
            kept = []
            for entry in self.retired:
                costs, counted, is_failed, left = entry
                if len(costs) > counted:
                    self.stats.absorb(costs[counted:], is_failed)
                    entry[1] = len(costs)
                entry[3] = left - 1
                if entry[3] > 0:
                    kept.append(entry)
            self.retired = kept

    def swap(self) -> Stats:
        """This cycle's statistics; the next cycle starts empty."""
        self.drain()
        with self.lock:
            done, self.stats = self.stats, Stats()
        done.filter_errors, self.filter_errors = self.filter_errors, 0
        return done


def _stamp(args: Any, kwargs: Any) -> float:
    return perf_counter()


def run(request: MonitorRequest, ctx: JobContext) -> None:
    cycle = float(request.get("cycle", DEFAULTS["cycle"]))
    cycles = int(request.get("cycles", DEFAULTS["cycles"]))
    if not 0 < cycle <= MAX_CYCLE_S:
        raise CommandFailed("-c must be more than 0 and at most %g seconds" % MAX_CYCLE_S)
    if cycles < 0:
        raise CommandFailed("-n must not be negative")
    target = resolve(request["module"], request.get("cls"), request["method"], request.get("nested"))
    probe = MonitorProbe(target.is_method, request.get("filter"), budget_of(request, APP_BUDGET_MS))
    if probe.guard is not None:
        ctx.add_cleanup(probe.guard.close)  # the filter is checked before the hook
    handle = hooks.install(target.func, probe, target.nested)
    ctx.add_cleanup(handle.remove)
    ctx.emit({"kind": "start", **target.describe(), "cycle": cycle, "cycles": cycles})
    probe.swap()  # the first cycle starts now, when the hook is in place and announced
    done = 0
    totals = {"calls": 0, "fail": 0}
    cycle_end = time.monotonic() + cycle
    while not ctx.wait(max(0.0, min(DRAIN_S, cycle_end - time.monotonic()))):
        if probe.guard is not None and probe.guard.tripped.is_set():
            break  # the filter was switched off: the command ends with its reason
        if time.monotonic() < cycle_end:
            probe.drain()
            continue
        done += 1
        summary = probe.swap().summary()
        totals["calls"] += summary["calls"]
        totals["fail"] += summary["fail"]
        ctx.emit({"kind": "cycle", "index": done, "time": time.time(), **summary})
        if cycles and done >= cycles:
            break
        cycle_end += cycle
    handle.remove()  # the function is itself again before the summary is sent
    if probe.guard is not None and probe.guard.tripped.is_set():
        raise CommandFailed(probe.guard.reason or "the filter was switched off")
    if ctx.cancelled.is_set():
        return  # nobody is reading any more
    ctx.emit({"kind": "end", "cycles": done, **totals})
