"""``help``: generated from the same specs that parse the arguments."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..errors import UsageError
from .registry import BUILTINS, get, visible


def overview() -> RenderableType:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("command")
    table.add_column("what it does")
    for spec in visible():
        mark = "  (changes the target)" if spec.changes_target and "changes the target" not in spec.summary else ""
        table.add_row(Text(spec.name), Text(spec.summary + mark))  # Text: "[command]" is not markup
    for name, summary in BUILTINS.items():
        table.add_row(Text(name), Text(summary))
    return Group(table, Text("\n'help <command>' shows its options and examples."))


def command_help(name: str) -> RenderableType:
    if name in BUILTINS:
        return Text("%s: %s" % (name, BUILTINS[name]))
    spec = get(name)
    if spec is None:
        raise UsageError("unknown command %r; 'help' lists them" % name)
    parser = spec.parser()
    text = Text()
    text.append("USAGE\n  %s\n\n" % spec.usage, style="bold")
    text.append("SUMMARY\n  %s\n\n" % spec.summary)
    text.append("EXAMPLES\n", style="bold")
    for example in spec.examples:
        text.append("  %s\n" % example)
    text.append("\nOPTIONS\n", style="bold")
    for action in parser._actions:  # argparse keeps no public list of them
        names = ", ".join(action.option_strings) or "<%s>" % action.dest
        if action.metavar and not action.option_strings:
            names = "<%s>" % (action.metavar if isinstance(action.metavar, str) else action.dest)
        text.append("  %-28s %s\n" % (names, action.help or ""))
    return text
