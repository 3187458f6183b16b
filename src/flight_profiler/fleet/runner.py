"""Run one command line on every target of a group, a few attaches at a time.

Each target gets its own ``cli.runner.Runner`` (the single-target code path, unchanged) whose
output goes to the group's ``Sink``. Attaching is gated: at most ``concurrency`` injections (and
py-spy reads, which stop the target while they read) at a time, their starts ``stagger`` seconds
apart, so a service never has all its workers stopped at once (an attach holds its slot only
while it injects: ``AttachOptions.stopping``). Commands then run on every
target at the same time (a ``watch`` must watch them all). A target that fails says why in one
line and the others go on.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..attach import privsep
from ..attach.attacher import AttachOptions, prepare_injection
from ..attach.connection import AgentConnection
from ..cli.runner import Detached, Runner, check_detach, parse_command, print_help
from ..commands.spec import CommandSpec, split_command
from ..errors import FlightProfilerError, UsageError
from .merge import Merger, merger_for
from .select import Target
from .sink import Sink

DEFAULT_CONCURRENCY = 8
STAGGER = 0.005  # seconds between two injections' starts
# client-side commands that stop the target while they read it (py-spy dump): gated like an attach
GATED_LOCAL = ("stack",)
# request keys that name a file we write: each target gets its own (name.PID.ext)
OUTPUT_PATHS = {"stack": "filepath", "perf": "filepath", "torch": "path"}
INTERRUPT_WAIT = 5.0  # seconds the members get to end their cancelled jobs (then the closing sockets end them)


class Gate:
    """At most ``limit`` holders at once; injections also start ``stagger`` seconds apart."""

    def __init__(self, limit: int, stagger: float = STAGGER) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._next = 0.0
        self.stagger = stagger

    @contextmanager
    def slot(self, stagger: bool) -> Iterator[None]:
        with self._slots:
            if stagger:
                with self._lock:
                    now = time.monotonic()
                    start = max(now, self._next)
                    self._next = start + self.stagger
                time.sleep(start - now)
            yield


class _TrackedConnection(AgentConnection):
    """The member's connection, remembering its job in flight: Ctrl-C in the main thread cancels it."""

    def __init__(self, inner: AgentConnection) -> None:  # takes over the open connection
        self.__dict__.update(vars(inner))
        self.running: int | None = None

    def start(self, command: str, request: dict[str, Any]) -> int:
        job = super().start(command, request)
        self.running = job
        return job


class MemberRunner(Runner):
    """The single-target runner, attaching through the group's gate."""

    def __init__(self, target: Target, sink: Sink, options: AttachOptions, gate: Gate) -> None:
        super().__init__(target.pid, sink.member(target), options)
        self.target = target
        self.gate = gate

    def connection(self) -> AgentConnection:
        if self._conn is None and self.lost is None:
            # the gate is held around the injection alone (AttachOptions.stopping): the rest of an
            # attach stops nothing, and waiting for each agent's start in turn made 32 attaches 4 rounds
            self._conn = _TrackedConnection(super().connection())
        return super().connection()

    def will_inject(self, spec: CommandSpec, request: dict[str, Any]) -> bool:
        """Whether running ``request`` is expected to inject an agent (as the selection saw the target)."""
        if self._conn is not None or self.lost is not None or self.target.problem is not None:
            return False
        return self.target.injects and not (spec.run_local is not None and spec.runs_locally(request))

    def run_request(self, spec: CommandSpec, request: dict[str, Any]) -> None:
        if spec.name in GATED_LOCAL and spec.run_local is not None and spec.runs_locally(request):
            with self.gate.slot(stagger=False):
                super().run_request(spec, request)
            return
        super().run_request(spec, request)

    def cancel_running(self) -> None:
        conn = self._conn
        if isinstance(conn, _TrackedConnection) and conn.running is not None:
            try:
                conn.cancel(conn.running)
            except (FlightProfilerError, OSError):
                pass  # gone: its job ended with it


