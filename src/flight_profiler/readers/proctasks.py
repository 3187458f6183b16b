"""Per-thread CPU time and kernel state of a process, read from /proc (client side).

Nothing here touches the target: every value comes from
``/proc/<pid>/task/<tid>/{stat,syscall,wchan}``. ``syscall`` needs ptrace access
(root or the target's user, which the client is anyway); without it the state is
derived from ``stat`` and ``wchan`` alone.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ..attach.procfs import GONE
from ..errors import TargetError

# x86-64 syscall numbers, grouped by what a thread parked in them is doing
SYS_FUTEX = 202
_SLEEP = {35: "nanosleep", 230: "clock_nanosleep"}
_IO = {
    0: "read",
    1: "write",
    7: "poll",
    17: "pread64",
    18: "pwrite64",
    19: "readv",
    20: "writev",
    23: "select",
    42: "connect",
    43: "accept",
    44: "sendto",
    45: "recvfrom",
    46: "sendmsg",
    47: "recvmsg",
    232: "epoll_wait",
    270: "pselect6",
    271: "ppoll",
    281: "epoll_pwait",
    288: "accept4",
    299: "recvmmsg",
    307: "sendmmsg",
    441: "epoll_pwait2",
}
_CHILD = {61: "wait4", 247: "waitid"}
RUNNING = -2  # /proc/.../syscall says "running"


class TaskSample(NamedTuple):
    tid: int
    comm: str  # the kernel's thread name (15 characters at most)
    state: str  # one letter: R running, S sleeping, D uninterruptible (disk), T stopped, Z zombie
    ticks: int  # utime + stime in clock ticks


class TaskState(NamedTuple):
    state: str  # running, waiting on a lock, in I/O, sleeping, waiting for a child, in C, stopped
    detail: str  # the syscall or kernel wait channel behind it


def ticks_per_second() -> int:
    return int(os.sysconf("SC_CLK_TCK"))


def sample(pid: int) -> dict[int, TaskSample]:
    """Every thread's CPU ticks and run state, now."""
    base = "/proc/%d/task" % pid
    try:
        tids = os.listdir(base)
    except GONE:
        raise TargetError("no process with pid %d (it is not running)" % pid) from None
    out: dict[int, TaskSample] = {}
    for name in tids:
        parsed = _stat(pid, int(name))
        if parsed is not None:
            out[parsed.tid] = parsed
    return out


def _stat(pid: int, tid: int) -> TaskSample | None:
    try:
        with open("/proc/%d/task/%d/stat" % (pid, tid), "rb") as fh:
            raw = fh.read().decode("utf-8", "replace")
    except OSError:
        return None  # the thread ended meanwhile
    # the name is in parentheses and may itself hold spaces and ')': split at the last one
    head, _, rest = raw.rpartition(")")
    comm = head.partition("(")[2]
    fields = rest.split()
    if len(fields) < 13:
        return None
    # after the name: state(0) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(11) stime(12)
    return TaskSample(tid, comm, fields[0], int(fields[11]) + int(fields[12]))


def cpu_percent(before: TaskSample | None, after: TaskSample, seconds: float, hz: int) -> float:
    """Share of one CPU the thread used between two samples (100 = one core busy all the time)."""
    if before is None or seconds <= 0:
        return 0.0
    return round(100.0 * (after.ticks - before.ticks) / hz / seconds, 1)


def task_state(pid: int, sampled: TaskSample) -> TaskState:
    """What the thread is doing right now, in words, from its kernel state and current syscall."""
    if sampled.state == "R":
        return TaskState("running", "")
    if sampled.state in ("T", "t"):
        return TaskState("stopped", "")
    if sampled.state == "Z":
        return TaskState("exited", "")
    nr = _syscall(pid, sampled.tid)
    if nr == RUNNING:
        return TaskState("running", "")  # it woke up between the two reads
    if sampled.state == "D":
        return TaskState("in I/O", _wchan(pid, sampled.tid) or "uninterruptible")
    if nr == SYS_FUTEX:
        return TaskState("waiting on a lock", "futex")
    if nr in _SLEEP:
        return TaskState("sleeping", _SLEEP[nr])
    if nr in _IO:
        return TaskState("in I/O", _IO[nr])
    if nr in _CHILD:
        return TaskState("waiting for a child", _CHILD[nr])
    if nr is not None:
        return TaskState("in C", "syscall %d" % nr)
    wchan = _wchan(pid, sampled.tid)
    if "futex" in wchan:
        return TaskState("waiting on a lock", wchan)
    return TaskState("in C", wchan)


def _syscall(pid: int, tid: int) -> int | None:
    """The number of the syscall the thread is blocked in; RUNNING; None when outside one or unreadable."""
    try:
        with open("/proc/%d/task/%d/syscall" % (pid, tid), "rb") as fh:
            words = fh.read().split()
    except OSError:
        return None
    if words[:1] == [b"running"]:
        return RUNNING
    if not words or words[0] == b"-1":
        return None
    try:
        return int(words[0])
    except ValueError:
        return None


def _wchan(pid: int, tid: int) -> str:
    try:
        with open("/proc/%d/task/%d/wchan" % (pid, tid), "rb") as fh:
            text = fh.read().decode("ascii", "replace").strip()
    except OSError:
        return ""
    return "" if text == "0" else text
