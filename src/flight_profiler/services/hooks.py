"""Instrument a Python function so that every reference to it sees the hook (runs in the target).

How: the function object keeps its identity and gets a new ``__code__``, a
wrapper compiled from generated source with the same parameters (names,
kinds, order) and the same free variables, so the function's defaults,
closure and every alias (``from m import f``, bound methods, registries,
subclasses) keep working. The wrapper calls the original code through a
*shadow* function (same code, globals and closure cells) and reports the call
to the probes. Removing the last probe puts back the exact code object the
function had - or the one ``reload`` swapped in meanwhile.

Why not ``sys.monitoring`` on 3.12+: its callbacks see a code object and an
offset, not the arguments; reading them through ``sys._getframe(1).f_locals``
costs more than the whole call of a small function (measured here: +0.5 to
+1.7 us per call on 3.12-3.14, against +0.1 to +0.2 us for this wrapper with a
filter on the arguments), and the filters of ``watch``/``trace`` need the
arguments on every call. One mechanism on every version also means one set of
behaviours to test, and nothing to coordinate with debuggers or coverage tools
over monitoring tool ids. Why not ``sys.setprofile``: it slows every call in
the process, not one function.

What the wrapper costs the program's meaning: one more frame on the stack
while a hooked function runs (file ``<flight_profiler hook>``), visible in
tracebacks and to code that inspects its caller with ``sys._getframe(1)``.
Nothing is written into the target's namespaces: the wrapper finds its hook
through a constant of its own code object.

Kinds: plain functions, generators (``yield from``), coroutines (``await``)
and async generators (a full asend/athrow/aclose proxy) each get a wrapper of
their own kind, so ``inspect.iscoroutinefunction`` & co. answer as before and
the cost of a generator or coroutine is its whole run. Nested functions
(``-nm``): the enclosing function's code gets the wrapper as the constant it
makes closures from, existing closures of that code are switched too (found
through ``gc``), and removal switches every closure back.

Probes (``watch``, ``trace``, ``tt``) provide::

    enter(args, kwargs) -> state | None     # None: not interested in this call
    leave(state, args, kwargs, returned, error) -> None   # must never raise
    drive(state, inner) -> inner, or a generator stepping it (trace)

``args`` is the tuple of positional parameter values (``*args`` included),
``kwargs`` the dict of keyword-only parameters and ``**kwargs`` - or None for a
function that has neither (one dict less to build on every call). Several
probes may hook the same function; each install is counted and removed on
its own.
"""

from __future__ import annotations

import sys
import threading
import types

from .context import CommandFailed, on_detach

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

CO_VARARGS = 0x04
CO_VARKEYWORDS = 0x08
CO_GENERATOR = 0x20
CO_COROUTINE = 0x80
CO_ITERABLE_COROUTINE = 0x100
CO_ASYNC_GENERATOR = 0x200

PLACEHOLDER = "__flight_profiler_hook__"
HOOK_FILE = "<flight_profiler hook>"
_WRAPPER = "_fp_wrapper"

# threads doing the agent's own work inside a hooked call (capturing a value can
# call a hooked __repr__ or property): probes never record calls made meanwhile
OWN_WORK: set[int] = set()

_lock = threading.RLock()
_slots: dict[int, _Slot] = {}  # id(function) -> its patch; the slot keeps the function alive
# id(wrapper code) -> (wrapper, the code it stands in for), for the closures nested hooks switch:
# such a closure hooked on its own must get its real code back, not the nested hook's wrapper
_standing_in: dict[int, tuple[types.CodeType, types.CodeType]] = {}


def code_kind(code: types.CodeType) -> str:
    flags = code.co_flags
    if flags & CO_ASYNC_GENERATOR:
        return "asyncgen"
    if flags & CO_COROUTINE:
        return "coroutine"
    if flags & CO_GENERATOR:
        return "generator"
    return "function"


def real_code(func: types.FunctionType) -> types.CodeType:
    """The function's own code, also while a hook's wrapper stands in for it."""
    with _lock:
        slot = _slots.get(id(func))
        return slot.original if slot is not None else _own_code(func.__code__)


def _own_code(code: types.CodeType) -> types.CodeType:
    entry = _standing_in.get(id(code))
    return entry[1] if entry is not None and entry[0] is code else code


