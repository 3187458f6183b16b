"""Attach sequence (client side): reuse a running agent, or inject one.

1. Read /proc: is it a live CPython we support, did it opt out, is another
   tracer on it?  Nothing is stopped yet.
2. If an agent already answers on the target's socket, use it (no injection).
3. 3.14+: ``sys.remote_exec`` run by the target's own interpreter binary; the
   bootstrap runs when the main thread next reaches the eval loop.
4. Otherwise (or when 3 did not connect within ``REMOTE_EXEC_WAIT``): the
   ptrace injector, which runs the bootstrap only at a safe point (see
   ``ptrace.inject``); if it had to queue a pending call that the main thread
   does not reach, another thread parked in a safe syscall runs it instead.
5. Wait for the agent's socket and shake hands. If it never comes, say why
   (the GIL holder, read from outside) and leave the target as it was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ..errors import AttachError, InjectionError, TargetError
from ..readers import pyspy
from . import bootstrap, bundle, paths, ticket
from .connection import AgentConnection
from .target import Target, check_remote_debug_allowed, inspect
from .waits import AgentWait, open_agent

REMOTE_EXEC_WAIT = 2.0
PENDING_WAIT = 2.0


class AttachOptions:
    def __init__(self, timeout: float = 30.0, force: bool = False, log: Callable[[str], None] | None = None) -> None:
        self.timeout = timeout
        self.force = force
        self.log: Callable[[str], None] = log or (lambda message: None)


def existing_agent(pid: int, timeout: float = 30.0) -> AgentConnection | None:
    """A connection to the agent already running in ``pid``, or None; never injects."""
    target = inspect(pid)
    return open_agent(paths.from_client(target, paths.socket_in_target(target)), timeout)


def connect(pid: int, options: AttachOptions) -> AgentConnection:
    """A connection to the agent in ``pid``, injecting it when none runs yet."""
    conn = _connect(pid, options)
    for note in conn.info.get("notes") or ():  # what the agent works around in this target (gevent, ...)
        options.log("agent: %s" % _printable(str(note)[:300]))
    return conn


def _printable(text: str) -> str:
    """The target wrote it: no control character of it reaches the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _connect(pid: int, options: AttachOptions) -> AgentConnection:
    target = inspect(pid)
    socket_path = paths.from_client(target, paths.socket_in_target(target))
    existing = open_agent(socket_path, options.timeout, running=True)
    if existing is not None:
        options.log("reusing the agent already running in pid %d" % pid)
        return existing
    if not options.force:
        check_remote_debug_allowed(pid)
    from . import procfs

    procfs.check_attachable(pid)  # zombie, stopped, or another tracer: say so before touching it
    ticket.check_free_fds(pid, bootstrap.RESERVED_FDS)  # 3.8 aborts if our thread exits without a free fd
    _prepare_dir(target)
    in_target = paths.socket_in_target(target)
    bundle.write(
        paths.from_client(target, paths.private_dir(target)),
        os.path.basename(bootstrap.bundle_path(in_target)),
        target.uid,
    )
    ticket.issue(paths.from_client(target, bootstrap.ticket_path(in_target)), target.uid)
    deadline = time.monotonic() + options.timeout
    source = bootstrap.source(in_target, time.time() + options.timeout)
    try:
        if target.version >= (3, 14) and not _main_thread_parked(target) and _remote_exec(target, source, options):
            conn = _waiter(target, socket_path).until(min(deadline, time.monotonic() + REMOTE_EXEC_WAIT))
            if conn is not None:
                return conn
            options.log("remote_exec did not run within %.1f s (main thread blocked?); using ptrace" % REMOTE_EXEC_WAIT)
        return _inject_with_ptrace(target, source, socket_path, deadline, options)
    except BaseException:
        _forget_attempt(target)
        raise


def _forget_attempt(target: Target) -> None:
    """A failed attach removes what it wrote; a late bootstrap sees its deadline passed and does nothing."""
    directory = paths.from_client(target, paths.private_dir(target))
    prefix = "agent-%d." % target.ns_pid
    for name in os.listdir(directory):
        # a queued remote_exec still opens its .boot- file: it stays (harmless: it checks the deadline)
        if name.startswith(prefix) and not name.endswith(".sock") and ".boot-" not in name:
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def _inject_with_ptrace(
    target: Target, source: str, socket_path: str, deadline: float, options: AttachOptions
) -> AgentConnection:
    from . import ptrace  # imported only when we inject: a reused agent needs none of it

    report = ptrace.inject(target.pid, source, mode="auto", timeout=max(1.0, deadline - time.monotonic()))
    options.log("bootstrap %s in tid %d (thread stopped %.1f ms)" % (report.method, report.tid, report.stopped_ms))
    if report.method == "pending":
        # queued for the main thread's next safe point; it may never get there
        conn = _waiter(target, socket_path).until(min(deadline, time.monotonic() + PENDING_WAIT))
        if conn is None:
            conn = _fallback_thread(target, source, socket_path, deadline, options)
    else:
        # the bootstrap ran: the agent thread exists and only needs the GIL to start
        conn = _waiter(target, socket_path, True).until(deadline)
    # withdraw the claim ticket: if the bootstrap won the race, the agent is starting after all
    conn = conn or _waiter(target, socket_path, True).give_up(options.timeout)
    if conn is not None:
        return conn
    raise AttachError(_why_no_agent(target))


