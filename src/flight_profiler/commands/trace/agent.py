"""``trace`` in the target: the call tree of single invocations of a function.

The function is hooked (``services.hooks``). When an invocation is to be
traced, a recorder runs for exactly as long as the invocation's own code
runs: a profile function on the calling thread only (``sys.setprofile``,
which no other thread calls), the thread's previous one put back afterwards;
on 3.12+, on a thread that has a profiler of its own, a ``sys.monitoring``
tool of ours instead (a free id, never one somebody holds), so that profiler
keeps running. Either recorder only appends ``(frame, event, what, time)``
to a list (a call that ends at once, sooner than ``-i``, is only counted);
the tree is built from that list when the invocation (or its step) ends, or
every ``FLUSH_EVENTS`` events, so memory stays bounded (bench/RESULTS-trace.md).
On 3.12+ switching a profile function on and off re-instruments every thread's
running code; while traced invocations take most of the wall time, a thread of
ours (``Holder``) keeps the interpreter's profiling events on so those switches
cost nothing, and lets go when tracing gets rare, at the command's end and at
detach.
Generators and coroutines are stepped one resumption at
a time: while one is suspended (awaiting, or yielded to its consumer) the
profiler is off, so the event loop's other work is not recorded, and the
suspension shows up as an ``[await]`` (``[yield]``) node of the frame that
waited.

Cost control: a traced invocation runs several times slower, so ``--budget``
caps the share of wall-clock time spent inside traced invocations; the other
invocations run at the hook's plain cost and are counted. ``-i`` drops calls
shorter than the interval as soon as they return, ``-d`` limits the depth and
``-et`` drops whole invocations, all here in the target, before anything is
sent.
"""

from __future__ import annotations

import sys
import threading
import time
import types

from ...services import context, hooks, realthreads
from ...services.callexpr import CallExpression
from ...services.callprobe import Outbox, describe_error, serve, thread_info
from ...services.context import AGENT_THREAD_IDS, CommandFailed, JobContext
from ...services.describe import class_name
from ...services.location import resolve
from ...services.ratelimit import TimeBudget, TokenBucket
from ...services.usercode import APP_BUDGET_MS, Guard, budget_of
from .model import DEFAULT_INTERVAL_MS, DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

    from .model import TraceRequest

perf_counter = time.perf_counter
get_ident = threading.get_ident

FLUSH_EVENTS = 4096  # recorded events replayed into the tree at once: bounds the buffer's memory
MAX_NODES = 20000  # per invocation: beyond this, calls are counted, not kept
MAX_DEPTH = 200  # the tree is sent as nested JSON: keep it shallower than any recursion limit
SUSPENDABLE = hooks.CO_GENERATOR | hooks.CO_COROUTINE | hooks.CO_ASYNC_GENERATOR | hooks.CO_ITERABLE_COROUTINE

# node fields (a list per call: cheaper to make than an object, on the traced thread's hot path)
WHAT, START, END, CHILDREN, KIND, FRAME = range(6)
PY, C, WAIT, HIDDEN, THROUGH = 0, 1, 2, 3, 4  # HIDDEN: kept off the tree; THROUGH: its calls go to its parent

OPEN = True  # the frame field of a Python call sys.monitoring started (it needs no frame): not a C call
_TRACING: set[int] = set()  # threads with a trace running: a traced function that recurses is traced once
PREFER_MONITORING = False  # tests: record with the sys.monitoring tool even on a thread that has no profiler

# 3.12+: the profiling events are held on (``Holder``) while at least HOLD_SHARE of the wall time is
# spent in traced invocations, measured every HOLD_EVERY invocations; let go below RELEASE_SHARE,
# measured every HOLD_WINDOW seconds
HOLDS = sys.version_info >= (3, 12)
HOLD_SHARE = 0.5
RELEASE_SHARE = 0.25
HOLD_EVERY = 32
HOLD_WINDOW = 0.05
HELD = [0]  # holders started since the agent loaded (tests: the events were held)


