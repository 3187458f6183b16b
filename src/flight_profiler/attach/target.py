"""What we learn about a target before touching it (client side, read-only).

Everything here reads /proc only: nothing is stopped, nothing is written.
"""

from __future__ import annotations

import os
import re
import sys

from ..errors import PermissionDeniedError, TargetError

# Neither typing nor procfs (its typing and tables) at run time: ~4 ms of every --cmd's start-up (issue 14)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from ..named import NamedTuple

_VERSION_IN_PATH = re.compile(r"python(\d)\.(\d+)(t?)")
SUPPORTED = ((3, 8), (3, 15))
# The injector and the agent are written for the GIL build on Linux x86-64; what other
# platforms would take is planned in docs/platforms.md. Refused before anything is read
# from the target's memory, let alone stopped.
INJECT_MACHINES = ("x86_64",)


def supported_range() -> str:
    """'3.8 to 3.15', for messages (derived from SUPPORTED, so it cannot go stale)."""
    (low_major, low_minor), (high_major, high_minor) = SUPPORTED
    return "%d.%d to %d.%d" % (low_major, low_minor, high_major, high_minor)


def check_platform() -> None:
    """Refuse at once on a platform the injector does not support (the 'stack' reader may still work)."""
    if not sys.platform.startswith("linux"):
        raise TargetError("attaching needs Linux (this is %s); see docs/platforms.md for the macOS plan" % sys.platform)
    machine = os.uname().machine
    if machine not in INJECT_MACHINES:
        raise TargetError(
            "attaching is implemented for Linux x86-64 only (this machine is %s; see docs/platforms.md); "
            "'stack' reads stacks from outside where py-spy supports the machine" % machine
        )


class Target(NamedTuple):
    pid: int
    uid: int
    version: tuple[int, int]
    exe: str  # the interpreter binary as seen from our mount namespace
    ns_pid: int  # the pid inside the target's own pid namespace
    same_root: bool  # False when the target lives in another mount namespace (container)
    uids: tuple[int, ...] = ()  # real, effective, saved, file-system uid
    gid: int = 0
    groups: tuple[int, ...] = ()  # supplementary groups
    start: int = 0  # start time in clock ticks since boot (/proc/<pid>/stat field 22)
    pid_ns: int = 0  # inode of the target's pid namespace
    same_mount_ns: bool = True  # False: its /tmp is not ours (PrivateTmp=, containers)
    dumpable: bool = True  # /proc/<pid> owned by root while the process runs as someone else: not dumpable

    @property
    def root(self) -> str:
        return "/" if self.same_root else "/proc/%d/root" % self.pid

    @property
    def identity(self) -> tuple[int, int, int]:
        """(pid namespace, pid in it, start time): unique among live processes, never reused at once."""
        return (self.pid_ns, self.ns_pid, self.start)


def inspect(pid: int, armed: bool = False, maps: str | None = None) -> Target:
    """Check that ``pid`` is a live CPython we support, and describe it.

    ``armed``: only to reach an agent that already listens (a pre-armed one,
    ``flight_profiler.arm``) in a process whose memory maps and namespaces we may
    not read (not dumpable, and we lack CAP_SYS_PTRACE): the version is then
    unknown (0, 0), the pid namespace is ours when the target has a pid in no
    other, and unreadable namespaces count as ours; the agent's socket is found by
    that name or not at all, and the peer check still proves who answers.

    ``maps``: the text of /proc/<pid>/maps as its caller has just read it (``ps`` and a group's
    selection read it first to tell Python processes from others), so that it is not read again.
    """
    check_platform()
    if pid <= 0 or not os.path.exists("/proc/%d" % pid):
        raise TargetError("no process with pid %d" % pid)
    status = _status(pid)
    state = status.get("State", "")
    # as procfs.check_not_exited, inline: procfs stays off the light client's path
    if state.startswith(("Z", "X")):  # its maps are empty now: "not a CPython process" would mislead
        raise TargetError("pid %d has exited (state %s)" % (pid, state))
    try:
        version = _python_version(pid, maps)
    except PermissionDeniedError:
        if not armed:
            raise
        version = (0, 0)
    uids = tuple(int(u) for u in status.get("Uid", "0 0 0 0").split())
    ns_pids = status.get("NSpid", str(pid)).split()
    pid_ns, mount_ns, own_mount_ns = _ns_inode(pid, "pid"), _ns_inode(pid, "mnt"), _ns_inode(os.getpid(), "mnt")
    if armed and not pid_ns and len(ns_pids) == 1:
        pid_ns = _ns_inode(os.getpid(), "pid")
    if armed and not mount_ns:
        mount_ns = own_mount_ns
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        exe = ""
    return Target(
        pid=pid,
        uid=uids[0],
        version=version,
        exe="/proc/%d/exe" % pid if exe else "",
        ns_pid=int(ns_pids[-1]),
        same_root=_same_root(pid),
        uids=uids,
        gid=int(status.get("Gid", "0").split()[0]),
        groups=tuple(int(g) for g in status.get("Groups", "").split()),
        start=start_time(pid),
        pid_ns=pid_ns,
        same_mount_ns=mount_ns == own_mount_ns,
        dumpable=_dumpable(pid, uids),
    )


