"""``monitor`` in the CLI: arguments and rendering."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..calls import add_budget_argument, add_target_arguments, budget_request, render_start, target_request, timestamp
from ..spec import CALL_NAMES, CommandSpec, add_expression_argument, check_expression, number
from .model import DEFAULTS, MAX_CYCLE_S

if TYPE_CHECKING:
    from rich.console import RenderableType

    from .model import MonitorRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "-c",
        "--cycle",
        metavar="S",
        type=number(float, 0, MAX_CYCLE_S, above=True),
        default=DEFAULTS["cycle"],
        help="seconds per report (default %g)" % DEFAULTS["cycle"],
    )
    parser.add_argument(
        "-n",
        "--cycles",
        metavar="N",
        type=number(int, 0),
        default=DEFAULTS["cycles"],
        help="stop after this many reports (default %d: until Ctrl-C)" % DEFAULTS["cycles"],
    )
    add_expression_argument(
        parser,
        "-f",
        "--filter",
        help="only count calls for which this is true, over target, args, kwargs, return_obj, cost",
    )
    add_budget_argument(parser, "app", "one evaluation of -f in the calling thread")


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("module [class] method [-c] [-n] [-f] [-nm] [--budget-ms]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("module", "module as imported in the target (`__main__`, `pkg.mod`)"),
    ("[class] method", "the function, or a class then its method"),
    ("-c", "seconds per report (up to 3600)"),
    ("-n", "stop after N reports (0: until Ctrl-C)"),
    (
        "-f",
        "count only calls for which this is true, over `target`, `args`, `kwargs`, `return_obj`, `cost` (ms); takes "
        "the rest of the line up to the next option, quotes not needed",
        "all calls",
    ),
    (
        "--budget-ms",
        "time budget of one `-f` evaluation in the calling (application) thread: one that runs over it, blocks or "
        "raises is switched off and the command ends with that one-line reason",
        "200",
    ),
    ("-nm", "monitor the function `NAME` defined inside the method (one level deep)", "off"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = ("<module> [<class>] <method> [-c] [-n] [-f]",)
OVERVIEW = (
    "per cycle: calls, successes, failures, failure rate, avg / p50 / p99 / max cost (counts exact; cost timed on "
    "every call up to 10 000 calls/s, above that on 1 call in 2…1024 and said so (`timed`); percentiles from a "
    "bounded uniform sample: memory does not grow with the call rate); hook removed on every exit path"
)


def _to_request(ns: argparse.Namespace) -> MonitorRequest:
    return {
        **target_request(ns),
        "cycle": ns.cycle,
        "cycles": ns.cycles,
        "filter": check_expression(ns.filter, CALL_NAMES, "-f"),
        **budget_request(ns),
    }


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    # a hot function's calls take well under a microsecond: three significant digits, not 0.000
    return "%.3f" % value if value >= 1 or value == 0 else "%.3g" % value


def _render(event: dict[str, Any]) -> RenderableType | None:
    from rich.table import Table
    from rich.text import Text

    kind = event.get("kind")
    if kind == "start":
        limit = "%d cycle(s)" % event["cycles"] if event["cycles"] else "until Ctrl-C"
        return render_start(event, "monitoring", "a report every %g s, %s" % (event["cycle"], limit))
    if kind == "end":
        return Text(
            "%d cycle(s), %d call(s), %d failed" % (event["cycles"], event["calls"], event["fail"]), style="dim"
        )
    table = Table(box=None, pad_edge=False, header_style="bold", title_justify="left")
    table.title = "#%d %s (%.1f s)" % (event["index"], timestamp(event["time"]), event["seconds"])
    for column in ("CALLS", "SUCCESS", "FAIL", "FAIL-RATE", "AVG(ms)", "P50(ms)", "P99(ms)", "MAX(ms)"):
        table.add_column(column, justify="right")
    table.add_row(
        str(event["calls"]),
        str(event["success"]),
        str(event["fail"]),
        "%.2f%%" % (100.0 * event["fail_rate"]),
        _ms(event["avg_ms"]),
        _ms(event["p50_ms"]),
        _ms(event["p99_ms"]),
        _ms(event["max_ms"]),
    )
    notes = []
    timed = event.get("timed", event["calls"])
    if timed < event["calls"]:
        notes.append(
            Text(
                "cost timed on %d of %d calls (avg, p50, p99, max estimated from them)" % (timed, event["calls"]),
                style="dim",
            )
        )
    if event.get("filter_errors"):
        notes.append(Text("%d call(s) left out: the filter raised" % event["filter_errors"], style="yellow"))
    if notes:
        from rich.console import Group

        return Group(table, *notes)
    return table


SPEC = CommandSpec(
    name="monitor",
    summary="Count a function's calls, failures and cost percentiles (avg, p50, p99, max) per cycle.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=(
        "monitor __main__ handle -c 5",
        "monitor __main__ PaymentGateway charge -c 10 -n 3",
        'monitor __main__ handle -c 5 -f "args[0].quantity > 2"',
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    completes=("module", "class", "member"),
)