def install(func: types.FunctionType, probe: Any, nested: types.CodeType | None = None) -> Handle:
    """Hook ``func`` (or, with ``nested``, the closures ``func`` makes from that code) for ``probe``."""
    with _lock:
        on_detach(remove_all)
        slot = _slots.get(id(func))
        if slot is None:
            slot = _slots[id(func)] = _Slot(func)
        hook = None
        try:
            hook = slot.hook_for(nested)
            hook.add(probe)
            slot.apply()
        except BaseException:
            if hook is not None:
                hook.discard(probe)
            _settle(slot, nested)
            raise
        return Handle(slot, hook, probe, nested)


def _settle(slot: _Slot, nested: types.CodeType | None) -> None:
    """After a probe left: put back what no probe needs any more, closures last."""
    released = slot.forget_empty(nested)
    if slot.empty():
        slot.restore()
        if _slots.get(id(slot.func)) is slot:
            del _slots[id(slot.func)]
    else:
        slot.apply()
    if released is not None:  # after the enclosing function stopped making wrapped closures
        released.release_closures()


def replace_code(func: types.FunctionType, code: types.CodeType) -> bool:
    """Make ``code`` the function's code (``reload``); True when a hook stays on it.

    A hooked function keeps its hook: the hook runs the new code from now on,
    and removing it later restores the new code, not the old one.
    """
    with _lock:
        slot = _slots.get(id(func))
        if slot is None:
            func.__code__ = code
            return False
        if slot.nested:
            raise CommandFailed("a nested function of it is instrumented (-nm); end that command first")
        slot.set_original(code)
        return True


def remove_all() -> None:
    """Take every hook off (detach): the functions get their own code back."""
    with _lock:
        for slot in list(_slots.values()):
            slot.remove_everything()
        _slots.clear()


def installed() -> list[str]:
    """Qualified names of the functions hooked right now (for diagnostics and tests)."""
    with _lock:
        return sorted("%s.%s" % (s.func.__module__, s.func.__qualname__) for s in _slots.values())


class Handle:
    """One probe's install; ``remove()`` is idempotent and safe from any thread."""

    def __init__(self, slot: _Slot, hook: _Hook, probe: Any, nested: types.CodeType | None) -> None:
        self._slot = slot
        self._hook = hook
        self._probe = probe
        self._nested = nested
        self.kind = hook.kind
        self.removed = False

    def root_code(self) -> types.CodeType:
        """The code object that runs the function's body now (trace binds its root frame by it)."""
        return self._hook.root_code()

    def remove(self) -> None:
        with _lock:
            if self.removed:
                return
            self.removed = True
            self._hook.discard(self._probe)
            _settle(self._slot, self._nested)


class _Slot:
    """Everything patched on one function object."""

    def __init__(self, func: types.FunctionType) -> None:
        self.func = func
        self.original = _own_code(func.__code__)  # the function's own code (reload may change it)
        self.direct: _FunctionHook | None = None
        self.nested: dict[types.CodeType, _NestedHook] = {}
        self.installed_code: types.CodeType | None = None  # what we last set as func.__code__

    def hook_for(self, nested: types.CodeType | None) -> _Hook:
        if nested is None:
            if self.direct is None:
                self.direct = _FunctionHook(self.func, self.original)
            return self.direct
        if nested not in self.original.co_consts:
            raise CommandFailed("the nested function's code is no longer part of %s" % self.func.__qualname__)
        hook = self.nested.get(nested)
        if hook is None:
            hook = self.nested[nested] = _NestedHook(self.func, nested)
        return hook

    def forget_empty(self, nested: types.CodeType | None) -> _NestedHook | None:
        """Drop the hook if no probe is left on it; a nested one is returned for its closures."""
        if nested is None:
            if self.direct is not None and not self.direct.probes:
                self.direct = None
            return None
        hook = self.nested.get(nested)
        if hook is not None and not hook.probes:
            del self.nested[nested]
            return hook
        return None

    def empty(self) -> bool:
        return self.direct is None and not self.nested

    def effective(self) -> types.CodeType:
        """The function's code with the nested hooks' wrappers in place of their closures' code."""
        if not self.nested:
            return self.original
        consts = tuple(
            self.nested[c].wrapper if isinstance(c, types.CodeType) and c in self.nested else c
            for c in self.original.co_consts
        )
        return self.original.replace(co_consts=consts)

    def apply(self) -> None:
        effective = self.effective()
        if self.direct is not None:
            self.direct.retarget(effective)
            self._set(self.direct.wrapper)
        else:
            self._set(effective)
        for hook in self.nested.values():
            hook.adopt_closures()

    def set_original(self, code: types.CodeType) -> None:
        self.original = code
        self.apply()

    def restore(self) -> None:
        self._set(self.original)

    def remove_everything(self) -> None:
        nested = list(self.nested.values())
        for hook in nested + ([self.direct] if self.direct is not None else []):
            hook.probes = ()
            hook._refresh()
        self.nested.clear()
        self.direct = None
        self.restore()
        for hook in nested:
            hook.release_closures()

    def _set(self, code: types.CodeType) -> None:
        current = self.func.__code__
        if self.installed_code is not None and current is not self.installed_code and current is not self.original:
            # someone else replaced the code meanwhile: theirs wins, we only forget ours
            return
        if current is not code:
            self.func.__code__ = code
        self.installed_code = code


