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

from . import cgroups

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Callable, Optional, Tuple

# A job's long loop (reading every asyncio task, searching every module) works in slices as a heap walk
# does (services/heapwalk: SLICE_BUDGET, SLICE_PAUSE, QUOTA_SHARE), so the program's threads get the GIL
# at each pause, and under a CPU quota the loop takes at most a quarter of it.
SLICE_BUDGET = 0.004
SLICE_PAUSE = 0.001
QUOTA_SHARE = 0.25


def quota(proc: str = "/proc/self") -> Optional[float]:
    """The tightest CPU quota in CPUs (0.5: half a CPU), or None when there is none."""
    tightest: Optional[float] = None
    for directory, top, version in cgroups.dirs(proc + "/cgroup", proc + "/mountinfo", "cpu"):
        for level in cgroups.climb(directory, top):
            found = _level(level, version)
            if found is not None and (tightest is None or found < tightest):
                tightest = found
    return tightest


def _level(directory: str, version: int) -> Optional[float]:
    try:
        if version == 2:
            fields = cgroups.read(os.path.join(directory, "cpu.max")).split()  # "max 100000" or "50000 100000"
            limit, period = fields[0], fields[1]
        else:
            limit = cgroups.read(os.path.join(directory, "cpu.cfs_quota_us")).strip()  # -1: none
            period = cgroups.read(os.path.join(directory, "cpu.cfs_period_us")).strip()
        if limit == "max" or int(limit) <= 0 or int(period) <= 0:
            return None
        return int(limit) / float(int(period))
    except (OSError, ValueError, IndexError):
        return None


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
