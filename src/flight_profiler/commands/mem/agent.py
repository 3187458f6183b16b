"""``mem`` in the target: objects by type (summary, diff) and allocating lines (top).

The heap walk is ``services/heapwalk.py``: in slices that yield the GIL, never one
``gc.get_objects()`` call.
"""

from __future__ import annotations

import sys
import time

from ...services import heapwalk
from ...services.context import CommandFailed, JobContext
from ...services.describe import type_name
from .model import DEFAULT_INTERVAL, DEFAULTS, MAX_LIMIT

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, List

    from .model import MemRequest

    Counts = Dict[str, List[int]]

MAX_INTERVAL = 3600.0
ROWS_STEP = 2000  # types sorted into the rows at a time


def run(request: MemRequest, ctx: JobContext) -> None:
    action = request.get("action")
    limit = _bounded_int(request.get("limit", DEFAULTS["limit"]), 1, MAX_LIMIT, "--limit")
    descending = request.get("order", DEFAULTS["order"]) != "ascending"
    if action == "summary":
        _summary(ctx, limit, descending)
    elif action == "diff":
        _diff(ctx, _interval(request), limit, descending)
    elif action == "top":
        _top(ctx, _interval(request), limit)
    else:
        raise CommandFailed("unknown mem action %r (use summary, diff or top)" % action)


def _summary(ctx: JobContext, limit: int, descending: bool) -> None:
    started = time.monotonic()
    walked = _walk(ctx, [])
    if walked is None:
        return
    counts, pace = walked
    objects, size = _totals(counts)
    rows = _rows(counts, descending, limit, pace)
    ctx.emit(
        {
            "action": "summary",
            "objects": objects,
            "size": size,
            "distinct": len(counts),
            "seconds": round(time.monotonic() - started, 3),
            "order": "descending" if descending else "ascending",
            "types": rows,
            "pacing": pace.finish(),
        }
    )


def _diff(ctx: JobContext, interval: float, limit: int, descending: bool) -> None:
    first = _walk(ctx, [])
    if first is None:
        return
    before = first[0]
    objects, size = _totals(before)
    pacing = first[1].finish()
    ctx.emit(
        {"action": "diff", "phase": "first", "interval": interval, "objects": objects, "size": size, "pacing": pacing}
    )
    if ctx.wait(interval):
        return
    # The first snapshot lives in this frame now; the second walk must not count it.
    second = _walk(ctx, [before, *before.values()])
    if second is None:
        return
    after, pace = second
    changes: Counts = {}
    for name in set(before).union(after):
        old = before.get(name, (0, 0))
        new = after.get(name, (0, 0))
        if old[0] != new[0] or old[1] != new[1]:
            changes[name] = [new[0] - old[0], new[1] - old[1]]
    objects_after, size_after = _totals(after)
    ctx.emit(
        {
            "action": "diff",
            "phase": "done",
            "interval": interval,
            "objects": objects_after,
            "size": size_after,
            "count_change": objects_after - objects,
            "size_change": size_after - size,
            "changed": len(changes),
            "types": _rows(changes, descending, limit, pace),
            "pacing": pace.finish(),
        }
    )


def _walk(ctx: JobContext, exclude: list[Any]) -> tuple[Counts, heapwalk.Pacer] | None:
    """Count every reachable object once by type name; None when cancelled meanwhile.

    The pacer goes on slicing what is done with the counts (rows, sorting) after the walk.
    """
    found = heapwalk.walk(ctx.cancelled, exclude)
    if found is None:
        return None
    return _by_name(found.program_types(), found.pace), found.pace


def _by_name(by_type: dict[type, list[int]], pace: heapwalk.Pacer) -> Counts:
    counts: Counts = {}
    for index, (kind, entry) in enumerate(by_type.items()):
        if index & 1023 == 1023:  # a target may have tens of thousands of types
            pace.tick()
        count, size = entry[0], entry[1]
        name = type_name(kind)
        merged = counts.get(name)
        if merged is None:
            counts[name] = [count, size]
        else:
            merged[0] += count
            merged[1] += size
    return counts


