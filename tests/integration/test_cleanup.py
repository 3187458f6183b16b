"""Everything the agent creates goes away: on detach, and when a client dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from flight_profiler.attach.paths import agent_socket
from interpreters import find_interpreters
from support import agent_threads, cli, fd_count, start_target, wait_until

INTERPRETERS = find_interpreters()
NEWEST = [INTERPRETERS[-1]]
PICK = [INTERPRETERS[0], INTERPRETERS[-1]]


def _fds(pid: int) -> list[str]:
    found = []
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            found.append("%s -> %s" % (name, os.readlink("/proc/%d/fd/%s" % (pid, name))))
        except OSError:
            pass
    return found


def _thread_count(pid: int) -> int:
    with open("/proc/%d/status" % pid) as fh:
        return int(next(line for line in fh if line.startswith("Threads:")).split()[1])


@pytest.mark.parametrize(("name", "python"), PICK, ids=[i for i, _ in PICK])
def test_detach_removes_threads_socket_and_fds(name: str, python: str) -> None:
    target = start_target(python, "service_target.py", "event")
    try:
        baseline = fd_count(target.pid)
        threads = _thread_count(target.pid)
        assert cli(target.pid, "module /x.py").returncode == 0
        sock = agent_socket(target.pid)
        assert os.path.exists(sock)
        assert oct(os.stat(sock).st_mode & 0o777) == oct(0o600)
        assert oct(os.stat(os.path.dirname(sock)).st_mode & 0o777) == oct(0o700)
        assert agent_threads(target.pid) == ["flight_profiler-agent"]
        assert cli(target.pid, "detach").returncode == 0
        assert wait_until(lambda: _thread_count(target.pid) == threads), "an agent thread outlived detach"
        assert not agent_threads(target.pid)
        assert not os.path.exists(sock)
        assert wait_until(lambda: fd_count(target.pid) == baseline), (baseline, _fds(target.pid))
        again = cli(
            target.pid, "console -c \"import sys; sorted(m for m in sys.modules if 'flight_profiler' in m)[:1]\""
        )
        assert again.results[0]["value"] == "['_flight_profiler']"  # a fresh agent after re-injection
        cli(target.pid, "detach")
        assert target.healthy()
    finally:
        target.stop()


@pytest.mark.parametrize(("name", "python"), NEWEST, ids=[i for i, _ in NEWEST])
def test_killed_client_session_ends(name: str, python: str) -> None:
    target = start_target(python, "service_target.py", "event")
    try:
        assert cli(target.pid, "module /x.py").returncode == 0
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time\n"
                "from flight_profiler.attach.connection import AgentConnection\n"
                "c = AgentConnection.open(sys.argv[1]); print('connected', flush=True); time.sleep(60)\n",
                agent_socket(target.pid),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "connected"
        # the listener answers a client's first request itself and starts the session's thread after it,
        # or after a second without one (this client sends none)
        assert wait_until(lambda: "flight_profiler-session" in agent_threads(target.pid)), agent_threads(target.pid)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        # The session's read has no timeout (agent/session.py): only the end of its socket ends it, so
        # its going away proves the kill was noticed. No clock in the assertion: py-spy's look at the
        # target alone took over a second on a loaded machine.
        assert wait_until(lambda: "flight_profiler-session" not in agent_threads(target.pid), timeout=60)
        cli(target.pid, "detach")
    finally:
        target.stop()


def test_detach_without_agent_injects_nothing() -> None:
    target = start_target(INTERPRETERS[-1][1], "service_target.py", "event")
    try:
        result = cli(target.pid, "detach", json_output=False)
        assert result.returncode == 0 and "nothing to remove" in result.stderr
        assert not os.path.exists(agent_socket(target.pid))
        assert agent_threads(target.pid) == []
    finally:
        target.stop()
