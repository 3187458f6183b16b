"""Functions of every signature and kind, for the in-process hook tests (imported as ``hook_shapes``)."""

from __future__ import annotations

import asyncio
import functools
import types
from typing import Any, AsyncIterator, Iterator

BASE = 100


def plain(a: int, b: int = 2) -> int:
    return a + b


def kwonly(a: int, *, k: int, m: int = 3) -> tuple[int, int, int]:
    return (a, k, m)


def posonly(a: int, /, b: int = 5) -> int:
    return a * b


def star(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    return (args, kwargs)


def mixed(a: int, b: int = 1, *rest: int, k: int, **kw: int) -> int:
    return a + b + sum(rest) + k + sum(kw.values())


def no_args() -> str:
    return "nothing"


def raises(message: str) -> None:
    raise ValueError(message)


def make_closure(offset: int) -> Any:
    def closure(x: int) -> int:
        return x + offset + BASE

    return closure


closure = make_closure(10)


def _counting(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


@_counting
def decorated(x: int) -> int:
    return x * 3


class Shapes:
    factor = 7

    def __init__(self, value: int = 1) -> None:
        self.value = value

    def method(self, x: int) -> int:
        return self.value + x

    @classmethod
    def klass(cls, x: int) -> int:
        return cls.factor * x

    @staticmethod
    def static(x: int) -> int:
        return -x

    @property
    def prop(self) -> int:
        return self.value * 10

    def __repr__(self) -> str:
        return "Shapes(%d)" % self.value


def gen(n: int) -> Iterator[int]:
    total = 0
    for i in range(n):
        got = yield i
        total += got or 0
    return total


async def coro(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


async def agen(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@types.coroutine
def old_style(x: int) -> Iterator[None]:
    yield None
    return x + 1


async def awaits_old_style(x: int) -> int:
    return await old_style(x)  # type: ignore[no-any-return]


def outer(x: int) -> int:
    def inner(y: int) -> int:
        return y + x

    def uses_nothing(y: int) -> int:
        return y * 2

    return inner(x) + uses_nothing(x)


def outer_class(x: int) -> int:
    class Local:
        def method(self, y: int) -> int:
            return y - 1

    return Local().method(x)


def outer_gen(n: int) -> list[int]:
    def inner_gen() -> Iterator[int]:
        yield from range(n)

    return list(inner_gen())


def recursive(n: int) -> int:
    return 0 if n <= 0 else n + recursive(n - 1)


def all_functions() -> list[types.FunctionType]:
    """Every Python function defined here, methods included: their code must be theirs after each test."""
    found: list[types.FunctionType] = []
    for value in list(globals().values()) + list(vars(Shapes).values()):
        for candidate in (value, getattr(value, "__func__", None), getattr(value, "fget", None)):
            if isinstance(candidate, types.FunctionType) and candidate.__module__ == __name__:
                found.append(candidate)
                inner = candidate.__dict__.get("__wrapped__")
                if isinstance(inner, types.FunctionType):
                    found.append(inner)
    return found


# ---------------------------------------------------------------- what the recorded scenarios do (lines matter:
# the golden files show them; keep additions below)


def call_raises() -> None:
    try:
        raises("bad input")
    except ValueError:
        pass


def drive_gen() -> list[int]:
    g = gen(2)
    out = [next(g), g.send(1)]
    try:
        g.send(2)
    except StopIteration as stop:
        out.append(stop.value)
    return out


def calls_plain() -> int:
    return plain(3)
