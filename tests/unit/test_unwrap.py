"""The function a ``module [class] name`` resolves to, down the decorators' ``__wrapped__`` chain: the
innermost *Python* function. ``functools.wraps(len)`` left ``__wrapped__`` on a Python wrapper pointing
at a built-in, and ``watch`` of that wrapper was refused ("is a built-in (C) function")."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from flight_profiler.services import location
from flight_profiler.services.context import CommandFailed

MODULE = __name__


@functools.wraps(len)
def measured(x: Any) -> int:  # a Python wrapper over a C function
    return len(x)


class Adder:
    def __call__(self, x: int) -> int:
        return x + 1


def over_an_object(x: int) -> int:
    return Adder()(x)


over_an_object.__wrapped__ = Adder()  # type: ignore[attr-defined]


def inner(x: int) -> int:
    return x


@functools.wraps(inner)
def outer(x: int) -> int:
    return inner(x)


@pytest.mark.parametrize("name", ["measured", "over_an_object"])
def test_a_wrapper_over_something_not_python_is_hooked_itself(name: str) -> None:
    assert location.resolve(MODULE, None, name).func is globals()[name]


def test_a_python_function_below_is_still_the_one_hooked() -> None:
    assert location.resolve(MODULE, None, "outer").func is inner


@pytest.mark.parametrize(
    ("module", "name", "said"),
    [
        ("functools", "reduce", r"is a built-in \(C\) function"),
        (MODULE, "Adder", "is a class: name one of its methods"),
    ],
)
def test_what_is_not_python_at_all_is_still_refused(module: str, name: str, said: str) -> None:
    with pytest.raises(CommandFailed, match=said):
        location.resolve(module, None, name)
