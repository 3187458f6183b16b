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
    usage="console [-c CODE]",
    examples=("console", 'console -c "import sys; len(sys.modules)"'),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    changes_target=True,
    interactive=True,
)
