"""Command specifications (client side).

A ``CommandSpec`` is the single source of a command's name, help, arguments,
request building and rendering: ``help``, Tab completion and the parser are all
derived from it, in the shell and for ``--cmd`` alike.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator, Mapping

from ..errors import UsageError
from ..protocol.requests import RENDER_DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, NamedTuple, NoReturn, Union

    from rich.console import RenderableType

    from ..protocol.requests import RenderOptions

    Request = Dict[str, Any]
    Event = Dict[str, Any]
    Number = Union[int, float]
else:
    from ..named import NamedTuple

    Request = Event = dict  # what the aliases above stand for, for code that imports them at run time
# the names a watch/trace/tt expression may use (services/callexpr.py; trace's filter has fewer)
CALL_NAMES = ("target", "return_obj", "cost", "args", "kwargs")
LONGEST_NUMBER = 40  # characters: int() of a 5000-digit string is slow (and refused on 3.11+)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter without its ``import shutil`` (and bz2, lzma) for the terminal width.

    argparse makes a formatter for every ``add_argument``; the default one imports
    shutil each time to size the terminal, ~5 ms of every ``--cmd`` start-up.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        if width is None:
            width = terminal_columns() - 2  # what argparse does
        super().__init__(prog, indent_increment, max_help_position, width)


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``, without importing shutil."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        stdout = sys.__stdout__
        try:
            columns = os.get_terminal_size(stdout.fileno()).columns if stdout is not None else 80
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns or 80


class CommandParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so the shell goes on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError("%s: %s (see 'help %s')" % (self.prog, _named(message), self.prog))

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or "%s: invalid arguments" % self.prog)


class ToolParser(argparse.ArgumentParser):
    """The ``flight_profiler`` command line's own parser: a mistake raises one line, not argparse's
    usage block and exit, so ``main`` can say it as text or as a JSON line (``--json``), status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError("%s (%s --help lists the options)" % (_named(message), self.prog))


def _named(message: str) -> str:
    """argparse's "argument -x/--expand: must be ..." as "-x must be ..." (``number``'s messages)."""
    match = re.match(r"argument ([^\s/:]+)(?:/[^\s:]+)?: (must .*)$", message)
    return "%s %s" % match.groups() if match else message


class LocalContext(NamedTuple):
    """What a client-side command gets: the pid, the cancel flag and the agent, lazily."""

    pid: int
    cancelled: Callable[[], bool]


class CommandSpec(NamedTuple):
    name: str
    summary: str
    # the usage line's forms, in the reference's order: words, some naming options (commands/surface.py)
    forms: tuple[str, ...]
    examples: tuple[str, ...]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    # returns the command's request TypedDict (commands/<cmd>/model.py)
    to_request: Callable[[argparse.Namespace], Mapping[str, Any]]
    render: Callable[[Event], RenderableType | None]
    # "agent" commands run in the target; a command may run some requests locally
    # (stack reads the target from outside, no injection needed).
    run_local: Callable[[Request, LocalContext], Iterator[Event]] | None = None
    runs_locally: Callable[[Request], bool] = lambda request: False
    # a command read from outside whose reading was refused (py-spy needs ptrace rights: a target
    # that forbids them, with a pre-armed agent) may ask an agent that already runs instead: the
    # request for it, or None. Never a reason to inject one.
    agent_fallback: Callable[[Request], Request | None] | None = None
    changes_target: bool = False
    # what the positional arguments name, for Tab completion: "module", "class", "member", "path"
    completes: tuple[str, ...] = ()
    interactive: bool = False
    extra: dict[str, Any] = {}
    # the skill's option table: (name, meaning[, default in words]) per row, in its order (commands/surface.py)
    option_docs: tuple[tuple[str, ...], ...] = ()
    # the forms README and the skill's Usage block show (main options only), and README's "what it does"
    # cell (commands/surface.py)
    main_forms: tuple[str, ...] = ()
    overview: str = ""
    # a look at the words before argparse converts them, for a rule the parser cannot say well
    # (gilstat: "off takes no arguments", not the number parser's complaint about a word after it)
    check_words: Callable[[list[str]], None] | None = None

    @property
    def usage(self) -> str:
        """The usage line, rendered from ``forms`` and the parser."""
        from .surface import usage

        return usage(self)

    def parser(self) -> CommandParser:
        parser = CommandParser(prog=self.name, description=self.summary, add_help=False)
        self.add_arguments(parser)
        return parser

    def parse(self, argv: list[str], parser: CommandParser | None = None) -> Request:
        if self.check_words is not None:
            self.check_words(argv)
        namespace = (parser or self.parser()).parse_args(argv)
        return dict(self.to_request(namespace))

    def parse_line(self, rest: str) -> Request:
        """Parse the text after the command name, expressions taken as typed (``split_arguments``)."""
        parser = self.parser()  # one parser for both steps: each costs --cmd's start-up a few hundred µs
        return self.parse(split_arguments(rest, parser), parser)


