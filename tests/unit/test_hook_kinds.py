"""Hooks in this process over every signature and function kind (services/hooks.py, services/location.py).

A hooked function must behave exactly as before for its callers (same result,
same exception, same kind and signature to ``inspect``), report each call to
its probes with the parameters as the documented ``args``/``kwargs``, and get
its own code object back when the last probe leaves. The autouse fixture
checks that last point after every test, for every function of
``hook_shapes``.
"""

from __future__ import annotations

import asyncio
import inspect
import types
from collections.abc import Iterator
from typing import Any, Callable

import hook_shapes as S
import pytest

from flight_profiler.services import hooks, location
from flight_profiler.services.context import CommandFailed

MODULE = S.__name__


@pytest.fixture(autouse=True)
def codes_restored_exactly() -> Iterator[None]:
    before = {func: func.__code__ for func in S.all_functions()}
    closure_code = S.closure.__code__
    yield
    assert hooks.installed() == []
    changed = [func.__qualname__ for func, code in before.items() if func.__code__ is not code]
    assert changed == [], "code objects not restored"
    assert S.closure.__code__ is closure_code


class Recorder:
    """A probe that takes every call and keeps what the wrapper hands it."""

    steps = False

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any, Any, BaseException | None]] = []

    def enter(self, args: Any, kwargs: Any) -> Any:
        return True

    def leave(self, state: Any, args: Any, kwargs: Any, returned: Any, error: BaseException | None) -> None:
        self.calls.append((args, kwargs, returned, error))

    def drive(self, state: Any, inner: Any) -> Any:
        return inner


class Picky(Recorder):
    """Takes only calls whose first argument is even (``enter`` returning None: not interested)."""

    def enter(self, args: Any, kwargs: Any) -> Any:
        return True if args and args[0] % 2 == 0 else None


async def _collect(agen: Any) -> list[Any]:
    return [item async for item in agen]


def _drive_gen() -> Any:
    g = S.gen(3)
    out = [next(g), g.send(10), g.send(20)]
    try:
        g.send(5)
    except StopIteration as stop:
        out.append(("returned", stop.value))
    return out


# name -> (the function object to hook, a call of it through its usual path, args and kwargs the probe gets)
CASES: dict[str, tuple[Callable[[], types.FunctionType], Callable[[], Any], Any, Any]] = {
    "plain": (lambda: S.plain, lambda: S.plain(1), (1, 2), None),
    "plain keyword": (lambda: S.plain, lambda: S.plain(1, b=5), (1, 5), None),
    "keyword-only": (lambda: S.kwonly, lambda: S.kwonly(1, k=2), (1,), {"k": 2, "m": 3}),
    "positional-only": (lambda: S.posonly, lambda: S.posonly(2), (2, 5), None),
    "*args **kwargs": (lambda: S.star, lambda: S.star(1, 2, x=3), (1, 2), {"x": 3}),
    "mixed": (lambda: S.mixed, lambda: S.mixed(1, 2, 3, 4, k=5, z=6), (1, 2, 3, 4), {"k": 5, "z": 6}),
    "no parameters": (lambda: S.no_args, lambda: S.no_args(), (), None),
    "closure": (lambda: S.closure, lambda: S.closure(1), (1,), None),
    "decorated (wrapped)": (lambda: S.decorated.__wrapped__, lambda: S.decorated(2), (2,), None),
    "method": (lambda: S.Shapes.method, lambda: S.Shapes(2).method(3), ("Shapes(2)", 3), None),
    "classmethod": (lambda: vars(S.Shapes)["klass"].__func__, lambda: S.Shapes.klass(2), (S.Shapes, 2), None),
    "staticmethod": (lambda: vars(S.Shapes)["static"].__func__, lambda: S.Shapes(5).static(4), (4,), None),
    "property": (lambda: vars(S.Shapes)["prop"].fget, lambda: S.Shapes(3).prop, ("Shapes(3)",), None),
    "generator": (lambda: S.gen, _drive_gen, (3,), None),
    "coroutine": (lambda: S.coro, lambda: asyncio.run(S.coro(4)), (4,), None),
    "async generator": (lambda: S.agen, lambda: asyncio.run(_collect(S.agen(3))), (3,), None),
    "types.coroutine": (lambda: S.old_style, lambda: asyncio.run(S.awaits_old_style(1)), (1,), None),
}


