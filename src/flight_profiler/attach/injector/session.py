"""One injection: the MAP and RUN stages driven through the phases of ``machine``.

The ptrace work runs on a private tracer thread (the kernel accepts ptrace requests
only from the thread that attached, and a thread that exits is detached from its
tracees by the kernel - our way out when a thread never stops). The calling thread
defers SIGINT/SIGTERM/SIGHUP/SIGQUIT while the tracer thread holds the target, then
waits for the trampoline's progress without being attached to anything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

from flight_profiler.attach import procfs
from flight_profiler.errors import AttachError, FlightProfilerError, InjectionError, TargetError

from . import sys as _sys
from .arch import Arch, Frame, PythonCalls
from .arch import current as current_arch
from .machine import Machine, Phase
from .symbols import Gadgets, PythonApi, find_gadgets, find_mapping, find_python_api, pick_page_address

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for mypy only: typing costs the first attach's start-up ~3 ms
    from typing import Any, Callable, ContextManager, Dict, Iterator, List, NamedTuple, Optional, Sequence
else:
    from flight_profiler.named import NamedTuple

MODES = ("auto", "gilstate", "pending")

_PROT_RX = 0x1 | 0x4
_MAP_PRIVATE_ANON_NOREPLACE = 0x02 | 0x20 | 0x100000  # MAP_FIXED_NOREPLACE: never clobber a mapping
_REPARK_WAIT = 0.5  # how long the MAP stage waits for a parked thread to re-enter its syscall
_STOP_GRACE = 1.0  # recovery: extra wait for a stop that was requested before the error
_RUN_STACK = 128 * 1024  # C stack PyGILState_Ensure + PyRun_SimpleString may use below the frame
_DEFERRED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class InjectionReport(NamedTuple):
    method: str  # "pending" or "gilstate"
    tid: int
    stopped_ms: float  # how long the thread was stopped (both stages together)
    result: int  # PyRun_SimpleString's result (gilstate); 0 once queued (pending)


class Plan(NamedTuple):
    pid: int
    tid: int
    mode: str
    source: bytes  # NUL-free, without the terminating NUL
    api: PythonApi
    gadgets: Gadgets
    page: int
    length: int
    maps: Sequence[procfs.MapEntry]  # read before stopping anything: stacks only grow meanwhile


def wrap_bootstrap(body: str) -> str:
    """Make ``body`` safe to hand to PyRun_SimpleString in a target.

    PyRun_SimpleString runs in __main__'s globals and returns -1 on an exception; a
    pending call returning -1 makes the eval loop raise SystemError in whatever the
    main thread was doing (target dies), and SystemExit would exit the target. So the
    body runs in its own globals, compiled inside the try (a SyntaxError is contained
    too), and nothing escapes. The outer statement binds no names in __main__.
    """
    return (
        "try:\n"
        f"    exec(compile({body!r}, '<flight_profiler>', 'exec'), {{'__name__': '_fp_boot'}})\n"
        "except BaseException:\n"
        "    pass\n"
    )


class _Cancelled(InjectionError):
    pass


class _NotOurPage(InjectionError):
    """Something else sits at the page's address: never unmap it."""


