"""``getglobal`` in the CLI: arguments and rendering."""

from __future__ import annotations

import argparse

from ...render.safe import safe_line
from ..calls import add_budget_argument, budget_request, expr_block
from ..spec import CommandSpec, add_expression_argument, add_render_options, check_expression, render_options
from ..targeting import add_location_arguments, location

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType

    from .model import GetGlobalRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_location_arguments(parser, last="field")
    add_expression_argument(
        parser, "-e", "--expr", help="expression over `target`, the value found, e.g. target.fieldA"
    )
    add_budget_argument(
        parser,
        "agent",
        "-e and of each value's own code a capture runs (__repr__, __len__, a property: past it, a placeholder)",
    )
    add_render_options(parser)


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("module [class] field [-e] [-x] [-v] [-r] [--budget-ms]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    (
        "module",
        "the module as imported in the target: `__main__` for the started script, `pkg.mod` otherwise (never "
        "imported for you: it must be loaded already)",
    ),
    ("[class] field", "the global's name, or a class name then its attribute"),
    (
        "-e",
        "Python expression over `target` (the value found), e.g. `target['db']`, `len(target)`, `target.__dict__`; "
        "takes the rest of the line up to the next option, so spaces need no quotes",
        "`target`",
    ),
    (
        "--budget-ms",
        "time budget of `-e` (and of the lookup and the capture): past it the evaluation is stopped and the "
        "command fails with that "
        "reason; `exit()`/`KeyboardInterrupt` in it are its result, never the agent's end. A value whose own code "
        "(`__repr__`, `__len__`, a property) runs past it is shown as `<Type: not shown: ... ran over the budget of "
        "MS ms and was stopped (--budget-ms)>`, and no more of the program's code runs in that command",
        "5000",
    ),
    ("-x", "depth to expand containers and objects: 1..4, `-1` deepest (8 levels)"),
    ("-v", "show every item of containers (default 20) and long strings (default 256 chars)"),
    ("-r", "show `repr()` of the value instead of a tree"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = ("<module> [<class>] <field> [-e] [-x] [-v] [-r] [--budget-ms]",)
OVERVIEW = (
    "a module global or class attribute as an `EXPR`/`TYPE`/`VALUE` block; `-e` evaluates an expression over `target`"
    " (budget 5000 ms)"
)


def _to_request(ns: argparse.Namespace) -> GetGlobalRequest:
    module, cls, field = location(ns, last="field")
    return {
        "module": module,
        "cls": cls,
        "field": field,
        "expr": check_expression(ns.expr, ("target",), "-e"),
        **budget_request(ns),
        **render_options(ns),
    }


def _render(event: dict[str, Any]) -> RenderableType:
    """The seeds' block: EXPR (``target`` when none was given), TYPE, VALUE; then the field's name."""
    from rich.console import Group
    from rich.text import Text

    expr = event.get("expr") or "target"
    if "error" in event:
        parts: list[Any] = [
            Text("EXPR: %s" % safe_line(expr)),
            Text("FAILED: %s" % safe_line(event["error"]), style="red"),
        ]
    else:
        parts = list(expr_block([(expr, event["value"])], expand=event.get("expand", 1)))
    parts.append(Text("target=%s" % safe_line(event["name"]), style="dim"))
    return Group(*parts)


SPEC = CommandSpec(
    name="getglobal",
    summary="Show a module global or a class attribute of the target.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=(
        "getglobal __main__ g_list",
        "getglobal __main__ classA static_field",
        "getglobal __main__ CONFIG -e target['timeout']",
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    completes=("module", "class", "member"),
)
