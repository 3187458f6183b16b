"""The heap walks' time slices (``heapwalk.Pacer``), with a fake clock: no sleeping, no timed assertions.

The walk's own clock, CPU clock and sleep are replaced by one clock that the test
advances: by a fixed cost per object a batch handles, per reference a search step
takes, per collection. What is checked is the control: a slice ends as soon as its
budget is spent (within one small step), each ends with a pause, the longest is
reported, and a step that meets costly objects stops early.
"""

from __future__ import annotations

import collections
import gc
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from flight_profiler.commands.mem import agent as mem_agent
from flight_profiler.services import heapwalk, realthreads, referrers

COST = 1e-6  # fake seconds per object (walk) or per reference (search)


class FakeClock:
    """Wall and CPU clock at once; ``sleep`` advances it and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    fake = FakeClock()
    monkeypatch.setattr(heapwalk, "_clock", fake)
    monkeypatch.setattr(heapwalk, "_cpu", fake)
    monkeypatch.setattr(heapwalk, "_sleep", fake.sleep)
    yield fake


def test_a_slice_ends_once_its_budget_is_spent(clock: FakeClock) -> None:
    pace = heapwalk.Pacer(realthreads.Event(), budget=0.004, pause=0.001)
    for _ in range(3):
        clock.advance(0.001)
        assert pace.tick() and clock.sleeps == []  # 3 ms of 4: the slice goes on
    clock.advance(0.0015)  # 4.5 ms: spent
    assert pace.tick() and clock.sleeps == [0.001]
    assert pace.left() == pytest.approx(0.004)  # the next slice began after the pause
    clock.advance(0.002)
    report = pace.finish()
    where = report.pop("longest_where")
    assert report == {"slices": 2, "budget_ms": 4.0, "longest_ms": 4.5, "longest_cpu_ms": 4.5}
    assert where.startswith("test_a_slice_ends_once_its_budget_is_spent:"), where  # who asked for the pause


def test_cancelled_is_seen_at_the_pause(clock: FakeClock) -> None:
    cancelled = realthreads.Event()
    pace = heapwalk.Pacer(cancelled, budget=0.004)
    cancelled.set()
    assert pace.tick()  # within the slice: not looked at
    clock.advance(0.005)
    assert not pace.tick() and len(clock.sleeps) == 1


class Item:
    __slots__ = ("tags", "value")

    def __init__(self, value: int) -> None:
        self.value = value
        self.tags = [value]


@pytest.fixture
def big_module() -> Iterator[types.ModuleType]:
    """20 000 objects in a module: a heap of known shape under this process's own."""
    made = types.ModuleType("fp_slices_probe")
    made.ITEMS = [Item(index) for index in range(10000)]  # type: ignore[attr-defined]
    sys.modules[made.__name__] = made
    yield made
    del sys.modules[made.__name__]


class Recording(heapwalk.Pacer):
    """A pacer that keeps the length of each slice as it ends."""

    __slots__ = ("lengths",)
    made: list[Recording] = []

    def __init__(self, cancelled: Any) -> None:
        self.lengths: list[float] = []
        super().__init__(cancelled)
        Recording.made.append(self)

    def _end(self) -> None:
        self.lengths.append(heapwalk._clock() - self.started)
        super()._end()


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Recording]]:
    monkeypatch.setattr(heapwalk, "Pacer", Recording)
    Recording.made = []
    yield Recording.made


