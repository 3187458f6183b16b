"""This install's flight_profiler as one zipapp, for pods that do not have it (``k8s --copy``).

Only our own package goes in (no rich, no prompt_toolkit, no py-spy): in a pod the client
runs with ``--json``, which needs neither, and every command that goes through the agent works.
``stack`` without ``-a`` and ``perf`` need py-spy in the image.

``k8s --copy`` sends the archive over ``kubectl exec -i``'s standard input to ``python3 -I -c
LOADER SIZE SHA256 OPTIONS...``: no file of ours at a fixed name in the pod. A fixed name in a
``/tmp`` shared with the application's user (``kubectl cp``, as before) let that user plant or,
owning it after ``tar`` kept the sender's uid, rewrite the code the next ``kubectl exec`` ran,
often as root. ``-I``: nothing from the working directory (the image's ``WORKDIR``, often the
application's) or ``PYTHONPATH`` is imported in its place.

Both the loader and the archive's own ``__main__`` unpack the package into a fresh ``mkdtemp``
directory (0700, a random name; the attach reads the agent's sources as files), run the CLI
from there and remove it. The directory is made only under ``/tmp`` or ``/dev/shm`` (the
first that takes it: ``/tmp`` may be read-only, ``readOnlyRootFilesystem``), and only where
the parent is root's or ours and, if others may write there, sticky — never ``TMPDIR`` or the
working directory, where another user could rename our directory and put theirs in its place.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile

from ..attach.bootstrap import package_dir

# shared by MAIN and LOADER: make a safe private directory, unpack our package there, run the CLI
_UNPACK_AND_RUN = """\
import os, shutil, stat, sys, tempfile, zipfile
def _home():
    for base in ("/tmp", "/dev/shm"):
        try:
            info = os.lstat(base)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (0, os.geteuid()):
                continue
            if info.st_mode & 0o002 and not info.st_mode & stat.S_ISVTX:
                continue
            return tempfile.mkdtemp(prefix="flight_profiler-", dir=base)
        except OSError:
            continue
    sys.exit("flight_profiler: no safe place to unpack into (/tmp and /dev/shm: missing, read-only or not sticky)")
def _run(archive):
    home = _home()
    try:
        with archive:
            archive.extractall(home, [n for n in archive.namelist() if n.startswith("flight_profiler/")])
        sys.path.insert(0, home)
        from flight_profiler.cli.main import entry
        entry()
    finally:
        shutil.rmtree(home, ignore_errors=True)
"""

MAIN = _UNPACK_AND_RUN + "_run(zipfile.ZipFile(sys.argv[0]))\n"

# python3 -I -c LOADER SIZE SHA256 OPTIONS...: the archive arrives on standard input
LOADER = (
    _UNPACK_AND_RUN
    + """\
import hashlib, io
def _received():
    size, digest = int(sys.argv[1]), sys.argv[2]
    data = sys.stdin.buffer.read(size)
    if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
        sys.exit("flight_profiler: the zipapp did not arrive whole (%d of %d bytes)" % (len(data), size))
    del sys.argv[1:3]
    return zipfile.ZipFile(io.BytesIO(data))
_run(_received())
"""
)


def archive() -> bytes:
    """This install's package as a zipapp's bytes (about 1 MB), made in memory."""
    buffer = io.BytesIO()
    root = package_dir()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as made:
        made.writestr("__main__.py", MAIN)
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    full = os.path.join(folder, name)
                    made.write(full, os.path.join("flight_profiler", os.path.relpath(full, root)))
    return buffer.getvalue()


def loader_words(data: bytes) -> list[str]:
    """What follows the interpreter to run ``data`` (this zipapp's bytes) sent on its standard input."""
    return ["-I", "-c", LOADER, str(len(data)), hashlib.sha256(data).hexdigest()]
