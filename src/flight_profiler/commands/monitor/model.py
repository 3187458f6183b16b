"""What crosses the wire for ``monitor`` (both sides)."""

from __future__ import annotations

DEFAULT_CYCLE_S = 60.0  # Arthas' default cycle
MAX_CYCLE_S = 3600.0
# Percentiles come from a uniform systematic sample of each cycle's costs: at most SAMPLE_MAX kept,
# every stride-th call (the stride doubles when the sample is full), so memory does not grow with
# the call rate; calls, failures, average, min and max are exact.
SAMPLE_MAX = 20000
DRAIN_S = 0.05  # how often the job thread collects the costs the target's threads appended
RETIRED_DRAINS = 40  # a collected list is looked at again this many times for late appends (2 s)

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Literal, Optional, TypedDict

    from ...protocol.requests import BudgetOption, TargetRequest

    class MonitorOptions(TypedDict):
        """The fields with a default (``DEFAULTS``)."""

        cycle: float  # -c, seconds
        cycles: int  # -n, 0: until stopped

    class MonitorRequest(TargetRequest, MonitorOptions, BudgetOption):
        filter: Optional[str]  # -f: only calls for which this is true

    class MonitorStart(TypedDict):
        kind: Literal["start"]  # the hook is in place
        target: str  # module.Class.method[.nested]
        callable: str  # function, method, classmethod, staticmethod, property getter, nested function, ...
        file: str
        line: int
        cycle: float  # -c seconds
        cycles: int  # -n; 0: until stopped

    class MonitorEnd(TypedDict):
        kind: Literal["end"]  # -n cycles done (none when cancelled)
        cycles: int
        calls: int  # over every cycle
        fail: int

    class MonitorCycle(TypedDict):
        kind: Literal["cycle"]
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


DEFAULTS: MonitorOptions = {"cycle": DEFAULT_CYCLE_S, "cycles": 0}
