"""Find modules, classes and attributes named by the user (runs in the target).

A lookup never imports a module the target has not loaded: a diagnostic tool
must not run someone's import-time side effects behind their back.
"""

from __future__ import annotations

import sys
import types

from .context import CommandFailed

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


def loaded_module(name: str) -> types.ModuleType:
    module = sys.modules.get(name)
    if isinstance(module, types.ModuleType):
        return module
    hint = _suggest(name, [n for n in list(sys.modules) if not n.startswith("_flight_profiler")])
    raise CommandFailed("module %r is not loaded in the target%s" % (name, hint))


def find_class(module: types.ModuleType, name: str) -> type:
    value = _lookup(module, name, "class", module.__name__)
    if not isinstance(value, type):
        raise CommandFailed("%s.%s is a %s, not a class" % (module.__name__, name, type(value).__name__))
    return value


def find_attribute(owner: Any, name: str, owner_label: str) -> Any:
    return _lookup(owner, name, "attribute", owner_label)


def _lookup(owner: Any, name: str, what: str, owner_label: str) -> Any:
    namespace = _namespace(owner)
    if name in namespace:
        return namespace[name]
    try:
        return getattr(owner, name)
    except AttributeError:
        pass
    except Exception as exc:  # noqa: BLE001 - a hostile __getattr__ is the target's problem, not ours
        raise CommandFailed("%s.%s raised %s: %s" % (owner_label, name, type(exc).__name__, exc)) from None
    raise CommandFailed("%s %r not found in %s%s" % (what, name, owner_label, _suggest(name, list(namespace))))


def _namespace(owner: Any) -> dict[str, Any]:
    """Names defined on ``owner`` itself, and for classes on their bases too."""
    if isinstance(owner, type):
        merged: dict[str, Any] = {}
        for klass in reversed(owner.__mro__):
            merged.update(klass.__dict__)
        return merged
    names = getattr(owner, "__dict__", None)
    return dict(names) if isinstance(names, dict) else {}


def _suggest(name: str, candidates: list[str]) -> str:
    import difflib  # only on the error path

    close = difflib.get_close_matches(name, [str(c) for c in candidates], n=3)
    return " (did you mean %s?)" % ", ".join(close) if close else ""


def qualified(module: str, cls: str | None, name: str) -> str:
    return ".".join(part for part in (module, cls, name) if part)
