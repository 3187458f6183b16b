"""What crosses the wire for ``reload`` (both sides)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Literal, Optional, TypedDict

    class ReloadRequest(TypedDict):
        module: str
        cls: Optional[str]
        method: str

    class Reloaded(TypedDict):
        kind: Literal["reloaded"]
        target: str  # module.Class.method
        file: str  # the source file the new code was compiled from
        line: int  # the function's first line in it now
        changed: bool  # False: the file holds the same code as the function had
        hooked: bool  # a watch/trace/tt hook was on it and stays, running the new code
