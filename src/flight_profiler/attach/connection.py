"""The client's end of the agent channel.

Before we send anything, we make sure the socket is the target's agent: the
path must be a socket, not a link to someone else's, and the process at the
other end (SO_PEERCRED, translated by the kernel into our pid namespace) must
be the target pid, running as the target's uid or root. Everything the agent
sends is read through ``wire.BoundedReader``: bounded in size, nesting and time.
"""

from __future__ import annotations

import _socket
import itertools
import os
import stat
import sys
import time
from collections.abc import Iterator

from ..errors import CommandError, ProtocolError
from ..protocol.framing import Channel, ChannelClosed, FrameError
from ..protocol.messages import END_CANCELLED, END_OK, validate
from ..protocol.version import PROTOCOL_VERSION
from .wire import BoundedReader, Deadline

# typing and socket are not imported at run time: with its IntEnums and selectors they cost every --cmd's
# start-up ~6 ms (issue 14); ``_socket`` has all a client socket needs, the same objects minus the wrappers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from ..named import NamedTuple

HELLO_TIMEOUT = 5.0
LAST_WORDS_WAIT = 0.2  # seconds to read what an agent that closed on us sent last


class Cancelled(Exception):
    """The job ended because we cancelled it."""


class NoAnswer(CommandError):
    """The agent sent nothing more within the time the client waited (busy threads keep it from the GIL)."""


class ConnectionLost(ProtocolError):
    """The agent's end of the socket went away: the target exited, or the agent was detached."""


class Goodbye(NamedTuple):
    """The agent's answer to a detach."""

    confirmed: bool  # it said it was done; False: not within the time the client waited (see ``detach``)
    busy: str = ""  # what it says is still busy (user code stuck in C), or ""


class Peer(NamedTuple):
    pid: int
    uid: int
    gid: int


def peer_of(sock: _socket.socket) -> Peer:
    """SO_PEERCRED of a connected Unix socket: who listened at the other end."""
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # struct ucred: pid, uid, gid
    return Peer(*(int.from_bytes(creds[i : i + 4], sys.byteorder) for i in (0, 4, 8)))


def check_socket_path(path: str) -> None:
    """A planted link or file at the agent's name is refused, never followed (ProtocolError).

    FileNotFoundError (an OSError) when nothing is there: no agent yet.
    """
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise ProtocolError("refusing %s: it is a symbolic link, not the agent's socket" % path)
    if not stat.S_ISSOCK(info.st_mode):
        raise ProtocolError("refusing %s: it is not a socket" % path)


def check_peer(peer: Peer, expected_pid: int, expected_uid: int | None, path: str) -> None:
    """The agent is the target process itself, running as the target's user (or root)."""
    who = "pid %d, uid %d" % (peer.pid, peer.uid) if peer.pid else "a process outside our pid namespace"
    if peer.pid != expected_pid:
        raise ProtocolError("refusing %s: it is answered by %s, not by the target pid %d" % (path, who, expected_pid))
    if expected_uid is not None and peer.uid not in (expected_uid, 0):
        raise ProtocolError("refusing %s: it is answered by %s, not by the target's uid %d" % (path, who, expected_uid))


