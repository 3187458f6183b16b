"""``mem`` in the target: objects by type (summary, diff) and allocating lines (top).

The heap walk never holds the GIL for long. ``gc.get_objects()`` is one C call
that costs tens to hundreds of ms on a heap of two million objects, during which
no other thread runs, so it is not used. Instead the walk starts from the roots
(every module, every thread's frames, the young GC generations, ``gc.garbage``)
and follows ``gc.get_referents`` a batch at a time in Python, which the
interpreter interrupts every switch interval like any other Python code; it
also sleeps 1 ms every 20 ms so a busy target keeps most of its CPU share.
Huge lists, tuples, dicts and sets are followed in slices of themselves, so no
single C call grows with the heap (bench/RESULTS-mem.md: the longest stall of
the target's other threads is 11-16 ms on 3 million objects). What it counts is
what the program can reach, including objects the GC does not track (str, int,
bytes...), each object once. Modules are followed through their ``__dict__``,
never through their own traverse function (see ``_MODULE_DICT``).

Visited objects are remembered as one bit per 16 bytes of address space in 8 KiB
pages (1/128 of the heap's address range at most), not in a set of ids, so the
walk's own memory stays small on a big heap.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from itertools import islice
from types import ModuleType

from ...services.context import AGENT_THREAD_IDS, CommandFailed, JobContext

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, List

    Counts = Dict[str, List[int]]

SLICE = 2000  # objects counted per batch: one gc.get_referents call (a few ms at most)
WALK_BURST = 0.02  # seconds of walking between two pauses
SLICE_PAUSE = 0.001  # seconds slept in each pause: a busy target gets the CPU back meanwhile
BIG_CONTAINER = 20000  # containers longer than this are followed in slices of themselves
MAX_INTERVAL = 3600.0
MAX_LIMIT = 10000


class _Cursor:
    """What is left to follow of one huge list, tuple, dict or set, a slice at a time."""

    __slots__ = ("items", "pairs", "seq", "start")

    def __init__(self, obj: Any) -> None:
        self.pairs = type(obj) is dict
        if type(obj) is list or type(obj) is tuple:
            self.seq: Any = obj
            self.items: Any = None
        else:  # dict or set: an iterator, resumed between slices while the target runs
            self.seq = None
            self.items = iter(obj.items()) if self.pairs else iter(obj)
        self.start = 0

    def next_chunk(self) -> list[Any]:
        if self.seq is not None:
            chunk = self.seq[self.start : self.start + BIG_CONTAINER]
            self.start += BIG_CONTAINER
            return list(chunk)
        chunk = []
        try:
            for item in islice(self.items, BIG_CONTAINER):
                chunk.append(item)
        except RuntimeError:  # the target resized it meanwhile: keep what we have
            self.items = iter(())
        return chunk


def run(request: dict[str, Any], ctx: JobContext) -> None:
    action = request.get("action")
    limit = _bounded_int(request.get("limit", 20), 1, MAX_LIMIT, "--limit")
    descending = request.get("order", "descending") != "ascending"
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
    counts = _walk(ctx, [])
    if counts is None:
        return
    objects, size = _totals(counts)
    rows = _rows(counts, descending, limit)
    ctx.emit(
        {
            "action": "summary",
            "objects": objects,
            "size": size,
            "distinct": len(counts),
            "seconds": round(time.monotonic() - started, 3),
            "types": rows,
        }
    )


def _diff(ctx: JobContext, interval: float, limit: int, descending: bool) -> None:
    before = _walk(ctx, [])
    if before is None:
        return
    objects, size = _totals(before)
    ctx.emit({"action": "diff", "phase": "first", "interval": interval, "objects": objects, "size": size})
    if ctx.wait(interval):
        return
    # The first snapshot lives in this frame now; the second walk must not count it.
    after = _walk(ctx, [before, *before.values()])
    if after is None:
        return
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
            "types": _rows(changes, descending, limit),
        }
    )


def _walk(ctx: JobContext, exclude: list[Any]) -> Counts | None:
    """Count every reachable object once by type name; None when cancelled meanwhile."""
    seen = _Seen()
    by_type: dict[type, list[int]] = {}
    stack: list[Any] = []
    for obj in [seen, seen.pages, by_type, stack, exclude, *exclude, *_agent_objects()]:
        seen.add(obj)
    roots = _roots()
    seen.add(roots)
    for obj in roots:
        if seen.add(obj):
            stack.append(obj)
    del roots
    if not _follow(ctx, seen, by_type, stack):
        return None
    return _by_name({kind: entry for kind, entry in by_type.items() if entry is not _OURS})


def _follow(ctx: JobContext, seen: _Seen, by_type: dict[type, list[int]], stack: list[Any]) -> bool:
    """Depth-first over ``gc.get_referents``, a batch at a time, yielding the GIL between batches."""
    next_pause = time.monotonic() + WALK_BURST
    while stack:
        batch = stack[-SLICE:]
        del stack[-SLICE:]
        _count_and_follow(batch, seen, by_type, stack)
        del batch
        if time.monotonic() >= next_pause:
            time.sleep(SLICE_PAUSE)
            next_pause = time.monotonic() + WALK_BURST
            if ctx.cancelled.is_set():
                return False
    return True


def _count_and_follow(batch: list[Any], seen: _Seen, by_type: dict[type, list[int]], stack: list[Any]) -> None:
    """Count each object of ``batch`` by type and push what they refer to."""
    getsizeof = sys.getsizeof
    containers: list[Any] = []
    weight = 0
    for obj in batch:
        kind = type(obj)
        if kind is _Cursor:
            _push_chunk(obj, seen, stack)
            continue
        entry = by_type.get(kind)
        if entry is None:
            entry = by_type[kind] = _OURS if _is_ours(kind) else [0, 0, _how_to_follow(kind)]
        if entry is _OURS:
            continue  # the agent's own objects (sessions, jobs, ...) are not the program's
        entry[0] += 1
        try:
            entry[1] += getsizeof(obj)
        except Exception:  # noqa: BLE001, S110 - a broken __sizeof__ must not stop the walk
            pass
        if entry[2]:  # a builtin container (len() runs no user code), or a module: its dict
            if entry[2] == _MODULE:
                obj = _MODULE_DICT.__get__(obj)
            length = len(obj)
            if length > BIG_CONTAINER:
                stack.append(_Cursor(obj))  # one get_referents call on it would hold the GIL too long
                continue
            weight += length
        containers.append(obj)
        if weight > BIG_CONTAINER:
            _push_referents(containers, seen, stack)
            containers, weight = [], 0
    _push_referents(containers, seen, stack)


_OURS: list[int] = []  # by_type's mark for our own classes

# A module is followed through its __dict__, never through gc.get_referents(module):
# an extension module's traverse may visit memory that is not a live object. On
# 3.12.0-3.12.5 _asyncio's visits its free list of future iterators; handing those
# to Python double-frees them and loops the free list, so the next traverse of
# _asyncio never ends and the process hangs or crashes (CPython gh-122695; what
# froze asyncio targets under pympler-based heap walks on 3.12).
_MODULE_DICT: Any = vars(ModuleType)["__dict__"]  # the getter of md_dict: no user code
_CONTAINER, _MODULE = 1, 2


def _how_to_follow(kind: type) -> int:
    if kind is list or kind is tuple or kind is dict or kind is set or kind is frozenset:
        return _CONTAINER
    return _MODULE if issubclass(kind, ModuleType) else 0


def _is_ours(kind: type) -> bool:
    try:
        module = kind.__module__
    except Exception:  # noqa: BLE001 - a hostile metaclass
        return False
    return isinstance(module, str) and module.split(".")[0] == __name__.split(".")[0]


def _push_referents(containers: list[Any], seen: _Seen, stack: list[Any]) -> None:
    """Push what ``containers`` refer to and was not seen yet (``seen.add``, inlined: hot loop)."""
    pages = seen.pages
    push = stack.append
    for ref in gc.get_referents(*containers):
        slot = id(ref) >> 4
        page = pages.get(slot >> 16)
        if page is None:
            page = pages[slot >> 16] = bytearray(8192)
        index = (slot >> 3) & 0x1FFF
        byte = page[index]
        bit = 1 << (slot & 7)
        if not byte & bit:
            page[index] = byte | bit
            push(ref)


def _push_chunk(cursor: _Cursor, seen: _Seen, stack: list[Any]) -> None:
    """Push the next items of a huge container, its cursor below them while items remain."""
    chunk = cursor.next_chunk()
    if len(chunk) == BIG_CONTAINER:
        stack.append(cursor)
    if cursor.pairs:
        chunk = [part for pair in chunk for part in pair]  # dict items: keys and values
    for ref in chunk:
        if seen.add(ref):
            stack.append(ref)


class _Seen:
    """A set of object addresses: one bit per 16 bytes, pages of 8 KiB created on demand.

    Every object is at least 16 bytes long, so two live objects never share a bit.
    """

    __slots__ = ("pages",)

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}

    def add(self, obj: Any) -> bool:
        """Mark ``obj``; True when it was not marked yet."""
        slot = id(obj) >> 4
        page = self.pages.get(slot >> 16)
        if page is None:
            page = self.pages[slot >> 16] = bytearray(8192)
        index = (slot >> 3) & 0x1FFF
        bit = 1 << (slot & 7)
        byte = page[index]
        if byte & bit:
            return False
        page[index] = byte | bit
        return True


def _roots() -> list[Any]:
    """Where the walk starts: modules, every thread's frames, the young generations, gc.garbage."""
    package = __name__.split(".")[0]
    roots: list[Any] = [
        module for name, module in list(sys.modules.items()) if name.split(".")[0] != package and module is not None
    ]
    roots.append(sys.modules)
    roots.append(gc.garbage)
    agent_threads = set(AGENT_THREAD_IDS)
    for ident, top in sys._current_frames().items():
        frame: Any = None if ident in agent_threads else top
        while frame is not None:
            roots.append(frame)
            frame = frame.f_back
    # Young objects may be held only from C (a list a C function is building); they
    # are few, by the GC's own thresholds. Generation 1 means another thing in 3.14.
    roots.extend(gc.get_objects(0))
    if sys.version_info < (3, 14):
        roots.extend(gc.get_objects(1))
    return roots


