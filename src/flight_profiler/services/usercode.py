"""User code we run in the target: bounded in time, stoppable, and contained (runs in the target).

User code is every expression, filter and statement a command runs for the
user (``-e``, ``--expr``, ``-f``, ``console``, ``tt -p``), and what it calls.
It runs in one of two places:

- **the application's threads** (``watch``/``trace``/``tt`` filters and
  captures, inside a hooked call). We cannot stop such a thread without hurting
  it, so each evaluation is timed with the monotonic clock, and one that ran
  over its budget, or raised anything at all (``BaseException`` included), is
  *switched off* for the rest of the command (``Guard``): reported once, never
  a match, never propagated into the application's call. One that never
  returns is stopped by the watchdog (below).
- **the agent's own threads** (``console``, ``-e`` of getglobal/vmtool, the
  replay of ``tt -p``): ``contain`` runs it; a budget overrun ends that command
  with a one-line error, Ctrl-C and detach stop it (``interrupt``), and
  ``exit()``, ``SystemExit`` and ``KeyboardInterrupt`` end the evaluation only.

How a running evaluation is stopped: an *asynchronous exception*
(``PyThreadState_SetAsyncExc``, through ``ctypes``, imported only the first
time one is needed), raised by CPython in that thread at its next bytecode.
This must never reach code that is not ours, so:

1. A thread is *marked* while it is inside an evaluation: ``ACTIVE[ident]`` is
   that evaluation's *mark*, a ``(deadline, guard)`` tuple made for it alone,
   so its identity names the evaluation. Marking and unmarking are single
   dict operations: no lock on the hot path. The marking is the first
   statement inside the ``try`` whose handler contains the stop: on 3.8 and 3.9
   the eval loop checks for pending work before most instructions, so a stop
   posted right after a marking placed before the ``try`` would land there.
2. The poster (the watchdog thread, or the session on Ctrl-C/detach) first
   announces ``_POSTED[ident] = mark`` and only then, still under ``_lock``,
   checks that the thread is marked with that same mark and posts. An
   evaluation that ends unmarks first and then looks at ``_POSTED``: if the
   poster announced this evaluation, it takes ``_lock`` (so a post in
   progress completes) and clears whatever is still pending
   (``PyThreadState_SetAsyncExc(tid, NULL)``). Under the GIL either the
   poster checked before the unmarking (then the evaluation sees the
   announcement) or after it (then nothing is posted): in both orders nothing
   is left pending once the evaluation's code returns.
   Our code in that window takes no lock with ``with``: an asynchronous
   exception can land between a lock's acquire and the start of the block
   that would release it.
3. At most one exception is posted per evaluation in an application thread.
   Where it lands (in the user code, in our handler, in the unmarking) a
   handler of ours catches it: the evaluation runs inside two nested
   ``try`` blocks, and the outer handler, which runs only once the single
   exception was delivered, cannot be hit again. User code that catches and
   ignores it keeps running: the thread is then reported as busy.
   Agent threads are posted again every ``REPOST_AFTER`` seconds (a
   ``while True: try/except: pass`` in the console), and their job's top
   level catches what might land outside an evaluation.
4. The user's code never shares a frame with those handlers: it is a
   function of its own (``fn`` here; ``callexpr`` compiles a filter into one)
   that our frame calls. CPython's compiler does not cover every instruction
   of a ``try`` body with its handler: 3.12 to 3.14 leave the backward jump of
   an inlined comprehension with a condition, and 3.14 that of an inlined
   ``all()``/``any()`` over a generator, outside the exception table; on 3.13
   and 3.14 a stop delivered at that jump skipped the handler and ended the
   application's thread (issue 9). In the user's own frame such a hole only
   ends that frame; the stop then reaches ours at the call, and every
   instruction of our frames from the marking to the unmarking is checked to
   be covered, on every interpreter (tests/targets/budget_stress.py).
   The one exception are filters compiled into a hook's wrapper (the end of
   this module, ``services.inline``): only filters without scopes of their own
   are compiled in (no comprehension, generator expression or lambda), so
   they have no backward jump at all, and their stop is posted only while the
   thread is inside them, where it lands at a call or before the next
   instruction, inside the wrapper's two ``try`` blocks.

A thread blocked in C (a ``time.sleep``, a lock) only sees the exception when
it returns to Python; until then ``describe_threads`` names it with its stack,
and the watchdog has switched its guard off, so no other call enters that
filter meanwhile. Code that stays inside one C call that holds the GIL (say
``sum(range(10**10))``) stalls every thread of the process, ours included:
nothing in the process can stop it, and its budget applies when it returns.
"""