class TraceProbe:
    steps = True

    def __init__(self, request: TraceRequest, is_method: bool, kind: str) -> None:
        self.limit = int(request["limit"])
        self.entrance_ms = float(request.get("entrance_time") or DEFAULTS["entrance_time"])
        depth = request.get("depth")
        self.max_depth = MAX_DEPTH if depth is None or int(depth) < 0 else min(int(depth), MAX_DEPTH)
        interval = request.get("interval")
        if depth is not None and int(depth) >= 0:  # -d shows the whole tree to that depth, -i or not
            interval = 0.0
        elif interval is None:
            interval = DEFAULT_INTERVAL_MS
        self.threshold = float(interval) / 1000.0
        self.budget = TimeBudget(float(request.get("budget") or DEFAULTS["budget"]) / 100.0)  # off unless asked for
        self.budget_told = 0  # refusals already reported with a tree
        self.bucket = TokenBucket(float(request.get("rate", DEFAULTS["rate"])))
        self.outbox = Outbox()
        self.lock = realthreads.allocate_lock()
        self.shown = 0
        self.below_entrance = 0
        self.busy_thread = 0  # invocations not traced: the thread already had a profiler we cannot restore
        self.internal_errors = 0
        self.full = realthreads.Event()  # set on the program's threads: never threading's (services/callprobe)
        self.done = False  # -n reached: read on every call, so a plain attribute
        self.stopped = False  # the command ended: invocations still running stop tracing
        self.kind = kind
        self.own_files = _own_files()
        self.plain_codes: dict[Any, bool] = {}  # code -> neither ours nor a generator's (the replay's fast path)
        self.handle: Any = None
        self.monitor: Monitor | None = None  # 3.12+, opened for the first thread that profiles itself
        self.monitor_tried = False
        self.holder: Holder | None = None  # 3.12+, while traced invocations follow each other closely
        self.holder_tried = False  # once the command stops, none is started again
        self.profiled = 0.0  # seconds traced with the profile function (the holder's measure)
        self.profiled_runs = 0
        self.hold_mark = perf_counter()
        self.hold_mark_profiled = 0.0
        self.filter_source = request.get("filter")
        self.guard: Guard | None = None
        if self.filter_source:
            expression = CallExpression(self.filter_source, ("target", "args", "kwargs"))
            self.guard = Guard("filter %r" % self.filter_source, budget_of(request, APP_BUDGET_MS), self._switch_off)
            self._filter = expression.guarded(is_method, self.guard)
            self.enter = self._begin_filtered
        else:
            self.enter = self._begin

    # ---- on the target's threads

    def _begin_filtered(self, args: Any, kwargs: Any) -> TraceRun | None:
        # the filter runs before any profiler is set: what its guard catches leaves nothing behind
        if self.done or not self._filter(args, kwargs):
            return None
        return self._begin(args, kwargs)

    def _switch_off(self) -> None:
        self.done = True
        self.full.set()

    def _begin(self, args: Any, kwargs: Any) -> TraceRun | None:
        try:
            if self.done or self.handle is None:
                return None
            ident = get_ident()
            if ident in AGENT_THREAD_IDS or ident in hooks.OWN_WORK or ident in _TRACING:
                return None
            if not self.budget.allow():
                return None
            run = TraceRun(self, self.handle.root_codes())
            if self.kind == "function" and not run.step_in():
                return None
            return run
        except Exception:  # noqa: BLE001 - never let our bug reach the target's call
            self.internal_errors += 1
            return None

    def leave(self, run: TraceRun, args: Any, kwargs: Any, returned: Any, error: BaseException | None) -> None:
        self._leave(run, error)
        if HOLDS and run.record is not None:
            # the holder's measure: the thread's time from the recorder's start, our tree's sending included
            self.profiled += perf_counter() - run.step_started if self.kind == "function" else run.traced
            self.profiled_runs += 1
            if not self.profiled_runs % HOLD_EVERY:
                try:
                    self._consider_holding()
                except Exception:  # noqa: BLE001 - no thread to be had (a limit): never the target's error
                    self.internal_errors += 1

    def _leave(self, run: TraceRun, error: BaseException | None) -> None:
        try:
            if self.kind == "function":
                run.step_out(None, True)
            self.budget.charge(run.traced)
            root = run.root
            if root is None or run.broken:
                return
            cost_ms = (root[END] - root[START]) * 1000.0
            if cost_ms < self.entrance_ms:
                with self.lock:
                    self.below_entrance += 1
                return
            with self.lock:
                if self.shown >= self.limit or not self.bucket.take():
                    return
                self.shown += 1
                index = self.shown
                last = self.shown >= self.limit
                if last:
                    self.done = True  # no other call is taken; ``full`` waits until this tree is in the outbox
            try:
                self._send(run, index, cost_ms, error)
            finally:
                if last:
                    self.full.set()  # set before the put, the job could end and lose its last tree
        except Exception:  # noqa: BLE001 - never let our bug reach the target's call
            self.internal_errors += 1

    def _send(self, run: TraceRun, index: int, cost_ms: float, error: BaseException | None) -> None:
        ident = get_ident()
        hooks.OWN_WORK.add(ident)
        try:
            item = run.result(index, cost_ms, error)
        finally:
            hooks.OWN_WORK.discard(ident)
        item["skipped"] = self.bucket.take_skipped()
        refused = self.budget.refused
        item["not_traced_budget"], self.budget_told = refused - self.budget_told, refused
        self.outbox.put(item)

    def drive(self, run: TraceRun, inner: Any) -> Any:
        return _step_coroutine(run, inner) if self.kind in ("coroutine", "asyncgen") else _step_generator(run, inner)

    def get_monitor(self) -> Monitor | None:
        if not self.monitor_tried:
            with self.lock:
                if not self.monitor_tried and not self.stopped:
                    self.monitor_tried = True
                    self.monitor = Monitor.open()
        return self.monitor

    def _consider_holding(self) -> None:
        now = perf_counter()
        window, self.hold_mark = now - self.hold_mark, now
        profiled, self.hold_mark_profiled = self.profiled - self.hold_mark_profiled, self.profiled
        if profiled < HOLD_SHARE * window or self.holder is not None:
            return
        ident = get_ident()
        hooks.OWN_WORK.add(ident)  # starting a thread runs threading's code here: not the target's calls
        try:
            with self.lock:
                if self.holder is None and not self.holder_tried:
                    self.holder = holder = Holder(self)
                    try:
                        holder.start()
                    except BaseException:
                        self.holder, self.holder_tried = None, True  # no thread to be had: not tried again
                        _HOLDERS.discard(holder)
                        raise
        finally:
            hooks.OWN_WORK.discard(ident)

    def holder_gone(self, holder: Holder) -> None:
        with self.lock:
            if self.holder is holder:
                self.holder = None

    def stop(self) -> None:
        self.stopped = True
        self.done = True
        with self.lock:
            self.monitor_tried = True  # none is opened after this
            self.holder_tried = True
            monitor, holder = self.monitor, self.holder
        if monitor is not None:
            monitor.close()
        if holder is not None:
            holder.release()
        if self.guard is not None:
            self.guard.close()


