"""x86-64 Linux specifics of the injector: registers, the rt_sigframe, restart encoding, machine code.

Everything the session needs from an architecture is in ``Arch`` (see ``arch.py``);
an aarch64 port is another module with the same names.

The one idea: whatever we make the thread execute ends in ``rt_sigreturn`` with a
frame we wrote below its stack's red zone, holding its original general-purpose
registers, signal mask and full extended (FPU/SSE/AVX/...) state. So once we have set
its registers, the thread finishes our sequence and returns to exactly where it was
*by itself*: the tracer may vanish at any instant without harming it.
"""

from __future__ import annotations

import ctypes
import struct

from . import sys as _sys
from .arch import Frame, PythonCalls

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for mypy only: typing costs the first attach's start-up ~3 ms
    from typing import Dict, List, NamedTuple, Optional, Tuple
else:
    from flight_profiler.named import NamedTuple

MACHINES = ("x86_64", "amd64")
NAME = "x86-64"

NR_MMAP = 9
NR_MUNMAP = 11
NR_NANOSLEEP = 35
NR_CLOCK_NANOSLEEP = 230

AUDIT_ARCH = 0xC000003E  # AUDIT_ARCH_X86_64: seccomp_data.arch of a native call
_AT_FDCWD = 2**64 - 100
# The calls an attach makes the target make, with the arguments a filter may test (seccomp.fatal_call):
# the injection's, then the bootstrap's and the agent's (glibc's spelling on x86-64: clone3 before clone,
# pipe2, openat, newfstatat). Unknown values (descriptors, addresses) are 0.
SECCOMP_CALLS: Tuple[Tuple[str, int, Tuple[int, ...]], ...] = (
    ("mmap of an r-x page (the injection)", NR_MMAP, (0, 4096, 0x5, 0x100022, 2**64 - 1, 0)),
    ("munmap", NR_MUNMAP, (0, 4096)),
    ("rt_sigreturn", 15, ()),
    ("socket(AF_UNIX)", 41, (1, 0x80001, 0)),
    ("bind", 49, ()),
    ("listen", 50, (0, 8)),
    ("accept4", 288, (0, 0, 0, 0x80000)),
    ("getsockopt(SO_PEERCRED)", 55, (0, 1, 17)),
    ("clone3 (a thread)", 435, ()),
    ("clone (a thread)", 56, (0x3D0F00,)),
    ("set_robust_list", 273, ()),
    ("rseq", 334, ()),
    ("futex", 202, ()),
    ("mmap (memory)", NR_MMAP, (0, 1 << 20, 0x3, 0x22, 2**64 - 1, 0)),
    ("mprotect", 10, (0, 4096, 0)),
    ("madvise", 28, (0, 0, 4)),
    ("rt_sigprocmask", 14, ()),
    ("pipe2", 293, (0, 0x80000)),
    ("rename", 82, ()),
    ("unlink", 87, ()),
    ("openat", 257, (_AT_FDCWD, 0, 0x80000)),
    ("read", 0, ()),
    ("write", 1, ()),
    ("close", 3, ()),
    ("newfstatat", 262, (_AT_FDCWD,)),
    ("fstat", 5, ()),
    ("lseek", 8, ()),
    ("ioctl(TCGETS)", 16, (0, 0x5401)),
    ("chmod", 90, (0, 0o600)),
    ("mkdir", 83, (0, 0o700)),
    ("sendto", 44, ()),
    ("recvfrom", 45, ()),
    ("poll", 7, ()),
    ("clock_nanosleep", NR_CLOCK_NANOSLEEP, ()),
    ("getpid", 39, ()),
    ("gettid", 186, ()),
    ("exit (a thread's end)", 60, ()),
)

# A ``syscall; ret`` sequence: with rsp at our frame, the ``ret`` lands in a sigreturn gadget.
SYSCALL_RET = bytes.fromhex("0f05c3")
# glibc's and musl's __restore_rt (mov rax, 15; syscall), then the shorter encoding.
SIGRETURN: Tuple[bytes, ...] = (bytes.fromhex("48c7c00f0000000f05"), bytes.fromhex("b80f0000000f05"))

_PTRACE_GETREGS = 12
_PTRACE_SETREGS = 13
_PTRACE_GETFPREGS = 14
_NT_X86_XSTATE = 0x202
_XSTATE_BUF = 1 << 16  # kernel xstate is 11008 bytes on AMX hosts; leave headroom

