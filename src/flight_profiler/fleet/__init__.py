"""One command over many processes: selection, a capped concurrent runner, merged views (client side).

This package sits above ``cli/runner.py`` and ``discovery/``: it builds one ``Runner`` per target
and merges what they produce. Commands know nothing of it; ``fleet/merge.py`` holds the merged
views of the few commands that have one. Importing this module costs nothing: ``cli/main.py``
asks ``wants_fleet`` on every start.
"""

from __future__ import annotations

# the options that make a command line a group command (their values follow them)
SELECTORS = ("--tree", "--select", "-p", "--pids", "--all")
_TAKES_VALUE = ("--cmd", "--timeout", "--tree", "--select", "-p", "--pids", "--concurrency")


def wants_fleet(words: list[str]) -> bool:
    """Whether the command line selects a group of processes (``--tree``, ``--select``, ``-p``, ``--all``)."""
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        name = word.split("=", 1)[0]
        if name in SELECTORS or (word.startswith("-p") and word[2:3].isdigit()):
            return True
        skip = word in _TAKES_VALUE
    return False
