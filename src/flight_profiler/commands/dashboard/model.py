"""What crosses the wire for ``dashboard`` (both sides)."""

from __future__ import annotations

DEFAULT_INTERVAL_MS = 5000  # Arthas' refresh
MIN_INTERVAL_MS = 100
MAX_INTERVAL_MS = 3600000
SAMPLE_MS = 20  # how often the agent looks at every thread's innermost frame during a frame
TOP_THREADS = 10  # threads listed, busiest first (the total is given)
TOP_FUNCTIONS = 10  # hottest functions listed

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import List, Optional, TypedDict

    class DashboardRequest(TypedDict):
        """The fields with a default (``DEFAULTS``): every field."""

        interval: int  # -i, milliseconds per frame
        frames: int  # -n, 0: until stopped

    class DashboardThread(TypedDict):
        tid: int  # native id
        name: str
        daemon: Optional[bool]  # None: not a threading.Thread
        state: str  # the kernel's letter: R running, S sleeping, D disk ...
        cpu: float  # percent of one core over the frame

    class DashboardFunction(TypedDict):
        name: str
        file: str
        line: int  # the function's first line
        cpu: float  # percent of one core attributed to it (samples weighted by their thread's CPU)
        samples: int

    class DashboardGc(TypedDict):
        enabled: bool
        counts: List[int]  # gc.get_count()
        collections: List[int]  # per generation, since start
        collected: List[int]
        uncollectable: List[int]
        pauses: int  # collections during the frame
        pause_total_ms: float
        pause_max_ms: float

    class DashboardFrame(TypedDict):
        kind: str  # "frame"
        index: int
        time: float  # epoch seconds at the end of the frame
        seconds: float
        pid: int
        python: str
        rss_kb: int
        fds: int
        cpu: float  # the whole process, percent of one core
        threads_total: int
        threads: List[DashboardThread]
        gc: DashboardGc
        functions: List[DashboardFunction]
        samples: int  # looks at the threads' frames during the frame


DEFAULTS: DashboardRequest = {"interval": DEFAULT_INTERVAL_MS, "frames": 0}
