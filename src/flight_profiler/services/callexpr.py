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

from .context import CommandFailed
from .expr import EXIT_NAMES, Expression

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable

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

# a filter's truth, taken inside the function so that a __bool__ of the user's objects is user code too
_TEST = """def _fp_test(args, kwargs):
%s    target = %s
    return True if (
%s
) else False
"""

_EXIT_TEST = """def _fp_exit_test(args, kwargs, return_obj, cost):
%s    target = %s
    return True if (
%s
) else False
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

    def test(self, is_method: bool) -> Callable[[Any, Any], bool]:
        """``t(args, kwargs)`` -> whether the call matches; raises what the expression raises.

        Filters run it through a ``usercode.Guard``, which owns every exception.
        """
        made: Any = _build(_TEST % (self.prologue, _TARGET[is_method], self.source), "_fp_test", {})
        return made  # type: ignore[no-any-return]

    def exit_test(self, is_method: bool) -> Callable[[Any, Any, Any, Any], bool]:
        """``t(args, kwargs, return_obj, cost)`` -> whether the call matches, for filters on the outcome."""
        made: Any = _build(_EXIT_TEST % (self.prologue, _TARGET[is_method], self.source), "_fp_exit_test", {})
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
