"""What crosses the wire for ``getglobal`` (both sides)."""

from __future__ import annotations

from typing import Any, Dict, Optional, TypedDict


class GetGlobalRequest(TypedDict):
    module: str
    cls: Optional[str]
    field: str
    expr: Optional[str]
    expand: int
    verbose: bool
    raw: bool


class GetGlobalEvent(TypedDict, total=False):
    name: str  # module[.class].field
    type: str
    expr: str
    value: Dict[str, Any]  # a capture tree
    error: str  # the expression raised: shown as the result
