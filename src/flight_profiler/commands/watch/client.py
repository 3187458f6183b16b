"""``watch`` in the CLI: arguments and rendering."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ...render.safe import safe_line
from ..calls import (
    ICON_FAILED,
    ICON_OK,
    SEPARATOR,
    add_budget_argument,
    add_rate_argument,
    add_target_arguments,
    at_least,
    budget_request,
    exception_block,
    expr_block,
    extras_line,
    nested_doc,
    non_negative,
    render_end,
    render_notice,
    render_start,
    target_request,
    timestamp,
)
from ..spec import (
    CALL_NAMES,
    CommandSpec,
    add_expression_argument,
    add_render_options,
    check_expression,
    number,
    render_options,
)
from .model import DEFAULTS

if TYPE_CHECKING:
    from rich.console import RenderableType

    from .model import WatchRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    add_expression_argument(
        parser,
        "--expr",
        help="what to show, over target, return_obj, cost (ms), args, kwargs (default: args, kwargs, return_obj)",
    )
    parser.add_argument("-e", "--exception", action="store_true", help="only calls that raise, with the traceback")
    add_expression_argument(
        parser, "-f", "--filter", help="only calls for which this is true, e.g. \"args[0]['q']=='hello'\""
    )
    parser.add_argument(
        "-n",
        "--limits",
        metavar="N",
        type=number(int, 1),
        default=DEFAULTS["limit"],
        help="stop after this many results (default %d)" % DEFAULTS["limit"],
    )
    add_budget_argument(parser, "app", "one evaluation of -f or --expr, or one call's capture, in the calling thread")
    add_rate_argument(parser, DEFAULTS["rate"], "results")
    add_render_options(parser)


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("module [class] method [--expr] [-nm] [-e] [-r] [-v] [-n] [-x] [-f] [--budget-ms] [--rate]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("module", "module as imported in the target (`__main__`, `pkg.mod`)"),
    ("[class] method", "the function, or a class then its method"),
    (
        "-nm",
        nested_doc("watch"),
        "off",
    ),
    (
        "--expr",
        "what to show: a Python expression over `target` (self), `args`, `kwargs`, `return_obj`, `cost` (ms); a "
        "comma makes a tuple",
        "`args`, `kwargs`, `return_obj`",
    ),
    ("-e", "only calls that raise, with the exception and traceback", "all calls"),
    (
        "-f",
        "only calls for which this expression is true (same names as `--expr`); like `--expr`, it takes the rest of "
        "the line up to the next option, quotes not needed (`-f args[0][\"query\"]=='hello'`)",
        "all calls",
    ),
    (
        "--budget-ms",
        "time budget of one `-f`/`--expr` evaluation or capture in the calling (application) thread: one that runs "
        "over it, blocks or raises is switched off, the call is not a match, and the command ends with that "
        "one-line reason",
        "200",
    ),
    ("-n", "stop after N results"),
    ("--rate", "at most N results per second; the others are counted as skipped (0: no limit)"),
    ("-x", "depth to expand values: 1..4, `-1` deepest"),
    ("-v", "every item of containers, whole long strings"),
    ("-r", "`repr()` of values instead of trees"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = ("<module> [<class>] <method> [--expr] [-f] [-e] [-n] [-x] [-nm] [--rate] [--budget-ms]",)
OVERVIEW = (
    "arguments, return value or exception, and cost of each call; `-f`/`--expr` see `target, return_obj, cost, args, "
    "kwargs`, compiled once; results rate-limited (skipped calls counted). `-nm` names a nested function by its path "
    "(`a.b`, `Class.method`, `'<lambda>'`) or by a name unique at any depth"
)


def _to_request(ns: argparse.Namespace) -> WatchRequest:
    return {
        **target_request(ns),
        "expr": check_expression(ns.expr, CALL_NAMES, "--expr"),
        "filter": check_expression(ns.filter, CALL_NAMES, "-f"),
        **budget_request(ns),
        "exception": ns.exception,
        "limit": at_least(ns.limits, 1, "-n"),
        "rate": non_negative(ns.rate, "--rate"),
        **render_options(ns),
    }


def _render(event: dict[str, Any]) -> RenderableType | None:
    kind = event.get("kind")
    if kind == "start":
        rate = "at most %g results/s" % event["rate"] if event["rate"] else "no rate limit"
        return render_start(event, "watching", "-n %d, %s" % (event["limit"], rate))
    if kind == "end":
        return render_end(event, "call(s)")
    if kind not in ("call", None):
        return render_notice(event)
    return render_call(event)


def render_call(event: dict[str, Any]) -> RenderableType:
    """One call as the seeds show it: the rule, the title line, then ``result={`` EXPR/TYPE/VALUE ``}``."""
    from rich.console import Group
    from rich.text import Text

    failed = "exception" in event
    title = Text()
    title.append(ICON_FAILED if failed else ICON_OK, style="red" if failed else "green")
    title.append(" %s method=%s" % (timestamp(event["time"]), safe_line(event.get("method") or "?")))
    title.append(" cost=%.6fms is_exp=%s result={" % (event["cost"], failed))
    parts: list[Any] = [Text(SEPARATOR, style="dim"), title]
    if "error" in event:
        parts.append(Text("  %s" % safe_line(event["error"]), style="red"))
    parts.extend(expr_block([(entry["expr"], entry["value"]) for entry in event.get("values", [])], "  "))
    if failed:
        parts.append(exception_block(event["exception"]))
    parts.append(Text("}"))
    extras = extras_line(event)
    if extras is not None:
        parts.append(extras)
    return Group(*parts)


SPEC = CommandSpec(
    name="watch",
    summary="Show the arguments, return value or exception, and cost of a function's calls.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=(
        "watch __main__ func -x 2",
        "watch __main__ func -f args[0][\"query\"]=='hello'",
        "watch __main__ func -f return_obj['success']==True",
        "watch __main__ func --expr return_obj,args -f cost>10",
        "watch __main__ classA func",
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    completes=("module", "class", "member"),
)
