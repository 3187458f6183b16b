"""A probe's filter and admission compiled into the hook's wrapper itself (runs in the target).

On a hot function every layer of Python call costs more than a small filter: packing ``args``,
calling the probe's ``enter``, calling the filter's own function and marking the thread for the
budget's watchdog cost a never-matching ``watch -f`` four to five times what the filter itself
costs (bench/RESULTS-overhead.md). So, for a probe that says how (``probe.inline_plan()``), the
wrapper is compiled with the probe in it: a gate (a list that is non-empty while the probe wants
calls), the filter's expression over the parameters themselves, the rate's admission
(``TokenBucket.next_ok``) and the not-wanted path (a call of the original), so a call that is not
shown makes no Python call besides the original's. Only a wanted call packs ``args``/``kwargs``
and calls the probe.

The filter is the user's text: it is parsed with ``ast`` (never formatted into source) and spliced
into the wrapper's syntax tree as an expression; every name in it is rewritten to what it means
in a filter of its own (``services.callexpr``): ``args``, ``kwargs`` and ``target`` become
expressions over the wrapper's parameters (``args[0]`` the first parameter itself), any other
name the builtin of that name (or exit/quit, or a NameError when there is none), read from a
tuple the wrapper holds, so nothing is looked up in the target's module and no local of the
wrapper is reachable by name. Expressions that bind names or open scopes of their own (lambda,
comprehensions, ``:=``) or that look at the calling frame (``locals()``, ``eval`` ...) keep the
filter function of their own (``CallExpression.guarded``), as do filters on ``return_obj``/``cost``.

The budget: every instruction of the spliced filter carries the line ``usercode.REGION_LINE`` and
the wrapper's code is registered with ``usercode.watch_region``; the watchdog finds evaluations
by that line on the threads' stacks (see usercode). The filter lies inside two nested ``try``
blocks: what the filter raises switches the filter off (``failed``), and the one stop the watchdog
may post (only while the thread is inside the filter) lands in one of our handlers.
"""

from __future__ import annotations

import builtins
import os

from . import usercode
from .expr import EXIT_NAMES

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

    from .callexpr import CallExpression
    from .usercode import Guard

# builtins that look at or run code in the calling frame: inside the wrapper that frame would be
# the wrapper's (the target module's globals, the parameters), so such filters keep a function
FRAME_NAMES = frozenset(("locals", "vars", "dir", "eval", "exec", "globals", "super", "breakpoint", "compile"))
ENTRY_NAMES = ("args", "kwargs", "target")


class Plan:
    """What a probe compiles into the wrapper.

    ``style``: "call" (watch, tt, stack: filter, rate, then ``probe.leave``) or "monitor" (filter,
    then every call counted and one in a stride timed, its cost appended to ``probe.ok``).
    ``consts`` are the objects the template names (``_fp_K_<NAME>``). ``gates`` collects the gate
    of every wrapper compiled for the probe, so that closing the probe closes them all.
    """

    def __init__(
        self,
        style: str,
        expression: CallExpression | None,
        is_method: bool,
        guard: Guard | None,
        consts: dict[str, Any],
    ) -> None:
        self.style = style
        self.expression = expression
        self.is_method = is_method
        self.guard = guard
        self.consts = consts
        self.gates: list[list[bool]] = []
        self.on_close: list[Any] = []  # what switches a gate-less wrapper off (hooks: the generic one back)
        self.closed = False

    def new_gate(self) -> list[bool]:
        gate = [] if self.closed else [True]
        self.gates.append(gate)
        return gate

    def close(self, disarm: bool = True) -> None:
        """No wrapper compiled for the probe lets a call in any more (thread-safe: list.clear).

        ``disarm``: the direct hooks' wrappers too (they have no gate: the generic wrapper is put
        back, which asks the probe, closed now); False where the caller holds a probe's lock.
        """
        self.closed = True
        for gate in self.gates:
            gate.clear()
        if disarm:
            callbacks, self.on_close = self.on_close, []  # once each
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # noqa: BLE001, S110 - the application's call must go on
                    pass


def failed(guard: Guard) -> Any:
    """The wrapper's handler for what the filter raised: the filter is switched off; not wanted."""

    def handle(error: BaseException) -> bool:
        if error.__class__ is usercode.PASSED_ON:
            raise error  # 3.8's RecursionError: the call itself raises it (the outer handler passes it on)
        try:
            guard.trip(error, usercode.get_ident())
        except Exception:  # noqa: BLE001, S110 - the application's call must go on
            pass
        return True

    return handle


