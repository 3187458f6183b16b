"""Attach on a target whose many busy threads fight for the GIL (issue 14, goal 3).

How long it takes is the benchmark's business (bench/attach.py); these tests check that it
never fails, and that serving a client's handshake on the listener's own thread (to spare
the busy target a thread start before the first answer) never keeps the next client out.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from flight_profiler.attach.paths import agent_socket
from interpreters import find_interpreters
from support import cli, start_target

INTERPRETERS = find_interpreters()
PICK = [INTERPRETERS[0], INTERPRETERS[-1]]
NEWEST = INTERPRETERS[-1][1]


@pytest.mark.parametrize(("name", "python"), PICK, ids=[i for i, _ in PICK])
def test_first_attach_on_200_threads_100_busy_succeeds(name: str, python: str) -> None:
    """Every GIL wait of the agent's start queues behind 100 busy threads: the client waits for it
    as long as --timeout allows (a fixed 2 s handshake failed one such attach in two)."""
    target = start_target(python, "service_target.py", "threadsbusy", "200")
    try:
        result = cli(target.pid, "module /x", "--timeout", "120", timeout=180)
        assert result.returncode == 0, result.stderr
        assert result.results[0] == {"path": "/x", "modules": []}
        again = cli(target.pid, "module /y", "--timeout", "120", timeout=180)  # the running agent, a session thread
        assert again.returncode == 0, again.stderr
        assert cli(target.pid, "detach", "--timeout", "120", timeout=180).returncode == 0
        assert target.healthy("threadsbusy", timeout=60), "target did not exit 0 on SIGUSR1 after detach"
    finally:
        target.stop()


@pytest.mark.parametrize("sends", [b"", b'{"type":"hello"'], ids=["nothing", "half a hello"])
def test_a_silent_client_does_not_keep_the_next_one_out(sends: bytes) -> None:
    """The listener serves a new client's handshake itself, each step for at most a second."""
    target = start_target(NEWEST, "service_target.py", "event")
    try:
        assert cli(target.pid, "module /x").returncode == 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
            silent.connect(agent_socket(target.pid))
            silent.sendall(sends)
            result = cli(target.pid, "module /y", "--timeout", "30", timeout=60)
            assert result.returncode == 0, result.stderr
            assert result.results[0]["path"] == "/y"
        assert cli(target.pid, "detach").returncode == 0
        assert target.healthy("event")
    finally:
        target.stop()


def test_a_repr_blocked_in_c_keeps_no_later_client_out() -> None:
    """A quick command (getglobal) whose capture calls a __repr__ that blocks in C for good: the
    session running it is stuck, the listener is not. A first version answered a client's first
    request on the listener's thread, and then no client could connect again, detach included."""
    target = start_target(NEWEST, "hang_repr_target.py")
    stuck = None
    try:
        assert cli(target.pid, "module /x").returncode == 0  # the agent is in
        argv = [sys.executable, "-m", "flight_profiler", str(target.pid), "--cmd", "getglobal __main__ OBJ -r"]
        stuck = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert target.proc.stdout is not None
        assert target.proc.stdout.readline() == "in repr\n"  # the session is in it, blocked
        result = cli(target.pid, "module /y", "--timeout", "20", timeout=60)
        assert result.returncode == 0, result.stderr
        detached = cli(target.pid, "detach", "--timeout", "20", timeout=60, json_output=False)
        assert detached.returncode == 0, detached.stderr
    finally:
        if stuck is not None:
            stuck.kill()
            stuck.wait()
        os.kill(target.pid, signal.SIGUSR1)  # lets the __repr__ return, so the agent's thread can end
        target.stop()