class TraceRun:
    """The tree of one invocation, built from the profile events of its thread."""

    def __init__(self, probe: TraceProbe, root_codes: tuple[Any, ...]) -> None:
        self.probe = probe
        self.root_codes = root_codes  # several for a -nm name defined more than once
        self.threshold = probe.threshold
        self.max_depth = probe.max_depth
        self.own_files = probe.own_files
        self.root: list[Any] | None = None
        self.root_frame: Any = None
        self.stack: list[list[Any]] = []
        self.running = False
        self.broken = False
        self.abandoned = False
        self.nodes = 0
        self.hidden = 0  # calls shorter than -i
        self.truncated = 0  # calls beyond MAX_NODES
        self.deeper = 0  # calls made at -d's depth, left out with everything they called
        self.plain_codes = probe.plain_codes
        self.suspended: dict[Any, list[Any]] = {}  # generator/coroutine frames that may resume
        # a suspension is placed under the innermost frame that resumes from it: frames
        # resume outermost first, so it is the last resumed one before any other event
        self.wait_label = ""
        self.wait_since = 0.0
        self.wait_until = 0.0
        self.pending_wait = False
        self.resume_tip: list[Any] | None = None
        self.previous: Any = None
        self.ident = 0
        self.step_started = 0.0
        self.traced = 0.0  # seconds spent with the profiler on (charged to the budget)
        self.events: list[Any] = []  # recorded (frame, event, what, time), not yet in the tree
        self.record: Any = None  # the profile function, made once
        self.monitor: Monitor | None = None  # the current step records with our sys.monitoring tool

    # ---- stepping: the recorder is on only while the invocation's own code runs

    def step_in(self) -> bool:
        if self.probe.stopped:
            return False  # a coroutine resumed after the command ended: not traced any more
        previous = sys.getprofile()
        monitor = None
        if previous is not None or PREFER_MONITORING:
            # the thread profiles itself: on 3.12+ our own sys.monitoring tool records beside its profiler
            monitor = self.probe.get_monitor()
            if monitor is None and previous is not None and not callable(previous):
                # a C-level profiler (yappi, cProfile before 3.12) we could not put back exactly: leave it alone
                self.probe.busy_thread += 1
                return False
        self.monitor = monitor
        self.ident = get_ident()
        _TRACING.add(self.ident)
        now = perf_counter()
        if self.wait_since:
            self.wait_until = now
            self.pending_wait = True
            self.resume_tip = self.root
        self.step_started = now
        if monitor is None:
            self.previous = previous
            if self.record is None:
                self.record = self._recorder()
            sys.setprofile(self.record)
        elif not monitor.activate(self.ident, self):
            _TRACING.discard(self.ident)
            return False
        return True

    def _recorder(self) -> Any:
        """The profile function: one append per event, the tree is built later. (Cheaper than a
        sys.monitoring tool: two calls of it per Python call against three callbacks, and the threads
        that are not traced never call it, where they would call every callback of a tool. Taking a
        hidden leaf's start back here, as the sys.monitoring recorder does, was measured dearer than
        the replay's run of leaves: 0.1-0.4 us per sub-call more on 3.8-3.14.)"""
        events = self.events
        append = events.append
        clock = perf_counter
        flush = self.flush

        def record(frame: Any, event: str, arg: Any) -> None:
            append((frame, event, arg, clock()))
            if len(events) >= FLUSH_EVENTS:
                flush()

        return record

    def step_out(self, yielded: Any, final: bool) -> None:
        if self.abandoned:
            return  # the thread's own profiler is back already
        if self.monitor is None:
            sys.setprofile(self.previous)
            self.previous = None
        else:
            self.monitor.deactivate(self.ident)
        self._replay()
        now = perf_counter()
        _TRACING.discard(self.ident)
        self.traced += now - self.step_started  # the replay included: it runs on the target's thread
        self.running = False
        if self.pending_wait:
            self._place_wait()
        self.wait_since = 0.0
        if self.probe.stopped:
            self.broken = True  # the command ended while it ran: nobody is waiting for this tree
        if final or self.root is None:
            return
        self.wait_label = "[yield]" if self.probe.kind == "generator" else "[await] %s" % _type_label(yielded)
        self.wait_since = now

    def _place_wait(self) -> None:
        self.pending_wait = False
        host = self.resume_tip if self.resume_tip is not None else self.root
        if host is not None:
            self._attach(host, 1, [self.wait_label, self.wait_since, self.wait_until, None, WAIT, None])

    # ---- the tree, built from the recorded events (in the recorder every FLUSH_EVENTS, or at step_out)

    def flush(self) -> None:
        """Called by a recorder with its buffer full (its own events are off meanwhile)."""
        if self.probe.stopped and self.monitor is None:
            self._abandon()
            return
        self._replay()

    def _replay(self) -> None:
        events = self.events
        if not events:
            return
        try:
            self._replay_events(events)
        except Exception:  # noqa: BLE001 - a bug of ours must not reach the target's call
            self.broken = True
            self.running = False
        del events[:]

    def _replay_events(self, events: list[Any]) -> None:
        last = len(events) - 1
        index = 0
        while index <= last:
            if index < last and self.running and not self.pending_wait:
                used = self._short_leaves(events, index, last)
                if used:
                    index += used
                    continue
            frame, event, what, now = events[index]
            self._event(frame, event, what, now)
            index += 1

    def _short_leaves(self, events: list[Any], index: int, last: int) -> int:
        """Most calls are leaves shorter than -i: a start followed at once by its end. A run of them
        under the same parent is counted as hidden (or truncated, or nothing, as their nodes would
        have been once attached and pruned) without making any node; returns the events used."""
        threshold = self.threshold
        plain = self.plain_codes
        start = index
        while index < last:
            frame, event, what, now = events[index]
            after = events[index + 1]
            if after[3] - now >= threshold:
                break
            if event == "call":
                if after[1] != "return" or after[0] is not frame:
                    break
                code = what if frame is None else frame.f_code
                known = plain.get(code)
                if known is None:
                    known = self.is_plain(code)
                if not known:
                    break
            elif event != "c_call" or (after[1] != "c_return" and after[1] != "c_exception"):
                break
            index += 2
        leaves = (index - start) >> 1
        if leaves:
            self._count_leaves(leaves)
        return index - start

    def _count_leaves(self, leaves: int) -> None:
        """What attaching, then pruning, ``leaves`` calls shorter than -i with no calls of their own
        amounts to: hidden, truncated (beyond MAX_NODES), or nothing under a node already left out."""
        stack = self.stack
        parent, depth = self._parent() if stack[-1][KIND] == THROUGH else (stack[-1], len(stack))
        if parent[KIND] == HIDDEN:
            return
        if depth >= self.max_depth:
            self.deeper += leaves
        else:
            if self.nodes >= MAX_NODES:
                self.truncated += leaves
            else:
                self.hidden += leaves

    def is_plain(self, code: Any) -> bool:
        """Neither ours, nor a generator's or coroutine's, nor the root's: a call the fast paths may count."""
        plain = not code.co_flags & SUSPENDABLE and code.co_filename not in self.own_files and not self._is_root(code)
        self.plain_codes[code] = plain
        return plain

    def _event(self, frame: Any, event: str, what: Any, now: float) -> None:
        """One event, as sys.setprofile names them; ``frame`` is None when the recorder did not need it
        (sys.monitoring: a start or return nests inside the open Python call, only generators need frames)."""
        if self.pending_wait and self.running and not (event == "call" and frame in self.suspended):
            self._place_wait()
        if event == "call":
            code = what if frame is None else frame.f_code  # profile: the frame; monitoring: the code
            if self.running:
                self._enter_py(frame, code, now)
            elif (frame is not None and frame is self.root_frame) or (self.root_frame is None and self._is_root(code)):
                self._enter_root(frame, code, now)
        elif not self.running:
            return
        elif event == "return":
            self._leave_py(frame, now, False)
        elif event == "yield":
            self._leave_py(frame, now, True)
        elif event == "c_call":
            self._enter_c(what, now)
        elif event == "leaves":
            self._count_leaves(what)
        else:  # c_return, c_exception
            self._leave_c(now)

    def _is_root(self, code: Any) -> bool:
        return any(code is root for root in self.root_codes)

    def _abandon(self) -> None:
        """The command ended while this invocation runs: take the profiler off this thread now."""
        sys.setprofile(self.previous)
        self.previous = None
        self.abandoned = self.broken = True
        self.running = False
        del self.events[:]
        _TRACING.discard(self.ident)

    def _enter_root(self, frame: Any, code: Any, now: float) -> None:
        if self.root is None:
            self.root = [code, now, now, None, PY, frame if frame is not None else OPEN]
            self.root_frame = frame
        self.stack = [self.root]
        self.running = True

    def _enter_py(self, frame: Any, code: Any, now: float) -> None:
        node = self.suspended.pop(frame, None) if frame is not None else None
        if node is None:
            mark = frame if frame is not None else OPEN
            if code.co_filename in self.own_files:
                # a hook's wrapper is see-through (its call of the real function is what counts);
                # the agent's own code (a probe, a filter) is left out with everything it calls
                node = [code, 0.0, 0.0, None, THROUGH if code.co_filename == hooks.HOOK_FILE else HIDDEN, mark]
            else:
                node = [code, now, 0.0, None, PY, mark]
                self._attach(*self._parent(), node)
        elif self.pending_wait:
            self.resume_tip = node
        self.stack.append(node)

    def _enter_c(self, function: Any, now: float) -> None:
        node = [function, now, 0.0, None, C, None]
        self._attach(*self._parent(), node)
        self.stack.append(node)

    def _parent(self) -> tuple[list[Any], int]:
        """The open node new calls belong to, and their depth (see-through wrappers skipped)."""
        stack = self.stack
        index = len(stack) - 1
        while stack[index][KIND] == THROUGH:
            index -= 1
        return stack[index], index + 1

    def _attach(self, parent: list[Any], depth: int, node: list[Any]) -> None:
        if parent[KIND] == HIDDEN or depth >= self.max_depth:
            if parent[KIND] != HIDDEN and node[KIND] != WAIT:
                self.deeper += 1  # the first call cut by -d under a shown node: said, as -i's are
            node[KIND] = HIDDEN if node[KIND] != WAIT else WAIT
            return
        if self.nodes >= MAX_NODES:
            self.truncated += 1
            node[KIND] = HIDDEN
            return
        self.nodes += 1
        children = parent[CHILDREN]
        if children is None:
            parent[CHILDREN] = [node]
        else:
            children.append(node)

    def _leave_py(self, frame: Any, now: float, suspends: bool) -> None:
        stack = self.stack
        index = len(stack) - 1
        if frame is None or suspends:
            # sys.monitoring: the innermost open Python call is the one returning (or yielding)
            while index >= 0 and stack[index][FRAME] is None:
                index -= 1
        else:
            while index >= 0 and stack[index][FRAME] is not frame:
                index -= 1
        if index < 0:
            return  # a frame we did not see start (ours, around the root)
        while len(stack) > index + 1:  # C calls left open by an exception
            stack.pop()[END] = now
        node = stack.pop()
        node[END] = now
        if node is self.root:
            if frame is not None and self.root_frame is None:
                self.root_frame = frame  # a generator's root yields: its resumptions are known by frame
            self.running = False  # finished, or suspended: the stepping driver knows which
            return
        if node[KIND] >= HIDDEN:
            return
        if node[WHAT].co_flags & SUSPENDABLE:
            if frame is not None:
                self.suspended[frame] = node  # it may be resumed: keep its node, prune at the end
            return
        node[FRAME] = None
        if now - node[START] < self.threshold:
            self._prune(self._parent()[0], node)

    def _leave_c(self, now: float) -> None:
        stack = self.stack
        if len(stack) < 2 or stack[-1][FRAME] is not None or stack[-1][KIND] == WAIT:
            return
        node = stack.pop()
        node[END] = now
        if now - node[START] < self.threshold:
            self._prune(self._parent()[0], node)

    def _prune(self, parent: list[Any], node: list[Any]) -> None:
        children = parent[CHILDREN]
        if children and children[-1] is node:
            children.pop()
            self.nodes -= 1 + _count(node)
            self.hidden += 1

    # ---- after the invocation: the tree to send

    def result(self, index: int, cost_ms: float, error: BaseException | None) -> dict[str, Any]:
        assert self.root is not None
        item: dict[str, Any] = {"kind": "trace", "index": index, "time": time.time() - cost_ms / 1000.0}
        item["cost"] = round(cost_ms, 4)
        item.update(thread_info(self.ident or get_ident()))
        item["root"] = self._node(self.root, 0)
        item["hidden"] = self.hidden
        item["truncated"] = self.truncated
        if self.deeper:
            item["deeper"] = self.deeper
            item["depth"] = self.max_depth  # -d's, or MAX_DEPTH's (a deep recursion without -d)
        if error is not None:
            item["raised"] = describe_error(error)
        return item

    def _node(self, node: list[Any], depth: int) -> dict[str, Any]:
        what, kind = node[WHAT], node[KIND]
        end = node[END] if node[END] >= node[START] else node[START]
        out: dict[str, Any] = {"cost": round((end - node[START]) * 1000.0, 4)}
        if kind == PY:
            out.update(name=what.co_name, file=what.co_filename, line=what.co_firstlineno)  # the seeds: bare names
        elif kind == C:
            out.update(name=_c_name(what), file="<built-in>", line=0)
        else:
            out.update(name=what, file="", line=0)
        kept = []
        for child in node[CHILDREN] or ():
            child_end = child[END] if child[END] >= child[START] else end
            if child[KIND] != WAIT and child_end - child[START] < self.threshold:
                self.hidden += 1
                continue
            kept.append(self._node(child, depth + 1))
        if kept:
            out["children"] = kept
        return out


