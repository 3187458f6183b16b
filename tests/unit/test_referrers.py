"""The chain finder of ``vmtool -a referenceAnalyze`` (``services/referrers.py``), in this process, on real objects.

Each test builds objects held in one known way and asks for the chains to its own
class (a class made for the test, so nothing else in this process holds one).
"""

from __future__ import annotations

import gc
import io
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

from flight_profiler.agent import session
from flight_profiler.commands.vmtool.client import SPEC as VMTOOL
from flight_profiler.render.console import make_console
from flight_profiler.services import heapwalk, realthreads, referrers


def fresh_class(name: str) -> type:
    return type(name, (), {})


def chains(klass: type, limit: int = 5, depth: int = 100) -> list[dict[str, Any]]:
    found = referrers.analyze(realthreads.Event(), lambda kind: issubclass(kind, klass), limit, depth)
    assert found is not None
    return found.chains


def vias(chain: dict[str, Any]) -> list[str]:
    return [step["via"] for step in chain["steps"]]


@pytest.fixture
def module() -> Iterator[types.ModuleType]:
    """A module in sys.modules for the test's globals: a root like any other."""
    made = types.ModuleType("fp_referrers_probe")
    sys.modules[made.__name__] = made
    yield made
    del sys.modules[made.__name__]


def test_a_list_in_a_module_level_dict(module: types.ModuleType) -> None:
    Leak = fresh_class("Leak")
    module.CACHE = {"k": [0, 1, 2, Leak()], 7: "seven"}  # type: ignore[attr-defined]
    (chain,) = chains(Leak)
    assert chain["root"] == {"kind": "global", "name": "fp_referrers_probe.CACHE", "type": "dict"}
    assert chain["steps"][0] == {"via": "['k']", "type": "list"} and vias(chain) == ["['k']", "[3]"]


def test_a_class_attribute_and_an_instance_attribute(module: types.ModuleType) -> None:
    Item = fresh_class("Item")
    Owner = type("Owner", (), {"registry": [Item()]})
    holder = Owner()
    holder.attr = Item()  # type: ignore[attr-defined]
    module.Owner, module.HOLDER = Owner, holder  # type: ignore[attr-defined]
    del holder, Owner  # a local variable of this frame is a root too
    found = sorted((chain["root"]["name"], vias(chain)) for chain in chains(Item))
    assert found == [
        ("fp_referrers_probe.HOLDER", [".attr"]),
        ("fp_referrers_probe.Owner", [".registry", "[0]"]),
    ], found


def test_a_slot_and_a_non_string_key(module: types.ModuleType) -> None:
    Item = fresh_class("Item")
    Slotted = type("Slotted", (), {"__slots__": ("x",)})
    slotted = Slotted()
    slotted.x = Item()  # type: ignore[attr-defined]
    module.DATA = {(1, "a"): [slotted], 2.5: Item()}  # type: ignore[attr-defined]
    del slotted  # a local variable of this frame is a root too
    found = sorted(vias(chain) for chain in chains(Item))
    assert found == [["[(1, 'a')]", "[0]", ".x"], ["[2.5]"]], found


def test_a_local_variable_of_a_waiting_thread() -> None:
    Job = fresh_class("Job")
    release, ready = threading.Event(), threading.Event()

    def worker() -> None:
        pending = [Job()]
        ready.set()
        release.wait()
        assert pending

    thread = threading.Thread(target=worker, name="fp-referrers-worker")
    thread.start()
    try:
        ready.wait()
        (chain,) = chains(Job)
    finally:
        release.set()
        thread.join()
    root = chain["root"]
    assert (root["kind"], root["name"], vias(chain)) == ("local", "pending", ["[0]"])
    assert root["where"] == "worker() in thread 'fp-referrers-worker'"


def test_a_cycle_does_not_confuse_it(module: types.ModuleType) -> None:
    Node = fresh_class("Node")
    first, second = Node(), Node()
    first.peer, second.peer = second, first  # type: ignore[attr-defined]
    module.RING = [first]  # type: ignore[attr-defined]
    del first, second
    found = sorted(vias(chain) for chain in chains(Node))
    assert found == [["[0]"], ["[0]", ".peer"]], found  # each node once, by its shortest chain


def test_nearest_first_and_limit(module: types.ModuleType) -> None:
    Item = fresh_class("Item")
    module.NEAR = Item()  # type: ignore[attr-defined]
    module.FAR = [[[Item()]]]  # type: ignore[attr-defined]
    (chain,) = chains(Item, limit=1)
    assert chain["root"]["name"] == "fp_referrers_probe.NEAR" and chain["steps"] == []


def test_depth_bounds_the_walk(module: types.ModuleType) -> None:
    Item = fresh_class("Item")
    module.FAR = [[[Item()]]]  # type: ignore[attr-defined]
    found = referrers.analyze(realthreads.Event(), lambda kind: issubclass(kind, Item), 3, 2)
    assert found is not None and found.chains == [] and found.levels == 2 and not found.complete
    assert vias(chains(Item, depth=4)[0]) == ["[0]", "[0]", "[0]"]


def test_no_code_of_the_program_runs(module: types.ModuleType) -> None:
    calls = []

    class Hostile:
        def __hash__(self) -> int:
            calls.append("hash")
            return 1

        def __eq__(self, other: object) -> bool:
            calls.append("eq")
            return self is other

        def __repr__(self) -> str:
            calls.append("repr")
            return "Hostile()"

        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            raise AttributeError(name)

    module.KEYED = {Hostile(): [Hostile()]}  # type: ignore[attr-defined]
    calls.clear()
    found = sorted(vias(chain)[0] for chain in chains(Hostile))
    assert calls == []
    assert found[0] == ".keys()" and found[1].startswith("[<") and "Hostile at 0x" in found[1], found


