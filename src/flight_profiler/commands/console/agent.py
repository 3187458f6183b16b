"""``console`` in the target: run Python source in a per-client namespace.

That namespace sees the target's ``__main__`` globals as they are at each run
(``_see_main_globals``); what the console binds stays in its own namespace, so
nothing is ever written into the target's globals.

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

from ...services.capture import bounded_repr
from ...services.context import CommandFailed, JobContext
from ...services.expr import EXIT_NAMES

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

    from .model import ConsoleRequest


OUTPUT_LIMIT = 1024 * 1024  # a runaway loop of prints must not fill the target's memory
VALUE_LIMIT = 64 * 1024  # characters of a trailing expression's repr: a 1 GB bytearray is not 4 GB of text


class _BoundedBuffer(io.StringIO):
    def write(self, text: str) -> int:
        if self.tell() < OUTPUT_LIMIT:
            return super().write(text[: OUTPUT_LIMIT - self.tell()])
        return len(text)


def run(request: ConsoleRequest, ctx: JobContext) -> None:
    namespace = ctx.session.setdefault("console_namespace", _new_namespace())
    ctx.session["console_main"] = _see_main_globals(namespace, ctx.session.get("console_main", {}))
    output = _BoundedBuffer()
    namespace["print"] = _printer(output)
    namespace.update(_without_stdin(output))
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


_ABSENT = object()


def _see_main_globals(namespace: dict[str, Any], shown: dict[str, Any]) -> dict[str, Any]:
    """Make the target's ``__main__`` globals, as they are now, visible in the console (as the seeds'
    console does) without writing into them: each run copies them into the console's own namespace,
    except names the console rebound itself (their value is not the copy ``shown`` last time) and
    dunder names (the console keeps its own ``__name__``). Returns what was copied this time."""
    main = sys.modules.get("__main__")
    source = list(getattr(main, "__dict__", {}).items())  # one C call: no other thread changes it meanwhile
    names = {name for name, _ in source}
    for name, value in list(shown.items()):
        if name not in names and namespace.get(name, _ABSENT) is value:
            del namespace[name]  # gone from __main__ and not rebound here
    copied = {}
    for name, value in source:
        if name.startswith("__") and name.endswith("__"):
            continue
        current = namespace.get(name, _ABSENT)
        if current is _ABSENT or current is shown.get(name, _ABSENT):
            namespace[name] = copied[name] = value
    return copied


def _printer(output: io.StringIO) -> Any:
    def console_print(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("file") in (None, sys.stdout):
            kwargs["file"] = output
        builtins.print(*args, **kwargs)

    return console_print


def _without_stdin(output: io.StringIO) -> dict[str, Any]:
    """input() would block on the app's stdin and interactive help() would page on the app's
    terminal: stand-ins that say so; help(obj) writes its text into the console's output."""

    def console_input(prompt: object = "") -> str:
        raise RuntimeError("input() is not available in the remote console: it would read the target's stdin")

    def console_help(*args: Any) -> None:
        if not args:
            output.write("help() is interactive and not available in the remote console; use help(obj)\n")
            return
        import pydoc  # only when asked: a heavy import

        try:
            output.write(pydoc.render_doc(args[0], renderer=pydoc.plaintext))  # type: ignore[attr-defined]
        except ImportError as exc:
            output.write("%s\n" % exc)

    return {"input": console_input, "help": console_help}


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
                return bounded_repr(result, VALUE_LIMIT), None
    except BaseException:  # noqa: BLE001 - SystemExit/KeyboardInterrupt from user code must not end the agent
        return None, _user_traceback()
    return None, None


_OURS = __name__.partition(".")[0] + "."  # our package as the target imported it (_flight_profiler.)


def _user_traceback() -> str:
    kind, exc, tb = sys.exc_info()
    # drop our own frames so the user sees only their code: those above it (the agent running it)
    while tb is not None and tb.tb_frame.f_code.co_filename != "<console>":
        tb = tb.tb_next
    shown = traceback.TracebackException(kind, exc, tb)  # type: ignore[arg-type]
    # and those below it: the exit()/quit(), input() and print() the console gives the user's code
    frames = [frame for frame, _ in traceback.walk_tb(tb)]
    if len(frames) == len(shown.stack):
        kept = [entry for entry, frame in zip(shown.stack, frames) if not _ours(frame)]
        if len(kept) < len(frames):
            shown.stack = traceback.StackSummary.from_list(kept)
    return "".join(shown.format())


def _ours(frame: Any) -> bool:
    return str(frame.f_globals.get("__name__", "")).startswith(_OURS)
