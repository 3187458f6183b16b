"""Why an object is still alive: the chain of references from a root to it (``vmtool -a referenceAnalyze``).

``gc.get_referrers`` is not used: each call is one C pass over every tracked object
(a stall linear in the heap), and following it backwards from an object needs one
call per step. Instead the search goes forwards from the roots, breadth-first, so
the first path that reaches an instance is a shortest one:

1. **Out**, level by level from the roots (module globals, threads' frames and their
   local variables, ``sys.modules``, ``gc.garbage``; the young GC generations only
   after everything reachable from those, since they also hold objects that are
   referenced from elsewhere), a batch of ``gc.get_referents`` at a time with the
   pauses and the visited-bitmap of ``heapwalk``. It stops as soon as ``limit``
   instances were met, or ``depth`` levels were walked. Of each level it keeps the
   objects that may refer to others (their type takes part in GC); atoms (str, int,
   ...) are not kept. That is the search's memory: 8 bytes per container nearer to
   a root than the instances shown, never a map from every object to its parent;
   past ``KEPT`` containers (64 MB) the search stops and says so.
2. **Back**, one stored level at a time from the deepest: the batch of that level
   whose referents include an object of the chains is looked into one object at a
   time to find which one holds it. Each level is read once for every chain at once,
   so going back costs at most one more pass over what step 1 walked.
3. **Naming** each step: the key of a dict, the index in a list, the attribute of an
   object (its ``__dict__`` or ``__slots__``), read by identity only. No ``__eq__``,
   ``__hash__``, ``__repr__`` or ``__getattr__`` of the program runs: keys are shown
   only when they are plain str/int/float/bytes/bool/None (or tuples of them).

The agent's own objects are marked visited before the walk and never reached.
"""

from __future__ import annotations

import gc
import sys
import threading
from itertools import islice
from types import FrameType, ModuleType

from . import heapwalk
from .context import AGENT_THREAD_IDS
from .describe import type_name
from .realthreads import thread_frames

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, Tuple

    from .realthreads import Event

    Root = Tuple[str, str]  # (kind, text)
    Step = Dict[str, Any]

_HAVE_GC = 1 << 14  # Py_TPFLAGS_HAVE_GC: only such objects have referents
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python (its attribute access may run its code)
KEPT = 8_000_000  # containers kept for the way back (8 bytes each): past it the search stops, said so
# The lists that keep the levels are new, so the collector's young collections traverse them,
# every entry a random read of an object: a collection that met 700 such lists at once (the
# young threshold counts lists, not entries) stalled the target 35-80 ms. So once the entries
# kept since the last time reach YOUNG_KEPT, one young collection is run at that size (about
# 1 ms), which moves the lists to the old generation where only a full collection looks again.
# The collection is itself a stall (one C call): it runs at the start of a slice, is timed, and
# the next one comes sooner when it took more than a quarter of the slice's budget.
YOUNG_KEPT = 20000
MIN_YOUNG_KEPT = 1000
_AGE_GENERATION = 0 if sys.version_info >= (3, 14) else 1  # 3.14: young survivors go straight to the old one
LOOK = 100000  # entries of one container read to name a step; a key past them is shown as [?]
KEY_TEXT = 60  # characters of a key's repr shown
_FLAGS: Any = vars(type)["__flags__"]  # the getter of tp_flags: no metaclass property runs
_MRO: Any = vars(type)["__mro__"]  # the getter of tp_mro: no metaclass property runs
_TYPE_DICT: Any = vars(type)["__dict__"]
_GETSET = type(vars(type)["__dict__"])  # getset_descriptor: a C getter
_MEMBER = type(vars(type)["__dictoffset__"])  # member_descriptor: a slot read from the object's memory
_CO_OPTIMIZED = 0x1
_GENERIC_GETATTR: Any = object.__getattribute__  # a type that kept it: getattr reads slots and dicts only
# attributes of builtin objects that hold references, read with getattr: the types are the
# interpreter's (not the program's), so no code of the program runs
_BUILTIN_ATTRS = (
    "__self__",
    "__func__",
    "cell_contents",
    "__closure__",
    "__defaults__",
    "__kwdefaults__",
    "__globals__",
    "__code__",
    "__wrapped__",
    "f_globals",
    "f_back",
    "f_code",
    "gi_frame",
    "cr_frame",
    "ag_frame",
    "__objclass__",
    "fget",
    "fset",
    "fdel",
)