def _waiter(target: Target, socket_path: str, watch_gil: bool = False) -> AgentWait:
    ticket_file = paths.from_client(target, bootstrap.ticket_path(paths.socket_in_target(target)))
    return AgentWait(target.pid, socket_path, ticket_file, (lambda: _holder_tid(target)) if watch_gil else lambda: None)


def _fallback_thread(
    target: Target, source: str, socket_path: str, deadline: float, options: AttachOptions
) -> AgentConnection | None:
    """The main thread is not reaching the eval loop: use a thread parked in a safe syscall."""
    from . import procfs, ptrace

    runtime = ptrace.find_python_api(target.pid).runtime_range
    for state in procfs.thread_states(target.pid):
        if state.tid == target.pid or not procfs.is_safe_parked(state, runtime):
            continue
        try:
            report = ptrace.inject(target.pid, source, tid=state.tid, mode="gilstate", timeout=5.0)
        except InjectionError as exc:
            options.log("thread %d not usable: %s" % (state.tid, exc))
            continue
        options.log("bootstrap ran in thread %d (%s)" % (report.tid, state.name))
        return _waiter(target, socket_path, True).until(deadline)
    return None


def _native_gil_holder(target: Target) -> dict[str, object] | None:
    """A thread that holds the GIL while not running Python (in a C call or syscall), if any."""
    try:
        threads = pyspy.dump(target.pid)
    except TargetError:
        return None
    for thread in threads:
        if thread.get("owns_gil") and not thread.get("active"):
            return thread
    return None


def _holder_tid(target: Target) -> int | None:
    holder = _native_gil_holder(target)
    return None if holder is None else int(str(holder.get("os_thread_id") or 0))


def _why_no_agent(target: Target) -> str:
    holder = _native_gil_holder(target)
    if holder is not None:
        return (
            "the agent could not start: GIL held by thread %s (%s) in native code; commands that need "
            "the agent wait until it releases the GIL - 'stack' still works"
            % (holder.get("os_thread_id"), holder.get("thread_name"))
        )
    return (
        "the agent did not start within the timeout: the main thread reached no safe point (busy in C "
        "code?) and no other thread was parked in a safe system call; the bootstrap was withdrawn, "
        "nothing was started in the target; 'stack' still works"
    )


def _main_thread_parked(target: Target) -> bool:
    """remote_exec only runs when the main thread reaches the eval loop: not while it sits in a syscall."""
    from . import procfs

    state = procfs.read_thread_state(target.pid, target.pid)
    return state is not None and state.syscall is not None


def _remote_exec(target: Target, source: str, options: AttachOptions) -> bool:
    """PEP 768: the target's own interpreter (same major.minor) asks it to run a file."""
    import subprocess
    import tempfile

    directory = paths.from_client(target, paths.private_dir(target))
    # kept until detach: the target reads it whenever its main thread gets to it
    fd, script = tempfile.mkstemp(prefix="agent-%d.boot-" % target.ns_pid, suffix=".py", dir=directory)
    with os.fdopen(fd, "w") as fh:
        fh.write(source + "\n")
    os.chown(script, target.uid, -1)
    in_target = os.path.join(paths.private_dir(target), os.path.basename(script))
    proc = subprocess.run(
        [target.exe, "-I", "-c", "import sys; sys.remote_exec(%d, %r)" % (target.ns_pid, in_target)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if proc.returncode != 0:
        options.log("remote_exec failed: %s" % pyspy.first_error_line(proc.stderr))
        os.unlink(script)
        return False
    return True


def _prepare_dir(target: Target) -> None:
    """Create the private directory as the target's user, or check the one that exists."""
    directory = paths.from_client(target, paths.private_dir(target))
    try:
        os.mkdir(directory, 0o700)
        os.chown(directory, target.uid, -1)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if not os.path.isdir(directory) or os.path.islink(directory) or info.st_uid != target.uid or info.st_mode & 0o077:
        raise AttachError("%s is not a private directory of uid %d; remove it and retry" % (directory, target.uid))
    if target.same_root:
        _remove_stale(directory)


def _remove_stale(directory: str) -> None:
    """Files of agents whose process died without a detach (a killed target cannot clean up)."""
    for name in os.listdir(directory):
        stem = name.split(".", 1)[0]
        pid = stem[len("agent-") :] if stem.startswith("agent-") else ""
        if pid.isdigit() and not os.path.exists("/proc/%s" % pid):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass
