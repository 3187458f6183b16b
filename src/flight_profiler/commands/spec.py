"""Command specifications (client side).

A ``CommandSpec`` is the single source of a command's name, help, arguments,
request building and rendering: ``help``, Tab completion and the parser are all
derived from it, in the shell and for ``--cmd`` alike.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, Dict, NamedTuple, NoReturn

from ..errors import UsageError

if TYPE_CHECKING:
    from rich.console import RenderableType

Request = Dict[str, Any]
Event = Dict[str, Any]


class CommandParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so the shell goes on."""

    def error(self, message: str) -> NoReturn:
        raise UsageError("%s: %s (see 'help %s')" % (self.prog, message, self.prog))

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or "%s: invalid arguments" % self.prog)


class LocalContext(NamedTuple):
    """What a client-side command gets: the pid, the cancel flag and the agent, lazily."""

    pid: int
    cancelled: Callable[[], bool]
    cwd: str


class CommandSpec(NamedTuple):
    name: str
    summary: str
    usage: str
    examples: tuple[str, ...]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    to_request: Callable[[argparse.Namespace], Request]
    render: Callable[[Event], RenderableType | None]
    # "agent" commands run in the target; a command may run some requests locally
    # (stack reads the target from outside, no injection needed).
    run_local: Callable[[Request, LocalContext], Iterator[Event]] | None = None
    runs_locally: Callable[[Request], bool] = lambda request: False
    changes_target: bool = False
    # what the positional arguments name, for Tab completion: "module", "class", "member", "path"
    completes: tuple[str, ...] = ()
    interactive: bool = False
    extra: dict[str, Any] = {}

    def parser(self) -> CommandParser:
        parser = CommandParser(prog=self.name, description=self.summary, add_help=False)
        self.add_arguments(parser)
        return parser

    def parse(self, argv: list[str]) -> Request:
        namespace = self.parser().parse_args(argv)
        return self.to_request(namespace)


def add_render_options(parser: argparse.ArgumentParser) -> None:
    """The value-display options shared by every command that shows objects."""
    parser.add_argument(
        "-x", "--expand", type=int, default=1, help="depth to expand objects (default 1, max 4, -1 deepest)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show all items of containers and long strings")
    parser.add_argument("-r", "--raw", action="store_true", help="show repr() of values instead of a tree")


def render_options(namespace: argparse.Namespace) -> Request:
    expand = namespace.expand
    if expand < -1 or expand == 0 or expand > 4:
        raise UsageError("-x must be 1..4 or -1, got %d" % expand)
    return {"expand": expand, "verbose": namespace.verbose, "raw": namespace.raw}
