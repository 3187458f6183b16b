"""The CPU quota a heap walk paces itself to (``services/cpuquota``), on file trees shaped like /proc and cgroupfs."""

from __future__ import annotations

import pathlib

import pytest

from flight_profiler.services import cpuquota


def _proc(tmp_path: pathlib.Path, cgroup: str, fstype: str, options: str) -> str:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    mount = tmp_path / "cg"
    (proc / "mountinfo").write_text(
        "25 1 0:22 / / rw - ext4 /dev/vda rw\n30 25 0:26 / %s rw,relatime - %s %s %s\n"
        % (mount, fstype, fstype, options)
    )
    return str(proc)


def test_v2_the_tightest_quota_over_the_ancestors(tmp_path: pathlib.Path) -> None:
    proc = _proc(tmp_path, "0::/pod/app\n", "cgroup2", "rw")
    for directory, value in (("", "max 100000"), ("pod", "50000 100000"), ("pod/app", "200000 100000")):
        (tmp_path / "cg" / directory).mkdir(parents=True, exist_ok=True)
        (tmp_path / "cg" / directory / "cpu.max").write_text(value + "\n")
    assert cpuquota.quota(proc) == 0.5  # the pod's half CPU, not the container's two


def test_v1_quota_and_no_quota(tmp_path: pathlib.Path) -> None:
    proc = _proc(tmp_path, "4:memory:/a\n3:cpu,cpuacct:/a\n", "cgroup", "rw,cpu,cpuacct")
    for directory, limit in (("", "-1"), ("a", "25000")):
        (tmp_path / "cg" / directory).mkdir(parents=True, exist_ok=True)
        (tmp_path / "cg" / directory / "cpu.cfs_quota_us").write_text(limit + "\n")
        (tmp_path / "cg" / directory / "cpu.cfs_period_us").write_text("100000\n")
    assert cpuquota.quota(proc) == 0.25
    (tmp_path / "cg" / "a" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpuquota.quota(proc) is None
    assert cpuquota.quota(str(tmp_path / "nowhere")) is None


@pytest.mark.parametrize(
    ("cpus", "pause"),
    [(None, 0.001), (0.5, 0.028), (2.0, 0.004), (8.0, 0.001)],
)
def test_the_pause_grows_so_that_a_walk_takes_a_quarter_of_the_quota(cpus: float | None, pause: float) -> None:
    budget, got = cpuquota.paced(0.004, 0.001, cpus, 0.25)
    assert budget == 0.004 and got == pytest.approx(pause)
