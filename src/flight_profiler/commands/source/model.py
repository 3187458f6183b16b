"""What crosses the wire for ``source`` (both sides)."""

from __future__ import annotations

MAX_LINES = 2000  # lines shown at most; the rest are counted
MAX_BYTES = 8 * 1024 * 1024  # a source file larger than this is not read
MAX_DIFFERING = 50  # names listed as differing from the file

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import List, Optional, TypedDict

    class SourceRequest(TypedDict):
        module: str
        names: List[str]  # [], [class or function], [class, method]

    class SourceResult(TypedDict):
        target: str  # module[.Class[.method]]
        what: str  # module, class, function, method, ...
        file: str
        start: int  # line number of lines[0]
        lines: List[str]
        more: int  # lines not shown
        status: str  # "matches": the running code is the file's; "differs"; "unknown" (not found on disk)
        differing: List[str]  # names whose running code is not the file's (status "differs")
        moved: Optional[int]  # functions: line of the definition when it was loaded, if the file has it elsewhere
