"""Files the CLI writes for the user (``stack -f``, ``perf -f``), safely in any directory.

The CLI often runs as root, and the user may name a file in a directory others
can write (``/tmp``). There a planted link or file at that name must not make
us write, truncate or chmod anything else. So the content is first written
into a fresh private directory (``mkdtemp``: 0700, created exclusively, ours)
next to the destination, made 0600, and then put in place without ever
following a link:

- nothing at the destination: ``os.link`` — fails if anything appeared there
  meanwhile, never follows;
- a regular file of ours there (lstat): ``os.replace`` — swaps the directory
  entry, so a link planted after the check is replaced, not followed;
- anything else (a link, another user's file, a directory, a FIFO): refused
  with a one-line error.

All of that holds only while nobody else can rename what is on the way: in a
directory another user owns, or may write without the sticky bit, they could
swap our private directory, or a directory of the path, for a link between our
check and our write (``/home/bob/dumps`` -> ``/etc``, and root's file goes to
``/etc``). So every directory on the way to the destination must be root's or
ours, and writable by nobody else unless sticky; a link on the way must be
root's or ours. Anything else is refused with a one-line error (``vet_path``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator

from ..errors import UsageError

FILE_MODE = 0o600


def check_destination(path: str) -> None:
    """Raise UsageError now, before any work, when ``path`` could not be written by ``install``."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise UsageError("cannot write %s: the directory %s does not exist" % (path, directory))
    if not os.access(directory, os.W_OK):
        raise UsageError("cannot write %s: permission denied" % path)
    vet_path(path)
    _check_replaceable(path)


def vet_path(path: str) -> None:
    """UsageError unless nobody but root and us can change what ``path``'s directory resolves to."""
    try:
        _vet_directories(path)
    except OSError as exc:
        raise UsageError("cannot write %s: %s" % (path, exc.strerror or exc)) from None


def _vet_directories(path: str) -> None:
    mine = (0, os.geteuid())
    directory = os.path.dirname(os.path.abspath(path))
    walked = "/"
    for part in directory.split("/"):
        if not part:
            continue
        walked = os.path.join(walked, part)
        info = os.lstat(walked)
        if stat.S_ISLNK(info.st_mode) and info.st_uid not in mine:
            raise UsageError("refusing to write %s: %s is a link of uid %d, not yours" % (path, walked, info.st_uid))
    walked = "/"
    for part in os.path.realpath(directory).split("/"):  # "" first: "/" itself
        walked = os.path.join(walked, part)
        info = os.stat(walked)
        if info.st_uid not in mine:
            raise UsageError("refusing to write %s: the directory %s belongs to uid %d" % (path, walked, info.st_uid))
        others = info.st_mode & 0o002 or (info.st_mode & 0o020 and info.st_gid not in (0, os.getegid()))
        if others and not info.st_mode & stat.S_ISVTX:
            raise UsageError("refusing to write %s: others may write the directory %s" % (path, walked))


def _check_replaceable(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UsageError("refusing to write %s: it is a symbolic link; remove it or choose another name" % path)
    if not stat.S_ISREG(info.st_mode):
        raise UsageError("refusing to write %s: it exists and is not a regular file" % path)
    if info.st_uid != os.geteuid():
        raise UsageError("refusing to write %s: it belongs to uid %d, not to you" % (path, info.st_uid))


@contextlib.contextmanager
def staged(path: str) -> Iterator[str]:
    """A private path to write to; on success its file is put at ``path`` (0600)."""
    directory = os.path.dirname(path) or "."
    vet_path(path)
    private = tempfile.mkdtemp(prefix=".flight_profiler-", dir=directory)
    try:
        inner = os.path.join(private, "out")
        yield inner
        if os.path.lexists(inner):  # a tool that wrote nothing (it failed) leaves the destination alone
            install(inner, path)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def install(source: str, path: str) -> None:
    """Put ``source`` (in our private directory) at ``path`` without following links."""
    os.chmod(source, FILE_MODE)
    vet_path(path)
    _check_replaceable(path)
    try:
        os.link(source, path)
        return
    except OSError:
        pass  # something is there now (EEXIST), or no hard links on this file system
    _check_replaceable(path)  # only a file of ours is replaced: the entry is swapped, never written through
    os.replace(source, path)


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` as ``install`` does."""
    with staged(path) as inner:
        fd = os.open(inner, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)
