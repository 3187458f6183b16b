"""Target for the ``-nm`` tests: every shape of nested function; stdlib only, Python 3.8+.

Prints "ready" once its callers run. A thread calls every shape every few
milliseconds, some through functions made before any hook (``KEPT_*``), and
records what it did not expect in ERRORS (a hook that recursed would put a
RecursionError there). SIGUSR1 ends the process with 0 when ERRORS is empty.

``state()`` (called through ``console``) says whether every function and every
nested code object is the exact object it started as.
"""

import asyncio
import gc
import os
import signal
import sys
import threading
import types
from time import sleep

ERRORS = []
ROUNDS = [0]


def no_free(v):  # the reference's own "nested_outer -nm inner_work" shape: no free variable
    def inner_work(x):
        return x * 2

    return inner_work(v) + 1


def closure(v):
    def add(x):
        return x + v

    return add(1)


def with_lambda(v):
    triple = lambda x: x * 3  # noqa: E731 - the shape under test
    return triple(v)


def with_class(v):
    class Helper:
        def __init__(self, base):
            self.base = base

        def scale(self, x):
            assert __class__ is Helper  # zero-argument super() needs this cell
            return super().__repr__()[:1] + str(x * self.base)

    return Helper(2).scale(v)


def levels(v):
    def a(x):
        def b(y):
            return y + 1

        return b(x) * 2

    return a(v)


def twice(v):
    if v % 2:

        def pick(x):
            return x + 100

    else:

        def pick(x):
            return x - 100

    return pick(v)


def ambiguous(v):
    def first(x):
        def step(y):
            return y

        return step(x)

    def second(x):
        def step(y):
            return -y

        return step(x)

    return first(v) + second(v)


def gen_outer(n):
    def numbers(k):
        yield from range(k)
        return "done"

    return list(numbers(n))


async def coro_outer(n):
    async def later(x):
        await asyncio.sleep(0)
        return x + 1

    return await later(n)


def make_a():
    """Its ``a`` is made once, before any hook: ``-nm a.b`` must still see the ``b`` it makes."""

    def a(x):
        def b(y):
            return y * 5

        return b(x)

    return a


def make_class():
    class Kept:
        def value(self, x):
            return x - 1

    return Kept


KEPT_A = make_a()
KEPT_CLASS = make_class()
KEPT_INSTANCE = KEPT_CLASS()

OUTERS = {
    name: globals()[name]
    for name in (
        "no_free",
        "closure",
        "with_lambda",
        "with_class",
        "levels",
        "twice",
        "ambiguous",
        "gen_outer",
        "coro_outer",
        "make_a",
        "make_class",
    )
}
ORIGINAL = {name: func.__code__ for name, func in OUTERS.items()}


def _nested_codes(code, found):
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.append(const)
            _nested_codes(const, found)
    return found


NESTED = {name: _nested_codes(code, []) for name, code in ORIGINAL.items()}


def _made_now():
    """Functions made by the outer functions right now: each must have one of the original nested codes."""
    made = [make_a(), make_class().value, KEPT_A, KEPT_CLASS.value]
    made += list(gc.get_referrers(*[c for codes in NESTED.values() for c in codes]))
    return [f for f in made if isinstance(f, types.FunctionType)]


def state():
    originals = {id(c) for codes in NESTED.values() for c in codes}
    changed = [name for name, func in OUTERS.items() if func.__code__ is not ORIGINAL[name]]
    hooked = [
        f.__qualname__
        for f in gc.get_objects()
        if isinstance(f, types.FunctionType) and f.__code__.co_filename == "<flight_profiler hook>"
    ]
    stray = [f.__qualname__ for f in _made_now() if id(f.__code__) not in originals]
    return {
        "changed": changed,
        "hooked_functions": sorted(set(hooked)),
        "stray": sorted(set(stray)),
        "errors": list(ERRORS),
        "rounds": ROUNDS[0],
    }


def _round(i):
    assert no_free(i) == i * 2 + 1
    assert closure(i) == i + 1
    assert with_lambda(i) == i * 3
    assert with_class(i) == "<" + str(i * 2)
    assert levels(i) == (i + 1) * 2
    assert twice(i) == (i + 100 if i % 2 else i - 100)
    assert ambiguous(i) == 0
    assert gen_outer(3) == [0, 1, 2]
    assert KEPT_A(i) == i * 5
    assert KEPT_INSTANCE.value(i) == i - 1


def caller():
    i = 0
    while True:
        i += 1
        try:
            _round(i)
        except BaseException as exc:  # a RecursionError from a hook is what this target exists to catch
            ERRORS.append(repr(exc)[:200])
            del ERRORS[:-20]
        ROUNDS[0] += 1
        sleep(0.005)


def async_caller():
    async def main():
        i = 0
        while True:
            i += 1
            try:
                assert await coro_outer(i) == i + 1
            except BaseException as exc:
                ERRORS.append(repr(exc)[:200])
                del ERRORS[:-20]
            await asyncio.sleep(0.005)

    asyncio.run(main())


class Stop(Exception):
    pass


def on_usr1(signum, frame):
    raise Stop()


def main():
    signal.signal(signal.SIGUSR1, on_usr1)
    threading.Thread(target=caller, name="caller", daemon=True).start()
    threading.Thread(target=async_caller, name="async-caller", daemon=True).start()
    print("ready", flush=True)
    try:
        while True:
            sleep(3600)
    except Stop:
        sys.stdout.flush()
        os._exit(0 if not ERRORS else 3)


if __name__ == "__main__":
    main()
