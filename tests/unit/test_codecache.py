"""The bytecode target interpreters made, kept between runs (attach/codecache.py): in a private
directory of ours that nobody else can change the way to, entries never read through a link, checked
like a fresh compile, a bounded number of them; and one user's entries never serve another's."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator

import pytest

from flight_profiler.attach import codecache

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root): directories of another uid")
CODES = ("cb0d0d0a", ["00ff", "e300"])


@pytest.fixture
def base(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="fp-cache-base-")
    monkeypatch.setenv("XDG_CACHE_HOME", os.path.join(directory, "cache"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _name(index: int) -> str:
    return "%064x" % index


def _entries(base: str) -> list[str]:
    return sorted(os.listdir(os.path.join(base, "cache", "flight_profiler", "bytecode")))


def test_an_entry_comes_back_from_a_private_directory_of_ours(base: str) -> None:
    assert codecache.load(_name(1), 2) is None
    codecache.store(_name(1), *CODES)
    assert codecache.load(_name(1), 2) == CODES
    assert codecache.load(_name(1), 3) is None  # not what we asked for: as a bad compile, not used
    directory = os.path.join(base, "cache", "flight_profiler", "bytecode")
    for path in (directory, os.path.dirname(directory)):
        info = os.stat(path)
        assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(directory, _name(1))).st_mode) == 0o600
    assert _entries(base) == [_name(1)]  # no temporary file left


def test_a_bad_or_linked_entry_is_not_used(base: str) -> None:
    codecache.store(_name(1), *CODES)
    directory = os.path.join(base, "cache", "flight_profiler", "bytecode")
    with open(os.path.join(directory, _name(2)), "w") as fh:
        fh.write("cb0d0d0a\n00\x00\n00")  # a NUL would split the bundle
    assert codecache.load(_name(2), 2) is None
    os.symlink(os.path.join(directory, _name(1)), os.path.join(directory, _name(3)))
    assert codecache.load(_name(3), 2) is None  # a good entry, through a link: not followed


@as_root
def test_an_entry_of_another_uid_is_not_used(base: str) -> None:
    codecache.store(_name(1), *CODES)
    path = os.path.join(base, "cache", "flight_profiler", "bytecode", _name(1))
    os.chown(path, NOBODY, NOBODY)
    assert codecache.load(_name(1), 2) is None


@as_root
@pytest.mark.parametrize(
    ("owner", "mode"),
    [(NOBODY, 0o755), (0, 0o777), (0, 0o775)],
    ids=["another-user-s", "world-writable", "group-writable"],
)
def test_no_cache_on_a_way_others_can_change(base: str, owner: int, mode: int) -> None:
    """As root under sudo, XDG_CACHE_HOME may still name the user's directory: nothing is made, read or
    written there."""
    theirs = os.path.join(base, "cache")
    os.mkdir(theirs)
    os.chown(theirs, owner, NOBODY)  # (the group is nobody's: group-writable counts)
    os.chmod(theirs, mode)
    codecache.store(_name(1), *CODES)
    assert os.listdir(theirs) == []
    os.mkdir(os.path.join(theirs, "flight_profiler"), 0o700)  # as if the user had made it for us
    assert codecache.load(_name(1), 2) is None and os.listdir(os.path.join(theirs, "flight_profiler")) == []


@as_root
def test_a_link_on_the_way_is_judged_where_it_leads(base: str) -> None:
    """A link is resolved once and the directories it leads to are walked and judged: into one of ours,
    the cache is kept there; into another user's, nothing is made, read or written."""
    os.mkdir(os.path.join(base, "cache"), 0o700)
    elsewhere = os.path.join(base, "elsewhere")
    os.mkdir(elsewhere, 0o700)
    os.symlink(elsewhere, os.path.join(base, "cache", "flight_profiler"))
    codecache.store(_name(1), *CODES)
    assert os.listdir(elsewhere) == ["bytecode"] and codecache.load(_name(1), 2) == CODES
    shutil.rmtree(os.path.join(elsewhere, "bytecode"))
    os.chown(elsewhere, NOBODY, NOBODY)
    codecache.store(_name(1), *CODES)
    assert os.listdir(elsewhere) == [] and codecache.load(_name(1), 2) is None


def test_the_oldest_entries_and_stale_temporary_files_go(base: str) -> None:
    codecache.store(_name(0), *CODES)
    directory = os.path.join(base, "cache", "flight_profiler", "bytecode")
    now = time.time()
    for index in range(codecache.KEEP + 3):  # entries of the past: index 0 the oldest
        path = os.path.join(directory, _name(index))
        with open(path, "w") as fh:
            fh.write("x")
        os.utime(path, (now - 1000 + index, now - 1000 + index))
    stale, fresh = os.path.join(directory, "a.tmp-1"), os.path.join(directory, "b.tmp-2")
    for path in (stale, fresh):
        open(path, "w").close()
    os.utime(stale, (now - 120, now - 120))
    codecache.store(_name(999), *CODES)
    left = _entries(base)
    assert len([name for name in left if ".tmp-" not in name]) == codecache.KEEP
    assert _name(0) not in left and _name(3) not in left and _name(4) in left and _name(999) in left
    assert "a.tmp-1" not in left and "b.tmp-2" in left  # a client may be writing that one now


def test_an_entry_names_the_user_the_binary_and_our_sources() -> None:
    exe = os.stat(shutil.which("sh") or "/bin/sh")
    other = os.stat("/bin/true")
    first = codecache.key(1000, (3, 12), exe, b"sources")
    assert len(first) == 64 and first == codecache.key(1000, (3, 12), exe, b"sources")
    assert first != codecache.key(1001, (3, 12), exe, b"sources")  # another user's: never shared
    assert first != codecache.key(1000, (3, 13), exe, b"sources")
    assert first != codecache.key(1000, (3, 12), other, b"sources")
    assert first != codecache.key(1000, (3, 12), exe, b"sources changed")
