"""What crosses the wire for ``getglobal`` (both sides): the request and the event."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, TypedDict

    from ...protocol.requests import BudgetOption, RenderOptions

    class GetGlobalRequest(RenderOptions, BudgetOption):
        module: str
        cls: Optional[str]
        field: str
        expr: Optional[str]  # -e over `target`

    class GetGlobalEvent(TypedDict, total=False):
        name: str  # module[.class].field
        type: str
        expr: str
        value: Dict[str, Any]  # a capture tree
        error: str  # the expression raised: shown as the result
