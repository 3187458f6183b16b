"""``module`` in the target: which loaded module was loaded from a file."""

from __future__ import annotations

import os
import sys

from ...services.context import JobContext

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from .model import ModuleRequest


def run(request: ModuleRequest, ctx: JobContext) -> None:
    wanted = _canonical(request["path"])
    stem = _stem(wanted)
    matches = []
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None)
        if not isinstance(filename, str) or name.startswith("_flight_profiler"):
            continue
        # realpath costs file-system calls, each a GIL round trip on a busy target: only for likely matches
        if _stem(filename) == stem and _canonical(filename) == wanted:
            matches.append(name)
    ctx.emit({"path": request["path"], "modules": sorted(matches)})


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _canonical(path: str) -> str:
    path = os.path.realpath(path)
    root, ext = os.path.splitext(path)
    if ext in (".pyc", ".pyo"):
        return root + ".py"  # a module may report its cached file
    return path
