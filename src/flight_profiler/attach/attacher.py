"""Attach sequence (client side): reuse a running agent, or inject one.

1. Read /proc: is it a live CPython we support, with one uid (not setuid-style),
   dumpable when we are root?  Nothing is stopped yet.
2. Every file operation in the target user's directory goes through a helper
   (``privsep``) that has entered the target's mount namespace and dropped to
   its user. If an agent already answers on the target's socket, use it (no
   injection).
3. Take the crowd lock next to the socket: of any number of clients attaching
   at once, one injects, the others wait for it and reuse its agent.
4. 3.14+: ``sys.remote_exec`` run by the target's own interpreter, as the
   target's (non-root) user; the bootstrap runs when the main thread next
   reaches the eval loop.
5. Otherwise (or when 4 did not connect within ``REMOTE_EXEC_WAIT``): the
   ptrace injector, which runs the bootstrap only at a safe point (see
   ``ptrace.inject``); if it had to queue a pending call that the main thread
   does not reach, another thread parked in a safe syscall runs it instead.
6. Wait for the agent's socket and shake hands. If it never comes, say why
   (the GIL holder, read from outside) and leave the target as it was.
"""

from __future__ import annotations

import _thread
import os
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext

from ..errors import AttachError, InjectionError, PermissionDeniedError, ProtocolError, TargetError
from ..render.safe import safe_line
from . import headroom, paths, privsep, ticket
from .connection import AgentConnection, check_peer, peer_of
from .privsep import Helper
from .target import Target, check_credentials, check_remote_debug_allowed, inspect, start_time

# bootstrap, bundle and waits are imported where an injection needs them: a reused agent's --cmd does not
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .waits import AgentWait

REMOTE_EXEC_WAIT = 2.0
PENDING_WAIT = 2.0
FALLBACK_INJECT_WAIT = 5.0  # per parked thread tried; then the claim is checked again (bounded by --timeout)
LOCK_POLL = 0.02


class AttachOptions:
    def __init__(self, timeout: float = 30.0, force: bool = False, log: Callable[[str], None] | None = None) -> None:
        self.timeout = timeout
        self.force = force
        self.log: Callable[[str], None] = log or (lambda message: None)
        # held while the injector's tracer has the thread, the only part of an attach that stops it: a group
        # (fleet.runner.Gate) caps how many of its targets are stopped at once there, and leaves the
        # rest of each attach (helper, bundle, the agent's start, the handshake) to run in parallel
        self.stopping: Callable[[], ContextManager[None]] = nullcontext


def existing_agent(pid: int, timeout: float = 30.0) -> AgentConnection | None:
    """A connection to the agent already running in ``pid``, or None; never injects, never creates files."""
    try:
        target = inspect(pid)
    except PermissionDeniedError:
        target = inspect(pid, armed=True)  # only a pre-armed agent can listen there
    with privsep.start(target, paths.private_dir(target)) as helper:
        if not helper.call("open_dir", create=False)[0]["exists"]:
            return None
        return _connect_once(helper, target, timeout, running=True)


def connect(pid: int, options: AttachOptions) -> AgentConnection:
    """A connection to the agent in ``pid``, injecting it when none runs yet."""
    conn = _connect(pid, options)
    for note in conn.info.get("notes") or ():  # what the agent works around in this target (gevent, ...)
        options.log("agent: %s" % safe_line(str(note)[:300]))
    return conn


def _connect(pid: int, options: AttachOptions) -> AgentConnection:
    try:
        target = inspect(pid)
    except PermissionDeniedError as denied:
        return _armed_agent(pid, options, denied)
    check_credentials(target, options.force)
    headroom.check_not_frozen(pid)  # not even a running agent answers: the handshake waited out --timeout
    with privsep.start(target, paths.private_dir(target)) as helper:
        if helper.call("open_dir", create=False)[0]["exists"]:
            existing = _connect_once(helper, target, options.timeout, running=True)
            if existing is not None:
                options.log("reusing the agent already running in pid %d" % pid)
                return existing
        deadline = time.monotonic() + options.timeout
        helper.call("open_dir", create=True)
        lock = _take_lock(helper, target, deadline, options)
        try:
            return _attach_locked(helper, target, deadline, options)
        finally:
            os.close(lock)  # releases the flock: the next client in the crowd reuses our agent