class Found:
    """The result of one search: a chain per instance shown, and what the walk covered."""

    __slots__ = ("bounded", "chains", "complete", "levels", "pacing", "walked")

    def __init__(self) -> None:
        self.chains: list[dict[str, Any]] = []
        self.walked = 0  # objects met
        self.levels = 0  # levels walked
        self.complete = False  # True: every object reachable was met (fewer instances than asked)
        self.bounded = False  # True: stopped when it had kept KEPT containers
        self.pacing: dict[str, Any] = {}  # heapwalk.Pacer.finish(): how long the search held the GIL at most


def analyze(cancelled: Event, wanted: Callable[[type], bool], limit: int, depth: int) -> Found | None:
    """Chains from a root to up to ``limit`` instances (nearest first); None when cancelled."""
    search = _Search(cancelled, wanted, limit, depth)
    try:
        chains = search.back() if search.out() else None
    finally:
        for level in search.levels:
            search.drop(level)
    if chains is None:
        return None
    found = Found()
    for chain in chains:  # naming a step may read a big container's items (LOOK): in slices too
        found.chains.append(_describe(chain, search.roots))
        search.pace.tick()
    found.walked = search.walked
    found.levels = len(search.levels)
    found.complete = search.complete
    found.bounded = search.bounded
    found.pacing = search.pace.finish()
    return found