# sys.monitoring (3.12+): the tool ids we may take, those no standard tool asks for by number. 0-2
# and 5 are never taken (debugger, coverage, profiler, optimizer): holding cProfile's 2 would make
# the application's own cProfile.enable() fail while we trace. None free: the profile function path.
TOOL_IDS = (3, 4)
_monitoring: Any = getattr(sys, "monitoring", None)  # 3.12+
_OPEN_MONITORS: set[Monitor] = set()  # closed at detach too, should a job's cleanup not have run


class Monitor:
    """One trace command's sys.monitoring tool.

    sys.monitoring events are per interpreter, not per thread: they are switched on only while
    at least one traced invocation (or step of one) runs, and the callbacks drop the events of
    every thread that is not running one with a dictionary look-up. Nothing is ever disabled
    (DISABLE would hold for all threads and only ``restart_events``, which every tool shares,
    undoes it), so closing the tool leaves no trace in any code object.
    """

    def __init__(self, tool: int) -> None:
        self.tool = tool
        self.runs: dict[int, TraceRun] = {}
        self.lock = realthreads.allocate_lock()
        self.closed = False

    @classmethod
    def open(cls) -> Monitor | None:
        """A free tool id with our callbacks, or None (before 3.12, or every id we may use is held)."""
        monitoring = _monitoring
        if monitoring is None:
            return None
        for tool in TOOL_IDS:
            try:
                if monitoring.get_tool(tool) is not None:
                    continue
                monitoring.use_tool_id(tool, "flight_profiler trace")
            except ValueError:  # taken by another thread meanwhile: never steal it
                continue
            monitor = cls(tool)
            for event, callback in _callbacks(monitor.runs).items():
                monitoring.register_callback(tool, event, callback)
            _OPEN_MONITORS.add(monitor)
            context.on_detach(_close_all)
            return monitor
        return None

    def activate(self, ident: int, run: TraceRun) -> bool:
        with self.lock:
            if self.closed:
                return False
            self.runs[ident] = run
            if len(self.runs) == 1:
                _monitoring.set_events(self.tool, _MONITORED)
        return True

    def deactivate(self, ident: int) -> None:
        with self.lock:
            self.runs.pop(ident, None)
            if not self.runs and not self.closed:
                _monitoring.set_events(self.tool, 0)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.runs.clear()
            _OPEN_MONITORS.discard(self)
            monitoring = _monitoring
            try:
                monitoring.set_events(self.tool, 0)
                for event in _callbacks({}):
                    monitoring.register_callback(self.tool, event, None)
            finally:
                monitoring.free_tool_id(self.tool)