def _armed_agent(pid: int, options: AttachOptions, denied: PermissionDeniedError) -> AgentConnection:
    """We may not read (let alone ptrace) the target: only an agent already listening can answer.

    That is the pre-armed agent (``python -m flight_profiler.arm``), for services
    where ptrace is forbidden; found like any running agent, never injected.
    """
    target = inspect(pid, armed=True)
    check_credentials(target, options.force)
    try:
        with privsep.start(target, paths.private_dir(target)) as helper:
            if helper.call("open_dir", create=False)[0]["exists"]:
                conn = _connect_once(helper, target, options.timeout, running=True)
                if conn is not None:
                    options.log("connected to the pre-armed agent of pid %d (no ptrace)" % pid)
                    return conn
    except (OSError, ImportError):
        pass  # we cannot even look (an interpreter this user may not fully read): the refusal stands
    raise PermissionDeniedError(
        "%s; no pre-armed agent listens there either (start the application with "
        "'python -m flight_profiler.arm', see docs/fleet.md)" % denied
    ) from None


def _attach_locked(helper: Helper, target: Target, deadline: float, options: AttachOptions) -> AgentConnection:
    """Holding the crowd lock: reuse what another client injected meanwhile, or inject."""
    conn = _connect_once(helper, target, options.timeout, running=True)
    if conn is not None:
        options.log("reusing the agent another client just started in pid %d" % target.pid)
        return conn
    if not options.force:
        check_remote_debug_allowed(target.pid)
    from . import bootstrap, procfs, ptrace

    procfs.check_attachable(target.pid)  # zombie, stopped, or another tracer: say so before touching it
    ptrace.refuse_free_threaded(target.pid)  # a renamed free-threaded build: its name told nothing (target.py)
    ticket.check_free_fds(target.pid, bootstrap.RESERVED_FDS)  # 3.8 aborts if our thread exits without a free fd
    headroom.check(target.pid, options.force)  # an attach close to a cgroup's memory limit got the target OOM-killed
    _check_seccomp(target.pid, options)
    if _first_sweep(target):
        _remove_stale(helper, target)
    # a log left by an earlier attempt (its client killed) would read as this attempt's agent failing
    helper.call("remove", names=[paths.stem(target) + ".sock.log"])
    data, size = _bundle(helper, target, deadline, options)
    _write_bundle(helper, target, data)
    claim = ticket.new_name(paths.stem(target))  # this attempt's own: a late bootstrap of a killed one can't take it
    helper.call("ticket_issue", name=claim)  # the bootstrap claims it; see attach/ticket
    wall_deadline = time.time() + (deadline - time.monotonic())
    source = bootstrap.source(paths.in_directory(helper.directory, target), wall_deadline, claim, size)
    attempt = _Attempt(claim, source, headroom.oom_kills(target.pid))
    try:
        if (
            target.version >= (3, 14)
            and _remote_exec_allowed(target)
            and not _main_thread_parked(target)
            and _remote_exec(helper, target, attempt.source, options)
        ):
            queued = _waiter(helper, target, attempt)
            conn = queued.until(min(deadline, time.monotonic() + REMOTE_EXEC_WAIT))
            if conn is None and queued.tickets.claimed():
                # it ran: the agent thread is starting, slowly behind busy threads; ptrace would only queue again
                options.log("the bootstrap ran; waiting for its agent thread (--timeout)")
                return _finish(helper, target, attempt, _waiter(helper, target, attempt, True).until(deadline), options)
            if conn is not None:
                return conn
            options.log("remote_exec did not run within %.1f s (main thread blocked?); using ptrace" % REMOTE_EXEC_WAIT)
        return _inject_with_ptrace(helper, target, attempt, deadline, options)
    except BaseException:
        _forget_attempt(helper, target, attempt)
        raise


