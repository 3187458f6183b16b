"""``console`` in the CLI: a remote Python REPL (the shell drives the loop)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ...render.safe import safe_block
from ..spec import CommandSpec, add_expression_argument

if TYPE_CHECKING:
    from rich.console import RenderableType

    from .model import ConsoleRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_expression_argument(
        parser, "-c", "--code", help="run this source once and print the result (for scripts and agents)"
    )


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("[-c]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    (
        "-c",
        "the source to run once (several lines allowed; `;` or newlines); takes the rest of the line, so quotes are "
        "optional",
        "interactive REPL",
    ),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = (
    "-c='<python code>'",
    "$ printf 'import sys\\nsys.version\\n' | flight_profiler <pid> --cmd console --no-color   # code from stdin",
)
OVERVIEW = (
    "a real Python console inside the target (multi-line input, tracebacks), in a namespace of its own that sees the "
    "target's `__main__` globals (what you assign stays in the console); its `print` output comes back to you without"
    " replacing the target's `sys.stdout`. With `--cmd`, `-c CODE` or piped stdin runs once. No time budget: Ctrl-C "
    "(or `detach`) stops the statement at its next bytecode; `exit()` ends the statement, not the agent"
)


def _to_request(ns: argparse.Namespace) -> ConsoleRequest:
    return {"source": ns.code} if ns.code is not None else {}


def _render(event: dict[str, Any]) -> RenderableType | None:
    from rich.console import Group
    from rich.text import Text

    parts: list[RenderableType] = []
    if event.get("output"):
        parts.append(Text(safe_block(event["output"].rstrip("\n"))))
    if event.get("value") is not None:
        parts.append(Text(safe_block(event["value"])))
    if event.get("error"):
        parts.append(Text(safe_block(event["error"].rstrip("\n")), style="red"))
    return Group(*parts) if parts else None


SPEC = CommandSpec(
    name="console",
    summary="Open a Python console inside the target (changes the target: it runs your code).",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=("console", 'console -c "import sys; len(sys.modules)"'),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    changes_target=True,
    interactive=True,
)
