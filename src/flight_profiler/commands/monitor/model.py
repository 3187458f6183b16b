"""What crosses the wire for ``monitor`` (both sides)."""

from __future__ import annotations

DEFAULT_CYCLE_S = 60.0  # Arthas' default cycle
MAX_CYCLE_S = 3600.0
# cost histogram: bucket i holds costs in [FIRST_US * GROWTH**(i-1), FIRST_US * GROWTH**i) microseconds;
# bucket 0 everything below FIRST_US, the last one everything above. Fixed memory whatever the call rate;
# a percentile is exact to within half a bucket's width (2.5 %).
FIRST_US = 1.0
GROWTH = 1.05
BUCKETS = 440  # 1.05**439 us is about 2 * 10**9 us: half an hour

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
