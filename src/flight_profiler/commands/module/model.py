"""What crosses the wire for ``module`` (both sides)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import List, TypedDict

    class ModuleRequest(TypedDict):
        path: str  # absolute: resolved against the client's working directory

    class ModuleEvent(TypedDict):
        path: str
        modules: List[str]  # the loaded modules whose file it is (none: not imported)
