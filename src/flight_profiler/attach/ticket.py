"""The claim ticket: exactly one of client and bootstrap decides whether an agent starts (client side).

The client writes an empty ``agent-<pid>.ticket`` next to the bundle before it
injects. The bootstrap, once it runs in the target, claims it by renaming it to
``.ticket.claimed``; the agent thread it starts, once that thread has the GIL,
claims it again by unlinking ``.ticket.claimed``. The client, when it gives up
waiting, withdraws whichever of the two exists by unlinking it. rename and
unlink of one name succeed for one process only, so:
- client won (``WITHDRAWN``): no agent will ever start from this attempt, and the
  user may be told so (a bootstrap that runs later finds no ticket and returns;
  an agent thread that gets the GIL later finds no ``.claimed`` and exits at once);
- agent thread won (``CLAIMED``): the agent is starting; the client waits for it
  instead of reporting a failure that is not one;
- ``.ticket.nofd`` instead (``NO_FDS``): the bootstrap ran but found no free file
  descriptor and started nothing.
The same ticket serves every way the bootstrap may run (remote_exec, a pending
call, a parked thread), so at most one of them starts an agent.
"""

from __future__ import annotations

import os

WITHDRAWN = "withdrawn"
CLAIMED = "claimed"
NO_FDS = "no free fds"
NOFD_SUFFIX = ".nofd"
CLAIMED_SUFFIX = ".claimed"


def issue(path: str, uid: int) -> None:
    """Create the ticket (fresh, owned by the target's ``uid``) in the private directory."""
    directory, name = os.path.split(path)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for stale in (name, name + NOFD_SUFFIX, name + CLAIMED_SUFFIX):  # left by a client killed mid-attach
            try:
                os.unlink(stale, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            os.fchown(fd, uid, -1)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def withdraw(path: str) -> str:
    """Take the ticket back; say who decided (``WITHDRAWN``, ``CLAIMED`` or ``NO_FDS``)."""
    for name in (path, path + CLAIMED_SUFFIX):  # before the bootstrap, or before its thread got the GIL
        try:
            os.unlink(name)
        except FileNotFoundError:
            continue
        return WITHDRAWN
    try:
        os.unlink(path + NOFD_SUFFIX)
    except FileNotFoundError:
        return CLAIMED
    return NO_FDS


def refused_for_fds(path: str) -> bool:
    """The bootstrap ran and found no free descriptor (seen while still waiting)."""
    return os.path.lexists(path + NOFD_SUFFIX)


def no_fds_message(pid: int, needed: int) -> str:
    return (
        "pid %d ran out of file descriptors (RLIMIT_NOFILE) while we attached: the agent needs %d; "
        "nothing was started in the target" % (pid, needed)
    )


def free_fds(pid: int) -> tuple[int, int] | None:
    """(free descriptors below the soft RLIMIT_NOFILE, that limit) of ``pid``; None if unreadable."""
    try:
        with open("/proc/%d/limits" % pid) as fh:
            lines = [line for line in fh if line.startswith("Max open files")]
        soft = lines[0].split()[3] if lines else "unlimited"
        used = os.listdir("/proc/%d/fd" % pid)
    except (OSError, IndexError):
        return None
    if not soft.isdigit():
        return None
    limit = int(soft)
    return limit - sum(1 for fd in used if fd.isdigit() and int(fd) < limit), limit


def check_free_fds(pid: int, needed: int) -> None:
    """Refuse before anything is injected when the target cannot open the agent's descriptors."""
    from ..errors import AttachError

    if os.environ.get("FLIGHT_PROFILER_TEST_SKIP_FD_CHECK"):
        return  # test hook: the bootstrap's own check must hold on its own
    found = free_fds(pid)
    if found is not None and found[0] < needed:
        raise AttachError(
            "pid %d has %d free file descriptor(s) of its limit of %d (RLIMIT_NOFILE): the agent needs %d; "
            "nothing was done to the target" % (pid, found[0], found[1], needed)
        )
