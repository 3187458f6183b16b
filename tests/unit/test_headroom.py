"""The memory cgroup read before an attach (``attach/headroom``, ``services/cgroups``), on a file tree
shaped like cgroupfs."""

from __future__ import annotations

import os
import pathlib

from flight_profiler.attach import headroom
from flight_profiler.services import cgroups


def _cgroup(directory: pathlib.Path, limit: str, usage: int, inactive: int = 0, version: int = 2) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    names = ("memory.max", "memory.current") if version == 2 else ("memory.limit_in_bytes", "memory.usage_in_bytes")
    (directory / names[0]).write_text(limit + "\n")
    (directory / names[1]).write_text("%d\n" % usage)
    key = "inactive_file" if version == 2 else "total_inactive_file"
    (directory / "memory.stat").write_text("anon 1\n%s %d\nactive_file 5\n" % (key, inactive))


def test_the_tightest_limit_over_the_ancestors_counts_and_clean_cache_is_room(tmp_path: pathlib.Path) -> None:
    """A pod's limit sits on a parent of the container's cgroup: each limit bounds its whole subtree."""
    _cgroup(tmp_path, "max", 10 << 30)
    _cgroup(tmp_path / "pod", str(100 << 20), 90 << 20, inactive=5 << 20)  # 85 MB working set: 15 MB left
    _cgroup(tmp_path / "pod" / "app", str(500 << 20), 40 << 20)  # 460 MB left here
    found = headroom.tightest(str(tmp_path / "pod" / "app"), str(tmp_path), 2)
    assert found == headroom.Headroom(15 << 20, 100 << 20, 85 << 20, str(tmp_path / "pod"))


def test_no_limit_anywhere_is_no_answer(tmp_path: pathlib.Path) -> None:
    _cgroup(tmp_path, "max", 1 << 30)
    _cgroup(tmp_path / "app", str(9223372036854771712), 1 << 30, version=1)  # v1's "no limit"
    assert headroom.tightest(str(tmp_path / "app"), str(tmp_path), 1) is None
    assert headroom.tightest(str(tmp_path), str(tmp_path), 2) is None


def test_a_cgroup_path_is_placed_under_its_mount_only_when_it_lies_there() -> None:
    assert cgroups.under("/", "/sys/fs/cgroup", "/kubepods/pod1") == "/sys/fs/cgroup/kubepods/pod1"
    assert cgroups.under("/kubepods", "/sys/fs/cgroup", "/kubepods/pod1") == "/sys/fs/cgroup/pod1"
    assert cgroups.under("/kubepods", "/sys/fs/cgroup", "/other") is None
    assert cgroups.under("/", "/sys/fs/cgroup", "/a/../../etc") is None
    assert cgroups.under("/", "/sys/fs/cgroup", "relative") is None
    assert cgroups.unescape("/sys/fs/with\\040space") == "/sys/fs/with space"


def test_force_skips_the_check_and_an_unknown_pid_is_not_refused() -> None:
    headroom.check(os.getpid(), force=True)
    assert headroom.headroom(1 << 30) is None  # no such process: nothing known, nothing refused
