"""Name lookups in the target read a class's and a module's own slots, never what a metaclass or a
module subclass shadows them with (services/resolve.py, commands/sc/agent.py, services/describe.py,
the heap walk's and vmtool's class tests).

Such a property is the program's code; on the session's thread it ran outside any budget, and one
that never returned held the session for good. Here each one raises instead: a lookup that runs it fails.
An ABC's ``__subclasshook__`` is the program's code too: vmtool asks it within a budget.
"""

from __future__ import annotations

import abc
import threading
import time
import types
from typing import Any

from agent_threads import in_thread
from flight_profiler.commands.sc.agent import _describe_class, namespace
from flight_profiler.commands.vmtool.agent import _SubclassTest
from flight_profiler.services.context import CommandFailed
from flight_profiler.services.describe import class_name, describe_error, safe_repr, type_name
from flight_profiler.services.heapwalk import _is_ours
from flight_profiler.services.resolve import find_attribute, find_class, module_label


def _ran(self: Any) -> Any:
    raise AssertionError("the program's code ran")


class ShadowModule(types.ModuleType):
    __name__ = property(_ran)  # type: ignore[assignment]
    __dict__ = property(_ran)  # type: ignore[assignment]


class ShadowMeta(type):
    __name__ = property(_ran)  # type: ignore[assignment]
    __mro__ = property(_ran)  # type: ignore[assignment]
    __dict__ = property(_ran)  # type: ignore[assignment,misc]
    __bases__ = property(_ran)  # type: ignore[assignment]
    __module__ = property(_ran)  # type: ignore[assignment]


class Base:
    inherited = 1


Shadowed = ShadowMeta("Shadowed", (Base,), {"attr": 7})


def _module() -> types.ModuleType:
    module = ShadowModule("shadowmod")
    vars(types.ModuleType)["__dict__"].__get__(module).update(VALUE=42, Shadowed=Shadowed)
    return module


def test_a_module_subclass_is_read_through_its_own_dict() -> None:
    module = _module()
    assert module_label(module) == "shadowmod"
    assert find_attribute(module, "VALUE", "shadowmod") == 42
    assert find_class(module, "Shadowed") is Shadowed
    assert namespace(module)["VALUE"] == 42


def test_a_metaclass_shadowing_name_mro_dict_and_bases_runs_nothing() -> None:
    assert find_attribute(Shadowed, "attr", "Shadowed") == 7
    assert find_attribute(Shadowed, "inherited", "Shadowed") == 1  # through the real __mro__
    assert class_name(Shadowed) == "Shadowed"
    assert namespace(Shadowed)["attr"] == 7
    described = _describe_class("shadowmod", "shadowmod.Shadowed", Shadowed, "class", detail=True)
    assert described["bases"] == ["%s.Base" % __name__]


def test_class_name_cuts_a_megabyte_name() -> None:
    huge = type("N" * 1_000_000, (), {})
    name = class_name(huge)
    assert len(name) < 300 and name.endswith("...(1000000 chars)"), name[-40:]


class ShadowedError(Exception, metaclass=ShadowMeta):
    pass


class Loud(metaclass=ShadowMeta):
    def __repr__(self) -> str:
        raise ValueError("no repr")


def test_type_names_errors_and_reprs_read_no_shadowed_name_or_module() -> None:
    assert type_name(Shadowed) == "%s.Shadowed" % __name__
    assert describe_error(ShadowedError("x")) == "ShadowedError: x"
    assert describe_error(ShadowedError("x"), qualified=True) == "%s.ShadowedError: x" % __name__
    assert safe_repr(Loud()) == "<Loud>"
    assert _is_ours(Shadowed) is False


class Hooked(abc.ABC):  # noqa: B024 - no abstract method: only the hook matters
    """An ABC whose __subclasshook__ never returns (in Python: the watchdog can stop it)."""

    @classmethod
    def __subclasshook__(cls, other: type) -> bool:
        while True:
            time.sleep(0.005)


class Real(Hooked):
    pass


class Refusing(abc.ABC):  # noqa: B024 - no abstract method: only the hook matters
    @classmethod
    def __subclasshook__(cls, other: type) -> bool:
        raise AssertionError("a hostile hook")