class AgentConnection:
    def __init__(self, sock: _socket.socket) -> None:
        self.channel = Channel(sock)  # sending only; every read goes through the bounded reader
        self.reader = BoundedReader(sock)
        self._jobs = itertools.count(1)
        self.info: dict[str, Any] = {}

    @classmethod
    def open(
        cls,
        path: str,
        timeout: float = HELLO_TIMEOUT,
        expected_pid: int | None = None,
        expected_uid: int | None = None,
    ) -> AgentConnection:
        """Connect, check who answers, shake hands, all within ``timeout``.

        OSError when nobody listens on ``path``; ProtocolError when someone other
        than the target (``expected_pid``/``expected_uid``) does, or says nonsense.
        """
        deadline = time.monotonic() + timeout
        check_socket_path(path)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            if expected_pid is not None:
                check_peer(peer_of(sock), expected_pid, expected_uid, path)
        except BaseException:
            sock.close()
            raise
        conn = cls(sock)
        try:
            conn._hello(deadline)
        except BaseException:
            conn.close()
            raise
        return conn

    @classmethod
    def from_socket(
        cls,
        sock: _socket.socket,
        timeout: float = HELLO_TIMEOUT,
        connector_pid: int | None = None,
        target_pid: int | None = None,
    ) -> AgentConnection:
        """Shake hands on a socket already connected (by the helper that works as the target's user).

        The caller has checked who answers (``check_peer``) before handing it here. ``connector_pid``
        is the process that called connect(): the agent compares it with SO_PEERCRED. ``target_pid``:
        where that process is outside the target's pid namespace, the hello carries a descriptor of the
        target's mount namespace, which the agent requires of such a peer (``mount_ns_proof``).
        """
        deadline = time.monotonic() + timeout
        sock.settimeout(timeout)
        conn = cls(sock)
        try:
            conn._hello(deadline, connector_pid, target_pid)
        except BaseException:
            conn.close()
            raise
        return conn

    def _hello(self, deadline: float, connector_pid: int | None = None, target_pid: int | None = None) -> None:
        claimed = os.getpid() if connector_pid is None else connector_pid
        hello = {"type": "hello", "protocol": PROTOCOL_VERSION, "pid": claimed, "pidns": _pid_ns()}
        proof = mount_ns_proof(target_pid) if target_pid is not None else -1
        try:
            if proof >= 0:
                self.channel.send_with_fd(hello, proof)
            else:
                self.channel.send(hello)
            reply = self.reader.recv(deadline)
        except Deadline:
            raise ProtocolError("the agent did not answer the handshake in time") from None
        except (ChannelClosed, FrameError) as exc:
            raise ProtocolError("the agent did not answer the handshake: %s" % exc) from None
        finally:
            if proof >= 0:
                os.close(proof)  # the agent got its own copy with the hello
        if reply.get("type") == "error":
            raise ProtocolError("the agent refused us: %s" % reply.get("error"))
        if reply.get("type") != "hello" or reply.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolError(
                "protocol mismatch: we speak %d, the agent %r" % (PROTOCOL_VERSION, reply.get("protocol"))
            )
        self.info = reply

    def start(self, command: str, request: dict[str, Any]) -> int:
        job = next(self._jobs)
        self._send({"type": "run", "job": job, "command": command, "request": request})
        return job

    def _send(self, msg: dict[str, Any]) -> None:
        try:
            self.channel.send(msg)
        except ChannelClosed as exc:
            said = self._last_words()
            if said:  # it closed after telling why (no thread left for our session): that, not "lost"
                raise ProtocolError(said) from None
            raise ConnectionLost("lost the connection to the agent: %s" % exc) from None

    def _last_words(self) -> str | None:
        """An error the agent sent before it closed the connection, if one is waiting to be read."""
        try:
            msg = self.reader.recv(time.monotonic() + LAST_WORDS_WAIT)
        except (Deadline, ChannelClosed, FrameError, OSError):
            return None
        return str(msg["error"]) if msg.get("type") == "error" and msg.get("error") else None

    def events(self, job: int, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield the job's events until it ends; raise CommandError when it failed.

        ``timeout`` bounds the whole wait, however slowly the bytes come.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                msg = self.reader.recv(deadline)
            except Deadline:
                raise NoAnswer("no answer from the agent within %.0f s" % (timeout or 0)) from None
            except ChannelClosed as exc:
                raise ConnectionLost("lost the connection to the agent: %s" % exc) from None
            except FrameError as exc:
                raise ProtocolError("lost the connection to the agent: %s" % exc) from None
            problem = validate(msg)
            if problem:
                raise ProtocolError(problem)
            if msg["type"] == "error":
                raise ProtocolError(str(msg["error"]))
            if msg.get("job") != job:
                continue  # a late message of a job we gave up on
            if msg["type"] == "event":
                if not isinstance(msg["data"], dict):
                    raise ProtocolError("the agent sent an event that is not a JSON object")
                yield msg["data"]
            elif msg["type"] == "end":
                self._finish(msg)
                return

    @staticmethod
    def _finish(msg: dict[str, Any]) -> None:
        if msg["status"] == END_CANCELLED:
            raise Cancelled()
        if msg["status"] != END_OK:
            raise CommandError(str(msg.get("error") or "command failed"))

    def run(self, command: str, request: dict[str, Any], timeout: float | None = None) -> list[dict[str, Any]]:
        return list(self.events(self.start(command, request), timeout))

    def cancel(self, job: int) -> None:
        self._send({"type": "cancel", "job": job})

    def detach(self, timeout: float) -> Goodbye:
        """Ask the agent to remove everything; wait for its goodbye (``timeout`` in all).

        Unconfirmed when the goodbye did not come in time: behind busy threads each step of the
        agent's waits its turn for the GIL (seconds at 100 of them), and a target stopped or held in C
        runs none. The request is in the socket ahead of our close, so the agent still reads it
        and removes itself when it runs. A connection the agent closed without a goodbye counts
        as done, as before: another client's detach (which does the removal) or the target's exit.
        """
        self._send({"type": "detach"})
        deadline = time.monotonic() + timeout
        goodbye = Goodbye(True)
        try:
            while True:
                msg = self.reader.recv(deadline)
                if msg.get("type") == "end":
                    goodbye = Goodbye(True, str(msg.get("busy") or ""))
                    break
        except (ChannelClosed, FrameError):
            pass
        except Deadline:
            goodbye = Goodbye(False)
        self.close()
        return goodbye

    def close(self) -> None:
        self.channel.close()


def mount_ns_proof(target_pid: int) -> int:
    """A descriptor of ``target_pid``'s mount namespace when we are outside its pid namespace, else -1.

    The agent sees such a client as pid 0 and cannot tell it from a process of the target's uid in
    another container of a Kubernetes pod, which shares the pod's ``/dev/shm`` (where the agent's
    socket is when ``/tmp`` is read-only) but not the target's mount namespace. Only a process that
    can see the target (root, or its user in an enclosing pid namespace) can open this file.
    """
    try:
        if os.stat("/proc/self/ns/pid").st_ino == os.stat("/proc/%d/ns/pid" % target_pid).st_ino:
            return -1
        return os.open("/proc/%d/ns/mnt" % target_pid, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1  # the agent then refuses us if it needs the proof: its one-line error says so


def _pid_ns() -> str:
    """Our pid namespace; the agent compares our claimed pid with SO_PEERCRED's only when it shares it."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
