"""One walk over the target's heap that never holds the GIL for long (``mem``, ``vmtool``).

``gc.get_objects()`` is one C call that costs ~12 ms per million objects, during
which no other thread runs, and it builds a list of every tracked object (+97 MB
on 8 M objects), so it is not used. Instead the walk starts from the roots (every
module, every thread's frames and their local variables, the young GC
generations, ``gc.garbage``) and follows ``gc.get_referents`` a batch at a time
in Python, in slices: each slice holds the GIL for at most SLICE_BUDGET (4 ms,
measured by the walk itself: ``Pacer``), then sleeps SLICE_PAUSE with it released,
so a thread of the target that waits for the GIL gets it then, and a busy target
keeps most of its CPU share. Every step between two looks at the clock is short:
batches are sized in time to what is left of the slice, huge lists, tuples, dicts
and sets are followed in slices of themselves, and no gc.get_referents call gets
more than BIG_CONTAINER references, so no single C call grows with the heap
(bench/RESULTS-mem.md). What
it finds is what the program can reach, including objects the GC does not track
(str, int, bytes...), each object once. Modules are followed through their
``__dict__``, never through their own traverse function (see ``_MODULE_DICT``).

Visited objects are remembered as one bit per 16 bytes of address space in 8 KiB
pages (1/128 of the heap's address range at most), not in a set of ids, so the
walk's own memory stays small on a big heap.

Each type met gets one entry ``[count, size, follow, match, base]``; objects of the
types ``wanted`` accepts are also collected, up to ``keep`` of them.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from itertools import islice
from types import ModuleType

from . import cpuquota, realthreads
from .context import AGENT_THREAD_IDS
from .describe import module_of
from .realthreads import thread_frames

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional

    from .realthreads import Event

    Entries = Dict[type, List[Any]]
    Wanted = Optional[Callable[[type], bool]]

SLICE = 1000  # objects handled in a batch of referrers' search
# The walk's batches are sized in time (_next_size): the first is small, as what objects cost is
# not known yet, and a batch is at most twice the last, so one met after cheap ones cannot take long.
FIRST_SLICE, MIN_SLICE, MAX_SLICE = 128, 64, 4000
BATCH_TIME = 0.001  # seconds of work per batch at most: the clock is looked at between two
# Slices: the walk holds the GIL for at most SLICE_BUDGET seconds (wall clock) at a stretch,
# then sleeps SLICE_PAUSE with it released. A thread of the target that wanted the GIL
# meanwhile gets it at that pause, or earlier from the interpreter (its switch interval,
# 5 ms) while the walk runs Python code; what could hold it longer is a C call, and no step
# of the walk is long (BIG_CONTAINER, BATCH_TIME, the collector met a few lists at a time:
# referrers). The pause also keeps a busy target's CPU share, and keeps a walk on a thread
# of real-time priority under the kernel's 95 % real-time budget, whose throttling once
# stopped it with the GIL held for 50 ms (bench/RESULTS-mem.md).
SLICE_BUDGET = cpuquota.SLICE_BUDGET  # 4 ms
SLICE_PAUSE = cpuquota.SLICE_PAUSE  # 1 ms
# Under a CPU quota (a pod's CPU limit) the walk's CPU is charged to the program's cgroup, and a spent
# quota stops every thread of it until the next period: the pause then grows so that the walk takes at
# most this share of the quota (half a CPU: 4 ms slices, 28 ms pauses; services/cpuquota).
QUOTA_SHARE = cpuquota.QUOTA_SHARE  # a quarter
# One step of a walk handles at most this many references: a gc.get_referents call (and
# freeing its result) touches every object it returns, scattered over the heap, in one C call
# that holds the GIL (~1 ms per 5000 on a VM; ~4 ms per 20000 measured). A container with more
# than HUGE references (a dict has two per item) is followed HUGE of them at a time; the others
# are followed together, a call made once they reach HUGE: so no call on containers gets
# BIG_CONTAINER. Other objects count OBJECT_WEIGHT each, an estimate: a batch of instances with
# many attributes can return more (8,700 references from 483 of pytest's items, on 3.11 where an
# instance's values are visited one by one), still a batch of a few hundred objects.
BIG_CONTAINER = 5000
HUGE = BIG_CONTAINER // 2
OBJECT_WEIGHT = 4  # references counted for an object of another GC type (an instance: its type, dict or slots)
COUNT, SIZE, FOLLOW, MATCH, BASE = 0, 1, 2, 3, 4  # the fields of a type's entry
# Before 3.11 a frame's traverse visits its local variables; from 3.11 a running
# frame's locals live in the thread's own stack and the frame object does not
# visit them, so objects held only by a local variable were never reached.
_LOCALS_NOT_VISITED = sys.version_info >= (3, 11)
_SNAPSHOT_LOCALS = sys.version_info < (3, 13)  # before PEP 667 f_locals fills a dict kept in the frame
_CO_OPTIMIZED = 0x1


class Pacer:
    """Cuts one walk into slices of at most ``budget`` seconds with the GIL, a pause after each.

    The walk calls ``tick()`` between two short steps (a batch, one gc.get_referents
    call, a chunk of rows); once the slice's budget is spent, ``tick`` sleeps
    ``pause`` with the GIL released and starts the next slice. Each slice is
    measured as it ends, in wall time and in this thread's CPU time: the longest is
    the longest stretch the walk held the GIL, as the walk itself saw it (an upper
    bound: the interpreter may have handed the GIL over within the slice too). The
    wall figure grows when the host takes the CPU from the walk in the middle of a
    slice; the CPU one does not, except where a virtual machine's kernel charges
    the thread for time the hypervisor took (bench/RESULTS-mem.md).
    """

    __slots__ = (
        "budget",
        "cancelled",
        "collections",
        "cpus",
        "deadline",
        "longest",
        "longest_cpu",
        "longest_gc",
        "longest_where",
        "pause",
        "slices",
        "started",
        "started_cpu",
    )

    def __init__(self, cancelled: Event, budget: float | None = None, pause: float | None = None) -> None:
        self.cancelled = cancelled
        self.cpus = cpuquota.quota() if pause is None else None  # a pause given (tests) is kept as it is
        self.budget, self.pause = cpuquota.paced(
            SLICE_BUDGET if budget is None else budget,
            SLICE_PAUSE if pause is None else pause,
            self.cpus,
            QUOTA_SHARE,
        )
        self.longest = self.longest_cpu = self.longest_gc = 0.0
        self.longest_where = ""  # the function that ended the longest slice (a diagnostic)
        self.slices = self.collections = 0
        self.started = self.started_cpu = self.deadline = 0.0
        self._begin()

    def _begin(self) -> None:
        self.started_cpu = _cpu()
        self.started = _clock()
        self.deadline = self.started + self.budget

    def tick(self) -> bool:
        """Between two steps: pause when the slice's budget is spent. False when cancelled."""
        if _clock() < self.deadline:
            return True
        return self.pass_gil()

    def pass_gil(self) -> bool:
        """End the slice now, pause with the GIL released, begin the next. False when cancelled."""
        self._end()
        _sleep(self.pause)
        self._begin()
        return not self.cancelled.is_set()

    def _end(self) -> None:
        held = _clock() - self.started
        cpu = _cpu() - self.started_cpu
        self.slices += 1
        if held > self.longest:
            self.longest = held
        if cpu > self.longest_cpu:
            self.longest_cpu = cpu
            self.longest_where = _caller()

    def left(self) -> float:
        """Seconds left of the slice's budget (negative: spent)."""
        return self.deadline - _clock()

    def collect(self, generation: int) -> float:
        """One collection of ``generation``, at the start of a slice (it is one C call that
        adds to whatever the slice did before it); its seconds."""
        if _clock() - self.started > self.budget / 4:
            self.pass_gil()  # cancelled: seen at the next tick, the collection is short anyway
        started = _clock()
        gc.collect(generation)
        took = _clock() - started
        self.collections += 1
        if took > self.longest_gc:
            self.longest_gc = took
        return took

    def finish(self) -> dict[str, Any]:
        """End the last slice; what the slices were, for the result (a diagnostic: ``pacing``)."""
        self._end()
        report = {
            "slices": self.slices,
            "budget_ms": round(self.budget * 1000, 3),
            "longest_ms": round(self.longest * 1000, 3),
            "longest_cpu_ms": round(self.longest_cpu * 1000, 3),
            "longest_where": self.longest_where,
        }
        if self.cpus is not None:
            report["cpu_quota"] = round(self.cpus, 3)
            report["pause_ms"] = round(self.pause * 1000, 3)
        if self.collections:
            report["collections"] = self.collections
            report["longest_collection_ms"] = round(self.longest_gc * 1000, 3)
        return report