_BUNDLE_LOCK = _thread.allocate_lock()  # threading.Lock, without importing threading on --cmd's start-up


def prepare_injection(version: tuple[int, int]) -> None:
    """What every injection into a target of ``version`` needs first: the injector's modules and the
    bundle's sources. A group calls it once before its attaches: made by the first attach thread, they
    were made while 31 others took turns with the GIL, and no injection could start before (a third of
    the wall time of 32 first attaches was spent before the first one)."""
    from . import bootstrap, bundle, ptrace, waits  # noqa: F401 - imported here, once, for the attach threads

    with _BUNDLE_LOCK:
        bundle.data(version == tuple(sys.version_info[:2]))
        bundle.to_compile()


def _bundle(helper: Helper, target: Target, deadline: float, options: AttachOptions) -> tuple[bytes, int]:
    """The bundle's bytes and size for ``target``, made once per client and interpreter: a group's attach
    threads would each make it (lru_cache does not hold the others while one computes: 19 of 32 did,
    7 ms of CPU apiece). Its start set comes compiled: by us for a target of our own minor version (its
    magic number is checked in the target), else by the target's own interpreter (``_their_code``):
    the client's CPU, once, instead of every target's."""
    from . import bundle

    with _BUNDLE_LOCK:
        if target.version == tuple(sys.version_info[:2]):
            return bundle.data(True), bundle.size(True)
        data = _their_code(helper, target, deadline, options)
        if data is None:
            return bundle.data(False), bundle.size(False)
        return data, len(data)


# our cache entry's name (codecache.key) -> the bundle with the start set compiled, or None (failed)
_their_bundles: dict[str, bytes | None] = {}


def _their_code(helper: Helper, target: Target, deadline: float, options: AttachOptions) -> bytes | None:
    """The bundle with the start set compiled by ``target``'s interpreter, run through the helper (as the
    target's user: see ``attach/compiler``), or kept from an earlier run (``attach/codecache``); None
    where it cannot be (another mount namespace, where its path means another file to us; a root
    target's binary that others control; a failure: the target then compiles, as before). Kept per
    user as well as per binary: what one user's helper produced (that user could tamper with it) only
    ever goes to that user's targets."""
    from . import bundle, codecache, compiler

    if not (target.same_mount_ns and target.same_root):
        options.log("the target compiles our start set: it runs in another mount namespace or root")
        return None
    try:
        info = os.stat("/proc/%d/exe" % target.pid)
    except OSError:
        return None
    names, sources = bundle.to_compile()
    name = codecache.key(target.uid, target.version, info, sources)
    if name in _their_bundles:
        return _their_bundles[name]
    compiled = codecache.load(name, len(names))
    if compiled is None:
        budget = max(0.5, (deadline - time.monotonic()) / 4)
        reply = helper.call("compile", pid=target.pid, version=list(target.version), timeout=budget, data=sources)[0]
        try:
            compiled = compiler.checked(reply.get("magic"), reply.get("codes"), len(names))
        except compiler.CompileFailed as exc:
            options.log("the target compiles our start set: %s" % reply.get("error", exc))
        else:
            codecache.store(name, *compiled)
    data = None if compiled is None else bundle.compose(compiled[0], dict(zip(names, compiled[1]))).encode("utf-8")
    if len(_their_bundles) > 64:  # bounded: a client attaching to many users' interpreters
        _their_bundles.clear()
    _their_bundles[name] = data
    return data


# (directory, the bundle's size) -> the name of a bundle this client wrote there, for the next target's link
_bundles: dict[tuple[int, ...], str] = {}
_bundles_lock = _thread.allocate_lock()


