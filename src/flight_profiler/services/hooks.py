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
the cost of a generator or coroutine is its whole run.

Nested functions (``-nm``) are named by a *path*: the code objects from the
enclosing function's code down to the nested one (``outer -nm a.b``: ``b``
defined in ``a`` defined in ``outer``; a class body is a step too). The code
object on each step gets a stand-in in its parent's constants: the hooked one
its wrapper, the ones above it a copy whose constants hold the stand-ins below,
and the enclosing function's code the same. Functions made before the hook
(closures, the methods of a class made by an earlier call) are switched to
the stand-ins too, found through ``gc``, and switched back when the last probe
goes. Shadows never run the original code object itself but a copy of it
(``code.replace()``): a shadow must never be found by that ``gc`` sweep, or it
would be switched to the wrapper it serves and the wrapper would call itself.
A frame of the enclosing function that started before the hook keeps making
unhooked functions, and one that started while hooked and is still running
after removal makes functions whose wrapper has no probe left (they run the
original code, unreported).

Probes (``watch``, ``trace``, ``tt``) provide::

    enter(args, kwargs) -> state | None     # None: not interested in this call
    leave(state, args, kwargs, returned, error) -> None   # must never raise
    drive(state, inner) -> inner, or a generator stepping it (trace)

A probe that offers ``inline_plan()`` (watch, tt, stack, monitor) and is alone on a function gets a
wrapper of its own instead, with its filter, admission and not-wanted path compiled in
(``services.inline``): a call it does not want makes no Python call besides the original's.

``args`` is the tuple of positional parameter values (``*args`` included),
``kwargs`` the dict of keyword-only parameters and ``**kwargs`` - or None for a
function that has neither (one dict less to build on every call). Several
probes may hook the same function; each install is counted and removed on
its own.
"""

from __future__ import annotations

import sys
import types

from . import realthreads
from .context import CommandFailed, on_detach

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

CO_OPTIMIZED = 0x01
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

# the C RLock from _thread: threading's is Python code (a person may hook it), and gevent's patching makes
# it a greenlet lock, on which an OS thread of ours that waits runs a hub of its own (services/realthreads)
_lock = realthreads.RLock()
_slots: dict[int, _Slot] = {}  # id(function) -> its patch; the slot keeps the function alive
# id(stand-in code) -> (stand-in, the code it stands in for), for the functions nested hooks switch:
# such a function hooked on its own must get its real code back, not the nested hook's stand-in
_standing_in: dict[int, tuple[types.CodeType, types.CodeType]] = {}

MAX_NESTING = 32  # deeper than any real program nests functions

if TYPE_CHECKING:
    Path = tuple[types.CodeType, ...]  # the nested code objects from the enclosing code down, outermost first
    Key = tuple[int, ...]  # a path by the ids of its codes (code objects compare by value)


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


def after_fork() -> None:
    """In a child forked from the process that installed our hooks (agent/server.forsake_inherited):
    the lock's holder at the fork, if any, was a thread of the parent, which is not here to release it."""
    global _lock
    if _lock.acquire(timeout=0.2):  # our threads and the program's hold it for microseconds
        _lock.release()
    else:
        _lock = realthreads.RLock()


def install(func: types.FunctionType, probe: Any, nested: list[Path] | None = None) -> Handle:
    """Hook ``func`` (or, with ``nested``, the functions ``func`` makes from those code paths) for ``probe``."""
    with _lock:
        on_detach(remove_all)
        slot = _slots.get(id(func))
        if slot is None:
            slot = _slots[id(func)] = _Slot(func)
        paths: list[Path | None] = [None] if nested is None else list(nested)
        added: list[tuple[_Hook, Path | None]] = []
        try:
            for path in paths:
                hook = slot.hook_for(path)
                hook.add(probe)
                added.append((hook, path))
            slot.apply()
        except BaseException:
            for hook, _ in added:
                hook.discard(probe)
            _settle(slot)
            raise
        return Handle(slot, added, probe)


