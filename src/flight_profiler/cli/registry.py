"""Explicit list of the commands the CLI knows (client side).

Each entry names the module holding the command's ``SPEC``; a module is imported
only when its command is used, so ``--cmd`` pays for one command, not all of them.
To add a command: one line in COMMANDS.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..commands.spec import CommandSpec

COMMANDS: dict[str, str] = {
    "stack": "flight_profiler.commands.stack.client",
    "getglobal": "flight_profiler.commands.getglobal.client",
    "vmtool": "flight_profiler.commands.vmtool.client",
    "module": "flight_profiler.commands.module.client",
    "console": "flight_profiler.commands.console.client",
    "complete": "flight_profiler.commands.complete.client",
    "watch": "flight_profiler.commands.watch.client",
    "trace": "flight_profiler.commands.trace.client",
    "tt": "flight_profiler.commands.tt.client",
    "reload": "flight_profiler.commands.reload.client",
    "mem": "flight_profiler.commands.mem.client",
    "perf": "flight_profiler.commands.perf.client",
    "gilstat": "flight_profiler.commands.gilstat.client",
    "torch": "flight_profiler.commands.torch.client",
    "thread": "flight_profiler.commands.thread.client",
    "monitor": "flight_profiler.commands.monitor.client",
    "logger": "flight_profiler.commands.logger.client",
    "sc": "flight_profiler.commands.sc.client",
    "sm": "flight_profiler.commands.sm.client",
    "source": "flight_profiler.commands.source.client",
    "line": "flight_profiler.commands.line.client",
    "dashboard": "flight_profiler.commands.dashboard.client",
}

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
