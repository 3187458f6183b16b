"""What crosses the wire for ``monitor`` (both sides)."""

from __future__ import annotations

DEFAULT_CYCLE_S = 60.0  # Arthas' default cycle
MAX_CYCLE_S = 3600.0
# cost histogram, integer arithmetic only (no math module to import into the target): the cost in
# eighths of a microsecond, v, goes to bucket v below 32, above that to 16 buckets per power of two
# (HDR-histogram style). Fixed memory whatever the call rate; a bucket's middle is within 3.2 % of
# every cost in it, and percentiles are clamped to the exact min and max.
SCALE = 8  # buckets count eighths of a microsecond
SUB_BITS = 4  # 16 buckets per power of two
BUCKETS = 512  # up to 2**35 eighths of a microsecond: about an hour; longer calls share the last bucket

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Optional, TypedDict

    class MonitorRequest(TypedDict):
        module: str
        cls: Optional[str]
        method: str
        nested: Optional[str]  # -nm
        cycle: float  # -c, seconds
        cycles: int  # -n, 0: until stopped
        filter: Optional[str]  # -f: only calls for which this is true

    class MonitorCycle(TypedDict):
        kind: str  # "cycle"
        index: int  # 1, 2, ...
        time: float  # epoch seconds at the end of the cycle
        seconds: float  # the cycle's real length
        calls: int
        success: int
        fail: int  # calls that raised
        fail_rate: float  # fail / calls, 0..1 (0 without calls)
        avg_ms: Optional[float]  # None without calls
        p50_ms: Optional[float]
        p99_ms: Optional[float]
        max_ms: Optional[float]
        filter_errors: int  # calls whose -f raised (not counted)
