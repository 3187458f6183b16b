"""Which temporary file system holds our private directory, as one process sees its mounts.

``/tmp`` unless, in the process's own mount namespace and root, it is missing, mounted
read-only (``docker run --read-only``, Kubernetes' ``readOnlyRootFilesystem`` without an
``emptyDir`` there) or not writable by the target's user (an image whose ``/tmp`` is root's,
0755): then ``/dev/shm``, which those still mount writable. The choice depends on the mounts
and the directory's permissions alone, so every client (each in its helper, which sees the
target's mounts with the target's credentials) and a pre-armed agent (``flight_profiler.arm``,
in the target itself) make the same one without telling each other. A ``/tmp`` that is
writable but full, or whose directory is not ours, stays an error: a state that comes and
goes would let two clients choose differently.

Runs in the client's helper and in a pre-armed target: stdlib only, Python 3.8 syntax.
"""

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

FIRST = "/tmp"
BASES = (FIRST, "/dev/shm")


def writable(path: "str") -> "bool":
    """Whether we may create a directory in ``path``, judged with our effective ids: those the helper
    (setresuid to the target's) and the target itself have."""
    return os.access(path, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids)


def base(
    statvfs: "Callable[[str], os.statvfs_result]" = os.statvfs, may_write: "Callable[[str], bool]" = writable
) -> "str":
    """The first of ``BASES`` that exists, is mounted writable here and that we may create a directory
    in; ``/tmp`` when none is."""
    for candidate in BASES:
        try:
            flags = statvfs(candidate).f_flag
        except OSError:  # missing (a bare image), or not ours to look at
            continue
        if not flags & os.ST_RDONLY and may_write(candidate):
            return candidate
    return FIRST  # the error that follows then names /tmp, where a user looks first


def placed(
    directory: "str",
    statvfs: "Callable[[str], os.statvfs_result]" = os.statvfs,
    may_write: "Callable[[str], bool]" = writable,
) -> "str":
    """``directory`` (named under ``/tmp``) moved to the base chosen here; any other directory as it is."""
    parent, name = os.path.split(directory)
    if parent != FIRST:
        return directory
    return "%s/%s" % (base(statvfs, may_write), name)