def _write_bundle(helper: Helper, target: Target, data: bytes) -> None:
    """The target's bundle: a hard link to one this client wrote in the same directory for another
    target of the group (same user, mount namespace and root), else written. Each target of a group
    had the 1 MB written again (0.3-0.5 ms of the client's CPU, and 32 MB of page cache and disk
    writes for 32 workers) to read the same bytes."""
    name = paths.stem(target) + ".bundle"
    key = _directory_key(target)
    if key is not None:
        key += (len(data),)
        with _bundles_lock:
            source = _bundles.get(key)
        if source is not None and helper.call("link", source=source, name=name, size=len(data))[0]["linked"]:
            return
    helper.call("write", name=name, data=data)
    if key is not None:
        with _bundles_lock:
            if len(_bundles) > 256:  # bounded: a client attaching to many users' processes
                _bundles.clear()
            _bundles[key] = name


def _directory_key(target: Target) -> tuple[int, ...] | None:
    """Which private directory the target's is (its user, mount namespace and root); None if we cannot tell."""
    try:
        mnt = os.stat("/proc/%d/ns/mnt" % target.pid)
        root = os.stat("/proc/%d/root" % target.pid)
    except OSError:
        return None
    return (target.uid, mnt.st_dev, mnt.st_ino, root.st_dev, root.st_ino)


def _take_lock(helper: Helper, target: Target, deadline: float, options: AttachOptions) -> int:
    """The crowd lock (flock on a file the helper created with the target's credentials).

    The kernel releases it when its holder dies, SIGKILL included. A lock file
    removed as stale while we waited (its process died) is not the one at the
    path any more: take the new one.
    """
    import fcntl  # only when we inject: a reused agent takes no lock

    told = False
    while True:
        fd = helper.call("lock", name=paths.lock_name(target))[1][0]
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            if not told:
                options.log("waiting for another client's attach to pid %d" % target.pid)
                told = True
            if time.monotonic() >= deadline:
                os.close(fd)
                raise AttachError(
                    "timed out waiting for another client's attach to pid %d (it holds the attach lock)" % target.pid
                )
            time.sleep(LOCK_POLL)
        if helper.call("lock_inode", name=paths.lock_name(target))[0]["inode"] == os.fstat(fd).st_ino:
            return fd
        os.close(fd)


def _check_seccomp(pid: int, options: AttachOptions) -> None:
    """Refuse, unless ``--force``, a target whose seccomp filter would kill it at a call the attach makes
    (as root only: reading the filter needs CAP_SYS_ADMIN; attach/injector/seccomp.py)."""
    if options.force:
        return
    from .injector import arch, seccomp

    machine = arch.current()
    found = seccomp.fatal_call(pid, machine.SECCOMP_CALLS, machine.AUDIT_ARCH, options.log)
    if found is not None:
        raise TargetError(
            "pid %d's seccomp filter would %s at %s, which the attach makes it call: refused, nothing was "
            "injected (--force attaches anyway, and the filter decides)" % (pid, found[1], found[0])
        )


def _forget_attempt(helper: Helper, target: Target, attempt: _Attempt) -> None:
    """A failed attach withdraws its ticket and removes what it wrote: a late bootstrap does nothing.

    A queued remote_exec still opens its .boot- file: it stays (harmless: its ticket is gone).
    """
    stem = paths.stem(target)
    try:
        helper.call("ticket_withdraw", name=attempt.ticket)
        helper.call("remove", names=[stem + ".bundle", stem + ".sock.log"])
    except AttachError:
        pass


STALE_SWEEP_EVERY = 10.0  # seconds: a group attach sweeps each directory once, not once per target
_swept: dict[tuple[int, ...], float] = {}
_swept_lock = _thread.allocate_lock()


def _first_sweep(target: Target) -> bool:
    """Whether this client has not swept the target's directory (the same one: same user, mount
    namespace and root) lately. The 32 attaches of a group would each scan every sibling's files.
    Only housekeeping is skipped: a stale file left now goes at the next attach."""
    key = _directory_key(target)
    if key is None:
        return True  # cannot tell which directory it is: sweep
    now = time.monotonic()
    with _swept_lock:
        if now - _swept.get(key, -STALE_SWEEP_EVERY) < STALE_SWEEP_EVERY:
            return False
        if len(_swept) > 256:  # bounded: a client attaching to many users' processes
            _swept.clear()
        _swept[key] = now
    return True