class _Search:
    def __init__(self, cancelled: Event, wanted: Callable[[type], bool], limit: int, depth: int) -> None:
        self.cancelled = cancelled
        self.wanted = wanted
        self.limit = limit
        self.depth = depth
        self.seen = heapwalk._Seen()
        self.kinds: dict[type, int] = {}  # type -> 0 atom, 1 container, 2 module, 3 wanted, -1 ours
        self.bases: dict[type, Any] = {}  # type -> the builtin container it derives from (or is), or None
        # the containers of each level walked, in chunks of at most a batch's referents: a young GC
        # collection that meets one of our lists then traverses a chunk, never a level of millions
        self.levels: list[list[list[Any]]] = []
        self.hits: list[list[Any]] = []  # [instance, level of its holder, holder]
        self.roots: dict[int, Root] = {}  # id -> (kind, text) of the first level
        self.walked = 0
        self.complete = False
        self.bounded = False
        self.kept = 0
        self.young = 0  # entries kept since the last young collection we ran (see YOUNG_KEPT)
        self.young_kept = YOUNG_KEPT  # entries kept between two of them, shrunk when one took long
        self.pace = heapwalk.Pacer(cancelled)
        for obj in (self, self.seen, self.seen.pages, self.kinds, self.bases, self.levels, self.hits, self.roots):
            self.seen.add(obj)
        for obj in heapwalk._agent_objects():
            self.seen.add(obj)

    # -- step 1: out from the roots ------------------------------------------------------------

    def out(self) -> bool:
        level: list[list[Any]] = []  # the chunks of the level being walked
        following: list[list[Any]] = []  # the chunks of the next one
        self.seen.add(level)
        self.seen.add(following)
        try:
            return self._out(level, following)
        finally:  # what is left of the last levels when the search stopped early
            self.drop(level)
            self.drop(following)

    def _out(self, level: list[list[Any]], following: list[list[Any]]) -> bool:
        level[:] = self._first_level(_roots())
        young = False
        while len(self.hits) < self.limit and len(self.levels) < self.depth:
            if not level:
                if young:
                    self.complete = True
                    break
                young = True  # everything the roots reach was met: what only the young generations hold
                level[:] = self._first_level(_young_roots())
                continue
            if self.kept > KEPT:
                self.bounded = True
                break
            kept: list[list[Any]] = []  # for step 2: the batches of this level that led somewhere
            self.seen.add(kept)
            self.levels.append(kept)
            if not self._expand(level, following, kept):  # empties level
                return False
            level[:] = following
            del following[:]
        return True

    def _first_level(self, roots: list[tuple[Any, str, str]]) -> list[list[Any]]:
        level: list[Any] = []
        self.seen.add(level)
        self.seen.add(roots)
        for obj, kind, text in roots:
            if self.seen.add(obj):
                self.walked += 1
                known = self._kind(type(obj))
                if _CONTAINER <= known <= _WANTED:
                    level.append(obj)
                if known >= _WANTED:  # a root itself (a local variable holding it)
                    self.hits.append([obj, -1, None])
                if known != _ATOM:
                    self.roots[id(obj)] = (kind, text)
        chunks = [
            level[start : start + heapwalk.BIG_CONTAINER] for start in range(0, len(level), heapwalk.BIG_CONTAINER)
        ]
        for chunk in chunks:
            self.seen.add(chunk)
        self.seen.add(chunks)
        return chunks

    def _kind(self, kind: type) -> int:
        known = self.kinds.get(kind)
        if known is None:
            known = self.kinds[kind] = _classify(kind, self.wanted)
            if known in (_CONTAINER, _WANTED):  # its items may be many: read through its base
                self.bases[kind] = heapwalk.base_of(kind)
        return known

    def _expand(self, level: list[list[Any]], following: list[list[Any]], kept: list[list[Any]]) -> bool:
        """Push what the objects of ``level`` refer to and was not met yet; note the instances met.

        A batch is kept for the way back only when it led to a container not met before or
        to an instance: a batch of lists that hold only numbers cannot be on any chain.
        """
        batch: list[Any] = []
        weight = 0
        kinds = self.kinds
        bases = self.bases
        for obj in _each(level):  # containers only (_take pushes no atom)
            if kinds[type(obj)] == _MODULE:  # through its __dict__ (see heapwalk._MODULE_DICT)
                if not self._take([heapwalk._MODULE_DICT.__get__(obj)], [obj], following, kept):
                    return True
                continue
            base = bases.get(type(obj))
            size = heapwalk.weight(obj, base) if base is not None else heapwalk.OBJECT_WEIGHT
            if size > heapwalk.HUGE:
                if not self._huge(obj, base, following, kept):
                    return self.cancelled.is_set() is False
                continue
            batch.append(obj)
            weight += size
            if weight >= heapwalk.HUGE or len(batch) >= heapwalk.SLICE:  # at most BIG_CONTAINER references
                if not self._take(gc.get_referents(*batch), batch, following, kept):
                    return True
                batch, weight = [], 0
                if not self._pause():
                    return False
        if batch and not self._take(gc.get_referents(*batch), batch, following, kept):
            return True
        return self._pause()

    def _huge(self, obj: Any, base: Any, following: list[list[Any]], kept: list[list[Any]]) -> bool:
        """A container too long for one get_referents call, a slice at a time; False: stop."""
        cursor = heapwalk._Cursor(obj, base)
        holders = [obj]
        if base is not type(obj) and not self._take(heapwalk.own_references(obj), holders, following, kept):
            return False
        while True:
            chunk = cursor.next_chunk()
            if cursor.pairs:
                chunk = [part for pair in chunk for part in pair]
            if not self._take(chunk, holders, following, kept):
                return False
            if cursor.done or not self._pause():
                return not self.cancelled.is_set()

    def _take(self, refs: list[Any], holders: list[Any], following: list[list[Any]], kept: list[list[Any]]) -> bool:
        """Mark ``refs``, push the containers new among them as one chunk, keep ``holders`` when
        that led somewhere; False once ``limit`` instances were met."""
        hits = len(self.hits)
        pages = self.seen.pages
        fresh: list[Any] = []
        self.seen.add(fresh)
        push = fresh.append
        kinds = self.kinds
        met = 0
        for ref in refs:  # heapwalk._Seen.add, inlined: the hot loop
            slot = id(ref) >> 4
            page = pages.get(slot >> 16)
            if page is None:
                page = pages[slot >> 16] = bytearray(8192)
            index = (slot >> 3) & 0x1FFF
            byte = page[index]
            bit = 1 << (slot & 7)
            if byte & bit:
                continue
            page[index] = byte | bit
            met += 1
            kind = kinds.get(type(ref))
            if kind is None:
                kind = self._kind(type(ref))
            if kind == _ATOM:
                continue  # never a holder: not kept, not followed
            if kind <= _WANTED and kind != _OURS:
                push(ref)
            if kind >= _WANTED:
                self.hits.append([ref, len(self.levels) - 1, _holder(holders, ref)])
                if len(self.hits) >= self.limit:
                    break
        self.walked += met
        if fresh or len(self.hits) > hits:
            self._keep(holders, fresh, following, kept)
        return len(self.hits) < self.limit

    def _keep(self, holders: list[Any], fresh: list[Any], following: list[list[Any]], kept: list[list[Any]]) -> None:
        """Keep ``holders`` for the way back and ``fresh`` for the next level."""
        if not kept or kept[-1] is not holders:  # a huge container's slices: kept once
            self.seen.add(holders)  # not a root when the young generations are walked
            kept.append(holders)
            self.young += len(holders)
        if fresh:
            following.append(fresh)
            self.kept += len(fresh)
            self.young += len(fresh)
        if self.young >= self.young_kept:
            self._age()

    def _age(self) -> None:
        """Move the lists kept so far out of the young generation, while they are few (see YOUNG_KEPT).

        Not when the program turned the collector off: then no young collection ever
        meets them, and a collection it did not ask for would run its finalizers.
        """
        self.young = 0
        if not gc.isenabled():
            return
        took = self.pace.collect(_AGE_GENERATION)
        goal = self.pace.budget / 4
        if took > goal:  # its cost grows with the entries kept since the last one
            self.young_kept = max(MIN_YOUNG_KEPT, int(self.young_kept * goal / took))
        elif took < goal / 4:
            self.young_kept = min(YOUNG_KEPT, self.young_kept * 2)

    def _pause(self) -> bool:
        """Between two steps: the slice ends when its budget is spent (heapwalk.Pacer); False when cancelled."""
        return self.pace.tick()

    def drop(self, chunks: list[list[Any]]) -> None:
        """Let go of ``chunks`` one at a time, pausing as the walk does.

        Dropping a list of millions of references at once is one C call that
        decrements every object's count, scattered over the heap, with the GIL held.
        """
        while chunks:
            del chunks[-1]
            self.pace.tick()  # cancelled or not, what was kept is let go of

    # -- step 2: back to the roots -----------------------------------------------------------

    def back(self) -> list[list[Any]] | None:
        """Each instance's chain, root first; None when cancelled."""
        parent: dict[int, Any] = {}  # id(object of a chain) -> its holder
        at: dict[int, int] = {}  # id(holder) -> its level
        for obj, level, holder in self.hits:
            if holder is not None:
                parent[id(obj)] = holder
                at[id(holder)] = level
        for level in range(len(self.levels) - 1, 0, -1):
            need = {key: holder for key, holder in _objects_at(at, parent, level) if key not in self.roots}
            if need and not self._holders(self.levels[level - 1], need, parent, at, level - 1):
                return None
        chains = []
        for obj, _level, _holder in self.hits:
            chain = [obj]
            while id(chain[-1]) in parent and len(chain) <= len(self.levels) + 1:
                chain.append(parent[id(chain[-1])])
            chain.reverse()
            chains.append(chain)
        return chains

    def _holders(
        self, level: list[list[Any]], need: dict[int, Any], parent: dict[int, Any], at: dict[int, int], depth: int
    ) -> bool:
        """Find in ``level`` (the batches kept of it) a holder of each object of ``need`` (ids)."""
        for holders in level:
            if len(holders) == 1 and self._is_huge(holders[0]):
                self._huge_holder(holders, need, parent, at, depth)
            else:
                self._note(set(map(id, _referents_of(holders))), holders, need, parent, at, depth)
            if not need:
                return True
            if not self._pause():
                return False
        return not self.cancelled.is_set()

    def _is_huge(self, obj: Any) -> bool:
        """Whether the walk followed ``obj`` a slice at a time (_huge)."""
        base = self.bases.get(type(obj))
        return base is not None and heapwalk.weight(obj, base) > heapwalk.HUGE

    def _huge_holder(
        self, holders: list[Any], need: dict[int, Any], parent: dict[int, Any], at: dict[int, int], depth: int
    ) -> None:
        base = self.bases[type(holders[0])]
        cursor = heapwalk._Cursor(holders[0], base)
        if base is not type(holders[0]):
            self._note(set(map(id, heapwalk.own_references(holders[0]))), holders, need, parent, at, depth)
        while need:
            chunk = cursor.next_chunk()
            if cursor.pairs:
                chunk = [part for pair in chunk for part in pair]
            self._note(set(map(id, chunk)), holders, need, parent, at, depth)
            if cursor.done or not self._pause():
                break

    @staticmethod
    def _note(
        ids: set[int], holders: list[Any], need: dict[int, Any], parent: dict[int, Any], at: dict[int, int], depth: int
    ) -> None:
        for key in [key for key in need if key in ids]:
            holder = _holder(holders, need.pop(key))
            if holder is not None:
                parent[key] = holder
                at.setdefault(id(holder), depth)


