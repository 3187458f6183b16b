"""User expressions (``-e``, ``--expr``, ``-f``) (runs in the target).

An expression is compiled once per command, never per call. A syntax error is
a one-line error before anything happens; an exception while evaluating is a
result (expression + reason), never a crash of the target's code.
"""

from __future__ import annotations

import builtins

from .context import CommandFailed

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


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
        scope = {"__builtins__": builtins}
        scope.update(values)
        return eval(self.code, scope)  # noqa: S307 - evaluating the user's expression is the feature


def describe_error(exc: BaseException) -> str:
    try:
        return "%s: %s" % (type(exc).__name__, exc)
    except Exception:  # noqa: BLE001 - even str(exc) can fail
        return type(exc).__name__