def _remove_stale(helper: Helper, target: Target) -> None:
    """Files of agents whose process died without a detach (a killed target cannot clean up).

    We decide which processes are gone (from /proc, by pid namespace, pid and
    start time: never a bare pid across namespaces); the helper removes their
    files only under their lock and only if their socket refuses connections.
    """
    stems = helper.call("scan")[0]["stems"]
    identities = _Identities()
    gone = []
    for stem in stems:
        identity = paths.parse(stem + ".")
        if identity is not None and identity != target.identity and identities.gone(identity):
            gone.append(stem)
    if gone:
        helper.call("remove_stale", stems=gone)


class _Identities:
    """Which (pid namespace, pid, start) triples belong to live processes, as far as we can see."""

    def __init__(self) -> None:
        self.own_ns = _pid_ns(os.getpid())
        self._all: set[tuple[int, int, int]] | None = None

    def gone(self, identity: tuple[int, int, int]) -> bool:
        ns, pid, start = identity
        if ns == self.own_ns:
            now = start_time(pid)
            if now != start:
                return True  # no process with that pid, or a newer one that reused it
            current = _pid_ns(pid)
            return current != 0 and current != ns  # 0: we may not read it (another user's): keep
        if not _sees_every_pid_namespace():
            return False  # its namespace may be one we cannot see: keep its files
        if self._all is None:
            self._all = _all_identities()
        return identity not in self._all


def _pid_ns(pid: int) -> int:
    try:
        return os.stat("/proc/%d/ns/pid" % pid).st_ino
    except OSError:
        return 0


def _sees_every_pid_namespace() -> bool:
    from . import procfs

    try:
        return len(procfs.read_status(os.getpid()).get("NSpid", "").split()) == 1 and os.geteuid() == 0
    except TargetError:
        return False


def _all_identities() -> set[tuple[int, int, int]]:
    from . import procfs

    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            ns_pid = int(procfs.read_status(pid).get("NSpid", entry).split()[-1])
        except (TargetError, OSError, ValueError):
            continue
        found.add((_pid_ns(pid), ns_pid, start_time(pid)))
    return found


def _connect_once(helper: Helper, target: Target, timeout: float, running: bool = False) -> AgentConnection | None:
    """The agent's connection if it listens; the helper connects, we shake hands on the socket it hands us.

    Someone other than the target answering is refused (ProtocolError). ``running``: an
    agent is expected to be up (the reuse check), so one that listens but does not
    complete the handshake within ``timeout`` is an error with its reason, not a cue
    to inject a second agent.
    """
    reply, fds = helper.call("connect", name=paths.socket_name(target), timeout=min(timeout, 2.0))
    return _handshake(helper, target, reply, fds, timeout, running)


def _handshake(
    helper: Helper, target: Target, reply: dict[str, object], fds: list[int], timeout: float, running: bool
) -> AgentConnection | None:
    """``_connect_once`` after the helper's connect answered ``reply`` (and handed ``fds``)."""
    if reply.get("state") != "connected" or not fds:
        return None
    import _socket

    sock = _socket.socket(fileno=fds[0])
    for extra in fds[1:]:
        os.close(extra)
    try:
        # only the target process itself may answer there (SO_PEERCRED pid, in our namespace, and uid)
        check_peer(peer_of(sock), target.pid, target.uid, paths.socket_name(target))
    except BaseException:
        sock.close()
        raise
    if running and _job_control_stopped(target.pid):
        # its agent cannot answer: said now, as a first attach says it (procfs.check_attachable), not after --timeout
        sock.close()
        raise TargetError("pid %d is stopped (job control); resume it with: kill -CONT %d" % (target.pid, target.pid))
    try:
        return AgentConnection.from_socket(
            sock, timeout=timeout, connector_pid=helper.connector_pid, target_pid=target.pid
        )
    except OSError:
        return None
    except ProtocolError as exc:
        from .waits import closed_by_agent

        if running and not closed_by_agent(exc):
            raise AttachError(
                "the agent already running there did not complete the handshake within %.0f s (--timeout): %s"
                % (timeout, exc)
            ) from None
        return None


