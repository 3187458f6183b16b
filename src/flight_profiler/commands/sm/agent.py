"""``sm`` in the target: loaded functions and methods whose name matches a pattern.

The same search as ``sc`` (nothing imported, no target code run): module-level
functions a module defines, and the methods, class and static methods and
property getters of the classes it defines, named ``module.Class.method``.
``-d`` adds the file, the line and a signature read from the code object
(default values are shown only when they are plain literals: a ``repr`` would
run the target's code).
"""

from __future__ import annotations

import types

from ...services.context import JobContext
from ...services.describe import class_name as _class_name
from ...services.describe import is_a
from ..sc.agent import classes_of, code_of, defined_in, namespace, search

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Iterator

    from ..sc.model import SearchRequest

CO_VARARGS = 0x04
CO_VARKEYWORDS = 0x08
CO_COROUTINE = 0x80
CO_GENERATOR = 0x20
CO_ASYNC_GENERATOR = 0x200
LITERALS = (int, float, bool, type(None))
MAX_DEFAULT = 40  # characters of a default value shown


def run(request: SearchRequest, ctx: JobContext) -> None:
    ctx.emit(search(request, "function or method", _functions, _describe, owners=True, wait=ctx.wait))


def _functions(module_name: str, module: types.ModuleType) -> Iterator[tuple[str, Any, str]]:
    for attr, value in namespace(module).items():
        if is_a(value, types.FunctionType) and defined_in(value, module_name):
            yield "%s.%s" % (module_name, attr), value, "function"
    for class_name, klass in classes_of(module_name, module):
        for attr, value in namespace(klass).items():
            kind = _method_kind(value)
            if kind is not None:
                yield "%s.%s" % (class_name, attr), value, kind


def _method_kind(value: Any) -> str | None:
    if is_a(value, staticmethod):
        return "staticmethod"
    if is_a(value, classmethod):
        return "classmethod"
    if is_a(value, property):
        return "property" if value.fget is not None else None
    if is_a(value, types.FunctionType):
        return "method"
    return None


def _describe(module: str, name: str, value: Any, kind: str, detail: bool) -> dict[str, Any]:
    code = code_of(value)
    match: dict[str, Any] = {"name": name, "module": module, "kind": _flavour(kind, code)}
    if detail and code is not None:
        match["file"] = code.co_filename
        match["line"] = code.co_firstlineno
        match["signature"] = signature(code, _function(value))
    return match


def _function(value: Any) -> Any:
    if is_a(value, (staticmethod, classmethod)):
        return value.__func__
    if is_a(value, property):
        return value.fget
    return value


def _flavour(kind: str, code: Any) -> str:
    """``async method``, ``generator function`` ...: what calling it gives."""
    if code is None:
        return kind
    flags = code.co_flags
    if flags & CO_ASYNC_GENERATOR:
        return "async generator " + kind
    if flags & CO_COROUTINE:
        return "async " + kind
    if flags & CO_GENERATOR:
        return "generator " + kind
    return kind


def signature(code: Any, func: Any) -> str:
    """``(a, b=1, /, c, *args, d=..., **kw)`` from the code object and the function's defaults."""
    names = code.co_varnames
    positional = code.co_argcount
    posonly = getattr(code, "co_posonlyargcount", 0)
    kwonly = code.co_kwonlyargcount
    defaults = getattr(func, "__defaults__", None) or ()
    kwdefaults = getattr(func, "__kwdefaults__", None) or {}
    parts = []
    first_default = positional - len(defaults)
    for index in range(positional):
        text = names[index]
        if index >= first_default:
            text += "=" + _default(defaults[index - first_default])
        parts.append(text)
        if posonly and index == posonly - 1:
            parts.append("/")
    at = positional + kwonly
    if code.co_flags & CO_VARARGS:
        parts.append("*" + names[at])
        at += 1
    elif kwonly:
        parts.append("*")
    for index in range(positional, positional + kwonly):
        text = names[index]
        if text in kwdefaults:
            text += "=" + _default(kwdefaults[text])
        parts.append(text)
    if code.co_flags & CO_VARKEYWORDS:
        parts.append("**" + names[at])
    return "(%s)" % ", ".join(parts)


def _default(value: Any) -> str:
    if type(value) in LITERALS:
        return repr(value)
    if type(value) is str:
        text = repr(value)
        return text if len(text) <= MAX_DEFAULT else text[: MAX_DEFAULT - 4] + "...'"
    return "<%s>" % _class_name(type(value))
