"""What crosses the wire for ``tt`` (both sides): the requests of each action and their defaults."""

from __future__ import annotations

from ...protocol.requests import RENDER_DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Literal, Optional, TypedDict, Union

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


DEFAULTS: TtOptions = {"limit": 50, "rate": 50.0, "max_records": 500, "max_mb": 16.0, **RENDER_DEFAULTS}
