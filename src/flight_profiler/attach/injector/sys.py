"""Raw system calls the injector needs: ptrace, waitpid, cross-process memory (ctypes).

Architecture-neutral: register layouts live in the arch modules (``x86_64``).
Nothing here knows about phases or policy; every function is one kernel request.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for mypy only: typing costs the first attach's start-up ~3 ms
    from typing import Any, Optional

# ptrace requests common to every Linux architecture
PTRACE_PEEKDATA = 2
PTRACE_POKEDATA = 5
PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_GETREGSET = 0x4204
PTRACE_SETREGSET = 0x4205
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_GETSIGMASK = 0x420A
PTRACE_EVENT_STOP = 128
WALL = 0x40000000

MASK64 = (1 << 64) - 1


class PtraceError(OSError):
    pass


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]
    iov_base: Optional[int]
    iov_len: int


# process_vm_readv/writev of at most this many bytes keep the GIL (``held``); larger ones (the gadget
# scan reads up to 8 MB of code) let the client's other threads run meanwhile
HELD_IO_LIMIT = 64 << 10


@functools.lru_cache(maxsize=1)
def libc() -> Any:
    """libc for calls that may take long: ctypes lets go of the GIL around each."""
    return _declared(ctypes.CDLL(None, use_errno=True))


@functools.lru_cache(maxsize=1)
def held() -> Any:
    """libc through ``ctypes.PyDLL``: the call keeps the GIL.

    For requests that return at once (every ptrace request we make: none waits for the tracee;
    small process_vm_readv/writev): letting go of the GIL for a few microseconds costs a thread of a
    group attach a wait for it behind the client's other threads (up to a switch interval, 5 ms),
    and the injector's tracer makes about forty of them while it holds a target's thread stopped.
    """
    return _declared(ctypes.PyDLL(None, use_errno=True))


def _declared(lib: Any) -> Any:
    lib.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    lib.ptrace.restype = ctypes.c_long
    for name in ("process_vm_readv", "process_vm_writev"):
        fn = getattr(lib, name)
        fn.argtypes = [
            ctypes.c_int,
            ctypes.POINTER(IoVec),
            ctypes.c_ulong,
            ctypes.POINTER(IoVec),
            ctypes.c_ulong,
            ctypes.c_ulong,
        ]
        fn.restype = ctypes.c_ssize_t
    return lib


def signed(value: int, bits: int = 64) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def ptrace(request: int, tid: int, addr: int = 0, data: int = 0) -> int:
    ctypes.set_errno(0)
    ret = int(held().ptrace(request, tid, ctypes.c_void_p(addr), ctypes.c_void_p(data)))
    if ret == -1:
        err = ctypes.get_errno()
        # PEEKDATA returns the word itself; -1 is only an error when errno says so
        if err:
            raise PtraceError(err, os.strerror(err))
    return ret


def seize(tid: int) -> None:
    """PTRACE_SEIZE without options: no EXITKILL (our death must never kill the target)."""
    ptrace(PTRACE_SEIZE, tid)


def interrupt(tid: int) -> None:
    ptrace(PTRACE_INTERRUPT, tid)


def detach(tid: int) -> None:
    """Detach with signal 0 (the tracee must be in a ptrace-stop)."""
    ptrace(PTRACE_DETACH, tid)


def cont(tid: int, sig: int = 0) -> None:
    ptrace(PTRACE_CONT, tid, 0, sig)


def get_regset(tid: int, note: int, size: int) -> bytes:
    """PTRACE_GETREGSET: exactly the bytes the kernel wrote (it shortens iov_len)."""
    buf = ctypes.create_string_buffer(size)
    iov = IoVec(ctypes.cast(buf, ctypes.c_void_p), size)
    ptrace(PTRACE_GETREGSET, tid, note, ctypes.addressof(iov))
    return buf.raw[: iov.iov_len]


def get_sigmask(tid: int) -> int:
    """The thread's blocked-signal mask (a sigreturn frame restores it, so we must pass it on)."""
    mask = ctypes.c_uint64(0)
    ptrace(PTRACE_GETSIGMASK, tid, ctypes.sizeof(mask), ctypes.addressof(mask))
    return int(mask.value)


