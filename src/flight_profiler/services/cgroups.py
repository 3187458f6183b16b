"""Where a process's cgroups are, as the cgroup file systems of a mount namespace show them (both sides).

``/proc/<pid>/cgroup`` names each hierarchy's path for the process (relative to the reader's cgroup
namespace); ``/proc/self/mountinfo`` says where those hierarchies are mounted (v2 ``cgroup2``, v1
``cgroup`` with its controllers among the options), and from which root of theirs. The client reads a
target's cgroups through its own mounts (``attach/headroom``: memory, freezer); the agent reads its own
process's (``services/cpuquota``: cpu). Read-only, small files, bounded reads. Stdlib only, Python 3.8.
"""

from __future__ import annotations

import os
import posix

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Dict, Iterator, List, Optional, Tuple

    Mounts = Dict[int, List[Tuple[str, str]]]

READ_LIMIT = 1 << 16  # a cgroup file is a line or a short table: never read more


def dirs(cgroup_file: str, mountinfo_file: str, controller: str) -> List[Tuple[str, str, int]]:
    """(directory, its mount point, version) of each hierarchy that holds the process of ``cgroup_file``
    and, for version 1, has ``controller``; empty where none can be seen."""
    try:
        lines = read(cgroup_file).splitlines()
        mounts = _mounts(mountinfo_file, controller)
    except OSError:
        return []
    found = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        version = 2 if hierarchy == "0" and controllers == "" else 1
        if version == 1 and controller not in controllers.split(","):
            continue
        for root, point in mounts.get(version, ()):
            directory = under(root, point, path)
            if directory is not None and os.path.isdir(directory):
                found.append((directory, point.rstrip("/") or "/", version))
                break
    return found


def climb(directory: str, top: str) -> Iterator[str]:
    """``directory``, then each parent up to ``top`` (its mount point): each limit there bounds the subtree."""
    while True:
        yield directory
        if directory == top or not directory.startswith(top):
            return
        directory = os.path.dirname(directory)


def _mounts(mountinfo_file: str, controller: str) -> Mounts:
    """version -> [(root within the hierarchy, mount point)]; version 1 only with ``controller``."""
    mounts: Mounts = {}
    for line in read(mountinfo_file).splitlines():
        before, sep, after = line.partition(" - ")
        head, tail = before.split(), after.split()
        if not sep or len(head) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup2":
            mounts.setdefault(2, []).append((unescape(head[3]), unescape(head[4])))
        elif tail[0] == "cgroup" and controller in tail[2].split(","):
            mounts.setdefault(1, []).append((unescape(head[3]), unescape(head[4])))
    return mounts


def under(root: str, point: str, path: str) -> Optional[str]:
    """Where ``path`` (as /proc/<pid>/cgroup names it) lies under a mount of the hierarchy's ``root``."""
    if not path.startswith("/") or "/../" in path + "/" or "\\" in path:
        return None  # not a path of our namespace's view, or one we will not compose
    root = root.rstrip("/")
    if root and path != root and not path.startswith(root + "/"):
        return None
    return point.rstrip("/") + path[len(root) :]


def read(path: str) -> str:
    # posix's own: eventlet's patched os.open and os.read make a hub in the agent's thread (an epoll the
    # target keeps); gevent does not patch them
    fd = posix.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return posix.read(fd, READ_LIMIT).decode("utf-8", "replace")
    finally:
        os.close(fd)


def unescape(text: str) -> str:
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