def test_the_walk_ends_each_slice_at_its_budget(
    clock: FakeClock, big_module: types.ModuleType, recording: list[Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    visit = heapwalk._visit
    visited: list[int] = []

    def costly(batch: list[Any], seen: Any, state: Any, stack: list[Any], until: float) -> None:
        visit(batch, seen, state, stack, float("inf"))
        clock.advance(len(batch) * COST)  # the cost of the batch, known only once it ran
        visited.append(len(batch))

    monkeypatch.setattr(heapwalk, "_visit", costly)
    found = heapwalk.walk(realthreads.Event(), [])
    assert found is not None
    (pace,) = recording
    report = found.pace.finish()
    lengths = pace.lengths[:-1]  # the last: finish()'s
    total = sum(visited) * COST
    assert sum(visited) > 20000 and len(lengths) + 1 >= total / (heapwalk.SLICE_BUDGET + heapwalk.MIN_SLICE * COST)
    # a slice ends within one smallest batch of its budget (the first began with the walk's roots)
    assert max(lengths) <= heapwalk.SLICE_BUDGET + heapwalk.MIN_SLICE * COST + 1e-9, [
        (index, length) for index, length in enumerate(lengths) if length > 0.00407
    ]
    assert clock.sleeps == [heapwalk.SLICE_PAUSE] * len(lengths)
    assert max(visited) <= heapwalk.MAX_SLICE
    assert report["slices"] == len(lengths) + 1 and report["longest_ms"] <= heapwalk.SLICE_BUDGET * 1000 + 0.1


def test_a_batch_that_meets_costly_objects_stops_early(clock: FakeClock) -> None:
    lists = [list(range(index * 2000, index * 2000 + 2000)) for index in range(6)]
    seen = heapwalk._Seen()
    state = heapwalk._State(heapwalk.Walk(heapwalk.Pacer(realthreads.Event())), False, None, 0)
    stack: list[Any] = []
    heapwalk._visit(list(lists), seen, state, stack, until=clock.now)  # already spent
    # the first get_referents call (two lists: 4000 references, past HUGE) ran; the four others wait
    assert [obj for obj in stack if type(obj) is list] == lists[2:]
    assert len(stack) == 4000 + 4
    assert state.types[list][heapwalk.COUNT] == 2


def test_the_search_ends_each_slice_at_its_budget(
    clock: FakeClock, big_module: types.ModuleType, recording: list[Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    take = referrers._Search._take
    steps: list[int] = []

    def costly(self: Any, refs: list[Any], *rest: Any) -> bool:
        clock.advance(len(refs) * COST)
        steps.append(len(refs))
        return take(self, refs, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(referrers._Search, "_take", costly)
    monkeypatch.setattr(gc, "isenabled", lambda: False)  # no collection of ours (the next test's)
    found = referrers.analyze(realthreads.Event(), lambda kind: kind is Item, 3, 100)
    assert found is not None and len(found.chains) == 3
    (pace,) = recording
    slices = pace.lengths[:-1]
    assert len(slices) >= sum(steps) * COST / heapwalk.SLICE_BUDGET / 2
    # one step of the search (a batch: fewer than BIG_CONTAINER references) past the budget
    assert max(slices) <= heapwalk.SLICE_BUDGET + max(steps) * COST + 1e-9
    assert max(steps) < heapwalk.BIG_CONTAINER
    assert found.pacing["slices"] == len(slices) + 1


def test_the_searchs_collections_start_a_slice_and_come_sooner_when_long(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("fp_slices_young")
    Far = type("Far", (), {})  # no other instance anywhere
    module.MANY = [[index] for index in range(3000)] + [[[Far()]]]  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    monkeypatch.setattr(referrers, "YOUNG_KEPT", 400)
    monkeypatch.setattr(referrers, "MIN_YOUNG_KEPT", 50)
    into_slice: list[float] = []
    kept: list[int] = []
    searches: list[Any] = []
    age = referrers._Search._age

    def collect(generation: int = 2) -> int:
        (search,) = searches
        into_slice.append(clock.now - search.pace.started)
        kept.append(search.young_kept)
        clock.advance(0.003)  # each collection takes 3 ms: over a quarter of the budget
        return 0

    def noting(self: Any) -> None:
        if not searches:
            searches.append(self)
        age(self)

    monkeypatch.setattr(referrers._Search, "_age", noting)
    monkeypatch.setattr(gc, "collect", collect)  # the one heapwalk.Pacer.collect calls
    try:
        found = referrers.analyze(realthreads.Event(), lambda kind: kind is Far, 3, 100)
    finally:
        del sys.modules[module.__name__]
    assert found is not None and [chain["root"]["name"] for chain in found.chains] == ["fp_slices_young.MANY"]
    assert len(kept) >= 3 and all(at <= heapwalk.SLICE_BUDGET / 4 for at in into_slice), into_slice
    assert kept[:3] == [400, 133, 50], kept  # 400 * 1 ms / 3 ms, then the floor
    assert found.pacing["collections"] == len(kept) and found.pacing["longest_collection_ms"] == pytest.approx(3.0)


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("limit", [1, 4, 50])
def test_rows_sorted_in_steps_are_the_full_sorts(
    descending: bool, limit: int, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mem_agent, "ROWS_STEP", 3)
    counts = {"t%02d" % index: [index % 7, (index * 37) % 11] for index in range(40)}
    full = sorted(counts.items(), key=lambda item: (item[1][1], item[1][0], item[0]), reverse=descending)[:limit]
    pace = heapwalk.Pacer(realthreads.Event())
    rows = mem_agent._rows(counts, descending, limit, pace)
    assert [(row["type"], [row["count"], row["size"]]) for row in rows] == full
    clock.advance(1.0)
    mem_agent._rows(counts, descending, limit, pace)
    assert len(clock.sleeps) == 1  # a tick between steps


class Hostile(list):  # type: ignore[type-arg]
    """A list subclass whose own methods must never run during a walk."""

    def __iter__(self) -> Any:
        raise AssertionError("the walk ran the program's __iter__")

    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("the walk ran the program's __getitem__")

    def __len__(self) -> int:
        raise AssertionError("the walk ran the program's __len__")


@pytest.fixture
def huge_subclasses(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[type, list[int]]]:
    """Huge containers of subclasses (and a deque) holding instances of a fresh class, in a module;
    the number of references each gc.get_referents call returns."""
    Far = type("Far", (), {})
    hostile = Hostile()
    list.extend(hostile, [Far() for _ in range(6000)])
    hostile.extra = type("Extra", (), {})()  # type: ignore[attr-defined]  # held by an attribute only
    made = types.ModuleType("fp_slices_subclasses")
    made.HOLD = (  # type: ignore[attr-defined]
        collections.defaultdict(list, {index: Far() for index in range(6000)}),
        collections.OrderedDict((index, Far()) for index in range(6000)),
        collections.deque(Far() for _ in range(6000)),
        hostile,
    )
    del hostile
    sys.modules[made.__name__] = made
    calls: list[int] = []
    real = gc.get_referents
    # Only the calls that take one of these containers count: the rest of the heap (pytest's
    # items, whose instances' weights are estimates) is batched by weight, not by this bound.
    huge = {id(container) for container in made.HOLD}  # type: ignore[attr-defined]

    def counted(*objects: Any) -> list[Any]:
        found = real(*objects)
        if any(id(obj) in huge for obj in objects):
            calls.append(len(found))
        return found

    monkeypatch.setattr(gc, "get_referents", counted)
    yield Far, calls
    del sys.modules[made.__name__]


def test_huge_containers_of_subclasses_are_walked_in_slices(huge_subclasses: tuple[type, list[int]]) -> None:
    Far, calls = huge_subclasses
    found = heapwalk.walk(realthreads.Event(), [], wanted=lambda kind: kind is Far)
    assert found is not None and found.matched() == 4 * 6000
    assert max(calls, default=0) < heapwalk.BIG_CONTAINER, calls


def test_the_search_goes_through_huge_subclasses_in_slices(huge_subclasses: tuple[type, list[int]]) -> None:
    Far, calls = huge_subclasses
    found = referrers.analyze(realthreads.Event(), lambda kind: kind is Far, 100, 100)
    assert found is not None and len(found.chains) == 100
    assert all(chain["steps"][0]["via"] in ("[0]", "[1]", "[2]", "[3]") for chain in found.chains)
    assert all(chain["steps"][1]["via"] for chain in found.chains)  # each item named ([index] or {...})
    extra = type(sys.modules["fp_slices_subclasses"].HOLD[3].extra)  # type: ignore[attr-defined]  # a local: not an instance
    (chain,) = referrers.analyze(realthreads.Event(), lambda kind: kind is extra, 1, 100).chains  # type: ignore[union-attr]
    assert [step["via"] for step in chain["steps"]] == ["[3]", ".extra"]
    assert max(calls, default=0) < heapwalk.BIG_CONTAINER, calls


def test_a_walk_leaves_nothing_for_the_collector() -> None:
    """Every object of a walk is freed when it returns, without a collection. Two cycles kept its marks
    (``_Seen``: 8 KiB pages, 0.2-0.8 MB a walk) and frames alive until the next collection: the roots
    list held itself (it is young, and the young are roots), and the frames ``sys._current_frames`` made
    held themselves through their own locals. Young garbage is a root of the next walk, so ``mem diff``
    counted the last walk's pages as the program's ("+22 bytearray +178 KiB" every second on 3.15)."""
    import threading

    from flight_profiler.services.context import AGENT_THREAD_IDS

    def ours(kind: str) -> list[Any]:
        if kind == "frame":
            names = ("walk", "_roots", "_agent_objects")
            return [o for o in gc.get_objects() if type(o).__name__ == "frame" and o.f_code.co_name in names]
        return [o for o in gc.get_objects() if type(o) is heapwalk._Seen]

    me = threading.get_ident()
    AGENT_THREAD_IDS.add(me)  # walked from the agent's thread, as in the target
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # only the reference counts free what a walk made
    try:
        for _ in range(2):
            assert heapwalk.walk(realthreads.Event(), []) is not None
        assert ours("seen") == [] and ours("frame") == []
    finally:
        AGENT_THREAD_IDS.discard(me)
        if enabled:
            gc.enable()


class _Kept:
    pass


KEPT_FOR_SEARCH = [_Kept()]


def test_a_reference_search_leaves_nothing_for_the_collector() -> None:
    """The same for vmtool -a referenceAnalyze's search, through a real session in this process: its
    ``_agent_objects`` list held that function's own frame, which held the list (25 pages kept on 3.15)."""
    from agent_harness import InProcessAgent

    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    agent = InProcessAgent()
    try:
        request = {"action": "referenceAnalyze", "module": __name__, "cls": "_Kept", "limit": 1}
        assert agent.run("vmtool", request)[1].get("status") == "ok"
        assert [o for o in gc.get_objects() if type(o) is heapwalk._Seen] == []
    finally:
        agent.close()
        if enabled:
            gc.enable()
