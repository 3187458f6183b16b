"""Stop a process's threads for a moment, so that code they may run can be rewritten under them.

Why: a hook library that writes a jump over a function's first bytes while other threads run
the process (frida does, on Linux, when the pages can be made writable and executable) races
every thread that is inside those bytes or fetching them: such a thread runs half an old and
half a new instruction and dies of SIGSEGV or SIGILL. The cure is old (debuggers and kernel
live patching do it): stop every thread that may run the code, check that none of them is
stopped inside the bytes to be written, write, let them go.

How: PTRACE_SEIZE and PTRACE_INTERRUPT each thread (no options: no EXITKILL, our death must
never kill the target), wait for its interrupt-stop, read its program counter; one inside a
range to avoid means all go again and we try a little later. Threads the caller names are
spared: the threads that write the code must keep running. Threads started while we freeze
are frozen too (the task list is read until it stops growing), so a thread we do not know
is never left running.

If our process dies while threads are frozen, the kernel detaches them and they run on
(a seized thread in an interrupt-stop is woken at its tracer's exit): the target is left as it
was, minus the moment.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time

from ...errors import TargetError
from .. import procfs
from . import arch as _arch
from . import sys as _sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for mypy only: typing costs the first attach's start-up ~3 ms
    from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

RETRY_PAUSE = 0.002  # seconds between two tries when a thread stopped inside a range to avoid
TRACED_PAUSE = 0.01  # seconds between two tries while another tracer holds a thread
STOP_WAIT = 0.5  # seconds a thread gets to reach its stop, whatever is left of the timeout
THAW_WAIT = 1.0  # seconds to wait, when letting go, for a thread interrupted but not yet seen stopped
NUDGES = 20  # times a thread stopped inside a range may run on alone (the others held) before all go again
NUDGE_RUN = 0.0005  # seconds it runs each time


class FreezeError(OSError):
    """The threads could not all be stopped outside the ranges to avoid in time."""


def _tasks(pid: int) -> Set[int]:
    try:
        return set(procfs.thread_ids(pid))
    except TargetError:  # it exited: nothing left to stop
        return set()


class _Freezer:
    def __init__(self, pid: int, spare: Set[int]) -> None:
        self.pid = pid
        self.spare = spare
        self.seized: List[int] = []
        self.stopped: Set[int] = set()
        self.arch = _arch.current()
        self.paused = 0.0  # seconds some thread was held, over every try
        self.group_stopped: Set[int] = set()  # stopped by a signal (SIGSTOP...), not by us: never resumed alone
        self._since: Optional[float] = None

    def seize_all(self, deadline: float) -> None:
        """Seize and interrupt every thread not spared, until the task list stops growing (bounded:
        threads we have not reached yet can start more)."""
        while True:
            fresh = sorted(_tasks(self.pid) - self.spare - set(self.seized))
            if not fresh:
                return
            if time.monotonic() >= deadline:
                raise FreezeError(
                    errno.ETIMEDOUT, "pid %d kept starting threads faster than they could be stopped" % self.pid
                )
            for tid in fresh:
                try:
                    _sys.seize(tid)
                    if self._since is None:
                        self._since = time.monotonic()
                except OSError as exc:
                    if exc.errno == errno.ESRCH:  # it exited since the listing
                        continue
                    raise
                self.seized.append(tid)
                _sys.interrupt(tid)

    def wait_all(self, deadline: float, tids: Optional[List[int]] = None) -> Dict[int, Tuple[int, int]]:
        """Every seized thread's (or ``tids``') program counter and stack pointer once it is in its
        interrupt-stop; those that exited are left out (and no longer seized)."""
        registers: Dict[int, Tuple[int, int]] = {}
        for tid in list(self.seized) if tids is None else tids:
            if not self._wait_stopped(tid, deadline):
                self.seized.remove(tid)
                continue
            self.stopped.add(tid)
            registers[tid] = self.arch.pc_sp(tid)
        return registers

    def _wait_stopped(self, tid: int, deadline: float) -> bool:
        """False when the thread exited; signals that come first are delivered at once."""
        while True:
            try:
                status = _sys.wait_stop(tid, deadline)
            except _sys.Gone:
                return False
            except _sys.Timeout:
                raise FreezeError(errno.ETIMEDOUT, "thread %d did not stop (uninterruptible sleep?)" % tid) from None
            sig, event = (status >> 8) & 0xFF, status >> 16
            if event == _sys.PTRACE_EVENT_STOP:
                if sig != signal.SIGTRAP:  # a group stop (PTRACE_CONT would end it: see nudge)
                    self.group_stopped.add(tid)
                return True  # our interrupt, or a group stop: stopped either way
            # a signal-delivery stop: deliver it; the interrupt stays pending and stops it after
            _sys.cont(tid, sig if event == 0 else 0)
            if sig == signal.SIGKILL:
                return False

    def nudge(self, tids: List[int], deadline: float) -> Dict[int, Tuple[int, int]]:
        """Let ``tids`` run for NUDGE_RUN with every other thread still stopped, stop them again; their
        registers (those that exited are left out).

        A thread caught inside frida's code is usually a few instructions from leaving it; with the
        rest held it leaves (or blocks outside) at once, where letting everything go and stopping it
        all again samples a fresh set of threads, any of which may be inside (16 threads handing
        the GIL around through the hooks kept one inside at every try for 2 s, once in ~10 runs).
        """
        running = []
        for tid in tids:
            if tid in self.group_stopped:
                continue
            try:
                _sys.cont(tid, 0)
            except OSError:  # killed while stopped (ESRCH): nothing to resume or to wait for
                self.seized.remove(tid)
                self.stopped.discard(tid)
                continue
            self.stopped.discard(tid)
            running.append(tid)
        time.sleep(NUDGE_RUN)
        for tid in running:
            try:
                _sys.interrupt(tid)
            except OSError:  # exited meanwhile: the wait says so
                pass
        return self.wait_all(deadline, running)

    def thaw(self) -> None:
        """Let every seized thread go. ptrace detaches only a stopped tracee, and an interrupted
        thread stops in the end even when we no longer wait for it: so one not seen stopped yet is
        waited for first (briefly: past that, our process's exit is what lets it go)."""
        for tid in self.seized:
            try:
                if tid not in self.stopped and not self._wait_stopped(tid, time.monotonic() + THAW_WAIT):
                    continue  # it exited
                _sys.detach(tid)
            except OSError:  # exited meanwhile (ESRCH), or still not stopped: nothing more we can do
                pass
        self.seized = []
        self.stopped = set()
        self.group_stopped = set()
        if self._since is not None:
            self.paused += time.monotonic() - self._since
            self._since = None


def _inside(registers: Dict[int, Tuple[int, int]], avoid: Sequence[Tuple[int, int]]) -> List[int]:
    return [tid for tid, (pc, _) in registers.items() if any(start <= pc < end for start, end in avoid)]


def _which(pid: int, tid: int, registers: Dict[int, Tuple[int, int]]) -> str:
    """``thread TID (NAME, in FILE)``: what the next failure report needs to say whose thread it was
    (its name and mapping are the target's words: the caller's output escapes them)."""
    pc = registers[tid][0]
    try:
        where = next((e.path or "anonymous memory" for e in procfs.read_maps(pid) if e.start <= pc < e.end), "?")
        return "thread %d (%s, in %s)" % (tid, procfs.thread_name(pid, tid), os.path.basename(where))
    except (OSError, TargetError):  # it exited meanwhile
        return "thread %d" % tid


class Frozen:
    """The threads stopped: tid -> (program counter, stack pointer); once let go, how long they were held."""

    def __init__(self, threads: Dict[int, Tuple[int, int]]) -> None:
        self.threads = threads
        self.seconds = 0.0  # from each try's first stop to its last thread let go, summed


@contextlib.contextmanager
def frozen(
    pid: int,
    spare: Callable[[], Set[int]],
    avoid: Sequence[Tuple[int, int]],
    timeout: float,
) -> Iterator[Frozen]:
    """Every thread of ``pid`` but ``spare()`` stopped, none with its pc in ``avoid``; yields them.

    ``avoid`` holds [start, end) ranges. ``spare()`` is asked again before every retry, with
    every thread running: the threads to spare may start while we wait (frida starts its own
    threads as it needs them, and one of them, blocked inside frida's code, would otherwise be
    "inside" until the timeout). Raises FreezeError when that cannot be had within
    ``timeout`` seconds (a thread that stays inside a range, or one that does not stop), and
    OSError when the threads cannot be traced (permissions, another tracer) by then.

    A thread traced by someone else is waited for, not given up on: a hook library's injector
    may still be in a remote call on a thread just after it said it attached (frida's is), and
    failing then could end our process, and its helper with it, in the middle of that call.
    """
    deadline = time.monotonic() + timeout
    freezer = _Freezer(pid, spare())
    try:
        while True:
            try:
                freezer.seize_all(max(deadline, time.monotonic() + STOP_WAIT))
            except OSError as exc:
                freezer.thaw()
                if exc.errno != errno.EPERM or time.monotonic() >= deadline:
                    raise
                time.sleep(TRACED_PAUSE)
                continue
            registers = freezer.wait_all(max(deadline, time.monotonic() + STOP_WAIT))  # a late try still may stop
            caught = _inside(registers, avoid)
            nudged = False
            for _ in range(NUDGES):
                if not caught or time.monotonic() >= deadline:
                    break
                for tid in caught:
                    registers.pop(tid)
                registers.update(freezer.nudge(caught, max(deadline, time.monotonic() + STOP_WAIT)))
                caught, nudged = _inside(registers, avoid), True
            if not caught and not (nudged and _tasks(pid) - freezer.spare - set(freezer.seized)):
                break  # (a thread a nudged one started is running: all go again, and the next try stops it)
            freezer.thaw()
            if time.monotonic() >= deadline:
                who = _which(pid, caught[0], registers) if caught else "a thread started meanwhile"
                raise FreezeError(errno.ETIMEDOUT, "%s stayed inside the code to rewrite for %.1f s" % (who, timeout))
            time.sleep(RETRY_PAUSE)
            freezer.spare = spare()
        held = Frozen(registers)
        yield held
    finally:
        freezer.thaw()
    held.seconds = freezer.paused