def test_vmtool_asks_a_subclass_hook_within_its_budget_and_says_when_it_stopped() -> None:
    """A class test asked per type of the heap: by MRO without the program's code, the hook of an ABC
    within the budget; it ran on the walk's thread with none, and one that looped held it for good."""
    assert _SubclassTest(Base, 100)(Shadowed) is True  # by the MRO: the shadowing metaclass runs nothing
    assert _SubclassTest(Refusing, 100)(int) is False  # raised: not an instance, and nothing leaks

    def walk() -> Any:
        wanted = _SubclassTest(Hooked, 200)
        seen = (wanted(Real), wanted(int), wanted(str))  # the second one overruns: the third is not asked
        try:
            wanted.check()
        except CommandFailed as exc:
            return seen, str(exc)
        return seen, None

    started = time.monotonic()
    seen, error = in_thread(walk, agent=True)
    assert time.monotonic() - started < 10
    assert seen == (True, False, False)
    assert error is not None and "ran over the budget of 200 ms (at class int)" in error, error
    assert "Hooked's __subclasscheck__ (its metaclass ABCMeta's" in error, error


class PropertyThread(threading.Thread):
    """A thread class whose name is a property of the program's (threading itself reads ``_name``)."""

    name = property(_ran, lambda self, value: None)  # type: ignore[assignment]


def test_thread_names_come_from_the_threads_own_dict() -> None:
    """Every watch hit and ``stack`` read ``thread.name``: a property there ran the program's code."""
    from flight_profiler.services.callprobe import thread_info
    from flight_profiler.services.describe import thread_fields

    release = threading.Event()
    thread = PropertyThread(target=release.wait, name="worker-1")
    thread._name = "worker-1"  # type: ignore[attr-defined]  # the property's setter kept nothing
    thread.start()
    try:
        assert thread.ident is not None
        assert thread_fields(thread)[:2] == ("worker-1", False)
        assert thread_info(thread.ident) == {"thread": "worker-1", "tid": thread.ident, "daemon": False}
        assert thread_fields(object()) == ("?", None, None)
    finally:
        release.set()
        thread.join(10)


class _DictProperty:
    """A decorator-like object whose ``__dict__`` is a property: the program's code, which records that it ran."""

    ran: list[str] = []

    @property  # type: ignore[misc]
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        self.ran.append("__dict__")
        return {"__wrapped__": _plain}


class _Wrapper:
    def __init__(self) -> None:
        self.__wrapped__ = _plain


def _plain() -> int:
    return 1


def test_a_capture_of_an_instance_of_a_shadowing_metaclass_runs_nothing_and_keeps_its_value() -> None:
    """capture read ``type(obj).__mro__`` and each class's ``__name__``/``__module__``/``__dict__``: a
    metaclass shadowing them ran its code, and in a capture one that looped spent the whole budget
    and lost the value (``Shadowed``'s raise here: a capture that runs them shows an error)."""
    from flight_profiler.services.capture import CaptureOptions, capture

    instance = Shadowed()
    node = capture(instance, CaptureOptions(expand=2))
    assert "error" not in node and node["t"].endswith("Shadowed"), node
    listed = capture([instance], CaptureOptions(expand=1))
    assert "error" not in str(listed), listed
    module = types.ModuleType("plainmod")
    module.A = 1  # type: ignore[attr-defined]
    shown = capture(module, CaptureOptions(expand=1))  # a module's dict is a member slot, not a getset
    assert shown["kind"] == "object" and shown["attrs"]["A"] == {"t": "int", "v": 1}, shown


def test_a_wrapper_is_unwrapped_through_its_own_dict() -> None:
    """resolve unwraps decorators by ``__wrapped__``: it read ``getattr(obj, "__dict__")``, which ran
    a ``__dict__`` property (or a ``__getattribute__``): the program's code."""
    from flight_profiler.services.location import _wrapped

    assert _wrapped(_Wrapper()) is _plain
    assert _wrapped(_plain) is None
    assert _wrapped(_DictProperty()) is None and _DictProperty.ran == []


def test_a_module_run_with_dash_m_is_found_by_its_own_name(monkeypatch: Any) -> None:
    """``python -m svc.app`` runs svc.app as ``__main__``, never imported as svc.app: ``watch svc.app work``
    said "module 'svc.app' is not loaded (did you mean svc?)". It is ``__main__``, found by its spec's name,
    read from the dicts (a ``__spec__`` that is not importlib's own spec is not asked for its name)."""
    import importlib.machinery

    from flight_profiler.services.resolve import loaded_module

    main = types.ModuleType("__main__")
    main.__spec__ = importlib.machinery.ModuleSpec("fp_test_svc.app", None)
    monkeypatch.setitem(__import__("sys").modules, "__main__", main)
    assert loaded_module("fp_test_svc.app") is main
    assert module_label(loaded_module("fp_test_svc.app")) == "__main__"

    class Spec:  # the program's own object as __spec__: its name is its code
        @property
        def name(self) -> str:
            return _ran(self)  # type: ignore[no-any-return]

    main.__spec__ = Spec()  # type: ignore[assignment]
    try:
        loaded_module("fp_test_svc.app")
    except CommandFailed as refused:
        assert "is not loaded in the target" in str(refused)
    else:
        raise AssertionError("found through a spec of the program's")
