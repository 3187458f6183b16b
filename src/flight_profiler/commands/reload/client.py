"""``reload`` in the CLI: swap in a function's current source."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ...render.safe import safe_line
from ..calls import where
from ..spec import CommandSpec
from ..targeting import add_location_arguments, location

if TYPE_CHECKING:
    from rich.console import RenderableType

    from .model import ReloadRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_location_arguments(parser, last="method")


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("module [class] method",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("module", "module as imported in the target (`module <file>` tells you)"),
    ("[class] method", "the function, or a class then its method"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = (
    "# 1. edit the function in the file the target loaded it from (same path, as the target sees it)",
    "# 2. swap it in:",
    "<module> [<class>] <method>",
)
OVERVIEW = (
    "re-read the source file and swap the new body into the live function (every reference sees it); the target is "
    "unchanged on any error"
)


def _to_request(ns: argparse.Namespace) -> ReloadRequest:
    module, cls, method = location(ns, last="method")
    return {"module": module, "cls": cls, "method": method}


def _render(event: dict[str, Any]) -> RenderableType:
    from rich.text import Text

    text = Text()
    text.append("reloaded %s" % safe_line(event["target"]), style="bold")
    text.append(" from %s" % where(event["file"], event["line"]))
    if not event["changed"]:
        text.append(" (the code in the file is the same as before)", style="dim")
    if event["hooked"]:
        text.append("; the instrumentation on it stays and runs the new code", style="dim")
    return text


SPEC = CommandSpec(
    name="reload",
    summary="Replace a function's body with the one in its source file now, without restarting (changes the target).",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=("reload __main__ func", "reload my.pkg.module classA method"),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    changes_target=True,
    completes=("module", "class", "member"),
)
