"""The client's end of the agent channel."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from typing import Any

from ..errors import CommandError, ProtocolError
from ..protocol.framing import Channel, ChannelClosed, FrameError
from ..protocol.messages import END_CANCELLED, END_OK, validate
from ..protocol.version import PROTOCOL_VERSION

HELLO_TIMEOUT = 5.0


class Cancelled(Exception):
    """The job ended because we cancelled it."""


class AgentConnection:
    def __init__(self, sock: socket.socket) -> None:
        self.channel = Channel(sock)
        self._jobs = itertools.count(1)
        self.info: dict[str, Any] = {}

    @classmethod
    def open(cls, path: str, timeout: float = HELLO_TIMEOUT) -> AgentConnection:
        """Connect and shake hands; raises OSError when nobody listens on ``path``."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        conn = cls(sock)
        conn._hello(timeout)
        return conn

    def _hello(self, timeout: float) -> None:
        self.channel.send({"type": "hello", "protocol": PROTOCOL_VERSION})
        try:
            reply = self.channel.recv(timeout)
        except (ChannelClosed, FrameError, socket.timeout) as exc:
            raise ProtocolError("the agent did not answer the handshake: %s" % exc) from None
        if reply.get("type") == "error":
            raise ProtocolError("the agent refused us: %s" % reply.get("error"))
        if reply.get("type") != "hello" or reply.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolError(
                "protocol mismatch: we speak %d, the agent %r" % (PROTOCOL_VERSION, reply.get("protocol"))
            )
        self.info = reply

    def start(self, command: str, request: dict[str, Any]) -> int:
        job = next(self._jobs)
        self.channel.send({"type": "run", "job": job, "command": command, "request": request})
        return job

    def events(self, job: int, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield the job's events until it ends; raise CommandError when it failed."""
        while True:
            try:
                msg = self.channel.recv(timeout)
            except socket.timeout:
                raise CommandError("no answer from the agent within %.0f s" % (timeout or 0)) from None
            except (ChannelClosed, FrameError) as exc:
                raise ProtocolError("lost the connection to the agent: %s" % exc) from None
            problem = validate(msg)
            if problem:
                raise ProtocolError(problem)
            if msg["type"] == "error":
                raise ProtocolError(str(msg["error"]))
            if msg.get("job") != job:
                continue  # a late message of a job we gave up on
            if msg["type"] == "event":
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
        self.channel.send({"type": "cancel", "job": job})

    def detach(self, timeout: float = 5.0) -> str:
        """Ask the agent to remove everything; wait for its goodbye. Returns what it says is still busy."""
        self.channel.send({"type": "detach"})
        busy = ""
        try:
            while True:
                msg = self.channel.recv(timeout)
                if msg.get("type") == "end":
                    busy = str(msg.get("busy") or "")
                    break
        except (ChannelClosed, FrameError, socket.timeout):
            pass
        self.close()
        return busy

    def close(self) -> None:
        self.channel.close()
