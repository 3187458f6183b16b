"""Where the agent's files live (client side).

``/tmp/flight_profiler-<uid>/agent-<pidns>-<pid>-<start>.sock`` inside the
target's mount namespace (``/dev/shm/...`` where that ``/tmp`` is read-only or
missing: ``places``): one private (0700) directory per user, one name per
process. The name carries the pid namespace's inode and the process start time,
so two processes with the same pid in different pid namespaces sharing one
``/tmp`` never share a socket, and a name outlives its process only as a stale
file that cleanup can recognise. A second client computes the same name and
reuses the running agent.

The client computes the name and hands it to the bootstrap: the agent never
derives it itself. Its longest form (uid and inode 10 digits, pid 7, start 20)
is 85 bytes, under the 108 of ``sun_path``; the client connects relative to the
directory anyway.
"""

from __future__ import annotations

import os
import re
import stat

from . import places
from .target import Target

# agent-<pid namespace inode>-<pid in that namespace>-<start time>.<suffix>
NAME = re.compile(r"^agent-(\d{1,20})-(\d{1,10})-(\d{1,20})\.")
SUFFIXES = (".sock", ".sock.log", ".bundle", ".lock")  # and .boot-*.py (3.14 bootstrap scripts)


def private_dir(target: Target, base: str = places.FIRST) -> str:
    """The directory as the target sees it, under ``base``; the privsep helper moves it to the base the
    target's mounts call for (``places``: /dev/shm where /tmp is read-only, missing or not writable)."""
    return "%s/flight_profiler-%d" % (base, target.uid)


def stem(target: Target) -> str:
    return "agent-%d-%d-%d" % target.identity


def socket_name(target: Target) -> str:
    return stem(target) + ".sock"


def lock_name(target: Target) -> str:
    return stem(target) + ".lock"


def socket_in_target(target: Target, base: str = places.FIRST) -> str:
    return in_directory(private_dir(target, base), target)


def in_directory(directory: str, target: Target) -> str:
    """The agent socket's path in ``directory`` (as the target sees it)."""
    return "%s/%s" % (directory, socket_name(target))


def from_client(target: Target, path: str) -> str:
    """``path`` (in the target's namespace) as reachable from our namespace (for reading only)."""
    if target.same_root and target.same_mount_ns:
        return path
    return os.path.join("/proc/%d/root" % target.pid, path.lstrip("/"))


def parse(name: str) -> tuple[int, int, int] | None:
    """(pid namespace, pid, start) of one of our file names, None for anything else."""
    match = NAME.match(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def agent_socket(pid: int) -> str:
    """The agent socket of ``pid`` as reachable from here (tests, diagnostics; read-only use)."""
    from .target import inspect

    target = inspect(pid)
    return socket_seen(target) or from_client(target, socket_in_target(target))


def socket_seen(target: Target) -> str | None:
    """Where an agent socket of ``target`` is, as reachable from here: under /tmp, or /dev/shm where the
    target's /tmp is not usable (``places``); None where neither holds one. lstat only: a planted link
    is not an agent."""
    for base in places.BASES:
        path = from_client(target, socket_in_target(target, base))
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                return path
        except OSError:
            continue
    return None
