"""What crosses the wire for ``sc`` and ``sm`` (both sides)."""

from __future__ import annotations

DEFAULT_LIMIT = 50  # matches shown; the rest are counted
MAX_LIMIT = 10000
MAX_MODULES = 20000  # modules searched at most (a bound on the work, not a filter)

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import List, Optional, TypedDict

    class SearchOptions(TypedDict):
        """The fields with a default (``DEFAULTS``)."""

        detail: bool  # -d
        limit: int  # -n

    class SearchRequest(SearchOptions):
        pattern: str  # glob over module.Qualified.name, or a plain name matched at the end

    class Match(TypedDict, total=False):
        name: str  # module.Qualified.name
        module: str
        kind: str  # class; function, method, classmethod, staticmethod, property, coroutine ...
        file: Optional[str]  # -d
        line: Optional[int]  # -d
        bases: List[str]  # -d, classes
        signature: str  # -d, functions


DEFAULTS: SearchOptions = {"detail": False, "limit": DEFAULT_LIMIT}
