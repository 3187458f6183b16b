"""Where the private directory goes (attach/places): /tmp unless it is read-only, missing or not writable."""

from __future__ import annotations

import os
from typing import Any

from flight_profiler.attach import places


class _Result:
    def __init__(self, flag: int) -> None:
        self.f_flag = flag


def _statvfs(mounts: dict[str, int]) -> Any:  # a statvfs that knows only these mounts' flags
    def statvfs(path: str) -> _Result:
        if path not in mounts:
            raise FileNotFoundError(2, "No such file or directory", path)
        return _Result(mounts[path])

    return statvfs


def _anyone(path: str) -> bool:
    return True


def test_a_writable_tmp_is_used() -> None:
    assert places.base(_statvfs({"/tmp": 0, "/dev/shm": 0}), _anyone) == "/tmp"


def test_a_tmp_the_targets_user_may_not_write_moves_it_too() -> None:
    assert places.base(_statvfs({"/tmp": 0, "/dev/shm": 0}), lambda path: path != "/tmp") == "/dev/shm"


def test_a_read_only_tmp_moves_the_directory_to_dev_shm() -> None:
    statvfs = _statvfs({"/tmp": os.ST_RDONLY | os.ST_NOSUID, "/dev/shm": os.ST_NOSUID})
    assert places.placed("/tmp/flight_profiler-1001", statvfs, _anyone) == "/dev/shm/flight_profiler-1001"


def test_a_missing_tmp_moves_it_too() -> None:
    assert places.base(_statvfs({"/dev/shm": 0}), _anyone) == "/dev/shm"


def test_with_neither_usable_tmp_is_named() -> None:
    assert places.base(_statvfs({"/tmp": os.ST_RDONLY, "/dev/shm": os.ST_RDONLY}), _anyone) == "/tmp"
    assert places.base(_statvfs({}), _anyone) == "/tmp"
    assert places.base(_statvfs({"/tmp": 0, "/dev/shm": 0}), lambda path: False) == "/tmp"


def test_a_directory_elsewhere_is_left_alone() -> None:
    statvfs = _statvfs({"/tmp": os.ST_RDONLY, "/dev/shm": 0})
    assert places.placed("/var/tmp/flight_profiler-1001", statvfs, _anyone) == "/var/tmp/flight_profiler-1001"
    assert places.placed("/tmp/x/flight_profiler-1001", statvfs, _anyone) == "/tmp/x/flight_profiler-1001"