def _each(level: list[list[Any]]) -> Iterator[Any]:
    """The objects of ``level``, its chunks let go of one at a time as they are read (see drop)."""
    level.reverse()
    while level:
        chunk = level.pop()
        yield from chunk
        del chunk


# what the search does with objects of a type
_OURS, _ATOM, _CONTAINER, _MODULE, _WANTED, _WANTED_ATOM = -1, 0, 1, 2, 3, 4


def _classify(kind: type, wanted: Callable[[type], bool]) -> int:
    if heapwalk._is_ours(kind):
        return _OURS
    has_referents = _HAVE_GC & _FLAGS.__get__(kind)
    if wanted(kind):
        return _WANTED if has_referents else _WANTED_ATOM
    if issubclass(kind, ModuleType):
        return _MODULE
    return _CONTAINER if has_referents else _ATOM


def _objects_at(at: dict[int, int], parent: dict[int, Any], level: int) -> list[tuple[int, Any]]:
    """The holders noted at ``level`` that need a holder of their own (id, object)."""
    wanted = []
    for holders in list(parent.values()):
        key = id(holders)
        if at.get(key) == level and key not in parent:
            wanted.append((key, holders))
    return wanted


def _referents_of(objects: list[Any]) -> list[Any]:
    """What ``objects`` refer to, modules through their __dict__ (as the walk followed them)."""
    if len(objects) > 1:  # a batch of the walk: a module is always kept alone (_Search._expand)
        return gc.get_referents(*objects)
    plain = [obj for obj in objects if not issubclass(type(obj), ModuleType)]
    refs = gc.get_referents(*plain)
    if len(plain) < len(objects):
        refs.extend(heapwalk._MODULE_DICT.__get__(obj) for obj in objects if issubclass(type(obj), ModuleType))
    return refs