def _totals(counts: Counts) -> tuple[int, int]:
    return sum(entry[0] for entry in counts.values()), sum(entry[1] for entry in counts.values())


def _rows(counts: Counts, descending: bool, limit: int, pace: heapwalk.Pacer) -> list[dict[str, Any]]:
    """Largest (or smallest) first by size, then by count; ``limit`` rows.

    Sorted ROWS_STEP types at a time into the best ``limit`` so far, in the walk's
    slices: one sort of every type is one C call that grows with their number. The
    key ends with the (unique) name, so the result is the one full sort's.
    """
    items = list(counts.items())
    best: list[tuple[str, list[int]]] = []
    for start in range(0, len(items), ROWS_STEP):
        best.extend(items[start : start + ROWS_STEP])
        best.sort(key=_row_key, reverse=descending)
        del best[limit:]
        pace.tick()
    return [{"type": name, "count": entry[0], "size": entry[1]} for name, entry in best]


def _row_key(item: tuple[str, list[int]]) -> tuple[int, int, str]:
    return item[1][1], item[1][0], item[0]


def _top(ctx: JobContext, interval: float, limit: int) -> None:
    """Source lines that allocated the most during ``interval`` (tracemalloc)."""
    import tracemalloc

    already = tracemalloc.is_tracing()
    before = None
    if already:
        before = tracemalloc.take_snapshot()
    else:
        tracemalloc.start(1)
        ctx.add_cleanup(_stop_tracing)  # tracing costs the target speed: never leave it on
    if ctx.wait(interval):
        return
    after = tracemalloc.take_snapshot()
    if not already:
        _stop_tracing()
    filters = _trace_filters(tracemalloc)
    after = after.filter_traces(filters)
    if before is not None:
        stats = [stat for stat in after.compare_to(before.filter_traces(filters), "lineno") if stat.size_diff > 0]
        rows = [(stat.traceback[0], stat.size_diff, stat.count_diff) for stat in stats]
    else:
        rows = [(stat.traceback[0], stat.size, stat.count) for stat in after.statistics("lineno")]
    rows.sort(key=lambda row: row[1], reverse=True)
    ctx.emit(
        {
            "action": "top",
            "interval": interval,
            "already_tracing": already,
            "size": sum(row[1] for row in rows),
            "count": sum(row[2] for row in rows),
            "lines": [_line_row(frame, size, count) for frame, size, count in rows[:limit]],
        }
    )


def _stop_tracing() -> None:
    import tracemalloc

    if tracemalloc.is_tracing():
        tracemalloc.stop()


def _trace_filters(tracemalloc: Any) -> list[Any]:
    """Leave out what we allocated ourselves (our modules, tracemalloc, the import system)."""
    import os

    package = sys.modules.get(__name__.split(".")[0])
    ours = os.path.dirname(getattr(package, "__file__", "") or "") or "<flight_profiler>"
    return [
        tracemalloc.Filter(False, os.path.join(ours, "*")),
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
        tracemalloc.Filter(False, "<unknown>"),
    ]


def _line_row(frame: Any, size: int, count: int) -> dict[str, Any]:
    import linecache

    return {
        "file": frame.filename,
        "line": frame.lineno,
        "size": size,
        "count": count,
        "source": linecache.getline(frame.filename, frame.lineno).strip()[:200],
    }


def _interval(request: MemRequest) -> float:
    try:
        interval = float(request.get("interval", DEFAULT_INTERVAL))
    except (TypeError, ValueError):
        raise CommandFailed("--interval must be a number of seconds") from None
    if not 0 < interval <= MAX_INTERVAL:
        raise CommandFailed("--interval must be between 0 and %d seconds, got %s" % (MAX_INTERVAL, interval))
    return interval


def _bounded_int(value: Any, low: int, high: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CommandFailed("%s must be %d..%d, got %r" % (name, low, high, value))
    return value
