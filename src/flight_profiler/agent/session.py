"""One client connection and its jobs (runs in the target).

Every job runs on its own daemon thread. When the client goes away, however it
died, the reader sees EOF and cancels its jobs; each job's cleanups (unhooking
included) run on its own thread before it ends.

User code (``console``, ``-e`` of getglobal/vmtool, ``tt -p``) never runs on
this session's own thread, so the session keeps reading ``cancel`` and
``detach`` while it runs; it runs inside ``usercode.contain``: bounded by its
budget, stopped by Ctrl-C and detach (an asynchronous exception at its next
bytecode), and a thread that does not stop (blocked in C) is named in the
reply with its stack. Quick commands run on the session's thread; the program's
code their captures call is bounded the same way, and when it blocks in C past
its budget the session goes on on a new thread (``Session._leave_stuck``).
"""

from __future__ import annotations

import _socket
import os
import sys

from ..protocol.framing import Channel, ChannelClosed, FrameError, SocketTimeout
from ..protocol.messages import END_CANCELLED, END_ERROR, END_OK, validate
from ..protocol.version import PROTOCOL_VERSION
from ..services import realthreads
from ..services.context import AGENT_THREAD_IDS, CommandFailed, JobContext
from ..services.describe import describe_error
from .registry import QUICK, handler_for


class _LazyUsercode:
    """``services.usercode`` on first use: it imports ``threading``, which an idle agent must not add
    to a target that never loaded it (nor print under ``-X importtime``)."""

    name = __name__.rsplit(".", 2)[0] + ".services.usercode"

    def loaded(self) -> bool:
        return self.name in sys.modules

    def __getattr__(self, name: str) -> Any:
        from ..services import usercode as module

        return getattr(module, name)


usercode = _LazyUsercode()

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


if TYPE_CHECKING:
    from .server import Server

# A quick command's reader blocked in the program's code (in C) past its capture budget: after this
# many more seconds the session goes on without it; at most MAX_STUCK_THREADS such threads, agent-wide.
# 3.11's watchdog leaves a stop pending 40 ms at a time, again each REPOST_AFTER (1 s; services/watchdog,
# _FREEZES_TRACED): with 1 s, a __repr__ sleeping in 50 ms steps was left behind in 5 of 8 runs on 3.11,
# where a later window would have stopped it; 3.5 s holds four windows (0 of 14 runs)
STUCK_GRACE = 3.5 if sys.version_info[:2] == (3, 11) else 1.0
MAX_STUCK_THREADS = 3
STUCK: set[int] = set()  # the idents of those threads, until each returns
JOB_STOP_WAIT = 1.0  # seconds a job gets to finish after cancel before we move on
CANCEL_STOP_WAIT = 0.5  # after Ctrl-C, before we say its user code is still busy (the client waits 2 s)
REPLAY_BUDGET_MS = 60000.0  # tt -p runs the application's function again: it may take a while
LOG_PATH: str | None = None  # set by the server: tracebacks of agent bugs go here, never to stdout

# Commands that hand the application nothing of ours it could call after the detach: no hook,
# callback, thread, generator, user code or namespace of ours. While only these ran (any session
# of this agent), the detach empties our modules' namespaces as soon as our threads are out of
# them (agent/sweep.py), instead of leaving their reference cycles to the target's
# garbage collector. ``stack`` is not one (``stack module method`` hooks); ``getglobal -e`` is
# not (user code, see _user_code). A command added here must stay read-only.
PASSIVE_COMMANDS = frozenset(("getglobal", "thread", "module", "sc", "sm"))
HANDED_OUT = [False]  # a command outside PASSIVE_COMMANDS (or with user code) ran in this agent


class _Superseded(Exception):
    """A reader left behind in a quick command (``Session._leave_stuck``) ends, and ends nothing else."""


def _stuck_threads() -> list[int]:
    """The readers left blocked in the program's code that are still alive."""
    if not STUCK:  # every quick command asks: no snapshot of every thread's frame unless one is left
        return []
    alive = set(sys._current_frames())
    for ident in list(STUCK):
        if ident not in alive:
            STUCK.discard(ident)
    return sorted(STUCK)