def peek(tid: int, addr: int) -> int:
    return ptrace(PTRACE_PEEKDATA, tid, addr) & MASK64


def poke(tid: int, addr: int, data: bytes) -> None:
    """PTRACE_POKEDATA, word by word (FOLL_FORCE: also writes read-only/executable pages)."""
    for off in range(0, len(data), 8):
        chunk = data[off : off + 8]
        if len(chunk) < 8:
            chunk = chunk + peek(tid, addr + off).to_bytes(8, "little")[len(chunk) :]
        ptrace(PTRACE_POKEDATA, tid, addr + off, int.from_bytes(chunk, "little"))


def _vm_io(pid: int, addr: int, buf: Any, size: int, write: bool) -> int:
    local = IoVec(ctypes.cast(buf, ctypes.c_void_p), size)
    remote = IoVec(addr, size)
    lib = held() if size <= HELD_IO_LIMIT else libc()
    fn = lib.process_vm_writev if write else lib.process_vm_readv
    n = int(fn(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))
    if n < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return n


def read_memory(pid: int, addr: int, size: int) -> bytes:
    """process_vm_readv; may return fewer bytes at the end of a mapping."""
    buf = ctypes.create_string_buffer(size)
    n = _vm_io(pid, addr, buf, size, write=False)
    return buf.raw[:n]


def try_read(pid: int, addr: int, size: int) -> Optional[bytes]:
    """``size`` bytes at ``addr``, or None when (part of) the range is not mapped."""
    try:
        data = read_memory(pid, addr, size)
    except OSError as exc:
        if exc.errno in (errno.EFAULT, errno.ENOMEM, errno.EIO):
            return None
        raise
    return data if len(data) == size else None


def write_memory(pid: int, tid: int, addr: int, data: bytes) -> None:
    """Write writable memory of the stopped tracee ``tid`` (POKEDATA if process_vm_writev is denied)."""
    buf = ctypes.create_string_buffer(data, len(data))
    try:
        if _vm_io(pid, addr, buf, len(data), write=True) == len(data):
            return
    except OSError:
        pass
    poke(tid, addr, data)


def write_forced(pid: int, tid: int, addr: int, data: bytes) -> None:
    """Write into a read-only (e.g. r-x) mapping of the stopped tracee, as debuggers set breakpoints.

    /proc/pid/mem is one request for the whole buffer; kernels that restrict its
    FOLL_FORCE still allow the active tracer, and POKEDATA is the fallback.
    """
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        poke(tid, addr, data)
        return
    try:
        written = os.pwrite(fd, data, addr)
    except OSError:
        written = -1
    finally:
        os.close(fd)
    if written != len(data):
        poke(tid, addr, data)


class Gone(Exception):
    """The traced thread exited (or was never ours to wait for)."""


class Timeout(Exception):
    pass


def wait_stop(tid: int, deadline: float) -> int:
    """waitpid(tid, __WALL) until it reports a stop; waitpid itself cannot time out, so poll."""
    delay = 2e-5
    while True:
        try:
            wpid, status = os.waitpid(tid, os.WNOHANG | WALL)
        except ChildProcessError:
            raise Gone(f"thread {tid} disappeared") from None
        if wpid == tid:
            if os.WIFEXITED(status):
                raise Gone(f"exited with code {os.WEXITSTATUS(status)}")
            if os.WIFSIGNALED(status):
                raise Gone(f"killed by signal {os.WTERMSIG(status)}")
            return status
        if time.monotonic() >= deadline:
            raise Timeout()
        time.sleep(delay)
        delay = min(delay * 2, 0.002)
