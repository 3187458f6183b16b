"""The interactive shell (prompt_toolkit): history, Tab completion, Ctrl-C/Ctrl-D.

The shell outlives its agent. When the target exits or another client detaches the agent,
the next command says so in one line; then, if the target is still there, the shell asks
"re-attach to pid N? [y/N]" (yes: a new agent now; no: the shell ends with status 1),
and if it is gone the shell ends with status 1. Completion in that state offers nothing.
"""

from __future__ import annotations

import argparse
import codeop
import datetime
import os
import shlex
import stat
from collections.abc import Iterable

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.renderer import CPR_Support

from ..commands.console.client import SPEC as CONSOLE
from ..errors import FlightProfilerError
from .registry import BUILTINS, get, visible
from .runner import ALIASES, Detached, Runner

HISTORY = os.path.expanduser("~/.flight_profiler_history")


class CommandCompleter(Completer):
    """Commands, their options, and names the target knows (asked from the agent)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = text.split()
        current = "" if text.endswith(" ") else (words[-1] if words else "")
        done = words if text.endswith(" ") else words[:-1]
        try:
            candidates = self._candidates(done, current)
        except Exception:  # noqa: BLE001 - a completer that raises makes prompt_toolkit print a traceback
            candidates = []
        for candidate in candidates:
            yield Completion(candidate, start_position=-len(current))

    def _candidates(self, done: list[str], current: str) -> list[str]:
        if not done:
            names = [spec.name for spec in visible()] + list(BUILTINS) + list(ALIASES)
            return sorted(name for name in names if name.startswith(current))
        spec = get(ALIASES.get(done[0], done[0]))
        if spec is None:
            return []
        parser = spec.parser()
        if current.startswith("-"):
            options = [opt for action in parser._actions for opt in action.option_strings]
            return sorted(opt for opt in options if opt.startswith(current))
        positionals = [w for w in done[1:] if not w.startswith("-")]
        choices = _choices(parser, done[1:], positionals)
        if choices is not None:
            return sorted(choice for choice in choices if choice.startswith(current))
        if _mode(parser) is not None:
            positionals = positionals[1:]  # torch profile module ...: the names come after the mode word
        return self._target_names(spec.completes, positionals, current)

    def _target_names(self, kinds: tuple[str, ...], positionals: list[str], current: str) -> list[str]:
        if not kinds or len(positionals) >= len(kinds) or kinds[len(positionals)] == "path":
            return []
        if self.runner.lost is not None:
            return []  # the agent is gone: nothing to ask, and Tab never re-attaches
        request = {"kind": "module", "prefix": current, "module": "", "cls": None}
        if positionals:
            request = {
                "kind": "member",
                "prefix": current,
                "module": positionals[0],
                "cls": positionals[1] if len(positionals) > 1 else None,
            }
        try:
            events = self.runner.connection().run("complete", request, timeout=2.0)
        except (FlightProfilerError, OSError):
            return []
        # a name that is not plain printable text (escapes, BiDi) would reach the prompt raw: not offered
        return [name for event in events for name in event["names"] if isinstance(name, str) and name.isprintable()]


def _mode(parser: argparse.ArgumentParser) -> argparse.Action | None:
    """The first positional when it picks the command's form from fixed words (mem summary|diff|top)."""
    positionals = [action for action in parser._actions if not action.option_strings]  # no public list
    return positionals[0] if positionals and positionals[0].choices else None


def _choices(parser: argparse.ArgumentParser, words: list[str], positionals: list[str]) -> list[str] | None:
    """The words the parser accepts here, when it names them: the value of an option with choices just
    typed (``--format``, ``vmtool -a``), or the mode word first (``mem``); None: any word may come."""
    if words:
        action = parser._option_string_actions.get(words[-1])  # argparse keeps no public map of them
        if action is not None and action.choices and action.nargs != 0:
            return [str(choice) for choice in action.choices]
    mode = _mode(parser)
    if mode is not None and not positionals:
        return [str(choice) for choice in mode.choices or ()]
    return None


