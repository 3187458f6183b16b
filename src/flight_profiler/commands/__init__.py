"""One folder per command.

``<cmd>/agent.py`` runs INSIDE THE TARGET (stdlib only, Python 3.8, relative
imports); ``<cmd>/client.py`` runs in the CLI and holds the command's SPEC
(arguments, help, rendering). ``<cmd>/model.py`` types what crosses the wire.
"""

# Every command, in the order ``help`` lists them. Adding a command is its folder and one entry
# here: the client's registry (cli/registry.py) and the agent's (agent/registry.py) are made from it.
COMMANDS = (
    "stack",
    "getglobal",
    "vmtool",
    "module",
    "console",
    "complete",
    "watch",
    "trace",
    "tt",
    "reload",
    "mem",
    "perf",
    "gilstat",
    "torch",
    "thread",
    "monitor",
    "logger",
    "sc",
    "sm",
    "source",
    "line",
    "dashboard",
)
# commands with no agent half: they read the target from outside (py-spy)
CLIENT_ONLY = ("perf",)
