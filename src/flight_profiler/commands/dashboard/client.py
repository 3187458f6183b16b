"""``dashboard`` in the CLI: arguments and rendering of each frame."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..calls import timestamp
from ..spec import CommandSpec, number
from .model import DEFAULTS, MAX_INTERVAL_MS, MIN_INTERVAL_MS

if TYPE_CHECKING:
    from rich.console import RenderableType

    from .model import DashboardRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-i",
        "--interval",
        metavar="MS",
        type=number(int, MIN_INTERVAL_MS, MAX_INTERVAL_MS),
        default=DEFAULTS["interval"],
        help="milliseconds per frame (default %d)" % DEFAULTS["interval"],
    )
    parser.add_argument(
        "-n",
        "--frames",
        metavar="N",
        type=number(int, 0),
        default=DEFAULTS["frames"],
        help="stop after this many frames (default %d: until Ctrl-C)" % DEFAULTS["frames"],
    )


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("[-i] [-n]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("-i", "milliseconds per frame (100 to 3600000)"),
    ("-n", "stop after N frames (0: until Ctrl-C)"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = ("[-i] [-n]",)
OVERVIEW = (
    "one frame per interval: the process's CPU, RSS, fds; the busiest threads (name, kernel state, CPU %); GC counts "
    "and the pauses collections caused; the functions the CPU goes to (each thread's CPU split over the functions it "
    "was sampled in every 20 ms). Nothing hooked; a `gc.callbacks` timer for its duration"
)


def _to_request(ns: argparse.Namespace) -> DashboardRequest:
    return {"interval": ns.interval, "frames": ns.frames}


def _size(kb: int) -> str:
    return "%.1f MiB" % (kb / 1024.0) if kb < 10 << 20 else "%.2f GiB" % (kb / 1048576.0)


def _render(event: dict[str, Any]) -> RenderableType | None:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from ...render.safe import safe_line

    if event.get("kind") != "frame":
        return None
    gc = event["gc"]
    head = Text(
        "#%d %s  pid %d  Python %s  cpu %.1f%%  rss %s  fds %d  threads %d"
        % (
            event["index"],
            timestamp(event["time"]),
            event["pid"],
            safe_line(str(event["python"])),
            event["cpu"],
            _size(event["rss_kb"]),
            event["fds"],
            event["threads_total"],
        ),
        style="bold",
    )
    threads = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("TID", "NAME", "STATE", "CPU%", "DAEMON"):
        threads.add_column(column, justify="right" if column in ("TID", "CPU%") else "left")
    for thread in event["threads"]:
        daemon = "-" if thread["daemon"] is None else str(thread["daemon"]).lower()
        name, state = safe_line(str(thread["name"])), safe_line(str(thread["state"]))
        threads.add_row(str(thread["tid"]), name, state, "%.1f" % thread["cpu"], daemon)
    gc_line = Text(
        "gc %s  counts %s  collections %s  collected %s  uncollectable %s  pauses %d (total %.1f ms, max %.1f ms)"
        % (
            "on" if gc["enabled"] else "OFF",
            "/".join(map(str, gc["counts"])),
            "/".join(map(str, gc["collections"])),
            "/".join(map(str, gc["collected"])),
            "/".join(map(str, gc["uncollectable"])),
            gc["pauses"],
            gc["pause_total_ms"],
            gc["pause_max_ms"],
        )
    )
    hot = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("CPU%", "SAMPLES", "FUNCTION", "WHERE"):
        hot.add_column(column, justify="right" if column in ("CPU%", "SAMPLES") else "left")
    for function in event["functions"]:
        hot.add_row(
            "%.1f" % function["cpu"],
            str(function["samples"]),
            safe_line(str(function["name"])),
            "%s:%d" % (safe_line(str(function["file"])), function["line"]),
        )
    return Group(head, threads, gc_line, Text("hottest functions (%d looks)" % event["samples"], style="bold"), hot)


SPEC = CommandSpec(
    name="dashboard",
    summary="A refreshing view: threads by CPU, process CPU/RSS/fds, GC counts and pauses, the hottest functions.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=("dashboard -n 1", "dashboard -i 2000 -n 5"),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
)