def late(guard: Guard) -> Any:
    """The wrapper's outer handler: the stop the watchdog posted landed after the filter."""

    def handle(error: BaseException) -> bool:
        if error.__class__ is usercode.PASSED_ON:
            raise error  # 3.8's RecursionError, passed on by ``failed``: to the program, as its call's
        try:
            usercode.region_settle(2)  # the wrapper's frame: ours is 1
            guard.trip(error, usercode.get_ident())
        except Exception:  # noqa: BLE001, S110 - the application's call must go on
            pass
        return True

    return handle


# ---------------------------------------------------------------- templates

# The wrapper's text is ours alone (identifiers from the code object and the lines below); the
# user's filter goes in as a syntax tree where ``_fp_FILTER`` stands. Every instruction counts on a
# hot function (each costs 1-3 ns), so the not-wanted path is as short as the guarantees allow:
# - the gate is tested only where functions made earlier may still run this code (``-nm``); a
#   direct hook is switched off by putting the generic wrapper back (``Plan.on_close``);
# - nothing is looked at after the filter: the watchdog's stop is posted only while the thread is
#   inside it and lands there (see watchdog._post_region).


def _filter_block(splice: Splice, passthrough: str) -> str:
    # A matching call leaves the loop by ``break``; one that does not match (or whose filter failed:
    # the handlers switch it off) falls through to the original's call. No flag is stored and read
    # back, and the handlers take the exception from ``sys.exc_info()``: every local of the wrapper
    # costs every call (the frame's slots are cleared on entry and exit).
    names = "                    _fp_b = _fp_K_BUILTINS\n" if splice.values else ""
    return (
        "        while 1:\n"
        "            try:\n"
        "                try:\n" + names + "                    if _fp_FILTER:\n"
        "                        break\n"
        "                except BaseException:\n"
        "                    _fp_K_FAILED(_fp_K_EXC()[1])\n"
        "            except BaseException:\n"
        "                _fp_K_LATE(_fp_K_EXC()[1])\n"
        "            return %s\n" % passthrough
    )


# watch, tt, stack: the filter, the rate's admission, then the probe. The wrapper has one local of
# its own, ``_fp_t``: every local costs every call, shown or not (its slot is cleared on entry and
# exit of the frame), so a shown call keeps its start, arguments and result in one list (the result
# stored into it: one STORE_SUBSCR between the original's return and the probe's clock).
_CALL = """\
%(filter)s        _fp_t = _fp_K_NOW()
        if _fp_t < _fp_K_BUCKET.next_ok:
            _fp_K_BUCKET.skipped_total += 1
            return %(passthrough)s
        _fp_t = [_fp_t, %(args)s, %(kwargs)s, None]
        try:
            _fp_t[3] = %(run)s
        except BaseException:
            _fp_K_PROBE.leave(_fp_t[0], _fp_t[1], _fp_t[2], None, _fp_K_EXC()[1])
            raise
        _fp_K_PROBE.leave(_fp_t[0], _fp_t[1], _fp_t[2], _fp_t[3], None)
        return _fp_t[3]
"""

# monitor (commands/monitor/agent.py): every call takes an item of the picker's chain (one C call,
# which also counts it, atomically); a true item means "time this one", unless the thread is the
# agent's or doing our own work (then the call is not counted, as before: that is looked at before
# the call). An untimed call is the original's call in a ``try`` (free on 3.11+) whose handler
# counts a failure. A timed call keeps its start and result in the one local's list, made before
# the clock is read (only a STORE_SUBSCR lies inside the measured span besides the original).
# Cheaper exact counts were measured and are not (bench/RESULTS-hook-floor.md): a ``for``
# statement's FOR_ITER, an integer attribute or list item incremented in place (exact at best where
# no instruction between the load and the store checks the eval breaker, 3.12+, and it allocates an
# int per call above 256), a successor table over cached ints: each cost as much as the C call or more.
_MONITOR = """\
%(filter)s        if _fp_K_NEXT(_fp_K_PICK):
            _fp_t = _fp_K_IDENT()
            if _fp_t in _fp_K_AGENTS or _fp_t in _fp_K_OWN:
                return %(passthrough)s
            _fp_t = [None, None]
            _fp_t[0] = _fp_K_NOW()
            try:
                _fp_t[1] = %(run)s
            except BaseException:
                _fp_K_FAIL(_fp_t[0])
                raise
            _fp_K_PROBE.ok.append((_fp_K_NOW() - _fp_t[0]) * 1000.0)
            return _fp_t[1]
        try:
            return %(passthrough)s
        except BaseException:
            _fp_K_NEXT(_fp_K_FAILS)
            raise
"""