from __future__ import annotations

import sys
import time

from . import realthreads
from .context import AGENT_THREAD_IDS, CommandFailed
from .describe import describe_error, short

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping

APP_BUDGET_MS = 200.0  # one evaluation in an application thread (filters, --expr, a call's capture)
AGENT_BUDGET_MS = 5000.0  # one evaluation in an agent thread (-e of getglobal/vmtool)
# The program's own code that a capture or a description runs in an agent thread (a __repr__, __len__,
# __iter__, a property, a hostile __getattribute__): the same as -e's, because it is the same kind of
# wait (only our reply waits, never the application's call), and a __repr__ that legitimately reads a
# database or formats a big frame takes seconds where 200 ms would cut it; --budget-ms of getglobal,
# vmtool and tt -i sets it. See ``call_contained``.
CAPTURE_BUDGET_MS = AGENT_BUDGET_MS
POLL = 0.05  # seconds between two looks of the watchdog
REPOST_AFTER = 1.0  # an agent thread whose user code swallowed the exception gets it again after this
WATCHDOG_IDLE = 10.0  # seconds the watchdog stays after the last guard closed (a thread start costs the target)
STACK_FRAMES = 5

monotonic = time.monotonic
get_ident = realthreads.get_ident  # not threading's: an idle agent must not import it


class BudgetExceeded(BaseException):
    """flight_profiler stopped this code: it ran over its time budget."""


class Interrupted(BaseException):
    """flight_profiler stopped this code: the client pressed Ctrl-C or detached."""


OURS = (BudgetExceeded, Interrupted)


class _Never(BaseException):
    """Never raised: what ``PASSED_ON`` is where every exception of user code can be kept."""


# Python 3.8 keeps a thread "overflowed" after a RecursionError until its stack is 50 frames below
# the limit again; meanwhile calls go 50 frames past the limit unchecked, and one more is a fatal
# error ("Cannot recover from stack overflow", the process aborts). A filter that raised
# RecursionError in the program's thread, kept as "no match", let the hooked call go on down: a
# hooked recursion at the limit aborted the process. On 3.8 it is passed on, as the call itself
# would have raised it (the filter ran where that call runs); 3.9+ reset the state at once.
PASSED_ON: type[BaseException] = RecursionError if sys.version_info < (3, 9) else _Never


class _Failed:
    """What a guarded evaluation returns when it did not complete."""

    def __repr__(self) -> str:
        return "FAILED"


FAILED: Any = _Failed()

if TYPE_CHECKING:
    Mark = tuple[float, Any]  # (deadline, the Guard or None): one per evaluation, compared by identity

ACTIVE: dict[int, Mark] = {}  # thread ident -> the mark of the evaluation it is in
_POSTED: dict[int, Mark] = {}  # thread ident -> the evaluation an exception was posted (or is being) for
_posted_at: dict[int, float] = {}
_lock = realthreads.RLock()  # an RLock: it can tell whether this thread holds it (see _leave)


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> None:
    import ctypes  # only once something is to be stopped: an idle agent never loads it

    target = ctypes.py_object(exc) if exc is not None else ctypes.c_void_p(None)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), target)


class _Drained(BaseException):
    """Our own placeholder for a stop being dropped: delivered and caught at once (``_drop_pending``)."""


_FLAG_STAYS = sys.version_info < (3, 13)  # the interpreter-wide "async exception" flag: see _drop_pending


def _drop_pending(ident: int) -> None:
    """Drop a stop posted to this thread (the calling one) and perhaps not delivered.

    ``PyThreadState_SetAsyncExc(tid, NULL)`` drops it, but before 3.13 it also sets the
    interpreter's "asynchronous exception pending" flag, and only the delivery of one resets it:
    from then on every thread of the target would take the eval loop's slow path at each check
    point, and a thread under a trace function (3.11) loops at a function's first instruction.
    So before 3.13 a placeholder of ours replaces the stop and is delivered here, at once.
    """
    if not _FLAG_STAYS:
        _set_async_exc(ident, None)
        return
    try:
        _set_async_exc(ident, _Drained)
        while True:  # each turn is a check point: it lands here
            pass
    except _Drained:
        pass