_EFLAGS_TF = 0x100
_EFLAGS_DF = 0x400
_STACK_SKIP = 1024  # below rsp: the 128-byte red zone and room for the interrupted frame
_TRAMPOLINE_GAP = 256  # between the sigframe and the stack our injected calls use

_ERESTARTSYS = 512
_ERESTARTNOINTR = 513
_ERESTARTNOHAND = 514
_ERESTART_RESTARTBLOCK = 516
_TIMER_ABSTIME = 1

# rt_sigframe layout (arch/x86/include/asm/sigframe.h, uapi ucontext/sigcontext)
FRAME_SIZE = 440  # pretcode 8 + ucontext 304 + siginfo 128
_UC_FLAGS = 8
_UC_STACK = 24  # stack_t: ss_sp, ss_flags (int + pad), ss_size
_MCONTEXT = 48  # struct sigcontext, 256 bytes
_SIGMASK = 304
_SIGINFO = 312  # not read by rt_sigreturn: our progress slot lives here
PROGRESS = _SIGINFO + 8  # [magic u64 at _SIGINFO] state u32, result i32
_UC_FP_XSTATE = 0x1
_UC_SIGCONTEXT_SS = 0x2
_UC_STRICT_RESTORE_SS = 0x4
_SS_INVALID_MODE = 3  # neither 0, SS_ONSTACK nor SS_DISABLE: the kernel leaves the altstack alone
_FP_XSTATE_MAGIC1 = 0x46505853
_FP_XSTATE_MAGIC2 = 0x46505845
_FXSAVE_SIZE = 512
_SW_BYTES = 464  # struct _fpx_sw_bytes inside the FXSAVE area
_XSTATE_BV = 512

# Trampoline progress, written by the injected code into the progress slot.
STATE_ENTERED = 1  # gilstate: in PyGILState_Ensure (waiting for the GIL); pending: queueing
STATE_RUNNING = 2  # gilstate: running the source with the GIL held
STATE_RELEASING = 3
STATE_DONE = 4  # gilstate: GIL released, about to unmap the page and sigreturn

_REG_NAMES = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9",
    "r8", "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs",
    "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
)  # fmt: skip
_SIGCONTEXT_ORDER = (
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    "rdi", "rsi", "rbp", "rbx", "rdx", "rax", "rcx", "rsp", "rip", "eflags",
)  # fmt: skip
_SYSCALL_ARGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")


class Regs(ctypes.Structure):
    """struct user_regs_struct (x86-64)."""

    _fields_ = [(name, ctypes.c_ulonglong) for name in _REG_NAMES]
    rbx: int
    r12: int
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
    cs: int
    eflags: int
    rsp: int
    ss: int


class Snapshot(NamedTuple):
    """What one interrupt-stop saw: the state the thread must get back."""

    regs: Regs
    fpstate: bytes  # the kernel's NT_X86_XSTATE image, or the 512-byte FXSAVE area
    xsave: bool
    sigmask: int

    @property
    def sp(self) -> int:
        return int(self.regs.rsp)

    @property
    def pc(self) -> int:
        return int(self.regs.rip)

    @property
    def syscall(self) -> Optional[int]:
        """The syscall the thread was interrupted in (None when it was running user code)."""
        nr = _sys.signed(self.regs.orig_rax)
        return nr if nr >= 0 else None

    @property
    def syscall_arg0(self) -> int:
        return int(self.regs.rdi)


def snapshot(tid: int) -> Snapshot:
    """Registers, extended state and signal mask of the stopped thread ``tid``."""
    regs = Regs()
    _sys.ptrace(_PTRACE_GETREGS, tid, 0, ctypes.addressof(regs))
    try:
        fp, xsave = _sys.get_regset(tid, _NT_X86_XSTATE, _XSTATE_BUF), True
    except OSError:
        buf = ctypes.create_string_buffer(_FXSAVE_SIZE)
        _sys.ptrace(_PTRACE_GETFPREGS, tid, 0, ctypes.addressof(buf))
        fp, xsave = buf.raw, False
    return Snapshot(regs, fp, xsave, _sys.get_sigmask(tid))


def pc_sp(tid: int) -> Tuple[int, int]:
    """The program counter and stack pointer of the stopped thread ``tid`` (general registers only: cheap)."""
    regs = Regs()
    _sys.ptrace(_PTRACE_GETREGS, tid, 0, ctypes.addressof(regs))
    return int(regs.rip), int(regs.rsp)