class Session:
    def __init__(
        self,
        plan: Plan,
        arch: Arch,
        deadline: float,
        stopping: Callable[[], ContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self.plan = plan
        self.stopping = stopping
        self.arch = arch
        self.deadline = deadline
        self.machine = Machine()
        self.cancel = threading.Event()  # a deferred signal arrived: stop at the next safe point
        self.error: Optional[BaseException] = None
        self.method = ""
        self.frame: Optional[Frame] = None
        self.magic = b""
        self.attached = False
        self.stopped = False
        self.stop_t0 = 0.0
        self.stopped_s = 0.0
        self.parked_syscall = False  # the MAP stage found the thread in a safe syscall
        self.page_seen = False
        self.run_snap: Any = None  # the RUN stage's saved state (recovery re-uses it)

    # ------------------------------------------------------------- tracer thread

    def trace(self) -> None:
        """Both stages; on any error, the recovery of the phase we were in."""
        try:
            self._map_stage()
            self._run_stage(unmap_only=False)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, never lost
            self.error = exc
            self._recover()

    def _map_stage(self) -> None:
        plan = self.plan
        self._checkpoint()
        self._seize(Phase.MAP_SEIZED)
        snap = self._snapshot()
        self.machine.enter(Phase.MAP_STOPPED)
        self.parked_syscall = self._safe(snap)
        if plan.mode == "gilstate" and not self.parked_syscall:
            raise self._refusal(snap)
        frame = self._write_frame(snap)
        self.machine.enter(Phase.MAP_WRITTEN)
        args = [plan.page, plan.length, _PROT_RX, _MAP_PRIVATE_ANON_NOREPLACE, -1, 0]
        regs = self.arch.syscall_regs(snap, frame, plan.gadgets.syscall_ret, self.arch.NR_MMAP, args)
        self.arch.set_regs(plan.tid, regs)  # the switch: from here the thread restores itself
        self.machine.enter(Phase.MAP_ARMED)
        self._detach()
        self.machine.enter(Phase.MAP_WAIT)
        self._await_page(self.deadline)
        if self.parked_syscall:
            self._await_reparked()
        self._checkpoint()

    def _run_stage(self, unmap_only: bool) -> None:
        plan = self.plan
        self._seize(Phase.RUN_SEIZED)
        snap = self._snapshot()
        if unmap_only:
            self._arm_unmap(snap)
            return
        self.run_snap = snap
        self.machine.enter(Phase.RUN_STOPPED)
        method = self._choose(snap)
        frame = self.arch.build_frame(snap, plan.gadgets.sigreturn, self._new_magic())
        calls = PythonCalls(
            plan.api.gilstate_ensure, plan.api.run_simple_string, plan.api.gilstate_release, plan.api.add_pending_call
        )
        blob, entries = self.arch.build_page(
            plan.page, plan.length, plan.source, calls, frame, plan.gadgets.syscall_ret, plan.gadgets.sigreturn
        )
        _sys.write_forced(plan.pid, plan.tid, plan.page, blob)
        if _sys.try_read(plan.pid, plan.page, len(blob)) != blob:
            raise InjectionError(f"pid {plan.pid}: could not write the injection page")
        self._write(frame, room=_RUN_STACK)
        self.frame = frame
        self.machine.enter(Phase.RUN_WRITTEN)
        self.arch.set_regs(plan.tid, self.arch.trampoline_regs(snap, frame, entries[method]))
        self.method = method
        self.machine.enter(Phase.RUN_ARMED)
        self._detach()

    def _arm_unmap(self, snap: Any) -> None:
        """Recovery: the page is ours and unused; have the thread unmap it and sigreturn."""
        plan = self.plan
        frame = self._write_frame(snap)
        self.machine.enter(Phase.UNMAP_WRITTEN)
        regs = self.arch.syscall_regs(
            snap, frame, plan.gadgets.syscall_ret, self.arch.NR_MUNMAP, [plan.page, plan.length]
        )
        self.arch.set_regs(plan.tid, regs)
        self.machine.enter(Phase.UNMAP_ARMED)
        self._detach()

    # ---------------------------------------------------------------- recovery

    def _recover(self) -> None:
        phase = self.machine.phase
        try:
            if phase in (Phase.MAP_ARMED, Phase.MAP_WAIT):
                self._recover_mapped(phase)
            elif phase in (Phase.RUN_SEIZED, Phase.RUN_STOPPED, Phase.RUN_WRITTEN):
                self._recover_run(phase)
            elif self.attached and self.stopped:
                self._detach()  # registers untouched or armed: either way the thread is whole
            elif self.attached:
                self._late_stop_detach()
        except BaseException:  # noqa: BLE001, S110 - the first error is the one to report
            pass
        finally:
            if self.attached and self.stopped:
                with contextlib.suppress(OSError):
                    self._detach()
            # attached but never stopped: this thread's exit makes the kernel detach
            if self.machine.phase not in (Phase.FAILED, Phase.DONE):
                self.machine.enter(Phase.FAILED)

    def _recover_mapped(self, phase: Phase) -> None:
        if self.attached and self.stopped:
            self._detach()
        if isinstance(self.error, (_NotOurPage, TargetError)):
            return
        if phase is Phase.MAP_ARMED:
            self.machine.enter(Phase.MAP_WAIT)
        if not self.page_seen:
            self._await_page(max(self.deadline, time.monotonic()) + _STOP_GRACE)
        self._run_stage(unmap_only=True)

    def _recover_run(self, phase: Phase) -> None:
        if isinstance(self.error, TargetError) and not self.stopped:
            return  # gone, or stopped by job control before we got it
        if self.run_snap is None:
            if not self.stopped:
                self._wait_interrupt_stop(max(self.deadline, time.monotonic()) + _STOP_GRACE)
            self.run_snap = self._snapshot()
        self._arm_unmap(self.run_snap)

    def _late_stop_detach(self) -> None:
        """A stop requested before the error may still come: detach from it if it does."""
        with contextlib.suppress(_sys.Timeout):
            self._wait_interrupt_stop(time.monotonic() + 0.05)
            self._detach()

    # ---------------------------------------------------------------- ptrace steps

    def _seize(self, phase: Phase) -> None:
        tid = self.plan.tid
        try:
            _sys.seize(tid)
        except OSError as exc:
            raise procfs.permission_error(self.plan.pid, "attach to", exc.errno or 0) from None
        self.attached = True
        _sys.interrupt(tid)
        self.machine.enter(phase)
        try:
            self._wait_interrupt_stop(self.deadline)
        except _sys.Timeout:
            raise InjectionError(
                f"pid {self.plan.pid}: thread {tid} did not stop within the timeout (uninterruptible sleep?)"
            ) from None

    def _wait_interrupt_stop(self, deadline: float) -> None:
        """Until our interrupt's event-stop; signals that come first are delivered at once.

        Holding a signal back to re-send it after the detach would lose it if we died
        meanwhile; delivering it now only means the thread may run a handler first.
        """
        plan = self.plan
        while True:
            try:
                status = _sys.wait_stop(plan.tid, deadline)
            except _sys.Gone as exc:
                self.attached = self.stopped = False
                raise TargetError(f"pid {plan.pid} exited during injection ({exc})") from None
            self.stopped = True
            sig, event = (status >> 8) & 0xFF, status >> 16
            if event == _sys.PTRACE_EVENT_STOP:
                if sig == signal.SIGTRAP:
                    self.stop_t0 = time.monotonic()
                    return
                raise TargetError(
                    f"pid {plan.pid} was stopped by job control (signal {sig}); resume it with: kill -CONT {plan.pid}"
                )
            _sys.cont(plan.tid, sig if event == 0 else 0)
            self.stopped = False

    def _snapshot(self) -> Any:
        return self.arch.snapshot(self.plan.tid)

    def _detach(self) -> None:
        _sys.detach(self.plan.tid)
        self.attached = self.stopped = False
        self.stopped_s += time.monotonic() - self.stop_t0

    def _new_magic(self) -> bytes:
        self.magic = os.urandom(8)
        return self.magic

    def _write_frame(self, snap: Any) -> Frame:
        frame = self.arch.build_frame(snap, self.plan.gadgets.sigreturn, self._new_magic())
        self._write(frame)
        return frame

    def _write(self, frame: Frame, room: int = 0) -> None:
        """Write a sigframe below the red zone, inside the thread's stack mapping.

        ``room``: stack the injected calls need below the frame; a thread stack has a
        guard page under it (overrunning it would kill the target), the main thread's
        [stack] grows on demand.
        """
        plan = self.plan
        stack = find_mapping(plan.maps, frame.addr)
        top = frame.addr + len(frame.blob)
        if (
            stack is None
            or "w" not in stack.perms
            or top > stack.end
            or (stack.path != "[stack]" and stack.start > frame.stack_top - room)
        ):
            raise InjectionError(
                f"pid {plan.pid}: thread {plan.tid} has too little stack below its stack pointer for the injection"
            )
        _sys.write_memory(plan.pid, plan.tid, frame.addr, frame.blob)
        if _sys.try_read(plan.pid, frame.addr, len(frame.blob)) != frame.blob:
            raise InjectionError(f"pid {plan.pid}: could not write the signal frame on thread {plan.tid}'s stack")

    # ---------------------------------------------------------------- waiting, unattached

    def _await_page(self, deadline: float) -> None:
        """The injected mmap ran when the page is readable; then check it is ours (exact r-x anon)."""
        plan = self.plan
        delay = 1e-4
        while _sys.try_read(plan.pid, plan.page, 8) is None:
            if not os.path.exists(f"/proc/{plan.pid}"):
                raise TargetError(f"pid {plan.pid} exited during injection")
            if time.monotonic() >= deadline:
                raise InjectionError(
                    f"pid {plan.pid}: the injected mmap did not map a page within the timeout "
                    "(thread not scheduled, or mmap refused)"
                )
            self._checkpoint()
            time.sleep(delay)
            delay = min(delay * 2, 0.005)
        entry = procfs.find_map(plan.pid, plan.page)
        if (
            entry is None
            or (entry.start, entry.end) != (plan.page, plan.page + plan.length)
            or not entry.perms.startswith("r-x")
            or entry.inode
            or entry.path
        ):
            raise _NotOurPage(f"pid {plan.pid}: the target mapped something else at {plan.page:#x} meanwhile")
        self.page_seen = True

    def _await_reparked(self) -> None:
        """Give a parked thread the moment it needs to sigreturn and re-enter its syscall."""
        end = min(self.deadline, time.monotonic() + _REPARK_WAIT)
        while time.monotonic() < end:
            state = procfs.read_thread_state(self.plan.pid, self.plan.tid)
            if state is None or procfs.is_safe_parked(state, self.plan.api.runtime_range):
                return
            time.sleep(0.0005)

    def _checkpoint(self) -> None:
        if self.cancel.is_set():
            raise _Cancelled("injection cancelled by a signal")

    # ---------------------------------------------------------------- policy

    def _safe(self, snap: Any) -> bool:
        return procfs.is_safe_syscall(snap.syscall, snap.syscall_arg0, [self.plan.api.runtime_range])

    def _choose(self, snap: Any) -> str:
        mode = self.plan.mode
        if mode == "pending":
            return "pending"
        if self._safe(snap):
            return "gilstate"
        if mode == "gilstate":
            raise self._refusal(snap)
        return "pending"

    def _refusal(self, snap: Any) -> InjectionError:
        nr = snap.syscall
        where = "running code" if nr is None else f"in syscall {nr}"
        if nr == procfs.SYS_FUTEX:
            where = "waiting for the GIL"
        return InjectionError(
            f"pid {self.plan.pid}: thread {self.plan.tid} is {where}, not parked in a safe blocking syscall; "
            "refusing to run Python there (use mode='pending' or another thread)"
        )

    # ---------------------------------------------------------------- caller thread

    def run(self) -> InjectionReport:
        tracer = threading.Thread(target=self.trace, name="flight-profiler-ptrace", daemon=True)
        with self.stopping(), deferred_signals(self.cancel.set):  # the tracer is the only part that stops the thread
            tracer.start()
            tracer.join()
        if self.error is not None:
            raise _as_flight_error(self.plan.pid, self.error)
        try:
            self.machine.enter(Phase.RUN_WAIT)
            result = self._await_trampoline()
        except BaseException:
            self.machine.enter(Phase.FAILED)
            raise
        self.machine.enter(Phase.DONE)
        return InjectionReport(self.method, self.plan.tid, self.stopped_s * 1000.0, result)

    def _await_trampoline(self) -> int:
        """Poll the progress slot: gilstate is done when its page is gone, pending once queued."""
        plan, arch = self.plan, self.arch
        assert self.frame is not None
        slot = self.frame.progress - 8
        delay = 1e-4
        state = result = 0
        while True:
            raw = _sys.try_read(plan.pid, slot, 16)
            if raw is not None and raw[:8] == self.magic:
                state, result = arch.read_progress(raw[8:])
            page_gone = _sys.try_read(plan.pid, plan.page, 8) is None
            if page_gone or (self.method == "pending" and state >= arch.STATE_ENTERED):
                return result if self.method == "gilstate" and state >= arch.STATE_DONE else 0
            if not os.path.exists(f"/proc/{plan.pid}"):
                raise TargetError(f"pid {plan.pid} exited while running the injected code")
            if time.monotonic() >= self.deadline:
                raise InjectionError(self._still_running(state))
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def _still_running(self, state: int) -> str:
        plan, arch = self.plan, self.arch
        head = f"pid {plan.pid}: thread {plan.tid}"
        if state == arch.STATE_ENTERED and self.method == "gilstate":
            what = "is waiting for the GIL in PyGILState_Ensure (another thread holds it)"
        elif state == arch.STATE_RUNNING:
            what = "is still running the injected code"
        elif state == 0:
            what = "has not started the injected code (not scheduled?)"
        else:
            what = "has not finished the injected code"
        return f"{head} {what} after the timeout; it finishes and restores itself without us (the target is not harmed)"


def _as_flight_error(pid: int, err: BaseException) -> BaseException:
    if isinstance(err, (FlightProfilerError, KeyboardInterrupt)):
        return err
    if isinstance(err, OSError):
        return AttachError(f"ptrace injection into pid {pid} failed: {err}")
    return InjectionError(f"ptrace injection into pid {pid} failed: {err!r}")


@contextlib.contextmanager
def deferred_signals(on_signal: Callable[[], None]) -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP/SIGQUIT while the target is held; re-raise them afterwards.

    Only the main thread can install handlers; elsewhere this does nothing (the phases
    are kill-safe anyway: deferring only spares an orphaned page and lets a cancel
    unwind through the recovery path). A handler installed from C (getsignal() is None)
    is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: List[int] = []

    def record(signum: int, _frame: Any) -> None:
        got.append(signum)
        on_signal()

    saved: Dict[int, Any] = {}
    try:
        for signum in _DEFERRED:
            previous = signal.getsignal(signum)
            if previous is not None:
                saved[signum] = previous
                signal.signal(signum, record)
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(got):
            signal.raise_signal(number)


def inject(
    pid: int,
    source: str,
    *,
    tid: Optional[int] = None,
    mode: str = "auto",
    timeout: float = 5.0,
    stopping: Callable[[], ContextManager[None]] = contextlib.nullcontext,
) -> InjectionReport:
    """Run ``source`` (Python code) inside process ``pid``; kill-safe at every instant.

    ``mode``:
      * ``"auto"``: if the thread is parked in a whitelisted blocking syscall (not a
        wait for the GIL), run the code right there under PyGILState_Ensure
        ("gilstate": the thread holds no interpreter or allocator lock at that
        boundary); otherwise queue it with Py_AddPendingCall ("pending": the main
        thread runs it at its next eval-loop safe point, so only once it runs bytecode).
      * ``"gilstate"``: as auto, but raise InjectionError instead of falling back.
      * ``"pending"``: always Py_AddPendingCall.

    ``stopping`` is held while the tracer has the thread (a group caps how many of its
    targets are stopped at once with it; the waits before and after run outside it).

    ``source`` should be exception-proof (see wrap_bootstrap). ``tid`` picks the thread
    to stop (default: the main thread); see procfs.thread_states/is_safe_parked.

    Returns once the code has run (gilstate) or is queued (pending). Every wait is
    bounded by ``timeout``; a trampoline still waiting for the GIL then finishes on
    its own (InjectionError says so). Whatever happens to this process meanwhile,
    the target thread returns to exactly where it was (see machine.ON_CLIENT_DEATH).
    The caller must not waitpid() the target concurrently (matters only if it is our child).
    """
    if mode not in MODES:
        raise ValueError("mode must be one of {}, not {!r}".format(", ".join(MODES), mode))
    arch = current_arch()  # refuses other machines before anything touches the target
    payload = source.encode("utf-8")
    if b"\0" in payload:
        raise ValueError("source must not contain NUL characters")
    deadline = time.monotonic() + timeout
    thread = pid if tid is None else tid
    procfs.check_attachable(pid, thread)
    if thread not in procfs.thread_ids(pid):
        raise TargetError(f"pid {pid} has no thread {thread}")
    try:
        thread_status = procfs.read_status_file(procfs.proc_path(pid, "task", str(thread), "status"))
    except OSError:
        raise TargetError(f"pid {pid} has no thread {thread}") from None
    if arch.shadow_stack_enabled(thread_status):
        raise InjectionError(
            f"pid {pid}: thread {thread} runs with a hardware shadow stack (CET); injecting there is not supported"
        )
    maps = procfs.read_maps(pid)
    api = find_python_api(pid, maps)
    gadgets = find_gadgets(pid, maps, arch.SYSCALL_RET, arch.SIGRETURN)
    length = arch.page_size_for(payload)
    plan = Plan(pid, thread, mode, payload, api, gadgets, pick_page_address(maps, length), length, maps)
    return Session(plan, arch, deadline, stopping).run()
