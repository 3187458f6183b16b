"""``module`` in the target: which loaded module was loaded from a file."""

from __future__ import annotations

import os
import sys
import types

from ...services.context import JobContext
from ...services.describe import is_a

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from .model import ModuleRequest


def run(request: ModuleRequest, ctx: JobContext) -> None:
    wanted = _canonical(request["path"])
    stem = _stem(wanted)
    matches = []
    for name, module in list(sys.modules.items()):
        if not is_a(module, types.ModuleType) or not is_a(name, str):
            continue  # a proxy of the program's: its __class__ or __getattr__ may raise or block
        # from the module's own dict: a missing __file__ would run a module's __getattr__ (PEP 562)
        filename = _MODULE_DICT.__get__(module).get("__file__")
        if not is_a(filename, str) or name.startswith("_flight_profiler"):
            continue
        # realpath costs file-system calls, each a GIL round trip on a busy target: only for likely matches
        if _stem(filename) == stem and _canonical(filename) == wanted:
            matches.append(name)
    ctx.emit({"path": request["path"], "modules": sorted(matches)})


_MODULE_DICT = vars(types.ModuleType)["__dict__"]  # the getter of md_dict: no code of the module's class


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _canonical(path: str) -> str:
    path = os.path.realpath(path)
    root, ext = os.path.splitext(path)
    if ext in (".pyc", ".pyo"):
        return root + ".py"  # a module may report its cached file
    return path
