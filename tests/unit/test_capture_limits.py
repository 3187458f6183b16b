"""Captures cost what the preview shows: the object is read from its head (and tail), never whole."""

from __future__ import annotations

import collections
import sys
import types
from typing import Any

import pytest

from flight_profiler.render.values import one_line
from flight_profiler.services.capture import ITEM_LIMIT_VERBOSE, CaptureOptions, capture


class CountingList(list):  # type: ignore[type-arg]
    """A list that counts the items anyone iterates: a full copy would read them all."""

    read = 0

    def __iter__(self) -> Any:
        for item in list.__iter__(self):
            CountingList.read += 1
            yield item


class CountingDict(dict):  # type: ignore[type-arg]
    read = 0

    def items(self) -> Any:
        for pair in dict.items(self):
            CountingDict.read += 1
            yield pair


def test_containers_are_read_from_their_head_only() -> None:
    CountingList.read = CountingDict.read = 0
    capture(CountingList(range(100_000)), CaptureOptions())
    capture(CountingDict((i, i) for i in range(100_000)), CaptureOptions())
    capture([CountingList(range(100_000))], CaptureOptions(verbose=True))  # below the depth: the writer
    assert CountingList.read <= 20 + 8192 and CountingDict.read == 20


def test_bytes_like_objects_keep_head_and_tail() -> None:
    data = bytearray(b"H" * 100 + b"\0" * 1_000_000 + b"TAIL")
    node = capture(data, CaptureOptions())
    assert node["cut"] == [64, len(data)] and node["unit"] == "bytes"
    assert node["r"].startswith("bytearray(b'HHH") and node["r"].endswith("TAIL')")
    assert "(cut: 64 of 1,000,104 bytes shown, -v shows more)" in one_line(node)
    view = capture(memoryview(data), CaptureOptions())
    assert view["r"].startswith("<memory b'HHH") and view["cut"][1] == len(data)
    assert capture(b"abc", CaptureOptions()) == {"t": "bytes", "r": "b'abc'"}


def test_below_the_depth_containers_are_written_within_a_budget() -> None:
    node = capture({"big": list(range(1_000_000))}, CaptureOptions())
    inner = node["items"][0][1]
    assert inner["r"].startswith("[0, 1, 2") and inner["r"].endswith("...") and len(inner["r"]) <= 260
    assert inner["len"] == 1_000_000 and one_line(inner).endswith("(len 1,000,000)")
    small = {"t": "list", "r": "[(1,), {'a': {...}}, frozenset({2}), set(), b'x']"}
    cyclic: dict[str, Any] = {}
    cyclic["a"] = cyclic
    assert capture([[(1,), cyclic, frozenset({2}), set(), b"x"]], CaptureOptions())["items"][0] == small


def test_stdlib_containers_are_expanded_not_repred() -> None:
    deque = capture(collections.deque(range(10_000)), CaptureOptions())
    assert deque["kind"] == "list" and deque["len"] == 10_000 and len(deque["items"]) == 20
    ordered = capture([collections.OrderedDict((i, i) for i in range(10_000))], CaptureOptions())
    assert ordered["items"][0]["r"].startswith("OrderedDict({0: 0, 1: 1")


def test_verbose_states_its_cap() -> None:
    node = capture(list(range(1_000_000)), CaptureOptions(verbose=True))
    assert len(node["items"]) == ITEM_LIMIT_VERBOSE and node["cap"] == ITEM_LIMIT_VERBOSE
    assert one_line(node).endswith("... 2,000 shown of 1,000,000; -v shows at most 2,000]")
    assert "cap" not in capture(list(range(100)), CaptureOptions(verbose=True))


def test_ints_past_the_str_limit_are_shown_by_size() -> None:
    huge = 10**5000
    for options in (CaptureOptions(), CaptureOptions(raw=True), CaptureOptions(verbose=True)):
        assert capture(huge, options)["r"] == "<int of 16,610 bits, about 5,001 digits>"
    assert capture([-huge], CaptureOptions())["items"][0]["r"].startswith("<int of 16,610 bits")
    assert capture([[huge]], CaptureOptions())["items"][0]["r"] == "[<int of 16,610 bits, about 5,001 digits>]"
    assert capture(10**4000, CaptureOptions())["r"] == str(10**4000)  # under the limit: exact


@pytest.mark.skipif(not hasattr(sys, "set_int_max_str_digits"), reason="3.11+: int->str limit")
def test_an_app_lowered_int_limit_is_respected() -> None:
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert capture(10**1000, CaptureOptions())["r"].startswith("<int of 3,322 bits")
    finally:
        sys.set_int_max_str_digits(old)


def _fake_module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(source, module.__dict__)  # classes whose __module__ is the fake library's name
    return module


def test_arrays_and_tensors_by_shape_without_their_library() -> None:
    numpy = _fake_module(
        "numpy",
        "class ndarray:\n"
        "    shape = (1000, 1000)\n    dtype = 'float64'\n"
        "    def __repr__(self): raise AssertionError('repr of a whole array')\n"
        "    def __len__(self): raise AssertionError('len of a whole array')\n",
    )
    torch = _fake_module(
        "torch",
        "class Tensor:\n    shape = (3, 4)\n    dtype = 'torch.float16'\n    device = 'cuda:0'\n"
        "    def __repr__(self): raise AssertionError('repr of a whole tensor')\n"
        "class Parameter(Tensor):\n    def __init__(self): self.grad = None\n",
    )
    assert capture(numpy.ndarray(), CaptureOptions())["r"] == "<numpy.ndarray shape=(1000, 1000) dtype=float64>"
    node = capture({"w": torch.Parameter()}, CaptureOptions(expand=3))
    assert node["items"][0][1]["r"] == "<torch.Parameter shape=(3, 4) dtype=torch.float16 device=cuda:0>"


def test_a_user_repr_is_kept_cut() -> None:
    class Loud:
        def __repr__(self) -> str:
            return "x" * 10_000 + "END"

    node = capture([Loud()], CaptureOptions())["items"][0]
    assert node["cut"] == [256, 10_003] and node["r"].endswith("END")