class Fleet:
    """The group: its targets, one runner each, and the sink that merges what they print."""

    def __init__(self, targets: list[Target], sink: Sink, options: AttachOptions, concurrency: int) -> None:
        self.sink = sink
        self.gate = Gate(concurrency)
        options.stopping = lambda: self.gate.slot(stagger=True)
        self.members = [MemberRunner(target, sink, options, self.gate) for target in targets]
        self.output_closed = False  # a member's result met a closed output (`| head`)

    def member(self, pid: int) -> MemberRunner | None:
        return next((member for member in self.members if member.pid == pid), None)

    def execute(self, line: str, only: list[MemberRunner] | None = None) -> bool:
        """Run ``line`` on every member (or ``only`` these); True when it succeeded on all of them."""
        members = self.members if only is None else only
        try:  # as one target's Runner reads it: the seeds' unquoted expressions, the timetunnel alias
            name, rest = split_command(line)
        except UsageError as exc:
            self.sink.output.error(None, str(exc))
            return False
        if not name:
            return True
        try:
            work = self._prepare(name, rest, members)
        except FlightProfilerError as exc:
            self.sink.output.error(name, str(exc))
            return False
        if work is None:
            return True
        spec, requests, merger = work
        return self._run(spec, requests, merger, members)

    def _prepare(
        self, name: str, rest: str, members: list[MemberRunner]
    ) -> tuple[CommandSpec | None, dict[int, dict[str, Any]], Merger | None] | None:
        """Parse once, before any target is touched; None when the line was handled here (help)."""
        if name == "help":
            print_help(self.sink.output, rest)
            return None
        if name == "detach":
            check_detach(rest)
            return None, {}, None
        spec, request = parse_command(name, rest)
        if spec.interactive and not request.get("source"):
            raise UsageError("%s is interactive and works on one process: 'use PID' first, or give -c" % name)
        if request.get("pid"):
            raise UsageError("%s PID reads another process; over a group, select it with -p instead" % name)
        merger = merger_for(spec.name, request) if len(members) > 1 else None  # "timetunnel" is tt
        return spec, {member.pid: _for_target(spec, request, member.pid, len(members)) for member in members}, merger

    def _run(
        self,
        spec: CommandSpec | None,
        requests: dict[int, dict[str, Any]],
        merger: Merger | None,
        members: list[MemberRunner],
    ) -> bool:
        command = spec.name if spec is not None else "detach"
        self.sink.begin(command, merger, [member.target for member in members])
        if spec is not None:
            _prepare_injections(spec, requests, members)
        failed: set[int] = set()
        done = [threading.Event() for _ in members]
        with privsep.sharing():  # the members in one directory of another user share one helper process
            for member, finished in zip(members, done):
                work = (member, spec, requests.get(member.pid), failed, finished)
                threading.Thread(target=self._one, args=work, daemon=True).start()
            try:
                _wait(done, None)
            except KeyboardInterrupt:
                for member in members:
                    member.cancel_running()
                _wait(done, INTERRUPT_WAIT)
                self.sink.output.note("interrupted")
        if self.output_closed:
            raise BrokenPipeError(32, "our output was closed")
        self.sink.end(failed)
        return not failed

    def _one(
        self,
        member: MemberRunner,
        spec: CommandSpec | None,
        request: dict[str, Any] | None,
        failed: set[int],
        finished: threading.Event,
    ) -> None:
        try:
            self._one_member(member, spec, request, failed)
        except BrokenPipeError:  # a result or an error line met our closed output (`| head`)
            self.output_closed = True  # the main thread ends the run (cli/main.py's entry)
            for other in self.members:
                other.cancel_running()
        finally:
            finished.set()

    def _one_member(
        self, member: MemberRunner, spec: CommandSpec | None, request: dict[str, Any] | None, failed: set[int]
    ) -> None:
        command = spec.name if spec is not None else "detach"
        try:
            if member.target.problem is not None:
                raise FlightProfilerError(member.target.problem)
            if spec is None or request is None:
                if not member.detach():  # not confirmed in time: reported on the member's output
                    failed.add(member.pid)
            else:
                member.run_request(spec, request)
        except Detached:
            pass
        except BrokenPipeError:
            raise  # our output, not this member (_one)
        except FlightProfilerError as exc:
            failed.add(member.pid)
            member.output.error(command, str(exc))
        except OSError as exc:
            failed.add(member.pid)
            member.output.error(command, "%s failed: %s" % (command, exc))
        except Exception as exc:  # noqa: BLE001 - one target's surprise must not stop the others
            failed.add(member.pid)
            member.output.error(command, "%s failed: %s: %s" % (command, type(exc).__name__, exc))

    def close(self) -> None:
        for member in self.members:
            member.close()


def _prepare_injections(spec: CommandSpec, requests: dict[int, dict[str, Any]], members: list[MemberRunner]) -> None:
    """Before the attach threads start: the injector and the bundle for the versions that members about to
    inject run, made once here rather than by the first attach thread while the others contend for the GIL
    (no injection could start before them). Only where the selection saw no agent: reusing one needs none."""
    versions = set()
    for member in members:
        request = requests.get(member.pid)
        if request is not None and member.target.python is not None and member.will_inject(spec, request):
            versions.add(member.target.python)
    for version in sorted(versions):
        try:
            prepare_injection(version)
        except Exception:  # noqa: BLE001 - only a head start: the attaches meet it again and say so per target
            return


def _for_target(spec: CommandSpec, request: dict[str, Any], pid: int, count: int) -> dict[str, Any]:
    """The request for one target: output files get the target's pid in their name."""
    key = OUTPUT_PATHS.get(spec.name)
    path = request.get(key) if key else None
    if count < 2 or key is None or not isinstance(path, str):
        return request
    stem, ext = os.path.splitext(path)
    return {**request, key: "%s.%d%s" % (stem, pid, ext)}


def _wait(done: list[threading.Event], timeout: float | None) -> None:
    """Until every member is done (or ``timeout``). Events, not Thread.join: a join that Ctrl-C
    interrupted can report a thread that is still running as finished (seen on 3.11)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for finished in done:
        while not finished.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            finished.wait(0.2 if left is None else min(0.2, left))  # short waits: Ctrl-C reaches us