def set_regs(tid: int, regs: Regs) -> None:
    _sys.ptrace(_PTRACE_SETREGS, tid, 0, ctypes.addressof(regs))


def shadow_stack_enabled(status: Dict[str, str]) -> bool:
    """CET user shadow stacks (Linux 6.6+): our fake return/sigreturn would fault there."""
    return "shstk" in status.get("x86_Thread_features", "").split()


# --------------------------------------------------------------------------- frames


def resume_regs(saved: Regs) -> Tuple[Regs, str]:
    """The registers to sigreturn to, with the interrupted syscall's restart encoded.

    We set orig_rax = -1 in the registers we give the thread (so the kernel's own
    restart logic leaves them alone) and rt_sigreturn sets it to -1 too, so the restart
    the kernel would have done at our detach is done here: back to the ``syscall``
    instruction with rax = the syscall number. -ERESTART_RESTARTBLOCK would restart
    through restart_syscall(2), but rt_sigreturn resets the restart block, so the
    original syscall is re-issued instead. That is exact for waits with an absolute
    deadline (clock_nanosleep TIMER_ABSTIME, futex WAIT_BITSET: CPython 3.11+ sleep,
    glibc's timed waits) and for relative sleeps that asked for the remainder
    (nanosleep/clock_nanosleep with ``rem``, as glibc's sleep() does: the kernel wrote
    the time left there, so it becomes the request). A relative wait without it (poll,
    FUTEX_WAIT with a timeout) waits its full timeout again: late by at most that
    timeout, never early. -EINTR instead would be what a signal handler gives, but a C
    caller of sleep() that ignores its result would then wake up for good (measured).
    """
    regs = Regs.from_buffer_copy(saved)
    nr = _sys.signed(saved.orig_rax)
    err = -_sys.signed(saved.rax)
    if nr < 0:
        return regs, "running"
    if err not in (_ERESTARTSYS, _ERESTARTNOINTR, _ERESTARTNOHAND, _ERESTART_RESTARTBLOCK):
        return regs, "completed"
    regs.rip = (saved.rip - 2) & _sys.MASK64
    regs.rax = saved.orig_rax
    if err != _ERESTART_RESTARTBLOCK:
        return regs, "restart"
    if nr == NR_NANOSLEEP and saved.rsi:
        regs.rdi = saved.rsi  # nanosleep(req, rem): sleep what is left
    elif nr == NR_CLOCK_NANOSLEEP and not saved.rsi & _TIMER_ABSTIME and saved.r10:
        regs.rdx = saved.r10  # clock_nanosleep(clock, 0, req, rem)
    return regs, "reissue"


def fp_image(snap: Snapshot) -> bytes:
    """The fpstate a sigframe must point at, as the kernel validates it on rt_sigreturn.

    The ptrace xstate image carries the kernel's _fpx_sw_bytes (magic1, sizes, feature
    mask); the kernel also wants magic2 right after ``xstate_size``. A thread using a
    dynamically enabled feature (AMX) has state beyond the default size: then the
    whole image and its feature bits are declared. Without XSAVE only the FXSAVE area
    exists, and magic1 = 0 tells the kernel so.
    """
    img = bytearray(snap.fpstate)
    if not snap.xsave or len(img) < _XSTATE_BV + 8:
        img = img[:_FXSAVE_SIZE].ljust(_FXSAVE_SIZE, b"\0")
        struct.pack_into("<I", img, _SW_BYTES, 0)
        return bytes(img)
    magic1, _ext, features, size = struct.unpack_from("<IIQI", img, _SW_BYTES)
    in_use = struct.unpack_from("<Q", img, _XSTATE_BV)[0]
    if magic1 != _FP_XSTATE_MAGIC1 or not _FXSAVE_SIZE < size <= len(img):
        features, size = in_use | 0x3, len(img)
    if in_use & ~features:
        features, size = features | in_use, len(img)
    struct.pack_into("<IIQI", img, _SW_BYTES, _FP_XSTATE_MAGIC1, size + 4, features, size)
    return bytes(img[:size]) + struct.pack("<I", _FP_XSTATE_MAGIC2)