def _settle(slot: _Slot) -> None:
    """After a probe left: put back what no probe needs any more (the enclosing code first)."""
    slot.forget_empty()
    if slot.empty():
        slot.restore()
        if _slots.get(id(slot.func)) is slot:
            del _slots[id(slot.func)]
    else:
        slot.apply()


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


def nested_paths(code: types.CodeType) -> list[tuple[Path, tuple[str, ...]]]:
    """Every code object defined inside ``code`` at any depth, with its path and its names.

    The names are the ``co_name`` of each step; comprehensions and the other
    ``<...>`` scopes the compiler adds (type-parameter scopes) are looked
    through and have no name of their own, so a path reads the same on every
    version; ``<lambda>`` is a name.
    """
    found: list[tuple[Path, tuple[str, ...]]] = []

    def walk(parent: types.CodeType, path: Path, names: tuple[str, ...]) -> None:
        if len(path) >= MAX_NESTING:
            return
        for const in parent.co_consts:
            if not isinstance(const, types.CodeType):
                continue
            name = const.co_name
            step = names if name.startswith("<") and name != "<lambda>" else (*names, name)
            if step is not names:
                found.append(((*path, const), step))
            walk(const, (*path, const), step)

    walk(code, (), ())
    return found


def is_class_body(code: types.CodeType) -> bool:
    return not code.co_flags & CO_OPTIMIZED


class Handle:
    """One probe's install; ``remove()`` is idempotent and safe from any thread."""

    def __init__(self, slot: _Slot, added: list[tuple[_Hook, Path | None]], probe: Any) -> None:
        self._slot = slot
        self._hooks = [hook for hook, _ in added]
        self._probe = probe
        self.kind = self._hooks[0].kind
        self.removed = False

    def root_code(self) -> types.CodeType:
        """The code object that runs the function's body now (trace binds its root frame by it)."""
        return self._hooks[0].root_code()

    def root_codes(self) -> tuple[types.CodeType, ...]:
        """Those of every hooked code (``-nm`` may name several nested functions)."""
        return tuple(hook.root_code() for hook in self._hooks)

    def remove(self) -> None:
        with _lock:
            if self.removed:
                return
            self.removed = True
            for hook in self._hooks:
                hook.discard(self._probe)
            _settle(self._slot)


def _key(path: Path) -> Key:
    return tuple(id(code) for code in path)


