"""What the commands read from outside (stack, thread, perf) say when py-spy fails: the attach's own
reason, not py-spy's "Failed to get process executable name. Check that the process is running.",
which it prints both for a process that has exited and for one whose maps the kernel keeps from us
(the second is tests/integration/test_arm.py's, with a real non-dumpable process of another user)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Iterator

import pytest

from flight_profiler.errors import TargetError
from flight_profiler.readers import pyspy


def _zombie(pid: int) -> bool:
    with open("/proc/%d/status" % pid) as fh:
        return "State:\tZ" in fh.read()


def test_a_process_that_exited_is_said_to_have_exited() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # not waited for: a zombie until the end
    try:
        deadline = time.monotonic() + 10
        while not _zombie(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(TargetError, match=r"pid %d has exited \(state Z" % child.pid):
            pyspy.dump(child.pid)
    finally:
        child.wait()


@pytest.fixture
def stopped() -> Iterator[int]:
    """A Python process stopped by job control (kill -STOP), running its sleep before."""
    import signal

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.3)  # running its sleep
        child.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while "State:\tT" not in _status(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_a_stopped_process_is_said_to_be_stopped(stopped: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """py-spy said "Failed to get stack traces" of a process stopped by job control. Asked after it
    failed, the process could read as running: when py-spy lets go of it, the kernel wakes it for an
    instant to stop it again (CI met that once). So it is asked before, and py-spy is not run at all."""
    monkeypatch.setattr(pyspy, "executable", lambda: "/nonexistent/py-spy")  # FileNotFoundError if run
    with pytest.raises(TargetError, match=r"pid %d is stopped \(job control\); resume it with: kill -CONT" % stopped):
        pyspy.dump(stopped)


def test_a_stopped_process_is_read_without_stopping_it(stopped: int) -> None:
    """--nonblocking reads memory only (gilstat, the attach's own look): a stopped process can be read."""
    threads = pyspy.dump(stopped, nonblocking=True)
    assert any(frame["name"] == "<module>" for thread in threads for frame in thread["frames"])


def _status(pid: int) -> str:
    with open("/proc/%d/status" % pid) as fh:
        return fh.read()