def given_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The ``dest`` of every option ``argv`` gives, defaults left out: a parse in which every default is
    a marker. For a rule on options that mean nothing in some mode (``tt -l -x 3``), whose defaults
    cannot be told from a value typed."""
    unset = object()
    parser.set_defaults(**{action.dest: unset for action in parser._actions if action.dest != argparse.SUPPRESS})
    namespace = parser.parse_args(argv)
    return {dest for dest, value in vars(namespace).items() if value is not unset}


EXPRESSION = "flight_profiler_expression"  # marks an argparse action whose value is Python source


def add_expression_argument(parser: argparse.ArgumentParser, *flags: str, **kwargs: Any) -> argparse.Action:
    """An option whose value is a Python expression: on a command line it takes the text up to the
    next option of the command as typed, quotes and spaces included (``split_arguments``)."""
    action = parser.add_argument(*flags, **kwargs)
    setattr(action, EXPRESSION, True)
    return action


# builtins of interpreters newer than the client's may appear in expressions for a newer target
_NEWER_BUILTINS = frozenset(
    ("aiter", "anext", "EncodingWarning", "BaseExceptionGroup", "ExceptionGroup", "PythonFinalizationError")
)


def check_expression(source: str | None, names: tuple[str, ...], option: str) -> str | None:
    """``source`` unchanged, or a UsageError when it cannot be what the user meant: it mentions a
    name that it cannot see in the target (only ``names`` and builtins are visible there), so
    every evaluation would raise NameError - typically a shell ate its quotes
    (``args[0][query]==hello``). Said once, before anything is hooked. Source this Python cannot
    parse is left to the target's compiler (it may be newer syntax)."""
    if not source:
        return source
    import ast
    import builtins

    try:
        tree = ast.parse(source, "<expression>", "eval")
    except (SyntaxError, ValueError):
        return source
    bound = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)}
    bound.update(arg.arg for node in ast.walk(tree) if isinstance(node, ast.Lambda) for arg in _lambda_args(node))
    known = bound | set(names) | set(dir(builtins)) | _NEWER_BUILTINS
    unknown = sorted({node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id not in known})
    if unknown:
        raise UsageError(
            "%s %s uses %s, which it cannot see in the target (it sees %s and builtins); "
            "every call would raise NameError - were quotes lost?"
            % (option, source, ", ".join(unknown), ", ".join(names))
        )
    return source


def _lambda_args(node: Any) -> list[Any]:
    spec = node.args
    extra = [arg for arg in (spec.vararg, spec.kwarg) if arg is not None]
    return [*getattr(spec, "posonlyargs", []), *spec.args, *spec.kwonlyargs, *extra]


def split_command(line: str) -> tuple[str, str]:
    """The command name and the rest of the line, untouched."""
    spans = _token_spans(line)
    if not spans:
        return "", ""
    start, end = spans[0]
    return _unquote(line[start:end]), line[end:]


def split_arguments(text: str, parser: argparse.ArgumentParser) -> list[str]:
    """``text`` as argv, the way people type the seeds' examples.

    Words are split like a POSIX shell does (quotes group and are removed), except the value of an
    expression option (``-f``, ``--expr``...): it runs from the next word up to the next word that
    is one of the command's options, outside brackets, and is kept verbatim, so that
    ``-f args[0]["query"]=='hello'`` and ``-e [i.host for i in instances]`` reach Python as typed.
    A value that is one quoted word (``-f "cost > 10"``) loses its quotes, as in a shell."""
    options = parser._option_string_actions  # argparse has no public accessor
    spans = _token_spans(text)
    argv: list[str] = []
    index = 0
    while index < len(spans):
        start, end = spans[index]
        word = text[start:end]
        index += 1
        action = options.get(word)
        if action is None or not getattr(action, EXPRESSION, False) or index >= len(spans):
            argv.append(_unquote(word))
            continue
        last = index
        depth = _depth(text[spans[index][0] : spans[index][1]])
        while last + 1 < len(spans):
            following = text[spans[last + 1][0] : spans[last + 1][1]]
            if depth <= 0 and _is_option(following, options):
                break
            last += 1
            depth += _depth(following)
        value = _expression_value(text[spans[index][0] : spans[last][1]])
        argv.append(_joined(action, value))
        index = last + 1
    return argv


def _is_option(word: str, options: dict[str, argparse.Action]) -> bool:
    return word in options or (word.startswith("--") and word.split("=", 1)[0] in options)


def _joined(action: argparse.Action, value: str) -> str:
    """``--name=value``: argparse then never mistakes a value that starts with "-" for an option."""
    longs = [flag for flag in action.option_strings if flag.startswith("--")]
    if longs:
        return "%s=%s" % (longs[0], value)
    return action.option_strings[0] + value


def _expression_value(raw: str) -> str:
    if raw[:1] in ("'", '"'):
        import shlex

        try:
            words = shlex.split(raw)
        except ValueError:
            return raw
        if len(words) == 1:
            return words[0]
    return raw


