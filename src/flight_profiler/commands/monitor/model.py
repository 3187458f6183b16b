"""What crosses the wire for ``monitor`` (both sides)."""

from __future__ import annotations

DEFAULT_CYCLE_S = 60.0  # Arthas' default cycle
MAX_CYCLE_S = 3600.0
# Every call is counted; its cost is measured on every call while the rate is at most TIMED_RATE
# calls a second, above it on one call in 2, 4, ... PICK_BLOCK (``timed`` in a cycle says how many:
# timed == calls is exact). Percentiles come from a uniform systematic sample of the timed costs,
# each weighted by how many calls it stands for: at most SAMPLE_MAX kept (every stride-th; the
# stride doubles when the sample is full), so memory does not grow with the call rate.
SAMPLE_MAX = 20000
TIMED_RATE = 10000  # timed calls a second, at most (unless the rate is over TIMED_RATE * PICK_BLOCK)
PICK_BLOCK = 1024  # the widest stride: one call in 1024 timed
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

    class MonitorStartFields(TypedDict):
        kind: Literal["start"]  # the hook is in place
        target: str  # module.Class.method[.nested]
        callable: str  # function, method, classmethod, staticmethod, property getter, nested function, ...
        file: str
        line: int
        cycle: float  # -c seconds
        cycles: int  # -n; 0: until stopped

    class MonitorStart(MonitorStartFields, total=False):
        note: str  # what reading the calls needs: an lru_cache in front (its hits never reach it), other interpreters

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
        max_ms: Optional[float]  # of the timed calls
        timed: int  # calls whose cost was measured (avg/p50/p99/max are estimated from them); == calls: all
        filter_errors: int  # calls whose -f raised (not counted)


DEFAULTS: MonitorOptions = {"cycle": DEFAULT_CYCLE_S, "cycles": 0}
