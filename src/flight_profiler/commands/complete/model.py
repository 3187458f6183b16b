"""What crosses the wire for ``complete``, the shell's Tab completion (both sides)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Literal, Optional, TypedDict

    class CompleteRequest(TypedDict):
        kind: Literal["module", "member"]
        prefix: str
        module: str  # member: the module whose names to list
        cls: Optional[str]  # member: the class whose names to list
