"""``source`` in the CLI: arguments and rendering."""

from __future__ import annotations

import argparse
import os

from ...errors import UsageError
from ..spec import CommandSpec
from ..targeting import check_names

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType

    from .model import SourceRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("module", help="module as imported in the target, e.g. __main__ or pkg.mod")
    parser.add_argument("names", nargs="*", metavar="[class] [method]", help="a class, a function, or a class's method")


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("module [class] [method]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("module", "module as imported in the target (`__main__`, `pkg.mod`); alone: the whole file"),
    ("[class] [method]", "a class or a function; a class then its method", "the whole module"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = ("<module> [<class>] [<method>]",)
OVERVIEW = (
    "the source from the file the code was loaded from, and a warning when the running code differs from that file "
    "(compiled and compared function by function: a stale deploy, an edited file, a reload or monkeypatch)"
)


def _to_request(ns: argparse.Namespace) -> SourceRequest:
    if len(ns.names) > 2:
        raise UsageError("expected: module [class] [method], got %d names after the module" % len(ns.names))
    check_names([ns.module, *ns.names])
    return {"module": ns.module, "names": list(ns.names)}


def _render(event: dict[str, Any]) -> RenderableType:
    from rich.text import Text

    text = Text()
    text.append("%s (%s) %s:%d" % (event["target"], event["what"], event["file"], event["start"]), style="bold")
    text.append("\n")
    width = len(str(event["start"] + len(event["lines"])))
    for offset, line in enumerate(event["lines"]):
        text.append("%*d  " % (width, event["start"] + offset), style="dim")
        text.append(line + "\n")
    if event["more"]:
        text.append("... %d more line(s)\n" % event["more"], style="dim")
    text.append_text(_status(event))
    return text


def _status(event: dict[str, Any]) -> Any:
    from rich.text import Text

    if event["status"] == "unknown":
        return Text("the file on disk does not compile: cannot tell whether it is the running code", style="yellow")
    if event["status"] == "differs":
        names = ", ".join(event["differing"])
        return Text(
            "WARNING: the running code differs from %s (a stale deploy, a reload, or an edited file): %s"
            % (os.path.basename(event["file"]), names),
            style="bold red",
        )
    moved = event.get("moved")
    if moved:
        return Text("the running code matches the file; it was loaded at line %d" % moved, style="yellow")
    return Text("the running code matches the file", style="green")


SPEC = CommandSpec(
    name="source",
    summary="Show the source of a module, class or function as the file has it, and warn when the running "
    "code differs from the file.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=("source __main__ handle", "source __main__ Inventory", "source __main__ Inventory reserve"),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    completes=("module", "class", "member"),
)