def _not_run_while_stuck(job_id: int, command: str, stuck: list[int]) -> dict[str, Any]:
    return {
        "type": "end",
        "job": job_id,
        "status": END_ERROR,
        "error": "%s: not run: %d of our threads are still blocked in the program's code (the first: %s); it"
        " runs again once one of them returns" % (command, len(stuck), usercode.describe_threads(stuck[:1])),
    }


class Session:
    def __init__(self, sock: Any, server: Server) -> None:
        self.channel = Channel(sock, realthreads.allocate_lock())
        self.server = server
        self.jobs: dict[int, tuple[JobContext, realthreads.Thread]] = {}
        self.state: dict[str, Any] = {}
        self.lock = realthreads.allocate_lock()
        self.thread = realthreads.Thread(self._run, "flight_profiler-session")
        self.greeted = False  # the handshake is done (on the listener's thread, or on ours)
        self.inline_ident: int | None = None  # the listener's thread while it serves us (see start_after_first)
        self.stall: Any = None  # the usercode.Stall of the quick command our reader runs, if any
        self.first_handled = realthreads.Event()  # our first request was answered (or started), or we ended

    def start(self) -> None:
        self.thread.start()

    def start_after_first(self, wait: float) -> None:
        """On the listener's thread: shake hands, then go on on our own thread.

        Why: on a target whose busy threads fight for the GIL, starting a thread costs
        a wait behind every one of them (the starter waits for the new thread, which
        waits for the GIL); the client's hello is answered before that. The handshake
        waits at most ``wait`` seconds for the client (a client that sends nothing
        yet): then the session gets its thread at once, and the next client's
        connection waited in the backlog no longer. Requests are never run here: a
        quick command's capture may call the program's ``__repr__``, which can block
        in C for good; on the listener it would keep every later client out, detach
        included (it did, in a first version).
        """
        self.inline_ident = realthreads.get_ident()
        go_on = False
        try:
            go_on = self._first_steps(wait)
        except (ChannelClosed, FrameError, OSError):
            pass
        finally:
            self.inline_ident = None
        if go_on:
            try:
                self.start()
                return
            except Exception as exc:  # noqa: BLE001 - no thread left for it (a limit): the session ends, saying why
                self._say_no_thread("this session", exc)
        self._end()

    def _say_no_thread(self, what: str, exc: BaseException, job: int | None = None) -> None:
        """No thread could be started (pids.max, ulimit -u or -v reached since we attached): said to the client."""
        error = (
            "the agent could not start a thread for %s (%s: %s): the process is at a limit of its threads or "
            "memory (pids.max, ulimit -u, ulimit -v)" % (what, type(exc).__name__, exc)
        )
        message: dict[str, Any] = {"type": "error", "error": error}
        if job is not None:
            message = {"type": "end", "job": job, "status": END_ERROR, "error": error}
        try:
            self.channel.send(message)
        except (ChannelClosed, OSError):
            pass

    def _first_steps(self, wait: float) -> bool:
        """The handshake if it comes within ``wait``; False: the session is over."""
        # a timeout of the socket (a deadline that CPython keeps across EINTR), not the kernel's
        # SO_RCVTIMEO: every interruption (a signal to the target, a py-spy dump) would restart that
        try:
            return self._handshake(wait)
        except SocketTimeout:
            return True  # not yet: our thread waits for it (the bytes already read stay in the channel)

    def stop(self, wait: bool) -> None:
        """Cancel all jobs and close the connection."""
        # Shut first: a command we interrupt below would otherwise race its own "cancelled" end to the
        # client ahead of the close, and that client must read "detached by another client".
        self.channel.shut()
        # a quick command's capture may be running a __repr__ (on the listener's thread before we have ours)
        usercode.interrupt(self.inline_ident or self.thread.ident)
        self._cancel_all()
        self.channel.close()
        if wait and self.thread.is_alive() and not self.thread.is_current():
            self.thread.join(JOB_STOP_WAIT)

    def forsake(self) -> None:
        """A forked child's copy of this session (see ``server.forsake_inherited``): its jobs' threads
        are not in this process, so their cleanups (unhooking included) run here; its socket is the
        parent's connection to its client, closed here only, never shut down or written to."""
        for ctx, _ in list(self.jobs.values()):  # no lock: see Server.forsake
            ctx.cancelled.set()
            ctx._lock = realthreads.allocate_lock()  # its holder at the fork, if any, is not in this process
            ctx.run_cleanups()
        self.jobs.clear()
        try:
            self.channel.sock.close()
        except OSError:
            pass

    def _run(self) -> None:
        mine = realthreads.idents()
        AGENT_THREAD_IDS.update(mine)
        superseded = False
        try:
            if self.greeted or self._handshake(None):
                self._read_loop()
        except (ChannelClosed, FrameError, OSError):
            pass
        except _Superseded:  # a quick command kept us in C too long: another thread reads for the session now
            superseded = True
        finally:
            if not superseded:
                self._end()
            AGENT_THREAD_IDS.difference_update(mine)

    def _end(self) -> None:
        self.first_handled.set()
        self._cancel_all()
        self.channel.close()
        self.server.forget(self)
        # our thread's target is our bound method: a cycle (session -> thread -> session) that would
        # wait for the target's next full collection; a running call keeps its own reference
        self.thread.target = _ended

    def _handshake(self, wait: float | None) -> bool:
        if _peer_pid(self.channel.sock) == 0 and not _shares_our_mount_ns(self.channel, wait):
            self.channel.send({"type": "error", "error": OUTSIDER})
            return False
        msg = self.channel.recv(wait)
        if msg.get("type") != "hello" or msg.get("protocol") != PROTOCOL_VERSION:
            self.channel.send(
                {
                    "type": "error",
                    "error": "protocol mismatch: agent speaks %d, client sent %r"
                    % (PROTOCOL_VERSION, msg.get("protocol")),
                }
            )
            return False
        if not _claimed_pid_consistent(self.channel.sock, msg):
            self.channel.send({"type": "error", "error": "the client's pid does not match its socket"})
            return False
        self.channel.send(_hello())
        self.greeted = True
        return True

    def _read_loop(self) -> None:
        go_on = self._handle(self.channel.recv())
        self.first_handled.set()  # the listener waits for it to undo what the agent's start changed (server.serve)
        while go_on and self._handle(self.channel.recv()):
            pass

    def _handle(self, msg: dict[str, Any]) -> bool:
        """Act on one message from the client; False after a detach (the session is over)."""
        problem = validate(msg)
        if problem:
            self.channel.send({"type": "error", "error": problem})
            return True
        kind = msg["type"]
        if kind == "run":
            self._start_job(msg)
        elif kind == "cancel":
            self._cancel(msg["job"])
        elif kind == "detach":
            busy = self._cancel_all()
            # application threads still inside a filter of ours (blocked in C): named, not waited for
            if usercode.loaded():  # no user code ever ran: nothing can be overdue
                busy += [ident for ident in usercode.overdue() if ident not in AGENT_THREAD_IDS]
            busy += _stuck_threads()  # quick commands' readers left in the program's code (_leave_stuck)
            end = {"type": "end", "job": 0, "status": END_OK}
            if busy:
                end["busy"] = "still busy in code we ran: " + usercode.describe_threads(busy)
            self.server.detach(self)
            # only now: the client may attach again at once, and our cleanup must not
            # race with the next agent's files
            self.channel.send(end)
            return False
        return True

    def _start_job(self, msg: dict[str, Any]) -> None:
        job_id = msg["job"]
        if msg["command"] not in PASSIVE_COMMANDS or _user_code(msg["command"], msg["request"]) is not None:
            HANDED_OUT[0] = True
        if (
            msg["command"] in QUICK
            and _user_code(msg["command"], msg["request"]) is None
            and not _walks_heap(msg["command"], msg["request"])
        ):
            self._run_quick(msg)
            return
        ctx = JobContext(job_id, lambda data: self._emit(job_id, data), self.state)
        thread = realthreads.Thread(
            self._run_job, "flight_profiler-job-%s" % msg["command"], (ctx, msg["command"], msg["request"])
        )
        with self.lock:
            self.jobs[job_id] = (ctx, thread)
        try:
            thread.start()
        except Exception as exc:  # noqa: BLE001 - no thread to spare: this command fails, the session goes on
            with self.lock:
                self.jobs.pop(job_id, None)
            self._say_no_thread("%s (job %d)" % (msg["command"], job_id), exc, job_id)

    def _run_quick(self, msg: dict[str, Any]) -> None:
        """Run a short command here and send its events and end in one write.

        Here: a thread start per command would cost a busy target a wait behind all its threads. But
        its capture calls the program's code (a ``__repr__``, a module's ``__getattr__``), which may
        block in C for good: past its budget and ``STUCK_GRACE`` the watchdog (``usercode.Stall``)
        hands the session to a new reader thread (``_leave_stuck``) and this one, once back, ends.
        """
        messages: list[dict[str, Any]] = []
        job_id = msg["job"]
        stuck = _stuck_threads()
        if len(stuck) >= MAX_STUCK_THREADS:
            self.channel.send(_not_run_while_stuck(job_id, msg["command"], stuck))
            return
        ctx = JobContext(
            job_id, lambda data: messages.append({"type": "event", "job": job_id, "data": data}), self.state
        )
        ident = realthreads.get_ident()
        stall = usercode.Stall(lambda it, _: self._leave_stuck(it, job_id, msg["command"]), STUCK_GRACE)
        self.stall = stall
        usercode.STALLS[ident] = stall
        try:
            messages.append(_execute(ctx, msg["command"], msg["request"]))
        finally:
            usercode.STALLS.pop(ident, None)
            with self.lock:  # against _leave_stuck on the watchdog's thread: one of the two decides
                left = self.stall is not stall
                self.stall = None
        if left:
            STUCK.discard(ident)
            raise _Superseded()  # the client had its error; what we found is dropped
        self.channel.send_many(messages)

    def _leave_stuck(self, stall: Any, job_id: int, command: str) -> None:
        """On the watchdog's thread: the reader is blocked in the program's code past its budget.

        The client gets its one-line error now, a new thread reads for the session, and the old one
        is left to return on its own (counted in ``STUCK``: past ``MAX_STUCK_THREADS`` quick commands
        are refused, so that a program whose every ``__repr__`` blocks cannot make us pile up threads).
        """
        old = self.thread
        with self.lock:
            if self.stall is not stall or self.channel.sock.fileno() == -1:
                return  # it returned meanwhile, or the session is ending: nothing to take over
            self.stall = None
            STUCK.add(old.ident or 0)
            self.thread = realthreads.Thread(self._run, "flight_profiler-session")
        try:
            self.channel.send(
                {
                    "type": "end",
                    "job": job_id,
                    "status": END_ERROR,
                    "error": "%s: the program's code it called is still blocked outside Python after its budget: %s;"
                    " that thread is left to return on its own, the session goes on"
                    % (command, usercode.describe_threads([old.ident or 0])),
                }
            )
        except (ChannelClosed, OSError):
            pass
        try:
            self.thread.start()
        except Exception:  # noqa: BLE001 - no thread to spare (a limit): the session ends, the client sees it closed
            self._end()

    def _run_job(self, ctx: JobContext, command: str, request: dict[str, Any]) -> None:
        mine = realthreads.idents()
        AGENT_THREAD_IDS.update(mine)
        try:
            if _user_code(command, request) is not None:
                end = self._run_buffered(ctx, command, request)
            else:
                end = _execute(ctx, command, request)
        except BaseException:  # noqa: BLE001 - a stop that landed outside the user code ends the job, not the thread
            end = {"type": "end", "job": ctx.job_id, "status": END_CANCELLED}
        finally:
            with self.lock:
                self.jobs.pop(ctx.job_id, None)
            AGENT_THREAD_IDS.difference_update(mine)
        try:
            self.channel.send(end)
        except (ChannelClosed, OSError):
            pass

    def _run_buffered(self, ctx: JobContext, command: str, request: dict[str, Any]) -> dict[str, Any]:
        """User code's events are sent after it ran: a stop never lands in the middle of a write."""
        messages: list[dict[str, Any]] = []
        job_id = ctx.job_id
        ctx._emit = lambda data: messages.append({"type": "event", "job": job_id, "data": data})
        end = _execute(ctx, command, request)
        if messages:
            try:
                self.channel.send_many(messages)
            except (ChannelClosed, OSError):
                pass
        return end

    def _emit(self, job_id: int, data: dict[str, Any]) -> None:
        self.channel.send({"type": "event", "job": job_id, "data": data})

    def _cancel(self, job_id: int) -> None:
        with self.lock:
            entry = self.jobs.get(job_id)
        if entry is None:
            return
        ctx, thread = entry
        ctx.cancelled.set()
        if not usercode.interrupt(thread.ident):
            return  # not running user code: the job sees ``cancelled`` and ends itself
        thread.join(CANCEL_STOP_WAIT)
        if thread.is_alive():  # blocked in C: its stop lands when it is back in Python
            self.channel.send(
                {
                    "type": "end",
                    "job": job_id,
                    "status": END_ERROR,
                    "error": "cancelled, but it is still busy outside Python: "
                    + usercode.describe_threads([thread.ident or 0]),
                }
            )

    def _cancel_all(self) -> list[int]:
        """Cancel and stop every job; the threads that did not end within JOB_STOP_WAIT."""
        with self.lock:
            entries = list(self.jobs.values())
        for ctx, thread in entries:
            ctx.cancelled.set()
            usercode.interrupt(thread.ident)
        busy = []
        for _, thread in entries:
            if not thread.is_current():
                thread.join(JOB_STOP_WAIT)
                if thread.is_alive() and thread.ident is not None:
                    busy.append(thread.ident)
        return busy


