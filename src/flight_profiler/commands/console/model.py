"""What crosses the wire for ``console`` (both sides)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import TypedDict

    class ConsoleRequest(TypedDict, total=False):
        source: str  # -c: run once; without it the shell sends one request per line typed
