"""Describing objects and errors of the target without trusting them (in the target).

Anything the application defines may misbehave when we look at it: a ``__str__`` or
``__repr__`` that raises or returns megabytes, a metaclass whose ``__module__`` or
``__qualname__`` is a property that raises or is not a string. These helpers never
raise and bound what they return; every command describes errors and objects through
them, so the text a user sees for the same object is the same everywhere.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple

MESSAGE_LIMIT = 2000  # characters of an error message kept: its head and its tail
REPR_LIMIT = 200  # characters of a repr() shown where only a hint of the object is wanted
NAME_LIMIT = 200  # characters of a name of the program's (a thread's, a logger's, a task's) kept


def is_a(obj: Any, kind: Any) -> bool:
    """``isinstance`` that runs none of ``obj``'s code: where the type test fails, ``isinstance`` asks
    ``obj.__class__``, which a class may make a property that raises, blocks or lies (lazy-module
    proxies in ``sys.modules``, mocks)."""
    return issubclass(type(obj), kind)


def short(name: str, limit: int = NAME_LIMIT) -> str:
    """A name the program chose, cut to ``limit`` characters (and its length said): a thread named with
    megabytes went whole into every event (a watch hit, a dashboard frame), past the client's 4 MB
    limit on one message, which then dropped the connection."""
    if len(name) <= limit:
        return name
    return "%s...(%d chars)" % (name[:limit], len(name))


# type's and ModuleType's own getters: a metaclass or a module subclass may shadow these attributes
# with properties, whose code would run wherever we read them (the session's thread: with no budget)
_TYPE_NAME = type.__dict__["__name__"].__get__
_TYPE_QUALNAME = type.__dict__["__qualname__"].__get__
TYPE_MODULE = type.__dict__["__module__"].__get__  # a heap type's from its own dict: may be anything
TYPE_MRO = type.__dict__["__mro__"].__get__
TYPE_BASES = type.__dict__["__bases__"].__get__
TYPE_DICT = type.__dict__["__dict__"].__get__
MODULE_DICT = vars(type(sys))["__dict__"].__get__  # ModuleType: types is not imported at every start


def class_name(kind: type) -> str:
    """A class's ``__name__`` read without its metaclass's code (which may shadow it with a property
    that blocks), cut like every name of the program's."""
    return short(str(_TYPE_NAME(kind)))


def thread_fields(thread: Any) -> Tuple[str, Optional[bool], Optional[int]]:
    """A ``threading.Thread``'s name, daemon flag and native id, from its own instance dict: a subclass
    may make ``name``, ``daemon`` or ``native_id`` properties, the program's code, which ran at every
    watch hit and ``stack`` outside any budget. ("?", None, None) for what is not there."""
    threading = sys.modules.get("threading")  # never imported by us: without it there is no Thread
    try:
        fields = vars(threading.Thread)["__dict__"].__get__(thread)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - not a Thread
        return "?", None, None
    name, daemon, native = fields.get("_name"), fields.get("_daemonic"), fields.get("_native_id")
    return (
        short(str.__str__(name)) if is_a(name, str) else "?",
        daemon if daemon is True or daemon is False else None,
        native if type(native) is int else None,
    )


_GETSET = type(type.__dict__["__dict__"])
# C's own ways to reach an instance dict: a getset (classes, functions) or a member (ModuleType's md_dict)
_DICT_SLOTS = (_GETSET, type(vars(type(sys))["__dict__"]))


def instance_dict(obj: Any) -> Optional[dict]:  # type: ignore[type-arg]
    """``obj``'s own attribute dict through its class's slot for it, or None: ``getattr(obj, "__dict__")``
    runs a ``__getattr__``, a ``__getattribute__`` or a ``__dict__`` property, the program's code."""
    for kind in TYPE_MRO(type(obj)):
        slot = TYPE_DICT(kind).get("__dict__")
        if slot is not None:
            if type(slot) not in _DICT_SLOTS:
                return None  # the class replaced it: whatever it is, it is the program's
            try:
                found = slot.__get__(obj)  # C code; it raises for an object of another type (a borrowed slot)
            except Exception:  # noqa: BLE001 - then there is no dict to read
                return None
            return found if type(found) is dict else None
    return None


