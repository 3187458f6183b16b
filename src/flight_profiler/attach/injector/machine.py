"""The injector's phases, the transitions between them, and what undoes each one.

An injection is two short ptrace *stages*, each: seize the thread, interrupt it,
save its state, write a sigframe below its red zone (registers untouched), set its
registers (the only switch), detach. After the switch the thread runs our code and
returns to its saved state by itself (``rt_sigreturn``), so every phase is safe to
end in, by us (``RECOVERY``) or by the kernel when we die (``ON_CLIENT_DEATH``).

  MAP stage: a raw ``mmap`` of an r-x page at a free address (MAP_FIXED_NOREPLACE).
  RUN stage: the trampoline in that page (gilstate or pending path); the page is
             unmapped by the trampoline itself (gilstate) or by the queued call.
  UNMAP:     recovery only - the RUN stage's stop re-used to unmap the page instead.

Test-only hooks (environment of the *client*; never set them in production):
  FLIGHT_PROFILER_TEST_PAUSE_AT=PHASE[,PHASE]  the client SIGSTOPs itself on entering
      PHASE, so a test can SIGKILL it exactly there (or SIGCONT it); PREPARE: once
      the injection is planned, before the target is touched;
  FLIGHT_PROFILER_TEST_FAIL_AT=PHASE           entering PHASE raises, which drives
      that phase's recovery path;
  FLIGHT_PROFILER_TEST_PHASE_LOG=FILE          appends "PHASE <monotonic>" per phase
      (the kill-sweep bench classifies where its kills landed).
"""

from __future__ import annotations

import enum
import os
import signal
import threading
import time

from flight_profiler.errors import InjectionError

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for mypy only: typing costs the first attach's start-up ~3 ms
    from typing import Callable, Dict, FrozenSet, List, Optional

PAUSE_ENV = "FLIGHT_PROFILER_TEST_PAUSE_AT"
FAIL_ENV = "FLIGHT_PROFILER_TEST_FAIL_AT"
LOG_ENV = "FLIGHT_PROFILER_TEST_PHASE_LOG"


class Phase(enum.Enum):
    PREPARE = "prepare"  # reading /proc and ELF files; the target is untouched
    MAP_SEIZED = "map-seized"  # PTRACE_SEIZE + PTRACE_INTERRUPT sent; waiting for the stop
    MAP_STOPPED = "map-stopped"  # in interrupt-stop, state saved; nothing changed
    MAP_WRITTEN = "map-written"  # sigframe written below the red zone; registers untouched
    MAP_ARMED = "map-armed"  # registers set: the thread will mmap, then sigreturn by itself
    MAP_WAIT = "map-wait"  # detached; waiting for the page to appear in /proc/pid/maps
    RUN_SEIZED = "run-seized"
    RUN_STOPPED = "run-stopped"
    RUN_WRITTEN = "run-written"  # page code + source and the sigframe written; registers untouched
    RUN_ARMED = "run-armed"  # registers set: the trampoline runs and sigreturns by itself
    RUN_WAIT = "run-wait"  # detached; waiting for the trampoline's progress slot
    UNMAP_WRITTEN = "unmap-written"  # recovery: munmap sigframe written in the RUN stage's stop
    UNMAP_ARMED = "unmap-armed"  # recovery: registers set to munmap, then sigreturn
    DONE = "done"
    FAILED = "failed"


P = Phase

TRANSITIONS: Dict[Phase, FrozenSet[Phase]] = {
    P.PREPARE: frozenset({P.MAP_SEIZED, P.FAILED}),
    P.MAP_SEIZED: frozenset({P.MAP_STOPPED, P.FAILED}),
    P.MAP_STOPPED: frozenset({P.MAP_WRITTEN, P.FAILED}),
    P.MAP_WRITTEN: frozenset({P.MAP_ARMED, P.FAILED}),
    P.MAP_ARMED: frozenset({P.MAP_WAIT, P.FAILED}),
    P.MAP_WAIT: frozenset({P.RUN_SEIZED, P.FAILED}),
    P.RUN_SEIZED: frozenset({P.RUN_STOPPED, P.UNMAP_WRITTEN, P.FAILED}),
    P.RUN_STOPPED: frozenset({P.RUN_WRITTEN, P.UNMAP_WRITTEN, P.FAILED}),
    P.RUN_WRITTEN: frozenset({P.RUN_ARMED, P.UNMAP_WRITTEN, P.FAILED}),
    P.RUN_ARMED: frozenset({P.RUN_WAIT, P.FAILED}),
    P.RUN_WAIT: frozenset({P.DONE, P.FAILED}),
    P.UNMAP_WRITTEN: frozenset({P.UNMAP_ARMED, P.FAILED}),
    P.UNMAP_ARMED: frozenset({P.FAILED}),
    P.DONE: frozenset(),
    P.FAILED: frozenset(),
}

