"""``trace`` in the CLI: arguments and the call tree."""

from __future__ import annotations

import argparse

from ...render.safe import safe_line
from ..calls import (
    ICON_TRACE,
    SEPARATOR,
    add_budget_argument,
    add_rate_argument,
    add_target_arguments,
    at_least,
    budget_request,
    nested_doc,
    non_negative,
    render_notice,
    render_start,
    target_request,
    timestamp,
    where,
)
from ..spec import CALL_NAMES, CommandSpec, add_expression_argument, check_expression, number
from .model import DEFAULT_INTERVAL_MS, DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType
    from rich.text import Text

    from .model import TraceRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "-i",
        "--interval",
        metavar="MS",
        type=number(float, 0),
        help="hide calls that took less than this many ms (default %g; -d sets it to 0)" % DEFAULT_INTERVAL_MS,
    )
    parser.add_argument(
        "-d",
        "--depth",
        metavar="N",
        type=number(int, 1, special=(-1,), note="no limit"),
        help="show the tree down to this depth (2: the method and its calls)",
    )
    parser.add_argument(
        "-et",
        "--entrance_time",
        metavar="MS",
        type=number(float, 0),
        default=DEFAULTS["entrance_time"],
        help="only invocations that took at least this many ms",
    )
    parser.add_argument(
        "-n",
        "--limits",
        metavar="N",
        type=number(int, 1),
        default=DEFAULTS["limit"],
        help="stop after this many trees (default %d)" % DEFAULTS["limit"],
    )
    add_expression_argument(
        parser,
        "-f",
        "--filter",
        "--filter_expr",
        dest="filter",
        help="only invocations for which this is true, over target, args, kwargs",
    )
    add_budget_argument(parser, "app", "one evaluation of -f in the calling thread")
    parser.add_argument(
        "--budget",
        metavar="PCT",
        type=number(float, 0, 100),
        default=DEFAULTS["budget"],
        help="at most this %% of the time may be spent in traced invocations; the others run untraced "
        "and are counted in the output (default: no limit)",
    )
    add_rate_argument(parser, DEFAULTS["rate"], "trees")


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("module [class] method [-i] [-nm] [-et] [-d] [-n] [-f] [--budget] [--budget-ms] [--rate]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("module", "module as imported in the target"),
    ("[class] method", "the function, or a class then its method"),
    (
        "-nm",
        nested_doc("trace"),
        "off",
    ),
    ("-i", "hide sub-calls shorter than MS milliseconds", "0.1 (`-d` sets it to 0, even with `-i`)"),
    ("-d", "show the tree down to depth N (2: the function and its direct calls; -1: no limit)", "no limit"),
    ("-et", "only invocations that took at least MS in total (others are skipped, not counted in `-n`)"),
    ("-n", "stop after N trees"),
    (
        "-f",
        "only invocations for which this is true, over `target`, `args`, `kwargs`; takes the rest of the line up to "
        "the next option, quotes not needed (`-f args[0] >= 1 -n 1`)",
        "all",
    ),
    (
        "--budget-ms",
        "time budget of one `-f` evaluation in the calling thread: one that runs over it, blocks or raises is "
        "switched off and the command ends with that reason",
        "200",
    ),
    (
        "--budget",
        "at most PCT % of the wall time may be spent in traced invocations; the others run untraced and each tree "
        "says how many were skipped since the previous one",
        "0 (off)",
    ),
    (
        "--rate",
        "at most N trees per second; the others are counted as skipped, and the next tree says how many",
        "0 (off)",
    ),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = ("<module> [<class>] <method> [-i] [-d] [-et] [-n] [-f] [-nm] [--budget-ms] [--budget]",)
OVERVIEW = (
    "the call tree of every qualifying invocation up to `-n`, with costs, file and line, C functions as `<built-in>`,"
    " `[await]` frames (`-d` sets `-i` to 0); the thread's own profiler is put back afterwards. `--budget` caps the "
    "share of time traced (off by default; each tree says how many invocations it skipped)"
)


def _to_request(ns: argparse.Namespace) -> TraceRequest:
    return {
        **target_request(ns),
        "interval": _interval(ns),
        "depth": ns.depth,
        "entrance_time": non_negative(ns.entrance_time, "-et"),
        "limit": at_least(ns.limits, 1, "-n"),
        "filter": check_expression(ns.filter, CALL_NAMES, "-f"),  # the agent says which of them trace lacks
        **budget_request(ns),
        "budget": ns.budget,
        "rate": non_negative(ns.rate, "--rate"),
    }


def _interval(ns: argparse.Namespace) -> float | None:
    """-d forces the interval to 0 (the seeds: "the interval parameter is ignored"), even with -i."""
    if ns.interval is not None:
        non_negative(ns.interval, "-i")
    if ns.depth is not None and ns.depth >= 0:
        return 0.0
    return None if ns.interval is None else float(ns.interval)


def _render(event: dict[str, Any]) -> RenderableType | None:
    from rich.console import Group
    from rich.text import Text

    kind = event.get("kind")
    if kind == "start":
        budget = "at most %g%% of the time traced" % event["budget"] if event["budget"] else "no time budget"
        return render_start(event, "tracing", "-n %d, %s" % (event["limit"], budget))
    if kind == "end":
        return _render_end(event)
    if kind not in ("trace", None):
        return render_notice(event)
    lines: list[Text] = [Text(SEPARATOR, style="dim")]
    header = Text()  # the seeds' title line: icon, time, thread, tid, daemon, cost
    header.append(ICON_TRACE)
    header.append(
        " %s thread=%s tid=%s daemon=%s"
        % (timestamp(event["time"]), safe_line(event["thread"]), safe_line(event["tid"]), safe_line(event["daemon"]))
    )
    header.append(" cost=%.3fms" % event["cost"], style="bold")
    lines.append(header)
    if "error" in event:
        lines.append(Text(safe_line(event["error"]), style="red"))
        return Group(*lines)
    _tree(event["root"], None, "", "", lines)
    notes = []
    if event.get("hidden"):
        notes.append("%d call(s) under -i hidden" % event["hidden"])
    if event.get("deeper"):
        notes.append("%d call(s) below depth %d not shown" % (event["deeper"], event.get("depth", 0)))
    if event.get("truncated"):
        notes.append("%d call(s) beyond the node limit not kept" % event["truncated"])
    if event.get("raised"):
        notes.append("raised %s" % safe_line(event["raised"]))
    notes.extend(_skipped_before(event))
    if notes:
        lines.append(Text("; ".join(notes), style="dim"))
    return Group(*lines)


def _skipped_before(event: dict[str, Any]) -> list[str]:
    """Qualifying invocations not traced since the previous tree, and why (said at once, not at the end)."""
    notes = []
    if event.get("not_traced_budget"):
        notes.append("%d invocation(s) before this one not traced: --budget" % event["not_traced_budget"])
    if event.get("skipped"):
        notes.append("%d tree(s) before this one skipped by --rate" % event["skipped"])
    return notes


def _tree(node: dict[str, Any], parent_cost: float | None, lead: str, branch: str, lines: list[Text]) -> None:
    from rich.text import Text

    line = Text(lead + branch)
    line.append("[%sms]" % _ms(node["cost"]), style=_style(node["cost"], parent_cost))
    line.append(" %s " % safe_line(node["name"]))
    if node["file"]:
        line.append(
            safe_line(node["file"]) if node["file"].startswith("<") else where(node["file"], node["line"]), style="dim"
        )
    lines.append(line)
    children = node.get("children", [])
    below = lead + ("" if not branch else ("   " if branch.startswith("└") else "│  "))
    for index, child in enumerate(children):
        last = index == len(children) - 1
        _tree(child, node["cost"], below, "└─ " if last else "├─ ", lines)


def _ms(cost: float) -> str:
    return ("%.3f" % cost).rstrip("0").rstrip(".") if cost else "0"


def _style(cost: float, parent: float | None) -> str:
    if not parent:
        return "bold"
    share = cost / parent
    if share > 0.5:
        return "red"
    if share > 0.2:
        return "yellow"
    if share > 0.05:
        return "green"
    return "dim green"


def _render_end(event: dict[str, Any]) -> Text:
    from rich.text import Text

    parts = ["%d tree(s) shown" % event["shown"]]
    if event.get("below_entrance_time"):
        parts.append("%d invocation(s) under -et" % event["below_entrance_time"])
    if event.get("not_traced_budget"):
        parts.append("%d invocation(s) not traced (--budget)" % event["not_traced_budget"])
    if event.get("skipped"):
        parts.append("%d tree(s) skipped by --rate" % event["skipped"])
    return Text("; ".join(parts), style="dim")


SPEC = CommandSpec(
    name="trace",
    summary="Show where the time goes inside invocations of a function: its call tree with costs.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=(
        "trace __main__ func",
        "trace __main__ func --interval 1",
        "trace __main__ func -f args[0]>=1 -n 1",
        "trace __main__ func -i 1",
        "trace __main__ func -et 30 -i 1",
        "trace __main__ classA func -d 2 -n 1",
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    completes=("module", "class", "member"),
)