# the stops a 3.11 watchdog took back for a while (see services/watchdog.py, _FREEZES_TRACED)
_resting: dict[int, tuple[float, Any, Any]] = {}  # ident -> (taken back at, mark or filter frame, exception)
# 3.11: the lock a watchdog waits on while the stop it posted to a thread is pending (ident -> lock, held).
# The thread releases it as it settles, stopped or not: the watchdog then takes the stop back at once (a
# no-op once delivered) instead of sleeping out its whole window, holding ``_lock`` (every stopped
# thread's settle waits for that) and posting nobody else: 8 threads' stops took 8 windows, 0.3 s
_wake: dict[int, Any] = {}


def _leave(ident: int, mark: Mark, outer: Mark | None) -> None:
    """Unmark the thread, then clear an exception posted for this evaluation and not delivered."""
    if outer is None:
        ACTIVE.pop(ident, None)
    else:
        ACTIVE[ident] = outer  # back in the evaluation that called this one
    _settle(ident, mark)


def _settle(ident: int, key: Any) -> None:
    """Forget the stop announced for the evaluation ``key`` names and drop it if still pending."""
    if _wake:  # a 3.11 watchdog's window is open (empty otherwise: no call on other interpreters)
        wake = _wake.pop(ident, None)  # one C call: of this thread and a watchdog that gave up, one gets it
        if wake is not None:
            wake.release()  # held until now: only the one that popped it releases it
    if _POSTED.get(ident) is key:
        # not ``with _lock``: the pending exception may land right after the acquire, before a with
        # block's cleanup covers it (3.14 checks right after the call); this finally covers it
        try:
            _lock.acquire()
            if _POSTED.get(ident) is key:
                del _POSTED[ident]
                _posted_at.pop(ident, None)
                _drop_pending(ident)
        finally:
            if _lock._is_owned():
                _lock.release()


def run_marked(
    fn: Callable[..., Any], args: tuple[Any, ...], limit: float, guard: Guard | Stall | None = None
) -> tuple[Any, BaseException | None, bool]:
    """Run ``fn(*args)`` marked for the watchdog: (value or FAILED, what it raised, whether it overran)."""
    ident = get_ident()
    outer = ACTIVE.get(ident)
    mark = (monotonic() + limit, guard)
    error: BaseException | None = None
    # The unmarking is inline, and ``_settle`` is called only when a stop was announced: near the
    # recursion limit (a hooked recursive function) a call of ours raised RecursionError in both
    # handlers, the thread stayed marked after it returned to the program, and the watchdog's
    # BudgetExceeded ended the program's thread in its own code, long after.
    try:
        try:
            ACTIVE[ident] = mark  # inside: no check point lies between the marking and the handler
            value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - everything user code raises stays here
            value, error = FAILED, exc
        if outer is None:
            ACTIVE.pop(ident, None)
        else:
            ACTIVE[ident] = outer  # back in the evaluation that called this one
        if _wake or _POSTED.get(ident) is mark:
            _settle(ident, mark)
    except BaseException as exc:  # noqa: BLE001 - the one posted exception, landed after the user code
        if outer is None:
            ACTIVE.pop(ident, None)
        else:
            ACTIVE[ident] = outer
        if _wake or _POSTED.get(ident) is mark:
            try:
                _settle(ident, mark)
            except RecursionError:  # no room for its frame: nothing is marked, so nothing more is posted
                pass
        value, error = FAILED, exc
    return value, error, monotonic() > mark[0]


# ---------------------------------------------------------------- application threads


