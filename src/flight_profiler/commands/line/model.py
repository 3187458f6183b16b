"""What crosses the wire for ``line`` (both sides): the request, its defaults, the events."""

from __future__ import annotations

from ...protocol.requests import RENDER_DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, List, Literal, Optional, TypedDict

    from ...protocol.requests import BudgetOption, RenderOptions, TargetRequest

    class LineOptions(RenderOptions):
        """The fields with a default (``DEFAULTS``)."""

        limit: int  # -n
        rate: float  # hits shown per second at most; the others are counted as skipped

    class LineRequest(TargetRequest, LineOptions, BudgetOption):
        line: int  # the source line whose execution is reported
        expr: Optional[str]  # over the function's local variables; default: all of them
        filter: Optional[str]  # over the local variables

    class LineStartFields(TypedDict):
        kind: Literal["start"]  # the hook is in place
        target: str  # module.Class.method[.nested]
        callable: str  # function, method, classmethod, staticmethod, property getter, nested function, ...
        file: str
        line: int
        at_line: int  # the source line watched
        limit: int  # -n
        mechanism: str  # sys.monitoring (3.12+), or a trace function per call

    class LineStart(LineStartFields, total=False):
        note: str  # what reading the calls needs: an lru_cache in front (its hits never reach it), other interpreters

    class LineEnd(TypedDict):
        kind: Literal["end"]  # -n hits shown (none when cancelled)
        reason: str
        shown: int
        skipped: int
        dropped: int

    class LineHitFields(TypedDict):
        kind: Literal["hit"]
        index: int
        time: float
        thread: str
        tid: int
        daemon: Optional[bool]
        skipped: int  # hits left out by --rate since the previous one

    class LineHit(LineHitFields, total=False):
        values: List[Dict[str, Any]]  # {expr, value: capture tree}
        error: str  # the expression raised


DEFAULTS: LineOptions = {"limit": 10, "rate": 20.0, **RENDER_DEFAULTS}
DEFAULT_LIMIT = DEFAULTS["limit"]
DEFAULT_RATE = DEFAULTS["rate"]