class _Slot:
    """Everything patched on one function object."""

    def __init__(self, func: types.FunctionType) -> None:
        self.func = func
        self.original = _own_code(func.__code__)  # the function's own code (reload may change it)
        self.direct: _FunctionHook | None = None
        self.nested: dict[Key, _NestedHook] = {}
        # path -> (the code on that path, what functions made from it get now): what we switched
        self.stand_ins: dict[Key, tuple[types.CodeType, types.CodeType]] = {}
        self.installed_code: types.CodeType | None = None  # what we last set as func.__code__

    def hook_for(self, path: Path | None) -> _Hook:
        if path is None:
            if self.direct is None:
                self.direct = _FunctionHook(self.func, self.original)
            return self.direct
        parent = self.original
        for code in path:
            if not any(const is code for const in parent.co_consts):
                raise CommandFailed("the nested function's code is no longer part of %s" % self.func.__qualname__)
            parent = code
        if is_class_body(path[-1]):
            raise CommandFailed("%s is a class: name one of its methods" % path[-1].co_name)
        key = _key(path)
        hook = self.nested.get(key)
        if hook is None:
            hook = self.nested[key] = _NestedHook(self.func, path[-1])
        return hook

    def forget_empty(self) -> None:
        """Drop the hooks no probe is left on."""
        if self.direct is not None and not self.direct.probes:
            self.direct = None
        for key in [key for key, hook in self.nested.items() if not hook.probes]:
            del self.nested[key]

    def empty(self) -> bool:
        return self.direct is None and not self.nested

    def apply(self) -> None:
        stand_ins: dict[Key, tuple[types.CodeType, types.CodeType]] = {}
        effective = self._rewrite(self.original, (), stand_ins) if self.nested else self.original
        if self.direct is not None:
            self.direct.retarget(effective)
            self._set(self.direct.wrapper)
        else:
            self._set(effective)
        # only now the functions made earlier: the enclosing code makes hooked functions already
        self._switch(stand_ins)

    def _rewrite(
        self, code: types.CodeType, prefix: Key, stand_ins: dict[Key, tuple[types.CodeType, types.CodeType]]
    ) -> types.CodeType:
        """``code`` with the stand-ins of the hooked codes below it among its constants."""
        consts = list(code.co_consts)
        changed = False
        for index, const in enumerate(consts):
            if not isinstance(const, types.CodeType):
                continue
            key = (*prefix, id(const))
            if not any(hooked[: len(key)] == key for hooked in self.nested):
                continue
            inner = self._rewrite(const, key, stand_ins)
            hook = self.nested.get(key)
            if hook is not None:
                hook.retarget(inner)
                stand_in = hook.wrapper
            else:
                previous = self.stand_ins.get(key)
                # the same constants as last time: keep that copy, so its functions need no switch
                reuse = previous is not None and _same_consts(previous[1], inner)
                stand_in = previous[1] if previous is not None and reuse else inner
            stand_ins[key] = (const, stand_in)
            consts[index] = stand_in
            changed = True
        return code.replace(co_consts=tuple(consts)) if changed else code

    def _switch(self, new: dict[Key, tuple[types.CodeType, types.CodeType]]) -> None:
        """Functions made from a code on a hooked path get its current stand-in, or their own code back."""
        moves: dict[int, types.CodeType] = {}
        codes: list[types.CodeType] = []
        for key, (code, stand_in) in new.items():
            moves[id(code)] = stand_in
            codes.append(code)
            previous = self.stand_ins.get(key)
            if previous is not None and previous[1] is not stand_in:
                moves[id(previous[1])] = stand_in
                codes.append(previous[1])
        for key, (code, stand_in) in self.stand_ins.items():
            if key not in new:
                moves[id(stand_in)] = code
                codes.append(stand_in)
        for code, stand_in in new.values():
            _standing_in[id(stand_in)] = (stand_in, code)
        if codes:
            for func in _functions_with(codes):
                target = moves.get(id(func.__code__))
                if target is not None:  # (None: its code was changed meanwhile, by someone else)
                    func.__code__ = target
        for key, (_, stand_in) in self.stand_ins.items():
            current = new.get(key)
            if current is None or current[1] is not stand_in:
                _standing_in.pop(id(stand_in), None)
        self.stand_ins = new

    def set_original(self, code: types.CodeType) -> None:
        self.original = code
        self.apply()

    def restore(self) -> None:
        self._set(self.original)
        self._switch({})

    def remove_everything(self) -> None:
        for hook in [*self.nested.values(), *([self.direct] if self.direct is not None else [])]:
            hook.probes = ()
            hook._refresh()
        self.nested.clear()
        self.direct = None
        self.restore()

    def _set(self, code: types.CodeType) -> None:
        current = self.func.__code__
        if self.installed_code is not None and current is not self.installed_code and current is not self.original:
            # someone else replaced the code meanwhile: theirs wins, we only forget ours
            return
        if current is not code:
            self.func.__code__ = code
        self.installed_code = code


def _same_consts(a: types.CodeType, b: types.CodeType) -> bool:
    return len(a.co_consts) == len(b.co_consts) and all(x is y for x, y in zip(a.co_consts, b.co_consts))


