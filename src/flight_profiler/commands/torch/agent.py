"""``torch`` in the target: profile the next call of a function, CUDA memory snapshots.

Uses the target's own torch (never imports it: a target without torch gets a
clear error). ``profile`` and ``memory -r`` hook the function once through
``services.hooks``: the first call on one of the program's threads is measured,
every later call runs untouched, and the hook is removed as soon as that call
returned (or on Ctrl-C, disconnect, detach). The profiler is started and
stopped on the calling thread, around the call; the file is written by this
job's thread afterwards, so the program's call pays only for the profiling.
Nothing the hook does may raise into the program's call: a failure to start
the profiler becomes this command's error and the call runs as if unhooked.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from ...services import hooks, realthreads
from ...services.context import AGENT_THREAD_IDS, CommandFailed, JobContext
from ...services.describe import class_name, describe_error
from ...services.location import resolve
from .model import DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable

POLL = 0.2
HISTORY_ENTRIES = 100000  # allocations remembered by torch memory -r


def run(request: dict[str, Any], ctx: JobContext) -> None:
    action = request.get("action")
    if action not in ("profile", "snapshot", "record"):
        raise CommandFailed("unknown torch action %r (use profile or memory)" % action)
    torch = _torch()
    path = _writable_path(request.get("path"))
    if action == "profile":
        _profile(request, ctx, torch, path)
    elif action == "snapshot":
        _cuda_or_fail(torch, "torch memory -s")
        _write_snapshot(torch, path)
        ctx.emit({"action": "snapshot", "path": path, "bytes": os.path.getsize(path)})
    else:
        _cuda_or_fail(torch, "torch memory -r")
        _record(request, ctx, torch, path)


def _torch() -> Any:
    torch = sys.modules.get("torch")
    if torch is None:
        raise CommandFailed("torch is not imported in the target: the torch commands use the program's own torch")
    return torch


def _cuda_or_fail(torch: Any, what: str) -> None:
    try:
        available = bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken CUDA setup is "not available"
        available = False
    if not available:
        raise CommandFailed(
            "%s needs CUDA, and torch.cuda.is_available() is False in the target (%s); nothing was changed"
            % (what, "a CPU-only build" if not getattr(torch.version, "cuda", None) else "no usable GPU")
        )


def _writable_path(path: Any) -> str:
    """The absolute path the client resolved; checked here, as the target's user, before anything runs."""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise CommandFailed("the output path must be absolute, got %r" % (path,))
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise CommandFailed("cannot write %s: the directory does not exist (as the target sees it)" % path)
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise CommandFailed(
            "the target (uid %d) cannot write %s; choose a directory it can write, e.g. -f /tmp/%s"
            % (os.getuid(), path, os.path.basename(path))
        )
    return path


# ------------------------------------------------------------------ profile


def _profile(request: dict[str, Any], ctx: JobContext, torch: Any, path: str) -> None:
    profiler = getattr(torch, "profiler", None)
    if profiler is None:
        __import__("torch.profiler")
        profiler = sys.modules["torch.profiler"]
    activities = [profiler.ProfilerActivity.CPU]
    names = ["cpu"]
    try:
        if torch.cuda.is_available():
            activities.append(profiler.ProfilerActivity.CUDA)
            names.append("cuda")
    except Exception:  # noqa: BLE001, S110 - CUDA unusable: profile the CPU only
        pass

    def start() -> Any:
        session = profiler.profile(activities=activities, record_shapes=True)
        session.start()
        return session

    def stop(session: Any) -> Any:
        session.stop()
        return session

    shot, target = _one_call(request, ctx, start, stop, "profiling the next call of %s (%s)" % ("%s", "+".join(names)))
    if shot is None:
        return
    shot.result.export_chrome_trace(path)
    ctx.emit(
        {
            "action": "profile",
            "target": target,
            "path": path,
            "bytes": os.path.getsize(path),
            "activities": names,
            "call_ms": shot.call_ms,
            "raised": shot.raised,
        }
    )


# ------------------------------------------------------------------ memory


def _write_snapshot(torch: Any, path: str) -> None:
    memory = torch.cuda.memory
    if hasattr(memory, "_dump_snapshot"):
        memory._dump_snapshot(path)
        return
    _dump(memory._snapshot(), path)


def _dump(snapshot: Any, path: str) -> None:
    import pickle  # the format pytorch.org/memory_viz reads; a file for the user, never on our wire

    with open(path, "wb") as fh:
        pickle.dump(snapshot, fh)


