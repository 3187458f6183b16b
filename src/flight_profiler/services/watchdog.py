"""The watchdog thread and the posting of stops (runs in the target).

What ``services.usercode`` describes (the marks, the announcements, the compiled filters' regions),
minus what every command runs: this part is compiled the first time a budget or a stop needs it
(a guard, a contained capture of the program's code, Ctrl-C, a detach that finds user code
running), not at the agent's start. The state it shares with the marks (``ACTIVE``, ``_POSTED``,
``_lock``, ``REGIONS``...) stays in ``usercode``; the clock and the polling intervals are read
from there at each use, so that a test that sets them there sets them here.
"""

from __future__ import annotations

import sys

from . import realthreads, usercode
from .context import AGENT_THREAD_IDS, on_detach
from .usercode import (
    _POSTED,
    ACTIVE,
    REGION_LINE,
    REGIONS,
    BudgetExceeded,
    _closing,
    _Drained,
    _forget_regions,
    _lock,
    _posted_at,
    _region_guard,
    _region_late,
    _region_posted,
    _resting,
    _seen,
    _set_async_exc,
    _wake,
    get_ident,
)

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

    from .usercode import Guard, Mark


# CPython 3.11 only: while a posted stop waits in a thread blocked in C, every other thread that has a
# trace or profile function (a debugger, coverage, a profiler) stops at its next check point and goes
# round there until the stop is delivered (the interpreter-wide flag sends it to the slow path, which
# finds nothing of its own to do and returns to the same instruction): measured, 1 call in 1 s instead of
# 50 000. So on 3.11 a stop is left pending ``PENDING_WINDOW`` at most, then taken back, and posted again
# ``REPOST_AFTER`` later while the thread is still inside: traced threads lose about 4 % meanwhile instead
# of all of it. The post, the wait and the taking back are one C call (``_post_briefly``), so that they
# work in a watchdog that is traced itself (coverage keeps a trace function in our threads in the tests):
# it would be held at its own next check point too.
_FREEZES_TRACED = sys.version_info[:2] == (3, 11)
PENDING_WINDOW = 0.04


def _post_briefly(ident: int, first: Any, exc: Any) -> None:
    """3.11: post ``exc`` to ``ident`` (``first``: posts it, or nothing, from C), leave it pending a
    moment, take it back; the watchdog then takes a placeholder of its own, which resets the flag."""
    import ctypes
    from itertools import chain

    post = ctypes.pythonapi.PyThreadState_SetAsyncExc
    tid, me = ctypes.c_ulong(ident), ctypes.c_ulong(get_ident())
    if first is None:
        first = map(post, (tid,), (ctypes.py_object(exc),))
    then = map(post, (tid, me), (ctypes.c_void_p(None), ctypes.py_object(_Drained)))
    wake = realthreads.allocate_lock()
    wake.acquire()
    _wake[ident] = wake  # the thread releases it as it settles (usercode._settle): the window ends then
    window = map(wake.acquire, (True,), (PENDING_WINDOW,))
    try:
        list(chain(first, window, then))  # no bytecode in between
        while True:  # the placeholder lands at the first check point, here at the latest
            pass
    except _Drained:
        pass
    _wake.pop(ident, None)  # the window ran out and the thread has not settled: it finds none to release


def _rotate_resting(now: float) -> None:
    """3.11: the stops taken back are posted again, briefly, once their thread rested long enough."""
    for ident, (at, key, exc) in list(_resting.items()):
        if now - at < usercode.REPOST_AFTER:
            continue
        del _resting[ident]
        if isinstance(key, tuple):  # a mark: still in that evaluation, the same stop again
            with _lock:
                if ACTIVE.get(ident) is key and _POSTED.get(ident) is key:
                    _post_briefly(ident, None, exc)
                    _resting[ident] = (usercode.monotonic(), key, exc)
        elif _region_posted.get(id(key)) is key:
            del _region_posted[id(key)]  # the next look posts again if the thread is still inside the filter


def _post_resting() -> None:
    """Detach: the stops taken back are posted again and left to land (the watchdog ends): a thread
    blocked in C then ends its user code when it returns, as it would have without the rest."""
    for ident, (_, key, exc) in list(_resting.items()):
        del _resting[ident]
        if isinstance(key, tuple):
            with _lock:
                if ACTIVE.get(ident) is key and _POSTED.get(ident) is key:
                    _set_async_exc(ident, exc)
        elif _region_posted.get(id(key)) is key:
            del _region_posted[id(key)]
            _post_region(ident, key, usercode.monotonic(), brief=False)


def _post(ident: int, mark: Mark, exc: type[BaseException], now: float) -> bool:
    """Raise ``exc`` in the thread if it is still in the evaluation ``mark`` names (see the module doc)."""
    with _lock:
        announced = _POSTED.get(ident)
        if announced is not None:
            again = announced is mark and ident in AGENT_THREAD_IDS
            if not again or now - _posted_at.get(ident, now) < usercode.REPOST_AFTER:
                return False  # one per evaluation in an application thread
        _POSTED[ident] = mark
        if ACTIVE.get(ident) is not mark:
            if announced is None:
                del _POSTED[ident]
            return False
        _posted_at[ident] = now
        if _FREEZES_TRACED:
            _post_briefly(ident, None, exc)
            _resting[ident] = (usercode.monotonic(), mark, exc)
        else:
            _set_async_exc(ident, exc)
        return True


