"""What crosses the wire for ``line`` (both sides)."""

from __future__ import annotations

DEFAULT_LIMIT = 10
DEFAULT_RATE = 20.0  # hits shown per second at most; the others are counted as skipped

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, TypedDict

    class LineRequest(TypedDict):
        module: str
        cls: Optional[str]
        method: str
        nested: Optional[str]  # -nm
        line: int  # the source line whose execution is reported
        expr: Optional[str]  # over the function's local variables; default: all of them
        filter: Optional[str]  # over the local variables
        limit: int  # -n
        rate: float
        expand: int
        verbose: bool
        raw: bool

    class LineHit(TypedDict, total=False):
        kind: str  # "hit"
        index: int
        time: float
        thread: str
        tid: int
        daemon: Optional[bool]
        values: List[Dict[str, Any]]  # {expr, value: capture tree}
        error: str  # the filter or expression raised
        skipped: int
