"""What crosses the wire for ``watch`` (both sides): the request, its defaults, the events."""

from __future__ import annotations

from ...protocol.requests import RENDER_DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, List, Literal, Optional, TypedDict

    from ...protocol.requests import BudgetOption, RenderOptions, TargetRequest

    class WatchOptions(RenderOptions):
        """The fields with a default (``DEFAULTS``)."""

        exception: bool  # -e: only calls that raise
        limit: int  # -n
        rate: float  # results per second at most; 0: no limit

    class WatchRequest(TargetRequest, WatchOptions, BudgetOption):
        expr: Optional[str]  # over target, return_obj, cost, args, kwargs
        filter: Optional[str]  # same names; checked when the call starts if it needs no return_obj/cost

    class WatchStartFields(TypedDict):
        kind: Literal["start"]  # the hook is in place
        target: str  # module.Class.method[.nested]
        callable: str  # function, method, classmethod, staticmethod, property getter, nested function
        file: str
        line: int
        limit: int
        rate: float

    class WatchStart(WatchStartFields, total=False):
        note: str  # what reading the calls needs: an lru_cache in front (its hits never reach it), other interpreters

    class ExceptionInfo(TypedDict):
        type: str
        message: str
        frames: List[Dict[str, Any]]  # {file, line, name}, outermost first, the hook's frame left out

    class ThreadFields(TypedDict):
        thread: str
        tid: int
        daemon: Optional[bool]  # None when the thread is not a threading.Thread

    class WatchCallFields(ThreadFields):
        kind: Literal["call"]
        index: int  # 1..limit
        time: float  # epoch seconds when the call started
        cost: float  # ms, the whole run for generators and coroutines

    class WatchCall(WatchCallFields, total=False):
        method: str  # module[.class].method watched, as the text title shows it
        values: List[Dict[str, Any]]  # {expr, value: capture tree}
        exception: ExceptionInfo
        error: str  # the filter or expression raised: shown instead of values
        skipped: int  # matching calls left out by --rate since the previous result

    class WatchEnd(TypedDict):
        kind: Literal["end"]
        reason: str  # "limit"
        shown: int
        skipped: int  # left out by --rate
        dropped: int  # results lost because the client read too slowly


DEFAULTS: WatchOptions = {"exception": False, "limit": 10, "rate": 20.0, **RENDER_DEFAULTS}
