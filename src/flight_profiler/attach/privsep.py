"""File work in the target user's directory, done with the target user's credentials (client side).

Root attaching to another user's process must not open, create, chown, unlink
or connect by path in a directory that user controls: the user can swap any
name for a link between our check and our use. So everything that touches
``/tmp/flight_profiler-<uid>`` runs in a short-lived helper process forked from
the client that, before touching anything:

1. enters the target's mount namespace (``setns`` on ``/proc/<pid>/ns/mnt``,
   which needs CAP_SYS_ADMIN, so it comes first) and its root (``fchdir`` to
   ``/proc/<pid>/root`` opened before, then ``chroot(".")``): it sees the
   ``/tmp`` the target sees (``PrivateTmp=``, containers, chroots whose ``/tmp``
   is an absolute symlink), and symlinks resolve inside the target's root;
2. drops to the target's uid, gid and supplementary groups (``setgroups``,
   ``setresgid``, ``setresuid``): from then on, nothing the target's user
   places in its directory can make the helper do what that user could not do
   itself. The kernel also makes the helper non-dumpable, so that user cannot
   read the rest of the client's memory through it.

The helper answers small JSON requests over a socketpair and hands back
descriptors (the connected agent socket, the crowd lock) with SCM_RIGHTS. Its
operations still use ``O_NOFOLLOW|O_EXCL|O_CLOEXEC`` opens, ``fchmod`` and
calls relative to the verified directory descriptor, so that when the client
already is the target's user in the target's mount namespace the same code
runs in-process (no boundary to cross) with the same discipline.

The helper dies with the client: it reads EOF when the client goes away (a
SIGKILL included) and it has a parent-death signal (not a group's shared helper:
see ``sharing``).
"""

from __future__ import annotations

import _socket
import _thread
import errno
import os
import stat
import time
from collections.abc import Callable

from ..errors import AttachError, TargetError
from . import places, ticket
from .target import Target

# A client reusing an agent as the target's own user runs the Workspace in-process and needs neither the
# transport to a helper (json, array, SCM_RIGHTS) nor its signals: those are imported where used, and by
# _before_fork for the helper. Not typing, nor socket's wrappers over _socket (~6 ms of a --cmd, issue 14).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Tuple

    Reply = Tuple[Dict[str, Any], List[int]]

CLONE_NEWNS = 0x00020000
PR_SET_PDEATHSIG = 1
MAX_MESSAGE = 8 << 20  # a JSON body, or the bytes after it: the bundle (0.5 MB; 1 MB with our code compiled)
MAX_FDS = 4
REPLY_TIMEOUT = 30.0
_HEADER_SIZE = 4  # the body's length, big-endian unsigned (struct ">I")
_LIBC: Any = None  # libc through ctypes, loaded by _before_fork: a reused agent as its own user needs none


def _before_fork() -> None:
    """What the forked helper needs, loaded in the parent: an import or a dlopen in a child
    forked from a threaded client could wait for a lock another thread held at the fork.
    Only then: an in-process helper (a reused agent of our own user) imports neither."""
    global _LIBC
    import array  # noqa: F401 - the transport's descriptors (_send, _recv)
    import ctypes
    import fcntl  # noqa: F401 - op_remove_stale's locks
    import json  # noqa: F401 - the transport's messages
    import select  # noqa: F401 - op_compile in the child
    import signal  # noqa: F401 - _child_main, _enter_and_drop
    import subprocess  # noqa: F401 - for op_remote_exec and op_compile in the child

    from . import compiler  # noqa: F401 - op_compile in the child

    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)


def _token() -> str:
    return os.urandom(6).hex()  # what secrets.token_hex(6) does, without importing secrets (hashlib, random)


class Refused(Exception):
    """A check in the helper failed: the message is the one line for the user."""