def module_text(module: Any) -> str:
    """A module as its repr reads (``<module 'x' from '/x.py'>``), made from its own dict: the repr and
    getattr would ask it for ``__loader__``, ``__spec__`` and ``__file__``, which a lazily imported module
    answers by running its import (``importlib.util.LazyLoader``; a PEP 562 ``__getattr__``)."""
    names = MODULE_DICT(module)
    name = names.get("__name__")
    label = repr(short(str.__str__(name))) if is_a(name, str) else "?"
    if type_name(type(module)) == "importlib.util._LazyModule":
        return "<module %s (imported lazily, not loaded yet)>" % label
    path = names.get("__file__")
    if is_a(path, str):
        return "<module %s from %r>" % (label, short(str.__str__(path)))
    spec = names.get("__spec__")
    own = instance_dict(spec) if spec is not None else None
    origin = own.get("origin") if own is not None else None
    if origin in ("built-in", "frozen"):
        return "<module %s (%s)>" % (label, origin)
    return "<module %s>" % label


def module_of(kind: type) -> str:
    """A class's ``__module__`` from its own dict (type's getter), "" where there is none or not a str."""
    try:
        module = TYPE_MODULE(kind)
    except Exception:  # noqa: BLE001 - deleted from the class's dict, or not a class
        return ""
    return module if is_a(module, str) else ""


def type_name(kind: type, plain: Tuple[str, ...] = ("builtins",)) -> str:
    """``module.Qualified.Name`` of a class, or the bare name for classes of ``plain`` modules;
    ``<type at 0x...>`` when the class will not say. Read with type's own getters: a metaclass may
    shadow ``__module__`` with a property whose code would run here (with no budget on the session's
    thread, inside a hooked call on the program's)."""
    try:
        module = TYPE_MODULE(kind)
        qualname = _TYPE_QUALNAME(kind)
    except Exception:  # noqa: BLE001 - not a class, or a static type without a module
        return "<type at 0x%x>" % id(kind)
    if not is_a(module, str) or module in plain or not module:
        return short(str(qualname))
    return short("%s.%s" % (module, qualname))  # a class named with megabytes: cut like every name


def safe_repr(obj: Any, limit: int = REPR_LIMIT) -> str:
    """``repr(obj)`` cut to ``limit`` characters, or ``<TypeName>`` when it raises; in an agent
    thread within a time budget (``usercode.call_contained``), else ``<TypeName: why>``."""
    from . import usercode  # here: usercode imports this module

    budget = usercode.CAPTURE_BUDGET_MS
    text, error, overran = usercode.call_contained(repr, (obj,), budget)
    if overran and text is usercode.FAILED:
        return "<%s: its __repr__ ran over the budget of %g ms and was stopped>" % (class_name(type(obj)), budget)
    if error is not None or not is_a(text, str):  # a hostile repr, SystemExit included
        return "<%s>" % class_name(type(obj))
    return str.__str__(text)[:limit]  # a plain str: a subclass's __getitem__ would run here


def error_message(error: BaseException, limit: int = MESSAGE_LIMIT) -> Optional[str]:
    """``str(error)``, its head and tail when longer than ``limit``; None when str() raises or, in an
    agent thread, outlives a capture's budget (an exception class's ``__str__`` is the program's code)."""
    from . import usercode  # here: usercode imports this module

    text, failure, _ = usercode.call_contained(str, (error,), usercode.CAPTURE_BUDGET_MS)
    if failure is not None or not is_a(text, str):
        return None
    text = str.__str__(text)  # a plain str: a subclass's __len__ and __getitem__ would run below
    if len(text) <= limit:
        return text
    head = limit * 3 // 4
    return text[:head] + " ... " + text[-(limit // 5) :]


def describe_error(error: BaseException, qualified: bool = False, limit: int = MESSAGE_LIMIT) -> str:
    """``Type: message`` on one line of bounded length; the type alone without a message.

    ``qualified`` names the type with its module (``json.decoder.JSONDecodeError``), as a
    traceback does; otherwise by its bare name, as an expression's error is shown."""
    name = type_name(type(error)) if qualified else class_name(type(error))
    text = error_message(error, limit)
    return "%s: %s" % (name, text) if text else name