def build_frame(snap: Snapshot, sigreturn: int, magic: bytes) -> Frame:
    """An rt_sigframe that resumes ``snap`` exactly, placed below the red zone of its stack."""
    fp = fp_image(snap)
    fp_addr = (snap.sp - _STACK_SKIP - len(fp)) & ~63  # XRSTOR/FXRSTOR need 64-byte alignment
    addr = ((fp_addr - FRAME_SIZE) & ~15) - 8
    resume, restart = resume_regs(snap.regs)
    frame = bytearray(fp_addr - addr)
    struct.pack_into("<Q", frame, 0, sigreturn)  # pretcode: a ``ret`` at rsp == addr lands there
    flags = _UC_SIGCONTEXT_SS | _UC_STRICT_RESTORE_SS | (_UC_FP_XSTATE if snap.xsave else 0)
    struct.pack_into("<QQQiiQ", frame, _UC_FLAGS, flags, 0, 0, _SS_INVALID_MODE, 0, 0)
    values = [getattr(resume, name) for name in _SIGCONTEXT_ORDER]
    struct.pack_into("<18Q", frame, _MCONTEXT, *values)
    struct.pack_into("<4H", frame, _MCONTEXT + 144, resume.cs, 0, 0, resume.ss)
    struct.pack_into("<Q", frame, _MCONTEXT + 184, fp_addr)  # uc_mcontext.fpstate
    struct.pack_into("<Q", frame, _SIGMASK, snap.sigmask)
    frame[_SIGINFO : _SIGINFO + 16] = magic.ljust(8, b"\0")[:8] + bytes(8)
    # addr % 16 == 8, as rsp at a function entry; injected calls get their own stack below
    return Frame(addr, bytes(frame) + fp, restart, addr + PROGRESS, (addr - _TRAMPOLINE_GAP) & ~15)


def _call_regs(snap: Snapshot, pc: int, sp: int) -> Regs:
    regs = Regs.from_buffer_copy(snap.regs)
    regs.rip = pc
    regs.rsp = sp
    # -1: the kernel applies no syscall-restart fix-up to these registers at our
    # detach (or at the tracer's death); the frame holds the restart instead.
    regs.orig_rax = _sys.MASK64
    regs.eflags &= ~(_EFLAGS_TF | _EFLAGS_DF) & _sys.MASK64
    return regs


def syscall_regs(snap: Snapshot, frame: Frame, syscall_ret: int, nr: int, args: List[int]) -> Regs:
    """Run one raw syscall from a ``syscall; ret`` gadget; the ``ret`` enters the frame's sigreturn."""
    regs = _call_regs(snap, syscall_ret, frame.addr)
    regs.rax = nr
    for name, value in zip(_SYSCALL_ARGS, args):
        setattr(regs, name, value & _sys.MASK64)
    return regs


def trampoline_regs(snap: Snapshot, frame: Frame, entry: int) -> Regs:
    return _call_regs(snap, entry, frame.stack_top)


# ------------------------------------------------------------------- machine code


class _Asm:
    """Just enough of an assembler: rip-relative operands resolved against named data slots."""

    def __init__(self) -> None:
        self.code = bytearray()
        self.labels: Dict[str, int] = {}
        self._fixups: List[Tuple[int, str, int]] = []

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def emit(self, hexbytes: str) -> None:
        self.code += bytes.fromhex(hexbytes)

    def rip(self, opcode: str, slot: str, tail: str = "") -> None:
        """``opcode`` + disp32 to data slot ``slot`` (+ ``tail`` bytes, e.g. an immediate)."""
        self.emit(opcode)
        pos = len(self.code)
        self.code += b"\0\0\0\0"
        self.emit(tail)
        self._fixups.append((pos, slot, len(self.code)))

    def link(self, slots: Dict[str, int]) -> bytes:
        for pos, slot, end in self._fixups:
            struct.pack_into("<i", self.code, pos, slots[slot] - end)
        return bytes(self.code)


_SLOTS = (
    "ensure", "run", "release", "add_pending", "source", "page", "length",
    "frame", "progress", "pending_fn", "syscall_ret", "sigreturn", "mxcsr",
)  # fmt: skip
DATA = 0x100  # data slots start here; the source string follows them
SOURCE = DATA + 8 * len(_SLOTS)


def _abi_entry(asm: _Asm) -> None:
    """The C ABI state at a call: cleared DF, empty x87 stack, default MXCSR (the frame restores theirs)."""
    asm.emit("fc")  # cld
    asm.emit("dbe3")  # fninit
    asm.rip("0fae15", "mxcsr")  # ldmxcsr [mxcsr]
    asm.rip("488b1d", "progress")  # mov rbx, [progress]