# What the session does when an error (or a cancel) ends the injection in a phase.
RECOVERY: Dict[Phase, str] = {
    P.PREPARE: "nothing to undo",
    P.MAP_SEIZED: "detach if the stop came; otherwise the tracer thread exits and the kernel drops the seize",
    P.MAP_STOPPED: "detach: registers untouched, the kernel restarts the interrupted syscall",
    P.MAP_WRITTEN: "detach: registers untouched (the bytes below the red zone are dead stack)",
    P.MAP_ARMED: "detach: the thread maps the page and sigreturns by itself; then unmap it",
    P.MAP_WAIT: "nothing attached; a page that appears later is unmapped by the UNMAP recovery",
    P.RUN_SEIZED: "wait for the stop (bounded), then arm the munmap instead (UNMAP_WRITTEN)",
    P.RUN_STOPPED: "arm the munmap instead of the trampoline (UNMAP_WRITTEN)",
    P.RUN_WRITTEN: "arm the munmap instead of the trampoline (UNMAP_WRITTEN)",
    P.RUN_ARMED: "detach: the trampoline runs, unmaps its page and sigreturns by itself",
    P.RUN_WAIT: "nothing: the trampoline finishes by itself (the bootstrap's deadline bounds its effect)",
    P.UNMAP_WRITTEN: "detach: registers untouched; the page stays mapped (one page, stated)",
    P.UNMAP_ARMED: "detach: the thread unmaps the page and sigreturns by itself",
    P.DONE: "nothing",
    P.FAILED: "nothing",
}

# What happens to the target if the client dies (SIGKILL included) in a phase.
ON_CLIENT_DEATH: Dict[Phase, str] = {
    P.PREPARE: "nothing was touched",
    P.MAP_SEIZED: "the kernel detaches and drops the pending interrupt",
    P.MAP_STOPPED: "the kernel detaches and resumes the thread; its syscall restarts as after any stop",
    P.MAP_WRITTEN: "as MAP_STOPPED; the frame below the red zone is dead stack",
    P.MAP_ARMED: "the thread runs mmap + rt_sigreturn and resumes; one r-x page may stay mapped",
    P.MAP_WAIT: "as MAP_ARMED",
    P.RUN_SEIZED: "the kernel detaches; the page stays mapped (one page)",
    P.RUN_STOPPED: "as RUN_SEIZED",
    P.RUN_WRITTEN: "as RUN_SEIZED",
    P.RUN_ARMED: "the trampoline runs, unmaps its page and sigreturns (pending: the queued call unmaps it)",
    P.RUN_WAIT: "as RUN_ARMED",
    P.UNMAP_WRITTEN: "the kernel detaches and resumes the thread; the page stays mapped",
    P.UNMAP_ARMED: "the thread unmaps the page and sigreturns",
    P.DONE: "nothing left",
    P.FAILED: "nothing left but what RECOVERY states",
}


def _names(env: str) -> FrozenSet[str]:
    value = os.environ.get(env, "")
    return frozenset(part.strip().upper().replace("-", "_") for part in value.split(",") if part.strip())


class Machine:
    """Tracks the current phase, refuses undeclared transitions, runs the test hooks."""

    def __init__(self, on_enter: Optional[Callable[[Phase], None]] = None) -> None:
        self.phase = Phase.PREPARE
        self.history: List[Phase] = [Phase.PREPARE]
        self._on_enter = on_enter
        self._pause = _names(PAUSE_ENV)
        self._fail = _names(FAIL_ENV)
        self._log = os.environ.get(LOG_ENV, "")
        if Phase.PREPARE.name in self._pause:  # the target is untouched yet: a test acts on it meanwhile
            signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)

    def enter(self, phase: Phase) -> None:
        if phase not in TRANSITIONS[self.phase]:
            raise AssertionError(f"injector: no transition {self.phase.name} -> {phase.name}")
        self.phase = phase
        self.history.append(phase)
        if self._on_enter is not None:
            self._on_enter(phase)
        self._hooks(phase)

    def _hooks(self, phase: Phase) -> None:
        if self._log:
            fd = os.open(self._log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, f"{phase.name} {time.monotonic():.6f}\n".encode())
            finally:
                os.close(fd)
        if phase.name in self._pause:
            # Sent to this very thread, so it is the first to stop (a process-directed
            # SIGSTOP may be taken by another thread first while this one runs on).
            signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
        if phase.name in self._fail and phase not in (Phase.DONE, Phase.FAILED):
            raise InjectionError(f"test hook: failing on entering {phase.name}")
