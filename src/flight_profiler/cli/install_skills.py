"""``flight_profiler install-skills``: copy the skill files where coding agents look for them."""

from __future__ import annotations

import argparse
import os
import shutil
from typing import TYPE_CHECKING, Any

from ..commands.outfile import vet_path
from ..errors import UsageError
from ..skills import skills
from .subcommands import Subcommand, add_output_options, make_output

if TYPE_CHECKING:
    from rich.console import RenderableType

DEFAULT_DIRS = ("~/.claude/skills", "~/.agent/skills")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        action="append",
        metavar="D",
        help="install into D instead of ~/.claude/skills and ~/.agent/skills (repeatable)",
    )
    add_output_options(parser)


def install(dirs: list[str]) -> dict[str, Any]:
    """Copy every skill folder into each of ``dirs``; our own folders are replaced whole."""
    installed = []
    for base in (os.path.abspath(os.path.expanduser(d)) for d in dirs):
        existing = base
        while not os.path.lexists(existing):
            existing = os.path.dirname(existing)
        vet_path(os.path.join(existing, "-"))  # what we remove and copy there, nobody else can swap for a link
        for skill in skills():
            dest = os.path.join(base, skill.name)
            if os.path.isdir(dest):
                shutil.rmtree(dest)  # only folders named like our skills: an older copy of ours
            shutil.copytree(os.path.dirname(skill.path), dest, ignore=shutil.ignore_patterns("__pycache__"))
            installed.append({"skill": skill.name, "path": os.path.join(dest, "SKILL.md")})
    return {"dirs": [os.path.abspath(os.path.expanduser(d)) for d in dirs], "installed": installed}


def render(result: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    lines = [Text("installed %d skill file(s):" % len(result["installed"]), style="bold")]
    lines += [Text("  %s" % item["path"]) for item in result["installed"]]
    return Group(*lines)


def _run(args: argparse.Namespace) -> int:
    output = make_output(args)
    try:
        result = install(args.dir or list(DEFAULT_DIRS))
    except (OSError, UsageError) as exc:  # UsageError: a directory another user controls (outfile.vet_path)
        output.error("install-skills", "cannot install the skills: %s" % exc)
        return 1
    output.result("install-skills", result, None if output.as_json else render(result))
    return 0


SUBCOMMAND = Subcommand(
    name="install-skills",
    summary="Install the flight_profiler skill files for AI coding agents (Claude Code and others).",
    add_arguments=_add_arguments,
    run=_run,
)
