"""Find modules, classes and attributes named by the user (runs in the target).

A lookup never imports a module the target has not loaded: a diagnostic tool
must not run someone's import-time side effects behind their back. That covers
modules in ``sys.modules`` that import on first use: one ``importlib.util.LazyLoader``
has not loaded yet, and names a module computes in its ``__getattr__`` (PEP 562, and
the ModuleType subclasses of lazy packages such as transformers): refused, not called.
"""

from __future__ import annotations

import sys
import types

from . import interpreters, usercode
from .context import CommandFailed
from .describe import (
    MODULE_DICT,
    TYPE_DICT,
    TYPE_MRO,
    class_name,
    describe_error,
    instance_dict,
    is_a,
    short,
    type_name,
)

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


def loaded_module(name: str) -> types.ModuleType:
    module = sys.modules.get(name)
    if module is not None and is_a(module, types.ModuleType):
        return module
    if module is not None:  # a proxy of the program's: none of its code runs (its __class__ may raise)
        raise CommandFailed("sys.modules[%r] is not a module (a %s)" % (name, type_name(type(module))))
    main = sys.modules.get("__main__")
    if main is not None and is_a(main, types.ModuleType) and _spec_name(main) == name:
        return main  # `python -m pkg.app`: it runs as __main__, and pkg.app was never imported under its name
    hint = _suggest(name, [n for n in list(sys.modules) if not n.startswith("_flight_profiler")])
    raise CommandFailed("module %r is not loaded in the target%s%s" % (name, hint, _elsewhere()))


def _spec_name(module: types.ModuleType) -> str | None:
    """The name a module was found under (``__spec__.name``: ``pkg.app`` for ``python -m pkg.app``), read
    from the dicts of the module and of its spec when that is importlib's own ``ModuleSpec``, else None."""
    spec = MODULE_DICT(module).get("__spec__")
    if spec is None or type_name(type(spec)) not in ("importlib._bootstrap.ModuleSpec", "_frozen_importlib.ModuleSpec"):
        return None
    own = instance_dict(spec)
    name = own.get("name") if own is not None else None
    return name if is_a(name, str) else None


def module_label(module: types.ModuleType) -> str:
    """The module's ``__name__`` from its own dict: a subclass of ModuleType may make the attribute a
    property, whose code would run on the session's thread outside any budget."""
    name = MODULE_DICT(module).get("__name__")
    return short(name) if is_a(name, str) else "<module at 0x%x>" % id(module)


def find_class(module: types.ModuleType, name: str, budget_ms: float | None = None) -> type:
    label = module_label(module)
    value = _lookup(module, name, "class", label, budget_ms)
    if not is_a(value, type):
        raise CommandFailed("%s.%s is a %s, not a class" % (label, name, class_name(type(value))))
    klass: type = value
    return klass


def find_attribute(owner: Any, name: str, owner_label: str, budget_ms: float | None = None) -> Any:
    return _lookup(owner, name, "attribute", owner_label, budget_ms)


def _lookup(owner: Any, name: str, what: str, owner_label: str, budget_ms: float | None) -> Any:
    """``budget_ms``: the command's ``--budget-ms``; None: a capture's default."""
    namespace = _namespace(owner)
    if name in namespace:
        return namespace[name]
    if is_a(owner, types.ModuleType):
        _refuse_computed(owner, name, what, owner_label, namespace)
    # the owner's code may run (a module's __getattr__, a descriptor): bounded like a repr, so that one
    # that never returns cannot hold the session's thread
    budget = usercode.CAPTURE_BUDGET_MS if budget_ms is None else budget_ms
    value, error, overran = usercode.call_contained(getattr, (owner, name), budget)
    if overran:
        raise CommandFailed(
            "%s.%s: its code (__getattr__, a property...) ran over the budget of %g ms and was stopped"
            " (--budget-ms)" % (owner_label, name, budget)
        )
    if error is None:
        return value
    if not is_a(error, AttributeError):  # a hostile __getattr__ is the target's problem, not ours
        raise CommandFailed("%s.%s raised %s" % (owner_label, name, describe_error(error)))
    raise CommandFailed(
        "%s %r not found in %s%s%s" % (what, name, owner_label, _suggest(name, list(namespace)), _elsewhere())
    )


# importlib.util.LazyLoader's module class until its first attribute read runs the real import
_LAZY_MODULE = ("importlib.util._LazyModule",)


def _refuse_computed(module: types.ModuleType, name: str, what: str, label: str, namespace: dict[str, Any]) -> None:
    """A name missing from a module's dict that the module's own code would compute: a module that
    LazyLoader has not loaded yet, a PEP 562 ``__getattr__``, a ModuleType subclass's ``__getattr__``
    (transformers' and lazy_loader's lazy packages). That code is usually an import: a read of ours
    would run it (side effects, seconds with the import lock held) where the program never did.
    Plain modules fall through: getattr finds nothing more there, and runs nothing of theirs."""
    kind = type(module)
    if type_name(kind) in _LAZY_MODULE:
        raise CommandFailed(
            "module %s is imported lazily (importlib.util.LazyLoader) and the program has not used it yet:"
            " reading %s would run its import; not done" % (label, name)
        )
    computes = "__getattr__" in namespace or any(
        hook in TYPE_DICT(klass)
        for klass in TYPE_MRO(kind)
        if klass is not types.ModuleType and klass is not object
        for hook in ("__getattr__", "__getattribute__")
    )
    if computes:
        raise CommandFailed(
            "%s %r is not set in %s: the module computes missing names in its __getattr__ (often a lazy"
            " import), which we do not call" % (what, name, label)
        )


def _elsewhere() -> str:
    """A lookup that failed may have looked in the wrong interpreter: say so where others run."""
    note = interpreters.note()
    return " (%s)" % note if note else ""


def _namespace(owner: Any) -> dict[str, Any]:
    """Names defined on ``owner`` itself, and for classes on their bases too."""
    if is_a(owner, type):
        merged: dict[str, Any] = {}
        for klass in reversed(TYPE_MRO(owner)):
            merged.update(TYPE_DICT(klass))
        return merged
    if is_a(owner, types.ModuleType):
        return dict(MODULE_DICT(owner))
    names = getattr(owner, "__dict__", None)
    return dict(names) if isinstance(names, dict) else {}


def _suggest(name: str, candidates: list[str]) -> str:
    import difflib  # only on the error path

    close = difflib.get_close_matches(name, [str(c) for c in candidates], n=3)
    return " (did you mean %s?)" % ", ".join(close) if close else ""


def qualified(module: str, cls: str | None, name: str) -> str:
    return ".".join(part for part in (module, cls, name) if part)