def _walks_heap(command: str, request: dict[str, Any]) -> bool:
    """getInstances and referenceAnalyze walk the heap (seconds on a big one): on a job thread, Ctrl-C,
    detach and a client that went away stop it; on the session's thread nothing would read them meanwhile."""
    walks = ("getInstances", "referenceAnalyze")
    return command == "vmtool" and isinstance(request, dict) and request.get("action") in walks


def _ended() -> None:
    """An ended session's thread target (see Session._end)."""


def _user_code(command: str, request: dict[str, Any]) -> tuple[str, float | None] | None:
    """What user code the command runs and its default budget in ms (None: until stopped), or None."""
    if not isinstance(request, dict):
        return None  # the handler refuses it, on a job thread
    if command == "console":
        return "the console code", None
    if command == "getglobal" and request.get("expr"):
        return "-e %r" % (request["expr"],), usercode.AGENT_BUDGET_MS
    if command == "vmtool" and request.get("expr"):
        # vmtool applies the budget to the expression alone: the heap walk before it is ours
        # (seconds on a big heap) and must not eat the user's budget
        return "-e %r" % (request["expr"],), None
    if command == "tt" and request.get("action") == "replay":
        return "the replay", REPLAY_BUDGET_MS
    return None


def _execute(ctx: JobContext, command: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run a command's handler and its cleanups; return the ``end`` message."""
    status, error = END_OK, None
    try:
        handler = handler_for(command, _package())
        user = _user_code(command, request)
        if user is not None:
            what, default = user
            budget = usercode.budget_of(request, default) if default is not None else None
            usercode.contain(handler, (request, ctx), budget, what)
        elif command in QUICK:
            # marked all the same, so that a detach can stop a __repr__ its capture runs; never a
            # command that hooks: a stop landing in the middle of an install would leave it half done
            usercode.contain(handler, (request, ctx), None, command)
        else:
            handler(request, ctx)
    except CommandFailed as exc:
        status, error = END_ERROR, str(exc)
    except usercode.Stopped:
        status = END_CANCELLED
    except usercode.UserError as exc:
        status, error = END_ERROR, "%s raised %s" % (command, exc)
    except Exception as exc:  # noqa: BLE001 - a command bug must not kill the agent
        # describe_error: the exception may be the target's, whose __str__ raises
        status, error = END_ERROR, "internal error in %s: %s" % (command, describe_error(exc))
        _log_exception()
    finally:
        cleanup_errors = ctx.run_cleanups()
        if ctx.cancelled.is_set() and status == END_OK:
            status = END_CANCELLED
        if cleanup_errors and error is None:
            status, error = END_ERROR, "cleanup failed: " + "; ".join(cleanup_errors)
    end: dict[str, Any] = {"type": "end", "job": ctx.job_id, "status": status}
    if error is not None:
        end["error"] = error
    return end


def _package() -> str:
    return __name__.rsplit(".", 2)[0]


_PID_NS: list[str] = []


OUTSIDER = (
    "a client outside the target's pid namespace must send a descriptor of its mount namespace with its"
    " hello (flight_profiler as root or as the target's user, where it sees the target's pid, does)"
)


def _peer_pid(sock: Any) -> int:
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # struct ucred: pid, uid, gid
    return int.from_bytes(creds[0:4], sys.byteorder)


def _shares_our_mount_ns(channel: Any, wait: float | None) -> bool:
    """A peer the kernel shows as pid 0 is outside our pid namespace: root's client from the host (through
    a helper in our mount namespace), or a process of our uid in another container of a Kubernetes pod,
    whose /dev/shm (our socket's directory where /tmp is read-only) it shares, though it can neither see
    nor signal us. Only the first can open our /proc/<pid>/ns/mnt, and sends it along its hello."""
    fds = channel.recv_first_with_fds(wait, 2)
    try:
        if len(fds) != 1:
            return False
        theirs, ours = os.fstat(fds[0]), os.stat("/proc/self/ns/mnt")
        return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)
    except OSError:
        return False  # no /proc here: we cannot tell, so we do not let it in
    finally:
        for fd in fds:
            os.close(fd)