class _Hook:
    """What a wrapper code object holds as its constant: the probes of one function or nested code."""

    def __init__(self, code: types.CodeType, nested: bool) -> None:
        self.kind = code_kind(code)
        self.probes: tuple[Any, ...] = ()
        self.c: Any = _Nobody()  # the wrapper reads this once per call: one probe, or a fan-out
        self.sig_code = code  # whose parameters and free variables the wrapper has
        self.nested = nested
        self.generic = _make_wrapper(code, self, nested)  # the wrapper for any set of probes
        self.wrapper = self.generic
        self.gate: list[bool] | None = None  # while a probe is compiled into the wrapper: its gate
        self.shadow: types.FunctionType | None = None

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
        self._rebuild()

    def _rebuild(self) -> None:
        """One probe that can be compiled in (``inline_plan``) gets a wrapper of its own; else the generic one.

        The wrapper it replaces is closed (its gate emptied): calls already in it, and functions a
        running enclosing frame still makes from it (-nm), run the original unreported.
        """
        if self.gate is not None:
            self.gate.clear()
            self.gate = None
        wrapper = None
        if len(self.probes) == 1 and self.kind != "asyncgen":
            plan_of = getattr(self.probes[0], "inline_plan", None)
            plan = plan_of() if plan_of is not None else None
            if plan is not None and not plan.closed:  # a closed probe: the generic wrapper asks it
                gate = plan.new_gate()
                try:
                    wrapper = _make_inline(self.sig_code, self, self.nested, plan, gate)
                except (SyntaxError, ValueError, TypeError, CommandFailed, RecursionError, MemoryError):
                    wrapper = None  # not expected; the generic wrapper has the same meaning
                if wrapper is None:
                    gate.clear()
                else:
                    self.gate = gate
        self.wrapper = wrapper if wrapper is not None else self.generic

    def root_code(self) -> types.CodeType:
        raise NotImplementedError


class _FunctionHook(_Hook):
    def __init__(self, func: types.FunctionType, code: types.CodeType) -> None:
        super().__init__(code, nested=False)
        self.func = func
        self.signature = _signature(code)
        self.source = code
        # calls a copy of the real code (never the object itself: see the module's doc) with the
        # function's own globals and closure cells
        self.shadow = types.FunctionType(code.replace(), func.__globals__, func.__name__, None, func.__closure__)

    def retarget(self, code: types.CodeType) -> None:
        if self.source is code:
            return
        assert self.shadow is not None
        self.shadow.__code__ = code.replace()
        self.source = code
        if _signature(code) != self.signature:
            self.signature = _signature(code)
            self.kind = code_kind(code)
            self.sig_code = code
            self.generic = _make_wrapper(code, self, nested=False)
            self._rebuild()

    def root_code(self) -> types.CodeType:
        assert self.shadow is not None
        return self.shadow.__code__


class _NestedHook(_Hook):
    def __init__(self, outer: types.FunctionType, code: types.CodeType) -> None:
        super().__init__(code, nested=True)
        self.globals = outer.__globals__
        self.code = code
        self.copy = code.replace()  # what shadows run while nothing below this code is hooked
        self.run = self.copy
        if not code.co_freevars:  # a nested function that uses no outer variable: one shadow serves all
            self.shadow = types.FunctionType(self.copy, outer.__globals__, code.co_name)

    def retarget(self, code: types.CodeType) -> None:
        """Run ``code`` (this code with stand-ins of hooked codes nested in it) from now on."""
        self.run = self.copy if code is self.code else code
        if self.shadow is not None:
            self.shadow.__code__ = self.run

    def shadow_for(self, cells: tuple[Any, ...] | None) -> types.FunctionType:
        """A function running the real code with the calling closure's own cells."""
        return types.FunctionType(self.run, self.globals, self.code.co_name, None, cells)

    def root_code(self) -> types.CodeType:
        return self.run


def _functions_with(codes: list[types.CodeType]) -> list[types.FunctionType]:
    """The functions whose code is one of ``codes``: one walk of the gc's objects for all of them."""
    import gc  # built in: no file access

    wanted = {id(code) for code in codes}
    return [f for f in gc.get_referrers(*codes) if isinstance(f, types.FunctionType) and id(f.__code__) in wanted]


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
        self.positional, self.keyword, self.varargs, self.varkw = positional, keyword, varargs, varkw


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


