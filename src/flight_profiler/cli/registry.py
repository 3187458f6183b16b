"""Explicit list of the commands the CLI knows (client side)."""

from __future__ import annotations

from ..commands.complete.client import SPEC as COMPLETE
from ..commands.console.client import SPEC as CONSOLE
from ..commands.getglobal.client import SPEC as GETGLOBAL
from ..commands.module.client import SPEC as MODULE
from ..commands.spec import CommandSpec
from ..commands.stack.client import SPEC as STACK
from ..commands.vmtool.client import SPEC as VMTOOL

COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in (STACK, GETGLOBAL, VMTOOL, MODULE, CONSOLE, COMPLETE)}

# handled by the shell itself, not by a command folder
BUILTINS: dict[str, str] = {
    "help": "Show the commands, or one command's options: help [command]",
    "detach": "Remove the agent and every hook from the target, then leave",
    "quit": "Leave the shell; the agent stays for the next session (use detach to remove it)",
    "exit": "Same as quit",
}


def visible() -> list[CommandSpec]:
    return [spec for spec in COMMANDS.values() if not spec.extra.get("hidden")]