def _caller() -> str:
    """function:line where the walk asked the pacer (past the pacer's own frames)."""
    frame: Any = sys._getframe(2)
    while frame is not None and frame.f_code.co_name in ("pass_gil", "tick", "finish", "collect", "_end"):
        frame = frame.f_back
    return "" if frame is None else "%s:%d" % (frame.f_code.co_name, frame.f_lineno)


# the clocks and the sleep of every Pacer (a test replaces them). The sleep is the original one: in a
# gevent-patched target time.sleep is gevent's, which made a hub in our thread for the first pause
# (an epoll and an eventfd descriptor, never closed: two more after every mem or vmtool)
_clock = time.perf_counter
_cpu = time.thread_time
_sleep = realthreads.sleep


class Walk:
    """The result of one walk: the entry of every type met, the objects collected, its pacer."""

    __slots__ = ("found", "pace", "types")

    def __init__(self, pace: Pacer) -> None:
        self.types: Entries = {}
        self.found: list[Any] = []
        self.pace = pace  # the caller's steps after the walk (sorting, rows) go on in its slices

    def program_types(self) -> Entries:
        """The entries of the program's types (ours left out)."""
        return {kind: entry for kind, entry in self.types.items() if entry is not _OURS}

    def matched(self) -> int:
        """How many objects of the wanted types the walk met."""
        return sum(entry[COUNT] for entry in self.types.values() if entry is not _OURS and entry[MATCH])


