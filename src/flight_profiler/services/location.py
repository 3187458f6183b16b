"""``module [class] method [-nm nested]`` to the Python function to instrument (runs in the target).

Shared by ``watch``, ``trace``, ``tt`` and ``reload``. Nothing is imported:
the module must already be loaded (``services.resolve``). Descriptors are
looked through (classmethod, staticmethod, a property's getter, a bound
method), and so are decorators that keep the function they wrap in
``__wrapped__``: instrumenting the innermost function is what makes every
caller see the hook, however it reaches the function.
"""

from __future__ import annotations

import types

from . import hooks
from .context import CommandFailed
from .resolve import find_attribute, find_class, loaded_module, qualified

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

MAX_WRAPPED = 32  # a __wrapped__ chain longer than this is a cycle


class Target:
    """The function to instrument and how its calls are to be read."""

    def __init__(self, func: types.FunctionType, label: str, kind: str, nested: types.CodeType | None) -> None:
        self.func = func  # for -nm: the enclosing function, whose code holds the nested one
        self.label = label  # module.Class.method[.nested], for people
        self.kind = kind  # function, method, classmethod, staticmethod, property getter, nested function
        self.nested = nested  # the nested function's code object, for -nm
        self.is_method = kind in ("method", "classmethod", "property getter")  # args[0] is the target

    def describe(self) -> dict[str, Any]:
        code = self.nested if self.nested is not None else hooks.real_code(self.func)
        return {
            "target": self.label,
            "callable": self.kind,
            "file": code.co_filename,
            "line": code.co_firstlineno,
        }


def resolve(module_name: str, class_name: str | None, name: str, nested: str | None = None) -> Target:
    module = loaded_module(module_name)
    label = qualified(module.__name__, class_name, name)
    if class_name:
        owner: Any = find_class(module, class_name)
        raw = find_attribute(owner, name, qualified(module.__name__, class_name, ""))
    else:
        raw = find_attribute(module, name, module.__name__)
    func, kind = _function_of(raw, label, in_class=bool(class_name))
    if not nested:
        return Target(func, label, kind, None)
    return Target(func, "%s.%s" % (label, nested), "nested function", _nested_code(func, label, nested))


def _function_of(raw: Any, label: str, in_class: bool) -> tuple[types.FunctionType, str]:
    """Look through descriptors and decorators to the Python function that does the work."""
    if isinstance(raw, staticmethod):
        return _unwrap(raw.__func__, label), "staticmethod"
    if isinstance(raw, classmethod):
        return _unwrap(raw.__func__, label), "classmethod"
    if isinstance(raw, property):
        if raw.fget is None:
            raise CommandFailed("%s is a property without a getter" % label)
        return _unwrap(raw.fget, label), "property getter"
    if isinstance(raw, types.MethodType):
        return _unwrap(raw.__func__, label), "method"
    func = _unwrap(raw, label)
    return func, "method" if in_class else "function"


def _unwrap(obj: Any, label: str) -> types.FunctionType:
    for _ in range(MAX_WRAPPED):
        wrapped = _wrapped(obj)
        if wrapped is None:
            break
        obj = wrapped
    if isinstance(obj, types.FunctionType):
        return obj
    raise CommandFailed("%s %s" % (label, _what(obj)))


def _wrapped(obj: Any) -> Any:
    try:
        return obj.__dict__.get("__wrapped__") if isinstance(getattr(obj, "__dict__", None), dict) else None
    except Exception:  # noqa: BLE001 - a hostile object is simply not a wrapper
        return None


def _what(obj: Any) -> str:
    if isinstance(obj, type):
        return "is a class: name one of its methods (module class method)"
    if isinstance(obj, (types.BuiltinFunctionType, types.BuiltinMethodType)):
        return "is a built-in (C) function: only Python functions can be instrumented"
    if isinstance(obj, types.ModuleType):
        return "is a module, not a Python function"
    kind = type(obj).__name__
    if callable(obj):
        return "is a callable %s object, not a Python function (name its class's __call__ instead)" % kind
    return "is %s %s, not a Python function" % ("an" if kind[:1] in "aeiou" else "a", kind)


def _nested_code(func: types.FunctionType, label: str, nested: str) -> types.CodeType:
    code = hooks.real_code(func)
    found = [const for const in code.co_consts if isinstance(const, types.CodeType) and const.co_name == nested]
    if len(found) == 1:
        return found[0]
    if found:
        raise CommandFailed("%s defines %d nested functions named %r; cannot tell which" % (label, len(found), nested))
    names = sorted(
        {
            const.co_name
            for const in code.co_consts
            if isinstance(const, types.CodeType) and not const.co_name.startswith("<")
        }
    )
    hint = " (it defines: %s)" % ", ".join(names) if names else " (it defines no nested functions)"
    raise CommandFailed("%s defines no nested function %r%s" % (label, nested, hint))
