"""Explicit map from command name to its agent half (runs in the target).

Modules are imported on first use so an idle agent stays small.
"""

from __future__ import annotations

import sys

from .. import commands
from ..services.context import CommandFailed, JobContext

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable, Dict

    Handler = Callable[[Dict[str, Any], JobContext], None]


# command name -> module (relative to the package root) exposing ``run``
HANDLERS: dict[str, str] = {
    name: ".commands.%s.agent" % name for name in commands.COMMANDS if name not in commands.CLIENT_ONLY
}


# Short commands run on the session's own thread and answer in one write: a new
# thread and separate writes each cost a GIL round trip, which on a target whose
# threads fight for the GIL is ~100 ms apiece. Everything else gets a job thread.
QUICK: frozenset[str] = frozenset({"getglobal", "vmtool", "module", "complete", "sc", "sm"})


def handler_for(command: str, package: str) -> Handler:
    """Return the ``run`` function of ``command``'s agent half."""
    module_name = HANDLERS.get(command)
    if module_name is None:
        raise CommandFailed("unknown command %r" % command)
    fullname = package + module_name
    __import__(fullname)  # not importlib.import_module: importing importlib costs file reads
    run: Handler = sys.modules[fullname].run
    return run
