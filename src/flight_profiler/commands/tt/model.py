"""What crosses the wire for ``tt`` (both sides): the requests of each action and their defaults."""

from __future__ import annotations

from ...protocol.requests import RENDER_DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, List, Literal, Optional, TypedDict, Union

    from ...protocol.requests import BudgetOption, RenderOptions, TargetRequest

    class TtOptions(RenderOptions):
        """The fields of ``-t`` with a default (``DEFAULTS``)."""

        limit: int  # -n: records to make
        rate: float  # records per second at most; 0: no limit
        max_records: int  # records kept at most (the oldest go first)
        max_mb: float  # MB the records may take

    class TtRecordRequest(TargetRequest, TtOptions, BudgetOption):
        action: Literal["record"]  # -t
        filter: Optional[str]  # -f over target, return_obj, cost, args, kwargs

    class TtListRequest(TypedDict):
        action: Literal["list"]  # -l
        method_filter: Optional[str]  # -m module.class.method

    class TtShowRequest(RenderOptions, BudgetOption):
        action: Literal["show", "replay"]  # -i, -i -p
        play: bool
        index: int

    class TtDeleteRequest(TypedDict):
        action: Literal["delete"]  # -d
        index: int

    class TtDeleteAllRequest(TypedDict):
        action: Literal["delete_all"]  # -da

    TtRequest = Union[TtRecordRequest, TtListRequest, TtShowRequest, TtDeleteRequest, TtDeleteAllRequest]

    class TtStartFields(TypedDict):
        kind: Literal["start"]  # the hook is in place
        target: str  # module.Class.method[.nested]
        callable: str  # function, method, classmethod, staticmethod, property getter, nested function, ...
        file: str
        line: int
        limit: int
        rate: float

    class TtStart(TtStartFields, total=False):
        note: str  # what reading the calls needs: an lru_cache in front (its hits never reach it), other interpreters

    class TtRowFields(TypedDict):
        index: int
        time: float
        cost: float
        method: str
        is_return: bool
        is_exception: bool

    class TtRow(TtRowFields, total=False):
        """One record in a listing."""

        thread: str
        replay_of: int  # the record this one replayed
        error: str  # the filter raised

    class TtRecordFields(TtRowFields):
        kind: Literal["record"]  # a call recorded (tt -t)

    class TtRecord(TtRecordFields, total=False):
        thread: str
        replay_of: int
        error: str
        skipped: int  # calls left out by --rate since the previous record

    class TtBudget(TypedDict):
        """What the records take, with every answer that changes them."""

        kept: int  # records kept in the target
        bytes: int
        max_records: int
        max_bytes: int
        dropped: int  # oldest records dropped to stay within the limits

    class TtEnd(TtBudget):
        kind: Literal["end"]  # recording ended
        reason: str
        shown: int

    class TtList(TtBudget):
        kind: Literal["list"]  # tt -l
        records: List[TtRow]

    class TtDetailFields(TypedDict):
        kind: Literal["detail", "replay"]  # tt -i N, tt -i N -p
        index: int
        time: float
        cost: float
        method: str
        is_return: bool
        is_exception: bool
        depth: int  # depth the values were captured to
        args: Dict[str, Any]  # capture trees
        kwargs: Dict[str, Any]

    # "return" is a keyword: these keys need the functional form
    TtDetailValues = TypedDict(
        "TtDetailValues",
        {"return": Dict[str, Any], "exception": Dict[str, Any], "shown_depth": int, "note": str},
        total=False,
    )

    class TtDetail(TtDetailFields, TtDetailValues, total=False):
        thread: str
        tid: int
        daemon: Optional[bool]
        replay_of: int
        error: str

    class TtDeletedKind(TypedDict):
        kind: Literal["deleted"]  # tt -d N (indexes), tt -da (count)

    class TtDeleted(TtDeletedKind, total=False):
        indexes: List[int]
        count: int


DEFAULTS: TtOptions = {"limit": 50, "rate": 50.0, "max_records": 500, "max_mb": 16.0, **RENDER_DEFAULTS}
