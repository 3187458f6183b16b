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
from . import bootstrap, bundle, paths
from .connection import AgentConnection
from .target import Target, check_remote_debug_allowed, inspect

REMOTE_EXEC_WAIT = 2.0
PENDING_WAIT = 2.0


class AttachOptions:
    def __init__(self, timeout: float = 30.0, force: bool = False, log: Callable[[str], None] | None = None) -> None:
        self.timeout = timeout
        self.force = force
        self.log: Callable[[str], None] = log or (lambda message: None)


def existing_agent(pid: int) -> AgentConnection | None:
    """A connection to the agent already running in ``pid``, or None; never injects."""
    target = inspect(pid)
    return _try_open(paths.from_client(target, paths.socket_in_target(target)), target)


def connect(pid: int, options: AttachOptions) -> AgentConnection:
    """A connection to the agent in ``pid``, injecting it when none runs yet."""
    target = inspect(pid)
    socket_path = paths.from_client(target, paths.socket_in_target(target))
    existing = _try_open(socket_path, target)
    if existing is not None:
        options.log("reusing the agent already running in pid %d" % pid)
        return existing
    if not options.force:
        check_remote_debug_allowed(pid)
    from . import procfs

    procfs.check_attachable(pid)  # zombie, stopped, or another tracer: say so before touching it
    _prepare_dir(target)
    in_target = paths.socket_in_target(target)
    bundle.write(
        paths.from_client(target, paths.private_dir(target)),
        os.path.basename(bootstrap.bundle_path(in_target)),
        target.uid,
    )
    deadline = time.monotonic() + options.timeout
    source = bootstrap.source(in_target, time.time() + options.timeout)
    try:
        if target.version >= (3, 14) and not _main_thread_parked(target) and _remote_exec(target, source, options):
            conn = _wait_for_agent(socket_path, target, min(deadline, time.monotonic() + REMOTE_EXEC_WAIT))
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
        conn = _wait_for_agent(socket_path, target, min(deadline, time.monotonic() + PENDING_WAIT))
        if conn is None:
            conn = _fallback_thread(target, source, socket_path, deadline, options)
    else:
        # the bootstrap ran: the agent thread exists and only needs the GIL to start
        conn = _wait_for_agent(socket_path, target, deadline, lambda: _holder_tid(target))
    if conn is not None:
        return conn
    raise AttachError(_why_no_agent(target))


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
        return _wait_for_agent(socket_path, target, deadline, lambda: _holder_tid(target))
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
        "the agent did not start within the timeout (the bootstrap is queued and runs at the main "
        "thread's next safe point); 'stack' still works"
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


def _try_open(path: str, target: Target) -> AgentConnection | None:
    try:
        # only the target process itself may answer there (SO_PEERCRED pid and uid)
        return AgentConnection.open(path, timeout=2.0, expected_pid=target.pid, expected_uid=target.uid)
    except OSError:
        return None


def _wait_for_agent(
    path: str, target: Target, deadline: float, gil_holder: Callable[[], int | None] = lambda: None
) -> AgentConnection | None:
    """Poll for the agent's socket.

    ``gil_holder`` is asked about once a second: the same thread seen holding the
    GIL outside Python three times in a row means the agent cannot start soon.
    """
    delay = 0.005
    next_check = time.monotonic() + 1.0
    seen: list[int | None] = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            conn = _try_open(path, target)
            if conn is not None:
                return conn
        if time.monotonic() >= next_check:
            seen = [*seen[-2:], gil_holder()]
            if len(seen) == 3 and seen[0] is not None and len(set(seen)) == 1:
                return None
            next_check = time.monotonic() + 1.0
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return None
