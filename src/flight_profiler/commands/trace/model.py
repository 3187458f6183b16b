"""What crosses the wire for ``trace`` (both sides): the request, its defaults, the events."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, Literal, Optional, TypedDict

    from ...protocol.requests import BudgetOption, TargetRequest

    class TraceOptions(TypedDict):
        """The fields with a default (``DEFAULTS``)."""

        entrance_time: float  # -et, ms: only invocations that took at least this long
        limit: int  # -n: trees
        budget: float  # --budget, % of wall time that may be traced; 0: no limit
        rate: float  # --rate, trees per second at most; 0: no limit

    class TraceRequest(TargetRequest, TraceOptions, BudgetOption):
        interval: Optional[float]  # -i, ms; None: DEFAULT_INTERVAL_MS; 0.0 when -d is given
        depth: Optional[int]  # -d, -1: no limit
        filter: Optional[str]  # -f over target, args, kwargs

    class TraceStartFields(TypedDict):
        kind: Literal["start"]
        target: str  # module.Class.method[.nested]
        callable: str  # function, method, classmethod, staticmethod, property getter, nested function, ...
        file: str
        line: int
        limit: int
        budget: float  # % of wall time that may be traced; 0: no limit

    class TraceStart(TraceStartFields, total=False):
        note: str  # what reading the calls needs: an lru_cache in front (its hits never reach it), other interpreters

    class TraceTreeFields(TypedDict):
        kind: Literal["trace"]
        index: int
        time: float
        cost: float
        thread: str  # thread name
        tid: int  # thread ident
        daemon: Optional[bool]  # null when the thread is not a threading.Thread

    class TraceTree(TraceTreeFields, total=False):
        root: Dict[str, Any]  # the call tree: {name, file, line, cost, children}
        hidden: int  # calls left out by -i
        truncated: int  # calls beyond the node limit, not kept
        deeper: int  # calls made at the deepest level shown, not shown with what they called (absent: none)
        depth: int  # that level: -d's, or the tree's own limit (200) in a deep recursion; with deeper
        raised: str  # the invocation raised: ExceptionType: message
        error: str  # the filter raised
        skipped: int  # trees left out by --rate since the previous tree
        not_traced_budget: int  # qualifying invocations run untraced by --budget since the previous tree

    class TraceEnd(TypedDict):
        kind: Literal["end"]
        reason: str
        shown: int
        below_entrance_time: int  # invocations faster than -et
        not_traced_budget: int  # invocations run untraced because of --budget
        skipped: int
        dropped: int


DEFAULT_INTERVAL_MS = 0.1  # -i when neither -i nor -d is given
# every qualifying invocation up to -n, as the seeds promise (rate 0.0: --rate N to cap);
# the budget is off unless asked for, and when on every skip is reported with the next tree
DEFAULTS: TraceOptions = {"entrance_time": 0.0, "limit": 10, "budget": 0.0, "rate": 0.0}
