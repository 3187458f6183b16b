"""Real OS threads and locks for the agent, whatever the target monkeypatched (runs in the target).

gevent's and eventlet's monkeypatching replaces ``_thread.start_new_thread``,
the lock factory and ``time.sleep`` with greenlet versions: an agent built on
them would become a greenlet of the target's hub and never run while a handler
of the target does not yield. So the agent takes the originals here, at load:
from ``gevent.monkey.get_original`` / ``eventlet.patcher.original`` when the
target is patched, else from the C module ``_thread`` itself. Locks and events
are built from those originals only; no ``threading`` object is created in a
patched target. In an unpatched target with ``threading`` loaded, agent threads
are ``threading.Thread``\\ s, so they carry their names (py-spy, ``stack``).
Stdlib only, Python 3.8 syntax.
"""

from __future__ import annotations

import _thread
import sys
import time

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Tuple


def thread_frames() -> dict[int, Any]:
    """Every thread's innermost frame, as ``sys._current_frames()``, except that for the calling thread it
    is its caller's caller: the frame of the function that asks (a loop over the threads) is left out.
    Held by one of that function's own locals (a loop variable, the dict), it held itself: a cycle only
    the collector ends, keeping every local of the frame and of its callers (a heap walk's marks,
    0.2-0.8 MB) until then; and the next heap walk, among whose roots the young are, counted them."""
    frames = sys._current_frames()
    caller = sys._getframe(1).f_back
    if caller is None:
        del frames[get_ident()]
    else:
        frames[get_ident()] = caller
    return frames


def _builtin(fn: Any) -> bool:
    """A function of a C module (what monkeypatching replaces with Python functions)."""
    return type(fn) is type(len)


def _gevent_original(module: str, name: str, current: Any) -> Any:
    monkey: Any = sys.modules.get("gevent.monkey")
    if monkey is None:
        return current
    try:
        return monkey.get_original(module, name)
    except Exception:  # noqa: BLE001 - an old or odd gevent: keep what we have
        return current


def _eventlet_original(module: str, name: str, current: Any) -> Any:
    patcher: Any = sys.modules.get("eventlet.patcher")
    if patcher is None:
        return current
    try:
        return getattr(patcher.original(module), name)
    except Exception:  # noqa: BLE001 - an old or odd eventlet: keep what we have
        return current


def _original(module: str, name: str, current: Any) -> Any:
    if _builtin(current):
        return current
    for source in (_gevent_original, _eventlet_original):
        found = source(module, name, current)
        if _builtin(found):
            return found
    return current


start_new_thread: Callable[..., int] = _original("_thread", "start_new_thread", _thread.start_new_thread)
allocate_lock: Callable[[], Any] = _original("_thread", "allocate_lock", _thread.allocate_lock)
get_ident: Callable[[], int] = _original("_thread", "get_ident", _thread.get_ident)
sleep: Callable[[float], None] = _original("time", "sleep", time.sleep)
RLock: Callable[[], Any] = _thread.RLock  # the C type; it can tell whether this thread holds it (_is_owned)


def idents() -> Tuple[int, ...]:
    """The ids this thread goes by: its own, and in a gevent- or eventlet-patched target the one
    ``threading.get_ident`` gives it there (its greenlet's: ``id(greenlet.getcurrent())``, read from
    greenlet's C function, not through the patched one). The hooks compare ``threading.get_ident()``,
    as ``threading._active`` is keyed by it; an agent thread known by its own id only was taken for the
    program's (a hooked function our thread called was recorded as the program's call)."""
    own = get_ident()
    threading: Any = sys.modules.get("threading")
    patched = getattr(threading, "get_ident", None)
    current = getattr(sys.modules.get("greenlet"), "getcurrent", None)
    if patched is None or _builtin(patched) or not _builtin(current):
        return (own,)
    green = id(current())  # type: ignore[misc]  # C: this thread's main greenlet, made on first use
    return (own,) if green == own else (own, green)


def green_library() -> Optional[str]:
    """ "gevent" or "eventlet" when it patched the target's threads: its greenlets are no OS threads, and
    what lists threads and asyncio tasks (thread -b, stack -a) does not list them; None otherwise."""
    if _builtin(_thread.start_new_thread):
        return None
    for library, module in (("gevent", "gevent.monkey"), ("eventlet", "eventlet.patcher")):
        if module in sys.modules:
            return library
    return None


