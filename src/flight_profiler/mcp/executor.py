"""Run CLI command lines for the MCP tools and return their results instead of printing them.

The same ``Runner`` as ``--cmd``, given an ``Output`` that collects, and a time limit
after which the running job is cancelled (what it produced so far is kept). Nothing here imports the MCP
SDK: it is plain, synchronous, and testable on its own.
"""

from __future__ import annotations

import shlex
import threading
import time
from typing import Any

from ..attach.attacher import AttachOptions
from ..cli import registry
from ..cli.output import JSON_SCHEMA_VERSION, Output
from ..cli.runner import Detached, Runner
from ..commands.spec import CommandSpec, Request
from ..discovery.processes import agent_running
from ..errors import FlightProfilerError, UsageError

ATTACH_TIMEOUT = 10.0

# Commands flagged changes_target that change it only for some requests; the rest of
# those flagged always do (console runs code, reload replaces functions).
_CHANGES_WHEN: dict[str, Any] = {
    "vmtool": lambda request: request.get("action") == "forceGc",
    "tt": lambda request: bool(request.get("play")),
    "logger": lambda request: request.get("level") is not None,
}


class Collector(Output):
    """An Output that keeps results, errors and notes for the caller; nothing is printed."""

    def __init__(self) -> None:
        super().__init__(as_json=True, color=False)
        self.results: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.notes: list[str] = []

    def result(self, command: str, data: dict[str, Any], renderable: Any) -> None:
        self.results.append(data)

    def error(self, command: str | None, message: str) -> None:
        self.errors.append(message)

    def note(self, message: str) -> None:
        self.notes.append(message)


def changes_target(spec: CommandSpec, request: Request) -> bool:
    """Whether running ``request`` changes the target (runs code, forces a GC, replays a call)."""
    if not spec.changes_target:
        return False
    when = _CHANGES_WHEN.get(spec.name)
    return bool(when(request)) if when is not None else True


def parse(line: str) -> tuple[CommandSpec, Request]:
    """Parse ``line`` exactly as the CLI would; UsageError for anything it would refuse."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError("cannot parse the line: %s" % exc) from None
    spec = registry.get(argv[0]) if argv else None
    if spec is None:
        raise UsageError("unknown command %r; known: %s" % (argv[0] if argv else "", ", ".join(registry.COMMANDS)))
    request = spec.parse(argv[1:])
    if spec.interactive and not request:
        raise UsageError("%s is interactive: pass its input as an option (e.g. console -c CODE)" % spec.name)
    return spec, request


def _check_bounded(spec: CommandSpec, request: Request, time_limit: float) -> None:
    """Commands run here (perf, gilstat) stop at their duration only: it must end before the time limit."""
    if spec.run_local is None or not spec.runs_locally(request) or "duration" not in request:
        return
    duration = request["duration"]
    if duration is None:
        raise UsageError("%s runs until stopped: give it -d SECONDS (shorter than the time limit)" % spec.name)
    if duration >= time_limit:
        raise UsageError("%s -d %g would outlast the time limit of %g s" % (spec.name, duration, time_limit))


class Executor:
    """Runs one call at a time per target; a fresh Runner per call (it reuses the agent already there)."""

    def __init__(self, read_only: bool = False) -> None:
        self.read_only = read_only
        self._active: dict[int, Runner] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def run(self, pid: int, line: str, time_limit: float) -> dict[str, Any]:
        """Run one command line against ``pid``; stop it after ``time_limit`` seconds, keeping its results."""
        spec, request = parse(line)
        if self.read_only and changes_target(spec, request):
            raise UsageError("'%s' would change the target, and this MCP server is read-only" % line)
        _check_bounded(spec, request, time_limit)
        with self._lock_for(pid, time_limit):
            collector = Collector()
            runner = self._start(pid, collector, time_limit)
            started = time.monotonic()
            try:
                runner.execute(line)
            finally:
                self._finish(pid, runner)
            return _outcome(pid, spec.name, line, collector, time.monotonic() - started)

    def detach(self, pid: int, time_limit: float) -> dict[str, Any]:
        """Remove the agent from ``pid``; never injects one just to remove it."""
        with self._lock_for(pid, time_limit):
            if not agent_running(pid):
                return _detached(pid, False, "no agent in pid %d: nothing to remove" % pid)
            collector = Collector()
            runner = self._start(pid, collector, time_limit)
            try:
                runner.execute("detach")
            except Detached:
                return _detached(pid, True, collector.notes[-1] if collector.notes else "detached")
            finally:
                self._finish(pid, runner)
            raise FlightProfilerError("; ".join(collector.errors) or "detach failed")

    def abandon(self, pid: int) -> None:
        """Give up on a call that did not return in time: closing its socket ends its wait."""
        runner = self._active.get(pid)
        if runner is not None:
            runner.close()

    def _start(self, pid: int, collector: Collector, time_limit: float) -> Runner:
        runner = Runner(pid, collector, AttachOptions(timeout=min(ATTACH_TIMEOUT, time_limit)))
        runner.time_limit = time_limit
        self._active[pid] = runner
        return runner

    def _finish(self, pid: int, runner: Runner) -> None:
        if self._active.get(pid) is runner:
            del self._active[pid]
        runner.close()

    def _lock_for(self, pid: int, wait: float) -> _Held:
        with self._guard:
            lock = self._locks.setdefault(pid, threading.Lock())
        if not lock.acquire(timeout=wait):
            raise UsageError("another call to pid %d is still running; try again when it has returned" % pid)
        return _Held(lock)


class _Held:
    """Releases an acquired lock at the end of a ``with`` block."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _outcome(pid: int, command: str, line: str, collector: Collector, elapsed: float) -> dict[str, Any]:
    if collector.errors and not collector.results:
        raise FlightProfilerError("; ".join(collector.errors))
    return {
        "schema": JSON_SCHEMA_VERSION,
        "pid": pid,
        "command": command,
        "line": line,
        "results": collector.results,
        "errors": collector.errors,
        "stopped": "time limit" if "cancelled" in collector.notes else "done",
        "elapsed_s": round(elapsed, 3),
    }


def _detached(pid: int, detached: bool, message: str) -> dict[str, Any]:
    return {
        "schema": JSON_SCHEMA_VERSION,
        "pid": pid,
        "command": "detach",
        "line": "detach",
        "results": [{"detached": detached, "message": message}],
        "errors": [],
        "stopped": "done",
        "elapsed_s": 0.0,
    }
