"""What we learn about a target before touching it (client side, read-only).

Everything here reads /proc only: nothing is stopped, nothing is written.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from ..errors import PermissionDeniedError, TargetError
from .procfs import permission_hint

_VERSION_IN_PATH = re.compile(r"python(\d)\.(\d+)")
SUPPORTED = ((3, 8), (3, 15))


class Target(NamedTuple):
    pid: int
    uid: int
    version: tuple[int, int]
    exe: str  # the interpreter binary as seen from our mount namespace
    ns_pid: int  # the pid inside the target's own pid namespace
    same_root: bool  # False when the target lives in another mount namespace (container)

    @property
    def root(self) -> str:
        return "/" if self.same_root else "/proc/%d/root" % self.pid


def inspect(pid: int) -> Target:
    """Check that ``pid`` is a live CPython we support, and describe it."""
    if pid <= 0 or not os.path.exists("/proc/%d" % pid):
        raise TargetError("no process with pid %d" % pid)
    status = _status(pid)
    version = _python_version(pid)
    uid = int(status.get("Uid", "0").split()[0])
    ns_pids = status.get("NSpid", str(pid)).split()
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        exe = ""
    return Target(
        pid=pid,
        uid=uid,
        version=version,
        exe="/proc/%d/exe" % pid if exe else "",
        ns_pid=int(ns_pids[-1]),
        same_root=_same_root(pid),
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


def _python_version(pid: int) -> tuple[int, int]:
    maps = _read("/proc/%d/maps" % pid).decode("utf-8", "replace")
    for line in maps.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and "x" in parts[1]:
            match = _VERSION_IN_PATH.search(os.path.basename(parts[5]))
            if match:
                return _supported((int(match.group(1)), int(match.group(2))), pid)
    raise TargetError("pid %d is not a CPython process (no python binary or libpython mapped)" % pid)


def _supported(version: tuple[int, int], pid: int) -> tuple[int, int]:
    low, high = SUPPORTED
    if not low <= version <= high:
        raise TargetError("pid %d runs Python %d.%d; flight_profiler supports 3.8 to 3.15" % (pid, *version))
    return version


def _same_root(pid: int) -> bool:
    try:
        return (
            os.stat("/proc/%d/root/" % pid).st_ino == os.stat("/").st_ino
            and os.stat("/proc/%d/root/" % pid).st_dev == os.stat("/").st_dev
        )
    except OSError:
        return True


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in _read("/proc/%d/status" % pid).decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise TargetError("the process went away (%s is gone)" % os.path.dirname(path)) from None
    except PermissionError:
        pid = int(path.split("/")[2])
        raise PermissionDeniedError("cannot read %s: %s" % (path, permission_hint(pid))) from None
