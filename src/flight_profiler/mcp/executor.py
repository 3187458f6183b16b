"""Run commands for the MCP tools and return their results instead of printing them.

The same ``Runner`` as ``--cmd``, given an ``Output`` that collects, and a time limit
after which the running job is cancelled (what it produced so far is kept). The dedicated tools
hand over an argument vector built from their arguments (``run_argv``): it goes through the
command's own parser and ``to_request``, so it is checked exactly as on the CLI, but no text is
quoted and split again on the way (an expression that contains `` -n `` or starts with ``-`` stays
one value). The ``command`` tool's line is parsed as ``--cmd`` parses it (``run``). Nothing here
imports the MCP SDK: it is plain, synchronous, and testable on its own.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from typing import Any

from ..attach.attacher import AttachOptions
from ..cli import registry
from ..cli.output import JSON_SCHEMA_VERSION, Output
from ..cli.runner import ALIASES, Detached, Runner
from ..commands.spec import CommandSpec, Request, split_command
from ..discovery.processes import agent_running
from ..errors import FlightProfilerError, UsageError

ATTACH_TIMEOUT = 10.0
# What one call may collect (its results as JSON text): they all go back to the model in one message,
# and the server keeps them in memory until then. Beyond it the call stops with an error saying so.
MAX_COLLECTED = 8 * 1024 * 1024

# Request keys whose text the target runs as Python (watch/trace/tt filters, --expr, console source),
# and keys naming a file the command writes. A call with any of them is not read-only.
EVALUATED = ("expr", "filter", "source")
WRITTEN = ("filepath",)

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
        self.size = 0

    def result(self, command: str, data: dict[str, Any], renderable: Any) -> None:
        self.size += len(json.dumps(data, default=repr))
        if self.size > MAX_COLLECTED:
            # raised into the runner: the job's connection closes, so the agent stops the job too
            raise FlightProfilerError(
                "results truncated: %s produced more than %d MiB; the results before are kept (narrow the "
                "call: fewer items, -n, a filter)" % (command, MAX_COLLECTED // (1024 * 1024))
            )
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


def not_read_only(spec: CommandSpec, request: Request) -> str:
    """Why running ``request`` is not read-only ("" when it is): it changes the target, runs an expression
    there, or writes a file. The request is parsed by the command's own spec, so ``command`` lines are judged
    exactly like the dedicated tools."""
    if changes_target(spec, request):
        return "would change the target"
    evaluated = [key for key in EVALUATED if request.get(key)]
    if evaluated:
        return "runs Python in the target (%s)" % ", ".join(evaluated)
    if any(request.get(key) for key in WRITTEN):
        return "writes a file"
    return ""


def parse(line: str) -> tuple[CommandSpec, Request]:
    """Parse ``line`` exactly as the CLI would; UsageError for anything it would refuse."""
    name, rest = split_command(line)
    spec = registry.get(ALIASES.get(name, name)) if name else None
    if spec is None:
        raise UsageError("unknown command %r; known: %s" % (name, ", ".join(registry.COMMANDS)))
    return spec, _checked(spec, spec.parse_line(rest))


def parse_argv(argv: list[str]) -> tuple[CommandSpec, Request]:
    """``argv`` (the command's name, then its words, unquoted) through the command's parser: the same
    checks and one-line errors as the CLI, without a round trip through command-line text."""
    name = argv[0] if argv else ""
    spec = registry.get(name) if name else None
    if spec is None:
        raise UsageError("unknown command %r; known: %s" % (name, ", ".join(registry.COMMANDS)))
    return spec, _checked(spec, spec.parse(list(argv[1:])))


def _checked(spec: CommandSpec, request: Request) -> Request:
    if spec.interactive and not request:
        raise UsageError("%s is interactive: pass its input as an option (e.g. console -c CODE)" % spec.name)
    return request


def display(argv: list[str]) -> str:
    """The command line that ``argv`` is, as a shell would take it (the results' ``line``)."""
    return " ".join(shlex.quote(word) for word in argv)


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
        return self._run(pid, spec, request, line, time_limit)

    def run_argv(self, pid: int, argv: list[str], time_limit: float) -> dict[str, Any]:
        """``run`` for a command given as its name and words (what the dedicated tools build)."""
        spec, request = parse_argv(argv)
        return self._run(pid, spec, request, display(argv), time_limit)

    def _run(self, pid: int, spec: CommandSpec, request: Request, line: str, time_limit: float) -> dict[str, Any]:
        reason = not_read_only(spec, request) if self.read_only else ""
        if reason:
            raise UsageError("'%s' %s, and this MCP server is read-only" % (line, reason))
        _check_bounded(spec, request, time_limit)
        with self._lock_for(pid, time_limit):
            collector = Collector()
            runner = self._start(pid, collector, time_limit)
            started = time.monotonic()
            try:
                runner.execute_request(spec, request)
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
            except Detached as done:
                if not done.confirmed:  # the agent removes itself when it runs: said, not claimed done
                    return _detached(pid, False, collector.errors[-1] if collector.errors else "not confirmed")
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