def _job_control_stopped(pid: int) -> bool:
    """State T in /proc/PID/stat (SIGSTOP, Ctrl-Z; a tracing stop is 't'). Read here, not through procfs:
    a command on a running agent imports neither it nor typing (tests/integration/test_client_imports.py)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"T"
    except (OSError, IndexError):
        return False


class _Attempt:
    """One injection attempt: its claim ticket's name, the bootstrap that carries it, and the OOM kills its
    memory cgroups had counted before it (``headroom.oom_kills``)."""

    def __init__(self, ticket_name: str, source: str, oom: dict[str, int] | None = None) -> None:
        self.ticket = ticket_name
        self.source = source
        self.oom = oom or {}


def _inject_with_ptrace(
    helper: Helper, target: Target, attempt: _Attempt, deadline: float, options: AttachOptions
) -> AgentConnection:
    from . import ptrace  # imported only when we inject: a reused agent needs none of it

    report = ptrace.inject(
        target.pid,
        attempt.source,
        mode="auto",
        timeout=max(1.0, deadline - time.monotonic()),
        stopping=options.stopping,
    )
    options.log("bootstrap %s in tid %d (thread stopped %.1f ms)" % (report.method, report.tid, report.stopped_ms))
    if report.method == "pending":
        # queued for the main thread's next safe point; it may never get there
        pending = _waiter(helper, target, attempt)
        conn = pending.until(min(deadline, time.monotonic() + PENDING_WAIT))
        if conn is None and pending.tickets.claimed():
            # it got there: the agent thread is loading, slowly when many threads queue for the GIL
            # (each of its GIL waits is ~5 ms per busy thread); another injection would only add a wait
            options.log("the bootstrap ran; waiting for its agent thread (--timeout)")
            conn = _waiter(helper, target, attempt, True).until(deadline)
        elif conn is None:
            conn = _fallback_thread(helper, target, attempt, deadline, options)
    else:
        # the bootstrap ran: the agent thread exists and only needs the GIL to start
        conn = _waiter(helper, target, attempt, True).until(deadline)
    return _finish(helper, target, attempt, conn, options)


def _finish(
    helper: Helper, target: Target, attempt: _Attempt, conn: AgentConnection | None, options: AttachOptions
) -> AgentConnection:
    """The connection, or after the wait: withdraw the ticket and say why no agent answered."""
    # withdraw the claim ticket: if the bootstrap won the race, the agent is starting after all
    waiter = _waiter(helper, target, attempt, True)
    conn = conn or waiter.give_up(options.timeout)
    if conn is not None:
        return conn
    if waiter.tickets.log_tail(1) is not None:  # the bootstrap ran and its thread wrote why it stopped
        raise AttachError("the agent failed to start in pid %d: %s" % (target.pid, waiter.agent_error()))
    raise AttachError(_why_no_agent(target))


def _fallback_thread(
    helper: Helper, target: Target, attempt: _Attempt, deadline: float, options: AttachOptions
) -> AgentConnection | None:
    """The main thread is not reaching the eval loop: use a thread parked in a safe syscall.

    The main thread itself is tried last: it ran when the call was queued, but may have parked since
    (a server back in its select) without passing a safe point, and then it is the only thread that
    ever will. Its queued call then finds the ticket claimed and starts nothing."""
    from . import procfs, ptrace

    waiter = _waiter(helper, target, attempt, True)
    runtime = ptrace.find_python_api(target.pid).runtime_range
    states = procfs.thread_states(target.pid)
    for state in sorted(states, key=lambda s: s.tid == target.pid):
        if not procfs.is_safe_parked(state, runtime):
            continue
        if waiter.tickets.claimed():
            break  # the pending call ran meanwhile: its agent thread is starting
        try:
            report = ptrace.inject(
                target.pid,
                attempt.source,
                tid=state.tid,
                mode="gilstate",
                # that thread must get the GIL to finish: behind many busy threads this takes long, and
                # meanwhile the queued pending call may start the agent; back to polling after a while
                timeout=min(FALLBACK_INJECT_WAIT, max(1.0, deadline - time.monotonic())),
                stopping=options.stopping,
            )
        except InjectionError as exc:
            options.log("thread %d not usable: %s" % (state.tid, exc))
            continue
        options.log("bootstrap ran in thread %d (%s)" % (report.tid, state.name))
        return waiter.until(deadline)
    if waiter.tickets.claimed():  # one of the bootstraps ran (a trampoline that timed out above finishes later)
        options.log("the bootstrap ran; waiting for its agent thread (--timeout)")
        return waiter.until(deadline)
    return None


def _native_gil_holder(target: Target) -> dict[str, object] | None:
    """A thread that holds the GIL while not running Python (blocked in the kernel from a C call), if any.

    Read without stopping a 3.11+ target: the client asks once a second while it waits for an agent, and a
    stopping read froze every thread of the target each time (~80 ms at 200 threads), the agent's starting
    thread with them. Who holds the GIL is in the interpreter's memory either way; whether that thread is
    blocked comes from its kernel state (py-spy's own idle flag is only right for a stopped target: on 3.8
    it called a GIL holder asleep in C active). A read that catches the target mid-change names nobody or
    the wrong thread once: the waiter wants three alike, a second apart.
    """
    from ..readers import pyspy  # only while waiting for a new agent: a reused one needs none of it

    # before 3.11 a thread's state holds no OS thread id: py-spy finds it only in a stopped target
    nonblocking = target.version >= (3, 11)
    try:
        threads = pyspy.dump(target.pid, nonblocking=nonblocking)
    except TargetError:
        return None
    for thread in threads:
        if thread.get("owns_gil") and _outside_python(target.pid, thread, nonblocking):
            return thread
    return None


def _outside_python(pid: int, thread: dict[str, object], read_running: bool) -> bool:
    """Whether the thread is blocked in the kernel now: for a read of a running target, its /proc state is
    not R (running or runnable); for a stopped one, py-spy's own idle flag says so."""
    if not read_running:
        return not thread.get("active")
    from .target import stat_fields

    try:
        fields = stat_fields("/proc/%d/task/%d/stat" % (pid, int(str(thread.get("os_thread_id")))))
    except (OSError, ValueError):
        return False  # gone, or no thread id to look at: nobody we could name
    return bool(fields) and fields[0] != b"R"


