"""``line`` in the target: the local variables each time one source line of one function runs.

Scoped to that function's code object, so the rest of the process runs as before:
- 3.12+: ``sys.monitoring`` LINE events enabled on that code object only
  (``set_local_events``); every other line of it turns its own event off
  (``DISABLE``) the first time it runs, so only the chosen line keeps calling us.
- 3.8-3.11: the function is hooked (``services.hooks``) and, for the duration of
  each of its calls, the calling thread gets a trace function that traces that
  call's frame only; nested calls are not traced, other threads never are.
  Generators and coroutines (whose calls span suspensions) need 3.12+.
Everything is removed on every exit path (limit, Ctrl-C, a lost client, detach).
"""

from __future__ import annotations

import sys
import threading
import time

from ...services import (
    capture_repr,  # noqa: F401 - compiled now, in the job's thread, never in a hooked call
    hooks,
    realthreads,
)
from ...services.callprobe import Outbox, serve, thread_info
from ...services.capture import CaptureOptions, capture
from ...services.context import AGENT_THREAD_IDS, CommandFailed, JobContext, on_detach
from ...services.expr import Expression, describe_error
from ...services.hooks import OWN_WORK
from ...services.location import resolve
from ...services.ratelimit import TokenBucket
from ...services.usercode import APP_BUDGET_MS, FAILED, Guard, budget_of
from ...services.usercode import switched_off as _switched_off
from ..source.agent import last_line
from .model import DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from types import CodeType, FrameType
    from typing import Any, Callable

    from .model import LineRequest

TOOL_IDS = (4, 3)  # sys.monitoring ids no standard tool claims (0 debugger, 1 coverage, 2 profiler, 5 optimizer)
TOOL_NAME = "flight_profiler line"
_monitoring_lock = realthreads.allocate_lock()
_active_tools: dict[int, Callable[[], None]] = {}  # tool id -> its undo, for detach