class _Hook:
    """What a wrapper code object holds as its constant: the probes of one function or nested code."""

    def __init__(self, code: types.CodeType) -> None:
        self.kind = code_kind(code)
        self.probes: tuple[Any, ...] = ()
        self.c: Any = _Nobody()  # the wrapper reads this once per call: one probe, or a fan-out

    def add(self, probe: Any) -> None:
        self.probes = (*self.probes, probe)
        self._refresh()

    def discard(self, probe: Any) -> None:
        self.probes = tuple(p for p in self.probes if p is not probe)
        self._refresh()

    def _refresh(self) -> None:
        if len(self.probes) == 1:
            self.c = self.probes[0]
        elif self.probes:
            self.c = _FanOut(self.probes)
        else:
            self.c = _Nobody()

    def root_code(self) -> types.CodeType:
        raise NotImplementedError


class _FunctionHook(_Hook):
    def __init__(self, func: types.FunctionType, code: types.CodeType) -> None:
        super().__init__(code)
        self.func = func
        self.signature = _signature(code)
        self.wrapper = _make_wrapper(code, self, nested=False)
        # calls the real code with the function's own globals and closure cells
        self.shadow = types.FunctionType(code, func.__globals__, func.__name__, None, func.__closure__)

    def retarget(self, code: types.CodeType) -> None:
        if self.shadow.__code__ is code:
            return
        if _signature(code) != self.signature:
            self.signature = _signature(code)
            self.kind = code_kind(code)
            self.wrapper = _make_wrapper(code, self, nested=False)
        self.shadow.__code__ = code

    def root_code(self) -> types.CodeType:
        return self.shadow.__code__


class _NestedHook(_Hook):
    def __init__(self, outer: types.FunctionType, code: types.CodeType) -> None:
        super().__init__(code)
        self.outer = outer
        self.code = code
        self.wrapper = _make_wrapper(code, self, nested=True)
        _standing_in[id(self.wrapper)] = (self.wrapper, code)
        if not code.co_freevars:  # a nested function that uses no outer variable: one shadow serves all
            self.shadow = types.FunctionType(code, outer.__globals__, code.co_name)

    def shadow_for(self, cells: tuple[Any, ...] | None) -> types.FunctionType:
        """A function running the real code with the calling closure's own cells."""
        return types.FunctionType(self.code, self.outer.__globals__, self.code.co_name, None, cells)

    def adopt_closures(self) -> None:
        """Closures made before the hook: switch them to the wrapper too."""
        for func in _functions_with(self.code):
            func.__code__ = self.wrapper

    def release_closures(self) -> None:
        """Every closure made while hooked (or adopted) gets the real code back."""
        for func in _functions_with(self.wrapper):
            func.__code__ = self.code
        _standing_in.pop(id(self.wrapper), None)

    def root_code(self) -> types.CodeType:
        return self.code


def _functions_with(code: types.CodeType) -> list[types.FunctionType]:
    import gc  # built in: no file access

    return [f for f in gc.get_referrers(code) if isinstance(f, types.FunctionType) and f.__code__ is code]


class _Nobody:
    """The wrapper's view when no probe is left (a call already in flight during removal)."""

    @staticmethod
    def enter(args: Any, kwargs: Any) -> None:
        return None

    @staticmethod
    def leave(state: Any, args: Any, kwargs: Any, returned: Any, error: Any) -> None:
        return None

    @staticmethod
    def drive(state: Any, inner: Any) -> Any:
        return inner


