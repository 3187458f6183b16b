"""Run one command line against one target (client side).

Parses with the command's spec, runs it locally or in the agent (attaching
lazily, so ``stack`` never injects anything), and hands each structured result
to the output. Errors become one line; the caller decides whether to go on.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from typing import Any

from ..attach.attacher import AttachOptions, connect, existing_agent
from ..attach.connection import AgentConnection, Cancelled
from ..commands.spec import CommandSpec, LocalContext
from ..errors import CommandError, FlightProfilerError, UsageError
from ..protocol.framing import ChannelClosed
from . import registry
from .output import Output

CANCEL_WAIT = 2.0


class Detached(Exception):
    """The user detached; the shell should end."""


class Runner:
    def __init__(self, pid: int, output: Output, attach_options: AttachOptions) -> None:
        self.pid = pid
        self.output = output
        self.attach_options = attach_options
        self._conn: AgentConnection | None = None
        # seconds after which a running job is cancelled and what it produced kept (MCP tools); None: no limit
        self.time_limit: float | None = None

    def connection(self) -> AgentConnection:
        if self._conn is None:
            started = time.monotonic()
            self._conn = connect(self.pid, self.attach_options)
            self.attach_options.log("attached to pid %d in %.0f ms" % (self.pid, (time.monotonic() - started) * 1000))
        return self._conn

    def execute(self, line: str) -> bool:
        """Run ``line``; True on success. Errors are reported, never raised."""
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            self.output.error(None, "cannot parse the line: %s" % exc)
            return False
        if not argv:
            return True
        try:
            self._dispatch(argv[0], argv[1:])
        except FlightProfilerError as exc:
            self.output.error(argv[0], str(exc))
            return False
        except OSError as exc:  # a file-system or socket failure on our side: one line, never a traceback
            self.output.error(argv[0], "%s failed: %s" % (argv[0], exc))
            return False
        return True

    def _dispatch(self, name: str, args: list[str]) -> None:
        if name == "help":
            from .help import command_help, overview

            self.output.console.print(command_help(args[0]) if args else overview())
            return
        if name == "detach":
            self.detach()
            raise Detached()
        spec = registry.get(name)
        if spec is None:
            raise UsageError("unknown command %r; 'help' lists them" % name)
        request = spec.parse(args)
        self.run_request(spec, request)

    def run_request(self, spec: CommandSpec, request: dict[str, Any]) -> None:
        deadline = None if self.time_limit is None else time.monotonic() + self.time_limit
        if spec.run_local is not None and spec.runs_locally(request):
            context = LocalContext(pid=self.pid, cancelled=lambda: _past(deadline), cwd=os.getcwd())
            for event in spec.run_local(request, context):
                self.output.result(spec.name, event, spec.render(event))
            return
        conn = self.connection()
        job = conn.start(spec.name, request)
        timer = _cancel_at(deadline, conn, job)
        try:
            for event in conn.events(job):
                self.output.result(spec.name, event, spec.render(event))
        except KeyboardInterrupt:
            self._cancel(conn, job)
        except Cancelled:
            self.output.note("cancelled")
        finally:
            if timer is not None:
                timer.cancel()

    def _cancel(self, conn: AgentConnection, job: int) -> None:
        conn.cancel(job)
        try:
            for _ in conn.events(job, timeout=CANCEL_WAIT):
                pass
        except CommandError as exc:  # e.g. user code still busy in C: the agent names the thread
            self.output.note(_printable(str(exc)))
            return
        except (Cancelled, FlightProfilerError):
            pass
        self.output.note("cancelled")

    def detach(self) -> None:
        conn = self._conn or existing_agent(self.pid)  # never inject an agent just to remove it
        if conn is None:
            self.output.note("no agent in pid %d: nothing to remove" % self.pid)
            return
        busy = conn.detach()
        self._conn = None
        self.output.note("detached: the agent and its hooks are gone from pid %d" % self.pid)
        if busy:
            self.output.note(_printable(busy))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _printable(text: str) -> str:
    """The target's words (thread names, file names) with control characters shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:4000])


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _cancel_at(deadline: float | None, conn: AgentConnection, job: int) -> threading.Timer | None:
    """Cancel ``job`` at ``deadline``: the agent ends it and the events loop sees Cancelled."""
    if deadline is None:
        return None

    def cancel() -> None:
        try:
            conn.cancel(job)
        except (ChannelClosed, OSError):
            pass  # the connection is gone: the job ended with it

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), cancel)
    timer.daemon = True
    timer.start()
    return timer