def _holder_tid(target: Target) -> int | None:
    holder = _native_gil_holder(target)
    return None if holder is None else int(str(holder.get("os_thread_id") or 0))


def _why_no_agent(target: Target) -> str:
    holder = _native_gil_holder(target)
    if holder is not None:
        return (
            "the agent could not start: GIL held by thread %s (%s) in native code; commands that need "
            "the agent wait until it releases the GIL - 'stack' still works"
            % (holder.get("os_thread_id"), holder.get("thread_name") or "no Python name")
        )
    return (
        "the agent did not start within the timeout: the main thread reached no safe point (busy in C "
        "code?) and no thread was parked in a safe system call; the bootstrap was withdrawn, "
        "nothing was started in the target; 'stack' still works"
    )


def _main_thread_parked(target: Target) -> bool:
    """remote_exec only runs when the main thread reaches the eval loop: not while it sits in a syscall."""
    from . import procfs

    state = procfs.read_thread_state(target.pid, target.pid)
    return state is not None and state.syscall is not None


def _remote_exec_allowed(target: Target) -> bool:
    """PEP 768 through the target's own interpreter only as the target's own, non-root user.

    That binary and its site-packages (.pth files) belong to the target's user:
    run by root they would run that user's code as root. The helper runs it
    after dropping to the target's uid, in our mount namespace (where the
    /proc/<pid>/exe path and the target's view of /tmp agree). A root target
    gets the ptrace injector, which runs nothing of the target's on our side. Nor is a binary that
    embeds Python (uwsgi, an editor) run with an interpreter's options: it is its own program.
    """
    if not (target.uid != 0 and target.same_mount_ns and target.same_root and bool(target.exe)):
        return False
    from .compiler import CompileFailed, interpreter_path

    try:
        interpreter_path(target.pid)
    except CompileFailed:
        return False
    return True


