"""User expressions over one call, compiled into plain functions (runs in the target).

``watch``/``trace``/``tt`` evaluate ``-f`` and ``--expr`` on calls of a hooked
function, possibly millions of times a second. ``services.expr.Expression``
checks the syntax (the one-line error users see); here the same source becomes
the body of a small generated function, compiled once per command, so each
call costs one Python call instead of building a namespace and running
``eval``. The names an expression may use are parameters of that function:
``args``, ``kwargs``, ``return_obj``, ``cost`` (ms) and ``target`` (the
instance or class a method was called on, else None). Only builtins are
visible besides them; nothing is looked up in the target's modules.
"""

from __future__ import annotations

import builtins

from . import usercode
from .context import CommandFailed
from .expr import EXIT_NAMES, Expression

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable

    from .usercode import Guard

CALL_NAMES = ("target", "return_obj", "cost", "args", "kwargs")
ENTRY_NAMES = ("target", "args", "kwargs")  # known when the call starts
EXIT_ONLY = ("return_obj", "cost")

# ``target`` for a method is its first argument (self, or cls for a classmethod)
_TARGET = {True: "args[0] if args else None", False: "None"}
# the hooks pass None for the kwargs of a function that has no keyword parameters (no dict to build)
_KWARGS = "    kwargs = {} if kwargs is None else kwargs\n"

_EVAL = """def _fp_eval(args, kwargs, return_obj, cost):
%s    target = %s
    return (
%s
)
"""

# A filter with its guard written out (``usercode.run_marked`` and ``Guard.call`` inlined: on a hot
# function the filter runs on every call, and each Python call layer costs more than the filter).
# The user's expression is NOT inlined here: it is compiled into a function of its own
# (``_USER``), and this wrapper only calls it. The watchdog's stop may be delivered at any check
# point of the user's code, and CPython's compiler does not always cover every instruction of a
# ``try`` body with its handler (3.14's inlined ``all(<genexpr>)`` leaves its loop's backward jump
# outside the table): in the user's own frame such a hole only ends that frame, and the stop
# then reaches this frame at the call, which our handler covers (test_usercode checks every
# instruction of this wrapper on each interpreter). The thread is marked inside the ``try``, so
# no check point lies between the marking and the handler either. The truth is taken in the
# user's frame (a __bool__ of the user's objects is user code too). Read the protocol in
# services/usercode.py before changing the order of anything here. An overrun is found by the
# watchdog (within its poll), which stops the evaluation and switches the guard off: no second
# clock read here.
_USER = """def _fp_user(%(params)s):
%(prologue)s    target = %(target)s
    return True if (
%(source)s
) else False
"""

_GUARDED = """def _fp_filter(%(params)s):
    if _fp_g.off:
        return False
    _fp_i = _fp_ident()
    _fp_o = _fp_active.get(_fp_i)
    _fp_m = (_fp_now() + _fp_limit, _fp_g)
    _fp_x = None
    try:
        try:
            _fp_active[_fp_i] = _fp_m
            _fp_r = _fp_user(%(params)s)
        except BaseException as _fp_e:
            _fp_r, _fp_x = False, _fp_e
        if _fp_o is None:
            _fp_active.pop(_fp_i, None)
        else:
            _fp_active[_fp_i] = _fp_o
        if _fp_posted:
            _fp_leave(_fp_i, _fp_m, _fp_o)
    except BaseException as _fp_e:
        _fp_leave(_fp_i, _fp_m, _fp_o)
        _fp_r, _fp_x = False, _fp_e
    if _fp_x is not None:
        if _fp_x.__class__ is _fp_passed_on:
            raise _fp_x
        _fp_g.trip(_fp_x, _fp_i)
    return _fp_r
"""


class CallExpression:
    """One ``-f``/``--expr`` source, checked once; ``names`` are those it may use."""

    def __init__(self, source: str, names: tuple[str, ...] = CALL_NAMES) -> None:
        Expression(source, names)  # raises CommandFailed with the syntax error
        self.source = source
        used = _names(source)
        unavailable = [name for name in CALL_NAMES if name in used and name not in names]
        if unavailable:
            raise CommandFailed(
                "%r uses %s, not known here; it can use %s" % (source, ", ".join(unavailable), ", ".join(names))
            )
        self.needs_exit = any(name in used for name in EXIT_ONLY)
        self.prologue = _KWARGS if "kwargs" in used else ""

    def evaluator(self, is_method: bool) -> Callable[[Any, Any, Any, Any], Any]:
        """``f(args, kwargs, return_obj, cost)`` -> the value; raises what the expression raises."""
        made: Any = _build(_EVAL % (self.prologue, _TARGET[is_method], self.source), "_fp_eval", {})
        return made  # type: ignore[no-any-return]

    def guarded(self, is_method: bool, guard: Guard, on_exit: bool = False) -> Callable[..., bool]:
        """The filter: ``f(args, kwargs)`` (``on_exit``: ``f(args, kwargs, return_obj, cost)``) -> a match.

        Never raises: what the expression raises, or an evaluation past the
        guard's budget, switches ``guard`` off (and is no match).
        """
        params = "args, kwargs, return_obj, cost" if on_exit else "args, kwargs"
        user = _USER % {
            "params": params,
            "prologue": self.prologue,
            "target": _TARGET[is_method],
            "source": self.source,
        }
        names = {
            "_fp_user": _build(user, "_fp_user", {}),  # only builtins and the exit names, as in _EVAL
            "_fp_g": guard,
            "_fp_limit": guard.limit,
            "_fp_ident": usercode.get_ident,
            "_fp_now": usercode.monotonic,
            "_fp_active": usercode.ACTIVE,
            "_fp_posted": usercode._POSTED,
            "_fp_leave": usercode._leave,
            "_fp_passed_on": usercode.PASSED_ON,  # 3.8's RecursionError: see usercode.PASSED_ON
        }
        source = _GUARDED % {"params": params}
        made: Any = _build(source, "_fp_filter", names)
        return made  # type: ignore[no-any-return]


def _build(source: str, name: str, extra: dict[str, Any]) -> Any:
    namespace: dict[str, Any] = {"__builtins__": builtins, **EXIT_NAMES}
    namespace.update(extra)
    exec(compile(source, "<expression>", "exec"), namespace)  # noqa: S102 - the user's checked expression
    return namespace.pop(name)


def _names(source: str) -> set[str]:
    """Every plain name the expression mentions (attributes like ``x.cost`` are not names)."""
    import ast  # only when a command starts

    return {node.id for node in ast.walk(ast.parse(source, "<expression>", "eval")) if isinstance(node, ast.Name)}
