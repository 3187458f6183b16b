"""``line`` in the CLI: arguments and rendering."""

from __future__ import annotations

import argparse

from ...errors import UsageError
from ...render.safe import safe_line
from ..calls import (
    add_budget_argument,
    add_nested_argument,
    add_rate_argument,
    at_least,
    budget_request,
    non_negative,
    render_end,
    render_values,
    skipped_note,
    timestamp,
    where,
)
from ..spec import CommandSpec, add_expression_argument, add_render_options, number, render_options
from ..targeting import check_names, owner_and_name
from .model import DEFAULT_LIMIT, DEFAULT_RATE

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType

    from .model import LineRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("module", help="module as imported in the target, e.g. __main__ or pkg.mod")
    parser.add_argument(
        "names", nargs="+", metavar="[class] method LINE", help="optional class, the function, then the source line"
    )
    add_nested_argument(parser)
    # expressions as watch's: the text up to the next option, as typed (``-f total > 100`` unquoted)
    add_expression_argument(
        parser, "--expr", help="what to show, over the function's local variables (default: all of them)"
    )
    add_expression_argument(
        parser, "-f", "--filter", help="only when this is true, over the local variables, e.g. 'total > 100'"
    )
    parser.add_argument(
        "-n",
        "--limits",
        metavar="N",
        type=number(int, 1),
        default=DEFAULT_LIMIT,
        help="stop after this many hits (default %d)" % DEFAULT_LIMIT,
    )
    add_rate_argument(parser, DEFAULT_RATE, "hits")
    add_budget_argument(
        parser, "app", "one evaluation of -f or --expr, or one hit's capture, in the application thread"
    )
    add_render_options(parser)


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("module [class] method LINE [--expr] [-f] [-n] [-nm] [-x] [-v] [-r] [--rate] [--budget-ms]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("module", "module as imported in the target (`__main__`, `pkg.mod`)"),
    ("[class] method LINE", "the function, or a class then its method, then the source line (as `source` numbers it)"),
    (
        "--expr",
        "what to show: a Python expression over the local variables; a comma makes a tuple",
        "every local variable",
    ),
    ("-f", "only hits for which this is true, over the local variables", "every hit"),
    ("-n", "stop after N hits"),
    ("--rate", "at most N hits per second; the others are counted as skipped (0: no limit)"),
    (
        "--budget-ms",
        "time budget of one `-f`/`--expr` evaluation or capture in the application thread: one that runs over it, "
        "blocks, or raises (`-f`; `--expr` only with SystemExit & co.) is switched off and the command ends with "
        "that one-line reason",
        "200",
    ),
    ("-nm", "the function `NAME` defined inside the method (one level deep)", "off"),
    ("-x", "depth to expand values: 1..4, `-1` deepest"),
    ("-v", "every item of containers, whole long strings"),
    ("-r", "`repr()` of values instead of trees"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = ("<module> [<class>] <method> <LINE> [--expr] [-f] [-n]",)
OVERVIEW = (
    "the local variables (or an expression over them) each time that source line runs; only that code object is "
    "watched (`sys.monitoring` on 3.12+, a per-call trace of that frame before), removed on every exit path"
)


def _to_request(ns: argparse.Namespace) -> LineRequest:
    names: list[str] = ns.names
    if len(names) < 2 or len(names) > 3:
        raise UsageError("expected: line module [class] method LINE")
    check_names([ns.module, *names[:-1]])
    try:
        line = int(names[-1])
    except ValueError:
        raise UsageError("the last argument must be a line number, got %r" % names[-1]) from None
    if line < 1:
        raise UsageError("the line number must be at least 1, got %d" % line)
    cls, method = owner_and_name(names[0] if len(names) == 3 else None, names[-2])
    return {
        "module": ns.module,
        "cls": cls,
        "method": method,
        "nested": ns.nested,
        "line": line,
        "expr": ns.expr,
        "filter": ns.filter,
        "limit": at_least(ns.limits, 1, "-n"),
        "rate": non_negative(ns.rate, "--rate"),
        **budget_request(ns),
        **render_options(ns),
    }


def _render(event: dict[str, Any]) -> RenderableType | None:
    from rich.console import Group
    from rich.text import Text

    kind = event.get("kind")
    if kind == "start":
        text = Text(style="dim")
        text.append(
            "watching line %d of %s (%s at %s, %s); -n %d; Ctrl-C to stop"
            % (
                event["at_line"],
                event["target"],
                event["callable"],
                where(event["file"], event["line"]),
                event["mechanism"],
                event["limit"],
            )
        )
        if event.get("note"):
            text.append("\nnote: %s" % safe_line(event["note"]))
        return text
    if kind == "end":
        return render_end(event, "hit(s)")
    parts: list[Any] = []
    note = skipped_note(event)
    if note is not None:
        parts.append(note)
    header = Text()
    header.append("#%d" % event["index"], style="bold")
    header.append(" %s thread=%s" % (timestamp(event["time"]), safe_line(event["thread"])))  # the target's name
    parts.append(header)
    if "error" in event:
        parts.append(Text(safe_line(event["error"]), style="red"))
    parts.extend(render_values(event.get("values", [])))
    return Group(*parts)


SPEC = CommandSpec(
    name="line",
    summary="Show the local variables (or an expression over them) each time one source line of a function runs.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=(
        "line __main__ checksum 61",
        "line __main__ checksum 61 --expr total -n 3",
        'line __main__ Inventory reserve 39 -f "quantity > 3"',
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    completes=("module", "class", "member"),
)