class Guard:
    """One command's user code of one kind in the application's threads (a filter, an expression).

    ``call(fn, *args)`` returns what ``fn`` returned, or FAILED when it raised or
    ran over the budget; then the guard is off for good (``call`` returns
    FAILED at once) and ``reason`` says why, once. The command's thread sees
    ``tripped`` set, ends, and reports ``reason``.
    """

    def __init__(self, what: str, budget_ms: float | None, on_trip: Callable[[], None] | None = None) -> None:
        self.what = what
        self.budget_ms = APP_BUDGET_MS if budget_ms is None else float(budget_ms)
        self.limit = self.budget_ms / 1000.0
        self.off = False
        self.reason: str | None = None
        self.tripped = realthreads.Event()
        self._on_trip = on_trip
        self._closed = False
        watchdog_open()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.off:
            return FAILED
        value, error, overran = run_marked(fn, args, self.limit, self)
        if error is not None or overran:
            self.trip(error, get_ident())
            return FAILED
        return value

    def trip(self, error: BaseException | None, ident: int) -> None:
        """Switch the user code off; the first reason is the one reported (any thread may call this)."""
        self.off = True
        if self.reason is not None:
            return
        thread = _thread_name(ident)
        if error is None or isinstance(error, BudgetExceeded):
            self.reason = "%s ran over its budget of %g ms in thread %s: switched off (--budget-ms)" % (
                self.what,
                self.budget_ms,
                thread,
            )
        else:
            self.reason = "%s raised %s in thread %s: switched off" % (self.what, describe(error), thread)
        self.tripped.set()
        if self._on_trip is not None:
            try:
                self._on_trip()
            except Exception:  # noqa: BLE001, S110 - the application's call must go on
                pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            watchdog_close()


def switched_off(*guards: Guard | None) -> str | None:
    """Why a command's user code was switched off (the first guard that tripped), or None."""
    for guard in guards:
        if guard is not None and guard.reason is not None:
            return guard.reason
    return None


# ---------------------------------------------------------------- agent threads


def contain(fn: Callable[..., Any], args: tuple[Any, ...], budget_ms: float | None, what: str) -> Any:
    """Run a command's user code in an agent thread; ``budget_ms`` None: until stopped.

    Returns what ``fn`` returned or raises what it raised (``Exception``s:
    the command's handler shows the user code's own as results); the other
    ``BaseException``s (SystemExit, KeyboardInterrupt) are raised as
    ``UserError``; an overrun is a ``CommandFailed``; Ctrl-C or detach raise
    ``Stopped``.
    """
    limit = float("inf") if budget_ms is None else float(budget_ms) / 1000.0
    if budget_ms is not None:
        watchdog_open()
    try:
        value, error, overran = run_marked(fn, args, limit)
    finally:
        if budget_ms is not None:
            watchdog_close()
    if isinstance(error, Interrupted):
        raise Stopped()
    if isinstance(error, BudgetExceeded) or (overran and error is None):
        raise CommandFailed("%s ran over its budget of %g ms: stopped (--budget-ms)" % (what, budget_ms or 0.0))
    if isinstance(error, Exception):
        raise error
    if error is not None:
        raise UserError(error)
    return value


def call_contained(
    fn: Callable[..., Any], args: tuple[Any, ...], budget_ms: float = CAPTURE_BUDGET_MS
) -> tuple[Any, BaseException | None, bool]:
    """Run ``fn(*args)``, our code that may run the program's (a capture, a repr): (value or FAILED,
    what it raised, whether it overran).

    In an application thread it is called as it is: a hooked call's capture runs inside that
    command's ``Guard``, which bounds it and switches it off. In an agent thread (a quick command
    on the session's thread, a job) it is marked with ``budget_ms``, or less when an evaluation it
    is part of (``-e``) ends sooner: past it the watchdog stops it (``BudgetExceeded``, returned as
    the error) so that a ``__repr__`` that never returns cannot keep the session's thread, which
    alone reads the client's Ctrl-C and detach. Whatever it raised is returned, ``SystemExit`` and
    ``KeyboardInterrupt`` included; only ``Interrupted`` (Ctrl-C, detach) is raised again: the
    command ends, as it would have had the stop landed in its own code.
    """
    ident = get_ident()
    if ident not in AGENT_THREAD_IDS:
        try:
            return fn(*args), None, False
        except Exception as exc:  # noqa: BLE001 - BaseExceptions go to the Guard around us
            return FAILED, exc, False
    limit = float(budget_ms) / 1000.0
    outer = ACTIVE.get(ident)
    if outer is not None:
        limit = min(limit, outer[0] - monotonic())  # what is left of -e's budget, when inside one
    watchdog_open()
    try:
        value, error, overran = run_marked(fn, args, limit, STALLS.get(ident))
    finally:
        watchdog_close()
    if isinstance(error, Interrupted):
        raise error
    return value, error, overran or isinstance(error, BudgetExceeded)


