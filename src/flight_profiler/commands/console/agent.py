"""``console`` in the target: run Python source in a per-client namespace.

Output of ``print`` goes back to the client through a ``print`` bound in the
console's own namespace, so the process-wide ``sys.stdout`` that the target's
other threads use is never replaced. The value of a trailing expression is
shown like the interactive interpreter does.

The code runs on the job's own thread inside ``usercode.contain`` with no time
budget: Ctrl-C and detach stop it at its next bytecode (the session raises
``usercode.Interrupted`` there, shown as the statement's traceback); a
statement blocked in C is reported as still busy. ``exit()``, ``sys.exit()``
and KeyboardInterrupt end the statement, never the agent.
"""

from __future__ import annotations

import ast
import builtins
import io
import sys
import traceback

from ...services.context import CommandFailed, JobContext
from ...services.expr import EXIT_NAMES

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


OUTPUT_LIMIT = 1024 * 1024  # a runaway loop of prints must not fill the target's memory


class _BoundedBuffer(io.StringIO):
    def write(self, text: str) -> int:
        if self.tell() < OUTPUT_LIMIT:
            return super().write(text[: OUTPUT_LIMIT - self.tell()])
        return len(text)


def run(request: dict[str, Any], ctx: JobContext) -> None:
    namespace = ctx.session.setdefault("console_namespace", _new_namespace())
    output = _BoundedBuffer()
    namespace["print"] = _printer(output)
    try:
        tree = ast.parse(request["source"], "<console>", "exec")
    except SyntaxError as exc:
        raise CommandFailed("SyntaxError: %s (line %s)" % (exc.msg, exc.lineno)) from None
    value, error = _execute(tree, namespace)
    ctx.emit({"output": output.getvalue(), "value": value, "error": error})


def _new_namespace() -> dict[str, Any]:
    # exit()/quit() end the statement (SystemExit is shown like any exception): the builtins of
    # those names would close the target's own sys.stdin first
    return {"__name__": "__console__", "__builtins__": builtins, **EXIT_NAMES}


def _printer(output: io.StringIO) -> Any:
    def console_print(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("file") in (None, sys.stdout):
            kwargs["file"] = output
        builtins.print(*args, **kwargs)

    return console_print


def _execute(tree: ast.Module, namespace: dict[str, Any]) -> tuple[str | None, str | None]:
    """Run the statements; return (repr of a trailing expression, traceback text)."""
    last = tree.body[-1] if tree.body else None
    trailing = isinstance(last, ast.Expr)
    body = tree.body[:-1] if trailing else tree.body
    try:
        exec(compile(ast.Module(body=body, type_ignores=[]), "<console>", "exec"), namespace)  # noqa: S102
        if trailing and isinstance(last, ast.Expr):
            result = eval(compile(ast.Expression(last.value), "<console>", "eval"), namespace)  # noqa: S307
            if result is not None:
                namespace["_"] = result
                return repr(result), None
    except BaseException:  # noqa: BLE001 - SystemExit/KeyboardInterrupt from user code must not end the agent
        return None, _user_traceback()
    return None, None


def _user_traceback() -> str:
    kind, exc, tb = sys.exc_info()
    # drop our own frames so the user sees only their code
    while tb is not None and tb.tb_frame.f_code.co_filename != "<console>":
        tb = tb.tb_next
    return "".join(traceback.format_exception(kind, exc, tb))
