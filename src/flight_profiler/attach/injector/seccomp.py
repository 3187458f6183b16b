"""Would the target's seccomp filter kill it for a system call we make it make? (client side, as root).

A filter whose action for a call is to kill (``SECCOMP_RET_KILL_PROCESS``/``KILL_THREAD``, or ``TRAP``:
SIGSYS, which Python leaves fatal) ends the target the first time the call is made: systemd's
``SystemCallFilter=~@network-io`` on a batch job (no error number set) kills it at the agent's
``socket()``, and a W^X filter at the injected ``mmap`` of an executable page. Docker's and
Kubernetes' default profiles answer refused calls with an error instead, which the attach reports.

As root (``PTRACE_SECCOMP_GET_FILTER`` needs CAP_SYS_ADMIN) the client stops one thread of the target
for a moment, copies its filters and runs them (classic BPF, ``run``) on the calls of the injection and
of the agent, with the arguments they are made with (``arch.SECCOMP_CALLS``); a fatal answer refuses
the attach before anything is written or injected. Without that right nothing can be read and nothing
is refused (docs/platforms.md). Arguments a filter might test that are not known in advance (a file
descriptor, an address) are given as 0: a filter that kills by such a value is not foreseen.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import threading
import time

from ..procfs import read_status
from . import sys as _sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for mypy only: typing costs the first attach's start-up ~3 ms
    from typing import Any, Callable, List, Optional, Sequence, Tuple

    Program = List[Tuple[int, int, int, int]]
    Call = Tuple[str, int, Tuple[int, ...]]

PTRACE_SECCOMP_GET_FILTER = 0x420C
MAX_FILTERS = 64  # a thread's filters are a short stack; past this, something is off
MAX_INSTRUCTIONS = 4096  # BPF_MAXINSNS
STOP_WAIT = 1.0  # seconds a thread may take to stop for the copy; past it, nothing is known

KILL_PROCESS = 0x80000000
KILL_THREAD = 0x00000000
TRAP = 0x00030000
ACTION = 0xFFFF0000
_FATAL = {KILL_PROCESS: "kill the process", KILL_THREAD: "kill the thread", TRAP: "send SIGSYS"}


def fatal_call(
    pid: int, calls: Sequence[Call], audit_arch: int, log: Callable[[str], None] = lambda message: None
) -> Optional[Tuple[str, str]]:
    """(the call, what the filter would do) for the first of ``calls`` a filter of ``pid`` answers
    fatally; None when none is, or when the filters cannot be read (``log`` is told why)."""
    try:
        programs = filters(pid)
    except OSError as exc:
        log("pid %d runs under a seccomp filter we could not read (%s): not checked" % (pid, exc.strerror))
        return None
    for name, nr, args in calls:
        worst = None
        for program in programs:
            action = run(program, nr, audit_arch, args)
            if worst is None or _precedes(action, worst):
                worst = action
        if worst is not None and (worst & ACTION) in _FATAL:
            return name, _FATAL[worst & ACTION]
    return None


def filters(pid: int) -> List[Program]:
    """The seccomp filters of ``pid``'s main thread (its other threads share them when the program set
    them with TSYNC, or before it started threads), newest first; [] when it has none. OSError when it
    has some we may not read (no CAP_SYS_ADMIN: a container's root with CAP_SYS_PTRACE only)."""
    try:
        if read_status(pid).get("Seccomp", "0").strip() != "2":
            return []
    except Exception:  # noqa: BLE001 - gone, unreadable: the attach's own checks say so
        return []
    if os.geteuid() != 0:
        raise OSError(errno.EPERM, "not root")
    # on a thread of its own, as the injector's tracer: a ptrace attachment belongs to the thread that
    # made it, and when that thread ends the kernel detaches whatever it still holds; so a target thread
    # that stops only after our wait gave up is never left stopped for as long as a shell lives
    found: List[Any] = []
    tracer = threading.Thread(target=_read_on_own_thread, args=(pid, found), name="flight-profiler-seccomp")
    tracer.daemon = True
    tracer.start()
    tracer.join()
    if found and isinstance(found[0], OSError):
        raise found[0]
    return found[0] if found else []


def _read_on_own_thread(pid: int, found: List[Any]) -> None:
    try:
        _sys.seize(pid)  # OSError: the injection's own seize will say why
    except OSError as exc:
        found.append(exc)
        return
    try:
        _sys.interrupt(pid)
        _sys.wait_stop(pid, time.monotonic() + STOP_WAIT)
        found.append(_copy(pid))
    except OSError as exc:
        found.append(exc)
    except (_sys.Gone, _sys.Timeout):
        found.append([])  # gone, or it did not stop (uninterruptible): the injection meets the same
    finally:
        try:
            _sys.detach(pid)  # registers untouched: the thread goes on, an interrupted call restarts
        except OSError:
            pass  # not in a stop yet: this thread's end detaches it


def _copy(tid: int) -> List[Program]:
    programs: List[Program] = []
    for index in range(MAX_FILTERS):
        try:
            count = _sys.ptrace(PTRACE_SECCOMP_GET_FILTER, tid, index, 0)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return programs
            raise
        if not 0 < count <= MAX_INSTRUCTIONS:
            return programs
        buf = ctypes.create_string_buffer(count * 8)
        _sys.ptrace(PTRACE_SECCOMP_GET_FILTER, tid, index, ctypes.addressof(buf))
        programs.append([struct.unpack_from("<HBBI", buf.raw, 8 * at) for at in range(count)])
    return programs


def run(program: Program, nr: int, audit_arch: int, args: Sequence[int], ip: int = 0) -> int:
    """What ``program`` (classic BPF, as seccomp runs it) returns for the call: its action and data."""
    data = struct.pack("<IIQ6Q", nr, audit_arch, ip, *[(list(args) + [0] * 6)[at] & (2**64 - 1) for at in range(6)])
    a = x = 0
    memory = [0] * 16
    pc = 0
    for _ in range(len(program) + 1):  # seccomp programs only jump forward: each instruction runs once at most
        if not 0 <= pc < len(program):
            return KILL_THREAD  # off the end: the kernel refuses such a program; treat as the worst
        code, jt, jf, k = program[pc]
        pc += 1
        kind = code & 0x07
        if kind == 0x06:  # RET: K, or A
            return (a if code & 0x18 == 0x10 else k) & 0xFFFFFFFF
        if kind in (0x00, 0x01):  # LD, LDX
            value = _load(code, k, data, memory)
            if kind == 0x00:
                a = value
            else:
                x = value
        elif kind == 0x02:  # ST
            memory[k & 15] = a
        elif kind == 0x03:  # STX
            memory[k & 15] = x
        elif kind == 0x04:  # ALU
            a = _alu(code, a, x if code & 0x08 else k)
        elif kind == 0x05:  # JMP
            pc += _jump(code, jt, jf, k, a, x)
        elif kind == 0x07:  # MISC: TAX, TXA
            if code & 0xF8 == 0x80:
                a = x
            else:
                x = a
    return KILL_THREAD


def _load(code: int, k: int, data: bytes, memory: List[int]) -> int:
    mode = code & 0xE0
    if mode == 0x20:  # ABS: a 32-bit word of seccomp_data
        return struct.unpack_from("<I", data, k)[0] if 0 <= k <= len(data) - 4 else 0
    if mode == 0x80:  # LEN
        return len(data)
    if mode == 0x60:  # MEM
        return memory[k & 15]
    return k & 0xFFFFFFFF  # IMM


def _alu(code: int, a: int, operand: int) -> int:
    op = code & 0xF0
    operand &= 0xFFFFFFFF
    results = {
        0x00: lambda: a + operand,
        0x10: lambda: a - operand,
        0x20: lambda: a * operand,
        0x30: lambda: a // operand if operand else 0,
        0x40: lambda: a | operand,
        0x50: lambda: a & operand,
        0x60: lambda: a << (operand & 31),
        0x70: lambda: a >> (operand & 31),
        0x80: lambda: -a,
        0x90: lambda: a % operand if operand else 0,
        0xA0: lambda: a ^ operand,
    }
    return int(results.get(op, lambda: a)()) & 0xFFFFFFFF


def _jump(code: int, jt: int, jf: int, k: int, a: int, x: int) -> int:
    op = code & 0xF0
    if op == 0x00:  # JA
        return k
    operand = x if code & 0x08 else k
    taken = {0x10: a == operand, 0x20: a > operand, 0x30: a >= operand, 0x40: bool(a & operand)}.get(op, False)
    return jt if taken else jf


def _precedes(action: int, other: int) -> bool:
    """The kernel keeps the filters' answer of highest precedence: the lowest action, signed."""

    def signed(value: int) -> int:
        value &= ACTION
        return value - 2**32 if value & 0x80000000 else value

    return signed(action) < signed(other)
