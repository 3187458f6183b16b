"""``logger`` in the CLI: arguments and rendering."""

from __future__ import annotations

import argparse

from ...errors import UsageError
from ...render.safe import safe_line
from ..spec import CommandSpec, number
from .model import DEFAULTS, MAX_FOR_S

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType

    from .model import LoggerRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="one logger and its descendants ('root' for the root logger)")
    parser.add_argument("--level", help="set the logger's level (DEBUG, INFO, ... or a number) for --for seconds")
    parser.add_argument(
        "--for",
        metavar="S",
        dest="seconds",
        type=number(float, 0, MAX_FOR_S, above=True),
        default=DEFAULTS["seconds"],
        help="seconds the --level change lasts before it is reverted (default %g)" % DEFAULTS["seconds"],
    )


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("[--name] [--level] [--for]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    (
        "--name",
        "one logger (as passed to `logging.getLogger`) and its descendants; `root` for the root logger",
        "every logger",
    ),
    (
        "--level",
        "set the logger's level: `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`, a custom name the target "
        "registered, or a number; needs `--name`",
        "show only",
    ),
    ("--for", "seconds the level change lasts before it is reverted (up to 86400)"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = ("[--name] [--level] [--for]",)
OVERVIEW = (
    "the logging tree (levels, effective levels, handlers, propagation); a level change reverted after `--for` "
    "(default 60 s), on Ctrl-C, when the client dies and on `detach`"
)


def _to_request(ns: argparse.Namespace) -> LoggerRequest:
    if ns.level is not None and not ns.name:
        raise UsageError("--level needs --name (use --name root for the root logger)")
    if ns.level is not None and not ns.level.strip():
        raise UsageError("--level must not be empty")
    return {"name": ns.name, "level": ns.level, "seconds": ns.seconds}


def _render(event: dict[str, Any]) -> RenderableType | None:
    from rich.text import Text

    kind = event.get("kind")
    # names and level names are the target's: escaped here, not only at the console's gate, so that a
    # table measures the text it shows and rich does not drop the CR or BEL of a name
    event = {key: safe_line(value) if isinstance(value, str) else value for key, value in event.items()}
    if kind == "changed":
        return Text(
            "%s: level %s -> %s (effective %s) for %g s; reverted then, on Ctrl-C, or when this client goes away"
            % (event["name"], event["old_level"], event["level"], event["effective"], event["seconds"]),
            style="yellow",
        )
    if kind == "reverted":
        if event["kept_app_change"]:
            return Text(
                "%s: the application changed the level meanwhile; kept its %s" % (event["name"], event["level"])
            )
        return Text("%s: level reverted to %s" % (event["name"], event["level"]), style="green")
    return _tree(event)


def _tree(event: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "LEVEL", "EFFECTIVE", "PROPAGATE", "HANDLERS"):
        table.add_column(column)
    for logger in event["loggers"]:
        handlers = safe_line(", ".join(_handler(h) for h in logger["handlers"]) or "-")
        name = safe_line(logger["name"]) + (" (disabled)" if logger["disabled"] else "")
        level, effective = safe_line(logger["level"]), safe_line(logger["effective"])
        table.add_row(name, level, effective, "yes" if logger["propagate"] else "no", handlers)
    if event["shown"] < event["total"]:
        more = Text("%d more logger(s) not shown: narrow with --name" % (event["total"] - event["shown"]), style="dim")
        return Group(table, more)
    return table


def _handler(handler: dict[str, Any]) -> str:
    text = "%s[%s]" % (handler["type"], handler["level"])
    return "%s(%s)" % (text, handler["target"]) if handler.get("target") else text


SPEC = CommandSpec(
    name="logger",
    summary="Show the logging tree (levels, handlers, propagation), or change a logger's level for a while.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=("logger", "logger --name app.db", "logger --name app.db --level DEBUG --for 120"),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    changes_target=True,
)