def _close_all() -> None:
    for monitor in list(_OPEN_MONITORS):
        monitor.close()


_HOLDERS: set[Holder] = set()  # let go at detach too, should a job's cleanup not have run


def _hold(frame: Any, event: str, arg: Any) -> None:
    """The holder thread's profile function: it only has to be there."""


class Holder:
    """3.12+: the interpreter's profiling events kept on while a trace command traces often.

    From 3.12 the first thread's ``sys.setprofile`` switches the interpreter's profiling events on
    and the last one's off, and each switch re-instruments every code object that any thread is
    running, then each one that runs next: tracing every invocation of a short function paid that
    twice per invocation, for the stacks of all the target's threads (bench/RESULTS-trace.md).
    While a thread of ours keeps a do-nothing profile function (and waits in C, so it is never
    called), the traced thread's own switches change no event: nothing is re-instrumented.
    Meanwhile every other thread's calls pass the interpreter's check for a profile function (in C),
    which they pass anyway while an invocation is traced: so the events are held only while at
    least HOLD_SHARE of the wall time is spent in traced invocations, and let go when the share
    falls below RELEASE_SHARE, when the command ends and at detach.
    """

    def __init__(self, probe: TraceProbe) -> None:
        self.probe = probe
        self.stopping = realthreads.Event()
        self.thread = realthreads.Thread(self._run, "flight_profiler-trace-hold")

    def start(self) -> None:
        HELD[0] += 1
        _HOLDERS.add(self)
        context.on_detach(_release_all)
        self.thread.start()

    def release(self) -> None:
        self.stopping.set()
        if not self.thread.is_current():
            self.thread.join(1.0)
        _HOLDERS.discard(self)

    def _run(self) -> None:
        me = get_ident()
        AGENT_THREAD_IDS.add(me)
        sys.setprofile(_hold)
        try:
            self._watch()
        finally:
            sys.setprofile(None)
            AGENT_THREAD_IDS.discard(me)
            _HOLDERS.discard(self)
            self.probe.holder_gone(self)

    def _watch(self) -> None:
        probe = self.probe
        mark, profiled = perf_counter(), probe.profiled
        while not self.stopping.wait(HOLD_WINDOW) and not probe.stopped:
            now = perf_counter()
            if probe.profiled - profiled < RELEASE_SHARE * (now - mark):
                return
            mark, profiled = now, probe.profiled


