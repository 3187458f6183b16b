"""What ``perf`` asks of the sampler (client side only: py-spy samples from outside, no agent).

Kept with the other commands' models so that every command declares its request in one place.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (the bundle carries every model.py)
if TYPE_CHECKING:
    from typing import Literal, Optional, TypedDict

    PerfFormat = Literal["svg", "speedscope", "raw", "collapsed", "chrometrace"]

    class PerfOptions(TypedDict):
        """The fields with a default (``DEFAULTS``)."""

        rate: int  # -r, samples per second
        format: PerfFormat
        native: bool
        idle: bool

    class PerfRequest(PerfOptions):
        pid: Optional[int]  # another pid to sample; None: the attached one
        filepath: str  # absolute: resolved against the client's working directory
        duration: Optional[float]  # -d seconds; None: until Ctrl-C


DEFAULTS: PerfOptions = {"rate": 100, "format": "svg", "native": False, "idle": False}