def run_shell(runner: Runner) -> int:
    session: PromptSession[str] = PromptSession(
        history=private_history(HISTORY), completer=CommandCompleter(runner), complete_while_typing=False
    )
    runner.output.console.print(
        "flight_profiler attached to pid %d - 'help' lists commands, Ctrl-D leaves" % runner.pid
    )
    while True:
        try:
            line = _prompt(session, "flight_profiler> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        words = line.split()
        if words and words[0] in ("quit", "exit"):
            break
        try:
            if words and words[0] == "console" and len(words) == 1:
                run_console(runner)
            else:
                runner.execute(line)
        except Detached as done:
            return 0 if done.confirmed else 1
        except KeyboardInterrupt:
            runner.output.note("interrupted")
        if runner.lost is not None and not _offer_reattach(runner, session):
            return 1
    runner.close()
    return 0


def _prompt(session: PromptSession[str], message: str) -> str:
    """One line; a terminal that never answered the cursor position request is not asked again.

    prompt_toolkit asks the terminal where the cursor is (CPR) and waits up to 1 s for the answer
    when a prompt ends; it decides a terminal has no CPR only after 2 s without one within a single
    prompt. A program driving the shell through a pseudo-terminal (an AI agent, pexpect) answers
    none and sends each line sooner than that: every command cost 1 s more. After a whole prompt
    without an answer (that 1 s included), this terminal has none.
    """
    try:
        return session.prompt(message)
    finally:
        renderer = session.app.renderer
        if renderer.cpr_support == CPR_Support.UNKNOWN:
            renderer.cpr_support = CPR_Support.NOT_SUPPORTED


def _offer_reattach(runner: Runner, session: PromptSession[str]) -> bool:
    """After the agent went away (its reason is already printed): True to go on attached again."""
    if not runner.target_alive():
        return False  # "pid N exited" was the last word: nothing to re-attach to
    try:
        answer = _prompt(session, "re-attach to pid %d? [y/N] " % runner.pid)
    except (KeyboardInterrupt, EOFError):
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        return False
    try:
        runner.reattach()
    except FlightProfilerError as exc:
        runner.output.error(None, str(exc))
        return False
    except KeyboardInterrupt:
        runner.output.note("interrupted")
        return False
    runner.output.note("attached to pid %d again" % runner.pid)
    return True


def run_console(runner: Runner) -> None:
    """A remote Python REPL: lines are collected here until they form a complete statement."""
    session: PromptSession[str] = PromptSession(history=private_history(HISTORY + "_console"))
    runner.output.console.print(
        "Python console inside pid %d. Code runs in a namespace of its own that sees the target's __main__ "
        "globals as they are now; what you assign stays in the console, never in __main__. "
        "Ctrl-D or exit() returns to flight_profiler" % runner.pid
    )
    lines: list[str] = []
    while True:
        try:
            line = session.prompt("... " if lines else ">>> ")
        except KeyboardInterrupt:
            lines = []
            continue
        except EOFError:
            return
        if not lines and line.strip() in ("exit()", "quit()"):
            return
        lines.append(line)
        source = "\n".join(lines)
        if _needs_more(source):
            continue
        lines = []
        try:
            runner.run_request(CONSOLE, {"source": source})
        except FlightProfilerError as exc:
            runner.output.error("console", str(exc))
            if runner.lost is not None:
                return  # the shell offers to re-attach


def private_history(path: str) -> History:
    """The history file, readable by its owner only (the commands typed can hold secrets).

    Kept on disk only in a directory of ours that no one else may write (as root under ``sudo``
    with the user's ``HOME``, that user could otherwise swap the name for a link between our check
    and a later open: prompt_toolkit's FileHistory opens it by name for every line, following
    links, so root appended to whatever file the link named), as a regular file of ours with no
    other name (a hard link to another file), created 0600 or narrowed to it. Then read and written
    only through the descriptor opened here. Anything else: the session keeps it in memory.
    """
    try:
        directory = os.stat(os.path.dirname(path) or ".")
        if directory.st_uid != os.geteuid() or directory.st_mode & 0o022:
            return InMemoryHistory()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return InMemoryHistory()
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
        os.close(fd)
        return InMemoryHistory()
    if info.st_mode & 0o077:
        os.fchmod(fd, 0o600)
    return HeldFileHistory(fd)


class HeldFileHistory(History):
    """FileHistory's format, through one descriptor kept open: never reopened by name."""

    TAIL = 4 << 20  # bytes read back at the start: the newest entries of a history grown large

    def __init__(self, fd: int) -> None:
        self.fd = fd
        super().__init__()

    def load_history_strings(self) -> Iterable[str]:
        size = os.fstat(self.fd).st_size
        start = max(0, size - self.TAIL)
        data = os.pread(self.fd, size - start, start)
        strings: list[str] = []
        entry: list[str] = []
        for raw in data.splitlines(keepends=True)[1 if start else 0 :]:  # a cut first line is dropped
            line = raw.decode("utf-8", errors="replace")
            if line.startswith("+"):
                entry.append(line[1:])
            elif entry:
                strings.append("".join(entry)[:-1])
                entry = []
        if entry:
            strings.append("".join(entry)[:-1])
        return reversed(strings)  # newest first, as History wants them

    def store_string(self, string: str) -> None:
        text = "\n# %s\n" % datetime.datetime.now() + "".join("+%s\n" % line for line in string.split("\n"))
        try:
            os.write(self.fd, text.encode("utf-8", errors="replace"))
        except OSError:
            pass  # a full disk: the line stays in this session's memory


def _needs_more(source: str) -> bool:
    # "single", as Python's own REPL: a block ends at an empty line ("exec" ends it after its first line)
    try:
        return codeop.compile_command(source, "<console>", "single") is None
    except (SyntaxError, ValueError, OverflowError):
        return False  # let the target report the error


def quote(words: list[str]) -> str:
    return " ".join(shlex.quote(word) for word in words)