def _release_all() -> None:
    for holder in list(_HOLDERS):
        holder.release()


_MONITORED = 0


def _callbacks(runs: dict[int, TraceRun]) -> dict[int, Any]:
    """The recorder's callbacks, by event: each appends one tuple for the traced threads' events."""
    events = _monitoring.events
    get = runs.get
    ident = get_ident
    clock = perf_counter
    getframe = sys._getframe
    returned = _return_callback(runs)

    def start(code: Any, offset: int) -> None:
        run = get(ident())
        if run is not None:
            recorded = run.events
            recorded.append((None, "call", code, clock()))
            if len(recorded) >= FLUSH_EVENTS:
                run.flush()

    def resume(code: Any, offset: int, *thrown: Any) -> None:  # a generator's frame: its node is known by it
        run = get(ident())
        if run is not None:
            run.events.append((getframe(1), "call", code, clock()))

    def yielded(code: Any, offset: int, value: Any) -> None:
        run = get(ident())
        if run is not None:
            run.events.append((getframe(1), "yield", None, clock()))

    return {
        events.PY_START: start,
        events.PY_RESUME: resume,
        events.PY_THROW: resume,
        events.PY_RETURN: returned,
        events.PY_UNWIND: returned,
        events.PY_YIELD: yielded,
        **_c_callbacks(runs),
    }