def _remote_exec(helper: Helper, target: Target, source: str, options: AttachOptions) -> bool:
    """PEP 768: the target's own interpreter (same major.minor) asks it to run a file; kept until detach."""
    name = helper.call("write_script", prefix=paths.stem(target), text=source + "\n")[0]["name"]
    in_target = "%s/%s" % (helper.directory, name)
    result = helper.call("remote_exec", exe=target.exe, pid=target.pid, script=in_target)[0]
    if result.get("rc") != 0:
        options.log("remote_exec failed: %s" % result.get("error"))
        helper.call("remove", names=[name])
        return False
    options.log("bootstrap queued by sys.remote_exec, run as uid %d" % target.uid)
    return True


class _HelperTickets:
    """The attempt's claim ticket and log, seen through the helper (never by path as root)."""

    def __init__(self, helper: Helper, target: Target, ticket_name: str) -> None:
        self.helper = helper
        self.target = target
        self.name = ticket_name
        self.log = paths.socket_name(target) + ".log"
        self._nofd: object = None  # what the last connect() saw of <ticket>.nofd; None: not asked
        self._log: object = None  # and of the log, which the bootstrap writes only when its agent failed

    def connect(self, timeout: float) -> AgentConnection | None:
        """``_connect_once`` that also asks whether the bootstrap refused for lack of descriptors: the
        wait's two questions of each poll in one call to the helper (a round trip to another process
        when it is a helper of another user's)."""
        reply, fds = self.helper.call(
            "connect",
            name=paths.socket_name(self.target),
            timeout=min(timeout, 2.0),
            nofd=self.name + ticket.NOFD_SUFFIX,
            log=self.log,
        )
        self._nofd, self._log = reply.get("nofd"), reply.get("log")
        return _handshake(self.helper, self.target, reply, fds, timeout, False)

    def refused_for_fds(self) -> bool:
        seen, self._nofd = self._nofd, None
        if seen is not None:  # answered with the poll's connect, just now
            return bool(seen)
        return bool(self.helper.call("lexists", name=self.name + ticket.NOFD_SUFFIX)[0]["exists"])

    def failed(self) -> bool:
        """The agent thread wrote why it stopped (seen by the last connect(); the attempt began without a log)."""
        seen, self._log = self._log, None
        return bool(seen)

    def claimed(self) -> bool:
        """The bootstrap ran and claimed the ticket (we have not withdrawn it: only it can have moved it)."""
        return not self.helper.call("lexists", name=self.name)[0]["exists"]

    def withdraw(self) -> str:
        return str(self.helper.call("ticket_withdraw", name=self.name)[0]["outcome"])

    def log_tail(self, size: int) -> str | None:
        text = self.helper.call("log_tail", name=self.log, size=size)[0]["text"]
        return None if text is None else str(text)


def _waiter(helper: Helper, target: Target, attempt: _Attempt, watch_gil: bool = False) -> AgentWait:
    from .waits import AgentWait

    tickets = _HelperTickets(helper, target, attempt.ticket)
    return AgentWait(
        target.pid,
        tickets.connect,
        tickets,
        (lambda: _holder_tid(target)) if watch_gil else lambda: None,
        lambda: headroom.oom_note(attempt.oom),
    )
