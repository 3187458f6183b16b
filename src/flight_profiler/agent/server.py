"""Unix-socket server of the agent (runs in the target).

The bootstrap calls ``serve(path)`` on a fresh daemon thread. We listen on a
socket inside a directory that only the target's user can enter (0700, owned by
us, not a symlink) and check every peer with SO_PEERCRED: only the target's own
uid or root get in. There is no TCP listener anywhere.
"""

from __future__ import annotations

import _socket
import os
import stat
import sys
import time

from ..services import realthreads
from ..services.context import AGENT_THREAD_IDS, run_detach_callbacks
from .loader import unload

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Tuple

    from .session import Session

    Boost = Tuple[float, float, float]  # switch interval: ours as read back, the app's, monotonic deadline


# how long the listener waits for a new client's handshake itself before the session gets its own
# thread (see Session.start_after_first); a later client waits in the backlog meanwhile
FIRST_STEPS_WAIT = 1.0

_state_lock = realthreads.allocate_lock()
_server: Server | None = None
_bundle_key = ""


class Server:
    """The listening socket and the sessions it accepted."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.listener = _listen(path)
        self.sessions: set[Session] = set()
        self.lock = realthreads.allocate_lock()
        self.stopping = realthreads.Event()

    def accept_loop(self, boost: Boost | None = None) -> None:
        # the session's modules (compiled ahead, see loader.START_MODULES) run while the client's
        # connection waits in the backlog, so accept() finds it there instead of blocking (and
        # queueing again for the GIL behind every busy thread of the target when the client comes);
        # this thread then answers its handshake itself, never a request (Session.start_after_first)
        from . import session as session_module

        session_module.LOG_PATH = "%s.log" % self.path
        while not self.stopping.is_set():
            if boost is not None and _left(boost) <= 0.0:  # nobody came by the deadline (a killed client)
                _unboost(boost, self.listener)
                boost = None
            try:
                fd, _ = self._accept(boost)
            except _socket.timeout:
                continue  # the deadline: undone above
            except OSError:
                break  # listener closed by detach
            conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
            if not _peer_allowed(conn):
                _refuse(conn)
                continue
            session = session_module.Session(conn, self)
            with self.lock:
                self.sessions.add(session)
            # (a timeout of 0 would make the socket non-blocking: an error, not a timeout, when nothing came)
            session.start_after_first(
                FIRST_STEPS_WAIT if boost is None else max(0.01, min(FIRST_STEPS_WAIT, _left(boost)))
            )
            if boost is not None:  # the attach's first answer, by the deadline at the latest
                session.first_handled.wait(_left(boost))
                _unboost(boost, self.listener)
                boost = None

    def _accept(self, boost: Boost | None) -> tuple[int, Any]:
        """_socket's own accept: (fd, address); bounded by the boost's deadline while there is one."""
        if boost is not None:
            self.listener.settimeout(max(0.001, _left(boost)))  # not 0: a non-blocking accept errs instead
        return self.listener._accept()  # type: ignore[no-any-return]

    def forsake(self) -> None:
        """A forked child's copy of this server (see ``forsake_inherited``): undo its jobs, close its sockets."""
        self.stopping.set()
        # no lock: a thread of the parent may have held it at the fork, and it has no owner here
        for session in list(self.sessions):
            session.forsake()
        self.sessions.clear()
        _close_quietly(self.listener)

    def forget(self, session: Session) -> None:
        with self.lock:
            self.sessions.discard(session)

    def detach(self, calling: Session | None) -> None:
        """Stop every other session and every job, remove our files; the caller answers its client."""
        global _server
        self.stopping.set()
        with self.lock:
            sessions = list(self.sessions)
        for session in sessions:
            if session is not calling:
                session.stop(wait=True)
        run_detach_callbacks()  # hooks a stuck job left, tt's records: gone before we unload
        _wake_and_close(self.listener)
        _remove_files(self.path)
        with _state_lock:
            _server = None
        from .session import HANDED_OUT

        unload(__name__.split(".", 1)[0], _bundle_key, sweep=not HANDED_OUT[0])


def forsake_inherited() -> None:
    """Undo, in a forked child, what the agent of the process it was forked from left in it.

    Called by the bootstrap of an attach to this process when our modules belong to another pid
    (``loader.install``'s ``_fp_owner``): a fork copied the parent's agent (server, sessions, jobs,
    the hooks they installed) but none of its threads, so nothing here would ever serve or clean
    up. We run what the detach would have: every job's cleanups (unhooking) and the detach
    callbacks, on this thread. The sockets are the parent's too (one socket, two processes): they
    are closed here, never shut down (that would end the parent's listener and sessions), and the
    files stay (they are the parent's). The bootstrap then drops these modules and loads fresh ones.
    """
    global _server
    server = _server
    _server = None
    hooks = sys.modules.get(__name__.split(".", 1)[0] + ".services.hooks")
    if hooks is not None:
        hooks.after_fork()
    if server is not None:
        server.forsake()
    run_detach_callbacks()