def _holder(holders: list[Any], obj: Any) -> Any:
    """The first of ``holders`` that refers to ``obj`` (by identity)."""
    if len(holders) == 1:
        return holders[0]
    for holder in holders:
        for ref in _referents_of([holder]):
            if ref is obj:
                return holder
    return None


# -- roots -------------------------------------------------------------------------------------


def _roots() -> list[tuple[Any, str, str]]:
    """(object, kind, text) of every root: module globals first, then threads' variables."""
    package = __name__.split(".")[0]
    roots: list[tuple[Any, str, str]] = []
    # type(), not isinstance(): an object may claim to be a module through __class__ (cffi's Lib
    # does); anything else in sys.modules is reached from the root sys.modules
    modules = [
        (name, module)
        for name, module in list(sys.modules.items())
        if type(name) is str and issubclass(type(module), ModuleType)
    ]
    modules.sort(key=lambda pair: pair[0] != "__main__")  # the program's own globals first
    for name, module in modules:
        if name.split(".")[0] != package:
            roots.append((heapwalk._MODULE_DICT.__get__(module), "module", name))
    roots.append((sys.modules, "sys.modules", "sys.modules"))
    roots.append((gc.garbage, "gc.garbage", "gc.garbage"))
    names = _thread_names()
    agent_threads = set(AGENT_THREAD_IDS)
    frames: list[tuple[Any, str, str]] = []
    for ident, top in thread_frames().items():  # not this frame: see thread_frames
        frame: Any = None if ident in agent_threads else top
        thread = names.get(ident, "thread %d" % ident)
        while frame is not None:
            where = "%s() in thread %r" % (frame.f_code.co_name, thread)
            if frame.f_code.co_flags & _CO_OPTIMIZED:  # a function's (a module's locals are its globals)
                for name, value in _local_items(frame):
                    roots.append((value, "local", "%s\0%s" % (name, where)))
            frames.append((frame, "frame", where))
            frame = frame.f_back
    return roots + frames


