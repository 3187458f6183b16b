"""``module`` in the target: which loaded module was loaded from a file."""

from __future__ import annotations

import os
import sys

from ...services.context import JobContext

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


def run(request: dict[str, Any], ctx: JobContext) -> None:
    wanted = _canonical(request["path"])
    matches = []
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None)
        if isinstance(filename, str) and _canonical(filename) == wanted and not name.startswith("_flight_profiler"):
            matches.append(name)
    ctx.emit({"path": request["path"], "modules": sorted(matches)})


def _canonical(path: str) -> str:
    path = os.path.realpath(path)
    root, ext = os.path.splitext(path)
    if ext in (".pyc", ".pyo"):
        return root + ".py"  # a module may report its cached file
    return path