class Allowance:
    """One budget shared by many reads of the program's code (each task's methods, each ABC's hook):
    a per-read budget alone bounds one read, not a command that reads one per object it shows.

    Each ``call`` is ``call_contained`` with what is left (at most ``each_ms``, so that one read that
    hangs leaves some for the others); once the total is spent the rest are not run and come back
    overrun, so the command can show them as unread and still show the others. ``spent_on`` names
    the first read that overran.
    """

    def __init__(self, total_ms: float, each_ms: float | None = None) -> None:
        self.total_ms = float(total_ms)
        self.left_ms = self.total_ms
        self.each_ms = self.total_ms if each_ms is None else float(each_ms)
        self.spent_on: str | None = None

    def call(self, what: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, BaseException | None, bool]:
        if self.left_ms <= 0:
            return FAILED, None, True
        started = monotonic()
        value, error, overran = call_contained(fn, args, min(self.each_ms, self.left_ms))
        self.left_ms -= (monotonic() - started) * 1000.0
        if overran or self.left_ms <= 0:
            self.spent_on = self.spent_on or what
            return FAILED, error, True
        return value, error, False


class Stall:
    """A session's reader thread running a quick command: told when the program's code it called
    stays blocked outside Python past its budget, so that the session need not wait on it for good.

    The watchdog calls ``trip`` at each look while the thread's evaluation is overdue (the slot of a
    mark where an application thread's ``Guard`` would be); the stop it posts at the first look ends
    code that is in Python. Code blocked in C (a lock, a read) cannot be stopped: ``grace`` seconds
    later ``on_stuck(stall, ident)`` runs, once, on the watchdog's thread.
    """

    def __init__(self, on_stuck: Callable[[Stall, int], None], grace: float) -> None:
        self.on_stuck = on_stuck
        self.grace = grace
        self.overdue_since: float | None = None
        self.fired = False

    def trip(self, error: BaseException | None, ident: int) -> None:
        now = monotonic()
        if self.overdue_since is None:
            self.overdue_since = now
        elif not self.fired and now - self.overdue_since >= self.grace:
            self.fired = True
            try:
                self.on_stuck(self, ident)
            except Exception:  # noqa: BLE001, S110 - the watchdog must go on looking for the others
                pass


STALLS: dict[int, Stall] = {}  # thread ident -> the Stall its contained captures report to (quick commands)


class UserError(Exception):
    """What user code raised, carried out of ``contain`` (``error``)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(describe(error))
        self.error = error


class Stopped(Exception):
    """The user code was stopped by Ctrl-C or detach: the command ends as cancelled."""


def interrupt(ident: int | None) -> bool:
    """Stop the user code the thread runs now (Ctrl-C, detach); False when it runs none."""
    if ident is None:
        return False
    mark = ACTIVE.get(ident)
    if mark is None:
        return False
    from . import watchdog  # compiled on first use: the first answer of most commands posts no stop

    return watchdog._post(ident, mark, Interrupted, monotonic())


def overdue() -> list[int]:
    """Threads still inside an evaluation past its budget (blocked in C, or swallowing our stop)."""
    now = monotonic()
    return [ident for ident, mark in list(ACTIVE.items()) if mark[0] < now] + [
        ident for ident in list(_region_late) if ident not in ACTIVE
    ]


def describe_threads(idents: list[int]) -> str:
    """Each thread by name and innermost frames, for a reply that says they are still busy."""
    frames = realthreads.thread_frames()  # not this frame, which ``frames`` would hold: a cycle
    return "; ".join("%s at %s" % (_thread_name(ident), _stack(frames.get(ident))) for ident in idents)


def _thread_name(ident: int) -> str:
    """Without threading.current_thread(), which would make a dummy Thread for a thread started in C."""
    threading: Any = sys.modules.get("threading")  # only if the target loaded it
    thread = threading._active.get(ident) if threading is not None else None
    return "%s (tid %d)" % (short(str(thread.name)) if thread is not None else "Thread", ident)


def _stack(frame: Any) -> str:
    found: list[str] = []
    while frame is not None and len(found) < STACK_FRAMES:
        code = frame.f_code
        if _region_guard(frame) is not None:  # a filter compiled into a hook's wrapper: name it as one
            found.append("<expression> (filter of %s)" % code.co_name)
        else:
            found.append("%s:%d in %s" % (code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return " <- ".join(found) if found else "(no Python frame)"


def budget_of(request: Mapping[str, Any], default: float) -> float:
    """The request's ``budget_ms``, checked (the client checks it too; the agent trusts no request)."""
    value = request.get("budget_ms")
    if value is None:
        return default
    try:
        budget = float(value)
    except (TypeError, ValueError):
        raise CommandFailed("--budget-ms must be a number of milliseconds, got %r" % (value,)) from None
    if not 1.0 <= budget <= 3600000.0:  # also refuses nan
        raise CommandFailed("--budget-ms must be between 1 and 3600000, got %r" % (value,))
    return budget


