"""Command specifications (client side).

A ``CommandSpec`` is the single source of a command's name, help, arguments,
request building and rendering: ``help``, Tab completion and the parser are all
derived from it, in the shell and for ``--cmd`` alike.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, Dict, NamedTuple, NoReturn, Union

from ..errors import UsageError

if TYPE_CHECKING:
    from rich.console import RenderableType

Request = Dict[str, Any]
Event = Dict[str, Any]
Number = Union[int, float]
LONGEST_NUMBER = 40  # characters: int() of a 5000-digit string is slow (and refused on 3.11+)


class CommandParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so the shell goes on."""

    def error(self, message: str) -> NoReturn:
        raise UsageError("%s: %s (see 'help %s')" % (self.prog, _named(message), self.prog))

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or "%s: invalid arguments" % self.prog)


def _named(message: str) -> str:
    """argparse's "argument -x/--expand: must be ..." as "-x must be ..." (``number``'s messages)."""
    match = re.match(r"argument ([^\s/:]+)(?:/[^\s:]+)?: (must .*)$", message)
    return "%s %s" % match.groups() if match else message


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


def number(
    kind: type = float,
    minimum: Number | None = None,
    maximum: Number | None = None,
    *,
    above: bool = False,
    special: tuple[Number, ...] = (),
    note: str = "",
) -> Callable[[str], Number]:
    """The argparse ``type`` of every numeric option: a finite ``kind`` (int or float) between
    ``minimum`` (excluded when ``above``) and ``maximum``, or one of ``special`` (``note`` says
    what they mean). inf and nan are refused: an option that means "no limit" has a value for
    that. ``CommandParser.error`` puts the option's name in front: "-i must be > 0 and <= 3600"."""
    wanted = _wanted(kind, minimum, maximum, above) + _special(special, note)
    what = "a whole number" if kind is int else "a finite number"

    def parse(text: str) -> Number:
        try:
            if len(text) > LONGEST_NUMBER:
                raise ValueError(text)
            value = kind(text)
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError("must be %s, got %r" % (what, text)) from None
        if value in special:
            return value  # type: ignore[no-any-return]
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError("must be %s, got %r" % (what, text))
        low_ok = minimum is None or (value > minimum if above else value >= minimum)
        if not (low_ok and (maximum is None or value <= maximum)):
            raise argparse.ArgumentTypeError("%s, got %r" % (wanted, text))
        return value  # type: ignore[no-any-return]

    parse.__name__ = kind.__name__  # what argparse names the type in its own messages
    return parse


def _wanted(kind: type, minimum: Number | None, maximum: Number | None, above: bool) -> str:
    """The range in words: "must be 1..4", "must not be negative", "must be > 0 and <= 3600"."""
    low, high = _plain(minimum), _plain(maximum)
    if minimum is None:
        return "must be %s" % ("at most %s" % high if maximum is not None else "a number")
    if above:
        if maximum is not None:
            return "must be > %s and <= %s" % (low, high)
        return "must be a positive number" if minimum == 0 else "must be more than %s" % low
    if maximum is not None:
        return "must be %s..%s" % (low, high) if kind is int else "must be between %s and %s" % (low, high)
    return "must not be negative" if minimum == 0 else "must be at least %s" % low


def _special(special: tuple[Number, ...], note: str) -> str:
    if not special:
        return ""
    return " or %s%s" % (" or ".join(_plain(value) for value in special), " (%s)" % note if note else "")


def _plain(value: Number | None) -> str:
    return "%g" % value if isinstance(value, float) else str(value)


def add_render_options(parser: argparse.ArgumentParser) -> None:
    """The value-display options shared by every command that shows objects."""
    parser.add_argument(
        "-x",
        "--expand",
        type=number(int, 1, 4, special=(-1,), note="deepest"),
        default=1,
        help="depth to expand objects (default 1, max 4, -1 deepest)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show all items of containers and long strings")
    parser.add_argument("-r", "--raw", action="store_true", help="show repr() of values instead of a tree")


def render_options(namespace: argparse.Namespace) -> Request:
    expand = namespace.expand
    if expand < -1 or expand == 0 or expand > 4:
        raise UsageError("-x must be 1..4 or -1, got %d" % expand)
    return {"expand": expand, "verbose": namespace.verbose, "raw": namespace.raw}