def _agent_objects() -> list[Any]:
    """Our own modules, loader and threads: not part of the program being measured."""
    package = __name__.split(".")[0]
    found: list[Any] = [module for name, module in list(sys.modules.items()) if name.split(".")[0] == package]
    root = sys.modules.get(package)
    for key in getattr(root, "__path__", []):
        finder = sys.path_importer_cache.get(key)
        if finder is not None:
            found.append(finder)
    agent_threads = set(AGENT_THREAD_IDS)
    found.extend(thread for thread in threading.enumerate() if thread.ident in agent_threads)
    # Our frames (this walk's included) may sit in the young generation, a root.
    for ident, top in sys._current_frames().items():
        frame: Any = top if ident in agent_threads else None
        while frame is not None:
            found.append(frame)
            frame = frame.f_back
    return found


def _by_name(by_type: dict[type, list[int]]) -> Counts:
    counts: Counts = {}
    for kind, entry in by_type.items():
        count, size = entry[0], entry[1]
        name = _type_name(kind)
        merged = counts.get(name)
        if merged is None:
            counts[name] = [count, size]
        else:
            merged[0] += count
            merged[1] += size
    return counts


def _type_name(kind: type) -> str:
    try:
        module = kind.__module__
        qualname = kind.__qualname__
    except Exception:  # noqa: BLE001 - a hostile metaclass
        return "<type at 0x%x>" % id(kind)
    if not isinstance(qualname, str):
        qualname = getattr(kind, "__name__", "?")
    if module == "builtins" or not isinstance(module, str):
        return str(qualname)
    return "%s.%s" % (module, qualname)


def _totals(counts: Counts) -> tuple[int, int]:
    return sum(entry[0] for entry in counts.values()), sum(entry[1] for entry in counts.values())


def _rows(counts: Counts, descending: bool, limit: int) -> list[dict[str, Any]]:
    """Largest (or smallest) first by size, then by count; ``limit`` rows."""
    ordered = sorted(counts.items(), key=lambda item: (item[1][1], item[1][0], item[0]), reverse=descending)
    return [{"type": name, "count": entry[0], "size": entry[1]} for name, entry in ordered[:limit]]


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


def _interval(request: dict[str, Any]) -> float:
    try:
        interval = float(request.get("interval", 10.0))
    except (TypeError, ValueError):
        raise CommandFailed("--interval must be a number of seconds") from None
    if not 0 < interval <= MAX_INTERVAL:
        raise CommandFailed("--interval must be between 0 and %d seconds, got %s" % (MAX_INTERVAL, interval))
    return interval


def _bounded_int(value: Any, low: int, high: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CommandFailed("%s must be %d..%d, got %r" % (name, low, high, value))
    return value