class Workspace:
    """The operations on the target user's directory; run with that user's credentials.

    ``in_process``: we are already that user (no helper); connecting relative to
    the directory then goes through ``/proc/self/fd`` instead of ``fchdir``, which
    would move the whole client's working directory.
    """

    def __init__(self, directory: str, in_process: bool) -> None:
        self.directory = directory  # e.g. /tmp/flight_profiler-1001, as the target sees it
        self.in_process = in_process
        self.dir_fd = -1

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def dispatch(self, op: str, args: dict[str, Any]) -> Reply:
        handler: Callable[..., Reply] | None = getattr(self, "op_" + op, None)
        if handler is None:
            raise Refused("unknown helper operation %r" % op)
        if op != "open_dir" and self.dir_fd < 0:
            raise Refused("the directory was not opened")
        return handler(**args)

    # ------------------------------------------------------------------ the directory

    def op_open_dir(self, create: bool) -> Reply:
        """Open (and, with ``create``, make) the private directory; refuse one that is not ours and private.

        Under ``/dev/shm`` where the target's ``/tmp`` is missing, read-only or not writable (``places``): the reply
        says which, and the client names the agent's socket and files from it."""
        self.directory = places.placed(self.directory)
        parent, name = os.path.split(self.directory)
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if create:
                try:
                    os.mkdir(name, 0o700, dir_fd=parent_fd)
                except FileExistsError:
                    pass
            try:
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
            except FileNotFoundError:
                return {"exists": False, "directory": self.directory}, []
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Refused("%s is not a directory (a link?): refused; remove it" % self.directory) from None
                raise
        finally:
            os.close(parent_fd)
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
            os.close(fd)
            raise Refused(
                "%s is not a private directory of uid %d (owner %d, mode %o): refused; remove it"
                % (self.directory, os.geteuid(), info.st_uid, stat.S_IMODE(info.st_mode))
            )
        self.close()
        self.dir_fd = fd
        return {"exists": True, "directory": self.directory}, []

    # ------------------------------------------------------------------ the agent socket

    def op_connect(self, name: str, timeout: float, nofd: str = "", log: str = "") -> Reply:
        """Connect to the agent socket ``name``; a link or anything but a socket is refused, not followed.

        ``nofd``, ``log``: when nobody answers, also say whether these names exist (an attempt's
        ``<ticket>.nofd``; the log the bootstrap writes when its agent failed to start): the wait's other
        questions, in the same round trip."""
        if nofd or log:
            reply, fds = self.op_connect(name, timeout)
            if reply["state"] != "connected":
                for key, other in (("nofd", nofd), ("log", log)):
                    if other:
                        reply[key] = self.op_lexists(other)[0]["exists"]
            return reply, fds
        try:
            info = os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return {"state": "absent"}, []
        if not stat.S_ISSOCK(info.st_mode):
            raise Refused("%s/%s is not a socket (a link?): refused" % (self.directory, name))
        if info.st_uid != os.geteuid():
            raise Refused("%s/%s belongs to uid %d: refused" % (self.directory, name, info.st_uid))
        deadline = time.monotonic() + timeout
        while True:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                self._connect_relative(sock, name)
            except OSError as exc:
                sock.close()
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    return {"state": "dead"}, []  # nobody listens: an agent that died with its process
                if exc.errno == errno.EAGAIN and time.monotonic() < deadline:
                    time.sleep(0.01)  # its backlog is full (a crowd of clients): a live agent, try again
                    continue
                raise
            return {"state": "connected"}, [sock.detach()]

    def _connect_relative(self, sock: _socket.socket, name: str) -> None:
        if self.in_process:
            sock.connect("/proc/self/fd/%d/%s" % (self.dir_fd, name))
            return
        os.fchdir(self.dir_fd)  # the helper is single-threaded: its cwd is ours to move
        sock.connect(name)

    def _probe(self, name: str) -> str:
        """'listening', 'dead' (refused or absent) or 'other' (not a socket)."""
        try:
            info = os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return "dead"
        if not stat.S_ISSOCK(info.st_mode):
            return "other"
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(1.0)
        try:
            self._connect_relative(sock, name)
        except OSError as exc:
            return "dead" if exc.errno in (errno.ECONNREFUSED, errno.ENOENT) else "listening"
        finally:
            sock.close()
        return "listening"

    # ------------------------------------------------------------------ stale files

    def op_scan(self) -> Reply:
        """The stems of our file names in the directory (the client decides which processes are gone)."""
        stems = set()
        for name in os.listdir(self.dir_fd):
            if name.startswith("agent-"):
                stems.add(name.split(".", 1)[0])
        return {"stems": sorted(stems)}, []

    def op_remove_stale(self, stems: list[str]) -> Reply:
        """Remove the files of ``stems`` whose process is gone (the client checked), never a live agent's.

        Under the name's lock (an attach in progress holds it), and only when its
        socket refuses connections: a socket that answers is a live agent whatever
        the name says.
        """
        removed = []
        names = os.listdir(self.dir_fd)
        for stem_ in stems:
            lock = self._take_lock_now(stem_ + ".lock")
            if lock < 0:
                continue
            try:
                if self._probe(stem_ + ".sock") != "dead":
                    continue
                for name in names:
                    if name.startswith(stem_ + ".") and name != stem_ + ".lock":
                        self._unlink(name)
                self._unlink(stem_ + ".lock")  # last, while we still hold it
                removed.append(stem_)
            finally:
                os.close(lock)
        return {"removed": removed}, []

    def _take_lock_now(self, name: str) -> int:
        import fcntl

        try:
            fd = self._open_lock(name)
        except OSError:
            return -1
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return -1
        return fd

    def _unlink(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------------ the crowd lock

    def _open_lock(self, name: str) -> int:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.dir_fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            os.close(fd)
            raise Refused("%s/%s is not our lock file: refused" % (self.directory, name))
        os.fchmod(fd, 0o600)
        return fd

    def op_lock(self, name: str) -> Reply:
        """The lock file next to the agent socket, opened (created with our credentials); the client flocks it."""
        return {}, [self._open_lock(name)]

    def op_lock_inode(self, name: str) -> Reply:
        """The inode now under ``name``: the client's lock is valid only if it is the one it holds."""
        try:
            return {"inode": os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False).st_ino}, []
        except FileNotFoundError:
            return {"inode": 0}, []

    # ------------------------------------------------------------------ files for the target

    def op_write(self, name: str, text: str = "", data: bytes | None = None) -> Reply:
        """Write ``name`` atomically: an exclusive temporary file (0600), then a rename within the directory.

        ``data``: the bytes to write (the bundle, encoded once per client, comes to a helper process
        as the request's attachment, not as JSON text); else ``text`` in UTF-8."""
        temp = "%s.tmp-%s" % (name, _token())  # same stem: a killed client's leftover is stale cleanup's
        self._write_new(temp, text.encode("utf-8") if data is None else data)
        try:
            os.replace(temp, name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except BaseException:
            self._unlink(temp)
            raise
        return {}, []

    def op_link(self, source: str, name: str, size: int) -> Reply:
        """Give ``name`` the file ``source`` (a bundle this client wrote here for another target) by a
        hard link, no copy: {"linked": False} when that is not our ``size``-byte private regular file.

        The link is made under an exclusive temporary name and looked at there (never followed: a link
        at ``source`` is linked as a link, then refused), then renamed, as ``op_write`` does. Whoever can
        change that file is the directory's user, who could as well replace ``name`` itself before the
        target reads it: the code it holds runs in that user's processes only.
        """
        if "/" in source or "/" in name:
            raise Refused("helper names are relative to the directory")
        temp = "%s.tmp-%s" % (name, _token())
        try:
            os.link(source, temp, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd, follow_symlinks=False)
        except OSError:
            return {"linked": False}, []  # gone (detached, cleaned up): the caller writes it
        try:
            info = os.stat(temp, dir_fd=self.dir_fd, follow_symlinks=False)
            if not (
                stat.S_ISREG(info.st_mode)
                and info.st_uid == os.geteuid()
                and stat.S_IMODE(info.st_mode) == 0o600
                and info.st_size == size
            ):
                self._unlink(temp)
                return {"linked": False}, []
            os.replace(temp, name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except BaseException:
            self._unlink(temp)
            raise
        return {"linked": True}, []

    def op_write_script(self, prefix: str, text: str) -> Reply:
        """A new file ``<prefix>.boot-<random>.py`` (the 3.14 bootstrap), created exclusively."""
        name = "%s.boot-%s.py" % (prefix, _token())
        self._write_new(name, text.encode("utf-8"))
        return {"name": name}, []

    def _write_new(self, name: str, data: bytes) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=self.dir_fd)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            self._unlink(name)
            raise
        os.close(fd)

    def op_remove(self, names: list[str]) -> Reply:
        for name in names:
            if "/" not in name:
                self._unlink(name)
        return {}, []

    # ------------------------------------------------------------------ the claim ticket (attach/ticket.py)

    def op_ticket_issue(self, name: str) -> Reply:
        """A fresh, empty ticket; every other ticket of the stem goes first (withdrawn).

        The client holds the crowd lock: any other ticket there is a killed client's,
        whose bootstrap may still run late (a queued pending call). Unlinking it is
        that bootstrap's withdrawal: it finds nothing under its own name and starts
        nothing (or its agent thread, already loading, loses its claim and unloads).
        """
        prefix = ticket.stem_prefix(name)
        for entry in os.listdir(self.dir_fd):
            if entry.startswith(prefix):
                self._unlink(entry)
        self._write_new(name, b"")
        return {}, []

    def op_ticket_withdraw(self, name: str) -> Reply:
        """Take the ticket back: one unlink decides between us and the bootstrap."""
        for candidate in (name, name + ticket.CLAIMED_SUFFIX):
            try:
                os.unlink(candidate, dir_fd=self.dir_fd)
            except FileNotFoundError:
                continue
            return {"outcome": ticket.WITHDRAWN}, []
        try:
            os.unlink(name + ticket.NOFD_SUFFIX, dir_fd=self.dir_fd)
        except FileNotFoundError:
            return {"outcome": ticket.CLAIMED}, []
        return {"outcome": ticket.NO_FDS}, []

    def op_lexists(self, name: str) -> Reply:
        try:
            os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return {"exists": False}, []
        return {"exists": True}, []

    def op_log_tail(self, name: str, size: int) -> Reply:
        """The end of the agent's log (a regular file, never through a link)."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.dir_fd)
        except OSError:
            return {"text": None}, []
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return {"text": None}, []
            os.lseek(fd, max(0, info.st_size - size), os.SEEK_SET)
            return {"text": os.read(fd, size).decode("utf-8", "replace")}, []
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ bytecode for another minor version

    def op_compile(self, pid: int, version: list[int], timeout: float, data: bytes = b"") -> Reply:
        """The start set's bytecode by ``pid``'s own interpreter, run with this helper's credentials
        (the target user's; where they are root's, only an interpreter nobody else controls): see
        ``attach/compiler``. ``data``: file name, source, ... NUL-separated. {"error": why} if not."""
        from . import compiler

        text = data.decode("utf-8").split("\0")
        sources = [(text[at], text[at + 1]) for at in range(0, len(text) - 1, 2)]
        try:
            if os.geteuid() == 0:
                exe = compiler.interpreter_root_may_run(pid, (int(version[0]), int(version[1])))
            else:
                compiler.interpreter_path(pid)  # an interpreter, not an application that embeds one
                exe = "/proc/%d/exe" % pid  # the user's own binary, run as that user (see op_remote_exec)
            magic, codes = compiler.compile_sources(exe, sources, min(float(timeout), compiler.TIMEOUT))
        except (compiler.CompileFailed, OSError) as exc:
            return {"error": str(exc)[:300]}, []
        return {"magic": magic, "codes": codes}, []

    # ------------------------------------------------------------------ PEP 768

    def op_remote_exec(self, exe: str, pid: int, script: str) -> Reply:
        """``sys.remote_exec`` by the target's own interpreter, run as the target's user.

        Only ever called with the target's (non-root) credentials: that binary and
        its site-packages are the target user's, so running them gains that user
        nothing. Empty environment, no inherited descriptors.
        """
        import subprocess  # only for PEP 768 attaches (3.14+ targets)

        try:
            proc = subprocess.run(
                [exe, "-I", "-c", "import sys; sys.remote_exec(%d, %r)" % (pid, script)],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
                env={"PATH": "/usr/bin:/bin"},
                cwd="/",
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return {"rc": -1, "error": str(exc)[:300]}, []  # not runnable by that user: the client uses ptrace
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        return {"rc": proc.returncode, "error": lines[-1][:300] if lines else ""}, []


# ---------------------------------------------------------------------- transport


def _send(sock: _socket.socket, message: dict[str, Any], fds: list[int], blob: bytes | None = None) -> None:
    """One message: its JSON body's length, the body, then ``blob`` raw when there is one (its length
    is the body's ``blob``): the bundle crosses as bytes, not as 1 MB of JSON-escaped text that both
    sides would encode and decode again for every target of a group."""
    import array
    import json

    if blob is not None:
        message = dict(message, blob=len(blob))
    body = json.dumps(message).encode("utf-8")
    header = len(body).to_bytes(_HEADER_SIZE, "big")
    if fds:
        sock.sendmsg([header], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", fds).tobytes())])
    else:
        sock.sendall(header)
    sock.sendall(body)
    if blob:
        sock.sendall(blob)


def _recv_exact(sock: _socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _recv(sock: _socket.socket) -> Reply:
    import array
    import json

    fds: list[int] = []
    flags = getattr(_socket, "MSG_CMSG_CLOEXEC", 0)
    data, ancillary, _, _ = sock.recvmsg(_HEADER_SIZE, _socket.CMSG_SPACE(MAX_FDS * 4), flags)
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(payload[: len(payload) - len(payload) % 4])
            fds.extend(received)
    if not data:
        raise EOFError
    if len(data) < _HEADER_SIZE:
        data += _recv_exact(sock, _HEADER_SIZE - len(data))
    size = int.from_bytes(data, "big")
    if size > MAX_MESSAGE:
        for fd in fds:
            os.close(fd)
        raise EOFError
    message = json.loads(_recv_exact(sock, size).decode("utf-8"))
    blob = message.get("blob") if isinstance(message, dict) else None
    if blob is not None:  # the raw bytes that follow the body (``_send``), bounded like a body
        if type(blob) is not int or not 0 <= blob <= MAX_MESSAGE:
            for fd in fds:
                os.close(fd)
            raise EOFError
        message["blob"] = _recv_exact(sock, blob)
    return message, fds


# ---------------------------------------------------------------------- the client's side


class Helper:
    """The client's handle on a Workspace: in a dropped helper process, or in-process."""

    def __init__(
        self, target: Target, workspace: Workspace | None, sock: _socket.socket | None, child: int, directory: str
    ) -> None:
        self.target = target
        # as the target sees it; open_dir's reply may move it from /tmp to /dev/shm (see places)
        self.directory = directory
        self._workspace = workspace
        self._sock = sock
        self._child = child

    @property
    def connector_pid(self) -> int:
        """The process whose connect() the agent sees (SO_PEERCRED): the helper, or ourselves."""
        return self._child if self._workspace is None else os.getpid()

    @property
    def separated(self) -> bool:
        """Whether the work runs in a helper with the target's credentials (a privilege boundary)."""
        return self._workspace is None

    def call(self, op: str, **args: Any) -> Reply:
        """Run ``op``; OSError and Refused come back as AttachError with the helper's message."""
        reply, fds = self._call(op, args)
        if op == "open_dir":
            self.directory = str(reply.get("directory") or self.directory)
        return reply, fds

    def _call(self, op: str, args: dict[str, Any]) -> Reply:
        if self._workspace is not None:
            try:
                return self._workspace.dispatch(op, args)
            except Refused as exc:
                raise AttachError(str(exc)) from None
            except OSError as exc:
                raise AttachError(_describe(self._workspace.directory, op, exc)) from None
        assert self._sock is not None
        blob = args.pop("data", None)  # bytes: sent raw after the request (see _send)
        try:
            _send(self._sock, {"op": op, "args": args}, [], blob)
            reply, fds = _recv(self._sock)
        except (OSError, EOFError, ValueError):
            raise AttachError(WENT_AWAY) from None
        return _answer(op, reply, fds)

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.close()
            return
        if self._sock is not None:
            self._sock.close()  # the helper reads EOF and exits
            self._sock = None
        if self._child > 0:
            _reap(self._child)
            self._child = 0

    def __enter__(self) -> Helper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


WENT_AWAY = "the helper working in the target user's directory went away"


def _answer(op: str, reply: dict[str, Any], fds: list[int]) -> Reply:
    """A helper's reply to ``op``; its refusal or error as AttachError (one line)."""
    if "refused" in reply:
        _close_all(fds)
        raise AttachError(str(reply["refused"]))
    if "errno" in reply:
        _close_all(fds)
        error = OSError(int(reply["errno"]), os.strerror(int(reply["errno"])))
        raise AttachError(_describe(str(reply.get("directory")), op, error))
    return reply, fds


def start(target: Target, directory: str) -> Helper:
    """A Helper for ``target``'s ``directory``: in-process when we already are its user in its namespace;
    while ``sharing`` is in effect, a session on the helper process of the group's targets in that
    directory with the same credentials; else a helper process of its own."""
    if _no_boundary(target):
        return Helper(target, Workspace(directory, in_process=True), None, 0, directory)
    if _sharing_depth:
        key = _share_key(target, directory)
        if key is not None:
            return _session(target, directory, key)
    return _fork_helper(target, directory)


# ---------------------------------------------------------------------- a group's shared helper

_share_lock = _thread.allocate_lock()  # _sharing_depth and _shared
_sharing_depth = 0
_shared: dict[tuple[object, ...], _Shared] = {}


class sharing:  # used as ``with privsep.sharing():``, like a context manager of contextlib
    """While in effect (a group's command: ``fleet.runner``), the attaches to targets whose helper would be
    the same process (same directory, uid, gid and groups, mount namespace and root) share one helper:
    forking one per target cost the client ~4 ms of CPU each. Each attach keeps a session of its own in
    it (its own directory descriptor, nothing else is kept there), and its calls are made one at a time
    (``_Shared.lock``). When the last scope ends, the helpers are told to end (EOF) and reaped."""

    def __enter__(self) -> sharing:
        global _sharing_depth
        with _share_lock:
            _sharing_depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        global _sharing_depth
        with _share_lock:
            _sharing_depth -= 1
            ending = list(_shared.values()) if _sharing_depth == 0 else []
            if ending:
                _shared.clear()
        for shared in ending:
            shared.end(kill=False)


def _share_key(target: Target, directory: str) -> tuple[object, ...] | None:
    """What makes two targets' helpers the same process; None when we cannot tell (it gets its own).

    The namespace and root are the very ones the helper enters (``_open_namespace``); read, then the
    start time checked, as there, so that they are this process's and not a successor's at its pid."""
    try:
        mnt = os.stat("/proc/%d/ns/mnt" % target.pid)
        root = os.stat("/proc/%d/root" % target.pid)
    except OSError:
        return None
    from .target import start_time

    if start_time(target.pid) != target.start:
        return None  # gone or reused: _fork_helper says so
    groups = tuple(sorted(target.groups))
    return (directory, target.uid, target.gid, groups, mnt.st_dev, mnt.st_ino, root.st_dev, root.st_ino)


def _session(target: Target, directory: str, key: tuple[object, ...]) -> Helper:
    with _share_lock:
        if not _sharing_depth:
            shared = None
        else:
            shared = _shared.get(key)
            if shared is None or shared.broken:
                # forked under the lock: the group's other attaches to this directory wait for this one
                started = _fork_helper(target, directory, shared=True)
                assert started._sock is not None
                shared = _Shared(key, started._sock, started._child)
                started._sock, started._child = None, 0  # the _Shared owns them now
                _shared[key] = shared
    if shared is None:
        return _fork_helper(target, directory)  # the group's scope ended meanwhile
    return _SharedHelper(target, directory, shared)


class _Shared:
    """One helper process and the client's end of its socketpair, used by several attach threads."""

    def __init__(self, key: tuple[object, ...], sock: _socket.socket, child: int) -> None:
        self.key = key
        self.sock = sock
        self.pid = child  # the connector the agents see, even after it was reaped
        self._child = child  # 0 once reaped: never signalled after that (its pid may be reused)
        self.lock = _thread.allocate_lock()  # one request and its reply at a time on the socket
        self._state = _thread.allocate_lock()  # end()
        self._sessions = 0
        self.broken = False

    def new_session(self) -> int:
        with self.lock:
            self._sessions += 1
            return self._sessions

    def exchange(self, message: dict[str, Any], blob: bytes | None, reply: bool = True) -> Reply:
        """Send ``message``; its reply. The caller holds ``lock``. Anything that leaves the stream where a
        reply may still be in it (a timeout, an error, Ctrl-C between the request and its reply) ends the
        helper: the next caller must never read an answer meant for another attach."""
        if self.broken:
            raise AttachError(WENT_AWAY)
        try:
            _send(self.sock, message, [], blob)
            return _recv(self.sock) if reply else ({}, [])
        except BaseException as exc:
            self.end(kill=True)
            if isinstance(exc, (OSError, EOFError, ValueError)):
                raise AttachError(WENT_AWAY) from None
            raise

    def end(self, kill: bool) -> None:
        """End the helper (``kill``: at once; else at EOF, killed after 2 s) and reap it; idempotent.

        Every user of it then gets WENT_AWAY; the group's next attaches to that directory fork another."""
        import signal

        with self._state:
            self.broken = True
            with _share_lock:
                if _shared.get(self.key) is self:
                    del _shared[self.key]
            try:
                self.sock.shutdown(_socket.SHUT_RDWR)  # wakes a thread blocked in recv on it
            except OSError:
                pass
            if self._child > 0:
                if kill:
                    try:
                        os.kill(self._child, signal.SIGKILL)  # our child, not yet reaped
                    except OSError:
                        pass
                _reap(self._child)
                self._child = 0
            self.sock.close()


class _SharedHelper(Helper):
    """One attach's session on a group's shared helper: its calls carry the session's number, and the
    helper keeps a Workspace per session, so nothing of one attach's state serves another's."""

    def __init__(self, target: Target, directory: str, shared: _Shared) -> None:
        super().__init__(target, None, None, 0, directory)
        self._shared: _Shared | None = shared
        self._directory = directory
        self._number = shared.new_session()

    @property
    def connector_pid(self) -> int:
        return self._shared.pid if self._shared is not None else 0

    def _call(self, op: str, args: dict[str, Any]) -> Reply:
        shared = self._shared
        if shared is None:
            raise AttachError(WENT_AWAY)
        if op == "remote_exec":
            # the target's interpreter, up to 10 s: in a helper of its own, not holding the group's
            with _fork_helper(self.target, self._directory) as own:
                own.call("open_dir", create=False)
                return own.call(op, **args)
        blob = args.pop("data", None)
        if not shared.lock.acquire(timeout=REPLY_TIMEOUT):
            raise AttachError("the helper working in the target user's directory did not answer in time")
        try:
            reply, fds = shared.exchange({"op": op, "args": args, "session": self._number}, blob)
        finally:
            shared.lock.release()
        return _answer(op, reply, fds)

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is None or shared.broken:
            return
        with shared.lock:  # the helper drops the session's Workspace; no reply
            try:
                shared.exchange({"op": END_SESSION, "session": self._number}, None, reply=False)
            except AttachError:
                pass


END_SESSION = "end"


def _no_boundary(target: Target) -> bool:
    return os.getresuid() == (target.uid, target.uid, target.uid) and target.same_mount_ns and target.same_root


def _fork_helper(target: Target, directory: str, shared: bool = False) -> Helper:
    _before_fork()
    mnt_fd, root_fd = _open_namespace(target)
    parent_end, child_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in (mnt_fd, root_fd):
            os.close(fd)
        parent_end.close()
        child_end.close()
        raise AttachError("cannot start the helper process: %s" % exc.strerror) from None
    if pid == 0:  # pragma: no cover - the child; its effects are what the tests check
        parent_end.close()
        _child_main(target, directory, child_end, mnt_fd, root_fd, shared)
    child_end.close()
    for fd in (mnt_fd, root_fd):
        os.close(fd)
    parent_end.settimeout(REPLY_TIMEOUT)
    helper = Helper(target, None, parent_end, pid, directory)
    try:
        ready, _ = _recv(parent_end)
    except (OSError, EOFError, ValueError):
        helper.close()
        raise AttachError("the helper process could not start") from None
    if "refused" in ready:
        helper.close()
        raise AttachError(str(ready["refused"]))
    return helper


def _open_namespace(target: Target) -> tuple[int, int]:
    """Descriptors of the target's mount namespace and root, checked to belong to that very process."""
    try:
        mnt_fd = os.open("/proc/%d/ns/mnt" % target.pid, os.O_RDONLY | os.O_CLOEXEC)
        root_fd = os.open("/proc/%d/root" % target.pid, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise TargetError("cannot reach the file system of pid %d: %s" % (target.pid, exc.strerror)) from None
    from .target import start_time

    if start_time(target.pid) != target.start:  # the pid was reused between inspect() and now
        os.close(mnt_fd)
        os.close(root_fd)
        raise TargetError("pid %d exited" % target.pid)
    return mnt_fd, root_fd


def _child_main(target: Target, directory: str, sock: _socket.socket, mnt_fd: int, root_fd: int, shared: bool) -> None:
    """The helper: enter, drop, then serve; never returns, never raises."""
    code = 0
    try:
        import signal  # loaded by _before_fork: no import lock taken in the child

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's; we end at its EOF
        _close_inherited((sock.fileno(), mnt_fd, root_fd))
        problem = _enter_and_drop(target, mnt_fd, root_fd, parent_death=not shared)
        if problem:
            _send(sock, {"refused": problem}, [])
        else:
            _send(sock, {"ready": True}, [])
            _serve(sock, directory)
    except BaseException:  # noqa: BLE001 - the forked child must reach os._exit, never the client's code
        code = 1
    finally:
        os._exit(code)


def _close_inherited(keep: tuple[int, ...]) -> None:
    """Let go of what the fork copied from the client besides ``keep`` (and stdin, stdout, stderr).

    A group's attach threads fork their helpers at the same time, so each helper held the others'
    ends of their socketpairs (and any agent connection open meanwhile): a helper whose client
    closed its end read no EOF while another helper still held a copy, and each waited for the
    other until the client killed them (``_reap``, 2 s: a second command over 8 workers of another
    user took 2.1 s instead of 0.1). Nor has a helper, once it is the target's user, any business
    holding the client's other descriptors.

    Each is pointed at /dev/null rather than closed: a socket object of another thread, should it
    be finalized in this child, then closes that, never a descriptor we opened later under its number.
    """
    try:
        names = os.listdir("/proc/self/fd")
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return  # they stay (a helper then may wait for _reap, as before)
    try:
        for name in names:
            fd = int(name)
            if fd <= 2 or fd in keep or fd == null:
                continue
            try:
                os.fstat(fd)  # still open (the listing's own descriptor is not)
            except OSError:
                continue
            os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)


def _enter_and_drop(target: Target, mnt_fd: int, root_fd: int, parent_death: bool = True) -> str:
    """Enter the target's mount namespace and root, then become its user; a reason on failure.

    ``parent_death``: SIGKILL when the thread that forked us ends. Not for a group's shared helper: the
    attach thread that forked it may end while other attaches still use it; it ends at EOF, which the
    client's death (SIGKILL included) or the group's end gives it."""
    import ctypes  # already loaded by _before_fork
    import signal

    libc = _LIBC
    try:
        if not target.same_mount_ns and libc.setns(mnt_fd, CLONE_NEWNS) != 0:
            return "cannot enter the mount namespace of pid %d: %s" % (target.pid, os.strerror(ctypes.get_errno()))
        if not (target.same_root and target.same_mount_ns):
            os.fchdir(root_fd)
            os.chroot(".")
        os.chdir("/")
        os.close(mnt_fd)
        os.close(root_fd)
        os.setgroups(list(target.groups))
        os.setresgid(target.gid, target.gid, target.gid)
        os.setresuid(target.uid, target.uid, target.uid)
    except OSError as exc:
        return "cannot become uid %d in the file system of pid %d: %s (run as root or as that user)" % (
            target.uid,
            target.pid,
            exc.strerror,
        )
    if os.getresuid() != (target.uid,) * 3:
        return "could not switch to uid %d" % target.uid
    if parent_death:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.umask(0o077)
    return ""


def _serve(sock: _socket.socket, directory: str) -> None:
    """Answer requests until EOF. A shared helper's requests carry their attach's session: each has a
    Workspace of its own (its directory descriptor), dropped at its END_SESSION."""
    sessions: dict[object, Workspace] = {}
    while True:
        try:
            request, fds = _recv(sock)
        except (OSError, EOFError, ValueError):
            return  # the client went away
        _close_all(fds)
        session = request.get("session", 0)
        if request.get("op") == END_SESSION:
            ended = sessions.pop(session, None)
            if ended is not None:
                ended.close()
            continue  # no reply: the client does not wait for one
        workspace = sessions.get(session)
        if workspace is None:
            workspace = sessions[session] = Workspace(directory, in_process=False)
        out: list[int] = []
        args = dict(request.get("args") or {})
        if isinstance(request.get("blob"), bytes):
            args["data"] = request["blob"]
        try:
            reply, out = workspace.dispatch(str(request.get("op")), args)
        except Refused as exc:
            reply = {"refused": str(exc)}
        except OSError as exc:
            reply = {"errno": exc.errno or errno.EIO, "directory": workspace.directory}
        except Exception as exc:  # noqa: BLE001 - a bug of ours: one line for the user, not a dead helper
            reply = {"refused": "helper error: %s" % exc}
        try:
            _send(sock, reply, out)
        except OSError:
            return
        finally:
            _close_all(out)


def _describe(directory: str, op: str, exc: OSError) -> str:
    """The true reason, in one line (read-only or full /tmp, permissions)."""
    what = {
        "open_dir": "create or open %s" % directory,
        "write": "write the agent's bundle in %s" % directory,
        "write_script": "write the bootstrap script in %s" % directory,
        "lock": "create the attach lock in %s" % directory,
    }.get(op, "use %s" % directory)
    where = "" if directory.startswith("/proc") else " (in the target's mount namespace)"
    also = ""
    unusable = (errno.EROFS, errno.EACCES, errno.ENOENT)  # what makes places move the directory, when it can
    if op == "open_dir" and exc.errno in unusable and os.path.dirname(directory) == places.FIRST:
        also = " (and %s is read-only, missing or not writable either)" % places.BASES[1]  # else it would be used
    return "cannot %s%s: %s%s" % (what, where, exc.strerror or exc, also)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _reap(pid: int) -> None:
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.002)
    import signal

    try:
        os.kill(pid, signal.SIGKILL)  # our own child; it does not answer EOF in time
        os.waitpid(pid, 0)
    except OSError:
        pass