def start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat; 0 when the process is gone."""
    try:
        fields = stat_fields("/proc/%d/stat" % pid)
    except OSError:
        return 0
    return int(fields[19]) if len(fields) > 19 else 0


def stat_fields(path: str) -> list[bytes]:
    """The fields of a /proc/<pid>[/task/<tid>]/stat after the command name, from field 3 (the state) on.

    The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    """
    text = read_file(path)
    return text[text.rfind(b")") + 2 :].split()


def _ns_inode(pid: int, kind: str) -> int:
    try:
        return os.stat("/proc/%d/ns/%s" % (pid, kind)).st_ino
    except OSError:
        return 0


def _dumpable(pid: int, uids: tuple[int, ...]) -> bool:
    """The kernel gives /proc/<pid>/maps (and the other per-process files) to root when a process is
    not dumpable (setuid, PR_SET_DUMPABLE 0); otherwise they belong to its effective uid."""
    try:
        owner = os.stat("/proc/%d/maps" % pid).st_uid
    except OSError:
        return True
    return owner == uids[1] if len(uids) > 1 else True


def check_credentials(target: Target, force: bool) -> None:
    """Refuse targets whose files we cannot make private to one user, or that asked not to be inspected."""
    real, effective, saved = (target.uids + (target.uid,) * 3)[:3]
    if not real == effective == saved:
        raise TargetError(
            "pid %d runs with real uid %d, effective uid %d, saved uid %d (setuid-style): refused, the "
            "agent's files could not be private to one user (no override)" % (target.pid, real, effective, saved)
        )
    if not target.dumpable and os.geteuid() == 0 and not force:
        raise TargetError(
            "pid %d made itself non-dumpable (it asked not to be inspected); use --force to attach anyway" % target.pid
        )


def check_remote_debug_allowed(pid: int) -> None:
    """Honour the target's opt-out (PEP 768 spelling; the underscore form does nothing in CPython)."""
    environ = _read("/proc/%d/environ" % pid).split(b"\0")
    if any(
        item.startswith(b"PYTHON_DISABLE_REMOTE_DEBUG=") and item != b"PYTHON_DISABLE_REMOTE_DEBUG=" for item in environ
    ):
        raise TargetError(
            "pid %d opted out of remote debugging (PYTHON_DISABLE_REMOTE_DEBUG is set); use --force to attach anyway"
            % pid
        )
    argv = _read("/proc/%d/cmdline" % pid).split(b"\0")
    for index, arg in enumerate(argv):
        if arg == b"-Xdisable-remote-debug" or (
            arg == b"-X" and argv[index + 1 : index + 2] == [b"disable-remote-debug"]
        ):
            raise TargetError(
                "pid %d opted out of remote debugging (-X disable-remote-debug); use --force to attach anyway" % pid
            )


def _python_version(pid: int, maps: str | None = None) -> tuple[int, int]:
    if maps is None:
        maps = _read("/proc/%d/maps" % pid).decode("utf-8", "replace")
    for line in maps.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and "x" in parts[1]:
            match = _VERSION_IN_PATH.search(os.path.basename(parts[5]))
            if match:
                version = (int(match.group(1)), int(match.group(2)))
                if match.group(3):
                    raise TargetError(
                        "pid %d runs a free-threaded build of Python %d.%d (%s); attaching to free-threaded builds "
                        "is not supported yet (docs/platforms.md); 'stack' still works from outside"
                        % (pid, version[0], version[1], os.path.basename(parts[5]))
                    )
                return _supported(version, pid)
    raise TargetError("pid %d is not a CPython process (no python binary or libpython mapped)" % pid)


def _supported(version: tuple[int, int], pid: int) -> tuple[int, int]:
    low, high = SUPPORTED
    if not low <= version <= high:
        raise TargetError("pid %d runs Python %d.%d; flight_profiler supports %s" % (pid, *version, supported_range()))
    return version


def _same_root(pid: int) -> bool:
    try:
        theirs, ours = os.stat("/proc/%d/root/" % pid), os.stat("/")
    except OSError:
        return True
    return (theirs.st_ino, theirs.st_dev) == (ours.st_ino, ours.st_dev)


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in _read("/proc/%d/status" % pid).decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def read_file(path: str) -> bytes:
    """A whole (/proc) file with an open, reads until the end and a close, nothing else.

    ``open()`` adds an fstat, an ioctl and an lseek, and every system call lets go of the GIL:
    a group attach reads several of these files per target on 32 threads that queue for it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _read(path: str) -> bytes:
    try:
        return read_file(path)
    except OSError as exc:
        from . import procfs  # only on the way to an error

        if isinstance(exc, procfs.GONE):
            raise TargetError("the process went away (%s is gone)" % os.path.dirname(path)) from None
        if not isinstance(exc, PermissionError):
            raise
        pid = int(path.split("/")[2])
        raise PermissionDeniedError("cannot read %s: %s" % (path, procfs.permission_hint(pid))) from None
