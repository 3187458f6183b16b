"""The agent's session in this process, over a socketpair: real requests, real framing, real handlers.

A test talks to ``Session`` as the client does (``protocol/framing.py`` on both
ends) and gets the events the agent halves send. No target process, no
injection: the in-target code runs here, on this interpreter, in seconds.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from typing import Any, Callable

from flight_profiler.agent.session import Session
from flight_profiler.protocol.framing import Channel
from flight_profiler.protocol.version import PROTOCOL_VERSION
from flight_profiler.services.context import run_detach_callbacks

WAIT = 30.0  # seconds: generous, only reached when a test is about to fail


class FakeServer:
    """What a session needs of ``agent/server.py``, without a listener or an unload of our modules."""

    def __init__(self) -> None:
        self.forgotten: list[Session] = []
        self.detached: list[Session | None] = []

    def forget(self, session: Session) -> None:
        self.forgotten.append(session)

    def detach(self, calling: Session | None) -> None:
        run_detach_callbacks()  # what the real detach does before it unloads
        self.detached.append(calling)


class Ended(Exception):
    """The job ended before the event a test waited for."""


class InProcessAgent:
    """A client's view of one session: send requests, read events and ends per job."""

    def __init__(self, hello: bool = True) -> None:
        agent_end, client_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server = FakeServer()
        self.session = Session(agent_end, self.server)  # type: ignore[arg-type]
        self.session.start()
        self.channel = Channel(client_end)
        self.inbox: dict[int, list[dict[str, Any]]] = {}
        self.other: list[dict[str, Any]] = []  # messages of no job (errors)
        self.next_job = 1
        if hello:
            reply = self.hello()
            assert reply["type"] == "hello", reply

    def hello(self, **fields: Any) -> dict[str, Any]:
        self.send({"type": "hello", "protocol": PROTOCOL_VERSION, **fields})
        return self.channel.recv(WAIT)

    def send(self, msg: dict[str, Any]) -> None:
        self.channel.send(msg)

    def recv(self) -> dict[str, Any]:
        return self.channel.recv(WAIT)

    def start(self, command: str, request: Any) -> int:
        job = self.next_job
        self.next_job += 1
        self.inbox[job] = []
        self.send({"type": "run", "job": job, "command": command, "request": request})
        return job

    def _pump(self) -> None:
        msg = self.recv()
        job = msg.get("job")
        if isinstance(job, int) and job in self.inbox:
            self.inbox[job].append(msg)
        else:
            self.other.append(msg)

    def wait_for(self, job: int, kind: str) -> dict[str, Any]:
        """The job's next event whose data has ``kind`` (earlier ones stay in its inbox)."""
        seen = 0
        while True:
            for msg in self.inbox[job][seen:]:
                seen += 1
                if msg["type"] == "end":
                    raise Ended(msg)
                if msg["data"].get("kind") == kind:
                    return msg["data"]
            self._pump()

    def finish(self, job: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Every event of the job and its end message."""
        while not any(msg["type"] == "end" for msg in self.inbox[job]):
            self._pump()
        messages = self.inbox.pop(job)
        end = next(msg for msg in messages if msg["type"] == "end")
        return [msg["data"] for msg in messages if msg["type"] == "event"], end

    def run(self, command: str, request: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return self.finish(self.start(command, request))

    def cancel(self, job: int) -> None:
        self.send({"type": "cancel", "job": job})

    def close(self) -> None:
        """The client goes away: the session cancels its jobs, runs their cleanups and ends."""
        self.channel.close()
        assert self.session.thread.join(WAIT), "the session did not end"
        deadline = time.monotonic() + WAIT
        while self.session.jobs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not self.session.jobs


def pid_namespace() -> str:
    return os.readlink("/proc/self/ns/pid")


def run_untraced(act: Callable[[], Any]) -> None:
    """``act()`` in a thread without a trace function, as the application's own thread would be.

    Before 3.12 ``line`` traces the hooked call's frame with its thread's trace function, and leaves a
    thread that already has one alone (a debugger's). Under coverage (./dev test) every thread has
    coverage's, so line's tests were skipped there and its agent half was measured at 0 %.
    """
    failed: list[BaseException] = []

    def untraced() -> None:
        sys.settrace(None)
        try:
            act()
        except BaseException as exc:  # handed to the test's thread
            failed.append(exc)

    thread = threading.Thread(target=untraced, name="app-untraced")
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the application's calls did not return"
    if failed:
        raise failed[0]
