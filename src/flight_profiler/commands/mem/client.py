"""``mem`` in the CLI: arguments and tables."""

from __future__ import annotations

import argparse

from ...errors import UsageError
from ...render.safe import safe_line
from ..spec import CommandSpec, number
from .model import DEFAULT_INTERVAL, DEFAULTS, MAX_LIMIT

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType
    from rich.table import Table

    from .model import MemRequest

ACTIONS = ("summary", "diff", "top")
MAX_INTERVAL = 3600.0


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS, help="summary: objects by type; diff: growth; top: allocating lines")
    parser.add_argument(
        "--limit",
        metavar="N",
        type=number(int, 1, MAX_LIMIT),
        default=DEFAULTS["limit"],
        help="rows to show (default %d)" % DEFAULTS["limit"],
    )
    parser.add_argument(
        "--order",
        choices=("descending", "ascending"),
        default=DEFAULTS["order"],
        help="largest first (default) or last",
    )
    parser.add_argument(
        "-i",
        "--interval",
        metavar="SECONDS",
        type=number(float, 0, MAX_INTERVAL, above=True),
        help="seconds between the two snapshots (diff, top; default 10)",
    )


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = (
    "summary [--limit] [--order]",
    "diff|top [-i] [--limit]",
)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("action", "`summary`, `diff` or `top`"),
    ("--limit", "rows to show"),
    ("--order", "`descending` (largest first) or `ascending`"),
    ("-i", "time between the two snapshots (`diff`, `top`; 0–3600)", "10"),  # noqa: RUF001 (the skill's wording)
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = (
    "summary [--limit] [--order]",
    "diff [-i] [--limit] [--order=...]",
    "top [-i] [--limit]",
)
OVERVIEW = (
    "objects by type; growth over an interval; the source lines allocating most (tracemalloc started and stopped by "
    "the command). The heap walk yields the GIL in slices"
)


def _to_request(ns: argparse.Namespace) -> MemRequest:
    if ns.limit < 1:
        raise UsageError("--limit must be at least 1, got %d" % ns.limit)
    request: MemRequest = {"action": ns.action, "limit": ns.limit, "order": ns.order}
    if ns.action == "summary":
        if ns.interval is not None:
            raise UsageError("mem summary takes no --interval (mem diff and mem top do)")
        return request
    interval = DEFAULT_INTERVAL if ns.interval is None else ns.interval
    request["interval"] = interval
    return request


def human(size: float, signed: bool = False) -> str:
    sign = ("+" if size > 0 else "-" if size < 0 else "") if signed else ("-" if size < 0 else "")
    value = abs(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return "%s%s %s" % (sign, ("%d" % value) if unit == "B" else ("%.1f" % value), unit)
        value /= 1024
    return "%s%.1f GiB" % (sign, value)  # pragma: no cover - the loop always returns


def _type_table(rows: list[dict[str, Any]], signed: bool) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False)
    table.add_column("type", overflow="fold")
    table.add_column("count" if not signed else "count change", justify="right")
    table.add_column("size" if not signed else "size change", justify="right")
    for row in rows:
        count = ("%+d" % row["count"]) if signed else str(row["count"])
        table.add_row(Text(safe_line(row["type"])), count, human(row["size"], signed))
    return table


def _render_summary(event: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    header = Text(
        "%d objects, %s, %d types (walked in %.1f s, the target kept running); %s %d:"
        % (
            event["objects"],
            human(event["size"]),
            event["distinct"],
            event["seconds"],
            "smallest" if event.get("order") == "ascending" else "largest",  # an older agent sends no order
            len(event["types"]),
        ),
        style="bold",
    )
    return Group(header, _type_table(event["types"], signed=False))


def _render_diff(event: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    if event.get("phase") == "first":
        return Text(
            "first snapshot: %d objects, %s; the second in %g s..."
            % (event["objects"], human(event["size"]), event["interval"]),
            style="dim",
        )
    header = Text(
        "in %g s: %+d objects, %s; %d types changed:"
        % (event["interval"], event["count_change"], human(event["size_change"], signed=True), event["changed"]),
        style="bold",
    )
    if not event["types"]:
        return Group(header, Text("no change", style="dim"))
    return Group(header, _type_table(event["types"], signed=True))


def _render_top(event: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    how = "growth while tracemalloc was already on (left on)" if event["already_tracing"] else "still alive at the end"
    header = Text(
        "allocated in %g s, %s: %s in %d blocks" % (event["interval"], how, human(event["size"]), event["count"]),
        style="bold",
    )
    if not event["lines"]:
        return Group(header, Text("nothing allocated", style="dim"))
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    table.add_column("size", justify="right")
    table.add_column("blocks", justify="right")
    table.add_column("where", overflow="fold")
    for line in event["lines"]:
        where = Text("%s:%d" % (safe_line(line["file"]), line["line"]))
        if line["source"]:
            where.append("\n  %s" % safe_line(line["source"]), style="cyan")
        table.add_row(human(line["size"]), str(line["count"]), where)
    return Group(header, table)


def _render(event: dict[str, Any]) -> RenderableType:
    if event["action"] == "summary":
        return _render_summary(event)
    if event["action"] == "diff":
        return _render_diff(event)
    return _render_top(event)


SPEC = CommandSpec(
    name="mem",
    summary="Memory by type (summary), its growth over an interval (diff), or the lines allocating most (top).",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=(
        "mem summary",
        "mem summary --limit 100 --order descending",
        "mem diff --interval 10 --limit 100",
        "mem top --interval 5",
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
)
