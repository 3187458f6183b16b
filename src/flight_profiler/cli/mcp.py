"""``flight_profiler mcp``: serve the Model Context Protocol over stdio (for AI agents)."""

from __future__ import annotations

import argparse
import sys

from ..commands.spec import number
from .subcommands import Subcommand

MCP_MIN_PYTHON = (3, 10)  # what the official ``mcp`` SDK requires


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="refuse every call that would change a target (console, reload, tt -p, vmtool -a forceGc, gilstat, torch)",
    )
    parser.add_argument(
        "--max-timeout",
        type=number(float, 0, above=True),
        default=300.0,
        metavar="S",
        help="the longest any tool call may run, in seconds (default 300)",
    )


def _run(args: argparse.Namespace) -> int:
    if sys.version_info < MCP_MIN_PYTHON:
        print(
            "error: 'flight_profiler mcp' needs Python >= 3.10 for the mcp SDK; this flight_profiler runs on "
            "Python %d.%d: install it under a newer Python (targets can still be 3.8+)" % sys.version_info[:2],
            file=sys.stderr,
        )
        return 2
    try:
        from ..mcp.server import serve
    except ImportError as exc:
        print(
            "error: the MCP server needs the mcp package (%s): pip install 'flight_profiler[mcp]'" % exc,
            file=sys.stderr,
        )
        return 2
    if args.max_timeout <= 0:
        print("error: --max-timeout must be positive", file=sys.stderr)
        return 2
    serve(read_only=args.read_only, max_timeout=args.max_timeout)
    return 0


SUBCOMMAND = Subcommand(
    name="mcp",
    summary="Serve flight_profiler's commands as MCP tools over stdio, for AI agents (needs Python >= 3.10).",
    add_arguments=_add_arguments,
    run=_run,
)
