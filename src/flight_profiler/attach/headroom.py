"""What the target's cgroups and limits leave us: memory before the OOM killer, tasks under pids.max and
address space for our threads, and whether a freezer holds it (client side).

An attach adds ~4-5 MB to the target (our modules, the agent's thread and buffers), a command a few
more (a heap walk ~6 MB). In a container run close to its memory limit that was enough: the kernel's
OOM killer ended the target in the middle of the attach (seen: a 3.12 target 2 MB under its limit,
killed, and the client said "pid N exited while we waited for the agent"). So before anything is
injected the client reads the target's memory cgroup, and every ancestor's (each limit applies to its
whole subtree), and refuses when less than ``NEEDED`` is left, unless ``--force``.

"Used" is the working set as the kernel's reclaim sees it: usage minus the inactive file cache (clean
page cache is dropped before anything is killed). Swap is not counted as room. Read-only, from the
cgroup file systems mounted in our own mount namespace; a target whose cgroup we cannot see there (in
another cgroup namespace's subtree, no memory controller) is not refused: nothing is known.
"""

from __future__ import annotations

import os

from ..services import cgroups

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only for mypy: a --cmd's start-up pays ~3 ms for importing it
    from typing import NamedTuple, Optional
else:
    from ..named import NamedTuple

NEEDED = 16 << 20  # bytes: what an attach and a heavy command add (~5 + ~6 MB), with a margin
TASKS_NEEDED = 3  # the agent's thread, a job's, the watchdog's
_UNLIMITED = 1 << 62  # v1 writes "no limit" as the largest page-aligned long; v2 as "max"


class Headroom(NamedTuple):
    left: int  # bytes before the tightest limit
    limit: int  # that limit
    used: int  # what counts against it (working set)
    where: str  # the cgroup directory that has it


def check(pid: int, force: bool) -> None:
    """Refuse (TargetError) when the target has less than NEEDED under a memory limit, or too little
    address space under RLIMIT_AS for our thread; ``force`` skips both."""
    if force:
        return
    from ..errors import TargetError

    room = headroom(pid)
    if room is not None and room.left < NEEDED:
        raise TargetError(
            "pid %d has %s left under its cgroup's memory limit (%s of %s used, %s): attaching adds about 5 MB "
            "and a command more, which could get it OOM-killed; use --force to attach anyway"
            % (pid, _mb(room.left), _mb(room.used), _mb(room.limit), room.where)
        )
    tasks = task_room(pid)
    if tasks is not None and tasks[0] < TASKS_NEEDED:
        raise TargetError(
            "pid %d's cgroup allows %d more task(s) (pids.max %d, %s): the agent needs a thread of its own, and "
            "the program's next thread or process would be refused; use --force to attach anyway"
            % (pid, max(0, tasks[0]), tasks[1], tasks[2])
        )
    space = address_space(pid)
    if space is not None and space[0] < space[1]:
        raise TargetError(
            "pid %d has %s of address space left under its RLIMIT_AS (ulimit -v): the agent's thread alone "
            "reserves %s (its stack) and our modules take more, which the program's next allocations would "
            "miss (MemoryError); use --force to attach anyway" % (pid, _mb(space[0]), _mb(space[1] - NEEDED))
        )


def task_room(pid: int) -> Optional[tuple[int, int, str]]:
    """(tasks left, the limit, where) under the tightest ``pids.max`` over the target's cgroups, or None."""
    tightest: Optional[tuple[int, int, str]] = None
    for directory, top, _ in cgroup_dirs(pid, "pids"):
        for level in cgroups.climb(directory, top):
            try:
                limit = cgroups.read(os.path.join(level, "pids.max")).strip()
                current = int(cgroups.read(os.path.join(level, "pids.current")).strip())
            except (OSError, ValueError):
                continue
            if limit.isdigit() and (tightest is None or int(limit) - current < tightest[0]):
                tightest = (int(limit) - current, int(limit), level)
    return tightest


def address_space(pid: int) -> Optional[tuple[int, int]]:
    """(address space left under the soft RLIMIT_AS, what an attach needs of it), or None without a limit.

    A new thread reserves its whole stack (RLIMIT_STACK's soft limit, the default for pthreads; 8 MB
    where that is unlimited) as address space at once."""
    try:
        limits = cgroups.read("/proc/%d/limits" % pid).splitlines()
        status = cgroups.read("/proc/%d/status" % pid).splitlines()
    except OSError:
        return None
    values = {line[:26].strip(): line[26:].split() for line in limits[1:]}
    space = values.get("Max address space", ["unlimited"])[0]
    stack = values.get("Max stack size", ["unlimited"])[0]
    size = next((line.split()[1] for line in status if line.startswith("VmSize:")), None)
    if not space.isdigit() or size is None or not size.isdigit():
        return None
    thread_stack = int(stack) if stack.isdigit() else 8 << 20
    return int(space) - int(size) * 1024, thread_stack + NEEDED