OWN_NAMES = ("_fp_b", "_fp_t", "_fp_FILTER")


def source(
    style: str,
    kind: str,
    head: str,
    keep: str,
    shadow_call: str,
    args: str,
    kwargs: str,
    splice: Splice | None,
    gated: bool,
) -> str:
    """The wrapper's source with ``_fp_FILTER`` where the filter goes; only our own text and identifiers."""
    if kind == "generator":
        run, passthrough = "yield from " + shadow_call, "(yield from %s)" % shadow_call
    elif kind == "coroutine":
        run, passthrough = "await " + shadow_call, "(await %s)" % shadow_call
    else:
        run, passthrough = shadow_call, shadow_call
    block = _filter_block(splice, passthrough) if splice is not None else ""
    body = (_CALL if style == "call" else _MONITOR) % {
        "filter": block,
        "passthrough": passthrough,
        "run": run,
        "args": args,
        "kwargs": kwargs,
    }
    if gated:
        # (through a local: a constant as the test would be folded away by the compiler)
        return "%s\n%s    _fp_t = _fp_K_GATE\n    if _fp_t:\n%s    return %s\n" % (head, keep, body, passthrough)
    # no gate: the body, one level less indented
    return "%s\n%s%s" % (head, keep, "".join(line[4:] + "\n" for line in body.splitlines()))


# ---------------------------------------------------------------- the filter's syntax tree


class Splice:
    """The user's filter as a syntax tree over one wrapper's parameters, or why it cannot be inlined."""

    def __init__(self, expression: CallExpression, is_method: bool, params: Any) -> None:
        import ast  # only when a command starts (callexpr parsed the same text already)

        self.ast = ast
        self.values: list[Any] = []  # what _fp_b holds, by index
        self.slots: dict[str, int] = {}
        self.why_not: str | None = None
        self.params = params
        self.is_method = is_method
        tree = ast.parse(expression.source, "<expression>", "eval")
        self.why_not = self._refuse(tree)
        self.node: Any = None
        if self.why_not is None:
            self.node = self._rewrite(tree.body)
            node: Any
            for node in ast.walk(self.node):
                if "lineno" in node._attributes:
                    node.lineno = node.end_lineno = usercode.REGION_LINE
                    node.col_offset = node.end_col_offset = 0

    def _refuse(self, tree: Any) -> str | None:
        ast = self.ast
        scoped = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr)
        for node in ast.walk(tree):
            if isinstance(node, scoped):
                return "it has a scope of its own"
            if isinstance(node, (ast.Yield, ast.YieldFrom, ast.Await)):
                return "it suspends"
            if isinstance(node, ast.Name) and node.id in FRAME_NAMES:
                return "it looks at the calling frame"
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                return "it binds a name"
            if isinstance(node, ast.Name) and node.id in ("return_obj", "cost"):
                return "it needs the call's outcome"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(MARK):
                return "it holds our placeholder text"
        return None

    def _rewrite(self, node: Any) -> Any:
        ast = self.ast
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "args":
            index = _constant_index(ast, node.slice)
            if index is not None and 0 <= index < len(self.params.positional):
                return ast.Name(id=self.params.positional[index], ctx=ast.Load())  # args[0]: the parameter
        if isinstance(node, ast.Name):
            return self._name(node.id)
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                setattr(node, field, [self._rewrite(v) if isinstance(v, ast.AST) else v for v in value])
            elif isinstance(value, ast.AST) and not isinstance(value, ast.expr_context):
                setattr(node, field, self._rewrite(value))
        return node

    def _name(self, name: str) -> Any:
        ast = self.ast
        params = self.params
        if name == "args":
            return _args_node(ast, params)
        if name == "kwargs":
            keys: list[Any] = [ast.Constant(value=k) for k in params.keyword]
            values: list[Any] = [ast.Name(id=k, ctx=ast.Load()) for k in params.keyword]
            if params.varkw:
                keys.append(None)
                values.append(ast.Name(id=params.varkw, ctx=ast.Load()))
            return ast.Dict(keys=keys, values=values)
        if name == "target":
            if not self.is_method:
                return ast.Constant(value=None)
            if params.positional:
                return ast.Name(id=params.positional[0], ctx=ast.Load())
            if params.varargs:  # args[0] if args else None
                varargs = ast.Name(id=params.varargs, ctx=ast.Load())
                first = ast.Subscript(value=varargs, slice=_index(ast, 0), ctx=ast.Load())
                return ast.IfExp(
                    test=ast.Name(id=params.varargs, ctx=ast.Load()), body=first, orelse=ast.Constant(None)
                )
            return ast.Constant(value=None)
        if name in EXIT_NAMES:
            value: Any = EXIT_NAMES[name]
        elif hasattr(builtins, name):
            value = getattr(builtins, name)
        else:
            value = _Missing(name)
            slot = self._slot(name, value)
            call = ast.Subscript(value=ast.Name(id="_fp_b", ctx=ast.Load()), slice=_index(ast, slot), ctx=ast.Load())
            return ast.Call(func=call, args=[], keywords=[])  # raises NameError where the name is used
        slot = self._slot(name, value)
        return ast.Subscript(value=ast.Name(id="_fp_b", ctx=ast.Load()), slice=_index(ast, slot), ctx=ast.Load())

    def _slot(self, name: str, value: Any) -> int:
        if name not in self.slots:
            self.slots[name] = len(self.values)
            self.values.append(value)
        return self.slots[name]


