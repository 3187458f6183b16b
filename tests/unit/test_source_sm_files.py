"""``source`` against a module whose file changes under it, and ``sm``'s signatures: in process.

A module is written to a scratch directory and imported; then its file is edited the way deploys and
editors do (code moved, code changed, a syntax error, a coding cookie) and ``source`` must say which.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from agent_harness import InProcessAgent

from flight_profiler.commands.sc.model import MAX_LIMIT
from flight_profiler.commands.sm import agent as sm_agent
from flight_profiler.commands.source import agent as source_agent
from flight_profiler.commands.source.client import SPEC as SOURCE
from flight_profiler.services.context import CommandFailed

MODULE = "fp_h33_source_mod"
ORIGINAL = '''\
"""a module source reads"""


def total(items, tax=0.2):
    return sum(items) * (1 + tax)


class Cart:
    def add(self, item):
        return item
'''


@pytest.fixture
def agent() -> Iterator[InProcessAgent]:
    agent = InProcessAgent()
    yield agent
    agent.close()


@pytest.fixture
def module(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    path = tmp_path / ("%s.py" % MODULE)
    path.write_text(ORIGINAL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    loaded = importlib.import_module(MODULE)
    yield path
    sys.modules.pop(MODULE, None)
    del loaded


def _source(agent: InProcessAgent, line: str) -> dict[str, Any]:
    events, end = agent.run("source", SOURCE.parse_line(line))
    assert end["status"] == "ok", end
    (event,) = events
    return event


def test_unchanged_file_matches(agent: InProcessAgent, module: Any) -> None:
    event = _source(agent, "%s total" % MODULE)
    assert event["status"] == "matches" and event["start"] == 4
    assert event["lines"] == ["def total(items, tax=0.2):", "    return sum(items) * (1 + tax)"]
    whole = _source(agent, MODULE)
    assert whole["what"] == "module" and whole["status"] == "matches" and whole["more"] == 0


def test_moved_code_is_told_apart_from_changed_code(agent: InProcessAgent, module: Any) -> None:
    module.write_text(ORIGINAL.replace('"""a module source reads"""\n', '"""a module source reads"""\n\nX = 1\n'))
    moved = _source(agent, "%s total" % MODULE)
    assert moved["status"] == "matches" and moved["moved"] == 4 and moved["start"] == 6
    module.write_text(ORIGINAL.replace("(1 + tax)", "(1 + tax) + 1"))
    changed = _source(agent, "%s total" % MODULE)
    assert changed["status"] == "differs" and changed["differing"] == ["%s.total" % MODULE]
    assert _source(agent, MODULE)["differing"] == ["%s.total" % MODULE]
    assert _source(agent, "%s Cart" % MODULE)["status"] == "matches"


def test_a_file_that_no_longer_compiles_is_unknown(agent: InProcessAgent, module: Any) -> None:
    module.write_text(ORIGINAL + "\ndef broken(:\n")
    assert _source(agent, "%s total" % MODULE)["status"] == "unknown"
    assert _source(agent, MODULE)["status"] == "unknown"
    if "__firstlineno__" in vars(sys.modules[MODULE].Cart):  # 3.13+: the class says where it starts
        assert _source(agent, "%s Cart" % MODULE)["status"] == "unknown"
    else:  # without the compiled file, nothing says where the class is
        _, end = agent.run("source", SOURCE.parse_line("%s Cart" % MODULE))
        assert end["status"] == "error" and "the file changed since it was loaded" in end["error"]


def test_a_class_gone_from_the_file_is_refused(
    agent: InProcessAgent, module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module.write_text(ORIGINAL.replace("class Cart:", "class Basket:"))
    cart = sys.modules[MODULE].Cart
    if "__firstlineno__" in vars(cart):  # 3.13+ remembers where the class started
        pytest.skip("the class keeps its first line: found without the file")
    _, end = agent.run("source", SOURCE.parse_line("%s Cart" % MODULE))
    assert end["status"] == "error" and "is not in" in end["error"] and "any more" in end["error"]


def test_coding_cookies() -> None:
    assert source_agent._encoding(b"# -*- coding: latin-1 -*-\nx = 1\n") == "latin-1"
    assert source_agent._encoding(b"#!/usr/bin/python\n# vim: set fileencoding=cp1252 :\n") == "cp1252"
    assert source_agent._encoding(b"# coding: no-such-codec\n") == "utf-8"
    assert source_agent._encoding(b"\n\n# coding: latin-1\n") == "utf-8"  # only the first two lines count
    assert source_agent._encoding(b"# coding:\n") == "utf-8"
    # PEP 263: line 2 counts only below a comment or blank line 1 (Python ignores it under code)
    assert source_agent._encoding(b"x = 1\n# coding: latin-1\n") == "utf-8"
    assert source_agent._encoding(b"\n# coding: latin-1\n") == "latin-1"


def test_reading_refuses_big_or_unreadable_files(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.py"
    path.write_bytes(b"# coding: latin-1\nname = '\xe9'\n")
    assert source_agent._read(str(path)) == ["# coding: latin-1", "name = '\u00e9'"]
    monkeypatch.setattr(source_agent, "MAX_BYTES", 8)
    with pytest.raises(CommandFailed, match="is larger than"):
        source_agent._read(str(path))
    with pytest.raises(CommandFailed, match=r"cannot read .*: No such file or directory"):
        source_agent._read(str(tmp_path / "missing.py"))


def _sig(fn: Any) -> str:
    return sm_agent.signature(fn.__code__, fn)


def test_signatures_from_code_objects() -> None:
    def every(a, b=1, /, c=None, *rest, d, e="x" * 60, f=object(), **kw):  # type: ignore[no-untyped-def]  # noqa: B008
        pass

    def keyword_only(*, k=True):  # type: ignore[no-untyped-def]
        pass

    assert _sig(every) == ("(a, b=1, /, c=None, *rest, d, e='%s...', f=<object>, **kw)" % ("x" * 35))
    assert _sig(keyword_only) == "(*, k=True)"
    assert _sig(lambda: None) == "()"


def test_flavours_and_what_a_decorator_wraps() -> None:
    async def coroutine() -> None:
        pass

    async def agen() -> Any:
        yield 1

    def gen() -> Any:
        yield 1

    assert sm_agent._flavour("method", coroutine.__code__) == "async method"
    assert sm_agent._flavour("function", agen.__code__) == "async generator function"
    assert sm_agent._flavour("function", gen.__code__) == "generator function"
    assert sm_agent._flavour("property", None) == "property"

    class Shop:
        @staticmethod
        def s() -> None: ...

        @classmethod
        def c(cls) -> None: ...

        @property
        def p(self) -> int:
            return 1

        q = property(None)

    space = vars(Shop)
    assert [sm_agent._method_kind(space[name]) for name in ("s", "c", "p", "q")] == [
        "staticmethod",
        "classmethod",
        "property",
        None,
    ]
    assert sm_agent._method_kind(1) is None
    assert sm_agent._function(space["s"]) is space["s"].__func__
    assert sm_agent._function(space["p"]) is space["p"].fget


ALIASED = """\
class Cart:
    class Line:
        def price(self):
            return 1

    Row = Line

    def add(self, item):
        return item


