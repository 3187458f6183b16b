"""What a command's agent half gets from the dispatcher (runs in the target).

A command handler is ``run(request: dict, ctx: JobContext) -> None``. It emits
structured events with ``ctx.emit`` and raises ``CommandFailed`` for a one-line
error. It never imports the dispatcher: the dispatcher hands it this context.
"""

from __future__ import annotations

from . import realthreads
from .describe import describe_error

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable


# Threads the agent runs; hooks ignore calls made on them so the agent never
# records its own work.
AGENT_THREAD_IDS: set[int] = set()


# Undo actions that outlive a job (tt's records, a hook a stuck job could not
# remove): run once by the server's ``detach``, before our modules are unloaded.
DETACH_CALLBACKS: list[Callable[[], None]] = []


def on_detach(fn: Callable[[], None]) -> None:
    """Run ``fn`` when the agent detaches (registered once per module, not per job)."""
    if fn not in DETACH_CALLBACKS:
        DETACH_CALLBACKS.append(fn)


def run_detach_callbacks() -> None:
    """Run and forget every detach callback; one failing does not stop the others."""
    while DETACH_CALLBACKS:
        fn = DETACH_CALLBACKS.pop()
        try:
            fn()
        except Exception:  # noqa: BLE001, S110 - detach must go on; nothing may reach the target's output
            pass


class CommandFailed(Exception):
    """A command cannot do what was asked; ``str()`` is the one-line reason."""


class JobContext:
    """One running command: its output, its cancellation and its cleanups."""

    def __init__(
        self,
        job_id: int,
        emit: Callable[[dict[str, Any]], None],
        session: dict[str, Any],
    ) -> None:
        self.job_id = job_id
        self._emit = emit
        self.session = session  # per-connection state (console namespace, ...)
        self.cancelled = realthreads.Event()
        self._cleanups: list[Callable[[], None]] = []
        self._lock = realthreads.allocate_lock()

    def emit(self, data: dict[str, Any]) -> None:
        self._emit(data)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the job was cancelled meanwhile."""
        return self.cancelled.wait(seconds)

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Register an undo action; run once, newest first, on every exit path."""
        with self._lock:
            self._cleanups.append(fn)

    def run_cleanups(self) -> list[str]:
        """Run and forget all cleanups; return the errors they raised as text."""
        with self._lock:
            cleanups, self._cleanups = self._cleanups, []
        errors = []
        for fn in reversed(cleanups):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - every undo must get its turn
                errors.append(describe_error(exc))  # its message is the program's code, maybe: budgeted there
        return errors
