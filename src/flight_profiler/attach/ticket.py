"""The claim ticket: exactly one of client and bootstrap decides whether an agent starts (client side).

The client's helper (``attach/privsep``, with the target's credentials) writes
an empty ``<stem>.ticket-<random>`` next to the bundle before the client injects
(a new name for every attempt, baked into that attempt's bootstrap). The
bootstrap, once it runs in the target, claims it by renaming it to
``.ticket.claimed``; the agent thread it starts, once that thread has the GIL,
claims it again by unlinking ``.ticket.claimed``. The client, when it gives up
waiting, has its helper withdraw whichever of the two exists by unlinking it.
rename and unlink of one name succeed for one process only, so:
- client won (``WITHDRAWN``): no agent will ever start from this attempt, and the
  user may be told so (a bootstrap that runs later finds no ticket and returns;
  an agent thread that gets the GIL later finds no ``.claimed`` and exits at once);
- agent thread won (``CLAIMED``): the agent is starting; the client waits for it
  instead of reporting a failure that is not one;
- ``.ticket.nofd`` instead (``NO_FDS``): the bootstrap ran but found no free file
  descriptor and started nothing.
The same ticket serves every way one attempt's bootstrap may run (remote_exec, a
pending call, a parked thread), so at most one of them starts an agent.

Why a name per attempt: a client SIGKILLed after it queued a pending call leaves
its ticket behind, and its bootstrap may run any time later. The next attempt
(holding the crowd lock, so every other ticket of the stem is a dead client's)
withdraws every ticket of the stem before it issues its own; the late bootstrap
then finds nothing under its own name and starts nothing, and it can never take
the new attempt's ticket, whose name it does not know.
"""

from __future__ import annotations

import os

WITHDRAWN = "withdrawn"
CLAIMED = "claimed"
NO_FDS = "no free fds"
NOFD_SUFFIX = ".nofd"
CLAIMED_SUFFIX = ".claimed"
MARK = ".ticket"  # <stem>.ticket-<random>[.claimed|.nofd]


def new_name(stem: str) -> str:
    """A fresh ticket name for one attempt on the target of ``stem``."""
    return "%s%s-%s" % (stem, MARK, os.urandom(8).hex())


def stem_prefix(name: str) -> str:
    """What every ticket of ``name``'s stem starts with (the stem is the part before the first dot)."""
    return name.split(".", 1)[0] + MARK


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
