"""A group's shared helper (``attach/privsep.sharing``): each attach's session keeps its own state in the
helper, and a reply that may still be on its way ends the helper rather than answer another attach."""

from __future__ import annotations

import _socket
import threading
from pathlib import Path

import pytest

from flight_profiler.attach import privsep
from flight_profiler.errors import AttachError


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The helper's request loop (``_serve``) in a thread, as the target's user would run it."""
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    thread = threading.Thread(target=privsep._serve, args=(theirs, str(tmp_path / "flight_profiler-test")))
    thread.start()
    shared = privsep._Shared(("test",), ours, 0)
    yield shared
    shared.end(kill=False)
    thread.join(10)
    theirs.close()


def _call(shared: privsep._Shared, session: int, op: str, **args: object) -> privsep.Reply:
    with shared.lock:
        reply, fds = shared.exchange({"op": op, "args": args, "session": session}, None)
    return privsep._answer(op, reply, fds)


def _end(shared: privsep._Shared, session: int) -> None:
    with shared.lock:
        shared.exchange({"op": privsep.END_SESSION, "session": session}, None, reply=False)


def test_a_session_never_uses_the_directory_another_opened(served: privsep._Shared) -> None:
    assert _call(served, 1, "open_dir", create=True)[0]["exists"] is True
    assert _call(served, 1, "lexists", name="x")[0] == {"exists": False}
    with pytest.raises(AttachError, match="not opened"):
        _call(served, 2, "lexists", name="x")
    _end(served, 1)
    with pytest.raises(AttachError, match="not opened"):  # its state went with it
        _call(served, 1, "lexists", name="x")


def test_a_reply_that_did_not_come_in_time_ends_the_helper() -> None:
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    ours.settimeout(0.2)
    shared = privsep._Shared(("test",), ours, 0)
    try:
        with pytest.raises(AttachError, match="went away"):
            _call(shared, 1, "lexists", name="x")  # nobody answers
        try:
            privsep._send(theirs, {"exists": True}, [])  # the late reply: no later call may take it for its own
        except OSError:
            pass  # the client's end is closed already
        with pytest.raises(AttachError, match="went away"):
            _call(shared, 2, "lexists", name="y")
        assert shared.broken
    finally:
        theirs.close()
