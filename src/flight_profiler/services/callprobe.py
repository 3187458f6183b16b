"""What ``watch`` and ``tt`` share: a probe that picks calls and a bounded outbox (runs in the target).

The probe runs on the target's threads, inside the hooked function's call, so
everything on its path is built to be cheap and never to raise:
- a filter that needs only the arguments is checked when the call starts
  (``CallExpression.test``): a call that does not match costs the filter and
  its guard;
- a filter on ``return_obj``/``cost`` is checked when the call ends;
- filters and captures run under a ``usercode.Guard``: one that raises, blocks
  or runs over ``--budget-ms`` is switched off, the call is not a match, and the
  command ends with that reason (``switched_off``);
- then, rarely: the agent's own threads and our own nested work are left out,
  the count (``-n``) and the rate (``--rate``) are applied under a lock, and
  only then is anything captured. Captured results go into a bounded queue
  that the job's thread sends; the target's threads never touch the socket.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from collections import deque

from . import realthreads
from .callexpr import CallExpression
from .context import AGENT_THREAD_IDS
from .describe import class_name, error_message, instance_dict, short, thread_fields, type_name
from .describe import describe_error as _describe_error
from .hooks import HOOK_FILE, OWN_WORK
from .ratelimit import TokenBucket
from .usercode import FAILED, Guard, unwatch_regions
from .usercode import switched_off as _switched_off

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable

    from .context import JobContext

OUTBOX_MAX = 256  # results waiting for the job thread; more means the client stopped reading
TRACEBACK_FRAMES = 64
POLL = 0.05  # seconds between two looks at the outbox

perf_counter = time.perf_counter
get_ident = threading.get_ident


# The events the program's threads set (a result is ready, the last one is in) are realthreads', made of
# _thread locks: threading.Event is Python code on a Condition, which a person may hook. A hook on
# threading.Condition.notify, called again from our own Event.set under the event's lock, waited on
# that same lock for ever: the producing thread hung, and with it every thread of the program that
# waited on its queue.
class Outbox:
    """Results from the target's threads to the job's thread; bounded, oldest dropped first."""

    def __init__(self, size: int = OUTBOX_MAX) -> None:
        self.items: deque[dict[str, Any]] = deque(maxlen=size)
        self.dropped = 0
        self.wake = realthreads.Event()  # see the note above the class

    def put(self, item: dict[str, Any]) -> None:
        if len(self.items) == self.items.maxlen:
            self.dropped += 1
        self.items.append(item)
        self.wake.set()

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self.items.popleft())
            except IndexError:
                return out


class CallProbe:
    """Picks the calls a command wants and hands them to ``record`` (a subclass method).

    ``record(index, args, kwargs, returned, error, cost_ms, filter_error)`` runs on
    the calling thread with our own work marked, so calls it makes itself
    (a ``__repr__``, a property) are not recorded in turn.
    """

    steps = False  # no generator stepping: only trace needs it

    def __init__(
        self,
        is_method: bool,
        filter_source: str | None,
        limit: int,
        rate: float,
        only_errors: bool,
        budget_ms: float | None = None,
        capturing: str = "capturing a call's values",
    ) -> None:
        self.limit = limit
        self.only_errors = only_errors
        self.bucket = TokenBucket(rate)
        self.outbox = Outbox()
        self.lock = realthreads.allocate_lock()  # never a greenlet lock (services/realthreads)
        self.accepted = 0
        self.pending = 0  # admitted calls whose result is not in the outbox yet
        self.internal_errors = 0
        self.closed = False
        self.full = realthreads.Event()
        self.exit_filter: Callable[..., Any] | None = None
        self.enter: Callable[[Any, Any], Any]
        expression = CallExpression(filter_source) if filter_source else None
        self.filter_guard: Guard | None = None
        if expression is not None:
            self.filter_guard = Guard("filter %r" % filter_source, budget_ms, self._switch_off)
        self.record_guard = Guard(capturing, budget_ms, self._switch_off)
        self.is_method = is_method
        self.expression = expression
        self.plan: Any = None  # services.inline.Plan, made when the hook asks for it
        if expression is not None and self.filter_guard is not None and not expression.needs_exit:
            self._filter = expression.guarded(is_method, self.filter_guard)
            self.enter = self._start_filtered
        elif expression is None and not only_errors:
            self.enter = self._start  # whether to show it is known when it starts
        else:
            self.enter = self._start_any
            if expression is not None and self.filter_guard is not None:
                self.exit_filter = expression.guarded(is_method, self.filter_guard, on_exit=True)

    def inline_plan(self) -> Any:
        """How the hook compiles this probe into its wrapper (services/inline.py), or None."""
        if self.enter != self._start and self.enter != self._start_filtered:
            return None  # -e, or a filter on the outcome: every call is timed and decided at its end
        if self.plan is None:
            from . import inline

            guard = self.filter_guard if self.enter == self._start_filtered else None
            consts: dict[str, Any] = {"NOW": perf_counter, "BUCKET": self.bucket, "PROBE": self}
            if guard is not None:
                consts.update(FAILED=inline.failed(guard), LATE=inline.late(guard))
            expression = self.expression if guard is not None else None
            self.plan = inline.Plan("call", expression, self.is_method, guard, consts)
            if self.closed:
                self.plan.close()
        return self.plan

    def _close_gates(self, disarm: bool = True) -> None:
        if self.plan is not None:
            self.plan.close(disarm)

    # ---- on the target's threads: a call turned away costs as little as possible

    def _start(self, args: Any, kwargs: Any) -> float | None:
        now = perf_counter()
        if now < self.bucket.next_ok or self.closed:  # no token before next_ok: no need for the lock
            if not self.closed:
                self.bucket.skipped_total += 1
            return None
        return now

    def _start_filtered(self, args: Any, kwargs: Any) -> float | None:
        if self.closed or not self._filter(args, kwargs):  # a filter that failed is no match either
            return None
        return self._start(args, kwargs)

    @staticmethod
    def _start_any(args: Any, kwargs: Any) -> float:
        return perf_counter()  # the filter needs the return value or cost, or -e the outcome

    def leave(self, state: Any, args: Any, kwargs: Any, returned: Any, error: BaseException | None) -> None:
        end = perf_counter()
        try:
            cost = (end - state) * 1000.0
            if self.exit_filter is not None and (self.closed or not self.exit_filter(args, kwargs, returned, cost)):
                return
            if self.only_errors and error is None:
                return
            ident = get_ident()
            if ident in OWN_WORK or ident in AGENT_THREAD_IDS:
                return
            index = self._admit()
            if self.closed and self.plan is not None and self.plan.on_close:
                self._close_gates()  # -n reached: the wrapper stops evaluating the filter at once
            if not index:
                return
            # Our own work, to the end: a function of the program's or the stdlib's that it calls (a
            # __repr__, a property, something a person hooked too) runs as if unhooked.
            OWN_WORK.add(ident)
            try:
                # a capture runs the user's __repr__ and properties, and --expr: user code too
                item = self.record_guard.call(self.record, index, args, kwargs, returned, error, cost, None)
                if item is not None and item is not FAILED:
                    item = self.commit(item)  # outside the guard: it may take locks (see usercode)
                    item["skipped"] = self.bucket.take_skipped()
                    self.outbox.put(item)
            finally:
                try:
                    self._recorded()
                finally:
                    OWN_WORK.discard(ident)
        except Exception:  # noqa: BLE001 - never let our bug reach the target's call
            self.internal_errors += 1

    def _recorded(self) -> None:
        """An admitted call's result is in the outbox (or failed): the last one ends the job."""
        with self.lock:
            self.pending -= 1
            last = self.closed and self.pending <= 0
        if last:
            self.full.set()  # only now: the job thread sends what is in the outbox and ends

    def _switch_off(self) -> None:
        """A guard tripped (on the calling thread): no more calls; the job ends and says why."""
        self.closed = True
        self._close_gates()
        self.full.set()

    def switched_off(self) -> str | None:
        """Why the user code was switched off, or None."""
        return _switched_off(self.filter_guard, self.record_guard)

    def drive(self, state: Any, inner: Any) -> Any:
        return inner

    def _admit(self) -> int:
        """The call's number (1..limit) when it is to be recorded, else 0."""
        with self.lock:
            if self.closed or self.accepted >= self.limit:
                return 0
            if not self.bucket.take():
                return 0
            self.accepted += 1
            self.pending += 1
            if self.accepted >= self.limit:
                self.closed = True  # later calls are turned away when they start
                self._close_gates(disarm=False)  # (under our lock; the command ends and unhooks)
            return self.accepted

    def record(
        self,
        index: int,
        args: Any,
        kwargs: Any,
        returned: Any,
        error: BaseException | None,
        cost: float,
        filter_error: BaseException | None,
    ) -> dict[str, Any] | None:
        raise NotImplementedError

    def commit(self, item: Any) -> dict[str, Any]:
        """What ``record`` made, kept where it belongs; the item to send."""
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        with self.lock:
            self.closed = True
        self._close_gates()
        for guard in (self.filter_guard, self.record_guard):
            if guard is not None:
                unwatch_regions(guard)
                guard.close()


