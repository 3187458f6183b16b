"""``gilstat`` in the target: thread names for the client's GIL report, and ``gilstat off``.

The GIL itself is measured from the client (frida hooks, see commands/gilstat/probe.py).
The client keeps a ``names`` job running here for as long as it measures: it
learns which thread id is which thread, and the job's end tells it to stop. That
is how ``gilstat off`` (from any client) and ``detach`` (which cancels every job)
reach the client that holds the hooks.
"""

from __future__ import annotations

import threading

from ...services import realthreads
from ...services.context import AGENT_THREAD_IDS, CommandFailed, JobContext
from ...services.describe import short
from .model import DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

# The names jobs running now (one per measuring client): bounded by the clients.
_RUNNING: set[JobContext] = set()
_LOCK = realthreads.allocate_lock()


def run(request: dict[str, Any], ctx: JobContext) -> None:
    action = request.get("action")
    if action == "names":
        _names(ctx, request)
    elif action == "off":
        ctx.emit({"action": "off", "stopped": _stop_all(ctx)})
    else:
        raise CommandFailed("unknown gilstat action %r (use on or off)" % action)


def _names(ctx: JobContext, request: dict[str, Any]) -> None:
    interval = request.get("interval", DEFAULTS["interval"])
    if not isinstance(interval, (int, float)) or not 0 < interval <= 3600:
        raise CommandFailed("interval must be 0..3600 seconds, got %r" % (interval,))
    with _LOCK:
        _RUNNING.add(ctx)
    ctx.add_cleanup(lambda: _forget(ctx))
    last: dict[str, Any] = {}
    while True:
        current = _thread_names()
        if current != last:  # only changes cross the wire
            ctx.emit({"action": "names", **current})
            last = current
        if ctx.wait(min(interval, 1.0)):
            return


def _forget(ctx: JobContext) -> None:
    with _LOCK:
        _RUNNING.discard(ctx)


def _stop_all(ctx: JobContext) -> int:
    with _LOCK:
        running = [job for job in _RUNNING if job is not ctx]
    for job in running:
        job.cancelled.set()
    return len(running)


def _thread_names() -> dict[str, Any]:
    """Native thread id -> name, and which of them are ours (left out of the report)."""
    names: dict[str, str] = {}
    agent: list[str] = []
    ours = set(AGENT_THREAD_IDS)
    for thread in threading.enumerate():
        native = getattr(thread, "native_id", None)
        if native is None:
            continue
        names[str(native)] = short(str(thread.name))
        if thread.ident in ours or thread.name.startswith("flight_profiler"):
            agent.append(str(native))
    return {"threads": names, "agent": sorted(agent)}