def walk(cancelled: Event, exclude: list[Any], sizes: bool = True, wanted: Wanted = None, keep: int = 0) -> Walk | None:
    """Count every reachable object once by type; None when ``cancelled`` was set meanwhile.

    ``exclude`` and what it holds are not counted (a previous walk's result).
    ``wanted(type)`` says whether objects of a type are collected, ``keep`` how
    many at most (negative: all).
    """
    pace = Pacer(cancelled)
    seen = _Seen()
    result = Walk(pace)
    stack: list[Any] = []
    state = _State(result, sizes, wanted, keep)
    for obj in [seen, seen.pages, result, result.types, result.found, state, stack, exclude, *exclude]:
        seen.add(obj)
    for obj in _agent_objects():
        seen.add(obj)
    roots = _roots()
    seen.add(roots)
    for index, obj in enumerate(roots):
        if seen.add(obj):
            stack.append(obj)
        if index & 1023 == 1023 and not pace.tick():  # thousands of young objects: ~1 us each
            return None
    del roots
    if not _follow(pace, seen, state, stack):
        return None
    return result


class _State:
    __slots__ = ("found", "keep", "sizes", "types", "wanted")

    def __init__(self, result: Walk, sizes: bool, wanted: Wanted, keep: int) -> None:
        self.types = result.types
        self.found = result.found
        self.sizes = sizes
        self.wanted = wanted
        self.keep = keep


class _Cursor:
    """What is left to follow of one huge list, tuple, dict, set or deque, a slice at a time.

    Of a subclass's instance (a defaultdict, an OrderedDict, a class of the program's)
    through its builtin base's own methods: no method of the subclass runs.
    """

    __slots__ = ("base", "done", "items", "pairs", "seq", "start", "step")

    def __init__(self, obj: Any, base: type | None = None) -> None:
        self.base: Any = base or type(obj)
        self.pairs = self.base is dict
        self.step = HUGE // 2 if self.pairs else HUGE  # items per chunk: HUGE references
        self.done = False  # the last chunk was taken
        if self.base is list or self.base is tuple:
            self.seq: Any = obj
            self.items: Any = None
        else:  # dict, set or deque: an iterator, resumed between slices while the target runs
            self.seq = None
            iterate: Any = dict.items if self.pairs else vars(self.base)["__iter__"]  # the base's own
            self.items = iter(iterate(obj))
        self.start = 0

    def next_chunk(self) -> list[Any]:
        if self.seq is not None:
            chunk = list(self.base.__getitem__(self.seq, slice(self.start, self.start + self.step)))
            self.start += self.step
        else:
            chunk = []
            try:
                for item in islice(self.items, self.step):
                    chunk.append(item)
            except RuntimeError:  # the target resized it meanwhile: keep what we have
                self.items = iter(())
        self.done = len(chunk) < self.step
        return chunk


