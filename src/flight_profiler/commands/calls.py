"""Client-side pieces shared by the commands that instrument a function (watch, trace, tt, reload)."""

from __future__ import annotations

import argparse
import os
import time

from ..errors import UsageError
from ..render.safe import safe_line
from ..render.values import pretty, seeds_value, type_line
from .spec import number
from .targeting import add_location_arguments, location

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.text import Text

    from ..protocol.requests import BudgetOption, TargetRequest


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    add_location_arguments(parser, last="method")
    add_nested_argument(parser)


def add_nested_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-nm",
        "--nested-method",
        dest="nested",
        metavar="NAME",
        type=_nested_name,
        help="instrument the function NAME defined inside the method: a path (a.b, Class.method, '<lambda>'), "
        "or a name found at any depth when it is unique; every function of that name and path is hooked",
    )


def _nested_name(text: str) -> str:
    """An empty ``-nm ""`` was taken as no -nm at all: the method itself was hooked instead."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a function defined inside the method, got %r" % text)
    return text


def nested_doc(action: str) -> str:
    """The skill table's -nm row for a command that does ``action`` to the nested function."""
    return (
        "%s the function `NAME` defined inside the method: a path (`a.b`, `Class.method`, `'<lambda>'`) or a name "
        "found at any depth when unique; every function of that path is hooked (a name defined twice: both)" % action
    )


# the defaults the agent applies (services/usercode.py, agent/session.py): shown in --help
BUDGETS = {"app": 200, "agent": 5000, "replay": 60000}


def add_budget_argument(parser: argparse.ArgumentParser, where: str, what: str) -> None:
    """``--budget-ms``: how long one evaluation of the user's code may run before it is stopped."""
    parser.add_argument(
        "--budget-ms",
        dest="budget_ms",
        type=number(float, 0, 3_600_000, above=True),
        metavar="MS",
        help="time budget of %s in ms (default %d): past it, it is stopped%s"
        % (what, BUDGETS[where], ", switched off and reported" if where == "app" else " and reported"),
    )


def budget_request(ns: argparse.Namespace) -> BudgetOption:
    value = getattr(ns, "budget_ms", None)
    if value is None:
        return {}
    if not 1 <= value <= 3600000:  # also refuses nan; inf is above the range
        raise UsageError("--budget-ms must be between 1 and 3600000, got %g" % value)
    return {"budget_ms": value}


def target_request(ns: argparse.Namespace) -> TargetRequest:
    module, cls, method = location(ns, last="method")
    return {"module": module, "cls": cls, "method": method, "nested": ns.nested}


def at_least(value: int, minimum: int, option: str) -> int:
    if value < minimum:
        raise UsageError("%s must be at least %d, got %d" % (option, minimum, value))
    return value


def non_negative(value: float, option: str) -> float:
    if value < 0:
        raise UsageError("%s must not be negative, got %s" % (option, value))
    return value


def add_rate_argument(parser: argparse.ArgumentParser, default: float, what: str) -> None:
    parser.add_argument(
        "--rate",
        metavar="N",
        type=number(float, 0),
        default=default,
        help="at most this many %s per second; the others are counted as skipped (default %g, 0: no limit)"
        % (what, default),
    )


SEPARATOR = "\u2500" * 60  # the faint rule above each result, as in the seeds
ICON_OK = "\u2713"
ICON_FAILED = "\u2717"
ICON_TRACE = "\U0001f50d"


def timestamp(seconds: float) -> str:
    """The seeds' time format: ``2026-04-19 11:35:38:953`` (milliseconds after a colon)."""
    local = time.localtime(seconds)
    return time.strftime("%Y-%m-%d %H:%M:%S", local) + ":%03d" % int((seconds % 1) * 1000)


