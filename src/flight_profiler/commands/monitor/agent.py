"""``monitor`` in the target: calls, failures and cost percentiles of a function, per cycle.

The function is hooked (``services.hooks``) for as long as the job runs, with the probe compiled
into the hook's wrapper (``services.inline``). Every call is counted, exactly; its cost is
measured on every call while the call rate is low, and on one call in ``stride`` (a power of two,
at most ``PICK_BLOCK``) when it is high, so that timing never costs more than about
``TIMED_RATE`` timed calls a second (two clock reads, a thread check and a list append each).

How a call is counted without a Python call or a lock (the GIL makes each C call atomic):
- every call takes the next item of ``Picker.chain``: one C call, nothing allocated. The chain
  hands out blocks of ``PICK_BLOCK`` bools, each block the one ``Picker.holder`` names when the
  chain starts it; the job thread reads how many items were taken from the iterators'
  ``__length_hint__`` (``Picker.snapshot``).
- a true item means "time this call": a block for stride ``s`` has ``PICK_BLOCK / s`` of them, at
  random places (the same in every block). The job thread changes the stride by naming another
  block (one store): it applies from the next block on, and the job knows from which one.
- a timed call appends its cost to ``ok``/``failed`` when it ends (agent threads and our own work
  left out, as before); an untimed call costs nothing more, unless it raises (one C call on a
  counter of failures). So per cycle: ``calls = untimed + timed``; the untimed ones are the items
  taken minus the true ones among them (known from the blocks), counted when they start; the
  timed ones when they end (at stride 1 every call is timed: counted as before, exactly).
The job thread collects every ``DRAIN_S``: counts, and costs into a bounded sample weighted by
the stride they were timed under, so avg/p50/p99 estimate every call's, and ``timed`` says how
many were measured (``timed == calls``: exact, as at a low rate). An untimed call of an agent
thread or of our own work (a ``__repr__`` a capture calls) is counted: only a timed call looks at
its thread.
The hook goes on every exit path: -n cycles done, Ctrl-C, the client gone (however it died),
detach.
"""

from __future__ import annotations

import time
from functools import partial
from itertools import chain, repeat
from operator import methodcaller
from threading import get_ident

from ...services import hooks, realthreads
from ...services.callexpr import CallExpression
from ...services.context import AGENT_THREAD_IDS, CommandFailed, JobContext
from ...services.hooks import OWN_WORK
from ...services.location import resolve
from ...services.usercode import APP_BUDGET_MS, Guard, budget_of, unwatch_regions
from .model import DEFAULTS, DRAIN_S, MAX_CYCLE_S, PICK_BLOCK, RETIRED_DRAINS, SAMPLE_MAX, TIMED_RATE

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable

    from .model import MonitorRequest

perf_counter = time.perf_counter
ENDLESS = 1 << 62  # blocks a chain can hand out: never reached (10**10 calls a second for 14 years)
_TUPLE_ITERATOR: Any = type(iter(()))
_CALL = methodcaller("__call__")  # calls what it is given: a C call that makes a C call


