"""Run one command line against one target (client side).

Parses with the command's spec, runs it locally or in the agent (attaching
lazily, so ``stack`` never injects anything), and hands each structured result
to the output. Errors become one line; the caller decides whether to go on.
"""

from __future__ import annotations

import time

from ..attach import headroom
from ..attach.attacher import AttachOptions, connect, existing_agent
from ..attach.connection import AgentConnection, Cancelled, ConnectionLost, NoAnswer
from ..commands.spec import CommandSpec, LocalContext, split_command
from ..errors import CommandError, FlightProfilerError, ProtocolError, TargetError, UsageError
from ..render.safe import rich_proof, safe_block
from . import registry
from .output import Output

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    import threading
    from typing import Any, Callable

CANCEL_WAIT = 2.0
# other names of commands, as the seeds spell them
ALIASES = {"timetunnel": "tt"}


class Detached(Exception):
    """The user detached; the shell should end. ``confirmed``: the agent said it was done in time
    (otherwise the error was reported, and the exit status says it)."""

    def __init__(self, confirmed: bool = True) -> None:
        super().__init__()
        self.confirmed = confirmed


class AgentLost(FlightProfilerError):
    """The agent went away under us: the target exited, or another client detached it.
    ``Runner.lost`` keeps the reason until the user re-attaches (``Runner.reattach``)."""