def _make_inline(code: types.CodeType, hook: _Hook, nested: bool, plan: Any, gate: list[bool]) -> types.CodeType | None:
    """The wrapper with ``plan``'s probe compiled in (services/inline.py); None when the filter cannot be."""
    from . import inline, usercode

    params = _Params(code)
    freevars = code.co_freevars
    if (params.names | set(freevars)) & {*_OWN_NAMES, *inline.OWN_NAMES, "_fp_outer", _WRAPPER}:
        return None
    splice = None
    if plan.expression is not None:
        splice = inline.Splice(plan.expression, plan.is_method, params)
        if splice.why_not is not None:
            return None
    consts = dict(plan.consts)
    consts.update(GATE=gate, HOOK=hook, EXC=sys.exc_info)
    if hook.shadow is not None:
        consts["SHADOW"] = hook.shadow
        shadow = "_fp_K_SHADOW"
    else:  # a nested function with a closure: a shadow with the calling closure's cells
        shadow = "_fp_K_HOOK.shadow_for((lambda: (%s,)).__closure__)" % ", ".join(freevars)
    keep = "    if 0:\n        (%s,)\n" % ", ".join(freevars) if freevars else ""
    kind = code_kind(code)
    head = "%sdef %s(%s):" % ("async " if kind == "coroutine" else "", _WRAPPER, params.declare)
    shadow_call = "%s(%s)" % (shadow, params.call)
    source = inline.source(plan.style, kind, head, keep, shadow_call, params.args, params.kwargs, splice, nested)
    if freevars:  # a nested def, so that the wrapper has the same free variables as the original
        body = "".join("    " + line + "\n" if line else "\n" for line in source.splitlines())
        source = "def _fp_outer():\n    %s = None\n%s" % (" = ".join(freevars), body)
    module, swaps = inline.compile_wrapper(source, splice, consts, HOOK_FILE, _WRAPPER)
    wrapper = _find_code(module, _WRAPPER)
    if wrapper is None or wrapper.co_freevars != freevars or not inline.check_consts(wrapper, swaps):
        return None
    changes: dict[str, Any] = {
        "co_consts": tuple(swaps.get(c, c) if type(c) is str else c for c in wrapper.co_consts),
        "co_name": code.co_name,
    }
    if sys.version_info >= (3, 11):
        changes["co_qualname"] = code.co_qualname
    if code.co_flags & CO_ITERABLE_COROUTINE:
        changes["co_flags"] = wrapper.co_flags | CO_ITERABLE_COROUTINE
    final = wrapper.replace(**changes)
    if splice is not None and plan.guard is not None:
        usercode.watch_region(final, plan.guard)
    if not nested:  # no gate in it: switched off by putting the generic wrapper back
        plan.on_close.append(lambda: _disarm(hook, final))
    return final


def _disarm(hook: _Hook, wrapper: types.CodeType) -> None:
    """The probe compiled into ``wrapper`` was switched off (any thread): the function gets the generic
    wrapper, which asks the probe (closed) on every call, until the command unhooks it."""
    # not ``with _lock``: this may run in an application thread inside our filter's handler, where
    # the one stop the watchdog posts can land right after the acquire (see usercode)
    try:
        _lock.acquire()
        if hook.wrapper is wrapper and isinstance(hook, _FunctionHook):
            hook.wrapper = hook.generic
            slot = _slots.get(id(hook.func))
            if slot is not None and slot.direct is hook:
                slot._set(hook.generic)  # only func.__code__: the nested stand-ins are not touched
    finally:
        if _lock._is_owned():
            _lock.release()


def _find_code(code: types.CodeType, name: str) -> types.CodeType:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            if const.co_name == name:
                return const
            found = _find_code(const, name)
            if found is not None:
                return found
    return None  # type: ignore[return-value]