def serve(path: str, bundle_key: str, boost: Boost | None = None) -> None:
    """Run the agent on ``path`` unless one already runs in this process.

    ``boost``: the switch interval the bootstrap set for our start (attach/bootstrap.SWITCH_BOOST):
    (ours as read back, the app's, monotonic deadline); restored here at the first answer or the
    deadline, whichever comes first (the bootstrap's thread restores it on every other exit).
    """
    global _server, _bundle_key
    with _state_lock:
        if _server is not None:
            return  # another bootstrap's thread serves already (see attach/bootstrap): this one ends quietly
        _bundle_key = bundle_key
        _server = Server(path)
        server = _server
    mine = realthreads.idents()
    AGENT_THREAD_IDS.update(mine)
    try:
        server.accept_loop(boost)
    finally:
        AGENT_THREAD_IDS.difference_update(mine)


def _left(boost: Boost) -> float:
    return max(0.0, boost[2] - time.monotonic())


def _unboost(boost: Boost, listener: Any) -> None:
    """The app's switch interval back, if it is still ours (one the app set meanwhile stays); accept blocks again."""
    if sys.getswitchinterval() == boost[0]:
        sys.setswitchinterval(boost[1])
    try:
        listener.settimeout(None)
    except OSError:
        pass  # closed by a detach meanwhile: the loop ends at its next accept


def running() -> bool:
    return _server is not None


def _listen(path: str) -> Any:
    directory = os.path.dirname(path)
    _ensure_private_dir(directory)
    if os.path.lexists(path):
        os.unlink(path)  # a stale socket of an agent that died with its process
    try:
        # _socket's type, not socket.socket: the target may have patched or gevent-ified the latter
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    except OSError as exc:  # the client shows the log's last line: say what was refused (a seccomp sandbox's EPERM)
        raise RuntimeError("the process may not make a Unix socket (socket(): %s)" % exc) from None
    try:
        sock.bind(path)
        # 0600 by chmod, not by a umask around bind: the umask is the whole process's, and a file the
        # program's threads made meanwhile would have kept ours; until then the directory (0700) is the bar
        os.chmod(path, 0o600)
        sock.listen(8)
    except OSError as exc:
        sock.close()
        raise RuntimeError("cannot listen on %s: %s" % (path, exc)) from None
    return sock


def _ensure_private_dir(directory: str) -> None:
    """Create ``directory`` 0700 or check that an existing one is ours and private."""
    try:
        info = os.lstat(directory)  # nearly always there (the client made it): one system call, not two
    except FileNotFoundError:
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise RuntimeError("%s is not a directory" % directory)
    if info.st_uid != os.getuid():
        raise RuntimeError("%s belongs to another user" % directory)
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise RuntimeError("%s is accessible to other users" % directory)


def _peer_allowed(conn: Any) -> bool:
    """Our own uid or root, wherever it connects from.

    The kernel reports pid 0 for a peer outside our pid namespace. That is how our
    client reaches a containerised target: its connect() is made by a helper that
    dropped to our uid (it never touches our files as root), from the host's pid
    namespace. Such a peer must then show, with its hello, that it sees our mount
    namespace (``session._shares_our_mount_ns``); a peer in our namespace must be
    the pid its hello claims (``session._claimed_pid_consistent``).
    """
    creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # struct ucred: pid, uid, gid
    uid = int.from_bytes(creds[4:8], sys.byteorder)
    return uid in (0, os.getuid())


def _refuse(conn: Any) -> None:
    try:
        conn.sendall(b'{"type":"error","error":"permission denied: peer uid not allowed"}\n')
    except OSError:
        pass
    _close_quietly(conn)


def _wake_and_close(listener: Any) -> None:
    """close() alone does not wake a thread blocked in accept() on Linux; shutdown() does."""
    try:
        listener.shutdown(_socket.SHUT_RDWR)
    except OSError:
        pass
    _close_quietly(listener)


def _close_quietly(sock: Any) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _remove_files(path: str) -> None:
    stem = path[: -len(".sock")]
    bundle = stem + ".bundle"
    directory = os.path.dirname(path)
    for name in os.listdir(directory):
        if name.startswith(os.path.basename(stem) + ".boot-"):  # remote_exec bootstrap files
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass
    # the directory itself stays: another client may be preparing an attach in it right now
    for target in (path, path + ".log", bundle):
        try:
            os.unlink(target)
        except OSError:
            pass
