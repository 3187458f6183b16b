"""Newline-delimited JSON framing over a stream socket (runs on both sides).

One message is one JSON object on one line. JSON only, never pickle: a peer can
at worst send us data, never code. Lines are bounded so a confused peer cannot
make the target buffer without limit.

Every function used here comes from a C module, taken when this module loads:
the JSON encoder and scanner of ``_json`` and ``_socket``'s socket methods, so a
target that replaced ``json.dumps``/``json.loads``, patched
``socket.socket.sendall`` or monkeypatched sockets with gevent neither breaks
the agent nor sees its traffic. ``_thread``'s lock: see ``services/realthreads``.
"""

from __future__ import annotations

import _json
import _socket
import _thread
import os
import sys

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

    Message = Dict[str, Any]


MAX_LINE = 64 * 1024 * 1024
SocketTimeout = _socket.timeout  # socket.timeout (TimeoutError from 3.10 on)


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads from a JSONDecoder (strict, numbers as the stdlib does)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity: what our encoder writes for such floats
    array_hook = None  # read by 3.15's scanner


_make_encoder = _json.make_encoder
_encode_str = _json.encode_basestring_ascii
_scan_c = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]  # duck-typed: it reads attributes
_SPACE = " \t\n\r"


def encode(msg: Any) -> bytes:
    """Compact ASCII JSON; values JSON cannot hold are sent as their repr."""
    return json_text(msg, ":", ",").encode("ascii")


def json_text(value: Any, key_separator: str, item_separator: str) -> str:
    """``json.dumps(value, default=repr, separators=(item_separator, key_separator))``, character for
    character, by ``_json``'s C encoder alone (no ``json`` import: the client's --json lines use it too)."""
    # a fresh encoder per call: its markers dict (cycle detection) must not be shared by threads
    # arguments: markers, default, encode_str, indent, key_separator, item_separator, sort_keys,
    # skipkeys, allow_nan
    encoder = _make_encoder({}, repr, _encode_str, None, key_separator, item_separator, False, False, True)
    return "".join(encoder(value, 0))


def decode(text: str) -> Any:
    """One JSON value, surrounded by white space only; ValueError otherwise."""
    start = len(text) - len(text.lstrip(_SPACE))
    try:
        value, end = _scan_c(text, start)
    except StopIteration as exc:
        raise ValueError("expecting a JSON value at %d" % exc.value) from None
    except SystemError:
        # 3.10 and 3.11's scanner raises its error through json.decoder, and returns NULL with
        # nothing set while that module is not loaded (a target that never imported json)
        raise ValueError("malformed JSON") from None
    if text[end:].strip(_SPACE):
        raise ValueError("extra data at %d" % end)
    return value


class ChannelClosed(Exception):
    """The peer went away (EOF or a socket error)."""


class FrameError(Exception):
    """The peer sent something that is not one JSON object per line."""


class Channel:
    """A message channel over a connected socket; ``send`` is thread-safe.

    ``send_lock``: the lock that makes it so; the agent passes an original one (``realthreads``), since
    in a gevent-patched target ``_thread.allocate_lock`` makes a greenlet lock, and an OS thread of ours
    that waits on one runs a hub of its own (an epoll and an eventfd descriptor the target keeps).
    """

    def __init__(self, sock: Any, send_lock: Any = None) -> None:
        self.sock = sock
        self._buf = bytearray()
        self._send_lock = _thread.allocate_lock() if send_lock is None else send_lock
        self._timeout: Optional[float] = sock.gettimeout()  # a field read; settimeout only on a change (recv)

    def send(self, msg: Message) -> None:
        self.send_many([msg])

    def send_many(self, msgs: list[Message]) -> None:
        """Send in one write: on a GIL-contended target every write costs a GIL round trip."""
        data = b"".join(encode(msg) + b"\n" for msg in msgs)
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except OSError as exc:
                raise ChannelClosed(str(exc)) from exc

    def send_with_fd(self, msg: Message, fd: int) -> None:
        """``send``, with ``fd`` passed along its first byte (SCM_RIGHTS; the client's hello only)."""
        data = encode(msg) + b"\n"
        rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))]
        with self._send_lock:
            try:
                sent = self.sock.sendmsg([data], rights)
                self.sock.sendall(data[sent:])
            except OSError as exc:
                raise ChannelClosed(str(exc)) from exc

    def recv_first_with_fds(self, timeout: Optional[float], most: int) -> list[int]:
        """The first bytes into the buffer, and the descriptors sent along them (at most ``most``: the
        kernel closes any past our room); the caller closes those it gets."""
        self.sock.settimeout(timeout)
        self._timeout = timeout
        try:
            data, ancillary, _flags, _ = self.sock.recvmsg(65536, _socket.CMSG_SPACE(4 * most))
        except SocketTimeout:
            raise
        except OSError as exc:
            raise ChannelClosed(str(exc)) from exc
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(int.from_bytes(payload[at : at + 4], sys.byteorder) for at in range(0, usable, 4))
        if not data:
            for fd in fds:
                os.close(fd)
            raise ChannelClosed("peer closed the connection")
        self._buf += data
        return fds

    def recv(self, timeout: Optional[float] = None) -> Message:
        """Return the next message; raise ``socket.timeout`` when none came in time."""
        if timeout != self._timeout:  # settimeout is a system call that lets go of the GIL: only on a change
            self.sock.settimeout(timeout)
            self._timeout = timeout
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
            except SocketTimeout:
                raise
            except OSError as exc:
                raise ChannelClosed(str(exc)) from exc
            if not chunk:
                raise ChannelClosed("peer closed the connection")
            self._buf += chunk

    def shut(self) -> None:
        """Make every later send fail and the peer see the end, without freeing the descriptor yet."""
        try:
            self.sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.shut()
        self.sock.close()


def _decode(line: bytes) -> Message:
    try:
        msg = decode(line.decode("utf-8"))
    except ValueError as exc:
        raise FrameError("invalid JSON from peer: %s" % exc) from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise FrameError("message without a type")
    return msg