def _kind(func: Any) -> tuple[bool, ...]:
    return (
        inspect.isgeneratorfunction(func),
        inspect.iscoroutinefunction(func),
        inspect.isasyncgenfunction(func),
        bool(func.__code__.co_flags & hooks.CO_ITERABLE_COROUTINE),
    )


def _shown(args: Any) -> Any:
    return tuple(repr(a) if isinstance(a, S.Shapes) else a for a in args)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hooked_function_behaves_the_same_and_reports_its_call(case: str) -> None:
    get, call, args, kwargs = CASES[case]
    func = get()
    expected = call()
    kind, signature, original = _kind(func), inspect.signature(func), func.__code__
    probe = Recorder()
    handle = hooks.install(func, probe)
    try:
        assert func.__code__ is not original and hooks.real_code(func) is original
        assert _kind(func) == kind and inspect.signature(func) == signature
        assert func.__defaults__ == get().__defaults__ and func.__name__ == original.co_name
        assert call() == expected
    finally:
        handle.remove()
    assert func.__code__ is original
    assert len(probe.calls) == 1, probe.calls
    (got_args, got_kwargs, returned, error) = probe.calls[0]
    assert (_shown(got_args), got_kwargs, error) == (args, kwargs, None)
    if case == "generator":
        assert returned == 35  # the generator's return value, through ``yield from``
    elif case not in ("async generator",):
        assert returned == expected
    assert call() == expected and len(probe.calls) == 1  # removed: not reported any more


def test_an_exception_passes_through_unchanged_and_is_reported() -> None:
    probe = Recorder()
    handle = hooks.install(S.raises, probe)
    try:
        with pytest.raises(ValueError, match="boom") as info:
            S.raises("boom")
    finally:
        handle.remove()
    assert probe.calls[0][3] is info.value and probe.calls[0][2] is None
    names = [entry.name for entry in info.traceback]
    assert names[-1] == "raises"  # the function's own frame is still where it raised


def test_a_probe_that_declines_costs_no_report_and_changes_nothing() -> None:
    probe = Picky()
    handle = hooks.install(S.plain, probe)
    try:
        assert [S.plain(n) for n in range(4)] == [2, 3, 4, 5]
    finally:
        handle.remove()
    assert [call[0] for call in probe.calls] == [(0, 2), (2, 2)]


def test_recursion_reports_every_level() -> None:
    probe = Recorder()
    handle = hooks.install(S.recursive, probe)
    try:
        assert S.recursive(3) == 6
    finally:
        handle.remove()
    assert [call[0] for call in probe.calls] == [(0,), (1,), (2,), (3,)]


def test_a_generator_closed_early_and_one_thrown_into_behave_as_unhooked() -> None:
    probe = Recorder()
    handle = hooks.install(S.gen, probe)
    try:
        g = S.gen(5)
        assert next(g) == 0
        g.close()
        g = S.gen(5)
        next(g)
        with pytest.raises(KeyError):
            g.throw(KeyError("x"))
    finally:
        handle.remove()
    assert [type(call[3]) for call in probe.calls] == [GeneratorExit, KeyError]


def test_an_async_generator_closed_early_is_closed_inside() -> None:
    probe = Recorder()
    handle = hooks.install(S.agen, probe)

    async def first_then_close() -> int:
        agen = S.agen(10)
        first: int = await agen.__anext__()
        await agen.aclose()
        return first

    try:
        assert asyncio.run(first_then_close()) == 0
    finally:
        handle.remove()
    assert len(probe.calls) == 1 and isinstance(probe.calls[0][3], GeneratorExit)


def test_several_probes_each_get_every_call_and_leave_in_any_order() -> None:
    first, second, third = Recorder(), Picky(), Recorder()
    original = S.plain.__code__
    handles = [hooks.install(S.plain, probe) for probe in (first, second, third)]
    S.plain(2)
    handles[1].remove()
    S.plain(4)
    handles[0].remove()
    handles[0].remove()  # idempotent
    assert S.plain.__code__ is not original
    S.plain(6)
    handles[2].remove()
    assert S.plain.__code__ is original
    assert (len(first.calls), len(second.calls), len(third.calls)) == (2, 1, 3)


def test_reload_while_hooked_keeps_the_hook_on_the_new_code() -> None:
    original = S.plain.__code__
    module_code = compile("def plain(a, b=2):\n    return a - b\n", S.__file__, "exec")
    replacement = next(c for c in module_code.co_consts if isinstance(c, types.CodeType))
    probe = Recorder()
    handle = hooks.install(S.plain, probe)
    try:
        assert hooks.replace_code(S.plain, replacement) is True
        assert S.plain(5) == 3 and probe.calls[-1][2] == 3
    finally:
        handle.remove()
        assert S.plain.__code__ is replacement  # the reloaded code stays, unhooked
        S.plain.__code__ = original


