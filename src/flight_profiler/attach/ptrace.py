"""Pure-Python (ctypes) ptrace injector for CPython 3.8-3.14 on Linux x86-64.

``inject(pid, source)`` runs a Python source string inside a live, unmodified
interpreter. One thread (the main thread unless ``tid`` says otherwise) is stopped for
a few milliseconds; all other threads keep running. Where the code runs is decided
by a safe-point policy (see ``inject``): Python is never run at an arbitrary
instruction, because re-entering malloc/dict internals or glibc's condvar from an
interrupted thread crashes or deadlocks targets (measured, see the research notes).

Mechanics, in order: PTRACE_SEIZE + PTRACE_INTERRUPT the thread; save its registers
and its full extended (FPU/SSE/AVX/AMX) state; single-step an ``syscall`` instruction
found in libc to mmap a page (no malloc in the target); write the source there; call
C-API functions by pointing rip at them with a return address of 0, so the return
faults and stops the thread ("returned" trap); restore everything and detach with
signal 0, which makes the kernel restart an interrupted syscall exactly as after an
SA_RESTART signal handler.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import signal
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from flight_profiler.attach import elf, procfs
from flight_profiler.errors import (
    AttachError,
    FlightProfilerError,
    InjectionError,
    TargetError,
)

__all__ = [
    "InjectionReport",
    "PythonApi",
    "find_python_api",
    "inject",
    "wrap_bootstrap",
]

# ptrace requests and constants (x86-64 Linux)
_PTRACE_PEEKDATA = 2
_PTRACE_POKEDATA = 5
_PTRACE_CONT = 7
_PTRACE_SINGLESTEP = 9
_PTRACE_GETREGS = 12
_PTRACE_SETREGS = 13
_PTRACE_GETFPREGS = 14
_PTRACE_SETFPREGS = 15
_PTRACE_DETACH = 17
_PTRACE_GETREGSET = 0x4204
_PTRACE_SETREGSET = 0x4205
_PTRACE_SEIZE = 0x4206
_PTRACE_INTERRUPT = 0x4207
_PTRACE_EVENT_STOP = 128
_NT_X86_XSTATE = 0x202
_WALL = 0x40000000

_SYS_MMAP = 9
_SYS_MUNMAP = 11
_SYS_TGKILL = 234
_PROT_RW = 0x3
_MAP_PRIVATE_ANON = 0x22
_PAGE = 4096

_MASK64 = (1 << 64) - 1
_EFLAGS_TF = 0x100
_EFLAGS_DF = 0x400
_XSTATE_BUF = 65536  # kernel xstate is 11008 bytes on AMX hosts; leave headroom
_RED_ZONE_SKIP = 1024  # below rsp: 128-byte red zone plus room for the interrupted frame

# Extra time an injected call that is already running may take beyond ``timeout``
# before inject() gives up waiting for it (it cannot be aborted, see _Session._settle).
_CALL_GRACE = 5.0

_API_NAMES = (
    "Py_AddPendingCall",
    "PyRun_SimpleString",
    "PyGILState_Ensure",
    "PyGILState_Release",
    "_PyRuntime",
)

MODES = ("auto", "gilstate", "pending")


@dataclass(frozen=True)
class InjectionReport:
    method: str  # "pending" or "gilstate"
    tid: int
    stopped_ms: float  # how long the thread was stopped
    result: int  # PyRun_SimpleString (gilstate) or Py_AddPendingCall (pending) result


@dataclass(frozen=True)
class PythonApi:
    """Runtime addresses of the C-API entry points in one target process."""

    path: str  # file (as the target sees it) that exports the C-API
    add_pending_call: int
    run_simple_string: int
    gilstate_ensure: int
    gilstate_release: int
    runtime_range: Tuple[int, int]  # [start, end) of _PyRuntime; holds the main GIL


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


# --------------------------------------------------------------------------- ctypes


_REG_NAMES = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9",
    "r8", "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs",
    "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
)  # fmt: skip


class _Regs(ctypes.Structure):
    """struct user_regs_struct (x86-64)."""

    _fields_ = [(name, ctypes.c_ulonglong) for name in _REG_NAMES]
    r10: int
    r9: int
    r8: int
    rax: int
    rcx: int
    rdx: int
    rsi: int
    rdi: int
    orig_rax: int
    rip: int
    eflags: int
    rsp: int


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]
    iov_base: Optional[int]
    iov_len: int


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    for name in ("process_vm_readv", "process_vm_writev"):
        fn = getattr(libc, name)
        fn.argtypes = [
            ctypes.c_int,
            ctypes.POINTER(_IoVec),
            ctypes.c_ulong,
            ctypes.POINTER(_IoVec),
            ctypes.c_ulong,
            ctypes.c_ulong,
        ]
        fn.restype = ctypes.c_ssize_t
    libc.syscall.restype = ctypes.c_long
    return libc


class _PtraceError(OSError):
    pass


def _ptrace(request: int, tid: int, addr: int = 0, data: int = 0) -> int:
    ctypes.set_errno(0)
    ret = int(_libc().ptrace(request, tid, ctypes.c_void_p(addr), ctypes.c_void_p(data)))
    if ret == -1:
        err = ctypes.get_errno()
        # PEEKDATA returns the word itself; -1 is only an error when errno says so
        if err:
            raise _PtraceError(err, os.strerror(err))
    return ret


def _signed(value: int, bits: int = 64) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _vm_io(pid: int, addr: int, buf: Any, size: int, write: bool) -> int:
    local = _IoVec(ctypes.cast(buf, ctypes.c_void_p), size)
    remote = _IoVec(addr, size)
    fn = _libc().process_vm_writev if write else _libc().process_vm_readv
    n = int(fn(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))
    if n < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return n


def _read_memory(pid: int, addr: int, size: int) -> bytes:
    buf = ctypes.create_string_buffer(size)
    n = _vm_io(pid, addr, buf, size, write=False)
    return buf.raw[:n]


def _poke(tid: int, addr: int, data: bytes) -> None:
    """PTRACE_POKEDATA fallback (seccomp profiles may deny process_vm_writev)."""
    for off in range(0, len(data), 8):
        chunk = data[off : off + 8]
        if len(chunk) < 8:
            word = _ptrace(_PTRACE_PEEKDATA, tid, addr + off) & _MASK64
            chunk = chunk + word.to_bytes(8, "little")[len(chunk) :]
        _ptrace(_PTRACE_POKEDATA, tid, addr + off, int.from_bytes(chunk, "little"))


def _write_memory(pid: int, tid: int, addr: int, data: bytes) -> None:
    """Write into the stopped tracee (tid must be in a ptrace-stop for the fallback)."""
    buf = ctypes.create_string_buffer(data, len(data))
    try:
        if _vm_io(pid, addr, buf, len(data), write=True) == len(data):
            return
    except OSError:
        pass
    _poke(tid, addr, data)


# ------------------------------------------------------------------ symbol lookup


def _candidate_files(pid: int, maps: Sequence[procfs.MapEntry]) -> List[str]:
    """Mapped files that may export the C-API, most likely first.

    libpython (shared builds), then the executable (static builds such as Debian's
    python3.11 or an embedding application), then anything else named *python*.
    Extension modules (name contains "cpython-") only import the API.
    """
    try:
        exe = os.readlink(procfs.proc_path(pid, "exe"))
    except OSError:
        exe = ""
    ranked: Dict[str, int] = {}
    for entry in maps:
        path = entry.path
        if not path.startswith("/") or path in ranked:
            continue
        base = os.path.basename(path)
        if base.startswith("libpython"):
            ranked[path] = 0
        elif path == exe:
            ranked[path] = 1
        elif "python" in base and "cpython-" not in base:
            ranked[path] = 2
    return sorted(ranked, key=lambda p: ranked[p])


def _host_path(pid: int, path: str, maps: Sequence[procfs.MapEntry]) -> str:
    if path.endswith(" (deleted)"):
        # Replaced on disk since the target started: only map_files still has it.
        for entry in maps:
            if entry.path == path and entry.offset == 0:
                return procfs.proc_path(pid, "map_files", f"{entry.start:x}-{entry.end:x}")
    return procfs.target_file(pid, path)


def find_python_api(pid: int, maps: Optional[Sequence[procfs.MapEntry]] = None) -> PythonApi:
    """Locate the C-API entry points in ``pid`` from the ELF symbols of its files.

    Raises TargetError when no mapped file exports them (not a CPython process).
    """
    if maps is None:
        maps = procfs.read_maps(pid)
    for path in _candidate_files(pid, maps):
        try:
            image = elf.read_symbols(_host_path(pid, path, maps), _API_NAMES)
        except (OSError, elf.ElfError):
            continue
        syms = image.symbols
        if "PyRun_SimpleString" not in syms:
            continue
        missing = [n for n in _API_NAMES if n not in syms]
        if missing:
            raise TargetError(
                f"pid {pid}: {path} exports PyRun_SimpleString but not {', '.join(missing)}; unsupported Python build"
            )
        starts = [e.start for e in maps if e.path == path and e.offset == 0]
        if not starts:
            continue
        bias = image.load_bias(min(starts))
        rt = syms["_PyRuntime"]
        rt_start = rt.value + bias
        rt_end = rt_start + rt.size if rt.size else _mapping_end(maps, rt_start)
        return PythonApi(
            path=path,
            add_pending_call=syms["Py_AddPendingCall"].value + bias,
            run_simple_string=syms["PyRun_SimpleString"].value + bias,
            gilstate_ensure=syms["PyGILState_Ensure"].value + bias,
            gilstate_release=syms["PyGILState_Release"].value + bias,
            runtime_range=(rt_start, rt_end),
        )
    raise TargetError(
        f"pid {pid} ({procfs.process_name(pid)}) does not look like a CPython process: none of its mapped files "
        "exports the Python C-API (PyRun_SimpleString)"
    )


def _mapping_end(maps: Sequence[procfs.MapEntry], addr: int) -> int:
    """End of the mapping containing ``addr``: a conservative _PyRuntime bound."""
    for entry in maps:
        if entry.start <= addr < entry.end:
            return entry.end
    return addr + _PAGE


def _find_syscall_insn(pid: int, maps: Sequence[procfs.MapEntry]) -> int:
    """Address of a ``syscall`` instruction (0f 05) in an executable mapping.

    Any occurrence of the two bytes executes as syscall when jumped to, so the first
    hit in libc's text is enough; we read it from the target's memory, which is what
    will actually execute.
    """
    code = [e for e in maps if "x" in e.perms and e.path != "[vsyscall]"]
    code.sort(key=lambda e: (0 if "libc" in os.path.basename(e.path) else 1, e.start))
    for entry in code:
        size = min(entry.end - entry.start, 1 << 20)
        try:
            data = _read_memory(pid, entry.start, size)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EACCES, errno.ESRCH):
                raise procfs.permission_error(pid, "read the memory of", exc.errno) from None
            continue
        pos = data.find(b"\x0f\x05")
        if pos >= 0:
            return entry.start + pos
    raise InjectionError(f"pid {pid}: no syscall instruction found in executable mappings")


# ----------------------------------------------------------------------- session


class _Timeout(Exception):
    pass


class _Cancelled(Exception):
    pass


class _Session:
    """One attach/inject/detach cycle, run entirely on one (tracer) thread.

    The kernel accepts ptrace requests only from the thread that attached, and a
    running injected call cannot be interrupted safely; so inject() runs this on a
    private thread and can return (with an error) while this keeps waiting for a
    stuck call to come back before restoring and detaching.
    """

    def __init__(
        self,
        pid: int,
        tid: int,
        api: PythonApi,
        syscall_insn: int,
        payload: bytes,
        mode: str,
        deadline: float,
    ) -> None:
        self.pid = pid
        self.tid = tid
        self.api = api
        self.syscall_insn = syscall_insn
        self.payload = payload
        self.mode = mode
        self.deadline = deadline
        self.cancel = threading.Event()  # set by inject() on KeyboardInterrupt
        self.done = threading.Event()  # inject() may return (result or error is set)
        self.report: Optional[InjectionReport] = None
        self.error: Optional[BaseException] = None

        self.attached = False
        self.stopped = False  # in a ptrace-stop, registers may be read/written
        self.in_flight = False  # resumed into injected code that has not returned
        self.in_flight_request = _PTRACE_CONT
        self.expect_rip = 0
        self.saved: Optional[_Regs] = None
        self.xstate: Optional[bytes] = None
        self.xstate_regset = True  # False: fell back to GETFPREGS/SETFPREGS
        self.fpu_dirty = False
        self.crashed = False  # injected code faulted: call nothing more, just restore
        self.last_rax = 0  # return value seen at the most recent "returned" trap
        self.phase = ""  # gilstate progress: ensure, run, ran, release, released
        self.gil_state = 0
        self.page = 0  # gilstate payload page still to unmap
        self.signals: List[int] = []  # signals that arrived while we held the thread
        self.stop_t0 = 0.0
        self.stop_t1 = 0.0

    # -- entry point ---------------------------------------------------------

    def run(self) -> None:
        method = ""
        result = 0
        try:
            self._attach()
            self._save_state()
            method = self._choose_method()
            result = self._run_gilstate() if method == "gilstate" else self._run_pending()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, never lost
            self.error = exc
        try:
            self._close()
        except BaseException as exc:  # noqa: BLE001
            if self.error is None:
                self.error = exc
        if self.error is None:
            self.report = InjectionReport(method, self.tid, (self.stop_t1 - self.stop_t0) * 1000.0, result)
        self.done.set()

    # -- waiting -------------------------------------------------------------

    def _wait(self, deadline: Optional[float], cancellable: bool) -> int:
        """waitpid for our thread with a deadline (waitpid itself cannot time out)."""
        delay = 2e-5
        while True:
            try:
                wpid, status = os.waitpid(self.tid, os.WNOHANG | _WALL)
            except ChildProcessError:
                self._gone()
                raise TargetError(f"pid {self.pid}: thread {self.tid} disappeared") from None
            if wpid == self.tid:
                if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                    self._gone()
                    how = (
                        f"exit code {os.WEXITSTATUS(status)}"
                        if os.WIFEXITED(status)
                        else f"signal {os.WTERMSIG(status)}"
                    )
                    raise TargetError(f"pid {self.pid} exited during injection ({how})")
                self.stopped = True
                return status
            if cancellable and self.cancel.is_set():
                raise _Cancelled()
            if deadline is not None and time.monotonic() >= deadline:
                raise _Timeout()
            time.sleep(delay)
            delay = min(delay * 2, 0.002)

    def _gone(self) -> None:
        self.attached = self.stopped = self.in_flight = False

    def _resume(self, request: int) -> None:
        _ptrace(request, self.tid, 0, 0)
        self.stopped = False

    # -- attach ----------------------------------------------------------------

    def _attach(self) -> None:
        try:
            _ptrace(_PTRACE_SEIZE, self.tid, 0, 0)
        except OSError as exc:
            raise procfs.permission_error(self.pid, "attach to", exc.errno or 0) from None
        self.attached = True
        _ptrace(_PTRACE_INTERRUPT, self.tid, 0, 0)
        try:
            self._wait_interrupt_stop(self.deadline, cancellable=True)
        except _Timeout:
            raise InjectionError(
                f"pid {self.pid}: thread {self.tid} did not stop within the timeout (uninterruptible sleep?)"
            ) from None
        except _Cancelled:
            raise InjectionError("injection cancelled") from None
        self.stop_t0 = time.monotonic()

    def _wait_interrupt_stop(self, deadline: Optional[float], cancellable: bool) -> None:
        while True:
            status = self._wait(deadline, cancellable)
            sig, event = (status >> 8) & 0xFF, status >> 16
            if event == _PTRACE_EVENT_STOP:
                if sig == signal.SIGTRAP:
                    return
                raise TargetError(
                    f"pid {self.pid} was stopped by job control (signal {sig}); resume it with: kill -CONT {self.pid}"
                )
            if event == 0:
                # A signal arrived first: hold it back (re-sent after detach) and let
                # the thread run on to our interrupt's event-stop.
                self.signals.append(sig)
            self._resume(_PTRACE_CONT)

    # -- register state --------------------------------------------------------

    def _get_regs(self) -> _Regs:
        regs = _Regs()
        _ptrace(_PTRACE_GETREGS, self.tid, 0, ctypes.addressof(regs))
        return regs

    def _set_regs(self, regs: _Regs) -> None:
        _ptrace(_PTRACE_SETREGS, self.tid, 0, ctypes.addressof(regs))

    def _save_state(self) -> None:
        self.saved = self._get_regs()
        buf = ctypes.create_string_buffer(_XSTATE_BUF)
        iov = _IoVec(ctypes.cast(buf, ctypes.c_void_p), _XSTATE_BUF)
        try:
            _ptrace(_PTRACE_GETREGSET, self.tid, _NT_X86_XSTATE, ctypes.addressof(iov))
            # The kernel tells how much it wrote; writing back a different length is
            # what breaks gdb 13 on AMX hosts.
            self.xstate = buf.raw[: iov.iov_len]
        except OSError:
            fp = ctypes.create_string_buffer(512)
            _ptrace(_PTRACE_GETFPREGS, self.tid, 0, ctypes.addressof(fp))
            self.xstate = fp.raw
            self.xstate_regset = False

    def _put_fpu(self, data: bytes) -> None:
        buf = ctypes.create_string_buffer(data, len(data))
        if self.xstate_regset:
            iov = _IoVec(ctypes.cast(buf, ctypes.c_void_p), len(data))
            _ptrace(_PTRACE_SETREGSET, self.tid, _NT_X86_XSTATE, ctypes.addressof(iov))
        else:
            _ptrace(_PTRACE_SETFPREGS, self.tid, 0, ctypes.addressof(buf))

    def _prepare_fpu(self) -> None:
        """Give injected C code the FPU control state the ABI promises at a call.

        The interrupted code may have changed rounding modes or left x87 registers in
        use; the kernel resets these for signal handlers too. The legacy FXSAVE area
        at the start of both layouts holds FCW (0), FSW (2), abridged FTW (4), MXCSR (24).
        """
        if self.fpu_dirty or self.xstate is None or len(self.xstate) < 32:
            return
        clean = bytearray(self.xstate)
        struct.pack_into("<HHB", clean, 0, 0x037F, 0, 0)
        struct.pack_into("<I", clean, 24, 0x1F80)
        self.fpu_dirty = True
        self._put_fpu(bytes(clean))

    def _base_regs(self) -> _Regs:
        assert self.saved is not None
        regs = _Regs.from_buffer_copy(self.saved)
        # orig_rax = -1: no syscall-restart fix-up of rip/rax while we run our code.
        regs.orig_rax = _MASK64
        regs.eflags &= ~(_EFLAGS_DF | _EFLAGS_TF) & _MASK64
        return regs

    # -- running injected code ----------------------------------------------------

    def _start(self, regs: _Regs, request: int, expect_rip: int) -> None:
        self._set_regs(regs)
        self.in_flight_request = request
        self.expect_rip = expect_rip
        self.in_flight = True
        self._resume(request)

    def _await_return(self, deadline: Optional[float]) -> _Regs:
        """Wait for the trap that ends our call/step; keep unrelated signals for later."""
        request = self.in_flight_request
        while True:
            status = self._wait(deadline, cancellable=False)
            sig, event = (status >> 8) & 0xFF, status >> 16
            if event == 0 and sig in (signal.SIGSEGV, signal.SIGTRAP):
                regs = self._get_regs()
                if regs.rip == self.expect_rip and (
                    sig == signal.SIGSEGV if request == _PTRACE_CONT else sig == signal.SIGTRAP
                ):
                    self.in_flight = False
                    self.last_rax = int(regs.rax)
                    return regs
                if sig == signal.SIGSEGV:
                    self.in_flight = False
                    self.crashed = True
                    raise InjectionError(
                        f"pid {self.pid}: injected code crashed (SIGSEGV at rip={regs.rip:#x}); registers restored"
                    )
            if event == 0:
                self.signals.append(sig)
            # Event-stops (group stop, a late interrupt) and held-back signals: carry
            # on with the same request so a single-step is not turned into a run.
            self._resume(request)

    def _call(self, fn: int, *args: int, deadline: Optional[float] = None) -> int:
        """Call ``fn(*args)`` in the stopped thread; return rax."""
        assert self.saved is not None
        regs = self._base_regs()
        # Below the red zone, 16-byte aligned at the call, return address 0 at [rsp].
        sp = ((self.saved.rsp - _RED_ZONE_SKIP) & ~15) - 8
        _write_memory(self.pid, self.tid, sp, b"\0" * 8)
        regs.rsp = sp
        regs.rip = fn
        regs.rax = 0
        for name, value in zip(("rdi", "rsi", "rdx", "rcx", "r8", "r9"), args):
            setattr(regs, name, value & _MASK64)
        self._prepare_fpu()
        self._start(regs, _PTRACE_CONT, expect_rip=0)
        try:
            return int(self._await_return(deadline or self.deadline).rax)
        except _Timeout:
            raise InjectionError(f"pid {self.pid}: injected call did not return within the timeout") from None

    def _syscall(self, nr: int, *args: int) -> int:
        """Execute one syscall in the stopped thread by single-stepping 0f 05."""
        regs = self._base_regs()
        regs.rip = self.syscall_insn
        regs.rax = nr
        for name, value in zip(("rdi", "rsi", "rdx", "r10", "r8", "r9"), args):
            setattr(regs, name, value & _MASK64)
        self._start(regs, _PTRACE_SINGLESTEP, expect_rip=self.syscall_insn + 2)
        try:
            return _signed(int(self._await_return(self.deadline).rax))
        except _Timeout:
            raise InjectionError(f"pid {self.pid}: injected syscall {nr} did not complete") from None

    def _map_payload(self) -> int:
        size = (len(self.payload) + _PAGE - 1) // _PAGE * _PAGE
        addr = self._syscall(_SYS_MMAP, 0, size, _PROT_RW, _MAP_PRIVATE_ANON, -1, 0)
        if -4096 < addr < 0:
            raise InjectionError(f"pid {self.pid}: mmap in target failed: {os.strerror(-addr)}")
        _write_memory(self.pid, self.tid, addr, self.payload)
        return addr

    def _unmap(self, addr: int) -> None:
        size = (len(self.payload) + _PAGE - 1) // _PAGE * _PAGE
        self._syscall(_SYS_MUNMAP, addr, size)

    # -- policy ----------------------------------------------------------------

    def _choose_method(self) -> str:
        assert self.saved is not None
        nr = _signed(self.saved.orig_rax)
        safe = procfs.is_safe_syscall(nr if nr >= 0 else None, self.saved.rdi, [self.api.runtime_range])
        if self.mode == "pending":
            return "pending"
        if safe:
            return "gilstate"
        if self.mode == "gilstate":
            where = "running code" if nr < 0 else f"in syscall {nr}"
            if nr == procfs.SYS_FUTEX:
                where = "waiting for the GIL"
            raise InjectionError(
                f"pid {self.pid}: thread {self.tid} is {where}, not parked in a safe blocking syscall; "
                "refusing to run Python there (use mode='pending' or another thread)"
            )
        return "pending"

    def _run_pending(self) -> int:
        page = self._map_payload()  # stays mapped: the call runs after we detach
        result = _signed(self._call(self.api.add_pending_call, self.api.run_simple_string, page), 32)
        if result != 0:
            self._unmap(page)
            raise InjectionError(
                f"pid {self.pid}: Py_AddPendingCall refused the call (returned {result}; queue full or "
                "interpreter finalizing)"
            )
        return result

    def _run_gilstate(self) -> int:
        # self.phase records progress so that _close can still release the GIL when
        # any step fails or overruns: a thread that keeps it freezes the whole target.
        self.page = self._map_payload()
        self.phase = "ensure"
        self.gil_state = _signed(self._call(self.api.gilstate_ensure), 32)
        self.phase = "run"
        result = _signed(self._call(self.api.run_simple_string, self.page), 32)
        self.phase = "ran"
        self._release_gil()
        self._unmap(self.page)
        self.page = 0
        return result

    def _release_gil(self) -> None:
        self.phase = "release"
        self._call(self.api.gilstate_release, self.gil_state, deadline=self._hard_deadline())
        self.phase = "released"

    def _hard_deadline(self) -> float:
        return max(time.monotonic(), self.deadline) + _CALL_GRACE

    # -- restore and detach ----------------------------------------------------

    def _close(self) -> None:
        if not self.attached:
            return
        try:
            self._unwind()
        finally:
            if self.attached and self.stopped:
                try:
                    if self.fpu_dirty and self.xstate is not None:
                        self._put_fpu(self.xstate)
                    if self.saved is not None:
                        self._set_regs(self.saved)
                finally:
                    # Signal 0 swallows our SIGSEGV/SIGTRAP; with the original
                    # orig_rax/rax the kernel restarts an interrupted syscall as after
                    # an SA_RESTART handler.
                    _ptrace(_PTRACE_DETACH, self.tid, 0, 0)
                    self.attached = self.stopped = False
                    self.stop_t1 = time.monotonic()
                self._redeliver_signals()

    def _unwind(self) -> None:
        """Finish what a failed or overrunning gilstate sequence left half done."""
        for _attempt in range(3):
            if not self.stopped:
                self._settle()
            if self.crashed:
                return
            if self.phase == "release":  # an overrunning release has now returned
                self.phase = "released"
            if self.phase in ("ensure", "run", "ran"):
                if self.phase == "ensure":  # Ensure overran and has now returned
                    self.gil_state = _signed(self.last_rax, 32)
                try:
                    self._release_gil()
                except InjectionError:
                    continue
            if self.page:
                page, self.page = self.page, 0
                try:
                    self._unmap(page)
                except InjectionError:
                    continue
            return

    def _settle(self) -> None:
        """Bring the thread to a ptrace-stop from which restoring is safe.

        Not stopped means either our interrupt has not been delivered yet or an
        injected call is still running. A running call cannot be aborted: unwinding
        it from inside take_gil or a condvar wait corrupts glibc state and deadlocks
        the target later, and detaching lets it return to address 0 and die. So we
        wait, past the caller's timeout if need be: after _CALL_GRACE inject() gets an
        error while this thread keeps waiting and restores the target once the call
        returns (as long as this process lives).
        """
        grace = max(time.monotonic(), self.deadline) + _CALL_GRACE
        try:
            self._settle_until(grace)
        except _Timeout:
            if self.error is None or isinstance(self.error, InjectionError):
                self.error = InjectionError(
                    f"pid {self.pid}: thread {self.tid} is still running injected code after the timeout; "
                    "it will be restored and released when that call returns - keep this "
                    "process running until then"
                )
            self.done.set()
            self._settle_until(None)

    def _settle_until(self, deadline: Optional[float]) -> None:
        if self.in_flight:
            try:
                self._await_return(deadline)
            except InjectionError:
                pass  # crashed (self.crashed): stopped at the fault, restore anyway
        else:
            while not self.stopped:
                status = self._wait(deadline, cancellable=False)
                if status >> 16 == 0:
                    self.signals.append((status >> 8) & 0xFF)

    def _redeliver_signals(self) -> None:
        seen = set()
        for sig in self.signals:
            if sig in seen and sig < signal.SIGRTMIN:
                continue  # standard signals do not queue
            seen.add(sig)
            _libc().syscall(
                ctypes.c_long(_SYS_TGKILL),
                ctypes.c_long(self.pid),
                ctypes.c_long(self.tid),
                ctypes.c_long(sig),
            )


# --------------------------------------------------------------------------- API


def inject(
    pid: int,
    source: str,
    *,
    tid: Optional[int] = None,
    mode: str = "auto",
    timeout: float = 5.0,
) -> InjectionReport:
    """Run ``source`` (Python code) inside process ``pid``.

    ``mode``:
      * ``"auto"``: if the thread is parked in a whitelisted blocking syscall (not a
        wait for the GIL), run the code right there under PyGILState_Ensure
        ("gilstate": the thread holds no interpreter or allocator lock at that
        boundary); otherwise queue it with Py_AddPendingCall ("pending": the main
        thread runs it at its next eval-loop safe point, so only once it runs bytecode).
      * ``"gilstate"``: as auto, but raise InjectionError instead of falling back.
      * ``"pending"``: always Py_AddPendingCall.

    ``source`` should be exception-proof (see wrap_bootstrap): an exception escaping a
    pending call kills the target. ``tid`` picks the thread to stop (default: the main
    thread); see procfs.thread_states/is_safe_parked to find a parked worker.

    Every wait is bounded by ``timeout``; on any failure the thread's registers are
    restored and it is detached. Only an injected call that is already running cannot be
    aborted (see _Session._settle). A KeyboardInterrupt while waiting cancels the attach
    if possible, restores the target, then propagates.

    The caller must not waitpid() the target concurrently (matters only if it is our
    child): ptrace stops are reported through waitpid.
    """
    if mode not in MODES:
        raise ValueError("mode must be one of {}, not {!r}".format(", ".join(MODES), mode))
    deadline = time.monotonic() + timeout
    thread = pid if tid is None else tid
    procfs.check_attachable(pid, thread)
    if thread not in procfs.thread_ids(pid):
        raise TargetError(f"pid {pid} has no thread {thread}")
    maps = procfs.read_maps(pid)
    api = find_python_api(pid, maps)
    syscall_insn = _find_syscall_insn(pid, maps)
    payload = source.encode("utf-8") + b"\0"
    if b"\0" in payload[:-1]:
        raise ValueError("source must not contain NUL characters")

    session = _Session(pid, thread, api, syscall_insn, payload, mode, deadline)
    worker = threading.Thread(target=session.run, name="flight-profiler-ptrace", daemon=True)
    worker.start()
    _wait_for(session)
    if session.error is not None:
        err = session.error
        if isinstance(err, FlightProfilerError):
            raise err
        if isinstance(err, OSError):
            raise AttachError(f"ptrace injection into pid {pid} failed: {err}") from err
        raise InjectionError(f"ptrace injection into pid {pid} failed: {err!r}") from err
    assert session.report is not None
    return session.report


def _wait_for(session: _Session) -> None:
    """Wait for the session; on Ctrl-C cancel it, still wait for the restore, re-raise."""
    interrupted = False
    while True:
        try:
            session.done.wait()
            break
        except KeyboardInterrupt:
            interrupted = True
            session.cancel.set()
    if interrupted:
        raise KeyboardInterrupt