class Runner:
    def __init__(self, pid: int, output: Output, attach_options: AttachOptions) -> None:
        self.pid = pid
        self.output = output
        self.attach_options = attach_options
        self._conn: AgentConnection | None = None
        # seconds after which a running job is cancelled and what it produced kept (MCP tools); None: no limit
        self.time_limit: float | None = None
        # why the agent went away ("pid N exited", ...); None while it is there or not attached yet
        self.lost: str | None = None
        self._oom: dict[str, int] = {}  # the target's memory cgroups' OOM kills when we attached
        # the last command's results reported a failed expression, filter or statement
        self.failed = False
        self.interrupted = False  # the last command was stopped with Ctrl-C

    def connection(self) -> AgentConnection:
        if self.lost is not None:
            raise AgentLost(self.lost)  # never re-inject behind the user's back: the shell asks first
        if self._conn is None:
            started = time.monotonic()
            self._conn = connect(self.pid, self.attach_options)
            self._oom = headroom.oom_kills(self.pid)  # a few small files: said if it dies of an OOM kill
            self.attach_options.log("attached to pid %d in %.0f ms" % (self.pid, (time.monotonic() - started) * 1000))
        return self._conn

    def execute(self, line: str) -> bool:
        """Run ``line``; True on success. Errors are reported, never raised."""
        try:
            name, rest = split_command(line)
        except UsageError as exc:
            self.output.error(None, str(exc))
            return False
        if not name:
            return True
        return self._reported(name, lambda: self._dispatch(name, rest))

    def execute_request(self, spec: CommandSpec, request: dict[str, Any]) -> bool:
        """Run a request already built (the MCP tools build theirs from their arguments, not from text);
        True on success. Errors are reported as for ``execute``, never raised."""
        return self._reported(spec.name, lambda: self.run_request(spec, request))

    def _reported(self, name: str, work: Callable[[], None]) -> bool:
        self.failed = self.interrupted = False
        try:
            work()
        except FlightProfilerError as exc:
            self.output.error(name, str(exc))
            return False
        except BrokenPipeError:
            raise  # our own output was closed (`| head`): nothing more can be shown (cli/main.py's entry)
        except OSError as exc:  # a file-system or socket failure on our side: one line, never a traceback
            self.output.error(name, "%s failed: %s" % (name, exc))
            return False
        return not self.failed

    def _dispatch(self, name: str, rest: str) -> None:
        if name == "help":
            print_help(self.output, rest)
            return
        if name == "detach":
            check_detach(rest)
            raise Detached(self.detach())
        spec, request = parse_command(name, rest)
        self.run_request(spec, request)

    def _note_failure(self, event: dict[str, Any]) -> None:
        """An expression, filter or statement that failed in the target makes the command fail (exit 1)."""
        if isinstance(event, dict) and (event.get("error") or event.get("filter_error") or event.get("errors")):
            self.failed = True

    def run_request(self, spec: CommandSpec, request: dict[str, Any]) -> None:
        deadline = None if self.time_limit is None else time.monotonic() + self.time_limit
        if spec.run_local is not None and spec.runs_locally(request):
            context = LocalContext(pid=self.pid, cancelled=lambda: _past(deadline))
            try:
                for event in spec.run_local(request, context):
                    self._note_failure(event)
                    self.output.result(spec.name, event, _rendered(spec, event, self.output.as_json))
            except TargetError as refused:
                if not self._ask_running_agent(spec, request, refused, deadline):
                    raise
            return
        conn = self.connection()
        try:
            self._run_in_agent(conn, spec, request, deadline)
        except ConnectionLost:
            raise self._lose() from None

    def _ask_running_agent(
        self, spec: CommandSpec, request: dict[str, Any], refused: TargetError, deadline: float | None
    ) -> bool:
        """Reading from outside was refused: ask the agent already in the target, if one is (never inject)."""
        fallback = spec.agent_fallback(request) if spec.agent_fallback is not None else None
        if fallback is None or self.lost is not None:
            return False
        conn = self._conn or existing_agent(self.pid, self.attach_options.timeout)
        if conn is None:
            return False
        self._conn = conn
        self.attach_options.log("%s; the agent already in pid %d answers instead" % (refused, self.pid))
        try:
            self._run_in_agent(conn, spec, fallback, deadline)
        except ConnectionLost:
            raise self._lose() from None
        return True

    def _run_in_agent(
        self, conn: AgentConnection, spec: CommandSpec, request: dict[str, Any], deadline: float | None
    ) -> None:
        job = conn.start(spec.name, request)
        timer = _cancel_at(deadline, conn, job)
        try:
            for event in conn.events(job):
                self._note_failure(event)
                self.output.result(spec.name, event, _rendered(spec, event, self.output.as_json))
        except KeyboardInterrupt:
            self.interrupted = True  # the shell goes on; --cmd exits 130
            self._cancel(conn, job)
        except Cancelled:
            self.output.note("cancelled")
        finally:
            if timer is not None:
                timer.cancel()

    def _lose(self) -> AgentLost:
        """Forget the dead connection and say why it died, in the words the user needs."""
        self.close()
        self.lost = _why_lost(self.pid, self._oom)
        return AgentLost(self.lost)

    def reattach(self) -> None:
        """After a lost agent: attach again now (injecting a new agent if none answers)."""
        self.lost = None
        self.connection()

    def target_alive(self) -> bool:
        return _alive(self.pid)

    def _cancel(self, conn: AgentConnection, job: int) -> None:
        conn.cancel(job)  # ConnectionLost goes up: the agent is gone, not just this job
        try:
            for _ in conn.events(job, timeout=CANCEL_WAIT):
                pass
        except ConnectionLost:
            raise
        except NoAnswer:  # the cancel is in the agent's socket: read when it runs, as a client gone would be
            self.output.note(
                "cancel sent; no answer within %g s (busy threads keep the agent from running): the job ends "
                "when it runs" % CANCEL_WAIT
            )
            return
        except CommandError as exc:  # e.g. user code still busy in C: the agent names the thread
            self.output.note(safe_block(str(exc)[:4000]))
            return
        except (Cancelled, FlightProfilerError):
            pass
        self.output.note("cancelled")

    def detach(self) -> bool:
        """Remove the agent, never injecting one to do it; False when it did not confirm within
        ``--timeout`` (reported: it removes itself when it runs)."""
        wait = self.attach_options.timeout  # --timeout, or an MCP call's timeout_s
        conn = None if self.lost else self._conn or existing_agent(self.pid, wait)
        if conn is None:
            self.output.note("no agent in pid %d: nothing to remove" % self.pid)
            return True
        try:
            goodbye = conn.detach(wait)
        except ConnectionLost:
            self.close()
            self.output.note("%s: nothing to remove" % _why_lost(self.pid))
            return True
        self._conn = None
        if not goodbye.confirmed:
            self.output.error(
                "detach",
                "pid %d did not confirm the detach within %g s (busy threads or a held GIL keep "
                "the agent from running): it removes itself and its hooks when it runs; "
                "`flight_profiler ps %d` says whether it is gone" % (self.pid, wait, self.pid),
            )
            return False
        self.output.note("detached: the agent and its hooks are gone from pid %d" % self.pid)
        if goodbye.busy:
            self.output.note(safe_block(goodbye.busy[:4000]))
        return True

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def parse_command(name: str, rest: str) -> tuple[CommandSpec, dict[str, Any]]:
    """The spec of command ``name`` (or its alias) and ``rest`` parsed into its request."""
    spec = registry.get(ALIASES.get(name, name))
    if spec is None:
        raise UsageError("unknown command %r; 'help' lists them" % name)
    return spec, spec.parse_line(rest)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child its parent has not reaped yet)."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _exited_soon(pid: int, wait: float = 0.5) -> bool:
    """A killed target's socket closes a moment before /proc shows it gone: look for a little while."""
    deadline = time.monotonic() + wait
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _why_lost(pid: int, oom: dict[str, int] | None = None) -> str:
    """``oom``: the target's memory cgroups' OOM kills when we attached (``headroom.oom_kills``)."""
    if _exited_soon(pid):
        return "pid %d exited%s" % (pid, headroom.oom_note(oom or {}))
    # A detach by another client shuts each session before the agent's listener closes: for a
    # moment the detaching agent itself still answers. Only one that still answers after
    # DETACH_SETTLE seconds is a new agent.
    deadline = time.monotonic() + DETACH_SETTLE
    while True:
        try:
            other = existing_agent(pid, 2.0)  # asks the socket only (2 s at most): never injects
        except FlightProfilerError:
            other = None
        if other is None:
            return "the agent was detached by another client"
        other.close()
        if time.monotonic() >= deadline:
            return "lost the connection to the agent in pid %d (a new agent answers there)" % pid
        time.sleep(0.2)


