"""``flight_profiler`` entry point: argument wiring only."""

from __future__ import annotations

import argparse
import gc
import os
import sys

from .. import __version__
from ..attach.attacher import AttachOptions
from ..commands.spec import HelpFormatter, ToolParser, number
from ..errors import FlightProfilerError, UsageError
from ..fleet import wants_fleet
from .output import Output
from .registry import SUBCOMMAND_NAMES
from .runner import Detached, Runner

TYPE_CHECKING = False  # typing costs every --cmd's start-up (issue 14): names for mypy only
if TYPE_CHECKING:
    from typing import Protocol, TextIO

    class Batchable(Protocol):
        """What ``run_batch`` needs: one target's Runner, or a group's Fleet."""

        def execute(self, line: str) -> bool: ...

        def close(self) -> None: ...


def build_parser() -> argparse.ArgumentParser:
    parser = ToolParser(
        prog="flight_profiler",
        formatter_class=HelpFormatter,
        description="Look inside a running CPython process without restarting it.",
        epilog="'flight_profiler demo' starts a sample service and opens the shell on it; 'flight_profiler ps' "
        "lists the Python processes you can attach to; 'install-skills' and 'mcp' serve AI agents. "
        "--tree PID, --select PATTERN, -p PID,PID or --all: one command over a group ('--all --help').",
    )
    parser.add_argument("target", help="pid of the Python process, 'demo', or one of: ps, install-skills, mcp")
    parser.add_argument(
        "--cmd",
        type=_command_line,
        help='run one command and exit (e.g. --cmd "stack"); without it and with no terminal, '
        "the commands on stdin, one per line, in one session",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON lines (for scripts and AI agents)")
    parser.add_argument("--no-color", action="store_true", help="plain text output (NO_COLOR is honoured too)")
    parser.add_argument(
        "--timeout",
        type=number(float, 0, above=True),
        default=30.0,
        help="seconds to wait for the agent to start, and for its goodbye on detach (default 30; a stuck GIL "
        "is reported after about 3 s)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="attach even if the target opted out of remote debugging or is close to its cgroup's memory limit",
    )
    parser.add_argument("--debug", action="store_true", help="explain each attach step on stderr")
    parser.add_argument("--version", action="version", version="flight_profiler %s" % __version__)
    return parser


def _command_line(text: str) -> str:
    """``--cmd ""`` (an unset variable in a script) ran nothing and exited 0, for any pid, even one that
    names no process: a script read that as success."""
    if not text.strip():
        raise argparse.ArgumentTypeError('is empty: give a command, e.g. --cmd "stack"')
    return text


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    _untranslated_argparse()
    if words and words[0] in SUBCOMMAND_NAMES:  # subcommands that need no pid have their own options
        from .subcommands import subcommand

        return subcommand(words[0]).main(words[1:])
    if wants_fleet(words):  # --tree/--select/-p/--all: the same command over a group (fleet/)
        from ..fleet.cli import main as fleet_main

        return fleet_main(words)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        return usage_error(words, exc)
    output = Output(args.json, color=not args.no_color)
    if args.target == "demo":
        from .demo import run_demo

        return run_demo(output, args)
    try:
        pid = _pid(args.target)
    except UsageError as exc:
        output.error(None, str(exc))
        return exc.exit_code
    options = AttachOptions(timeout=args.timeout, force=args.force, log=output.note if args.debug else _quiet)
    runner = Runner(pid, output, options)
    if args.cmd is None:
        if not sys.stdin.isatty():  # a script on stdin (a runbook, an agent's batch): one session for all
            return run_batch(runner, sys.stdin, output)
        if args.json:
            output.error(None, 'no terminal for the shell: use --cmd "<command>", or give commands on stdin')
            return 2
        from .shell import run_shell

        return run_shell(runner)
    return run_once(runner, args.cmd)


def usage_error(words: list[str], exc: UsageError) -> int:
    """A mistake on the command line itself: one line (a JSON line with ``--json``), status 2."""
    Output("--json" in words, color="--no-color" not in words).error(None, str(exc))
    return exc.exit_code


def run_once(runner: Runner, line: str) -> int:
    """Exit status as the attach skill documents it: 0 done, 1 failed (a usage error, an attach
    failure, an expression, filter or statement that raised), 130 stopped with Ctrl-C (141, the
    output's reader gone, is the entry's)."""
    if line.split()[:1] in (["quit"], ["exit"]):  # as the shell reads them ("quit now" too)
        return 0  # nothing to run: the agent, if any, stays (detach removes it)
    try:
        ok = runner.execute(_console_from_stdin(line))
    except Detached as done:
        return 0 if done.confirmed else 1
    except KeyboardInterrupt:
        return 130
    finally:
        runner.close()
    if runner.interrupted:
        return 130
    return 0 if ok else 1


MAX_SCRIPT_LINE = 1 << 20  # characters of one line of a script on stdin


def run_batch(runner: Batchable, stream: TextIO, output: Output) -> int:
    """The commands of a script on stdin, one per line, in one session (one attach) and in order, as
    the shell would run them: blank lines and ``#`` comments skipped, ``exit``/``quit`` and ``detach``
    end it. Each command reports as with ``--cmd`` (a ``--json`` line per result or error); a failed one
    does not stop the rest. Exit status: 0 all done, 1 any failed (or a detach not confirmed), 2 no
    command at all or a line past 1 MiB (it and the rest not run), 130 Ctrl-C. ``runner``: one target's
    Runner, or a group's Fleet (``fleet/cli.py``)."""
    failed, commands = False, 0
    try:
        for line in iter(lambda: stream.readline(MAX_SCRIPT_LINE + 1), ""):
            if len(line) > MAX_SCRIPT_LINE:
                output.error(None, "a line on stdin is over %d characters: stopped there" % MAX_SCRIPT_LINE)
                return 2
            command = line.strip()
            if not command or command.startswith("#"):
                continue
            commands += 1
            first = command.split()[:1]
            if first in (["quit"], ["exit"]):
                break
            if _needs_a_terminal(command):
                output.error(None, "%s reads its input from the terminal: in a script, give -c CODE" % command)
                failed = True
                continue
            try:
                failed |= not runner.execute(command)
            except Detached as done:  # one target's detach
                return 0 if done.confirmed and not failed else 1
            if getattr(runner, "interrupted", False):
                return 130
            if first == ["detach"]:  # a group's: the next command would attach again
                return 1 if failed else 0
    except KeyboardInterrupt:
        return 130
    finally:
        runner.close()
    if not commands:  # `flight_profiler PID` where stdin is no terminal (ssh without -t, a CI job)
        output.error(None, 'no terminal for the shell and no command on stdin: use --cmd "<command>"')
        return 2
    return 1 if failed else 0


def _needs_a_terminal(command: str) -> bool:
    """``console`` without ``-c``: in a script its input would be the script's next lines."""
    from ..commands.spec import split_command
    from .runner import parse_command

    try:
        spec, request = parse_command(*split_command(command))
    except FlightProfilerError:
        return False  # help, detach, or a mistake that running it reports
    return bool(spec.interactive and not request.get("source"))


def _console_from_stdin(line: str) -> str:
    """``--cmd console`` with piped input runs that input once."""
    if line.strip() == "console" and not sys.stdin.isatty():
        import shlex

        return "console -c %s" % shlex.quote(sys.stdin.read())
    return line


def _pid(text: str) -> int:
    try:
        pid = int(text)
    except ValueError:
        raise UsageError("%r is not a pid (or 'demo'); 'flight_profiler ps' lists Python processes" % text) from None
    if pid <= 0:
        raise UsageError("%r is not a pid" % text)
    return pid


def _quiet(message: str) -> None:
    pass


# where gettext looks for a language's catalog (its find()); "/" in one makes its path absolute
_LANGUAGE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def _untranslated_argparse() -> None:
    """argparse passes each of its labels through gettext, which imports locale (~1 ms of every
    ``--cmd``, issue 14) and looks for catalog files at each call. Where no catalog can be found (the
    interpreter has no locale directory and no language variable names a path) gettext returns every
    message as it is: argparse then gets the same text without the look-ups."""
    import gettext

    localedir = getattr(gettext, "_default_localedir", None)
    if not isinstance(localedir, str) or os.path.isdir(localedir):
        return  # a catalog may exist: argparse asks gettext as usual
    if any("/" in os.environ.get(name, "") for name in _LANGUAGE_VARIABLES):
        return
    setattr(argparse, "_", _gettext)  # noqa: B010 - argparse's module globals: its stubs do not name them
    setattr(argparse, "ngettext", _ngettext)  # noqa: B010


def _catalogs_bound() -> bool:
    """Someone bound a catalog directory or changed the domain since: gettext must look again."""
    import gettext

    return bool(getattr(gettext, "_localedirs", True)) or getattr(gettext, "_current_domain", "") != "messages"


def _gettext(message: str) -> str:
    if _catalogs_bound():
        import gettext

        return gettext.gettext(message)
    return message


def _ngettext(singular: str, plural: str, n: int) -> str:
    if _catalogs_bound():
        import gettext

        return gettext.ngettext(singular, plural, n)
    return singular if n == 1 else plural


def entry() -> None:
    # what the imports made lives as long as the process: the collector need not look at it again, in
    # a long session nor at exit, where that full collection was ~5 ms of a --cmd's CPU (issue 14)
    gc.freeze()
    try:
        sys.exit(main())
    except FlightProfilerError as exc:
        from ..render.safe import safe_line

        print("error: %s" % safe_line(exc), file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # whoever read our output has gone (`--cmd ... | head -1`): stop quietly with SIGPIPE's status, as
        # other tools do; the session ended on the way out (a running job's hooks go with its connection)
        _output_closed()
        sys.exit(141)
    except Exception as exc:  # a bug of ours: one line, never a traceback (--debug shows it)
        if "--debug" in sys.argv:
            raise
        from ..render.safe import safe_line

        print(
            "error: internal error: %s: %s (a bug in flight_profiler; --debug shows where)"
            % (type(exc).__name__, safe_line(str(exc))),
            file=sys.stderr,
        )
        sys.exit(1)


def _output_closed() -> None:
    """Point stdout at /dev/null: the interpreter's last flush of what is buffered for the closed pipe would
    fail again at exit and print its own complaint."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
