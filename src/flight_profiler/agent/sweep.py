"""Empty our modules' namespaces after a detach that handed the application nothing (runs in the target).

Split from ``agent/loader``: only such a detach runs it, so the agent's start does not compile it
(compiling our modules is most of the CPU an agent's start costs its target). The loader loads it
from the bundle right before it forgets our modules (``loader.unload``). Stdlib only, Python 3.8
syntax, nothing imported that every interpreter has not loaded at start-up.
"""

from __future__ import annotations

import builtins
import sys

from .loader import _original_thread_function

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Dict, List

# How long the sweep waits for our threads to leave our code (polls every SWEEP_POLL s); a
# thread still in it after that (a job blocked in C) keeps everything for the garbage collector.
SWEEP_POLL = 0.01
SWEEP_POLLS = 1000


def sweep_when_idle(modules: List[ModuleType], alias: str, loader_globals: Dict[str, Any]) -> None:
    """Empty our namespaces as soon as no thread runs our code, on a thread of its own.

    Why: our modules are reference cycles (a function's ``__globals__`` is the dict
    that holds it; a class is in its own ``__mro__``), so after a detach they wait for
    the target's next full collection, which a target that allocates little runs
    rarely; meanwhile the allocator builds around them and the target's RSS creeps up
    by 12-18 KiB per attach/detach cycle. Emptied dicts break those cycles: reference
    counting frees almost all of it at once, as a ``gc.collect()`` would, without
    walking the target's heap.

    Only when nothing of ours can be called later: the caller knows the agent handed
    the application nothing (no hook, callback or user code ran: see agent/session),
    and this thread waits until no thread has a frame of ours (a closed session's
    thread finishing its last lines, a job stuck in C: then it gives up).
    ``loader_globals``: the namespace the loader's functions run in (the bootstrap's,
    not its module's copy); it and this module's own are emptied last.
    """
    own = globals()
    # not the bootstrap's guard: a late bootstrap may be waiting on its lock (see attach/bootstrap)
    namespaces = [m.__dict__ for m in modules if m.__name__ != alias + "._guard" and m.__dict__ is not own]
    try:
        _original_thread_function("start_new_thread")(_sweep, (namespaces, alias, [loader_globals, own]))
    except BaseException:  # noqa: BLE001, S110 - no thread to spare: the garbage collector frees them later
        pass


def _ours_running(frames: Dict[int, Any], ours: set[int], me: int) -> bool:
    """Whether a thread other than ``me`` runs code of ours or is about to (``ours``: our globals' ids).

    About to: a ``threading.Thread`` started for us that has not entered its target yet (the
    starter only waits until it exists), or not yet dropped it (threading does that last).
    """
    for ident, frame in frames.items():
        while frame is not None and ident != me:
            if id(frame.f_globals) in ours or frame.f_code.co_filename.startswith("<flight_profiler"):
                return True
            frame = frame.f_back
    threading: Any = sys.modules.get("threading")
    for table in ("_limbo", "_active"):
        for thread in list(getattr(threading, table, {}).values()):
            target = getattr(thread, "_target", None)
            target = getattr(target, "__func__", target)  # a bound method: its function
            if id(getattr(target, "__globals__", None)) in ours:
                return True
    return False


def _sweep(namespaces: List[Dict[str, Any]], alias: str, last: List[Dict[str, Any]]) -> None:
    """The sweep thread: wait for our code to be idle, then empty our namespaces (see sweep_when_idle)."""
    try:
        me = _original_thread_function("get_ident")()
        pause = _original_thread_function("allocate_lock")()
        pause.acquire()  # acquired again with a timeout below: a sleep without ``time``
        ours = {id(namespace) for namespace in namespaces + last}
        for _ in range(SWEEP_POLLS):
            if not _ours_running(sys._current_frames(), ours, me):
                break
            pause.acquire(True, SWEEP_POLL)
        else:
            return  # still running after the wait: leave it all to the garbage collector
        _empty(namespaces, alias, last)
    except BaseException:  # noqa: BLE001, S110 - never an exception out of a thread of ours
        pass


def _empty(namespaces: List[Dict[str, Any]], alias: str, last: List[Dict[str, Any]]) -> None:
    """Empty our classes, our modules' dicts, their builtins copy, and last ``last`` (the loader's
    globals and this module's).

    Every name this function needs is looked up before the first dict is emptied: this module's
    builtins are our modules' copy, emptied with them, and its globals are in ``last``. From
    there on it runs on locals and methods alone.
    """
    classes = [
        value
        for namespace in namespaces + last
        for value in list(namespace.values())
        if isinstance(value, type) and str(getattr(value, "__module__", "")).startswith(alias)
    ]
    for cls in classes:
        for name in [n for n in list(cls.__dict__) if n not in ("__dict__", "__weakref__")]:
            try:
                delattr(cls, name)
            except (AttributeError, TypeError):
                pass
    real = builtins.__dict__
    found = [ns.get("__builtins__") for ns in namespaces + last]
    copies: List[Dict[str, Any]] = [copy for copy in found if type(copy) is dict and copy is not real]
    for namespace in namespaces:
        namespace.clear()
    for copy in copies:
        copy.clear()
    for namespace in last:
        namespace.clear()
