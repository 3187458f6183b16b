"""``sc`` in the CLI (search loaded classes); ``sm`` shares its arguments and rendering."""

from __future__ import annotations

import argparse
import os

from ...errors import UsageError
from ..spec import CommandSpec, number
from .model import DEFAULTS, MAX_LIMIT

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType

    from .model import SearchRequest


def add_search_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "pattern",
        help="glob over module.%s (* and ?; without a dot, over the bare name too), or a plain name matched at "
        "the end%s, e.g. %s"
        % (
            what,
            "" if what == "Class" else " or naming a class or module (its methods or functions)",
            "Inv* or Inventory" if what == "Class" else "*charge* or Inventory",
        ),
    )
    parser.add_argument(
        "-d",
        "--detail",
        action="store_true",
        help="also the file, line and %s" % ("bases" if what == "Class" else "signature"),
    )
    parser.add_argument(
        "-n",
        "--limit",
        metavar="N",
        type=number(int, 1, MAX_LIMIT),
        default=DEFAULTS["limit"],
        help="show at most N matches (default %d)" % DEFAULTS["limit"],
    )


def search_request(ns: argparse.Namespace) -> SearchRequest:
    if not ns.pattern.strip():
        raise UsageError("the pattern must not be empty")
    return {"pattern": ns.pattern, "detail": ns.detail, "limit": ns.limit}


def render_matches(event: dict[str, Any]) -> RenderableType:
    from rich.text import Text

    text = Text()
    for match in event["matches"]:
        text.append(match["name"], style="bold")
        text.append("  %s" % match["kind"], style="dim")
        if "signature" in match:
            text.append(match["signature"])
        if "bases" in match:
            text.append("(%s)" % ", ".join(match["bases"]))
        if match.get("file"):
            line = match.get("line")
            where = "%s:%s" % (os.path.basename(match["file"]), line) if line else os.path.basename(match["file"])
            text.append("  %s" % where, style="dim")
        text.append("\n")
    more = event["total"] - event["shown"]
    summary = "%d match(es) in %d modules" % (event["total"], event["modules"])
    if event.get("not_searched"):
        summary += " (%d more loaded, not searched: the search's bound)" % event["not_searched"]
    text.append(summary + ("; %d not shown (raise -n or narrow the pattern)" % more if more else ""), style="dim")
    return text


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_search_arguments(parser, "Class")


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("PATTERN [-d] [-n]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    (
        "pattern",
        "glob over `module.Class` (`*`, `?`; without a dot, over the bare class name too), or a plain name "
        "matched at the end",
    ),
    ("-d", "also the file, the line (of the class statement on 3.13+, else of its first method) and the base classes"),
    ("-n", "show at most N matches; the others are counted"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = ("PATTERN [-d] [-n]",)
OVERVIEW = (
    "loaded classes whose `module.Class` (or, for a glob without a dot, bare) name matches a glob (or ends with a "
    "plain name); `-d`: file, line, bases. "
    "Nothing is imported, no target code runs; no match is an error"
)


SPEC = CommandSpec(
    name="sc",
    summary="Search the loaded classes by name (nothing is imported); -d adds file, line and bases.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=("sc *Order*", "sc Inventory -d", "sc 'myapp.models.*'"),
    add_arguments=_add_arguments,
    to_request=search_request,
    render=render_matches,
)
