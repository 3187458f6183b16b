"""What crosses the wire for ``line`` (both sides): the request, its defaults, the events."""

from __future__ import annotations

from ...protocol.requests import RENDER_DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, TypedDict

    from ...protocol.requests import RenderOptions, TargetRequest

    class LineOptions(RenderOptions):
        """The fields with a default (``DEFAULTS``)."""

        limit: int  # -n
        rate: float  # hits shown per second at most; the others are counted as skipped

    class LineRequest(TargetRequest, LineOptions):
        line: int  # the source line whose execution is reported
        expr: Optional[str]  # over the function's local variables; default: all of them
        filter: Optional[str]  # over the local variables

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


DEFAULTS: LineOptions = {"limit": 10, "rate": 20.0, **RENDER_DEFAULTS}
DEFAULT_LIMIT = DEFAULTS["limit"]
DEFAULT_RATE = DEFAULTS["rate"]