def describe(error: BaseException) -> str:
    return describe_error(error, limit=500)


def is_ours(error: BaseException) -> bool:
    return isinstance(error, OURS)


# ---------------------------------------------------------------- the watchdog thread
#
# It and the posting of stops live in ``services.watchdog``, compiled the first time a budget or a
# stop needs them: most commands' first answer needs neither (compiling our modules is most of the
# CPU an agent's start costs its target). The state they share with the marks above stays here.


def watchdog_open() -> None:
    """A guard needs the watchdog: start it unless it runs."""
    from . import watchdog

    watchdog.watchdog_open()


def watchdog_close() -> None:
    from . import watchdog

    watchdog.watchdog_close()


def stop_watchdog() -> None:
    """Detach: the watchdog ends now (its module registers this with ``on_detach`` when it starts)."""
    from . import watchdog

    watchdog.stop_watchdog()


# ---------------------------------------------------------------- filters compiled into a hook's wrapper
#
# A hot function's filter costs most when it is a function of its own, marked for the watchdog on
# every call (two C calls, a tuple and two dict operations: more than a small filter itself).
# ``services.inline`` compiles the filter into the hook's wrapper instead, every instruction of it
# on the line ``REGION_LINE`` of the wrapper's code, and registers that code here (``watch_region``).
# Nothing is marked per call: the watchdog finds the evaluations by looking at the threads' stacks
# (a frame of a registered code at that line is inside the filter, or inside what the filter
# called). A frame seen there at two looks ``limit`` apart has run over its budget: the guard is
# switched off and the stop is posted, once, by one C call that looks at the frame's line and posts
# (``watchdog._post_region``): no other thread runs in between, so the stop always lands inside the filter
# (its two ``try`` blocks in the wrapper, as in run_marked: what lands in our first handler is
# caught by the second). Nothing is left pending, so the wrapper looks at nothing after the filter.

REGION_LINE = 1000  # beyond any line of the wrapper's own template
_region_posted: dict[int, Any] = {}  # id(frame) -> frame: evaluations stopped already
REGIONS: dict[int, tuple[Any, Guard]] = {}  # id(wrapper code) -> (the code, the filter's guard)
# the regions of commands that ended: still watched while a thread is inside (as a mark stays in
# ACTIVE until its evaluation ends), dropped at the first look that finds none there
_closing: set[int] = set()
_seen: dict[int, tuple[Any, float]] = {}  # id(frame) -> (frame, when the watchdog first saw it in the filter)
_region_late: set[int] = set()  # threads found past a compiled filter's budget at the last look


def watch_region(code: Any, guard: Guard) -> None:
    """Evaluations of the filter compiled into ``code`` are bounded by ``guard``'s budget."""
    REGIONS[id(code)] = (code, guard)
    _closing.discard(id(code))


def unwatch_regions(guard: Guard) -> None:
    """The command ended: its compiled filters are watched until no thread is inside any more."""
    for key, entry in list(REGIONS.items()):
        if entry[1] is guard:
            _closing.add(key)


def _forget_regions() -> None:
    """Detach: nothing is watched any more (the watchdog ends)."""
    REGIONS.clear()
    _closing.clear()
    _seen.clear()
    _region_late.clear()
    _region_posted.clear()


def _region_guard(frame: Any) -> Guard | None:
    entry = REGIONS.get(id(frame.f_code))
    if entry is None or entry[0] is not frame.f_code or frame.f_lineno != REGION_LINE:
        return None
    return entry[1]


def region_settle(depth: int = 1) -> None:
    """Clear a stop posted for this evaluation (the wrapper's frame, ``depth`` up) and not delivered,
    by the marks protocol (a wrapper's outer handler calls it; compiled filters post none that way)."""
    _settle(get_ident(), sys._getframe(depth))  # evaluated here: depth counts from this frame
