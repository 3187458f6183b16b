"""The start set's bytecode made by target interpreters (``attach/compiler``), kept between runs of
the client, in the client user's own cache directory (client side).

Why: having the target's interpreter compile it costs each run of the client 30-50 ms on its first
attach to a target of another minor version than ours; kept, it costs a later first attach to a
target of that interpreter nothing, and its target nothing either.

Where: ``$XDG_CACHE_HOME`` (or the home directory of our passwd entry, then ``.cache``), then
``flight_profiler/bytecode``: a directory of ours, mode 0700. Links in that path are resolved once;
the path they lead to is then walked from ``/`` one directory descriptor at a time, following no
link, and used only if each directory on the way belongs to root or to us and nobody else may write
it (a sticky one excepted): what is judged is what is used. As root under ``sudo``, the
environment may still name the invoking user's directories: then nothing is kept. Entries are read
and written relative to the directory's descriptor, never through a link: an entry is read only if
it is ours and a regular file, bounded in size, and checked for shape like a fresh compile; written
exclusively under a temporary name, then renamed. At most ``KEEP`` entries: the oldest go.

Whose bytecode: an entry's name is a digest of the target's uid, the interpreter file (device,
inode, size, modification time), its version and our sources: what one user's helper made (that
user could change it) is only ever given to that user's targets. We never load it: it is hex that
goes into that user's bundle.
"""

from __future__ import annotations

import functools
import os
import stat

from .compiler import OUTPUT_LIMIT, CompileFailed, checked, others_may_write

KEEP = 32  # entries (about 0.5 MB each): interpreters x users x our versions in use
_NAME_SIZE = 64  # a sha256, in hex


def key(uid: int, version: tuple[int, int], exe: os.stat_result, sources: bytes) -> str:
    """The entry's name for a target of ``uid`` running the file ``exe`` describes."""
    identity = "%d %d.%d %d %d %d %d %s" % (
        uid,
        *version,
        exe.st_dev,
        exe.st_ino,
        exe.st_size,
        exe.st_mtime_ns,
        _digest(sources),
    )
    return _sha256(identity.encode("ascii"))


@functools.lru_cache(maxsize=2)  # the same sources for every target: digested once per client
def _digest(sources: bytes) -> str:
    from .compiler import PROGRAM

    return _sha256(PROGRAM.encode("utf-8") + b"\0" + sources)


def _sha256(data: bytes) -> str:
    """SHA-256 in hex from the interpreter's own module: hashlib first loads OpenSSL's (~4 ms of the
    first attach's start-up, for one digest)."""
    import importlib

    for name in ("_sha2", "_sha256", "hashlib"):  # 3.12+, 3.8-3.11, elsewhere
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return str(module.sha256(data).hexdigest())
    raise ImportError("no SHA-256 in this interpreter")


def load(name: str, count: int) -> tuple[str, list[str]] | None:
    """The magic number and ``count`` codes kept under ``name``; None if there are none we may use."""
    directory = _open_directory()
    if directory is None:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory)
    except OSError:
        return None
    finally:
        os.close(directory)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_size > OUTPUT_LIMIT:
            return None
        lines = _read(fd, info.st_size).decode("ascii").split("\n")
        return checked(lines[0], lines[1:], count)
    except (OSError, UnicodeDecodeError, CompileFailed):
        return None
    finally:
        os.close(fd)


def store(name: str, magic: str, codes: list[str]) -> None:
    """Keep ``codes`` under ``name`` (best effort: a cache we cannot write is no cache)."""
    directory = _open_directory()
    if directory is None:
        return
    temp = "%s.tmp-%s" % (name, os.urandom(6).hex())
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=directory)
        try:
            data = "\n".join([magic, *codes]).encode("ascii")
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=directory, dst_dir_fd=directory)
        _evict(directory)
    except OSError:
        try:
            os.unlink(temp, dir_fd=directory)
        except OSError:
            pass
    finally:
        os.close(directory)


def _read(fd: int, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = os.read(fd, size - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _evict(directory: int) -> None:
    """The oldest entries past KEEP, and temporary files a killed client left (older than a minute)."""
    import time

    entries = []
    for name in os.listdir(directory):
        try:
            info = os.stat(name, dir_fd=directory, follow_symlinks=False)
        except OSError:
            continue
        if ".tmp-" in name and info.st_mtime < time.time() - 60:
            os.unlink(name, dir_fd=directory)
        elif len(name) == _NAME_SIZE:
            entries.append((info.st_mtime, name))
    for _, name in sorted(entries)[: max(0, len(entries) - KEEP)]:
        os.unlink(name, dir_fd=directory)


def directory_path() -> str:
    """Where the entries are kept (or would be)."""
    import pwd

    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(pwd.getpwuid(os.geteuid()).pw_dir, ".cache")
    return os.path.join(base, "flight_profiler", "bytecode")


def _open_directory() -> int | None:
    """A descriptor of our cache directory, made where missing; None where we may not keep one."""
    try:
        path = os.path.realpath(directory_path())  # links resolved once; the walk below follows none
        fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (OSError, KeyError):
        return None
    try:
        for part in [p for p in path.split("/") if p]:
            if not _safe(os.fstat(fd), last=False):
                raise OSError("not ours alone")
            try:
                os.mkdir(part, 0o700, dir_fd=fd)
            except FileExistsError:
                pass
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = child
        if not _safe(os.fstat(fd), last=True):
            raise OSError("not ours alone")
    except OSError:
        os.close(fd)
        return None
    return fd


def _safe(info: os.stat_result, last: bool) -> bool:
    """A directory on the way that only root or we can change; the last one ours and private."""
    if last:
        return info.st_uid == os.geteuid() and not stat.S_IMODE(info.st_mode) & 0o077
    return info.st_uid in (0, os.geteuid()) and not others_may_write(info, file=False)
