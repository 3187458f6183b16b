"""The agent's session in this process, over a socketpair: handshake, dispatch, bad input, cancel, detach.

Everything goes through ``protocol/framing.py`` on both ends, as between the
real client and agent; only the listening socket and the unload are left out.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from agent_harness import InProcessAgent, pid_namespace

from flight_profiler.agent import session as session_module
from flight_profiler.protocol import framing
from flight_profiler.protocol.framing import ChannelClosed
from flight_profiler.services import hooks

CALLS: list[int] = []


def never_called(x: int) -> int:
    CALLS.append(x)
    return x


@pytest.fixture
def agent() -> Iterator[InProcessAgent]:
    agent = InProcessAgent()
    yield agent
    agent.close()


def watch_request(method: str = "never_called", **extra: Any) -> dict[str, Any]:
    request = {"module": __name__, "cls": None, "method": method, "limit": 1, "rate": 0.0}
    request.update(extra)
    return request


def test_hello_says_who_the_target_is() -> None:
    agent = InProcessAgent(hello=False)
    reply = agent.hello(pid=os.getpid(), pidns=pid_namespace())
    assert reply["type"] == "hello" and reply["pid"] == os.getpid() and reply["protocol"] == 1
    assert reply["python"].startswith("%d.%d." % sys.version_info[:2])
    assert isinstance(reply["notes"], list) and reply["agent_version"]
    agent.close()


@pytest.mark.parametrize(
    ("hello", "error"),
    [
        ({"type": "hello", "protocol": 99}, "protocol mismatch: agent speaks 1, client sent 99"),
        ({"type": "run", "job": 1, "command": "module", "request": {}}, "protocol mismatch"),
        ({"type": "hello", "protocol": 1, "pid": os.getpid() + 1, "pidns": "X"}, None),
    ],
)
def test_a_bad_hello_is_refused_with_one_error(hello: dict[str, Any], error: str | None) -> None:
    agent = InProcessAgent(hello=False)
    if error is None:  # the claimed pid must be the socket's peer when both share a pid namespace
        hello["pidns"] = pid_namespace()
        error = "the client's pid does not match its socket"
    agent.send(hello)
    reply = agent.recv()
    assert reply["type"] == "error" and reply["error"].startswith(error)
    with pytest.raises(ChannelClosed):
        agent.recv()
    agent.close()
    assert agent.server.forgotten == [agent.session]


def test_a_pid_from_another_namespace_is_not_compared() -> None:
    agent = InProcessAgent(hello=False)
    assert agent.hello(pid=1, pidns="pid:[1]")["type"] == "hello"
    agent.close()


@pytest.mark.parametrize(
    "line",
    [b"{not json}\n", b"[1, 2]\n", b'{"no": "type"}\n', b'{"type": 3}\n', b"\xff\xfe\n", b'{"type": "hello"} x\n'],
)
def test_a_malformed_line_ends_the_session_and_only_it(agent: InProcessAgent, line: bytes) -> None:
    agent.channel.sock.sendall(line)
    with pytest.raises(ChannelClosed):
        agent.recv()
    agent.close()
    assert agent.server.forgotten == [agent.session]
    after = InProcessAgent()  # the next connection works
    assert after.run("module", {"path": "/nowhere.py"})[1]["status"] == "ok"
    after.close()


def test_an_oversized_line_is_refused_before_it_is_buffered(
    agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(framing, "MAX_LINE", 4096)
    try:
        agent.channel.sock.sendall(b'{"type": "run", "pad": "' + b"x" * 70000)  # no newline, ever
    except (BrokenPipeError, ConnectionResetError):
        pass  # the agent may close before the rest is written: the refusal is what counts
    with pytest.raises(ChannelClosed):
        agent.recv()
    assert len(agent.session.channel._buf) <= 4096 + 65536


@pytest.mark.parametrize(
    ("msg", "error"),
    [
        ({"type": "bogus"}, "unknown message type 'bogus'"),
        ({"type": "run", "job": 1}, "message 'run' lacks command, request"),
        ({"type": "cancel"}, "message 'cancel' lacks job"),
    ],
)
def test_an_invalid_message_is_answered_and_the_session_goes_on(
    agent: InProcessAgent, msg: dict[str, Any], error: str
) -> None:
    agent.send(msg)
    assert agent.recv() == {"type": "error", "error": error}
    assert agent.run("module", {"path": "/nowhere.py"})[1]["status"] == "ok"


def test_an_unknown_command_ends_its_job_with_an_error(agent: InProcessAgent) -> None:
    events, end = agent.run("rm-rf", {})
    assert events == [] and end["status"] == "error" and end["error"] == "unknown command 'rm-rf'"


@pytest.mark.parametrize("request_", [None, [], "x", {"unexpected": 1}])
def test_a_malformed_request_is_an_error_not_a_dead_agent(agent: InProcessAgent, request_: Any) -> None:
    for command in ("trace", "getglobal", "module"):
        end = agent.run(command, request_)[1]
        assert end["status"] == "error" and end["error"], end
    assert agent.run("module", {"path": "/nowhere.py"})[1]["status"] == "ok"


def test_a_quick_command_answers_on_the_session_thread(agent: InProcessAgent) -> None:
    events, end = agent.run("module", {"path": __file__})
    assert end == {"type": "end", "job": 1, "status": "ok"}
    assert events == [{"path": __file__, "modules": [__name__]}]
    assert agent.session.jobs == {}


def test_getglobal_reads_a_value_and_reports_a_failing_expression(agent: InProcessAgent) -> None:
    events, end = agent.run("getglobal", {"module": __name__, "field": "CALLS"})
    assert end["status"] == "ok" and events[0]["name"] == "%s.CALLS" % __name__ and events[0]["type"] == "list"
    events, end = agent.run("getglobal", {"module": __name__, "field": "CALLS", "expr": "target[10**9]"})
    assert end["status"] == "ok" and events[0]["error"].startswith("IndexError")
    end = agent.run("getglobal", {"module": __name__, "field": "nope"})[1]
    assert end["status"] == "error" and "nope" in end["error"]


class BlocksInC:
    """A value whose __repr__ waits on a lock (in C, where no stop lands) until the test lets it go."""

    def __init__(self) -> None:
        self.gate = threading.Lock()
        self.gate.acquire()
        self.entered = threading.Event()

    def __repr__(self) -> str:
        self.entered.set()
        self.gate.acquire()
        return "let go"


BLOCKED = BlocksInC()


def test_a_quick_command_blocked_in_c_gives_its_session_to_a_new_reader(agent: InProcessAgent) -> None:
    request = {"module": __name__, "field": "BLOCKED", "raw": True, "budget_ms": 50}
    stuck_reader = agent.session.thread
    events, end = agent.run("getglobal", request)
    assert events == [] and end["status"] == "error", end
    assert "still blocked outside Python" in end["error"] and "in __repr__" in end["error"], end
    assert agent.session.thread is not stuck_reader and stuck_reader.is_alive()
    assert {stuck_reader.ident} == session_module.STUCK
    assert agent.run("module", {"path": "/nowhere.py"})[1]["status"] == "ok"  # the same session goes on
    BLOCKED.gate.release()
    stuck_reader.join(10)
    assert not stuck_reader.is_alive() and set() == session_module.STUCK
    events, end = agent.run("module", {"path": "/nowhere.py"})  # the late answer was dropped: this is the next
    assert end == {"type": "end", "job": 3, "status": "ok"}, end


def test_cancel_ends_a_running_job_and_removes_its_hook(agent: InProcessAgent) -> None:
    job = agent.start("watch", watch_request())
    agent.wait_for(job, "start")
    assert hooks.installed() == ["%s.never_called" % __name__]
    agent.cancel(job)
    events, end = agent.finish(job)
    assert end["status"] == "cancelled" and [e["kind"] for e in events] == ["start"]
    assert hooks.installed() == []
    agent.cancel(job)  # a job that ended, or never was: nothing happens
    agent.cancel(12345)
    assert agent.run("module", {"path": "/nowhere.py"})[1]["status"] == "ok"


def test_jobs_run_side_by_side(agent: InProcessAgent) -> None:
    first = agent.start("watch", watch_request(limit=1))
    second = agent.start("watch", watch_request(limit=2))
    agent.wait_for(first, "start")
    agent.wait_for(second, "start")
    for value in (1, 2):
        never_called(value)
    first_events, first_end = agent.finish(first)
    second_events, second_end = agent.finish(second)
    assert [e["kind"] for e in first_events] == ["start", "call", "end"] and first_end["status"] == "ok"
    assert [e["kind"] for e in second_events] == ["start", "call", "call", "end"] and second_end["status"] == "ok"


def test_console_code_that_never_ends_is_stopped_by_cancel(agent: InProcessAgent) -> None:
    job = agent.start("console", {"source": "while True:\n    pass\n"})
    time.sleep(0.05)  # let it start (cancel before the start is just as fine: it ends cancelled)
    agent.cancel(job)
    assert agent.finish(job)[1]["status"] == "cancelled"
    events, end = agent.run("console", {"source": "x = 6 * 7\nx"})
    assert end["status"] == "ok" and "42" in repr(events)
    events, end = agent.run("console", {"source": "x + 1"})  # the namespace lives as long as the session
    assert end["status"] == "ok" and "43" in repr(events)


def test_detach_stops_every_job_and_answers_last(agent: InProcessAgent) -> None:
    job = agent.start("watch", watch_request())
    agent.wait_for(job, "start")
    agent.send({"type": "detach"})
    _, end = agent.finish(job)
    assert end["status"] == "cancelled"
    reply = agent.recv()
    assert reply == {"type": "end", "job": 0, "status": "ok"}
    assert agent.server.detached == [agent.session]
    assert hooks.installed() == []


def test_a_client_that_goes_away_leaves_nothing_hooked() -> None:
    agent = InProcessAgent()
    job = agent.start("watch", watch_request())
    agent.wait_for(job, "start")
    agent.close()  # no cancel, no detach: EOF
    assert hooks.installed() == []
    assert CALLS.count(7) == 0
    assert never_called(7) == 7


def test_events_are_compact_ascii_lines(agent: InProcessAgent) -> None:
    agent.channel.sock.sendall(framing.encode({"type": "run", "job": 5, "command": "module", "request": {"path": "é"}}))
    agent.channel.sock.sendall(b"\n")
    agent.inbox[5] = []
    raw = agent.channel.sock.recv(65536)
    assert raw.isascii() and raw.endswith(b"\n") and b"\\u00e9" in raw


def test_socket_errors_on_send_end_the_job_not_the_agent() -> None:
    agent = InProcessAgent()
    job = agent.start("watch", watch_request())
    agent.wait_for(job, "start")
    agent.channel.sock.shutdown(socket.SHUT_RDWR)
    never_called(1)  # its result cannot be sent any more
    agent.close()
    assert hooks.installed() == []


def test_an_internal_error_carrying_a_lone_surrogate_is_an_error_not_a_dead_session(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The target's text (a name, a message) may hold a lone surrogate: writing the traceback to the
    agent's log with the strict codec raised inside the handler of the error, on the session's thread."""
    from flight_profiler.agent import session
    from flight_profiler.services.context import JobContext

    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text either")

    def handler(request: Any, ctx: Any) -> None:
        try:
            raise RuntimeError("class \x1b]0;t\x07\udcff")
        except RuntimeError:
            raise Hostile() from None

    log = tmp_path / "agent.sock.log"
    monkeypatch.setattr(session, "handler_for", lambda command, package: handler)
    monkeypatch.setattr(session, "LOG_PATH", str(log))
    end = session._execute(JobContext(1, lambda data: None, {}), "sc", {"pattern": "x"})
    assert end["status"] == "error" and end["error"] == "internal error in sc: Hostile", end

    def surrogate(request: Any, ctx: Any) -> None:
        raise RuntimeError("class \x1b]0;t\x07\udcff")

    monkeypatch.setattr(session, "handler_for", lambda command, package: surrogate)
    end = session._execute(JobContext(2, lambda data: None, {}), "sc", {"pattern": "x"})
    assert end["error"] == "internal error in sc: RuntimeError: class \x1b]0;t\x07\udcff", end
    assert framing.encode(end).isascii()
    assert "\\udcff" in log.read_text(encoding="utf-8")
