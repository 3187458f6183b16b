"""Reading the agent's messages on the client, with nothing left to the agent's good will.

The agent lives in a process whose user we may not trust, and whatever listens
on its socket could be someone else. So every message is bounded before it is
decoded:

- size: ``MAX_MESSAGE`` bytes per line. The largest real results (value trees
  cut by the capture limits, a 20000-node trace tree, 1 MiB of console output,
  a mem table of 10000 rows) stay far below it; decoded JSON costs up to ~20
  times its text in Python objects, so the cap also caps what one message can
  cost us (~80 MiB, not the 1.1 GB a 64 MiB line cost).
- nesting: ``MAX_DEPTH`` levels, checked on the raw bytes before ``json.loads``,
  so a deep message is a one-line error, never a RecursionError in the decoder
  or in a recursive renderer. trace trees (at most 200 calls deep, two JSON
  levels per call) fit.
- time: reads take a deadline, not a per-recv timeout, so a peer that drips one
  byte a second cannot stretch a handshake or a cancel beyond its bound.
"""

from __future__ import annotations

import _socket
import re
import time
from itertools import accumulate

from ..protocol import framing
from ..protocol.framing import ChannelClosed, FrameError

# neither typing nor socket at run time: each costs every --cmd's start-up ~3 ms; json only for a bad message
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_MESSAGE = 4 * 1024 * 1024
MAX_DEPTH = 512
CHUNK = 65536

_JSON_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'  # compiled (and cached by re) for the first deep line
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class Deadline(Exception):
    """No complete message before the deadline."""


class BoundedReader:
    """Newline-delimited JSON objects from ``sock``, bounded in size, depth and time."""

    def __init__(self, sock: _socket.socket, max_message: int = MAX_MESSAGE) -> None:
        self.sock = sock
        self.max_message = max_message
        self._buf = bytearray()

    def recv(self, deadline: float | None = None) -> dict[str, Any]:
        """The next message; ``Deadline`` when ``deadline`` (time.monotonic) passes first."""
        while True:
            newline = self._buf.find(b"\n")
            if newline >= 0:
                if newline > self.max_message:
                    raise FrameError("message too large (over %d bytes)" % self.max_message)
                line = bytes(self._buf[:newline])
                del self._buf[: newline + 1]
                return decode(line)
            if len(self._buf) > self.max_message:
                raise FrameError("message too large (over %d bytes)" % self.max_message)
            self._fill(deadline)

    def _fill(self, deadline: float | None) -> None:
        if deadline is None:
            self.sock.settimeout(None)
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Deadline()
            self.sock.settimeout(left)
        try:
            # never more than the line may still hold: memory stays within the bound
            chunk = self.sock.recv(min(CHUNK, self.max_message + 1 - len(self._buf)))
        except _socket.timeout:  # socket.timeout; TimeoutError from 3.10 on
            raise Deadline() from None
        except OSError as exc:
            raise ChannelClosed(str(exc)) from exc
        if not chunk:
            raise ChannelClosed("peer closed the connection")
        self._buf += chunk


def decode(line: bytes) -> dict[str, Any]:
    """One message, or FrameError with a one-line reason."""
    depth = nesting(line)
    if depth > MAX_DEPTH:
        raise FrameError("message nested too deeply (%d levels, at most %d)" % (depth, MAX_DEPTH))
    try:
        text = line.decode("utf-8")
        try:
            msg = framing.decode(text)  # json.loads's own C scanner, with its settings: the same values
        except (ValueError, SystemError):
            # refused: json.loads refuses it too (the same rules) and says why in its words. Before 3.12
            # the scanner reports most refusals as a SystemError while json.decoder is not loaded
            # (importing the submodule puts it back in sys.modules where the scanner looks it up).
            import json.decoder

            msg = json.loads(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise FrameError("invalid JSON from the agent: %s" % _first_line(str(exc))) from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise FrameError("message without a type")
    return msg


def nesting(line: bytes) -> int:
    """The deepest bracket nesting of a JSON text, strings skipped; at C speed but for the bracket count."""
    if line.count(b"[") + line.count(b"{") <= MAX_DEPTH:
        return 0  # cannot be deeper than the number of openers
    brackets = re.sub(_JSON_STRING, b"", line, flags=re.DOTALL).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else text
