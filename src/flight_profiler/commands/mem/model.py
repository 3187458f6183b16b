"""What crosses the wire for ``mem`` (both sides): the request, its defaults, the events."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import List, Literal, TypedDict

    class MemOptions(TypedDict):
        """The fields with a default (``DEFAULTS``)."""

        limit: int  # --limit: rows
        order: Literal["descending", "ascending"]

    class MemRequest(MemOptions, total=False):
        action: Literal["summary", "diff", "top"]
        interval: float  # diff and top: seconds between the snapshots

    class TypeRow(TypedDict):
        type: str  # module.qualname, or the bare name for builtins
        count: int  # objects (a change, for diff)
        size: int  # bytes by sys.getsizeof (a change, for diff)

    class SummaryEvent(TypedDict):
        action: str  # "summary"
        objects: int
        size: int
        distinct: int  # number of distinct types seen
        seconds: float  # how long the walk took (the target kept running meanwhile)
        order: str  # --order: "descending" (largest first) or "ascending"
        types: List[TypeRow]

    class DiffEvent(TypedDict, total=False):
        action: str  # "diff"
        phase: str  # "first" (progress, after the first walk) or "done"
        interval: float
        objects: int  # total after (done) or at the first walk (first)
        size: int
        count_change: int
        size_change: int
        changed: int  # number of types that changed
        types: List[TypeRow]

    class LineRow(TypedDict):
        file: str
        line: int
        size: int  # bytes allocated by this line and still alive at the end of the interval
        count: int  # blocks
        source: str

    class TopEvent(TypedDict):
        action: str  # "top"
        interval: float
        already_tracing: bool  # the user had tracemalloc on: we compared two snapshots and left it on
        size: int
        count: int
        lines: List[LineRow]


DEFAULTS: MemOptions = {"limit": 20, "order": "descending"}
DEFAULT_INTERVAL = 10.0  # diff and top
MAX_LIMIT = 10000  # --limit: rows (the client refuses more before anything runs; the agent too)
