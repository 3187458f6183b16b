"""A function behind ``functools.lru_cache`` is hooked where the work is done, so a call its cache
answers is never seen: ``watch`` of a method called 100 times a second showed nothing and ``monitor``
counted the misses only. The start event says so (``note``), for every command that hooks a function."""

from __future__ import annotations

import functools
from typing import Any

from flight_profiler.services import location
from flight_profiler.services.location import CACHE_NOTE

MODULE = __name__


@functools.lru_cache(maxsize=None)
def cached(x: int) -> int:
    return x


@functools.lru_cache(maxsize=None)
@functools.wraps(cached)
def layered(x: int) -> int:  # a cache over a plain wrapper: found through the chain
    return x


def _plain(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        return fn(*args)

    return wrapper


@_plain
def decorated(x: int) -> int:
    return x


class Service:
    @functools.lru_cache(maxsize=None)  # noqa: B019 - the case under test
    def method(self, x: int) -> int:
        return x

    @staticmethod
    @functools.lru_cache(maxsize=None)
    def static(x: int) -> int:
        return x

    @property
    @functools.lru_cache(maxsize=None)  # noqa: B019
    def prop(self) -> int:
        return 1

    def plain(self, x: int) -> int:
        return x


def test_a_cache_in_front_is_said_in_the_start_event() -> None:
    for cls, name in (
        (None, "cached"),
        (None, "layered"),
        ("Service", "method"),
        ("Service", "static"),
        ("Service", "prop"),
    ):
        target = location.resolve(MODULE, cls, name)
        assert target.note == CACHE_NOTE, (cls, name)
        assert target.describe()["note"] == CACHE_NOTE
        assert target.func.__code__.co_name in (name, "cached"), (cls, name)  # still the function that works


def test_no_note_without_a_cache() -> None:
    for cls, name in ((None, "decorated"), ("Service", "plain")):
        target = location.resolve(MODULE, cls, name)
        assert target.note is None and "note" not in target.describe(), (cls, name)
