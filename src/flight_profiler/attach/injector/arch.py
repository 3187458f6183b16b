"""The architecture interface of the injector, and the choice of implementation.

The session (``session.py``) only speaks this interface; ``x86_64.py`` implements it.
An aarch64 port is one more module with the same names (its sigframe, its
``svc #0; ret`` and ``mov x8, #139; svc #0`` gadgets, its trampoline) and one more
line in ``current``. Other machines are refused before anything touches the target.
"""

from __future__ import annotations

import os

from flight_profiler.errors import InjectionError

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for mypy only: typing, dataclasses and inspect cost the first attach ~12 ms
    from typing import Any, Dict, List, NamedTuple, Protocol, Tuple
else:
    from flight_profiler.named import NamedTuple

    Protocol = object  # an interface for mypy only: nothing checks it at run time


class Frame(NamedTuple):
    """A signal frame that returns the thread to a saved state, and where it goes on its stack."""

    addr: int  # start of the frame: [addr, addr + len(blob)) is written below the red zone
    blob: bytes
    restart: str  # how the interrupted syscall resumes: restart, reissue, completed, running
    progress: int  # address of the (state u32, result i32) slot the trampoline updates
    stack_top: int  # where the injected calls' own stack starts (below the frame)


class PythonCalls(NamedTuple):
    """Runtime addresses of the C-API functions the trampoline calls."""

    ensure: int
    run: int
    release: int
    add_pending: int


class Snapshot(Protocol):
    """The state an interrupt-stop saw (registers, extended state, signal mask)."""

    @property
    def sp(self) -> int: ...

    @property
    def pc(self) -> int: ...

    @property
    def syscall(self) -> int | None: ...

    @property
    def syscall_arg0(self) -> int: ...


class Arch(Protocol):
    NAME: str
    NR_MMAP: int
    NR_MUNMAP: int
    AUDIT_ARCH: int  # seccomp_data.arch of a native call
    SECCOMP_CALLS: Tuple[Tuple[str, int, Tuple[int, ...]], ...]  # what an attach makes the target call
    SYSCALL_RET: bytes
    SIGRETURN: Tuple[bytes, ...]
    STATE_ENTERED: int
    STATE_RUNNING: int
    STATE_RELEASING: int
    STATE_DONE: int

    def snapshot(self, tid: int) -> Any: ...

    def pc_sp(self, tid: int) -> Tuple[int, int]: ...

    def set_regs(self, tid: int, regs: Any) -> None: ...

    def shadow_stack_enabled(self, status: Dict[str, str]) -> bool: ...

    def build_frame(self, snap: Any, sigreturn: int, magic: bytes) -> Frame: ...

    def syscall_regs(self, snap: Any, frame: Frame, syscall_ret: int, nr: int, args: List[int]) -> Any: ...

    def trampoline_regs(self, snap: Any, frame: Frame, entry: int) -> Any: ...

    def page_size_for(self, source: bytes) -> int: ...

    def build_page(
        self,
        page: int,
        length: int,
        source: bytes,
        calls: PythonCalls,
        frame: Frame,
        syscall_ret: int,
        sigreturn: int,
    ) -> Tuple[bytes, Dict[str, int]]: ...

    def read_progress(self, raw: bytes) -> Tuple[int, int]: ...


def this_machine() -> str:
    """The kernel's name for this machine (``uname -m``), lower case: platform.machine's, without
    importing platform (~2 ms of the first attach's start-up)."""
    return os.uname().machine.lower()


def current() -> Arch:
    """This machine's implementation; a clear refusal elsewhere (before any ptrace request)."""
    machine = this_machine()
    from . import x86_64

    if machine in x86_64.MACHINES:
        return x86_64
    raise InjectionError(
        f"the ptrace injector supports Linux x86-64 only; this machine is {machine or 'unknown'} "
        "(on Python 3.14+ the PEP 768 path may still work)"
    )
