"""``getglobal`` in the CLI: arguments and rendering."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ...render.values import pretty
from ..calls import add_budget_argument, budget_request
from ..spec import CommandSpec, add_render_options, render_options
from ..targeting import add_location_arguments, location

if TYPE_CHECKING:
    from rich.console import RenderableType


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_location_arguments(parser, last="field")
    parser.add_argument("-e", "--expr", help="expression over `target`, the value found, e.g. target.fieldA")
    add_budget_argument(parser, "agent", "-e")
    add_render_options(parser)


def _to_request(ns: argparse.Namespace) -> dict[str, Any]:
    module, cls, field = location(ns, last="field")
    return {"module": module, "cls": cls, "field": field, "expr": ns.expr, **budget_request(ns), **render_options(ns)}


def _render(event: dict[str, Any]) -> RenderableType:
    from rich.text import Text

    text = Text()
    text.append(event["name"], style="bold")
    if "expr" in event:
        text.append("  expr: %s" % event["expr"], style="cyan")
    text.append("\n")
    if "error" in event:
        text.append("expression failed: %s" % event["error"], style="red")
    else:
        text.append(pretty(event["value"]))
    return text


SPEC = CommandSpec(
    name="getglobal",
    summary="Show a module global or a class attribute of the target.",
    usage="getglobal module [class] field [-e EXPR] [-x N] [-v] [-r]",
    examples=(
        "getglobal __main__ g_list",
        "getglobal __main__ classA static_field",
        "getglobal __main__ CONFIG -e \"target['timeout']\"",
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    completes=("module", "class", "member"),
)