class _FanOut:
    """Several probes on one function: each gets every call."""

    def __init__(self, probes: tuple[Any, ...]) -> None:
        self.probes = probes

    def enter(self, args: Any, kwargs: Any) -> Any:
        states = tuple(probe.enter(args, kwargs) for probe in self.probes)
        for state in states:
            if state is not None:
                return states
        return None

    def leave(self, states: Any, args: Any, kwargs: Any, returned: Any, error: Any) -> None:
        for probe, state in zip(self.probes, states):
            if state is not None:
                probe.leave(state, args, kwargs, returned, error)

    def drive(self, states: Any, inner: Any) -> Any:
        if states is None:
            return inner
        for probe, state in zip(self.probes, states):
            if state is not None and getattr(probe, "steps", False):
                return probe.drive(state, inner)  # only one stepper per call: a thread runs one trace
        return inner


# ---------------------------------------------------------------- wrapper generation


def _signature(code: types.CodeType) -> tuple[Any, ...]:
    return (
        code.co_varnames[: _param_count(code)],
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags & (CO_VARARGS | CO_VARKEYWORDS | CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR),
        code.co_freevars,
    )


def _param_count(code: types.CodeType) -> int:
    count = code.co_argcount + code.co_kwonlyargcount
    return count + bool(code.co_flags & CO_VARARGS) + bool(code.co_flags & CO_VARKEYWORDS)


class _Params:
    """Source fragments that declare, pack and pass on one code object's parameters."""

    def __init__(self, code: types.CodeType) -> None:
        names = code.co_varnames
        argcount, posonly, kwonly = code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount
        positional = list(names[:argcount])
        keyword = list(names[argcount : argcount + kwonly])
        index = argcount + kwonly
        varargs = names[index] if code.co_flags & CO_VARARGS else None
        index += bool(varargs)
        varkw = names[index] if code.co_flags & CO_VARKEYWORDS else None
        declared = positional[:posonly] + (["/"] if posonly else []) + positional[posonly:]
        if varargs:
            declared.append("*" + varargs)
        elif keyword:
            declared.append("*")
        declared += keyword
        if varkw:
            declared.append("**" + varkw)
        self.declare = ", ".join(declared)
        packed = "(%s)" % "".join(name + ", " for name in positional)
        self.args = packed + (" + " + varargs if varargs else "")
        packed_keywords = ["%r: %s" % (name, name) for name in keyword] + (["**" + varkw] if varkw else [])
        self.kwargs = "{%s}" % ", ".join(packed_keywords) if packed_keywords else "None"
        passed = positional + (["*" + varargs] if varargs else []) + ["%s=%s" % (n, n) for n in keyword]
        self.call = ", ".join(passed + (["**" + varkw] if varkw else []))
        self.names = set(positional + keyword + [n for n in (varargs, varkw) if n])


_SYNC = """
def {name}({params}):
{keep}    _fp_h = {placeholder!r}
    _fp_c = _fp_h.c
    _fp_a = {args}
    _fp_k = {kwargs}
    _fp_s = _fp_c.enter(_fp_a, _fp_k)
    if _fp_s is None:
        return {shadow}({call})
    try:
        _fp_r = {shadow}({call})
    except BaseException as _fp_e:
        _fp_c.leave(_fp_s, _fp_a, _fp_k, None, _fp_e)
        raise
    _fp_c.leave(_fp_s, _fp_a, _fp_k, _fp_r, None)
    return _fp_r
"""

_GENERATOR = """
def {name}({params}):
{keep}    _fp_h = {placeholder!r}
    _fp_c = _fp_h.c
    _fp_a = {args}
    _fp_k = {kwargs}
    _fp_s = _fp_c.enter(_fp_a, _fp_k)
    if _fp_s is None:
        return (yield from {shadow}({call}))
    try:
        _fp_r = yield from _fp_c.drive(_fp_s, {shadow}({call}))
    except BaseException as _fp_e:
        _fp_c.leave(_fp_s, _fp_a, _fp_k, None, _fp_e)
        raise
    _fp_c.leave(_fp_s, _fp_a, _fp_k, _fp_r, None)
    return _fp_r
"""