def _claimed_pid_consistent(sock: Any, msg: dict[str, Any]) -> bool:
    """A client in our pid namespace must be the process SO_PEERCRED names (a relayed socket is not)."""
    claimed = msg.get("pid")
    if not isinstance(claimed, int) or not msg.get("pidns"):
        return True  # an older client, or one that could not tell its namespace
    if _peer_pid(sock) == claimed:
        return True  # the usual case, in whatever namespace: no readlink (a system call lets go of the GIL)
    if not _PID_NS:
        try:
            _PID_NS.append(os.readlink("/proc/self/ns/pid"))
        except OSError:
            _PID_NS.append("")
    return bool(msg["pidns"] != _PID_NS[0])  # in ours it is not who SO_PEERCRED names; elsewhere its pid means nothing


def _hello() -> dict[str, Any]:
    from .. import __version__

    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "executable": sys.executable,
        "agent_version": __version__,
        "notes": _notes(),
    }


def _notes() -> list[str]:
    """What the target did to its runtime that the agent works around (the client shows it with --debug)."""
    notes: list[str] = []
    for check in (realthreads.patch_notes, _json_notes, _socket_notes):
        try:
            notes.extend(check())
        except Exception:  # noqa: BLE001, S112 - a hostile replacement must not break the handshake
            continue
    return notes