def serve(ctx: JobContext, outbox: Outbox, done: realthreads.Event, emit: Callable[[dict[str, Any]], None]) -> str:
    """Send results until ``done`` is set and all are sent, or the job is cancelled; return why it ended."""
    while True:
        for item in outbox.drain():
            emit(item)
        if done.is_set() and not outbox.items:
            return "limit"
        if ctx.cancelled.is_set():
            return "cancelled"
        outbox.wake.wait(POLL)
        outbox.wake.clear()


def exception_info(error: BaseException) -> dict[str, Any]:
    """Type, message and the frames it passed, without reading source files on the target's thread."""
    frames: list[dict[str, Any]] = []
    tb = error.__traceback__
    while tb is not None and len(frames) < TRACEBACK_FRAMES:
        code = tb.tb_frame.f_code
        if code.co_filename != HOOK_FILE:
            frames.append({"file": code.co_filename, "line": tb.tb_lineno, "name": code.co_name})
        tb = tb.tb_next
    message = error_message(error)
    return {
        "type": type_name(type(error)),
        "message": "<str() failed>" if message is None else message,
        "frames": frames,
    }


def describe_error(error: BaseException) -> str:
    """An error of the user's function, its type named as a traceback does (module included)."""
    return _describe_error(error, qualified=True)