def _young_roots() -> list[tuple[Any, str, str]]:
    young = [
        (obj, "young", "gc generation 0 (held from C code, or unreachable and not collected yet)")
        for obj in gc.get_objects(0)
    ]
    if sys.version_info < (3, 14):
        young.extend((obj, "young", "gc generation 1 (held from C code, or unreachable)") for obj in gc.get_objects(1))
    return young


def _local_items(frame: Any) -> list[tuple[str, Any]]:
    """(name, value) of a frame's local variables named by a str, leaving the frame as it was."""
    return [(name, value) for name, value in heapwalk.local_items(frame) if type(name) is str]


def _thread_names() -> dict[int, str]:
    """Thread idents and names, read from the Thread objects' own dicts (no property of a subclass runs)."""
    names = {}
    for thread in threading.enumerate():
        own = _own_dict(thread)
        name, ident = own.get("_name"), own.get("_ident")
        if type(name) is str and type(ident) is int:
            names[ident] = name[:80]
    return names


def _own_dict(obj: Any) -> dict[str, Any]:
    """An object's instance dict through the interpreter's getter, or {} (no ``__getattr__`` runs)."""
    for klass in _MRO.__get__(type(obj)):
        descriptor = _TYPE_DICT.__get__(klass).get("__dict__")
        if type(descriptor) is _GETSET:
            try:
                found = descriptor.__get__(obj)
            except Exception:  # noqa: BLE001 - no dict after all
                return {}
            return found if type(found) is dict else {}
    return {}


# -- naming the steps --------------------------------------------------------------------------


def _describe(chain: list[Any], roots: dict[int, Root]) -> dict[str, Any]:
    """The chain as shown: its root (kind, name, where, type) and each step (via, type), root first."""
    kind, text = roots.get(id(chain[0]), ("unknown", "?"))
    steps: list[Step] = []
    for holder, held in zip(chain, chain[1:]):
        steps.append({"via": _edge(holder, held), "type": type_name(type(held))})
    steps = _merge_dicts(steps)
    root: dict[str, Any] = {"kind": kind, "name": text, "type": type_name(type(chain[0]))}
    if kind == "module":
        first = _attr_name(steps[0]["via"]) if steps else None
        if first is not None:
            root.update(kind="global", name="%s.%s" % (text, first), type=steps.pop(0)["type"])
        else:
            root.update(name="vars(%s)" % text)
    elif kind == "local":
        root["name"], root["where"] = text.split("\0", 1)
    elif kind in ("frame", "young"):
        root.update(name="<%s>" % kind, where=text)
    elif kind == "unknown":
        root["where"] = "the program changed this chain while it was searched"
    target = chain[-1]
    return {"object": "%s at 0x%x" % (type_name(type(target)), id(target)), "root": root, "steps": steps}


def _attr_name(via: str) -> str | None:
    """``name`` of a step ``['name']`` whose key is an identifier."""
    if via.startswith("['") and via.endswith("']") and via[2:-2].isidentifier():
        return via[2:-2]
    return None


def _merge_dicts(steps: list[Step]) -> list[Step]:
    """``.__dict__`` then ``['name']`` is the attribute ``.name`` (of a class or an instance)."""
    merged: list[Step] = []
    for step in steps:
        name = _attr_name(step["via"])
        if merged and merged[-1]["via"] == ".__dict__" and name is not None:
            merged[-1] = {"via": "." + name, "type": step["type"]}
            continue
        merged.append(step)
    return merged


