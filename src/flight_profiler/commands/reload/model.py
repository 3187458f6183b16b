"""What crosses the wire for ``reload`` (both sides)."""

from __future__ import annotations

from typing import Optional, TypedDict


class ReloadRequest(TypedDict):
    module: str
    cls: Optional[str]
    method: str


class Reloaded(TypedDict):
    kind: str  # "reloaded"
    target: str  # module.Class.method
    file: str  # the source file the new code was compiled from
    line: int  # the function's first line in it now
    changed: bool  # False: the file holds the same code as the function had
    hooked: bool  # a watch/trace/tt hook was on it and stays, running the new code
