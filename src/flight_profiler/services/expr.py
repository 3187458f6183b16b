"""User expressions (``-e``, ``--expr``, ``-f``) (runs in the target).

An expression is compiled once per command, never per call. A syntax error is
a one-line error before anything happens; an exception while evaluating is a
result (expression + reason), never a crash of the target's code. Evaluations
are bounded and contained by ``services.usercode``.
"""

from __future__ import annotations

import builtins

from .context import CommandFailed
from .describe import describe_error as describe_error  # re-exported: the commands' error text

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


def _exit(code: Any = None) -> None:
    """``exit()``/``quit()`` in user code: end that evaluation (SystemExit, which we contain).

    The builtins of the same names close ``sys.stdin`` first: the target's own stdin.
    """
    raise SystemExit(code)


EXIT_NAMES: dict[str, Any] = {"exit": _exit, "quit": _exit}


class Expression:
    def __init__(self, source: str, names: tuple[str, ...]) -> None:
        self.source = source
        self.names = names
        try:
            self.code = compile(source, "<expression>", "eval")
        except SyntaxError as exc:
            raise CommandFailed("bad expression %r: %s" % (source, exc.msg)) from None

    def evaluate(self, values: dict[str, Any]) -> Any:
        """Evaluate with ``values`` as the only names (plus builtins); may raise."""
        scope = {"__builtins__": builtins, **EXIT_NAMES}
        scope.update(values)
        return eval(self.code, scope)  # noqa: S307 - evaluating the user's expression is the feature
