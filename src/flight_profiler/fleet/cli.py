"""``flight_profiler --tree PID | --select PATTERN | -p PID,PID | --all [--cmd …]``: a command over a group.

The options are the single-target ones (``cli/main.build_parser``) plus the selectors and
``--concurrency``; ``cli/main.py`` hands a command line here when ``wants_fleet`` says so.
"""

from __future__ import annotations

import argparse
import sys

from ..attach.attacher import AttachOptions
from ..cli.main import _console_from_stdin, _pid, build_parser, usage_error
from ..cli.output import Output
from ..commands.spec import number
from ..errors import FlightProfilerError, UsageError
from .runner import DEFAULT_CONCURRENCY, Fleet
from .select import Selection, parse_pids, select
from .sink import Sink

MAX_CONCURRENCY = 64


def fleet_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    for action in parser._actions:  # a pid given too joins the group
        if action.dest == "target":
            action.nargs, action.required, action.default = "?", False, None
    group = parser.add_argument_group("groups of processes (one command on each, results merged)")
    group.add_argument("--tree", type=number(int, 1), metavar="PID", help="the process and its Python descendants")
    group.add_argument("--select", metavar="PATTERN", help="attachable processes whose command line matches (regex)")
    group.add_argument("-p", "--pids", metavar="PID,PID", help="these processes")
    group.add_argument("--all", action="store_true", help="every attachable Python process of yours")
    group.add_argument(
        "--concurrency",
        type=number(int, 1, MAX_CONCURRENCY),
        default=DEFAULT_CONCURRENCY,
        help="attach to at most this many processes at a time (default %d)" % DEFAULT_CONCURRENCY,
    )
    return parser


def main(words: list[str]) -> int:
    try:
        args = fleet_parser().parse_args(words)
    except UsageError as exc:
        return usage_error(words, exc)
    output = Output(args.json, color=not args.no_color)
    try:
        selection = Selection(
            tree=args.tree,
            pattern=args.select,
            pids=_pids(args),
            everything=args.all,
        )
        targets = select(selection)
    except FlightProfilerError as exc:
        output.error(None, str(exc))
        return exc.exit_code
    options = AttachOptions(timeout=args.timeout, force=args.force, log=output.note if args.debug else _quiet)
    fleet = Fleet(targets, Sink(output), options, args.concurrency)
    if args.cmd is None:
        if not sys.stdin.isatty():  # a script on stdin: each command over the group, in order
            from ..cli.main import run_batch

            return run_batch(fleet, sys.stdin, output)
        if args.json:
            output.error(None, 'no terminal for the shell: use --cmd "<command>", or give commands on stdin')
            return 2
        from .shell import run_group_shell

        return run_group_shell(fleet)
    try:
        return 0 if fleet.execute(_console_from_stdin(args.cmd)) else 1
    except KeyboardInterrupt:
        return 130
    finally:
        fleet.close()


def _pids(args: argparse.Namespace) -> list[int]:
    """``-p`` and a pid given as the single-target positional: both join the group."""
    pids = parse_pids(args.pids) if args.pids is not None else []
    return pids + ([_pid(args.target)] if args.target else [])


def _quiet(message: str) -> None:
    pass