def _follow(pace: Pacer, seen: _Seen, state: _State, stack: list[Any]) -> bool:
    """Depth-first over ``gc.get_referents``, a batch at a time, in the pacer's slices.

    The batch is sized in time: about BATCH_TIME of work, or what is left of the
    slice when that is less, whatever the objects cost on this interpreter, host
    and heap, so a slice ends within a small batch of its budget.
    """
    size = FIRST_SLICE
    while stack:
        started = _clock()
        batch = stack[-size:]
        del stack[-size:]
        count = len(batch)  # fewer than size where the stack ran low
        _visit(batch, seen, state, stack, started + min(BATCH_TIME, pace.deadline - started))
        del batch
        now = _clock()
        took = now - started
        left = pace.deadline - now
        if left <= 0:
            if not pace.pass_gil():
                return False
            left = pace.budget
        size = _next_size(count, took, min(BATCH_TIME, left))
    return True


def _next_size(size: int, took: float, goal: float = BATCH_TIME) -> int:
    """The next batch's size, for a batch of ``size`` that took ``took`` seconds, to take ``goal``."""
    if took <= 0:
        return min(size * 2, MAX_SLICE)
    return max(MIN_SLICE, min(MAX_SLICE, size * 2, int(size * goal / took)))


def _visit(batch: list[Any], seen: _Seen, state: _State, stack: list[Any], until: float) -> None:  # noqa: C901 - the hot loop: no call per object
    """Count each object of ``batch`` by type, collect the wanted ones, push what they refer to.

    The hot loop of every walk: fields by literal index (COUNT 0, SIZE 1, FOLLOW 2,
    MATCH 3), how an object is followed (_ATOM 0, _OBJECT 3) by literal too. A batch
    sized for cheap objects may meet costly ones: after each gc.get_referents call
    (about BIG_CONTAINER references) past ``until`` the rest of the batch goes back
    on the stack (marked already) for the next one.
    """
    getsizeof = sys.getsizeof if state.sizes else None
    by_type = state.types
    containers: list[Any] = []
    weight = 0
    objects = iter(batch)
    met = 0
    for obj in objects:
        met += 1
        if not met & 255 and _clock() >= until:  # a stretch of slow objects (cold memory, a stolen CPU)
            stack.append(obj)
            break
        entry = by_type.get(type(obj))
        if entry is None:
            entry = by_type[type(obj)] = _new_entry(type(obj), state.wanted)
        if entry is _OURS:  # the agent's own objects (sessions, jobs, ...) are not the program's
            if type(obj) is _Cursor and _push_chunk(obj, seen, stack) >= until:
                break
            continue
        entry[0] += 1
        if entry[3]:
            _collect(obj, state)
        if getsizeof is not None:
            try:
                entry[1] += getsizeof(obj)
            except Exception:  # noqa: BLE001, S110 - a broken __sizeof__ must not stop the walk
                pass
        how = entry[2]
        if how == 3:  # _OBJECT
            weight += OBJECT_WEIGHT
        elif how == 0:  # _ATOM: not a GC type, gc.get_referents would return nothing for it
            continue
        else:
            obj, length = _sized(obj, entry)
            if length > HUGE:  # one get_referents call on it would hold the GIL too long
                _push_huge(obj, entry, seen, stack)
                continue
            weight += length
        containers.append(obj)
        if weight >= HUGE:
            _push_referents(containers, seen, stack)
            containers, weight = [], 0
            if _clock() >= until:
                break
    _push_referents(containers, seen, stack)
    stack.extend(objects)  # what is left of the batch when it stopped early (nothing otherwise)


def _collect(obj: Any, state: _State) -> None:
    if state.keep < 0 or len(state.found) < state.keep:
        state.found.append(obj)