def _record(request: dict[str, Any], ctx: JobContext, torch: Any, path: str) -> None:
    memory = torch.cuda.memory
    already = _recording(memory)

    def start() -> Any:
        if not already:
            _history(memory, True)
        return None

    def stop(_: Any) -> Any:
        snapshot = memory._snapshot()
        if not already:  # the user's own recording, if any, stays on
            _history(memory, False)
        return snapshot

    shot, target = _one_call(request, ctx, start, stop, "recording CUDA allocations during the next call of %s")
    if shot is None:
        return
    _dump(shot.result, path)
    ctx.emit(
        {
            "action": "record",
            "target": target,
            "path": path,
            "bytes": os.path.getsize(path),
            "call_ms": shot.call_ms,
            "raised": shot.raised,
        }
    )


def _recording(memory: Any) -> bool:
    """Whether allocation history is on already (the program or another tool turned it on)."""
    try:
        return any(memory._snapshot().get("device_traces", []))
    except Exception:  # noqa: BLE001 - older torch: assume off
        return False


def _history(memory: Any, on: bool) -> None:
    try:
        memory._record_memory_history(enabled="all" if on else None, max_entries=HISTORY_ENTRIES)
    except TypeError:  # torch 2.0: the older signature
        memory._record_memory_history(on, trace_alloc_max_entries=HISTORY_ENTRIES)


# ------------------------------------------------------------------ one call


class _OneShot:
    """A hooks probe that claims the first call made on one of the program's threads.

    ``start`` runs on that thread before the call, ``stop`` after it; their result
    is handed to the job. Errors never reach the program: they end the command.
    """

    def __init__(self, start: Callable[[], Any], stop: Callable[[Any], Any]) -> None:
        self.start = start
        self.stop = stop
        self.lock = realthreads.allocate_lock()
        self.claimed = False
        self.done = realthreads.Event()  # set on the program's threads: never threading's (services/callprobe)
        self.result: Any = None
        self.error: str | None = None
        self.call_ms = 0.0
        self.raised: str | None = None

    def enter(self, args: Any, kwargs: Any) -> Any:
        ident = threading.get_ident()
        if self.claimed or ident in AGENT_THREAD_IDS or ident in hooks.OWN_WORK:
            return None
        with self.lock:
            if self.claimed:
                return None
            self.claimed = True
        try:
            started = self.start()
        except Exception as exc:  # noqa: BLE001 - never into the program's call
            self.error = "could not start: %s" % describe_error(exc)
            self.done.set()
            return None
        return (started, time.perf_counter())

    def leave(self, state: Any, args: Any, kwargs: Any, returned: Any, error: Any) -> None:
        self.call_ms = round((time.perf_counter() - state[1]) * 1000, 3)
        if error is not None:
            self.raised = class_name(type(error))  # a metaclass's __name__ property is the program's code
        try:
            self.result = self.stop(state[0])
        except Exception as exc:  # noqa: BLE001 - never into the program's call
            self.error = "could not stop: %s" % describe_error(exc)
        finally:
            self.done.set()

    @staticmethod
    def drive(state: Any, inner: Any) -> Any:
        return inner


def _one_call(
    request: dict[str, Any],
    ctx: JobContext,
    start: Callable[[], Any],
    stop: Callable[[Any], Any],
    doing: str,
) -> tuple[_OneShot | None, str]:
    """Hook the function, wait for one call to be measured, unhook; (None, label) when cancelled."""
    target = resolve(request["module"], request.get("cls"), request["method"], request.get("nested"))
    shot = _OneShot(start, stop)
    handle = hooks.install(target.func, shot, target.nested)
    ctx.add_cleanup(handle.remove)
    ctx.emit({"action": "waiting", "doing": doing % target.label, **target.describe()})
    wait = request.get("wait") or DEFAULTS["wait"]
    deadline = time.monotonic() + wait if wait > 0 else None
    while not shot.done.is_set():
        if ctx.wait(POLL):
            return None, target.label  # a call in flight still stops what it started, in leave()
        if deadline is not None and time.monotonic() >= deadline and not shot.claimed:
            raise CommandFailed("%s was not called within %g s; nothing was recorded" % (target.label, wait))
    handle.remove()  # later calls run untouched from here on
    if shot.error is not None:
        raise CommandFailed("%s: %s" % (target.label, shot.error))
    return shot, target.label