def headroom(pid: int) -> Optional[Headroom]:
    """The tightest memory limit over the target's cgroup and its ancestors, or None where none is known."""
    found = [tightest(directory, top, version) for directory, top, version in cgroup_dirs(pid, "memory")]
    return min((room for room in found if room is not None), key=lambda room: room.left, default=None)


def tightest(directory: str, top: str, version: int) -> Optional[Headroom]:
    """The least room over ``directory`` and its ancestors up to ``top``: each limit bounds its subtree."""
    found = [_level(level, version) for level in cgroups.climb(directory, top)]
    return min((room for room in found if room is not None), key=lambda room: room.left, default=None)


def oom_kills(pid: int) -> dict[str, int]:
    """Each memory cgroup directory of the target (its own and every ancestor) -> the OOM kills counted
    there so far: read before an attach or a command, compared once the target is gone (``oom_note``)."""
    counts: dict[str, int] = {}
    for directory, top, version in cgroup_dirs(pid, "memory"):
        for level in cgroups.climb(directory, top):
            count = _oom_count(level, version)
            if count is not None:
                counts[level] = count
    return counts


def oom_note(before: dict[str, int]) -> str:
    """ ", killed by the kernel's OOM killer (its cgroup ...)" when a count of ``before`` grew; else ""."""
    for directory, count in before.items():
        now = _oom_count(directory, 2 if os.path.exists(os.path.join(directory, "memory.events")) else 1)
        if now is not None and now > count:
            return " - the kernel's OOM killer ran in its cgroup meanwhile (%s: oom_kill %d -> %d)" % (
                directory,
                count,
                now,
            )
    return ""


def _oom_count(directory: str, version: int) -> Optional[int]:
    name = "memory.events" if version == 2 else "memory.oom_control"
    try:
        for line in cgroups.read(os.path.join(directory, name)).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return None


def frozen(pid: int) -> Optional[str]:
    """The cgroup directory whose freezer holds the target (``docker pause``, a v1 ``freezer.state`` of
    FROZEN or FREEZING, v2 ``cgroup.events`` frozen 1), or None. A frozen process cannot even stop for
    ptrace: an attach waited out --timeout on it."""
    for directory, _, version in cgroup_dirs(pid, "freezer"):
        try:
            if version == 1:
                state = cgroups.read(os.path.join(directory, "freezer.state")).strip()
                if state in ("FROZEN", "FREEZING"):
                    return directory
            elif "frozen 1" in cgroups.read(os.path.join(directory, "cgroup.events")).splitlines():
                return directory
        except OSError:
            continue
    return None


def check_not_frozen(pid: int) -> None:
    where = frozen(pid)
    if where is not None:
        from ..errors import TargetError

        raise TargetError(
            "pid %d is frozen by its cgroup's freezer (%s: docker pause, a frozen pod?): none of its threads "
            "runs, nor can stop for us, until it is thawed" % (pid, where)
        )


def cgroup_dirs(pid: int, controller: str) -> list[tuple[str, str, int]]:
    """(directory, its mount point, version) of each of the target's hierarchies with ``controller``, as
    mounted in our namespace (``services/cgroups``)."""
    return cgroups.dirs("/proc/%d/cgroup" % pid, "/proc/self/mountinfo", controller)


def _level(directory: str, version: int) -> Optional[Headroom]:
    names = ("memory.max", "memory.current") if version == 2 else ("memory.limit_in_bytes", "memory.usage_in_bytes")
    try:
        limit_text = cgroups.read(os.path.join(directory, names[0])).strip()
        usage = int(cgroups.read(os.path.join(directory, names[1])).strip())
    except (OSError, ValueError):
        return None
    if limit_text == "max":
        return None
    try:
        limit = int(limit_text)
    except ValueError:
        return None
    if limit >= _UNLIMITED:
        return None
    used = max(0, usage - _inactive_file(directory, version))
    return Headroom(limit - used, limit, used, directory)


def _inactive_file(directory: str, version: int) -> int:
    """Clean page cache the kernel drops before it kills anything (v1: the hierarchy's total)."""
    key = "inactive_file" if version == 2 else "total_inactive_file"
    try:
        for line in cgroups.read(os.path.join(directory, "memory.stat")).splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _mb(count: int) -> str:
    return "%.1f MB" % (count / float(1 << 20))