_COROUTINE = """
async def {name}({params}):
{keep}    _fp_h = {placeholder!r}
    _fp_c = _fp_h.c
    _fp_a = {args}
    _fp_k = {kwargs}
    _fp_s = _fp_c.enter(_fp_a, _fp_k)
    if _fp_s is None:
        return await {shadow}({call})
    try:
        _fp_r = await _fp_c.drive(_fp_s, {shadow}({call}))
    except BaseException as _fp_e:
        _fp_c.leave(_fp_s, _fp_a, _fp_k, None, _fp_e)
        raise
    _fp_c.leave(_fp_s, _fp_a, _fp_k, _fp_r, None)
    return _fp_r
"""

# An async generator cannot delegate with ``yield from``: forward asend, athrow
# and aclose by hand so the consumer cannot tell the wrapper from the original.
_ASYNCGEN = """
async def {name}({params}):
{keep}    _fp_h = {placeholder!r}
    _fp_c = _fp_h.c
    _fp_a = {args}
    _fp_k = {kwargs}
    _fp_s = _fp_c.enter(_fp_a, _fp_k)
    _fp_g = {shadow}({call})
    _fp_d = _fp_c.drive
    try:
        _fp_v = await _fp_d(_fp_s, _fp_g.asend(None))
        while True:
            try:
                _fp_x = yield _fp_v
            except GeneratorExit:
                await _fp_d(_fp_s, _fp_g.aclose())
                raise
            except BaseException as _fp_t:
                _fp_v = await _fp_d(_fp_s, _fp_g.athrow(_fp_t))
            else:
                _fp_v = await _fp_d(_fp_s, _fp_g.asend(_fp_x))
    except StopAsyncIteration:
        if _fp_s is not None:
            _fp_c.leave(_fp_s, _fp_a, _fp_k, None, None)
        return
    except BaseException as _fp_e:
        if _fp_s is not None:
            _fp_c.leave(_fp_s, _fp_a, _fp_k, None, _fp_e)
        raise
"""

_TEMPLATES = {"function": _SYNC, "generator": _GENERATOR, "coroutine": _COROUTINE, "asyncgen": _ASYNCGEN}
_OWN_NAMES = ("_fp_h", "_fp_c", "_fp_a", "_fp_k", "_fp_s", "_fp_r", "_fp_e", "_fp_g", "_fp_d", "_fp_v", "_fp_x")


def _make_wrapper(code: types.CodeType, hook: _Hook, nested: bool) -> types.CodeType:
    """Compile the wrapper for ``code``: same parameters and free variables, ``hook`` as a constant."""
    params = _Params(code)
    freevars = code.co_freevars
    clash = (params.names | set(freevars)) & {*_OWN_NAMES, "_fp_outer", _WRAPPER}
    if clash:
        raise CommandFailed("cannot instrument %s: it uses the name %s" % (code.co_name, sorted(clash)[0]))
    if nested and freevars:
        shadow = "_fp_h.shadow_for((lambda: (%s,)).__closure__)" % ", ".join(freevars)
    else:
        shadow = "_fp_h.shadow"
    keep = "    if 0:\n        (%s,)\n" % ", ".join(freevars) if freevars else ""
    source = _TEMPLATES[code_kind(code)].format(
        name=_WRAPPER,
        params=params.declare,
        keep=keep,
        placeholder=PLACEHOLDER,
        args=params.args,
        kwargs=params.kwargs,
        shadow=shadow,
        call=params.call,
    )
    if freevars:  # a nested def, so that the wrapper has the same free variables as the original
        body = "".join("    " + line + "\n" if line else "\n" for line in source.splitlines())
        source = "def _fp_outer():\n    %s = None\n%s" % (" = ".join(freevars), body)
    wrapper = _find_code(compile(source, HOOK_FILE, "exec"), _WRAPPER)
    if wrapper.co_freevars != freevars:
        raise CommandFailed("cannot instrument %s: its closure cannot be reproduced" % code.co_name)
    consts = tuple(hook if type(c) is str and c == PLACEHOLDER else c for c in wrapper.co_consts)
    changes: dict[str, Any] = {"co_consts": consts, "co_name": code.co_name}
    if sys.version_info >= (3, 11):
        changes["co_qualname"] = code.co_qualname
    if code.co_flags & CO_ITERABLE_COROUTINE:  # @types.coroutine generators stay awaitable
        changes["co_flags"] = wrapper.co_flags | CO_ITERABLE_COROUTINE
    return wrapper.replace(**changes)


def _find_code(code: types.CodeType, name: str) -> types.CodeType:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            if const.co_name == name:
                return const
            found = _find_code(const, name)
            if found is not None:
                return found
    return None  # type: ignore[return-value]
