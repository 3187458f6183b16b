"""Top-level subcommands that need no target pid: ``flight_profiler ps|install-skills|mcp|k8s``.

Like the command specs, each one is the single source of its arguments: ``main``
dispatches on the first word, and the skills test checks its options are documented.
"""

from __future__ import annotations

import argparse
import importlib

from ..errors import UsageError
from .output import Output
from .registry import SUBCOMMAND_NAMES as NAMES
from .registry import SUBCOMMANDS as _MODULES

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Callable, NamedTuple
else:
    from ..named import NamedTuple


class Subcommand(NamedTuple):
    name: str
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]

    def parser(self) -> argparse.ArgumentParser:
        from ..commands.spec import ToolParser

        parser = ToolParser(prog="flight_profiler %s" % self.name, description=self.summary)
        self.add_arguments(parser)
        return parser

    def main(self, argv: list[str]) -> int:
        try:
            args = self.parser().parse_args(argv)
        except UsageError as exc:
            from .main import usage_error

            return usage_error(argv, exc)
        return self.run(args)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print results as JSON lines (for scripts and AI agents)")
    parser.add_argument("--no-color", action="store_true", help="plain text output (NO_COLOR is honoured too)")


def make_output(args: argparse.Namespace) -> Output:
    return Output(getattr(args, "json", False), color=not getattr(args, "no_color", False))


def subcommand(name: str) -> Subcommand:
    found: Subcommand = importlib.import_module(_MODULES[name]).SUBCOMMAND
    return found


def subcommands() -> dict[str, Subcommand]:
    """Every subcommand by name (imports all their modules)."""
    return {name: subcommand(name) for name in NAMES}
