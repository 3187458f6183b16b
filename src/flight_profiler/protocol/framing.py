"""Newline-delimited JSON framing over a stream socket (runs on both sides).

One message is one JSON object on one line. JSON only, never pickle: a peer can
at worst send us data, never code. Lines are bounded so a confused peer cannot
make the target buffer without limit.
"""

from __future__ import annotations

import json
import socket
import threading

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

    Message = Dict[str, Any]


MAX_LINE = 64 * 1024 * 1024


class ChannelClosed(Exception):
    """The peer went away (EOF or a socket error)."""


class FrameError(Exception):
    """The peer sent something that is not one JSON object per line."""


class Channel:
    """A message channel over a connected socket; ``send`` is thread-safe."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self._send_lock = threading.Lock()

    def send(self, msg: Message) -> None:
        self.send_many([msg])

    def send_many(self, msgs: list[Message]) -> None:
        """Send in one write: on a GIL-contended target every write costs a GIL round trip."""
        data = b"".join(json.dumps(msg, separators=(",", ":"), default=repr).encode("utf-8") + b"\n" for msg in msgs)
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except OSError as exc:
                raise ChannelClosed(str(exc)) from exc

    def recv(self, timeout: Optional[float] = None) -> Message:
        """Return the next message; raise ``socket.timeout`` when none came in time."""
        self.sock.settimeout(timeout)
        while True:
            newline = self._buf.find(b"\n")
            if newline >= 0:
                line = bytes(self._buf[:newline])
                del self._buf[: newline + 1]
                return _decode(line)
            if len(self._buf) > MAX_LINE:
                raise FrameError("message too large")
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise
            except OSError as exc:
                raise ChannelClosed(str(exc)) from exc
            if not chunk:
                raise ChannelClosed("peer closed the connection")
            self._buf += chunk

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _decode(line: bytes) -> Message:
    try:
        msg = json.loads(line.decode("utf-8"))
    except ValueError as exc:
        raise FrameError("invalid JSON from peer: %s" % exc) from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise FrameError("message without a type")
    return msg