def _sized(obj: Any, entry: list[Any]) -> tuple[Any, int]:
    """A builtin container (len() runs no user code), a module's dict, or a subclass's instance, and its references."""
    if entry[FOLLOW] == _MODULE:
        obj = _MODULE_DICT.__get__(obj)
    elif entry[FOLLOW] == _SUBCLASS:
        return obj, weight(obj, entry[BASE]) + OBJECT_WEIGHT
    return obj, weight(obj)


def weight(obj: Any, base: type | None = None) -> int:
    """How many references a builtin container holds (a dict two per item), read with its base's len()
    for an instance of a subclass (also ``referrers``)."""
    kind: Any = base or type(obj)
    length: int = kind.__len__(obj)
    return length * 2 if kind is dict else length


def base_of(kind: type) -> type | None:
    """The builtin container a GC type derives from (its items are followed through it), or None."""
    for base in _BASES:
        if issubclass(kind, base):  # type's own check: the classes' MROs, no code of the program
            return base
    return None


def _push_huge(obj: Any, entry: list[Any], seen: _Seen, stack: list[Any]) -> None:
    """A cursor over a huge container's items; what else a subclass's instance holds, pushed now."""
    if entry[FOLLOW] != _SUBCLASS:
        stack.append(_Cursor(obj))
        return
    stack.append(_Cursor(obj, entry[BASE]))
    _push_new(own_references(obj), seen, stack)


def own_references(obj: Any) -> list[Any]:
    """What an instance of a container's subclass refers to besides its items: its type, its
    ``__dict__``, its slots and C members, read with the interpreter's getters (also ``referrers``)."""
    found: list[Any] = [type(obj)]
    for klass in _MRO.__get__(type(obj)):
        if klass in _BASES or klass is object:
            continue
        for name, descriptor in list(_TYPE_DICT.__get__(klass).items()):
            if type(descriptor) is _MEMBER or (type(descriptor) is _GETSET and name == "__dict__"):
                try:
                    found.append(descriptor.__get__(obj))
                except Exception:  # noqa: BLE001, S112 - an empty slot, no dict after all
                    continue
    return found


_OURS: list[Any] = []  # the entry of our own classes

# A module is followed through its __dict__, never through gc.get_referents(module):
# an extension module's traverse may visit memory that is not a live object. On
# 3.12.0-3.12.5 _asyncio's visits its free list of future iterators; handing those
# to Python double-frees them and loops the free list, so the next traverse of
# _asyncio never ends and the process hangs or crashes (CPython gh-122695; what
# froze asyncio targets under pympler-based heap walks on 3.12).
_MODULE_DICT: Any = vars(ModuleType)["__dict__"]  # the getter of md_dict: no user code
_ATOM, _CONTAINER, _MODULE, _OBJECT, _SUBCLASS = 0, 1, 2, 3, 4  # how an object is followed (_how_to_follow)
_MRO: Any = vars(type)["__mro__"]  # the getter of tp_mro: no metaclass property runs
_TYPE_DICT: Any = vars(type)["__dict__"]
_GETSET = type(vars(type)["__dict__"])  # getset_descriptor: a C getter
_MEMBER = type(vars(type)["__dictoffset__"])  # member_descriptor: a slot or C field read from the object
# the builtin containers whose subclasses' instances are followed through the base (a deque
# where threading, which uses one, has loaded _collections)
_DEQUE = getattr(sys.modules.get("_collections"), "deque", None)
_BASES: tuple[type, ...] = tuple(kind for kind in (dict, list, tuple, set, frozenset, _DEQUE) if kind)
_HAVE_GC = 1 << 14  # Py_TPFLAGS_HAVE_GC: only such objects have referents
_FLAGS: Any = vars(type)["__flags__"]  # the getter of tp_flags: no metaclass property runs


def _new_entry(kind: type, wanted: Wanted) -> list[Any]:
    if _is_ours(kind):
        return _OURS
    how = _how_to_follow(kind)
    return [0, 0, how, wanted is not None and wanted(kind), base_of(kind) if how == _SUBCLASS else None]