def _set_state(asm: _Asm, state: int) -> None:
    asm.emit("c703" + struct.pack("<I", state).hex())  # mov dword [rbx], state


def _unmap_and(asm: _Asm) -> None:
    """munmap(page, length) from the libc gadget, whose ``ret`` continues at [rsp]."""
    asm.rip("488b3d", "page")  # mov rdi, [page]
    asm.rip("488b35", "length")  # mov rsi, [length]
    asm.emit("b8" + struct.pack("<I", NR_MUNMAP).hex())  # mov eax, 11
    asm.rip("ff25", "syscall_ret")  # jmp [syscall_ret]


def _assemble() -> _Asm:
    asm = _Asm()
    # gilstate: Ensure; SimpleString(source); Release; then, from the frame, munmap
    # this page and rt_sigreturn. Nothing runs in the page after the munmap.
    asm.label("gilstate")
    _abi_entry(asm)
    _set_state(asm, STATE_ENTERED)
    asm.rip("488b05", "ensure")  # mov rax, [ensure]
    asm.emit("ffd0")  # call rax
    asm.emit("4189c4")  # mov r12d, eax (the PyGILState_STATE)
    _set_state(asm, STATE_RUNNING)
    asm.rip("488b3d", "source")  # mov rdi, [source]
    asm.rip("488b05", "run")
    asm.emit("ffd0")
    asm.emit("894304")  # mov [rbx+4], eax
    _set_state(asm, STATE_RELEASING)
    asm.emit("4489e7")  # mov edi, r12d
    asm.rip("488b05", "release")
    asm.emit("ffd0")
    _set_state(asm, STATE_DONE)
    asm.rip("488b25", "frame")  # mov rsp, [frame]: [rsp] is the sigreturn gadget
    _unmap_and(asm)
    # pending: tail-call Py_AddPendingCall(pending_fn, source) with the frame as its
    # stack, so it returns straight into rt_sigreturn: the thread never comes back to
    # this page, which the queued call may therefore unmap whenever it runs.
    asm.label("pending")
    _abi_entry(asm)
    _set_state(asm, STATE_ENTERED)
    asm.rip("488b3d", "pending_fn")  # mov rdi, [pending_fn]
    asm.rip("488b35", "source")  # mov rsi, [source]
    asm.rip("488b25", "frame")  # mov rsp, [frame]
    asm.rip("ff25", "add_pending")  # jmp [add_pending]
    # The queued call (main thread, GIL held): run the source, then unmap this page
    # with a tail call whose ``ret`` returns 0 (munmap's result) to the eval loop.
    asm.label("pending_fn")
    asm.emit("53")  # push rbx (16-byte alignment for the call)
    asm.rip("488b05", "run")
    asm.emit("ffd0")
    asm.emit("5b")  # pop rbx
    _unmap_and(asm)
    return asm


def page_size_for(source: bytes) -> int:
    return (SOURCE + len(source) + 1 + 4095) // 4096 * 4096


def build_page(
    page: int, length: int, source: bytes, calls: PythonCalls, frame: Frame, syscall_ret: int, sigreturn: int
) -> Tuple[bytes, Dict[str, int]]:
    """The page's bytes and its entry points (absolute addresses)."""
    asm = _assemble()
    if len(asm.code) > DATA:
        raise AssertionError("trampoline code overlaps its data")
    slots = {name: DATA + 8 * i for i, name in enumerate(_SLOTS)}
    code = asm.link(slots)
    values = {
        "ensure": calls.ensure,
        "run": calls.run,
        "release": calls.release,
        "add_pending": calls.add_pending,
        "source": page + SOURCE,
        "page": page,
        "length": length,
        "frame": frame.addr,
        "progress": frame.progress,
        "pending_fn": page + asm.labels["pending_fn"],
        "syscall_ret": syscall_ret,
        "sigreturn": sigreturn,
        "mxcsr": 0x1F80,
    }
    data = b"".join(struct.pack("<Q", values[name]) for name in _SLOTS)
    blob = code.ljust(DATA, b"\xcc") + data + source + b"\0"
    entries = {name: page + asm.labels[name] for name in ("gilstate", "pending")}
    return blob, entries


def read_progress(raw: bytes) -> Tuple[int, int]:
    """(state, result) from the 8 bytes at Frame.progress."""
    state, result = struct.unpack("<Ii", raw[:8])
    return state, result
