"""``help``: generated from the same specs that parse the arguments.

``help_record`` is the result (what ``--json`` prints, docs/schema/help.json); the text is rendered
from it (``render_help``), as every command's is from its events.
"""

from __future__ import annotations

from ..errors import UsageError
from .registry import BUILTINS, get, visible

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType


def help_record(name: str | None) -> dict[str, Any]:
    """``help``: every command; ``help NAME``: its usage, summary, examples and options."""
    if name is None:
        return {
            "commands": [
                {"name": spec.name, "summary": spec.summary, "changes_target": spec.changes_target}
                for spec in visible()
            ],
            "builtins": [{"name": builtin, "summary": summary} for builtin, summary in BUILTINS.items()],
        }
    if name in BUILTINS:
        return {"command": name, "summary": BUILTINS[name]}
    spec = get(name)
    if spec is None:
        raise UsageError("unknown command %r; 'help' lists them" % name)
    options = []
    for action in spec.parser()._actions:  # argparse keeps no public list of them
        names = list(action.option_strings)
        if not names:
            names = ["<%s>" % (action.metavar if isinstance(action.metavar, str) else action.dest)]
        options.append({"names": names, "help": action.help or ""})
    return {
        "command": spec.name,
        "usage": spec.usage,
        "summary": spec.summary,
        "changes_target": spec.changes_target,
        "examples": list(spec.examples),
        "options": options,
    }


def render_help(record: dict[str, Any]) -> RenderableType:
    from rich.text import Text  # the text only: help --json imports no rich

    if "commands" in record:
        return _overview(record)
    if "usage" not in record:  # a shell built-in
        return Text("%s: %s" % (record["command"], record["summary"]))
    text = Text()
    text.append("USAGE\n  %s\n\n" % record["usage"], style="bold")
    text.append("SUMMARY\n  %s\n\n" % record["summary"])
    text.append("EXAMPLES\n", style="bold")
    for example in record["examples"]:
        text.append("  %s\n" % example)
    text.append("\nOPTIONS\n", style="bold")
    for option in record["options"]:
        text.append("  %-28s %s\n" % (", ".join(option["names"]), option["help"]))
    return text


def _overview(record: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("command")
    table.add_column("what it does")
    for command in record["commands"]:
        summary = command["summary"]
        mark = "  (changes the target)" if command["changes_target"] and "changes the target" not in summary else ""
        table.add_row(Text(command["name"]), Text(summary + mark))  # Text: "[command]" is not markup
    for builtin in record["builtins"]:
        table.add_row(Text(builtin["name"]), Text(builtin["summary"]))
    return Group(table, Text("\n'help <command>' shows its options and examples."))


def overview() -> RenderableType:
    return render_help(help_record(None))


def command_help(name: str) -> RenderableType:
    return render_help(help_record(name))
