"""Name lookups in the target read a class's and a module's own slots, never what a metaclass or a
module subclass shadows them with (services/resolve.py, commands/sc/agent.py).

Such a property is the program's code; on the session's thread it ran outside any budget, and one
that never returned held the session for good. Here each one raises instead: a lookup that runs it fails.
"""

from __future__ import annotations

import types
from typing import Any

from flight_profiler.commands.sc.agent import _describe_class, namespace
from flight_profiler.services.describe import class_name
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