def _return_callback(runs: dict[int, TraceRun]) -> Any:
    get = runs.get
    ident = get_ident
    clock = perf_counter

    def returned(code: Any, offset: int, value: Any) -> None:
        run = get(ident())
        if run is not None:
            recorded = run.events
            now = clock()
            if recorded:
                last = recorded[-1]
                # the end of a call started right before (nothing recorded in between), shorter than -i:
                # it can only be a hidden leaf; counted here, it costs the replay nothing
                if last[2] is code and last[0] is None and now - last[3] < run.threshold:
                    plain = run.plain_codes.get(code)
                    if plain is None:
                        plain = run.is_plain(code)
                    if plain:
                        recorded.pop()
                        if recorded and recorded[-1][1] == "leaves":
                            recorded[-1][2] += 1
                        else:
                            recorded.append([None, "leaves", 1, now])
                        return
            recorded.append((None, "return", None, now))

    return returned


def _c_callbacks(runs: dict[int, TraceRun]) -> dict[int, Any]:
    events = _monitoring.events
    get = runs.get
    ident = get_ident
    clock = perf_counter
    builtin = types.BuiltinFunctionType
    descriptor = types.MethodDescriptorType
    function = types.FunctionType
    method = types.MethodType
    missing = _monitoring.MISSING

    def call(code: Any, offset: int, callee: Any, arg0: Any) -> None:
        # only what sys.setprofile reports as a C call (c_call, then c_return or c_exception): a
        # built-in function, or a method descriptor called with its object; tested inline, a
        # Python callee (the common case) costs two identity tests
        kind = type(callee)
        if kind is builtin or (
            arg0 is not missing
            if kind is descriptor
            else kind is not function and kind is not method and isinstance(callee, builtin)
        ):
            run = get(ident())
            if run is not None:
                recorded = run.events
                recorded.append((None, "c_call", callee, clock()))
                if len(recorded) >= FLUSH_EVENTS:
                    run.flush()

    def c_returned(code: Any, offset: int, callee: Any, arg0: Any) -> None:
        kind = type(callee)
        if kind is builtin or (
            arg0 is not missing
            if kind is descriptor
            else kind is not function and kind is not method and isinstance(callee, builtin)
        ):
            run = get(ident())
            if run is not None:
                recorded = run.events
                now = clock()
                if recorded:
                    last = recorded[-1]
                    if last[2] is callee and last[1] == "c_call" and now - last[3] < run.threshold:
                        recorded.pop()  # a C call shorter than -i: a hidden leaf (see returned)
                        if recorded and recorded[-1][1] == "leaves":
                            recorded[-1][2] += 1
                        else:
                            recorded.append([None, "leaves", 1, now])
                        return
                recorded.append((None, "c_return", None, now))

    return {events.CALL: call, events.C_RETURN: c_returned, events.C_RAISE: c_returned}