def _edge(holder: Any, held: Any) -> str:
    """How ``holder`` refers to ``held``: ``['key']``, ``[3]``, ``.attr``...; "" when it cannot be read safely."""
    try:
        return _edge_of(holder, held)
    except Exception:  # noqa: BLE001 - a step that cannot be named is shown without its name
        return ""


def _edge_of(holder: Any, held: Any) -> str:
    kind = type(holder)
    # the base class's C methods read a subclass's items too, without its overrides
    if issubclass(kind, dict):
        return _dict_edge(holder, held) if kind is dict else _dict_edge(holder, held, "") or _attribute(holder, held)
    if issubclass(kind, (list, tuple)) or kind is getattr(sys.modules.get("_collections"), "deque", None):
        base = list if issubclass(kind, list) else tuple if issubclass(kind, tuple) else kind
        for index, item in enumerate(islice(base.__iter__(holder), LOOK)):
            if item is held:
                return "[%d]" % index
        return _attribute(holder, held) or "[?]"
    if issubclass(kind, (set, frozenset)):
        return "{...}"
    if issubclass(kind, ModuleType):
        return ".__dict__"
    if issubclass(kind, type):
        return _class_edge(holder, held)
    if kind is FrameType:
        for name, value in _local_items(holder):
            if value is held:
                return ".f_locals[%r]" % name
    named = _attribute(holder, held)
    if named or _FLAGS.__get__(kind) & _HEAPTYPE or kind.__getattribute__ is not _GENERIC_GETATTR:
        return named  # past this point only getattr, safe on the interpreter's own plain types
    return _builtin_edge(holder, held)


def _builtin_edge(holder: Any, held: Any) -> str:
    for name in _BUILTIN_ATTRS:
        try:
            if getattr(holder, name, None) is held:
                return "." + name
        except Exception:  # noqa: BLE001, S112 - a getter that fails: not this one
            continue
    return ""


def _dict_edge(holder: dict[Any, Any], held: Any, missing: str = "[?]") -> str:
    for key, value in islice(dict.items(holder), LOOK):
        if value is held:
            return "[%s]" % _key_text(key)
        if key is held:
            return ".keys()"
    return missing


def _key_text(key: Any) -> str:
    """repr() of a key whose repr is the interpreter's own; otherwise its type and address."""
    kind = type(key)
    if kind is tuple and len(key) <= 4:
        return "(%s%s)" % (", ".join(_key_text(item) for item in key), "," if len(key) == 1 else "")
    if kind is str or kind is int or kind is float or kind is bytes or kind is bool or key is None:
        text = repr(key)
        return text if len(text) <= KEY_TEXT else text[: KEY_TEXT - 3] + "..."
    return "<%s at 0x%x>" % (type_name(kind), id(key))


def _class_edge(holder: type, held: Any) -> str:
    namespace = _TYPE_DICT.__get__(holder)  # a mappingproxy over the class's own dict
    if any(ref is held for ref in gc.get_referents(namespace)):
        return ".__dict__"
    if _MRO.__get__(holder) is held:
        return ".__mro__"
    for name, value in islice(namespace.items(), LOOK):
        if value is held:
            return "." + name if type(name) is str else ""
    return ""


def _attribute(holder: Any, held: Any) -> str:
    """``.name`` when ``held`` is an attribute of ``holder``: in its __dict__ or __slots__, read with
    the interpreter's getters."""
    own = _own_dict(holder)
    if own is held:
        return ".__dict__"
    name = _attr_name(_dict_edge(own, held)) if own else None
    if name is not None:
        return "." + name
    for klass in _MRO.__get__(type(holder)):
        if not _FLAGS.__get__(klass) & _HEAPTYPE:
            continue
        for slot, descriptor in list(_TYPE_DICT.__get__(klass).items()):
            if type(descriptor) is _MEMBER:
                try:
                    if descriptor.__get__(holder) is held:
                        return "." + slot if type(slot) is str else ""
                except AttributeError:  # an empty slot
                    continue
    return ""