def release_green_hub() -> None:
    """Close the hub gevent or eventlet made for this thread of ours, if it made one, before the thread ends.

    The program's code run here (a console line, an expression) that used the patched API (a
    ``time.sleep``, a socket) made one: an epoll and an eventfd descriptor that the process kept after
    the thread ended, two more after every such console line. gevent's ``Hub.destroy`` is its own way
    for hubs of other threads; eventlet's hub is dropped from its thread-local and its poller closed.
    """
    if _builtin(_thread.start_new_thread):
        return  # not patched: nothing made a hub here
    hub_local: Any = sys.modules.get("gevent._hub_local")
    try:
        hub = hub_local.get_hub_if_exists() if hub_local is not None else None
        if hub is not None:
            hub.destroy(True)
    except Exception:  # noqa: BLE001, S110 - an odd gevent: what it made stays
        pass
    local: Any = getattr(sys.modules.get("eventlet.hubs"), "_threadlocal", None)
    try:
        hub = local.__dict__.pop("hub", None) if local is not None else None
        closer = getattr(getattr(hub, "poll", None), "close", None)
        if closer is not None:
            closer()
    except Exception:  # noqa: BLE001, S110 - an odd eventlet: what it made stays
        pass


def patch_notes() -> List[str]:
    """What the target monkeypatched that the agent works around (for the hello's ``notes``)."""
    notes: List[str] = []
    if not _builtin(_thread.start_new_thread) or not _builtin(time.sleep):
        by = "gevent" if "gevent.monkey" in sys.modules else "eventlet" if "eventlet.patcher" in sys.modules else "?"
        real = _builtin(start_new_thread) and _builtin(allocate_lock)
        notes.append(
            "the target's threads and sleep are monkeypatched (%s): the agent %s"
            % (by, "uses the original OS threads, locks and sockets" if real else "found no original thread API")
        )
    return notes


def _threading() -> Any:
    """``threading`` when it is loaded and not patched: its threads carry names py-spy shows."""
    threading: Any = sys.modules.get("threading")
    if threading is None or not _builtin(_thread.start_new_thread) or not _builtin(_thread.allocate_lock):
        return None
    return threading


class Event:
    """``threading.Event`` on original locks (the threading one is a greenlet event in a patched target)."""

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._flag = False
        self._waiters: List[Any] = []

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._lock:
            self._flag = True
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.release()

    def clear(self) -> None:
        with self._lock:
            self._flag = False

    def wait(self, timeout: Optional[float] = None) -> bool:
        with self._lock:
            if self._flag:
                return True
            waiter = allocate_lock()
            waiter.acquire()
            self._waiters.append(waiter)
        if not waiter.acquire(True, -1 if timeout is None else max(0.0, timeout)):
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return self._flag


TRACE_OURS = False  # tests only: keep an inherited trace function in our threads (coverage measures them)


class Thread:
    """A daemon OS thread that never lets an exception reach the target's stderr."""

    def __init__(self, target: Callable[..., Any], name: str, args: Tuple[Any, ...] = ()) -> None:
        self.target = target
        self.name = name
        self.args = args
        self.ident: Optional[int] = None
        self._started = False
        self._done = Event()

    def start(self) -> None:
        self._started = True
        threading = _threading()
        if threading is not None:
            threading.Thread(target=self._run, name=self.name, daemon=True).start()
        else:
            start_new_thread(self._run, ())

    def _run(self) -> None:
        self.ident = get_ident()
        # threading.settrace/setprofile (a debugger, coverage, an app's own profiler) reach every new
        # threading.Thread, ours too: our threads run without them (TRACE_OURS keeps them, for the
        # in-process tests' coverage of the agent).
        if not TRACE_OURS:
            sys.settrace(None)
            sys.setprofile(None)
        try:
            self.target(*self.args)
        except BaseException:  # noqa: BLE001, S110 - the target's stderr is not ours to write to
            pass
        finally:
            release_green_hub()
            self._done.set()

    def is_current(self) -> bool:
        return self.ident == get_ident()

    def join(self, timeout: Optional[float] = None) -> bool:
        """True when the thread has finished."""
        return self._done.wait(timeout)

    def is_alive(self) -> bool:
        """Started and not finished yet (what threading.Thread.is_alive says of a started thread)."""
        return self._started and not self._done.wait(0)
