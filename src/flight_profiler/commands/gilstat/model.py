"""What crosses the wire for ``gilstat`` (both sides): the client's requests, the agent's, the defaults.

``on`` and ``off`` run in the client (frida hooks take_gil/drop_gil from outside); the agent
only answers ``names`` (thread names every interval, until ``off`` or detach) and ``off``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Literal, Optional, TypedDict, Union

    class GilstatOptions(TypedDict):
        """The fields with a default (``DEFAULTS``)."""

        interval: float  # seconds between reports
        max_threads: int  # threads shown at most

    class GilstatOnRequest(GilstatOptions):
        action: Literal["on"]
        take_ms: float  # warn for waits longer than this; 0: never
        hold_ms: float  # warn for holds longer than this; 0: never
        duration: Optional[float]  # -d seconds; None: until stopped
        view: Literal["interval", "cumulative"]

    class GilstatOffRequest(TypedDict):
        action: Literal["off"]

    GilstatRequest = Union[GilstatOnRequest, GilstatOffRequest]

    class NamesRequest(TypedDict):
        """What the client asks the agent while it measures."""

        action: Literal["names"]
        interval: float


DEFAULTS: GilstatOptions = {"interval": 5.0, "max_threads": 20}