def expr_block(entries: list[tuple[str, dict[str, Any]]], indent: str = "", expand: int | None = None) -> list[Text]:
    """The seeds' result fields, one ``EXPR`` / ``TYPE`` / ``VALUE`` group per expression;
    ``expand``: getglobal's and vmtool's ``-x``, whose VALUE has the seeds' own shapes (``seeds_value``)."""
    from rich.text import Text

    lines = []
    for expr, node in entries:
        lines.append(Text("%sEXPR: %s" % (indent, safe_line(expr))))
        lines.append(Text("%sTYPE: %s" % (indent, type_line(node))))
        if expand is None:
            value = pretty(node, indent=len(indent) // 2)
        else:
            value = seeds_value(node, expand, indent=len(indent) // 2)
        lines.append(Text("%sVALUE: %s" % (indent, value)))
    return lines


def exception_block(info: dict[str, Any], indent: str = "  ") -> Text:
    """The seeds' ``EXCEPTION`` field: type and message, then the frames (outermost first)."""
    from rich.text import Text

    text = Text(style="red")
    text.append("%sEXCEPTION: %s: %s" % (indent, safe_line(info["type"]), safe_line(info["message"])))
    for frame in info.get("frames", []):
        text.append(
            '\n%s  File "%s", line %d, in %s'
            % (indent, safe_line(frame["file"]), frame["line"], safe_line(frame["name"]))
        )
    return text


def render_notice(event: dict[str, Any]) -> Text | None:
    """An event of a kind this client does not draw (a newer agent's): its ``error`` or ``message``
    on one line, e.g. a filter that raised and is from now on treated as no match (said once)."""
    from rich.text import Text

    if event.get("error"):
        return Text(safe_line(event["error"]), style="red")
    if event.get("message"):
        return Text(safe_line(event["message"]), style="yellow")
    return None


def extras_line(event: dict[str, Any], *, skipped_by: str = "--rate") -> Text | None:
    """What we show beyond the seeds' fields, below them: thread and skipped calls."""
    from rich.text import Text

    parts = []
    if event.get("thread") is not None:
        parts.append(
            "thread=%s tid=%s daemon=%s"
            % (safe_line(event["thread"]), safe_line(event.get("tid")), safe_line(event.get("daemon")))
        )
    if event.get("skipped"):
        parts.append("%d matching call(s) before this one skipped by %s" % (event["skipped"], skipped_by))
    return Text("  ".join(parts), style="dim") if parts else None


def where(file: str, line: int) -> str:
    return "%s:%d" % (safe_line(os.path.basename(file) if file.startswith("/") else file), line)


def render_start(event: dict[str, Any], doing: str, limits: str) -> Text:
    from rich.text import Text

    text = Text(style="dim")
    text.append(
        "%s %s (%s at %s)"
        % (doing, safe_line(event["target"]), safe_line(event["callable"]), where(event["file"], event["line"]))
    )
    text.append("; %s; Ctrl-C to stop" % limits)
    if event.get("note"):
        text.append("\nnote: %s" % safe_line(event["note"]))
    return text


def render_header(event: dict[str, Any], label: str) -> Text:
    from rich.text import Text

    text = Text()
    text.append(label, style="bold")
    text.append(" %s thread=%s" % (timestamp(event["time"]), safe_line(event["thread"])))
    text.append(" cost=%.3fms" % event["cost"], style="bold")
    return text


def render_values(values: list[dict[str, Any]]) -> list[Text]:
    from rich.text import Text

    lines = []
    for entry in values:
        line = Text()
        line.append(safe_line(entry["expr"]), style="cyan")
        line.append(" = ")
        line.append(pretty(entry["value"], indent=1))
        lines.append(line)
    return lines


def skipped_note(event: dict[str, Any]) -> Text | None:
    from rich.text import Text

    skipped = event.get("skipped") or 0
    if not skipped:
        return None
    return Text("(%d matching call(s) before this one were skipped by --rate)" % skipped, style="dim")


def render_end(event: dict[str, Any], noun: str) -> Text:
    from rich.text import Text

    parts = ["%d %s shown" % (event["shown"], noun)]
    if event.get("skipped"):
        parts.append("%d matching call(s) skipped by --rate" % event["skipped"])
    if event.get("dropped"):
        parts.append("%d result(s) dropped: the client read too slowly" % event["dropped"])
    return Text("; ".join(parts), style="dim")