class _Missing:
    """A name that is neither a builtin nor a documented one: NameError where it is used, as in eval."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self) -> Any:
        raise NameError("name %r is not defined" % self.name)


def _args_node(ast: Any, params: Any) -> Any:
    items = ast.Tuple(elts=[ast.Name(id=n, ctx=ast.Load()) for n in params.positional], ctx=ast.Load())
    if not params.varargs:
        return items
    return ast.BinOp(left=items, op=ast.Add(), right=ast.Name(id=params.varargs, ctx=ast.Load()))


def _index(ast: Any, value: int) -> Any:
    constant = ast.Constant(value=value)
    return ast.Index(value=constant) if hasattr(ast, "Index") and _OLD_SLICES else constant


def _constant_index(ast: Any, node: Any) -> int | None:
    if _OLD_SLICES and isinstance(node, ast.Index):
        node = node.value
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return int(node.value)
    return None


_OLD_SLICES = __import__("sys").version_info < (3, 9)  # 3.8 wraps a subscript's index in ast.Index

# placeholders for our objects in the wrapper's constants: unguessable, and refused in user text
MARK = "\x00fp-" + os.urandom(8).hex() + ":"


def compile_wrapper(
    template: str, splice: Splice | None, consts: dict[str, Any], filename: str, name: str
) -> tuple[Any, dict[str, Any]]:
    """Parse our template, put the filter's tree in, name our objects by placeholder constants.

    Returns the compiled module and {placeholder: object}; the caller swaps the constants.
    """
    import ast

    tree = ast.parse(template, filename, "exec")
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    wrapper = next(node for node in ast.walk(tree) if isinstance(node, kinds) and node.name == name)
    swaps: dict[str, Any] = {}
    values = dict(consts)
    if splice is not None and splice.values:
        values["BUILTINS"] = tuple(splice.values)

    class Fill(ast.NodeTransformer):
        def visit_Name(self, node: Any) -> Any:
            if node.id == "_fp_FILTER":
                if splice is None:
                    raise ValueError("no filter to splice")
                return splice.node
            if node.id.startswith("_fp_K_"):
                key = node.id[len("_fp_K_") :]
                placeholder = MARK + key
                swaps[placeholder] = values[key]
                return ast.copy_location(ast.Constant(value=placeholder), node)
            return node

        def visit_Try(self, node: Any) -> Any:
            # on the line before it: no NOP is executed for the ``try`` statement's own line (3.11+)
            self.generic_visit(node)
            node.lineno = wrapper.lineno
            return node

        def visit_While(self, node: Any) -> Any:  # the same for the loop's line and its test's
            self.generic_visit(node)
            node.lineno = node.test.lineno = wrapper.lineno
            return node

        def visit_Call(self, node: Any) -> Any:
            self.generic_visit(node)
            if isinstance(node.func, ast.Constant):
                # ``'...'(x)`` makes the compiler warn (on the target's stderr); ``('...' if 1 else 0)(x)``
                # does not, and compiles to the same constant load (3.8 adds one jump)
                one, zero = ast.Constant(value=1), ast.Constant(value=0)
                node.func = ast.copy_location(ast.IfExp(test=one, body=node.func, orelse=zero), node.func)
            return node

    tree = ast.fix_missing_locations(Fill().visit(tree))
    return compile(tree, filename, "exec"), swaps


def check_consts(code: Any, swaps: dict[str, Any]) -> bool:
    """Every placeholder made it into the wrapper's constants as itself (none folded into another)."""
    found = set()
    for const in code.co_consts:
        if isinstance(const, str) and const.startswith(MARK):
            if const not in swaps:
                return False
            found.add(const)
        elif isinstance(const, (tuple, frozenset)) and any(isinstance(c, str) and MARK in c for c in const):
            return False
    return found == set(swaps)
