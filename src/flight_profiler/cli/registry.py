"""Explicit list of the commands the CLI knows (client side).

Each entry names the module holding the command's ``SPEC``; a module is imported
only when its command is used, so ``--cmd`` pays for one command, not all of them.
To add a command: its folder and one entry in ``commands.COMMANDS``.
"""

from __future__ import annotations

import importlib

from .. import commands

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from ..commands.spec import CommandSpec

# the top-level subcommands (cli/subcommands.py), and the module holding each; imported only when used
SUBCOMMANDS = {
    "ps": "flight_profiler.cli.ps",
    "install-skills": "flight_profiler.cli.install_skills",
    "mcp": "flight_profiler.cli.mcp",
    "k8s": "flight_profiler.fleet.k8s",
}
SUBCOMMAND_NAMES = tuple(SUBCOMMANDS)

COMMANDS: dict[str, str] = {name: "flight_profiler.commands.%s.client" % name for name in commands.COMMANDS}

# handled by the shell itself, not by a command folder
BUILTINS: dict[str, str] = {
    "help": "Show the commands, or one command's options: help [command]",
    "detach": "Remove the agent and every hook from the target, then leave",
    "quit": "Leave the shell; the agent stays for the next session (use detach to remove it)",
    "exit": "Same as quit",
}


def get(name: str) -> CommandSpec | None:
    """The spec of command ``name``, or None when there is no such command."""
    module = COMMANDS.get(name)
    if module is None:
        return None
    spec: CommandSpec = importlib.import_module(module).SPEC
    return spec


def specs() -> list[CommandSpec]:
    """Every command's spec, hidden ones included."""
    found = [get(name) for name in COMMANDS]
    return [spec for spec in found if spec is not None]


def visible() -> list[CommandSpec]:
    return [spec for spec in specs() if not spec.extra.get("hidden")]
