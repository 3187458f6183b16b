"""detach waits for the agent's goodbye as long as --timeout says, and never claims one it did not get.

Behind 100 busy threads each step of the agent's detach waits its turn for the GIL: the goodbye came
after 5-10 s, and the client, which waited a fixed 5 s, said "the agent and its hooks are gone"
while the agent was still removing them. A SIGSTOP after the connection stands in for those threads
here: nothing in the target runs until SIGCONT, whatever the host's load.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from flight_profiler.attach.attacher import AttachOptions
from flight_profiler.attach.paths import agent_socket
from flight_profiler.cli.main import run_once
from flight_profiler.cli.runner import Detached, Runner
from flight_profiler.mcp.executor import Collector
from interpreters import find_interpreters
from support import RunningTarget, agent_threads, cli, start_target, wait_until

pytestmark = pytest.mark.any_interpreter  # the client's wait; the agent's part is the detach every test runs

INTERPRETERS = find_interpreters()


@pytest.fixture(params=INTERPRETERS, ids=[name for name, _ in INTERPRETERS])
def target(request: pytest.FixtureRequest) -> RunningTarget:
    running = start_target(request.param[1], "service_target.py", "event")
    request.addfinalizer(running.stop)
    assert cli(running.pid, "module /x").returncode == 0  # the agent is in
    return running


def _connected(pid: int, timeout: float) -> tuple[Runner, Collector]:
    collector = Collector()
    runner = Runner(pid, collector, AttachOptions(timeout=timeout))
    assert runner.execute("module /y"), collector.errors  # connected to the agent before the target stops
    return runner, collector


def _gone(target: RunningTarget) -> None:
    assert wait_until(lambda: not os.path.exists(agent_socket(target.pid))), "the agent's socket is still there"
    assert wait_until(lambda: agent_threads(target.pid) == []), agent_threads(target.pid)
    assert target.healthy("event"), target.why()


def test_a_detach_not_confirmed_within_the_timeout_says_so_and_fails(target: RunningTarget) -> None:
    runner, collector = _connected(target.pid, 2.0)
    os.kill(target.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert run_once(runner, "detach") == 1
        waited = time.monotonic() - started
    finally:
        os.kill(target.pid, signal.SIGCONT)
    assert 2.0 <= waited < 10, waited
    assert collector.notes == [] and len(collector.errors) == 1, (collector.notes, collector.errors)
    assert collector.errors[0].startswith("pid %d did not confirm the detach within 2 s" % target.pid)
    assert "flight_profiler ps %d" % target.pid in collector.errors[0]
    _gone(target)  # the request was in the socket ahead of the close: the agent reads it once it runs


def test_a_detach_waits_for_a_late_goodbye_within_the_timeout(target: RunningTarget) -> None:
    """Confirmed after 6 s: beyond the fixed 5 s the client waited before."""
    runner, collector = _connected(target.pid, 30.0)
    os.kill(target.pid, signal.SIGSTOP)
    started = time.monotonic()  # before the timer starts: taken after, the wait measured 5.9987 s once
    resumed = threading.Timer(6.0, os.kill, (target.pid, signal.SIGCONT))
    resumed.start()
    try:
        with pytest.raises(Detached) as done:
            runner.execute("detach")
    finally:
        resumed.cancel()
        os.kill(target.pid, signal.SIGCONT)
    assert time.monotonic() - started >= 6.0  # the goodbye cannot come before the target runs again
    assert done.value.confirmed is True
    assert collector.errors == [], collector.errors
    assert collector.notes == ["detached: the agent and its hooks are gone from pid %d" % target.pid]
    _gone(target)