# ---------------------------------------------------------------- the watchdog thread

_watch_lock = realthreads.RLock()  # an RLock: it can tell whether this thread holds it (see _leave)
_open = 0
_watchdog: realthreads.Thread | None = None
_stop = realthreads.Event()


def watchdog_open() -> None:
    """A guard needs the watchdog: start it unless it runs."""
    global _open, _watchdog
    with _watch_lock:
        _open += 1
        if _watchdog is None or not _watchdog.is_alive():
            _stop.clear()
            _watchdog = realthreads.Thread(_watch, "flight_profiler-watchdog")
            _watchdog.start()
            on_detach(stop_watchdog)


def watchdog_close() -> None:
    global _open
    with _watch_lock:
        _open = max(0, _open - 1)


def stop_watchdog() -> None:
    """Detach: the watchdog ends now."""
    _stop.set()
    _post_resting()
    _forget_regions()
    thread = _watchdog
    if thread is not None and not thread.is_current():
        thread.join(1.0)


def _watch() -> None:
    global _watchdog
    me = get_ident()
    AGENT_THREAD_IDS.add(me)
    idle_since = usercode.monotonic()
    try:
        while not _stop.wait(usercode.POLL):
            now = usercode.monotonic()
            for ident, mark in list(ACTIVE.items()):
                if mark[0] < now:
                    _post(ident, mark, BudgetExceeded, now)
                    if mark[1] is not None:  # no other call enters it while this one is stuck in C
                        mark[1].trip(None, ident)
            if REGIONS:
                _scan_regions(now)
            elif _region_late or _seen or _region_posted:
                _region_late.clear()
                _seen.clear()
                _region_posted.clear()
            if _resting:
                _rotate_resting(now)
            with _watch_lock:
                if _open or ACTIVE or REGIONS:
                    idle_since = now
                elif now - idle_since > usercode.WATCHDOG_IDLE:
                    _watchdog = None
                    return
    finally:
        AGENT_THREAD_IDS.discard(me)


# ---------------------------------------------------------------- filters compiled into a hook's wrapper (see usercode)

_LINENO = type(sys._getframe()).f_lineno.__get__  # C: the frame's line


def _scan_regions(now: float) -> None:
    seen: dict[int, tuple[Any, float]] = {}
    late: set[int] = set()
    busy: set[int] = set()  # the regions a thread is inside
    for ident, top in realthreads.thread_frames().items():  # not this frame: see thread_frames
        if ident in AGENT_THREAD_IDS:
            continue
        innermost: tuple[Any, Guard, float] | None = None
        frame: Any = top
        while frame is not None:
            guard = _region_guard(frame)
            if guard is not None:
                previous = _seen.get(id(frame))
                first = previous[1] if previous is not None and previous[0] is frame else now
                seen[id(frame)] = (frame, first)
                busy.add(id(frame.f_code))
                if now - first >= guard.limit:
                    late.add(ident)
                    guard.trip(None, ident)  # no other call enters it meanwhile
                if innermost is None:
                    innermost = (frame, guard, first)
            frame = frame.f_back
        if innermost is not None and now - innermost[2] >= innermost[1].limit:
            _post_region(ident, innermost[0], now)
    _seen.clear()
    _seen.update(seen)
    _region_late.clear()
    _region_late.update(late)
    for key in [key for key in _region_posted if key not in seen]:
        del _region_posted[key]
    for key in [key for key in _closing if key not in busy]:
        _closing.discard(key)
        REGIONS.pop(key, None)


def _post_region(ident: int, frame: Any, now: float, brief: bool = _FREEZES_TRACED) -> bool:
    """Stop the filter evaluation ``frame`` runs, if it still runs it (see above)."""
    if _region_posted.get(id(frame)) is frame:
        return False  # one per evaluation
    _region_posted[id(frame)] = frame
    import ctypes  # only once something is to be stopped

    post = ctypes.pythonapi.PyThreadState_SetAsyncExc  # a PyDLL function: the GIL stays held
    here = {REGION_LINE: True}.get  # not int.__eq__: f_lineno may be None (3.12+), never truth-tested
    # The look at the frame's line and the post run inside one C call (list() driving map/filter
    # over C callables only): no bytecode runs in between, so no other thread can, and the thread
    # is inside the filter when the exception is posted. It lands there: the thread checks for it
    # as soon as it runs again (it waits for the GIL at such a check, or returns from a C call into
    # one), inside the filter's ``try`` blocks, or deeper, in what the filter called.
    tids = map({REGION_LINE: ctypes.c_ulong(ident)}.__getitem__, filter(here, map(_LINENO, (frame,))))
    excs = map({REGION_LINE: ctypes.py_object(BudgetExceeded)}.__getitem__, filter(here, map(_LINENO, (frame,))))
    if brief:
        _post_briefly(ident, map(post, tids, excs), None)
        _resting[ident] = (usercode.monotonic(), frame, BudgetExceeded)
        return True
    return bool(list(map(post, tids, excs)))