def test_remove_all_takes_every_hook_off() -> None:
    handles = [hooks.install(S.plain, Recorder()), hooks.install(S.coro, Recorder())]
    assert hooks.installed() == ["hook_shapes.coro", "hook_shapes.plain"]
    hooks.remove_all()
    assert hooks.installed() == []
    for handle in handles:
        handle.remove()  # after remove_all: nothing left to do, nothing raised


# ---------------------------------------------------------------- nested functions (-nm)


@pytest.mark.parametrize(
    ("function", "nested", "label", "kind", "call", "args"),
    [
        ("outer", "inner", "hook_shapes.outer.inner", "nested function", lambda: S.outer(2), [(2,)]),
        ("outer", "uses_nothing", "hook_shapes.outer.uses_nothing", "nested function", lambda: S.outer(2), [(2,)]),
        (
            "outer_class",
            "Local.method",
            "hook_shapes.outer_class.Local.method",
            "nested method",
            lambda: S.outer_class(4),
            [("<Local>", 4)],
        ),
        (
            "outer_class",
            "method",
            "hook_shapes.outer_class.Local.method",
            "nested method",
            lambda: S.outer_class(4),
            [("<Local>", 4)],
        ),
        ("outer_gen", "inner_gen", "hook_shapes.outer_gen.inner_gen", "nested function", lambda: S.outer_gen(2), [()]),
        (
            "make_closure",
            "closure",
            "hook_shapes.make_closure.closure",
            "nested function",
            lambda: S.make_closure(1)(1),
            [(1,)],
        ),
    ],
)
def test_nested_functions_are_hooked_through_their_enclosing_code(
    function: str, nested: str, label: str, kind: str, call: Callable[[], Any], args: list[Any]
) -> None:
    expected = call()
    target = location.resolve(MODULE, None, function, nested)
    assert (target.label, target.kind) == (label, kind)
    probe = Recorder()
    handle = hooks.install(target.func, probe, target.nested)
    try:
        assert call() == expected
    finally:
        handle.remove()
    got = [tuple("<Local>" if type(a).__name__ == "Local" else a for a in call_[0]) for call_ in probe.calls]
    assert got == args
    assert call() == expected and len(probe.calls) == len(args)


def test_a_closure_made_before_the_hook_is_switched_and_switched_back() -> None:
    made_before = S.make_closure(2)
    own_code = made_before.__code__
    target = location.resolve(MODULE, None, "make_closure", "closure")
    probe = Recorder()
    handle = hooks.install(target.func, probe, target.nested)
    try:
        assert made_before(1) == 103 and S.closure(1) == 111
    finally:
        handle.remove()
    assert made_before.__code__ is own_code
    assert [call[0] for call in probe.calls] == [(1,), (1,)]


@pytest.mark.parametrize(
    ("cls", "name", "nested", "error"),
    [
        (None, "Shapes", None, "is a class: name one of its methods"),
        (None, "asyncio", None, "is a module"),
        (None, "BASE", None, "is an int, not a Python function"),
        (None, "nope", None, "nope"),
        ("Shapes", "nope", None, "nope"),
        (None, "outer", "missing", "defines no nested function 'missing' (it defines: inner, uses_nothing)"),
        (None, "outer_class", "Local", "is a class: name one of its methods"),
        (None, "plain", "x", "it defines no nested functions"),
    ],
)
def test_what_cannot_be_hooked_is_a_one_line_error(cls: str | None, name: str, nested: str | None, error: str) -> None:
    with pytest.raises(CommandFailed) as info:
        location.resolve(MODULE, cls, name, nested)
    assert error in str(info.value) and "\n" not in str(info.value)


def test_a_builtin_is_refused() -> None:
    with pytest.raises(CommandFailed, match="built-in"):
        location.resolve("builtins", None, "len")


def test_a_function_using_the_wrappers_own_names_is_refused_untouched() -> None:
    namespace: dict[str, Any] = {}
    exec("def clash(_fp_h):\n    return _fp_h\n", namespace)
    func = namespace["clash"]
    code = func.__code__
    with pytest.raises(CommandFailed, match="uses the name _fp_h"):
        hooks.install(func, Recorder())
    assert func.__code__ is code and hooks.installed() == []
