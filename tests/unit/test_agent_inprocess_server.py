"""The whole agent in this process: the real bootstrap, loader, server and the client's connection.

What an attach does after the injection, minus the injection: the bootstrap's code runs here
(``exec``, as the injected call would), its thread loads our modules from the bundle file under the
private alias and listens; the client's ``AgentConnection`` shakes hands, runs commands and detaches,
and the detach unloads every module of ours. The bundle keeps our files' names, so coverage measures
the in-target code that a real target (another interpreter, unmeasured) runs.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator

import pytest

from flight_profiler.attach import bootstrap, bundle, privsep, ticket
from flight_profiler.attach.connection import AgentConnection, Cancelled
from flight_profiler.errors import CommandError, ProtocolError
from flight_profiler.protocol import framing

WAIT = 30.0
AGENT_THREAD = "flight_profiler-agent"


def _ours() -> list[str]:
    return [name for name in sys.modules if name == bootstrap.ALIAS or name.startswith(bootstrap.ALIAS + ".")]


def _agent_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == AGENT_THREAD]


def _wait_for(predicate: object, what: str) -> None:
    done = threading.Event()
    for _ in range(int(WAIT / 0.02)):
        if predicate():  # type: ignore[operator]
            return
        done.wait(0.02)
    raise AssertionError("timed out waiting for " + what)


def _listening(path: str) -> bool:
    """Whether a socket listens on ``path`` (its file exists from bind() on: a connect before listen() is refused)."""
    with open("/proc/net/unix") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:  # __SO_ACCEPTCON
                return True
    return False


class Started:
    def __init__(self, sock: str, claim: str) -> None:
        self.sock = sock
        self.claim = claim


def _bundle_text(variant: str) -> str:
    """The bundle as the client writes it for another interpreter ("source"), or for this one ("code":
    the start set compiled, its sources made to fail if they were compiled here after all), or with
    a foreign magic number ("foreign": its code unreadable, so only the sources can start it)."""
    if variant == "source":
        return bundle.text()
    fields = bundle.text(with_code=True).split("\0")
    if variant == "foreign":
        fields[0] = "00" * 4
    for at in range(1, len(fields), 5):
        if fields[at + 4]:  # a module of the start set
            if variant == "code":
                fields[at + 3] = "raise SystemExit('compiled from source, not unmarshalled')\n"
            else:
                fields[at + 4] = "00"
    return "\0".join(fields)


@pytest.fixture
def started(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Started]:
    """An agent serving in this process on a socket in a private directory; checked gone afterwards."""
    if _ours() or _agent_threads():
        pytest.skip("an agent of ours is already loaded in this process")
    workspace = privsep.Workspace(os.path.join(str(tmp_path), "fp"), in_process=True)
    workspace.op_open_dir(create=True)
    sock = os.path.join(workspace.directory, "agent-%d.sock" % os.getpid())
    workspace.op_write(os.path.basename(bootstrap.bundle_path(sock)), _bundle_text(getattr(request, "param", "source")))
    claim = ticket.new_name("agent-%d" % os.getpid())
    workspace.op_ticket_issue(claim)
    exec(bootstrap.source(sock, 4102444800.0, claim), {"__name__": "h24_boot"})
    _wait_for(lambda: _listening(sock), "the agent's socket")
    try:
        yield Started(sock, claim)
    finally:
        if os.path.exists(sock):  # the test left it running: detach it the way the client does
            AgentConnection.open(sock, expected_pid=os.getpid()).detach(WAIT)
        _wait_for(lambda: not _agent_threads(), "the agent thread to end")
    assert not _ours(), _ours()
    assert not os.path.exists(sock) and not os.path.exists(bootstrap.bundle_path(sock))


def test_the_agent_answers_commands_and_its_detach_leaves_nothing(started: Started) -> None:
    conn = AgentConnection.open(started.sock, expected_pid=os.getpid(), expected_uid=os.getuid())
    assert conn.info["type"] == "hello" and conn.info["pid"] == os.getpid()
    events = conn.run("getglobal", {"module": "os", "field": "sep"}, timeout=WAIT)
    assert events and "/" in repr(events)
    with pytest.raises(CommandError):
        conn.run("getglobal", {"module": "h24_no_such_module", "field": "x"}, timeout=WAIT)
    with pytest.raises(CommandError):
        conn.run("h24-no-such-command", {}, timeout=WAIT)
    # a second client at the same time gets its own session
    other = AgentConnection.open(started.sock, expected_pid=os.getpid())
    assert other.run("sc", {"pattern": "os.PathLike"}, timeout=WAIT)
    other.close()
    assert conn.detach(WAIT) == (True, "")
    _wait_for(lambda: not os.path.exists(started.sock), "the socket to go")


@pytest.mark.parametrize("started", ["code", "foreign"], indirect=True)
def test_the_start_set_is_unmarshalled_only_where_it_was_compiled_for_this_interpreter(started: Started) -> None:
    """A bundle with the start set compiled for this interpreter starts from that code (its sources
    would fail); one whose magic number is not ours starts from the sources (its code would fail)."""
    conn = AgentConnection.open(started.sock, expected_pid=os.getpid())
    assert conn.run("getglobal", {"module": "os", "field": "sep"}, timeout=WAIT)
    assert conn.detach(WAIT) == (True, "")
    _wait_for(lambda: not os.path.exists(started.sock), "the socket to go")


def test_a_detach_after_read_only_commands_leaves_no_cycles_of_ours(started: Started) -> None:
    """Our modules are reference cycles (functions and their globals); after read-only commands the
    detach empties our namespaces (agent/sweep.py), so reference counting frees them at once
    instead of the target's next full collection: only our bare classes are left to the collector."""
    import gc

    conn = AgentConnection.open(started.sock, expected_pid=os.getpid())
    assert conn.run("getglobal", {"module": "os", "field": "sep"}, timeout=WAIT)
    session = sys.modules[bootstrap.ALIAS + ".agent.session"]
    assert session.HANDED_OUT == [False]
    # the sweep's own module is compiled only for the detach; loaded here first, so that it is that one
    sweep = sys.modules[bootstrap.ALIAS]._fp_load(bootstrap.ALIAS + ".agent.sweep")
    namespaces = [session.__dict__, sys.modules[bootstrap.ALIAS + ".agent.loader"].unload.__globals__, sweep.__dict__]
    conn.detach(WAIT)
    _wait_for(lambda: not any(namespaces), "our namespaces to be emptied")
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        ours = [
            o
            for o in gc.garbage
            if str(getattr(o, "__module__", "")).startswith(bootstrap.ALIAS) and not isinstance(o, type)
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert ours == [], ours[:10]


def test_a_hook_keeps_our_namespaces_for_the_collector(started: Started) -> None:
    """After a command that handed the application something (a hook), nothing is emptied: a generator
    of a hooked function may still resume into our code after the detach."""
    conn = AgentConnection.open(started.sock, expected_pid=os.getpid())
    request = {"module": __name__, "cls": None, "method": "never_called", "limit": 1, "rate": 0.0}
    job = conn.start("watch", request)
    events = conn.events(job, timeout=WAIT)
    assert next(events)["kind"] == "start"
    assert sys.modules[bootstrap.ALIAS + ".agent.session"].HANDED_OUT == [True]
    conn.cancel(job)
    with pytest.raises(Cancelled):
        next(events)
    assert conn.detach(WAIT) == (True, "")


def never_called() -> None:
    """What the watch below waits for: nothing calls it."""


def test_a_cancelled_job_ends_cancelled_and_its_hook_goes(started: Started) -> None:
    conn = AgentConnection.open(started.sock, expected_pid=os.getpid())
    request = {"module": __name__, "cls": None, "method": "never_called", "limit": 1, "rate": 0.0}
    job = conn.start("watch", request)
    events = conn.events(job, timeout=WAIT)
    assert next(events)["kind"] == "start"
    assert hasattr(never_called, "__wrapped__") or never_called.__code__ is not ORIGINAL_CODE
    conn.cancel(job)
    with pytest.raises(Cancelled):
        next(events)
    assert never_called.__code__ is ORIGINAL_CODE and not hasattr(never_called, "__wrapped__")
    conn.detach(WAIT)


ORIGINAL_CODE = never_called.__code__


def test_a_second_bootstrap_finds_no_ticket_and_starts_nothing(started: Started) -> None:
    exec(bootstrap.source(started.sock, 4102444800.0, started.claim), {"__name__": "h24_boot"})
    assert len(_agent_threads()) <= 1
    AgentConnection.open(started.sock, expected_pid=os.getpid()).detach(WAIT)


def test_a_client_that_says_nonsense_loses_only_its_session(started: Started) -> None:
    import socket

    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.settimeout(WAIT)
    raw.connect(started.sock)
    raw.sendall(b"this is not json\n")
    reply = raw.recv(65536)  # an error line or the end of the connection, never an answer
    raw.close()
    assert reply == b"" or framing.decode(reply.decode().strip())["type"] == "error", reply
    conn = AgentConnection.open(started.sock, expected_pid=os.getpid())
    assert conn.run("sc", {"pattern": "os.PathLike"}, timeout=WAIT)
    conn.detach(WAIT)


def test_the_client_refuses_an_agent_that_speaks_another_protocol(tmp_path: object) -> None:
    import socket

    path = os.path.join(str(tmp_path), "fake.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b'{"type":"hello","protocol":-1}\n')
        conn.close()

    server = threading.Thread(target=answer, daemon=True)
    server.start()
    with pytest.raises(ProtocolError, match="protocol mismatch"):
        AgentConnection.open(path, timeout=WAIT)
    server.join(WAIT)
    listener.close()