if _monitoring is not None:
    _MONITORED = sum(_callbacks({}))


def _own_files() -> set[str]:
    """Files of the agent's code, the hooks' wrappers and the users' expressions: not the target's calls."""
    package = __name__.split(".", 1)[0]
    files = {hooks.HOOK_FILE, "<expression>"}
    for name, module in list(sys.modules.items()):
        if name == package or name.startswith(package + "."):
            filename = getattr(module, "__file__", None)
            if filename:
                files.add(filename)
    return files


def _count(node: list[Any]) -> int:
    total = 0
    for child in node[CHILDREN] or ():
        total += 1 + _count(child)
    return total


def _c_name(function: Any) -> str:
    try:
        name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
        return str(name) if name else repr(function)[:80]
    except Exception:  # noqa: BLE001 - a hostile callable
        return "<C function>"


def _type_label(value: Any) -> str:
    return "None" if value is None else class_name(type(value))


def _step_generator(run: TraceRun, inner: Any) -> Any:
    """Run a generator (or an awaitable's iterator) one step at a time, tracing each step."""
    value: Any = None
    error: BaseException | None = None
    while True:
        if not run.step_in():
            run.broken = True  # a C profiler appeared meanwhile: finish untraced
            return (yield from _resume(inner, value, error))
        try:
            yielded = inner.send(value) if error is None else inner.throw(error)
        except StopIteration as stop:
            run.step_out(None, True)
            return stop.value
        except BaseException:
            run.step_out(None, True)
            raise
        run.step_out(yielded, False)
        try:
            value = yield yielded
            error = None
        except GeneratorExit:
            inner.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - thrown in by the consumer: pass it on
            value, error = None, exc


def _resume(inner: Any, value: Any, error: BaseException | None) -> Any:
    """Finish ``inner`` without tracing, from where stepping stopped."""
    while True:
        try:
            yielded = inner.send(value) if error is None else inner.throw(error)
        except StopIteration as stop:
            return stop.value
        try:
            value, error = (yield yielded), None
        except GeneratorExit:
            inner.close()
            raise
        except BaseException as exc:  # noqa: BLE001
            value, error = None, exc


# the same stepping, awaitable: a generator-based coroutine, as types.coroutine would make it
_step_coroutine = types.FunctionType(
    _step_generator.__code__.replace(co_flags=_step_generator.__code__.co_flags | hooks.CO_ITERABLE_COROUTINE),
    _step_generator.__globals__,
    "_step_coroutine",
)


def run(request: TraceRequest, ctx: JobContext) -> None:
    if int(request.get("limit", 0)) < 1:
        raise CommandFailed("-n must be at least 1")
    target = resolve(request["module"], request.get("cls"), request["method"], request.get("nested"))
    code = target.code
    probe = TraceProbe(request, target.is_method, hooks.code_kind(code))
    ctx.add_cleanup(probe.stop)  # closes its guard and frees its tool id, whatever happens next
    handle = hooks.install(target.func, probe, target.nested)
    probe.handle = handle
    ctx.add_cleanup(handle.remove)
    ctx.emit({"kind": "start", **target.describe(), "limit": probe.limit, "budget": probe.budget.share * 100})
    reason = serve(ctx, probe.outbox, probe.full, ctx.emit)
    handle.remove()
    probe.stop()
    if reason == "cancelled":
        return
    if probe.guard is not None and probe.guard.reason is not None:
        raise CommandFailed(probe.guard.reason)
    ctx.emit(
        {
            "kind": "end",
            "reason": reason,
            "shown": probe.shown,
            "below_entrance_time": probe.below_entrance,
            "not_traced_budget": probe.budget.refused,
            "skipped": probe.bucket.skipped_total,
            "dropped": probe.outbox.dropped,
        }
    )
