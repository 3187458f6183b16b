"""``watch`` in the CLI: arguments and rendering."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..calls import (
    add_budget_argument,
    add_rate_argument,
    add_target_arguments,
    at_least,
    budget_request,
    non_negative,
    render_end,
    render_exception,
    render_header,
    render_start,
    render_values,
    skipped_note,
    target_request,
)
from ..spec import CommandSpec, add_render_options, render_options

if TYPE_CHECKING:
    from rich.console import RenderableType

DEFAULT_RATE = 20.0


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "--expr",
        help="what to show, over target, return_obj, cost (ms), args, kwargs (default: args, kwargs, return_obj)",
    )
    parser.add_argument("-e", "--exception", action="store_true", help="only calls that raise, with the traceback")
    parser.add_argument("-f", "--filter", help="only calls for which this is true, e.g. \"args[0]['q']=='hello'\"")
    parser.add_argument("-n", "--limits", type=int, default=10, help="stop after this many results (default 10)")
    add_budget_argument(parser, "app", "one evaluation of -f or --expr, or one call's capture, in the calling thread")
    add_rate_argument(parser, DEFAULT_RATE, "results")
    add_render_options(parser)


def _to_request(ns: argparse.Namespace) -> dict[str, Any]:
    return {
        **target_request(ns),
        "expr": ns.expr,
        "filter": ns.filter,
        **budget_request(ns),
        "exception": ns.exception,
        "limit": at_least(ns.limits, 1, "-n"),
        "rate": non_negative(ns.rate, "--rate"),
        **render_options(ns),
    }


def _render(event: dict[str, Any]) -> RenderableType | None:
    from rich.console import Group

    kind = event.get("kind")
    if kind == "start":
        rate = "at most %g results/s" % event["rate"] if event["rate"] else "no rate limit"
        return render_start(event, "watching", "-n %d, %s" % (event["limit"], rate))
    if kind == "end":
        return render_end(event, "call(s)")
    parts: list[Any] = []
    note = skipped_note(event)
    if note is not None:
        parts.append(note)
    parts.append(render_header(event, "#%d" % event["index"]))
    if "error" in event:
        from rich.text import Text

        parts.append(Text(event["error"], style="red"))
    parts.extend(render_values(event.get("values", [])))
    if "exception" in event:
        parts.append(render_exception(event["exception"]))
    return Group(*parts)


SPEC = CommandSpec(
    name="watch",
    summary="Show the arguments, return value or exception, and cost of a function's calls.",
    usage="watch module [class] method [--expr EXPR] [-nm NAME] [-e] [-r] [-v] [-n N] [-x N] [-f FILTER] [--rate N]",
    examples=(
        "watch __main__ func -x 2",
        "watch __main__ func -f \"args[0]['query']=='hello'\"",
        "watch __main__ func -f \"return_obj['success']==True\"",
        'watch __main__ func --expr "return_obj,args" -f "cost>10"',
        "watch __main__ classA func",
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    completes=("module", "class", "member"),
)
