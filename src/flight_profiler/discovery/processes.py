"""The Python processes on this machine, and whether the caller may attach to each.

Read-only: /proc and nothing else (no ptrace, no connection to an agent), so ``ps``
is safe to run against anything. The verdict reuses the attach sequence's own checks
(``target.inspect``, ``procfs.check_attachable``, ``target.check_remote_debug_allowed``)
after the ones the kernel would apply (uid, CAP_SYS_PTRACE, Yama), so "attachable"
means the attach would get past them.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..attach import headroom, paths, procfs
from ..attach.target import SUPPORTED, Target, check_remote_debug_allowed, inspect, supported_range
from ..errors import FlightProfilerError

# python3.11, libpython3.11.so.1.0, python3.14t: the interpreter's version is in its file name
_VERSION_IN_NAME = re.compile(r"^(?:lib)?python(\d)\.(\d+)")
# what argv[0] looks like when we cannot read the memory map (another user's process)
_PYTHON_ARGV0 = re.compile(r"^python(\d+(\.\d+)?)?t?$")
_CAP_SYS_PTRACE = 19

# server/launcher families whose parent/worker trees we name; matched on argv words
_FAMILIES: dict[str, tuple[str, ...]] = {
    "gunicorn": ("gunicorn",),
    "uvicorn": ("uvicorn",),
    "hypercorn": ("hypercorn",),
    "torchrun": ("torchrun", "torch.distributed.run", "torch.distributed.launch"),
    "celery": ("celery",),
    "uwsgi": ("uwsgi",),
}
_PARENT_ROLE = {"uvicorn": "supervisor", "torchrun": "launcher", "celery": "main"}  # default: "master"
_MULTIPROCESSING_ROLES = (
    ("multiprocessing.resource_tracker", "multiprocessing resource tracker"),
    ("multiprocessing.forkserver", "multiprocessing forkserver"),
    ("spawn_main", "multiprocessing worker"),
)


@dataclass(frozen=True)
class Caller:
    """Who asks: what the kernel looks at when it decides whether we may trace a process."""

    uid: int
    cap_sys_ptrace: bool
    yama_scope: int | None

    @classmethod
    def current(cls) -> Caller:
        try:
            capabilities = int(procfs.read_status(os.getpid()).get("CapEff", "0"), 16)
        except (FlightProfilerError, ValueError):
            capabilities = 0
        return cls(os.getuid(), bool(capabilities >> _CAP_SYS_PTRACE & 1), _yama_scope())


@dataclass
class PythonProcess:
    pid: int
    ppid: int
    uid: int
    user: str
    python: str | None  # "3.11"; None when its memory map cannot be read
    cmdline: str
    attachable: bool
    reason: str | None  # why not, in one line, with the fix where there is one
    agent: bool  # our agent already runs in it (its socket is there): attaching reuses it
    container: bool  # it lives in another mount namespace
    role: str | None = None  # "gunicorn master", "torchrun worker (rank 1)", ...
    children: list[int] = field(default_factory=list)  # pids of its Python child processes

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "ppid": self.ppid,
            "python": self.python,
            "user": self.user,
            "uid": self.uid,
            "cmdline": self.cmdline,
            "attachable": self.attachable,
            "reason": self.reason,
            "agent": self.agent,
            "container": self.container,
            "role": self.role,
            "children": list(self.children),
        }


def scan(caller: Caller | None = None) -> list[PythonProcess]:
    """Every Python process we can see except ourselves, by pid, with families linked."""
    who = caller or Caller.current()
    me = os.getpid()
    found = [proc for proc in (describe(pid, who) for pid in _pids() if pid != me) if proc is not None]
    link_families(found)
    return found


def describe(pid: int, caller: Caller) -> PythonProcess | None:
    """``pid`` as a PythonProcess, or None when it is not Python (or has gone)."""
    try:
        status = procfs.read_status(pid)
    except (FlightProfilerError, OSError):
        return None
    argv = _argv(pid)
    if not argv:
        return None  # a kernel thread, or a zombie
    readable, version, maps = _mapped_version(pid)
    if version is None and (readable or not _looks_like_python(argv, status.get("Name", ""))):
        return None
    uid = _first_int(status.get("Uid", ""))
    inspected = _inspect_once(pid, maps)
    agent = version is not None and agent_running(pid, inspected)
    reason = _frozen(pid) if agent else _why_not(pid, version, uid, caller, inspected)
    return PythonProcess(
        pid=pid,
        ppid=_first_int(status.get("PPid", "")),
        uid=uid,
        user=_user(uid),
        python="%d.%d" % version if version else None,
        cmdline=" ".join(argv),
        attachable=reason is None,
        reason=reason,
        agent=agent,
        container=not _same_root(pid),
    )


def link_families(processes: list[PythonProcess]) -> None:
    """Record each process's Python children and name the parts of known server trees."""
    by_pid = {proc.pid: proc for proc in processes}
    for proc in processes:
        parent = by_pid.get(proc.ppid)
        if parent is not None:
            parent.children.append(proc.pid)
    for proc in processes:
        parent = by_pid.get(proc.ppid)
        proc.role = _role(proc, parent)
        if proc.role is None and proc.children:
            family = _family(proc.cmdline)
            if family:
                proc.role = "%s %s" % (family, _PARENT_ROLE.get(family, "master"))


def roots(processes: list[PythonProcess]) -> list[PythonProcess]:
    """The processes whose parent is not one of ``processes``: the tops of the trees."""
    pids = {proc.pid for proc in processes}
    return [proc for proc in processes if proc.ppid not in pids]


