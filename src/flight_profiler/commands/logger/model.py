"""What crosses the wire for ``logger`` (both sides)."""

from __future__ import annotations

DEFAULT_FOR_S = 60.0  # a level change lasts this long unless --for says otherwise
MAX_FOR_S = 86400.0
MAX_LOGGERS = 500  # loggers listed at most; the rest are counted
MAX_HANDLERS = 16  # handlers listed per logger

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, List, Literal, Optional, TypedDict

    class LoggerOptions(TypedDict):
        """The fields with a default (``DEFAULTS``)."""

        seconds: float  # --for

    class LoggerRequest(LoggerOptions):
        name: Optional[str]  # --name: one logger and its descendants ("root" for the root logger)
        level: Optional[str]  # --level: a level name or number to set for --for seconds

    class LoggerInfo(TypedDict):
        name: str
        level: str  # the logger's own level ("NOTSET": it inherits)
        effective: str  # the level it really filters at
        propagate: bool
        disabled: bool
        handlers: List[Dict[str, Any]]  # {type, level, target}

    class LoggerTree(TypedDict):
        kind: Literal["tree"]  # the logging tree (without --level)
        total: int
        shown: int
        loggers: List[LoggerInfo]

    class LoggerChanged(TypedDict):
        kind: Literal["changed"]  # --level set; reverted after seconds
        name: str
        old_level: str
        level: str
        effective: str
        seconds: float

    class LoggerReverted(TypedDict):
        kind: Literal["reverted"]  # --for elapsed: the level is back (none when cancelled: reverted all the same)
        name: str
        level: str  # the level now
        kept_app_change: bool  # the application changed the level meanwhile: its change was kept


DEFAULTS: LoggerOptions = {"seconds": DEFAULT_FOR_S}
