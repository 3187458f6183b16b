"""Which temporary file system holds our private directory, as one process sees its mounts.

``/tmp`` unless, in the process's own mount namespace and root, it is missing or mounted
read-only (``docker run --read-only``, Kubernetes' ``readOnlyRootFilesystem`` without an
``emptyDir`` there): then ``/dev/shm``, which both of those still mount writable. The choice
depends on the mount flags alone, so every client (each in its helper, which sees the target's
mounts) and a pre-armed agent (``flight_profiler.arm``, in the target itself) make the same one
without telling each other. A ``/tmp`` that is writable but full, or whose directory is not
ours, stays an error: a state that comes and goes would let two clients choose differently.

Runs in the client's helper and in a pre-armed target: stdlib only, Python 3.8 syntax.
"""

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

FIRST = "/tmp"
BASES = (FIRST, "/dev/shm")


def base(statvfs: "Callable[[str], os.statvfs_result]" = os.statvfs) -> "str":
    """The first of ``BASES`` that exists and is mounted writable here; ``/tmp`` when none is."""
    for candidate in BASES:
        try:
            flags = statvfs(candidate).f_flag
        except OSError:  # missing (a bare image), or not ours to look at
            continue
        if not flags & os.ST_RDONLY:
            return candidate
    return FIRST  # the error that follows then names /tmp, where a user looks first


def placed(directory: "str", statvfs: "Callable[[str], os.statvfs_result]" = os.statvfs) -> "str":
    """``directory`` (named under ``/tmp``) moved to the base chosen here; any other directory as it is."""
    parent, name = os.path.split(directory)
    if parent != FIRST:
        return directory
    return "%s/%s" % (base(statvfs), name)