def _role(proc: PythonProcess, parent: PythonProcess | None) -> str | None:
    for marker, role in _MULTIPROCESSING_ROLES:
        if marker in proc.cmdline:
            return role
    if parent is None:
        return None
    family = _family(parent.cmdline)
    if family is None:
        return None
    rank = _environ(proc.pid).get("RANK") if family == "torchrun" else None
    return "%s worker%s" % (family, " (rank %s)" % rank if rank else "")


def _family(cmdline: str) -> str | None:
    words = cmdline.split()
    names = {os.path.basename(word).split(":")[0] for word in words[:4]}
    if words and words[0].endswith(":"):  # setproctitle: "gunicorn: master [app]"
        names.add(words[0][:-1])
    for family, markers in _FAMILIES.items():
        if names.intersection(markers):
            return family
    return None


def _inspect_once(pid: int, maps: str | None = None) -> Callable[[], Target]:
    """``inspect(pid)``, run at most once for one ``describe``: whether an agent runs there and whether
    we may attach both need it (a group's selection ran it twice per process, in turn, before any attach),
    with the map ``describe`` has just read."""
    outcome: list[Target | FlightProfilerError | OSError] = []

    def inspected() -> Target:
        if not outcome:
            try:
                outcome.append(inspect(pid, maps=maps))
            except (FlightProfilerError, OSError) as exc:
                outcome.append(exc)
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    return inspected


def _why_not(
    pid: int,
    version: tuple[int, int] | None,
    uid: int,
    caller: Caller,
    inspected: Callable[[], Target] | None = None,
) -> str | None:
    """None when the caller may attach to ``pid``; otherwise the first obstacle."""
    if uid != caller.uid and not caller.cap_sys_ptrace:
        return "it runs as %s (uid %d) and you are uid %d: run as that user or as root" % (_user(uid), uid, caller.uid)
    if version is None:
        return "cannot read its memory map: %s" % procfs.permission_hint(pid)
    low, high = SUPPORTED
    if not low <= version <= high:
        return "Python %d.%d is not supported (flight_profiler supports %s)" % (*version, supported_range())
    obstacle = _yama_obstacle(caller)
    if obstacle:
        return obstacle
    try:
        (inspected or _inspect_once(pid))()
        procfs.check_attachable(pid)
        check_remote_debug_allowed(pid)
        headroom.check_not_frozen(pid)
        headroom.check(pid, force=False)  # what the attach would refuse: too close to a memory limit
    except FlightProfilerError as exc:
        return str(exc)
    return None


def _frozen(pid: int) -> str | None:
    """A frozen process's agent cannot answer either."""
    try:
        headroom.check_not_frozen(pid)
    except FlightProfilerError as exc:
        return str(exc)
    return None


def _yama_obstacle(caller: Caller) -> str | None:
    if caller.yama_scope == 3:
        return "Yama ptrace_scope is 3: ptrace is disabled until reboot"
    if caller.cap_sys_ptrace:
        return None
    if caller.yama_scope == 2:
        return "Yama ptrace_scope is 2 (admin only): run as root or with CAP_SYS_PTRACE"
    if caller.yama_scope == 1:
        return (
            "Yama ptrace_scope is 1 (only descendants may be traced): run with sudo, or "
            "echo 0 | sudo tee /proc/sys/kernel/yama/ptrace_scope"
        )
    return None


def agent_running(pid: int, inspected: Callable[[], Target] | None = None) -> bool:
    """Whether our agent's socket is there for ``pid`` (attaching would reuse it, no injection)."""
    try:
        target = (inspected or _inspect_once(pid))()
    except FlightProfilerError:
        return False
    return paths.socket_seen(target) is not None


def _mapped_version(pid: int) -> tuple[bool, tuple[int, int] | None, str | None]:
    """(could we read the map, the Python version mapped as executable code, the map's text)."""
    try:
        text = procfs.read_maps_text(pid)  # only its executable file mappings matter: no full parse
    except FlightProfilerError:  # another user's process, non-dumpable, or gone
        return False, None, None
    for line in text.splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6 and "x" in fields[1]:
            match = _VERSION_IN_NAME.match(os.path.basename(fields[5]))
            if match:
                return True, (int(match.group(1)), int(match.group(2))), text
    return True, None, text


def _looks_like_python(argv: list[str], name: str) -> bool:
    return bool(_PYTHON_ARGV0.match(os.path.basename(argv[0])) or _PYTHON_ARGV0.match(name))


def _argv(pid: int) -> list[str]:
    try:
        with open(procfs.proc_path(pid, "cmdline"), "rb") as fh:
            raw = fh.read()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _environ(pid: int) -> dict[str, str]:
    """The process's environment when we may read it (same user or root), else empty."""
    try:
        with open(procfs.proc_path(pid, "environ"), "rb") as fh:
            raw = fh.read()
    except OSError:
        return {}
    pairs = (item.decode("utf-8", "replace").partition("=") for item in raw.split(b"\0") if b"=" in item)
    return {key: value for key, _, value in pairs}


def _pids() -> list[int]:
    return sorted(int(name) for name in os.listdir("/proc") if name.isdigit())


def _same_root(pid: int) -> bool:
    try:
        mine, theirs = os.stat("/"), os.stat(procfs.proc_path(pid, "root") + "/")
    except OSError:
        return True  # cannot tell (another user's process): assume the common case
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _first_int(text: str) -> int:
    words = text.split()
    return int(words[0]) if words and words[0].lstrip("-").isdigit() else -1


def _yama_scope() -> int | None:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None