class LineProbe:
    """Picks and captures the hits of one line; runs on the target's threads, never raises."""

    def __init__(self, request: LineRequest) -> None:
        self.line = int(request["line"])
        self.limit = int(request["limit"])
        self.bucket = TokenBucket(float(request.get("rate", DEFAULTS["rate"])))
        self.outbox = Outbox()
        self.lock = realthreads.allocate_lock()
        self.accepted = 0
        self.closed = False
        self.full = realthreads.Event()  # set on the program's threads: never threading's (services/callprobe)
        self.internal_errors = 0
        self.expr_source = request.get("expr")
        self.filter_source = request.get("filter")
        self.expr = Expression(self.expr_source, ()) if self.expr_source else None
        self.filter = Expression(self.filter_source, ()) if self.filter_source else None
        self.options = CaptureOptions.from_request(request)
        # as watch's: user code in the application's thread runs under a budget; a filter that raises,
        # or anything that runs over the budget or raises SystemExit & co., is switched off and said
        budget_ms = budget_of(request, APP_BUDGET_MS)
        self.filter_guard = (
            Guard("filter %r" % self.filter_source, budget_ms, self._switch_off) if self.filter else None
        )
        what = "expression %r" % self.expr_source if self.expr else "capturing the local variables"
        self.record_guard = Guard(what, budget_ms, self._switch_off)

    def hit(self, frame: FrameType) -> None:
        ident = threading.get_ident()
        if self.closed or ident in OWN_WORK or ident in AGENT_THREAD_IDS:
            return
        OWN_WORK.add(ident)  # what our expressions or reprs call is not a hit in turn
        try:
            self._hit(frame, ident)
        except BaseException:  # noqa: BLE001 - never let our bug (or the user's SystemExit) reach the target's code
            self.internal_errors += 1
        finally:
            OWN_WORK.discard(ident)

    def _hit(self, frame: FrameType, ident: int) -> None:
        local = dict(frame.f_locals)
        if self.filter is not None and self.filter_guard is not None:
            wanted = self.filter_guard.call(self.filter.evaluate, local)
            if wanted is FAILED or not wanted:  # FAILED: switched off, the job ends and says why
                return
        index = self._admit()
        if not index:
            return
        item = self.record_guard.call(self._record, local, ident, index)
        if item is not FAILED:
            self.outbox.put(item)

    def _record(self, local: dict[str, Any], ident: int, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {"kind": "hit", "index": index, "time": time.time()}
        item.update(thread_info(ident))
        if self.expr is not None:
            try:
                value = self.expr.evaluate(local)
            except Exception as exc:  # noqa: BLE001 - the expression's error is this hit's result
                # (SystemExit & co. go to the guard around _record: switched off, as watch's)
                item["error"] = "expression %r failed: %s" % (self.expr_source, describe_error(exc))
            else:
                item["values"] = [{"expr": self.expr_source, "value": capture(value, self.options)}]
        else:
            item["values"] = [{"expr": name, "value": capture(value, self.options)} for name, value in local.items()]
        item["skipped"] = self.bucket.take_skipped()
        return item

    def _switch_off(self) -> None:
        """A guard tripped (on the application's thread): no more hits; the job ends and says why."""
        self.closed = True
        self.full.set()

    def switched_off(self) -> str | None:
        return _switched_off(self.filter_guard, self.record_guard)

    def _admit(self) -> int:
        with self.lock:
            if self.closed or self.accepted >= self.limit or not self.bucket.take():
                return 0
            self.accepted += 1
            if self.accepted >= self.limit:
                self.closed = True
                self.full.set()
            return self.accepted

    def close(self) -> None:
        with self.lock:
            self.closed = True
        for guard in (self.filter_guard, self.record_guard):
            if guard is not None:
                guard.close()  # the watchdog this probe opened


# ------------------------------------------------------------------ 3.12+: sys.monitoring


def _watch_with_monitoring(code: CodeType, probe: LineProbe) -> Callable[[], None]:
    monitoring: Any = sys.monitoring  # type: ignore[attr-defined]
    line_event = monitoring.events.LINE
    disable = monitoring.DISABLE
    wanted = probe.line

    def on_line(seen: Any, number: int) -> Any:
        if seen is not code or number != wanted:
            return disable  # this location never calls us again
        probe.hit(sys._getframe(1))
        return None

    with _monitoring_lock:
        tool = _free_tool(monitoring)
        monitoring.use_tool_id(tool, TOOL_NAME)
        try:
            if sys.version_info < (3, 14):
                monitoring.restart_events()  # lines an earlier run of ours turned off may be the one wanted now
            monitoring.register_callback(tool, line_event, on_line)
            monitoring.set_local_events(tool, code, line_event)
        except BaseException:
            _release(monitoring, tool, code)
            raise

    def undo() -> None:
        with _monitoring_lock:
            if _active_tools.pop(tool, None) is not None:
                _release(monitoring, tool, code)

    _active_tools[tool] = undo
    on_detach(_undo_all)
    return undo


def _free_tool(monitoring: Any) -> int:
    for tool in TOOL_IDS:
        if monitoring.get_tool(tool) is None:
            return tool
    raise CommandFailed("no free sys.monitoring tool id (%s are in use): stop another line command" % str(TOOL_IDS))


def _release(monitoring: Any, tool: int, code: CodeType) -> None:
    steps: tuple[Callable[[], Any], ...] = (
        lambda: monitoring.set_local_events(tool, code, 0),
        lambda: monitoring.register_callback(tool, monitoring.events.LINE, None),
        lambda: monitoring.clear_tool_id(tool) if hasattr(monitoring, "clear_tool_id") else None,
        lambda: monitoring.free_tool_id(tool),
    )
    for step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001, S112 - every step gets its turn
            continue


def _undo_all() -> None:
    for undo in list(_active_tools.values()):
        undo()


# ------------------------------------------------------------------ before 3.12: a trace function per call


class TracingProbe:
    """A hook probe: while one call of the function runs, its thread traces that call's frame only."""

    steps = False

    def __init__(self, code: CodeType, probe: LineProbe) -> None:
        self.code = code
        self.probe = probe
        self.busy_skipped = 0  # calls not traced: their thread already had a trace function (a debugger)

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "line" and frame.f_lineno == probe.line:
                probe.hit(frame)
            return local

        # the hook runs a copy of the function's code (services.hooks: shadows never run the
        # original object), so the frame is recognised by where its code was defined
        key = (code.co_firstlineno, code.co_name, code.co_filename)

        def first_call(frame: FrameType, event: str, arg: Any) -> Any:
            # the thread's trace function must stay set for line events to reach ``local``; the frames
            # the function calls get no local tracer, and the hook's leave() takes it away again
            f_code = frame.f_code
            if f_code is code or (f_code.co_firstlineno, f_code.co_name, f_code.co_filename) == key:
                return local
            return None

        self.first_call = first_call

    def enter(self, args: Any, kwargs: Any) -> Any:
        if self.probe.closed:
            return None
        if sys.gettrace() is not None:
            self.busy_skipped += 1
            return None
        sys.settrace(self.first_call)  # the next frame this thread starts is the function's own
        return True

    def leave(self, state: Any, args: Any, kwargs: Any, returned: Any, error: Any) -> None:
        if sys.gettrace() is self.first_call:
            sys.settrace(None)  # the call is over: the thread runs untraced again

    @staticmethod
    def drive(state: Any, inner: Any) -> Any:
        return inner


# ------------------------------------------------------------------ the command


def code_lines(code: CodeType) -> set[int]:
    """The line numbers that have instructions in ``code`` itself (nested functions excluded)."""
    lines: set[int] = set()
    if hasattr(code, "co_lines"):
        for _, _, line in code.co_lines():
            if line is not None:
                lines.add(line)
        return lines
    line = code.co_firstlineno
    table = code.co_lnotab
    lines.add(line)
    for index in range(0, len(table), 2):
        step = table[index + 1]
        line += step - 256 if step >= 128 else step
        lines.add(line)
    return lines


def _check_line(code: CodeType, label: str, line: int) -> None:
    first, last = code.co_firstlineno, last_line(code)
    if not first <= line <= last:
        raise CommandFailed("line %d is outside %s (lines %d-%d)" % (line, label, first, last))
    lines = code_lines(code)
    if line == first and (len(lines) > 1 or sys.version_info >= (3, 13)):
        # the def line (or the first decorator's): what runs there is the prologue (RESUME, cells), which
        # reports no line event, nor, under 3.13+'s sys.monitoring, does the one line of a one-line
        # function: accepted, such a line was waited for until Ctrl-C
        others = sorted(lines - {first})[:3]
        raise CommandFailed(
            "line %d of %s is where it starts (def or decorator): no line event comes from there; %s"
            % (line, label, "try %s" % ", ".join(str(n) for n in others) if others else "watch the function instead")
        )
    if line not in lines:
        near = sorted(lines, key=lambda candidate: (abs(candidate - line), candidate))[:3]
        raise CommandFailed(
            "line %d of %s runs no code of its own (a blank line, a comment, a nested function or part of a longer "
            "statement); try %s" % (line, label, ", ".join(str(n) for n in sorted(near)))
        )


def run(request: LineRequest, ctx: JobContext) -> None:
    if int(request.get("limit", 0)) < 1:
        raise CommandFailed("-n must be at least 1")
    target = resolve(request["module"], request.get("cls"), request["method"], request.get("nested"))
    code = target.code  # for -nm naming several functions: the first one
    _check_line(code, target.label, int(request["line"]))
    probe = LineProbe(request)  # expressions are checked here, before anything is hooked
    ctx.add_cleanup(probe.close)
    if sys.version_info >= (3, 12):
        ctx.add_cleanup(_watch_with_monitoring(code, probe))
        mechanism = "sys.monitoring"
    else:
        if hooks.code_kind(code) != "function":
            raise CommandFailed("line on a %s needs Python 3.12+ (sys.monitoring)" % hooks.code_kind(code))
        handle = hooks.install(target.func, TracingProbe(code, probe), target.nested)
        ctx.add_cleanup(handle.remove)
        mechanism = "trace function, per call"
    ctx.emit(
        {"kind": "start", **target.describe(), "at_line": probe.line, "limit": probe.limit, "mechanism": mechanism}
    )
    reason = serve(ctx, probe.outbox, probe.full, ctx.emit)
    probe.close()
    ctx.run_cleanups()  # the function is itself again before the summary is sent
    if reason == "cancelled":
        return
    switched_off = probe.switched_off()
    if switched_off is not None:
        raise CommandFailed(switched_off)
    ctx.emit(
        {
            "kind": "end",
            "reason": reason,
            "shown": probe.accepted,
            "skipped": probe.bucket.skipped_total,
            "dropped": probe.outbox.dropped,
        }
    )
