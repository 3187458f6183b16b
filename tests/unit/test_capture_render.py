"""Value capture (agent side) and its text rendering (client side), in-process."""

from __future__ import annotations

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
