"""Value capture (agent side) and its text rendering (client side), in-process."""

from __future__ import annotations

import collections
import sys
import time

import pytest

from flight_profiler.render.values import one_line, pretty
from flight_profiler.services.capture import CaptureOptions, capture


class Point:
    def __init__(self) -> None:
        self.x = 1
        self.y = [1, 2]


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self) -> None:
        self.a = 1


class Hostile:
    @property
    def boom(self) -> int:
        raise ValueError("no")

    def __init__(self) -> None:
        self.fine = 2


def test_depth_limits_expansion() -> None:
    node = capture({"a": {"b": {"c": 1}}}, CaptureOptions(expand=2))
    inner = node["items"][0][1]["items"][0][1]
    assert inner == {"t": "dict", "r": "{'c': 1}"}


def test_objects_slots_and_failing_attributes() -> None:
    assert (
        one_line(capture(Point(), CaptureOptions(expand=2))) == "Point({'x': 1, 'y': [1, 2]})"
    )  # the seeds' object form
    slotted = capture(Slotted(), CaptureOptions())
    # a slot never assigned holds nothing: left out, not an error (a PosixPath showed 8 of them)
    assert slotted["attrs"] == {"a": {"t": "int", "v": 1}} and slotted["more"] == 0
    assert capture(Hostile(), CaptureOptions())["attrs"] == {"fine": {"t": "int", "v": 2}}


class Tag:
    """No state and a repr of its own: its repr says more than its (empty) attributes."""

    def __repr__(self) -> str:
        return "Tag<blue>"


def test_objects_in_a_container_at_the_last_level_show_their_attributes() -> None:
    """The seeds' getInstances examples: ``-e [i for i in instances if ...]`` at the default ``-x 1`` shows
    ``[Connection({'host': 'queue', ...})]``, as the plain ``instances`` does: the reference's ``-x``
    counts objects, not the containers around them. Attributes come by repr; deeper objects stay reprs."""
    one = CaptureOptions(expand=1)
    assert one_line(capture([Point(), Point()], one)) == "[Point({'x': 1, 'y': [1, 2]}), Point({'x': 1, 'y': [1, 2]})]"
    assert one_line(capture({"p": Point()}, one)) == "{'p': Point({'x': 1, 'y': [1, 2]})}"
    assert one_line(capture((Tag(), 3, "s"), one)) == "(Tag<blue>, 3, 's')"
    stated = Tag()
    stated.colour = "blue"  # type: ignore[attr-defined]
    assert one_line(capture([stated], one)) == "[Tag<blue>]"  # a repr of its own: its authors' choice
    nested = Point()
    nested.x = Point()  # type: ignore[assignment]
    assert one_line(capture([nested], one)).startswith("[Point({'x': <")  # an object's attribute: its repr
    assert capture([[Point()]], one)["items"][0].get("r", "").startswith("[<")  # a list inside: by repr
    looped: list[object] = []
    point = Point()
    point.y = looped  # type: ignore[assignment]
    looped.append(point)
    assert one_line(capture(looped, one)).startswith("[Point({'x': 1, 'y': [<")  # a cycle: by repr, once


def test_item_limit_and_verbose() -> None:
    node = capture(list(range(100)), CaptureOptions())
    assert len(node["items"]) == 20 and node["more"] == 80
    assert one_line(node).endswith("19, ... 80 more]")
    assert capture(list(range(100)), CaptureOptions(verbose=True))["more"] == 0


def test_big_ints_and_special_floats_stay_exact() -> None:
    assert capture(2**70, CaptureOptions())["r"] == str(2**70)
    assert capture(float("nan"), CaptureOptions())["r"] == "nan"


def test_pretty_breaks_long_values() -> None:
    text = pretty(capture({"k%d" % i: "v" * 10 for i in range(12)}, CaptureOptions()))
    assert text.splitlines()[0] == "{" and text.splitlines()[1] == "  'k0': 'vvvvvvvvvv',"
    assert one_line(capture((1,), CaptureOptions())) == "(1,)"


def test_a_frozenset_and_an_empty_set_are_written_as_python_writes_them() -> None:
    """A frozenset printed as ``{1}`` read as a set, and an empty set as ``{}`` read as a dict; Python's
    own forms say which."""
    shown = {
        one_line(capture(value, CaptureOptions())): repr(value)
        for value in (frozenset({1}), {1}, set(), frozenset(), [frozenset({2}), set()])
    }
    assert all(text == python for text, python in shown.items()), shown
    assert pretty(capture([frozenset({2})], CaptureOptions(expand=2))) == "[frozenset({2})]"


Pair = collections.namedtuple("Pair", "x y")


class Labelled(Pair):
    """A subclass of a named tuple: the fields come from its base's dict."""


class Plain(tuple):  # type: ignore[type-arg]
    """A tuple subclass with no field names."""


class Misnamed(tuple):  # type: ignore[type-arg]
    """``_fields`` that do not name the items (one name, two items): shown with no labels."""

    _fields = ("a",)


def test_a_named_tuple_is_written_with_its_field_names() -> None:
    """A namedtuple was written ``(1, 2)``: the names are what tells a row from a pair of numbers."""
    assert one_line(capture(Pair(1, 2), CaptureOptions())) == "Pair(x=1, y=2)"
    assert capture(Pair(1, 2), CaptureOptions())["fields"] == ["x", "y"]
    assert one_line(capture(Labelled(3, [4]), CaptureOptions())) == "Labelled(x=3, y=[4])"
    assert one_line(capture(Pair(1, (2,)), CaptureOptions())) == "Pair(x=1, y=(2,))"
    assert one_line(capture(Plain((1,)), CaptureOptions())) == "%s.Plain((1,))" % __name__
    assert one_line(capture(Misnamed((1, 2)), CaptureOptions())) == "%s.Misnamed((1, 2))" % __name__
    long = pretty(capture(Pair(1, "y" * 120), CaptureOptions()))
    assert long.splitlines()[:2] == ["Pair(", "  x=1,"] and long.endswith("\n)"), long


def test_only_the_shown_items_are_named() -> None:
    many = collections.namedtuple("Many", ["f%d" % i for i in range(30)])(*range(30))
    node = capture(many, CaptureOptions())
    assert node["fields"] == ["f%d" % i for i in range(20)] and node["more"] == 10
    assert one_line(node).endswith("f19=19, ... 10 more)")


@pytest.mark.skipif(sys.version_info < (3, 10), reason="struct sequences name their fields in __match_args__ from 3.10")
def test_a_struct_sequence_is_written_with_its_field_names() -> None:
    assert one_line(capture(time.gmtime(0), CaptureOptions())).startswith("struct_time(tm_year=1970, tm_mon=1,")