def thread_info(ident: int) -> dict[str, Any]:
    """Name and daemon flag of a thread, without creating a dummy Thread object for it."""
    thread = threading._active.get(ident)  # type: ignore[attr-defined]
    if thread is None:
        return {"thread": _greenlet_name(ident) or "Thread-%d" % ident, "tid": ident, "daemon": None}
    name, daemon, _ = thread_fields(thread)
    return {"thread": name, "tid": ident, "daemon": daemon}


def _greenlet_name(ident: int) -> str | None:
    """In a gevent- or eventlet-patched program a thread id is a greenlet's (``id(getcurrent())``), and one
    that is no ``threading.Thread`` had no name ("Thread-139812625001312"): the greenlet's class and the
    function it runs (``gevent.spawn(handler)``: "greenlet Greenlet handler"), read from its instance
    dict, nothing of the program's run. Only for the greenlet running here, which is the one ``ident``
    names while a call is recorded."""
    getcurrent: Any = getattr(sys.modules.get("greenlet"), "getcurrent", None)
    if type(getcurrent) is not _BUILTIN:
        return None
    current = getcurrent()  # C
    if id(current) != ident:
        return None
    attrs = instance_dict(current) or {}
    run = attrs.get("_run", attrs.get("run"))
    name = _function_name(run)
    return "greenlet %s%s" % (class_name(type(current)), " " + name if name else "")


def _function_name(run: Any) -> str | None:
    """The qualified name of a plain function or bound method, read from the function itself."""
    if type(run) is types.MethodType:
        run = run.__func__
    if type(run) is types.FunctionType:
        return short(run.__qualname__)
    return None


_BUILTIN: Any = type(len)  # C functions (greenlet.getcurrent)
