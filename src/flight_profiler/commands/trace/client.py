"""``trace`` in the CLI: arguments and the call tree."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from ..calls import (
    add_budget_argument,
    add_rate_argument,
    add_target_arguments,
    at_least,
    budget_request,
    non_negative,
    render_start,
    target_request,
    timestamp,
    where,
)
from ..spec import CommandSpec

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

DEFAULT_INTERVAL = 0.1
DEFAULT_RATE = 10.0
DEFAULT_BUDGET = 20.0


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "-i",
        "--interval",
        type=float,
        help="hide calls that took less than this many ms (default %g; 0 with -d)" % DEFAULT_INTERVAL,
    )
    parser.add_argument(
        "-d", "--depth", type=int, help="show the tree down to this depth (2: the method and its calls)"
    )
    parser.add_argument(
        "-et", "--entrance_time", type=float, default=0.0, help="only invocations that took at least this many ms"
    )
    parser.add_argument("-n", "--limits", type=int, default=10, help="stop after this many trees (default 10)")
    parser.add_argument("-f", "--filter", help="only invocations for which this is true, over target, args, kwargs")
    add_budget_argument(parser, "app", "one evaluation of -f in the calling thread")
    parser.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET,
        help="at most this %% of the time may be spent in traced invocations; the others run untraced "
        "(default %g, 0: no limit)" % DEFAULT_BUDGET,
    )
    add_rate_argument(parser, DEFAULT_RATE, "trees")


def _to_request(ns: argparse.Namespace) -> dict[str, Any]:
    if ns.depth is not None and ns.depth < 1 and ns.depth != -1:
        raise UsageError("-d must be at least 1 (or -1: no limit), got %d" % ns.depth)
    if not 0 <= ns.budget <= 100:
        raise UsageError("--budget must be between 0 and 100, got %g" % ns.budget)
    return {
        **target_request(ns),
        "interval": None if ns.interval is None else non_negative(ns.interval, "-i"),
        "depth": ns.depth,
        "entrance_time": non_negative(ns.entrance_time, "-et"),
        "limit": at_least(ns.limits, 1, "-n"),
        "filter": ns.filter,
        **budget_request(ns),
        "budget": ns.budget,
        "rate": non_negative(ns.rate, "--rate"),
    }


def _render(event: dict[str, Any]) -> RenderableType | None:
    from rich.console import Group
    from rich.text import Text

    kind = event.get("kind")
    if kind == "start":
        budget = "at most %g%% of the time traced" % event["budget"] if event["budget"] else "no time budget"
        return render_start(event, "tracing", "-n %d, %s" % (event["limit"], budget))
    if kind == "end":
        return _render_end(event)
    lines: list[Text] = []
    if event.get("skipped"):
        lines.append(Text("(%d invocation(s) before this one skipped by --rate)" % event["skipped"], style="dim"))
    header = Text()
    header.append("trace #%d" % event["index"], style="bold")
    header.append(
        " %s thread=%s tid=%s daemon=%s" % (timestamp(event["time"]), event["thread"], event["tid"], event["daemon"])
    )
    header.append(" cost=%.3fms" % event["cost"], style="bold")
    lines.append(header)
    if "error" in event:
        lines.append(Text(event["error"], style="red"))
        return Group(*lines)
    _tree(event["root"], None, "", "", lines)
    notes = []
    if event.get("hidden"):
        notes.append("%d call(s) under -i hidden" % event["hidden"])
    if event.get("truncated"):
        notes.append("%d call(s) beyond the node limit not kept" % event["truncated"])
    if event.get("raised"):
        notes.append("raised %s" % event["raised"])
    if notes:
        lines.append(Text("; ".join(notes), style="dim"))
    return Group(*lines)


def _tree(node: dict[str, Any], parent_cost: float | None, lead: str, branch: str, lines: list[Text]) -> None:
    from rich.text import Text

    line = Text(lead + branch)
    line.append("[%sms]" % _ms(node["cost"]), style=_style(node["cost"], parent_cost))
    line.append(" %s " % node["name"])
    if node["file"]:
        line.append(node["file"] if node["file"].startswith("<") else where(node["file"], node["line"]), style="dim")
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
    usage="trace module [class] method [-i MS] [-nm NAME] [-et MS] [-d N] [-n N] [-f FILTER] [--budget PCT] [--rate N]",
    examples=(
        "trace __main__ func",
        "trace __main__ func -i 1",
        "trace __main__ func -et 30 -i 1",
        "trace __main__ classA func -d 2 -n 1",
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    completes=("module", "class", "member"),
)
