"""The thread freezer (attach/injector/freeze.py): stop a live target's threads, let them all go again.

Real targets, real ptrace: every thread but the spared ones is in a tracing stop inside the block;
none is traced after it, on every way out (done, a thread that never leaves a range to avoid, a
thread already traced by someone else, the freezer's process SIGKILLed while the threads are
stopped); the target lives on and exits 0.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Iterator

import pytest

from flight_profiler.attach import procfs
from flight_profiler.attach.injector import freeze
from interpreters import find_interpreters
from support import RunningTarget, start_target, wait_until

PYTHON = find_interpreters()[0][1]
SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


def state(pid: int, tid: int) -> str:
    with open("/proc/%d/task/%d/stat" % (pid, tid)) as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def tracer(pid: int, tid: int) -> int:
    return procfs.thread_tracer(pid, tid) or 0


def untraced(pid: int) -> bool:
    return all(tracer(pid, tid) == 0 and state(pid, tid) != "t" for tid in procfs.thread_ids(pid))


def executable_ranges(pid: int) -> list[tuple[int, int]]:
    return [(entry.start, entry.end) for entry in procfs.read_maps(pid) if "x" in entry.perms]


@pytest.fixture
def churn() -> Iterator[RunningTarget]:
    running = start_target(PYTHON, "gil_churn_target.py")
    yield running
    running.stop()


def test_every_thread_but_the_spared_stops_and_then_runs_again(churn: RunningTarget) -> None:
    tids = procfs.thread_ids(churn.pid)
    spared = tids[-1]
    with freeze.frozen(churn.pid, lambda: {spared}, [], 5.0) as frozen:
        assert sorted(frozen.threads) == [tid for tid in tids if tid != spared]
        assert all(state(churn.pid, tid) == "t" for tid in tids if tid != spared)
        assert state(churn.pid, spared) != "t" and tracer(churn.pid, spared) == 0
        time.sleep(0.05)
    assert 0.05 <= frozen.seconds < 5.0  # how long they were held, said after they went again
    assert untraced(churn.pid)
    assert churn.healthy(), churn.why()


def test_a_thread_that_stays_inside_a_range_to_avoid_ends_in_a_clear_error(churn: RunningTarget) -> None:
    """Every pc is in some executable mapping: the freezer retries until its timeout, then lets all go."""
    avoid = executable_ranges(churn.pid)
    with pytest.raises(
        freeze.FreezeError, match=r"thread \d+ \([^,]*, in [^)]+\) stayed inside the code to rewrite"
    ), freeze.frozen(churn.pid, set, avoid, 0.3):
        pytest.fail("frozen with every thread inside a range to avoid")
    assert untraced(churn.pid)
    assert churn.healthy(), churn.why()


def switches(pid: int, tid: int) -> int:
    """The thread's context switches so far: a stopped thread makes none."""
    with open("/proc/%d/task/%d/status" % (pid, tid)) as fh:
        return sum(int(line.split()[1]) for line in fh if "ctxt_switches:" in line)


def test_a_nudged_thread_runs_on_alone_while_the_others_stay_stopped(churn: RunningTarget) -> None:
    """A thread stopped inside a range runs on by itself and is stopped again, the others held all along:
    with sixteen threads handing the GIL around through frida's hooks, stopping them all again at each
    try kept one inside frida's code for 2 s (test_gilstat's race test, 3.8, once in ~10 runs)."""
    tids = procfs.thread_ids(churn.pid)
    nudged, others = tids[1], [tid for tid in tids if tid != tids[1]]
    freezer = freeze._Freezer(churn.pid, set())
    try:
        freezer.seize_all(time.monotonic() + 5.0)
        assert sorted(freezer.wait_all(time.monotonic() + 5.0)) == tids
        before = {tid: switches(churn.pid, tid) for tid in tids}
        for _ in range(20):
            assert list(freezer.nudge([nudged], time.monotonic() + 5.0)) == [nudged]
            assert all(state(churn.pid, tid) == "t" for tid in tids)
        assert [switches(churn.pid, tid) - before[tid] for tid in others] == [0] * len(others)
        assert switches(churn.pid, nudged) - before[nudged] >= 20  # it ran (and stopped) each time
    finally:
        freezer.thaw()
    assert untraced(churn.pid)
    assert churn.healthy(), churn.why()


def test_threads_to_spare_are_asked_for_again_before_each_retry(churn: RunningTarget) -> None:
    """A thread the caller learns to spare only after the first try (frida starts its own threads
    as it needs them, and they wait inside frida's code) must not hold the freeze until the timeout."""
    tids = set(procfs.thread_ids(churn.pid))
    late = min(tids)  # the main thread: its pc, like every thread's, is in some executable mapping
    asked: list[set[int]] = []

    def spare() -> set[int]:
        asked.append(tids - {late} if not asked else set(tids))
        return asked[-1]

    with freeze.frozen(churn.pid, spare, executable_ranges(churn.pid), 5.0) as frozen:
        assert frozen.threads == {}  # the late one was spared on the retry: nothing left to stop
    assert len(asked) == 2
    assert untraced(churn.pid)
    assert churn.healthy(), churn.why()


def test_a_thread_traced_by_someone_else_fails_the_freeze_and_releases_the_rest(churn: RunningTarget) -> None:
    tids = procfs.thread_ids(churn.pid)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD % {"src": SRC, "tid": tids[-1]}], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        began = time.monotonic()
        with pytest.raises(OSError) as caught, freeze.frozen(churn.pid, set, [], 0.5):
            pytest.fail("froze a thread another tracer holds")
        assert caught.value.errno == errno.EPERM
        assert time.monotonic() - began >= 0.5  # waited for the other tracer to let go, then said so
        assert all(tracer(churn.pid, tid) == 0 for tid in tids[:-1])
    finally:
        holder.kill()
        holder.wait()
    assert wait_until(lambda: untraced(churn.pid), timeout=10)
    assert churn.healthy(), churn.why()


def test_the_freezer_sigkilled_while_threads_are_stopped_leaves_them_running(churn: RunningTarget) -> None:
    freezer = subprocess.Popen(
        [sys.executable, "-c", _FREEZE_AND_SLEEP % {"src": SRC, "pid": churn.pid}], stdout=subprocess.PIPE, text=True
    )
    try:
        assert freezer.stdout is not None and freezer.stdout.readline().strip() == "frozen"
        assert all(state(churn.pid, tid) == "t" for tid in procfs.thread_ids(churn.pid))
        freezer.send_signal(signal.SIGKILL)
        freezer.wait()
        assert wait_until(lambda: untraced(churn.pid), timeout=10)
        assert churn.healthy(), churn.why()
    finally:
        freezer.kill()
        freezer.wait()


_FREEZE_AND_SLEEP = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, %(src)r)
    from flight_profiler.attach.injector import freeze
    with freeze.frozen(%(pid)d, set, [], 5.0):
        print("frozen", flush=True)
        time.sleep(60)
    """
)

_HOLD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, %(src)r)
    from flight_profiler.attach.injector import sys as ptrace_sys
    ptrace_sys.seize(%(tid)d)
    print("holding", flush=True)
    time.sleep(60)
    """
)