def _how_to_follow(kind: type) -> int:
    if kind is list or kind is tuple or kind is dict or kind is set or kind is frozenset:
        return _CONTAINER
    if issubclass(kind, ModuleType):
        return _MODULE
    if not _FLAGS.__get__(kind) & _HAVE_GC:
        return _ATOM
    return _SUBCLASS if base_of(kind) is not None else _OBJECT


def _is_ours(kind: type) -> bool:
    # type's own getter: a metaclass's __module__ property would run here (and may block)
    return module_of(kind).split(".")[0] == __name__.split(".")[0]


def _push_referents(containers: list[Any], seen: _Seen, stack: list[Any]) -> None:
    """Push what ``containers`` refer to and was not seen yet."""
    _push_new(gc.get_referents(*containers), seen, stack)


def _push_new(refs: list[Any], seen: _Seen, stack: list[Any]) -> None:
    """Push the objects of ``refs`` not seen yet (``seen.add``, inlined: the hot loop)."""
    pages = seen.pages
    push = stack.append
    for ref in refs:
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


def _push_chunk(cursor: _Cursor, seen: _Seen, stack: list[Any]) -> float:
    """Push the next items of a huge container, its cursor below them while items remain; the time after."""
    chunk = cursor.next_chunk()
    if not cursor.done:
        stack.append(cursor)
    if cursor.pairs:
        chunk = [part for pair in chunk for part in pair]  # dict items: keys and values
    _push_new(chunk, seen, stack)
    return _clock()


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
    """Where the walk starts: modules, every thread's frames and locals, the young generations, gc.garbage."""
    package = __name__.split(".")[0]
    roots: list[Any] = [
        module for name, module in list(sys.modules.items()) if name.split(".")[0] != package and module is not None
    ]
    roots.append(sys.modules)
    roots.append(gc.garbage)
    agent_threads = set(AGENT_THREAD_IDS)
    for ident, top in thread_frames().items():  # not this frame: see thread_frames
        frame: Any = None if ident in agent_threads else top
        while frame is not None:
            roots.append(frame)
            if _LOCALS_NOT_VISITED:
                roots.extend(_locals_of(frame))
            frame = frame.f_back
    # Young objects may be held only from C (a list a C function is building); they
    # are few, by the GC's own thresholds. Generation 1 means another thing in 3.14.
    start = len(roots)
    roots.extend(gc.get_objects(0))
    if sys.version_info < (3, 14):
        roots.extend(gc.get_objects(1))
    # not this list itself, young too: holding itself, it was freed only by a collection, and with it the
    # walk's young marks and result; the next walk then found them among the young and counted them. (A
    # loop by identity: a comprehension over ``roots`` would make it a closure's cell before 3.12, a young
    # object that the list holds and that holds the list; ``remove`` would compare with ==, the program's.)
    for index in range(len(roots) - 1, start - 1, -1):
        if roots[index] is roots:
            del roots[index]
    return roots


def _locals_of(frame: Any) -> list[Any]:
    """The values of a running frame's local variables (3.11+), leaving the frame as it was."""
    return [value for _, value in local_items(frame)]


def local_items(frame: Any) -> list[tuple[Any, Any]]:
    """(name, value) of a frame's local variables, leaving the frame as it was (also ``referrers``).

    From 3.13 ``f_locals`` is a view that reads them in place. On 3.11 and 3.12 it
    copies them into a dict the frame keeps, which would hold the values we saw
    alive after the function dropped them: when nobody else holds that dict (the
    frame, our name and getrefcount's argument: 3) and the frame is a function's,
    it is emptied again. That is safe: whoever asks for it next (``locals()``, a
    debugger) gets it refilled from the variables first, and a tracer's copy back
    into the variables skips missing names.
    """
    try:
        namespace = frame.f_locals
        items = list(namespace.items())
        if (
            _SNAPSHOT_LOCALS
            and type(namespace) is dict
            and frame.f_code.co_flags & _CO_OPTIMIZED
            and sys.getrefcount(namespace) == 3
        ):
            namespace.clear()
    except Exception:  # noqa: BLE001 - a frame that cannot show its locals is walked without them
        return []
    return items


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
    for ident, top in thread_frames().items():  # not this frame, which ``found`` would hold: a cycle
        frame: Any = top if ident in agent_threads else None
        while frame is not None:
            found.append(frame)
            frame = frame.f_back
    return found
