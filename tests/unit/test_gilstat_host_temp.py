"""gilstat's host temp directories (commands/gilstat/host.py): which left-over ones the next gilstat removes.

Real directories, real locks: a directory is live while a descriptor of its lock file holds the
lock (the host's, for its whole life); only our user's 0700 directories are ever looked at, never
through a link.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

import pytest

from flight_profiler.commands.gilstat import host


def made(parent: Path, locked: bool | None) -> tuple[str, int | None]:
    """A host-like directory: with a lock file held (True), a lock file not held (False), or none (None)."""
    temp = tempfile.mkdtemp(prefix=host.TEMP_PREFIX, dir=str(parent))
    if locked is None:
        return temp, None
    fd = os.open(os.path.join(temp, host.LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    if locked:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return temp, fd
    os.close(fd)
    return temp, None


def test_only_the_directories_whose_host_is_gone_are_removed(tmp_path: Path) -> None:
    live, held = made(tmp_path, True)
    left_over, _ = made(tmp_path, False)
    outside = tmp_path / "keep-me"
    outside.write_text("x")
    os.symlink(str(outside), os.path.join(left_over, "link"))  # removed as a link, its target kept
    being_made, _ = made(tmp_path, None)
    never_locked, _ = made(tmp_path, None)
    old = time.time() - host.STALE_UNLOCKED - 10
    os.utime(never_locked, (old, old))
    try:
        host.remove_stale(str(tmp_path))
        assert os.path.isdir(live) and os.path.isdir(being_made)
        assert not os.path.exists(left_over) and not os.path.exists(never_locked)
        assert outside.read_text() == "x"
    finally:
        assert held is not None
        os.close(held)
    host.remove_stale(str(tmp_path))  # its host has ended now
    assert not os.path.exists(live)


def test_what_is_not_ours_is_never_touched(tmp_path: Path) -> None:
    shared, _ = made(tmp_path, False)
    os.chmod(shared, 0o755)  # not a directory we made: ours are 0700
    elsewhere, _ = made(Path(tempfile.mkdtemp(dir=str(tmp_path))), False)  # left over, but not in the parent
    link = os.path.join(str(tmp_path), host.TEMP_PREFIX + "link")
    os.symlink(elsewhere, link)  # a link with our prefix: never followed
    host.remove_stale(str(tmp_path))
    assert os.path.isdir(shared) and os.path.isdir(elsewhere) and os.path.islink(link)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_another_users_directory_is_never_touched_by_root(tmp_path: Path) -> None:
    theirs, _ = made(tmp_path, False)
    os.chown(theirs, 65534, 65534)
    host.remove_stale(str(tmp_path))
    assert os.path.isdir(theirs)
