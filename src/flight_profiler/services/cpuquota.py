"""The CPU quota of the cgroups this process runs in (runs in the target).

A heap walk paces itself to hold the GIL ~4 ms at a time with 1 ms pauses: about 80 % of a CPU
while it runs. Under a CPU quota (a Kubernetes CPU limit, ``docker --cpus``, systemd's CPUQuota)
that time is charged to the program's cgroup, and once the quota of a period is spent every
thread of the cgroup waits for the next period: a walk of tens of seconds in a pod limited to
half a CPU throttled the program for all of it. ``quota()`` gives the tightest quota, in CPUs,
over the process's CPU cgroup and its ancestors as this process sees them (its own cgroup
namespace: in a container, its own cgroup is the root of what it sees), so the walk can take a
share of it instead (``heapwalk.Pacer``).

Read-only, a few small files per walk; None where nothing is limited or nothing can be read.
Stdlib only, Python 3.8 syntax.
"""

from __future__ import annotations

import os
from time import monotonic

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

    Mounts = Dict[int, List[Tuple[str, str]]]

_READ_LIMIT = 1 << 16
# A job's long loop (reading every asyncio task, searching every module) works in slices as a heap walk
# does (services/heapwalk: SLICE_BUDGET, SLICE_PAUSE, QUOTA_SHARE), so the program's threads get the GIL
# at each pause, and under a CPU quota the loop takes at most a quarter of it.
SLICE_BUDGET = 0.004
SLICE_PAUSE = 0.001
QUOTA_SHARE = 0.25


def quota(proc: str = "/proc/self") -> Optional[float]:
    """The tightest CPU quota in CPUs (0.5: half a CPU), or None when there is none."""
    try:
        lines = _read(proc + "/cgroup").splitlines()
        mounts = _mounts(proc)
    except OSError:
        return None
    tightest: Optional[float] = None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        version = 2 if hierarchy == "0" and controllers == "" else 1
        if version == 1 and "cpu" not in controllers.split(","):
            continue
        for root, point in mounts.get(version, ()):
            directory = _under(root, point, path)
            if directory is None or not os.path.isdir(directory):
                continue
            found = _tightest(directory, point.rstrip("/") or "/", version)
            if found is not None and (tightest is None or found < tightest):
                tightest = found
            break
    return tightest


def _mounts(proc: str) -> Mounts:
    """version -> [(root within the hierarchy, mount point)]; version 1 only with the cpu controller."""
    mounts: Mounts = {}
    for line in _read(proc + "/mountinfo").splitlines():
        before, sep, after = line.partition(" - ")
        head, tail = before.split(), after.split()
        if not sep or len(head) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup2":
            mounts.setdefault(2, []).append((_unescape(head[3]), _unescape(head[4])))
        elif tail[0] == "cgroup" and "cpu" in tail[2].split(","):
            mounts.setdefault(1, []).append((_unescape(head[3]), _unescape(head[4])))
    return mounts


def _under(root: str, point: str, path: str) -> Optional[str]:
    if not path.startswith("/") or "/../" in path + "/":
        return None
    root = root.rstrip("/")
    if root and path != root and not path.startswith(root + "/"):
        return None
    return point.rstrip("/") + path[len(root) :]


def _tightest(directory: str, top: str, version: int) -> Optional[float]:
    tightest: Optional[float] = None
    while True:
        found = _level(directory, version)
        if found is not None and (tightest is None or found < tightest):
            tightest = found
        if directory == top or not directory.startswith(top):
            return tightest
        directory = os.path.dirname(directory)


def _level(directory: str, version: int) -> Optional[float]:
    try:
        if version == 2:
            fields = _read(os.path.join(directory, "cpu.max")).split()  # "max 100000" or "50000 100000"
            limit, period = fields[0], fields[1]
        else:
            limit = _read(os.path.join(directory, "cpu.cfs_quota_us")).strip()  # -1: none
            period = _read(os.path.join(directory, "cpu.cfs_period_us")).strip()
        if limit == "max" or int(limit) <= 0 or int(period) <= 0:
            return None
        return int(limit) / float(int(period))
    except (OSError, ValueError, IndexError):
        return None


def _read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, _READ_LIMIT).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash in octal (``\\040``)."""
    if "\\" not in text:
        return text
    out: List[str] = []
    index = 0
    while index < len(text):
        if text[index] == "\\" and text[index + 1 : index + 4].isdigit():
            out.append(chr(int(text[index + 1 : index + 4], 8)))
            index += 4
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def paced(budget: float, pause: float, cpus: Optional[float], share: float) -> Tuple[float, float]:
    """(budget, pause) of a walk's slices so that it takes at most ``share`` of ``cpus`` (and never a
    shorter pause than ``pause``)."""
    if cpus is None or budget <= 0 or cpus <= 0:
        return budget, pause
    duty = min(budget / (budget + pause), share * cpus)
    return budget, max(pause, budget * (1.0 / duty - 1.0))


class Slices:
    """A loop's pacing: ``tick()`` between two short steps pauses once SLICE_BUDGET is spent."""

    __slots__ = ("budget", "ends", "pause", "wait")

    def __init__(self, wait: Callable[[float], bool]) -> None:
        """``wait(seconds)``: the job's sleep, True when it was cancelled meanwhile (``JobContext.wait``)."""
        self.budget, self.pause = paced(SLICE_BUDGET, SLICE_PAUSE, quota(), QUOTA_SHARE)
        self.wait = wait
        self.ends = monotonic() + self.budget

    def tick(self) -> bool:
        """False when the job was cancelled during a pause."""
        if monotonic() < self.ends:
            return True
        if self.wait(self.pause):
            return False
        self.ends = monotonic() + self.budget
        return True