def test_the_agents_own_objects_are_not_reached(module: types.ModuleType) -> None:
    module.MINE = referrers.Found()  # type: ignore[attr-defined]
    assert chains(referrers.Found) == []


def test_cancelled_returns_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heapwalk, "SLICE_BUDGET", 0.0)  # pause (and look at the event) after every step
    cancelled = realthreads.Event()
    cancelled.set()
    assert referrers.analyze(cancelled, lambda kind: False, 3, 100) is None


def _text(event: dict[str, Any]) -> list[str]:
    out = io.StringIO()
    make_console(color=False, file=out, width=200).print(VMTOOL.render(event))
    return out.getvalue().rstrip("\n").splitlines()


EVENT = {"action": "referenceAnalyze", "class": "__main__.Item", "limit": 3, "depth": 100}


def test_the_chains_are_rendered_one_line_each() -> None:
    chain = {
        "object": "__main__.Item at 0x7f00",
        "root": {"kind": "global", "name": "__main__.CACHE", "type": "dict"},
        "steps": [{"via": "['k']", "type": "list"}, {"via": "[3]", "type": "__main__.Item"}],
    }
    local = {
        "object": "__main__.Item at 0x7f10",
        "root": {"kind": "local", "name": "item", "where": "work() in thread 'w'", "type": "__main__.Item"},
        "steps": [],
    }
    event = {**EVENT, "chains": [chain, local], "walked": 1000, "levels": 4, "complete": False}
    assert _text(event) == [
        "__main__.Item at 0x7f00",
        "  __main__.CACHE['k'] -> list[3] -> __main__.Item",
        "  root: global variable __main__.CACHE (dict)",
        "__main__.Item at 0x7f10",
        "  item (the instance itself)",
        "  root: local variable item of work() in thread 'w' (__main__.Item)",
        "2 instance(s) of __main__.Item, nearest to a root first; walked 1000 objects, 4 levels from the roots;"
        " more may be deeper (--depth)",
    ]
    none = {**EVENT, "chains": [], "walked": 10, "levels": 3, "complete": True}
    assert _text(none) == [
        "no live instance of __main__.Item is reachable from the roots (walked 10 objects, 3 levels from the roots)"
    ]


def test_what_the_target_names_reaches_the_terminal_escaped() -> None:
    hostile = "\x1b]52;c;AAAA\x07\u202e"
    chain = {
        "object": hostile + " at 0x1",
        "root": {"kind": "local", "name": hostile, "where": hostile, "type": hostile},
        "steps": [{"via": "[%r]" % hostile, "type": hostile}],
    }
    lines = _text({**EVENT, "class": hostile, "chains": [chain], "walked": 1, "levels": 1, "complete": True})
    assert not any(ch in line for line in lines for ch in "\x1b\x07\u202e"), lines


def test_the_search_runs_on_a_job_thread() -> None:
    # seconds on a big heap: Ctrl-C, detach and a client that went away must reach it
    assert session._walks_heap("vmtool", {"action": "referenceAnalyze", "module": "m", "cls": "C"})


def test_an_object_in_sys_modules_that_claims_to_be_a_module() -> None:
    # cffi's Lib objects say they are modules through __class__; their type is not ModuleType
    Item = fresh_class("Item")

    class Liar:
        @property  # type: ignore[misc]
        def __class__(self) -> type:
            return types.ModuleType

    liar = Liar()
    liar.held = Item()  # type: ignore[attr-defined]
    assert isinstance(liar, types.ModuleType)
    sys.modules["fp_referrers_liar"] = liar  # type: ignore[assignment]
    del liar
    try:
        (chain,) = chains(Item)
    finally:
        del sys.modules["fp_referrers_liar"]
    assert chain["root"]["name"] == "sys.modules" and vias(chain) == ["['fp_referrers_liar']", ".held"]


def test_memory_bound_stops_the_search_and_says_so(module: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    Item = fresh_class("Item")
    module.FAR = [[[[Item()]]]]  # type: ignore[attr-defined]
    monkeypatch.setattr(referrers, "KEPT", 10)  # containers kept for the way back
    found = referrers.analyze(realthreads.Event(), lambda kind: issubclass(kind, Item), 3, 100)
    assert found is not None and found.bounded and found.chains == [] and not found.complete
    event = {**EVENT, "chains": [], "walked": found.walked, "levels": found.levels, "complete": False, "bounded": True}
    assert _text(event)[0].startswith("no instance of __main__.Item found (walked ")
    assert "stopped at its memory bound" in _text(event)[0]


def _collections_during(search: Any) -> list[int]:
    """The generations of the collections that ran while ``search()`` ran."""
    seen: list[int] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(note)
    try:
        search()
    finally:
        gc.callbacks.remove(note)
    return seen


def test_kept_lists_leave_the_young_generation_unless_the_collector_is_off(
    module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    Item = fresh_class("Item")
    module.MANY = [[index] for index in range(3000)] + [[[Item()]]]  # type: ignore[attr-defined]
    monkeypatch.setattr(referrers, "YOUNG_KEPT", 100)  # a young collection every 100 entries kept
    chain: list[dict[str, Any]] = []

    def search() -> None:
        chain.clear()
        chain.extend(chains(Item))

    ran = _collections_during(search)  # 3000 lists kept: one collection per 100 of them at least
    assert ran.count(referrers._AGE_GENERATION) >= 20, ran
    assert [vias(found) for found in chain] == [["[3000]", "[0]", "[0]"]]
    gc.disable()
    try:
        assert _collections_during(search) == []
    finally:
        gc.enable()
    assert [vias(found) for found in chain] == [["[3000]", "[0]", "[0]"]]