_cart_class = Cart  # bound first under another name in some modules; here after
Basket = Cart
"""


def test_a_class_bound_under_two_names_is_listed_once_under_its_own(
    agent: InProcessAgent, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """logging's ``_loggerClass = Logger`` listed Logger twice in sc, and each method twice in sm."""
    name = "fp_alias_mod"
    (tmp_path / ("%s.py" % name)).write_text("Early = None\n" + ALIASED + "Early = Cart\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    importlib.import_module(name)
    try:
        classes, _ = agent.run("sc", {"pattern": name + ".*"})
        methods, _ = agent.run("sm", {"pattern": name + ".*"})
    finally:
        sys.modules.pop(name, None)
    # Early comes first in the module's namespace (bound to None, then rebound): Cart is still named Cart
    assert [m["name"] for m in classes[0]["matches"]] == [name + ".Cart", name + ".Cart.Line"]
    assert classes[0]["total"] == 2
    assert [m["name"] for m in methods[0]["matches"]] == [name + ".Cart.Line.price", name + ".Cart.add"]


def test_a_class_or_module_name_lists_what_it_defines(agent: InProcessAgent, module: Any) -> None:
    """Arthas's ``sm CLASS`` lists the class's methods; sm said "no loaded function or method matches
    'Cart'". A glob without a dot matched only whole dotted names: ``sc Ca*`` found nothing."""

    def names(command: str, pattern: str) -> list[str]:
        events, end = agent.run(command, {"pattern": pattern, "limit": MAX_LIMIT})  # pytest's classes too
        assert end["status"] == "ok", end
        return [match["name"] for match in events[0]["matches"]]

    assert names("sm", "Cart") == names("sm", MODULE + ".Cart") == [MODULE + ".Cart.add"]
    assert names("sm", MODULE) == [MODULE + ".total"]  # a module: its own functions
    assert MODULE + ".Cart.add" in names("sm", "add")  # a plain name still matches at the end
    found = names("sc", "Ca*")
    assert MODULE + ".Cart" in found and all(name.rpartition(".")[2].startswith("Ca") for name in found)
    assert MODULE + ".Cart.add" in names("sm", "ad?")
    _, end = agent.run("sc", {"pattern": "Cart"[1:]})  # "art": a plain name is matched whole, at a dot
    assert end["status"] != "ok"


def test_glob_matching_agrees_with_fnmatch() -> None:
    """sc/sm's glob (``*`` through str's own find, ``?`` by the loop) against fnmatchcase on random names."""
    import fnmatch
    import random

    from flight_profiler.commands.sc.agent import glob_match

    chance = random.Random(20261204)
    for _ in range(5000):
        text = "".join(chance.choice("ab.") for _ in range(chance.randrange(0, 9)))
        pattern = "".join(chance.choice("ab.*?") for _ in range(chance.randrange(0, 7)))
        assert glob_match(pattern, text) == fnmatch.fnmatchcase(text, pattern), (pattern, text)


def test_a_star_pattern_over_megabytes_is_matched_in_c() -> None:
    from flight_profiler.commands.sc.agent import glob_match

    huge = "mod.Huge" + "x" * 5_000_000
    assert glob_match("mod.Huge*", huge) and glob_match("*x*x", huge) and not glob_match("*Huge*y", huge)


def test_a_search_stopped_at_its_bound_says_how_many_modules_it_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """More loaded modules than the bound: the search said "N match(es) in 20000 modules", and nothing
    told that others were never looked at."""
    from flight_profiler.commands.sc import agent as sc_agent
    from flight_profiler.commands.sc.client import SPEC as SC

    monkeypatch.setattr(sc_agent, "MAX_MODULES", 3)
    found = sc_agent.search(
        {"pattern": "*", "limit": 5, "detail": False}, "class", sc_agent._classes, sc_agent._describe_class
    )
    assert found["modules"] == 3 and found["not_searched"] == len(sys.modules) - 3
    rendered = SC.render(found)
    assert "(%d more loaded, not searched: the search's bound)" % found["not_searched"] in str(rendered)
    with pytest.raises(CommandFailed, match=r"3 modules searched, \d+ more not \(the bound\)"):
        sc_agent.search(
            {"pattern": "NoSuchClassAnywhere", "limit": 5, "detail": False},
            "class",
            sc_agent._classes,
            sc_agent._describe_class,
        )


def test_a_search_runs_in_slices_and_stops_when_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 modules took 3 s of a CPU at a stretch, under a pod's CPU limit all of its quota."""
    from flight_profiler.commands.sc import agent as sc_agent
    from flight_profiler.services import cpuquota

    monkeypatch.setattr(cpuquota, "SLICE_BUDGET", 0.0)
    monkeypatch.setattr(cpuquota, "quota", lambda: None)
    waits: list[float] = []
    request: Any = {"pattern": "*", "limit": 5, "detail": False}
    found = sc_agent.search(request, "class", sc_agent._classes, sc_agent._describe_class, wait=waits.append)  # type: ignore[arg-type]
    assert len(waits) == found["modules"] and set(waits) == {cpuquota.SLICE_PAUSE}
    stopped = sc_agent.search(request, "class", sc_agent._classes, sc_agent._describe_class, wait=lambda _: True)
    assert stopped["total"] == 0  # cancelled at its first pause: no "no loaded class matches" error either