def _unquote(word: str) -> str:
    if not _QUOTING.intersection(word):
        return word  # what shlex.split gives a word without quotes or backslashes (it has no white space)
    import shlex

    try:
        words = shlex.split(word)
    except ValueError as exc:
        raise UsageError("cannot parse %r: %s" % (word, exc)) from None
    return words[0] if words else ""


_QUOTING = frozenset("'\"\\")  # what POSIX shlex treats specially inside a word (no commenters in split)


def _token_spans(text: str) -> list[tuple[int, int]]:
    """Where each shell word of ``text`` starts and ends (quotes and backslashes as in POSIX sh)."""
    spans: list[tuple[int, int]] = []
    index, size = 0, len(text)
    while index < size:
        if text[index].isspace():
            index += 1
            continue
        start = index
        while index < size and not text[index].isspace():
            index = _past_char(text, index)
        spans.append((start, index))
    return spans


def _past_char(text: str, index: int) -> int:
    """The index after the character (or quoted run) at ``index``."""
    char = text[index]
    if char == "\\":
        return min(index + 2, len(text))
    if char not in ("'", '"'):
        return index + 1
    scan = index + 1
    while scan < len(text) and text[scan] != char:
        scan += 2 if char == '"' and text[scan] == "\\" else 1
    if scan >= len(text):
        raise UsageError("cannot parse the line: no closing quote (%s) in %r" % (char, text[index:]))
    return scan + 1


def _depth(word: str) -> int:
    """How many brackets ``word`` leaves open, outside quotes (the value goes on while any is)."""
    depth, index = 0, 0
    while index < len(word):
        char = word[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char in ("'", '"', "\\"):
            try:
                index = _past_char(word, index)
            except UsageError:
                return depth
            continue
        index += 1
    return depth


def number(
    kind: type = float,
    minimum: Number | None = None,
    maximum: Number | None = None,
    *,
    above: bool = False,
    special: tuple[Number, ...] = (),
    note: str = "",
) -> NumberType:
    """The argparse ``type`` of every numeric option: a finite ``kind`` (int or float) between
    ``minimum`` (excluded when ``above``) and ``maximum``, or one of ``special`` (``note`` says
    what they mean). inf and nan are refused: an option that means "no limit" has a value for
    that. ``CommandParser.error`` puts the option's name in front: "-i must be > 0 and <= 3600"."""
    return NumberType(kind, minimum, maximum, above, special, note)


class NumberType:
    """What ``number`` returns: the parser of one numeric option, which also says its range, so that the
    surfaces generated from the parser (the MCP tools' schema) offer exactly what it accepts."""

    def __init__(
        self,
        kind: type,
        minimum: Number | None,
        maximum: Number | None,
        above: bool,
        special: tuple[Number, ...],
        note: str,
    ) -> None:
        self.kind, self.minimum, self.maximum, self.above, self.special = kind, minimum, maximum, above, special
        self.wanted = _wanted(kind, minimum, maximum, above) + _special(special, note)
        self.__name__ = kind.__name__  # what argparse names the type in its own messages

    def __call__(self, text: str) -> Number:
        what = "a whole number" if self.kind is int else "a finite number"
        try:
            if len(text) > LONGEST_NUMBER:
                raise ValueError(text)
            value = self.kind(text)
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError("must be %s, got %r" % (what, text)) from None
        if value in self.special:
            return value  # type: ignore[no-any-return]
        if not _isfinite(value):
            raise argparse.ArgumentTypeError("must be %s, got %r" % (what, text))
        if not self.accepts(value):
            raise argparse.ArgumentTypeError("%s, got %r" % (self.wanted, text))
        return value  # type: ignore[no-any-return]

    def accepts(self, value: Number) -> bool:
        """``value`` is in the range (or one of the special values)."""
        if value in self.special:
            return True
        minimum, maximum = self.minimum, self.maximum
        low_ok = minimum is None or (value > minimum if self.above else value >= minimum)
        return low_ok and (maximum is None or value <= maximum)


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


def _isfinite(value: Number) -> bool:
    import math  # only options given a number: not every --cmd's start-up

    return math.isfinite(value)


def _plain(value: Number | None) -> str:
    return "%g" % value if isinstance(value, float) else str(value)


def add_render_options(parser: argparse.ArgumentParser, deepest: int = 4) -> None:
    """The value-display options shared by every command that shows objects (vmtool: -x up to 6)."""
    parser.add_argument(
        "-x",
        "--expand",
        metavar="N",
        type=number(int, 1, deepest, special=(-1,), note="deepest"),
        default=RENDER_DEFAULTS["expand"],
        help="depth to expand objects (default %d, max %d, -1 deepest)" % (RENDER_DEFAULTS["expand"], deepest),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show all items of containers and long strings")
    parser.add_argument("-r", "--raw", action="store_true", help="show repr() of values instead of a tree")


def render_options(namespace: argparse.Namespace) -> RenderOptions:
    expand = namespace.expand
    if expand < -1 or expand == 0:
        raise UsageError("-x must be at least 1 or -1, got %d" % expand)
    return {"expand": expand, "verbose": namespace.verbose, "raw": namespace.raw}