class Picker:
    """Which calls are timed, and how many were made: one ``next(chain)`` per call (see the doc)."""

    def __init__(self, block: int = PICK_BLOCK) -> None:
        self.block = block
        depth = block.bit_length() - 1  # block is a power of two
        # the timed items of a block are not every stride-th but a random subset of that size (the
        # same in every block, each stride's a subset of the smaller one's): a caller with a period
        # of its own (a loop of 64 calls whose first is slow) is not sampled always in one phase
        ranks = _shuffled(block)
        self.levels = [depth if rank == 0 else (rank & -rank).bit_length() - 1 for rank in ranks]
        self.blocks: dict[int, tuple[bool, ...]] = {}  # stride -> its block, made when first used
        self.before: dict[int, list[int]] = {}  # stride -> timed items among the first k of its block
        self._block_for(1)
        self.holder = [self.blocks[1]]  # the block the chain takes next: all timed
        self.counter = repeat(0, ENDLESS)  # one item taken per block the chain starts
        self.chain = chain.from_iterable(map(self.holder.__getitem__, self.counter))
        self.fails = repeat(None, ENDLESS)  # one item taken per untimed call that raised
        self.stride = 1
        self.segments: list[tuple[int, int]] = [(0, 1)]  # (first block, stride): blocks from there on

    def snapshot(self) -> tuple[int, int, Any]:
        """(items taken, blocks started, the block being handed out or None): values that held at
        one instant (the blocks started did not change while the chain was looked at)."""
        import gc  # built in: no file access

        while True:
            left = self.counter.__length_hint__()
            inner = gc.get_referents(self.chain)  # the map and the block's iterator
            if self.counter.__length_hint__() == left:
                break
        started = ENDLESS - left
        for obj in inner:
            if type(obj) is _TUPLE_ITERATOR:
                block = gc.get_referents(obj)  # its tuple (none once it found its end)
                return started * self.block - obj.__length_hint__(), started, block[0] if block else None
        return started * self.block, started, None

    def taken(self) -> int:
        """Items the calls took from the chain so far."""
        return self.snapshot()[0]

    def failed_untimed(self) -> int:
        return ENDLESS - self.fails.__length_hint__()

    def set_stride(self, stride: int) -> None:
        """Time one call in ``stride`` (a power of two, 1 .. block) from the next block on."""
        if stride == self.stride:
            return
        store = partial(self.holder.__setitem__, 0, self._block_for(stride))
        # The count of blocks started and the store must be one instant: blocks started between
        # them could not be told apart later (a switch there once booked a block handed out at
        # stride 1 as one at stride 8: 896 calls too many). Both are C calls made from C, with
        # no bytecode between them, so no other thread runs in between: a switch needs bytecode
        # (before 3.12 a collection started by an allocation in there could run a finalizer's
        # bytecode: a block could then be misbooked, as rarely as that).
        left, _ = map(_CALL, (self.counter.__length_hint__, store))
        first = ENDLESS - left  # the next block to start is the first at the new stride
        if self.segments[-1][0] >= first:
            self.segments[-1] = (first, stride)  # (no block started since the last change)
        else:
            self.segments.append((first, stride))
        self.stride = stride

    def _block_for(self, stride: int) -> tuple[bool, ...]:
        block = self.blocks.get(stride)
        if block is None:
            low = stride.bit_length() - 1
            block = self.blocks[stride] = tuple(level >= low for level in self.levels)
            counts = [0]
            for flag in block:
                counts.append(counts[-1] + flag)
            self.before[stride] = counts
        return block

    def timed_between(self, start: int, end: int) -> int:
        """How many of the items ``start .. end-1`` are timed ones (each block at its own stride)."""
        size = self.block
        segments = self.segments
        while len(segments) > 1 and segments[1][0] * size <= start:
            del segments[0]  # wholly before what is still to be counted
        count = 0
        for index, (first, stride) in enumerate(segments):
            low = max(start, first * size)
            high = end if index + 1 == len(segments) else min(end, segments[index + 1][0] * size)
            if high > low:
                counts = self.before[stride]
                count += (high // size - low // size) * counts[size] + counts[high % size] - counts[low % size]
        return count


def _shuffled(size: int) -> list[int]:
    """0 .. size-1 in a random order (Fisher-Yates on os.urandom: ``random`` is not loaded)."""
    import os  # loaded at start-up by every interpreter

    order = list(range(size))
    noise = os.urandom(4 * size)
    for i in range(size - 1, 0, -1):
        j = int.from_bytes(noise[4 * i : 4 * i + 4], "little") % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def stride_for(rate: float, current: int, block: int = PICK_BLOCK) -> int:
    """The stride that keeps timed calls near ``TIMED_RATE`` a second. Up at once; down only when
    the current one times less than a quarter of that (no flapping at a rate on the edge)."""
    wanted = 1
    while wanted < block and rate / wanted > TIMED_RATE:
        wanted *= 2
    if wanted > current or rate * 4 < TIMED_RATE * current:
        return wanted
    return current


class Stats:
    """One cycle's numbers; only the job thread touches them."""

    __slots__ = (
        "calls",
        "fail",
        "filter_errors",
        "max",
        "min",
        "sample",
        "skip",
        "started",
        "stride",
        "timed",
        "total",
        "weight",
        "weights",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.fail = 0
        self.timed = 0  # calls whose cost was measured
        self.total = 0.0  # sum of the measured costs, each times its weight
        self.weight = 0  # calls the measured ones stand for
        self.max = 0.0
        self.min = 0.0
        self.filter_errors = 0
        self.sample: list[float] = []
        self.weights: list[int] = []  # the stride each sampled cost was timed under
        self.stride = 1  # every stride-th timed call goes into the sample
        self.skip = 0  # timed calls to pass before the next one sampled
        self.started = time.monotonic()

    def add(self, cost_ms: float, failed: bool) -> None:
        self.absorb([cost_ms], failed)

    def untimed(self, calls: int, failed: int) -> None:
        """Calls counted but not timed (their cost is estimated from the timed ones)."""
        self.calls += calls
        self.fail += failed

    def absorb(self, costs: list[float], failed: bool, weight: int = 1) -> None:
        """Timed calls; each stands for ``weight`` calls (the stride they were timed under)."""
        count = len(costs)
        if not count:
            return
        low, high = min(costs), max(costs)
        if not self.timed or low < self.min:
            self.min = low
        if high > self.max:
            self.max = high
        self.calls += count
        self.timed += count
        if failed:
            self.fail += count
        self.total += sum(costs) * weight
        self.weight += count * weight
        picked = costs[self.skip :: self.stride]
        self.skip = (self.skip - count) % self.stride if not picked else self.skip + len(picked) * self.stride - count
        self.sample.extend(picked)
        self.weights.extend([weight] * len(picked))
        while len(self.sample) > SAMPLE_MAX:
            self.sample = self.sample[::2]  # keeps every 2*stride-th call: still uniform
            self.weights = self.weights[::2]
            self.stride *= 2

    def summary(self) -> dict[str, Any]:
        calls = self.calls
        ordered = sorted(zip(self.sample, self.weights))
        timed = self.timed
        return {
            "seconds": round(time.monotonic() - self.started, 3),
            "calls": calls,
            "success": calls - self.fail,
            "fail": self.fail,
            "fail_rate": round(self.fail / calls, 4) if calls else 0.0,
            "avg_ms": round(self.total / self.weight, 6) if timed else None,
            "p50_ms": _percentile(ordered, 0.50),
            "p99_ms": _percentile(ordered, 0.99),
            "max_ms": round(self.max, 6) if timed else None,
            "timed": timed,
            "filter_errors": self.filter_errors,
        }


def _percentile(ordered: list[tuple[float, int]], share: float) -> float | None:
    """The weighted percentile: the first cost by which ``share`` of the weight is reached."""
    if not ordered:
        return None
    total = sum(weight for _, weight in ordered)
    rank = -int(-share * total // 1)  # ceil without the math module
    seen = 0
    for cost, weight in ordered:
        seen += weight
        if seen >= rank:
            return round(cost, 6)
    return round(ordered[-1][0], 6)


class MonitorProbe:
    """Counts the calls and collects the costs of the timed ones; never raises into the target's call."""

    steps = False

    def __init__(self, is_method: bool, filter_source: str | None, budget_ms: float | None = None) -> None:
        self.ok: list[float] = []  # costs of timed calls that returned, appended by the target's threads
        self.failed: list[float] = []  # costs of timed calls that raised
        self.filter_errors = 0
        self.internal_errors = 0
        self.exit_filter: Callable[..., Any] | None = None
        self.enter: Callable[[Any, Any], Any] = _stamp
        self.retired: list[list[Any]] = []  # [list, items already counted, is_failed, drains left]
        self.stats = Stats()
        self.lock = realthreads.allocate_lock()  # job thread only: drain vs swap
        self.guard: Guard | None = None
        self.is_method = is_method
        self.expression: CallExpression | None = None
        self.plan: Any = None  # services.inline.Plan, made when the hook asks for it
        self.picker = Picker()
        self.taken = 0  # items taken from the picker's chain at the last drain
        self.fails_seen = 0  # untimed failures at the last drain
        self.drained_at = time.monotonic()
        if filter_source:
            expression = CallExpression(filter_source)  # a syntax error is a one-line error here
            self.expression = expression
            # a filter that raises, blocks or runs over its budget is switched off and reported
            # once (services.usercode); until then a call it rejects is simply not counted
            self.guard = Guard("filter %r" % filter_source, budget_ms, self._close_gates)
            if expression.needs_exit:
                self.exit_filter = expression.guarded(is_method, self.guard, on_exit=True)
                self.leave = self._leave_filtered  # type: ignore[method-assign]
            else:
                admit = expression.guarded(is_method, self.guard)
                self.enter = lambda args, kwargs: perf_counter() if admit(args, kwargs) else None

    def inline_plan(self) -> Any:
        """How the hook compiles this probe into its wrapper (services/inline.py), or None."""
        if self.exit_filter is not None:
            return None  # the filter needs the outcome: decided (and timed) at the end of each call
        if self.plan is None:
            from ...services import inline

            consts: dict[str, Any] = {
                "NOW": perf_counter,
                "IDENT": get_ident,
                "AGENTS": AGENT_THREAD_IDS,
                "OWN": OWN_WORK,
                "PROBE": self,
                "FAIL": self._failed_call,
                "NEXT": next,
                "PICK": self.picker.chain,
                "FAILS": self.picker.fails,
            }
            if self.guard is not None:
                consts.update(FAILED=inline.failed(self.guard), LATE=inline.late(self.guard))
            self.plan = inline.Plan("monitor", self.expression, self.is_method, self.guard, consts)
            if self.guard is not None and self.guard.off:
                self.plan.close()
        return self.plan

    def _close_gates(self) -> None:
        if self.plan is not None:
            self.plan.close()

    def close(self) -> None:
        """The command ended: no wrapper compiled for it counts a call any more."""
        self._close_gates()
        if self.guard is not None:
            unwatch_regions(self.guard)
            self.guard.close()

    def _failed_call(self, started: float) -> None:
        """A call that raised (from a compiled wrapper, inside its ``except``): never raises."""
        try:
            self.leave(started, None, None, None, _RAISED)
        except Exception:  # noqa: BLE001 - never let our bug reach the target's call
            self.internal_errors += 1

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
        """Job thread: count the calls made since the last drain, collect the timed ones' costs, and
        set the stride for the next interval from the rate just seen."""
        with self.lock:
            picker = self.picker
            stride = picker.stride
            taken = self._count_untimed()
            ok, self.ok = self.ok, []
            failed, self.failed = self.failed, []
            self.retired.append([ok, 0, False, RETIRED_DRAINS])
            self.retired.append([failed, 0, True, RETIRED_DRAINS])
            kept = []
            for entry in self.retired:
                costs, counted, is_failed, left = entry
                end = len(costs)
                if end > counted:
                    self.stats.absorb(costs[counted:end], is_failed, stride)
                    # the counted costs go now (one C-level slice deletion: an append racing with it
                    # lands after it), so a retired list holds only what comes late, not a
                    # collection's worth of floats for RETIRED_DRAINS
                    del costs[:end]
                    entry[1] = 0
                entry[3] = left - 1
                if entry[3] > 0:
                    kept.append(entry)
            self.retired = kept
            now = time.monotonic()
            elapsed, self.drained_at = now - self.drained_at, now
            wanted = stride_for(taken / elapsed if elapsed > 0 else 0.0, stride, picker.block)
            picker.set_stride(wanted)  # from the chain's next block on

    def _count_untimed(self) -> int:
        """Add the untimed calls taken since the last count; returns how many items were taken."""
        picker = self.picker
        taken, before = picker.taken(), self.taken
        fails = picker.failed_untimed()
        untimed = taken - before - picker.timed_between(before, taken)
        self.stats.untimed(untimed, fails - self.fails_seen)
        self.taken, self.fails_seen = taken, fails
        return taken - before

    def swap(self) -> Stats:
        """This cycle's statistics; the next cycle starts empty."""
        self.drain()
        with self.lock:
            done, self.stats = self.stats, Stats()
        done.filter_errors, self.filter_errors = self.filter_errors, 0
        return done


_RAISED = Exception("the call raised")  # what _failed_call tells leave(): only that it failed


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
    ctx.add_cleanup(probe.close)  # the filter is checked before the hook
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
    probe.close()
    if probe.guard is not None and probe.guard.tripped.is_set():
        raise CommandFailed(probe.guard.reason or "the filter was switched off")
    if ctx.cancelled.is_set():
        return  # nobody is reading any more
    ctx.emit({"kind": "end", "cycles": done, **totals})