DETACH_SETTLE = 2.0


def _rendered(spec: CommandSpec, event: dict[str, Any], as_json: bool) -> Any:
    """The event as text; an event that lacks what its renderer needs came from a broken or hostile agent."""
    if as_json:
        return None  # --json prints the data itself
    try:
        return spec.render(rich_proof(event))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        raise ProtocolError("the agent sent a malformed %s result (%s)" % (spec.name, type(exc).__name__)) from None


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _cancel_at(deadline: float | None, conn: AgentConnection, job: int) -> threading.Timer | None:
    """Cancel ``job`` at ``deadline``: the agent ends it and the events loop sees Cancelled."""
    if deadline is None:
        return None

    def cancel() -> None:
        try:
            conn.cancel(job)
        except (FlightProfilerError, OSError):
            pass  # the connection is gone: the job ended with it

    import threading  # only calls with a time limit (the MCP tools) need it: not --cmd's start-up

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), cancel)
    timer.daemon = True
    timer.start()
    return timer


def print_help(output: Output, rest: str) -> None:
    """``help [command]`` (one target's shell, or a group's): a result like a command's, so that
    ``--json`` prints it as a record (docs/schema/help.json)."""
    from .help import help_record, render_help

    args = rest.split()
    if len(args) > 1:
        raise UsageError("help takes one command name, got %s" % " ".join(args))
    record = help_record(ALIASES.get(args[0], args[0]) if args else None)
    output.result("help", record, None if output.as_json else render_help(record))


def check_detach(rest: str) -> None:
    """``detach`` takes nothing: "detach now" must not read as a detach that waits or asks."""
    if rest.strip():
        raise UsageError("detach takes no arguments, got %s" % rest.strip())
