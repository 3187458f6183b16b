"""``readers.proctasks``: a thread's state in words from its kernel state, syscall and wait channel.

Real threads of real child processes for the states a test can produce (stopped, zombie, sleeping,
waiting on a lock or a child); the ``syscall``/``wchan`` readers stubbed only for the branches no
process can be made to show on demand (uninterruptible I/O, an unreadable ``syscall``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flight_profiler.errors import TargetError
from flight_profiler.readers import proctasks
from flight_profiler.readers.proctasks import TaskSample, TaskState


def _main_thread_state(pid: int, *wanted: str | TaskState, seconds: float = 30.0) -> TaskState:
    """The state of ``pid``'s main thread once the kernel says one of ``wanted`` (a state's name, or a
    state with its detail; a child starts slowly under load)."""
    deadline = time.monotonic() + seconds
    state = TaskState("", "")
    while time.monotonic() < deadline:
        sampled = proctasks.sample(pid)[pid]
        state = proctasks.task_state(pid, sampled)
        if state.state in wanted or state in wanted:
            return state
        time.sleep(0.05)
    return state


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(code: str) -> subprocess.Popen[bytes]:
        # a session of its own: the waiter's grandchild goes with it (a kill of the child alone left
        # the grandchild sleeping 10 minutes after the test)
        proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        procs.append(proc)
        return proc

    yield start  # type: ignore[misc]
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the group is gone already (a child that ended and was reaped)
        proc.wait()


def test_sleeping_waiting_on_a_child_and_stopped(child: Any) -> None:
    sleeper = child("import time; time.sleep(600)")
    # time.sleep: clock_nanosleep (3.11+), select on older interpreters; a child still starting may
    # be "in I/O" on a page it is reading in (folio_wait_bit_common under memory pressure): wait
    # until it is in its sleep
    sleeping = (
        TaskState("sleeping", "clock_nanosleep"),
        TaskState("sleeping", "nanosleep"),
        TaskState("in I/O", "select"),
        TaskState("in I/O", "pselect6"),
    )
    assert _main_thread_state(sleeper.pid, *sleeping) in sleeping
    waiter = child("import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(600)'])")
    assert _main_thread_state(waiter.pid, "waiting for a child").detail in ("wait4", "waitid")
    os.kill(sleeper.pid, signal.SIGSTOP)
    assert _main_thread_state(sleeper.pid, "stopped") == TaskState("stopped", "")
    os.kill(sleeper.pid, signal.SIGCONT)


def test_a_zombie_has_exited(child: Any) -> None:
    zombie = child("pass")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proctasks.sample(zombie.pid)[zombie.pid].state != "Z":
        time.sleep(0.05)
    assert proctasks.task_state(zombie.pid, proctasks.sample(zombie.pid)[zombie.pid]) == TaskState("exited", "")


def test_a_process_that_is_gone_is_a_clear_error(child: Any) -> None:
    gone = child("pass")
    gone.wait()
    with pytest.raises(TargetError, match="no process with pid %d" % gone.pid):
        proctasks.sample(gone.pid)


@pytest.mark.parametrize(
    ("state", "syscall", "wchan", "expected"),
    [
        ("S", proctasks.RUNNING, "", TaskState("running", "")),
        ("D", None, "io_schedule", TaskState("in I/O", "io_schedule")),
        ("D", None, "", TaskState("in I/O", "uninterruptible")),
        ("S", 0, "", TaskState("in I/O", "read")),
        ("S", 999, "", TaskState("in C", "syscall 999")),
        ("S", None, "futex_wait_queue", TaskState("waiting on a lock", "futex_wait_queue")),
        ("S", None, "do_epoll_wait", TaskState("in C", "do_epoll_wait")),
    ],
)
def test_states_from_syscall_and_wait_channel(
    monkeypatch: pytest.MonkeyPatch, state: str, syscall: int | None, wchan: str, expected: TaskState
) -> None:
    monkeypatch.setattr(proctasks, "_syscall", lambda pid, tid: syscall)
    monkeypatch.setattr(proctasks, "_wchan", lambda pid, tid: wchan)
    assert proctasks.task_state(1, TaskSample(1, "x", state, 0)) == expected


def test_readers_of_a_thread_that_is_gone() -> None:
    assert proctasks._stat(os.getpid(), 2**22 + 7) is None
    assert proctasks._syscall(os.getpid(), 2**22 + 7) is None
    assert proctasks._wchan(os.getpid(), 2**22 + 7) == ""
    assert proctasks._syscall(os.getpid(), os.getpid()) == 0  # us, in the read of that very file
