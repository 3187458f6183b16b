"""Names for Tab completion, asked from the target (runs in the target).

Reads ``sys.modules`` and namespaces only: never imports anything.
"""

from __future__ import annotations

import sys

from ...services.context import JobContext
from ..sc.agent import namespace

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

    from .model import CompleteRequest


LIMIT = 200


def run(request: CompleteRequest, ctx: JobContext) -> None:
    prefix = request.get("prefix", "")
    if request.get("kind") == "module":
        names = [name for name in list(sys.modules) if not name.startswith("_flight_profiler")]
    else:
        names = _members(request.get("module", ""), request.get("cls"))
    ctx.emit({"names": sorted(name for name in names if name.startswith(prefix))[:LIMIT]})


def _members(module_name: str, cls: str | None) -> list[str]:
    # namespaces only, read without running any of the program's code: getattr ran a module's
    # __getattr__ (one that never returns held the session's thread for good), vars() a __dict__ property
    owner: Any = sys.modules.get(module_name)
    if owner is not None and cls:
        owner = namespace(owner).get(cls)
    if owner is None:
        return []
    return [str(name) for name in namespace(owner)]
