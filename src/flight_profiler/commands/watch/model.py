"""What crosses the wire for ``watch`` (both sides)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, TypedDict


class WatchRequest(TypedDict):
    module: str
    cls: Optional[str]
    method: str
    nested: Optional[str]  # -nm: a function defined inside the method
    expr: Optional[str]  # over target, return_obj, cost, args, kwargs
    filter: Optional[str]  # same names; checked when the call starts if it needs no return_obj/cost
    exception: bool  # -e: only calls that raise
    limit: int  # -n
    rate: float  # results per second at most; 0: no limit
    expand: int
    verbose: bool
    raw: bool


class WatchStart(TypedDict):
    kind: str  # "start": the hook is in place
    target: str  # module.Class.method[.nested]
    callable: str  # function, method, classmethod, staticmethod, property getter, nested function
    file: str
    line: int
    limit: int
    rate: float


class ExceptionInfo(TypedDict):
    type: str
    message: str
    frames: List[Dict[str, Any]]  # {file, line, name}, outermost first, the hook's frame left out


class WatchCall(TypedDict, total=False):
    kind: str  # "call"
    index: int  # 1..limit
    time: float  # epoch seconds when the call started
    cost: float  # ms, the whole run for generators and coroutines
    thread: str
    tid: int
    daemon: Optional[bool]
    values: List[Dict[str, Any]]  # {expr, value: capture tree}
    exception: ExceptionInfo
    error: str  # the filter or expression raised: shown instead of values
    skipped: int  # matching calls left out by --rate since the previous result


class WatchEnd(TypedDict):
    kind: str  # "end"
    reason: str  # "limit"
    shown: int
    skipped: int  # left out by --rate
    dropped: int  # results lost because the client read too slowly