def _json_notes() -> list[str]:
    json: Any = sys.modules.get("json")
    if json is None or all(getattr(getattr(json, name), "__module__", None) == "json" for name in ("dumps", "loads")):
        return []
    return ["json.dumps/json.loads are replaced in the target: the agent uses _json's C functions"]


def _socket_notes() -> list[str]:
    sock_type: Any = getattr(sys.modules.get("socket"), "socket", None)
    if sock_type is None or (
        isinstance(sock_type, type)
        and all(getattr(sock_type, name, None) is getattr(_socket.socket, name) for name in _SOCKET_METHODS)
    ):
        return []
    return ["socket.socket is patched in the target: the agent uses _socket's own socket type"]


_SOCKET_METHODS = ("sendall", "recv", "send", "shutdown")  # not close: socket.socket defines its own


def _log_exception() -> None:
    """Keep the traceback next to the socket for ``--debug``; never print into the target."""
    if LOG_PATH is None:
        return
    import traceback

    try:
        # backslashreplace: a message of the target's may hold a lone surrogate, which the strict
        # codec refuses; anything this raised would end the session's thread (its client sees the
        # connection lost)
        with open(LOG_PATH, "a", encoding="utf-8", errors="backslashreplace") as fh:
            traceback.print_exc(file=fh)
    except Exception:  # noqa: BLE001, S110 - the log is a convenience, the answer is what matters
        pass
