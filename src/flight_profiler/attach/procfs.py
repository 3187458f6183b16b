"""Read-only views of a target process through /proc (Linux).

Nothing here stops or traces the target: maps, status, per-thread syscall state and
the diagnosis of permission problems.
"""

from __future__ import annotations

import errno
import os

from flight_profiler.attach.target import read_file
from flight_profiler.errors import (
    AttachError,
    FlightProfilerError,
    PermissionDeniedError,
    TargetError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for mypy only: typing costs the first attach's start-up ~3 ms
    from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple
else:
    from flight_profiler.named import NamedTuple

# x86-64 numbers of the blocking syscalls at whose boundary a thread holds no GIL,
# allocator or interpreter-internal lock (the GIL was released before blocking), so
# running Python there is as safe as a signal handler at a syscall boundary.
SAFE_SYSCALLS: Dict[int, str] = {
    0: "read",
    7: "poll",
    23: "select",
    34: "pause",
    35: "nanosleep",
    42: "connect",
    43: "accept",
    45: "recvfrom",
    47: "recvmsg",
    61: "wait4",
    128: "rt_sigtimedwait",
    202: "futex",
    230: "clock_nanosleep",
    232: "epoll_wait",
    247: "waitid",
    270: "pselect6",
    271: "ppoll",
    281: "epoll_pwait",
    288: "accept4",
    299: "recvmmsg",
    441: "epoll_pwait2",
}
SYS_FUTEX = 202

# What reading /proc/PID/... raises once the process is gone: ENOENT after it is reaped, ESRCH
# (ProcessLookupError) for some files while it is exiting or a zombie.
GONE = (FileNotFoundError, ProcessLookupError)

_CAP_SYS_PTRACE = 19


class MapEntry(NamedTuple):
    start: int
    end: int
    perms: str
    offset: int
    inode: int
    path: str  # "" for anonymous mappings; may end in " (deleted)"


class ThreadState(NamedTuple):
    tid: int
    name: str
    syscall: Optional[int]  # syscall number, None when running or not in a syscall
    arg0: Optional[int]  # first syscall argument (the futex address for futex)

    @property
    def syscall_name(self) -> Optional[str]:
        if self.syscall is None:
            return None
        return SAFE_SYSCALLS.get(self.syscall, f"syscall {self.syscall}")


def proc_path(pid: int, *parts: str) -> str:
    return os.path.join(f"/proc/{pid}", *parts)


def target_file(pid: int, path: str) -> str:
    """Path under which we can open a file the target has mapped.

    Going through /proc/PID/root resolves the path in the target's mount namespace,
    so targets inside containers work from the host.
    """
    return proc_path(pid, "root") + path


def _read_text(path: str) -> str:
    # the file system's encoding, as os.fsdecode: a file name that is not UTF-8 stays what it is
    return read_file(path).decode("utf-8", "surrogateescape")


def read_status_file(path: str) -> Dict[str, str]:
    """A /proc status file as a dict (OSError if it cannot be read)."""
    out: Dict[str, str] = {}
    for line in _read_text(path).splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def read_status(pid: int) -> Dict[str, str]:
    """/proc/PID/status as a dict; TargetError if the process does not exist."""
    try:
        return read_status_file(proc_path(pid, "status"))
    except GONE:
        raise TargetError(f"no process with pid {pid} (it is not running)") from None


def read_maps_text(pid: int) -> str:
    """/proc/PID/maps as text, for a caller that looks at a few lines (read_maps parses them all)."""
    try:
        return _read_text(proc_path(pid, "maps"))
    except GONE:
        raise TargetError(f"no process with pid {pid} (it is not running)") from None
    except PermissionError as exc:
        raise PermissionDeniedError(f"cannot read the memory map of pid {pid}: {permission_hint(pid)}") from exc


def read_maps(pid: int) -> List[MapEntry]:
    entries: List[MapEntry] = []
    for line in read_maps_text(pid).splitlines():
        entry = _map_entry(line)
        if entry is not None:
            entries.append(entry)
    return entries


def _map_entry(line: str) -> Optional[MapEntry]:
    fields = line.split(None, 5)
    if len(fields) < 5:
        return None
    lo, _, hi = fields[0].partition("-")
    # positional: by keyword a NamedTuple takes twice as long to make (0.43 against 0.22 us), ~150 per read
    return MapEntry(
        int(lo, 16), int(hi, 16), fields[1], int(fields[2], 16), int(fields[4]), fields[5] if len(fields) > 5 else ""
    )


def find_map(pid: int, addr: int) -> Optional[MapEntry]:
    """The mapping of ``pid`` that holds ``addr`` (a fresh read), None if none does.

    Only the address range of each line is parsed, and the whole entry of the one that matches.
    """
    for line in read_maps_text(pid).splitlines():
        lo, _, rest = line.partition("-")
        if not rest or int(lo, 16) > addr:
            continue
        if addr < int(rest.split(None, 1)[0], 16):
            entry = _map_entry(line)
            if entry is not None:
                return entry
    return None


def thread_name(pid: int, tid: int) -> str:
    """The thread's name (its comm; the target's words), or "" once it is gone."""
    try:
        return _read_text(proc_path(pid, "task", str(tid), "comm")).strip()
    except OSError:
        return ""


def thread_ids(pid: int) -> List[int]:
    try:
        return sorted(int(t) for t in os.listdir(proc_path(pid, "task")))
    except GONE:
        raise TargetError(f"no process with pid {pid} (it is not running)") from None


def thread_tracer(pid: int, tid: int) -> Optional[int]:
    """The pid tracing thread ``tid`` of ``pid`` (0: none), None if the thread has gone."""
    try:
        return tracer_pid(read_status_file(proc_path(pid, "task", str(tid), "status")))
    except OSError:
        return None


def read_thread_state(pid: int, tid: int) -> Optional[ThreadState]:
    """One thread's syscall state, None if the thread has gone.

    /proc/PID/task/TID/syscall is "running", "-1 SP PC" (blocked outside a syscall),
    or "NR ARG1..ARG6 SP PC" with NR decimal and the rest hex.
    """
    try:
        text = _read_text(proc_path(pid, "task", str(tid), "syscall")).split()
    except GONE:
        return None
    except PermissionError as exc:
        raise PermissionDeniedError(f"cannot read thread states of pid {pid}: {permission_hint(pid)}") from exc
    nr: Optional[int] = None
    arg0: Optional[int] = None
    if text and text[0] not in ("running", "-1") and len(text) >= 2:
        nr = int(text[0])
        arg0 = int(text[1], 16)
    return ThreadState(tid, thread_name(pid, tid), nr, arg0)


def thread_states(pid: int) -> List[ThreadState]:
    """Syscall state of every thread of ``pid`` without stopping anything.

    A snapshot: a thread may have moved on by the time the caller acts on it, so
    the injector re-checks the registers after it has stopped the thread.
    """
    out: List[ThreadState] = []
    for tid in thread_ids(pid):
        state = read_thread_state(pid, tid)
        if state is not None:
            out.append(state)
    return out


def is_safe_syscall(nr: Optional[int], arg0: Optional[int], unsafe_ranges: Sequence[Tuple[int, int]]) -> bool:
    """True for a whitelisted blocking syscall that is not a wait for the GIL.

    A futex whose address lies inside the interpreter's runtime state is the GIL's
    mutex/condvar (the thread is inside take_gil, possibly half-way through
    pthread_cond_wait): running Python there re-enters glibc's condvar and can deadlock
    the whole process.
    """
    if nr is None or nr not in SAFE_SYSCALLS:
        return False
    if nr == SYS_FUTEX and arg0 is not None:
        return not any(lo <= arg0 < hi for lo, hi in unsafe_ranges)
    return True


def is_safe_parked(
    state: ThreadState,
    runtime_range: Tuple[int, int],
    extra_ranges: Sequence[Tuple[int, int]] = (),
) -> bool:
    """Whether ``state`` (from thread_states) is parked where gilstate injection is safe.

    ``runtime_range`` is (start, end) of _PyRuntime (PythonApi.runtime_range); in
    CPython 3.8-3.15 the main interpreter's GIL lives inside it.
    """
    return is_safe_syscall(state.syscall, state.arg0, [runtime_range, *extra_ranges])


def tracer_pid(status: Dict[str, str]) -> int:
    try:
        return int(status.get("TracerPid", "0"))
    except ValueError:
        return 0


def process_name(pid: int) -> str:
    try:
        return _read_text(proc_path(pid, "comm")).strip()
    except OSError:
        return "?"


def check_not_exited(pid: int, status: Dict[str, str]) -> None:
    """A zombie's maps and executable are gone: say it exited, before anything reads them."""
    state = status.get("State", "")
    if state.startswith(("Z", "X")):
        raise TargetError(f"pid {pid} has exited (state {state})")


def check_attachable(pid: int, tid: Optional[int] = None) -> Dict[str, str]:
    """Refuse early, with a useful message, what ptrace would refuse or break.

    ``tid``: the thread we will trace, if not the main one (tracers such as py-spy
    attach to every thread, and the kernel allows one tracer per thread). Returns the
    target's status dict.
    """
    status = read_status(pid)
    check_not_exited(pid, status)
    state = status.get("State", "")
    if state.startswith("T") and "tracing" not in state:
        raise TargetError(f"pid {pid} is stopped (job control); resume it with: kill -CONT {pid}")
    tracer = tracer_pid(status)
    if not tracer and tid is not None and tid != pid:
        thread_tracer_pid = thread_tracer(pid, tid)
        if thread_tracer_pid is None:
            raise TargetError(f"pid {pid} has no thread {tid}")
        tracer = thread_tracer_pid
    if tracer:
        raise AttachError(
            f"pid {pid} is already being traced by pid {tracer} ({process_name(tracer)}); only one debugger/profiler "
            "can attach at a time: stop that one first"
        )
    return status


def _yama_scope() -> Optional[int]:
    try:
        return int(_read_text("/proc/sys/kernel/yama/ptrace_scope").strip())
    except (OSError, ValueError):
        return None


def _own_status() -> Dict[str, str]:
    try:
        return read_status(os.getpid())
    except TargetError:
        return {}


def _has_cap_sys_ptrace(status: Dict[str, str]) -> bool:
    try:
        return bool(int(status.get("CapEff", "0"), 16) >> _CAP_SYS_PTRACE & 1)
    except ValueError:
        return False


def _in_container() -> bool:
    if os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"):
        return True
    try:
        return "container=" in _read_text("/proc/1/environ").replace("\0", " ")
    except OSError:
        return False


def permission_hint(pid: int) -> str:
    """Explain why the kernel may refuse to let us trace ``pid`` and how to fix it."""
    me = _own_status()
    uid = os.getuid()
    cap = _has_cap_sys_ptrace(me)
    reasons: List[str] = []
    try:
        target_uids = read_status(pid).get("Uid", "").split()
    except TargetError:
        target_uids = []
    if target_uids and not cap and any(int(u) != uid for u in target_uids):
        reasons.append(f"the target runs as uid {target_uids[0]} and you are uid {uid}: run as that user or as root")
    scope = _yama_scope()
    if scope == 1 and not cap:
        reasons.append(
            "Yama ptrace_scope is 1 (only descendants may be traced): run with sudo, or "
            "allow it with: echo 0 | sudo tee /proc/sys/kernel/yama/ptrace_scope"
        )
    elif scope == 2 and not cap:
        reasons.append("Yama ptrace_scope is 2 (admin only): run as root or with CAP_SYS_PTRACE")
    elif scope == 3:
        reasons.append("Yama ptrace_scope is 3 (ptrace disabled until reboot): nothing can attach")
    if not cap and _in_container():
        reasons.append(
            "inside a container ptrace needs CAP_SYS_PTRACE: docker run --cap-add=SYS_PTRACE "
            "(Kubernetes: securityContext.capabilities.add: [SYS_PTRACE])"
        )
    if me.get("Seccomp", "0") == "2":
        reasons.append(
            "this process runs under a seccomp filter that may forbid ptrace "
            "(docker: --security-opt seccomp=unconfined)"
        )
    if not reasons:
        reasons.append(
            "the target may have made itself non-dumpable (setuid binary or "
            "prctl(PR_SET_DUMPABLE, 0)); run as root with CAP_SYS_PTRACE"
        )
    return "; ".join(reasons)


def permission_error(pid: int, what: str, err: int) -> FlightProfilerError:
    """Map an errno from ptrace/process_vm_* to the exception the user should see."""
    if err == errno.ESRCH:
        return TargetError(f"pid {pid} is gone (it exited before we could {what} it)")
    if err in (errno.EPERM, errno.EACCES):
        return PermissionDeniedError(f"not allowed to {what} pid {pid}: {permission_hint(pid)}")
    return AttachError(f"{what} pid {pid} failed: {os.strerror(err)}")
