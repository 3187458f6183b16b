"""``sc`` in the target: loaded classes whose name matches a pattern; the search ``sm`` shares.

Nothing is imported and no code of the target runs: modules come from
``sys.modules`` as they are, names from their ``__dict__`` (no ``getattr``, so
no module ``__getattr__`` and no descriptor runs), and only what a module
defines itself is listed (``__module__`` names it), so re-exports are not
counted twice. The pattern is a glob (``*``, ``?``) over the qualified name
``module.Class[.Inner]``; a pattern without a wildcard matches that exact name
or any name ending in ``.pattern`` (``sc Inventory``, ``sc service.Inventory``).
"""

from __future__ import annotations

import sys
import types

from ...services import cpuquota, hooks
from ...services.context import CommandFailed, JobContext
from ...services.describe import MODULE_DICT, TYPE_BASES, TYPE_DICT, is_a, short
from .model import DEFAULTS, MAX_LIMIT, MAX_MODULES

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

    from .model import SearchRequest

NESTED_DEPTH = 3  # classes inside classes looked at, levels deep
OWN_PREFIX = "_flight_profiler"


def run(request: SearchRequest, ctx: JobContext) -> None:
    ctx.emit(search(request, "class", _classes, _describe_class, wait=ctx.wait))


def search(
    request: SearchRequest,
    what: str,
    walk: Callable[[str, types.ModuleType], Iterator[tuple[str, Any, str]]],
    describe: Callable[[str, str, Any, str, bool], dict[str, Any]],
    owners: bool = False,
    wait: Callable[[float], bool] | None = None,
) -> dict[str, Any]:
    """Run ``walk`` over every loaded module; the matches, described, bounded by the limit.
    ``owners``: a plain name matches what the class or module of that name defines (``Matcher``).
    ``wait``: the job's sleep: the search then runs in slices with pauses (``cpuquota.Slices``: 20,000
    modules took 3 s of a CPU at a stretch), and stops where a pause saw the job cancelled."""
    pattern = str(request.get("pattern") or "")
    limit = int(request.get("limit", DEFAULTS["limit"]))
    if not pattern:
        raise CommandFailed("give a pattern, e.g. *Order* or mymodule.MyClass")
    if not 1 <= limit <= MAX_LIMIT:
        raise CommandFailed("-n must be 1..%d" % MAX_LIMIT)
    matches = Matcher(pattern, owners)
    found: list[dict[str, Any]] = []
    total = 0
    modules = _modules()
    slices = cpuquota.Slices(wait) if wait is not None else None
    cancelled = False
    for module_name, module in modules:
        if slices is not None and not slices.tick():
            cancelled = True  # nobody waits for the answer: what was found so far, no error
            break
        for name, obj, kind in walk(module_name, module):
            if not matches(name):
                continue
            total += 1
            if len(found) < limit:
                match = describe(module_name, name, obj, kind, bool(request.get("detail", DEFAULTS["detail"])))
                found.append(_cut(match))
    if not total and not cancelled:
        unsearched = len(sys.modules) - len(modules) if len(modules) >= MAX_MODULES else 0
        raise CommandFailed(
            "no loaded %s matches %r (%d modules searched%s; nothing is imported)"
            % (what, pattern, len(modules), ", %d more not (the bound)" % unsearched if unsearched > 0 else "")
        )
    found.sort(key=lambda match: match["name"])
    result = {"pattern": pattern, "matches": found, "total": total, "shown": len(found), "modules": len(modules)}
    if len(modules) >= MAX_MODULES and len(sys.modules) > len(modules):  # the bound said, not a silent cut
        result["not_searched"] = len(sys.modules) - len(modules)
    return result


# characters kept of what a match holds: a name the target made (a class can be named with megabytes; a
# real qualified name can pass NAME_LIMIT's 200), a file name (PATH_MAX), a signature
NAME_KEPT = 1000
_CUT_AT = {"file": 4096, "signature": 2000}


def _cut(match: dict[str, Any]) -> dict[str, Any]:
    """The program's names cut (``describe.short``): a class or function named with megabytes was sent
    whole, past the protocol's 4 MB line, and the session was dropped. The pattern matched the whole name."""
    for key, value in match.items():
        if is_a(value, str):
            match[key] = short(value, _CUT_AT.get(key, NAME_KEPT))
        elif is_a(value, list):
            match[key] = [short(item, NAME_KEPT) if is_a(item, str) else item for item in value]
    return match


def _modules() -> list[tuple[str, types.ModuleType]]:
    out = []
    for name, module in list(sys.modules.items()):  # a snapshot: other threads import meanwhile
        if is_a(module, types.ModuleType) and not name.startswith(OWN_PREFIX):
            out.append((name, module))
            if len(out) >= MAX_MODULES:
                break
    return out


class Matcher:
    """Glob matching with ``*`` and ``?`` (no fnmatch/re import in the target).

    A glob without a dot is matched against the bare name too (``Inv*`` finds ``shop.Inventory``, as
    a person reading class names expects; ``*Inv*`` always did). With ``owners`` (sm), a plain
    name also matches what its owner defines: ``Inventory`` or ``shop.Inventory`` lists the class's
    methods, ``json`` the module's functions, as Arthas's ``sm CLASS`` does."""

    def __init__(self, pattern: str, owners: bool = False) -> None:
        self.pattern = pattern
        self.glob = "*" in pattern or "?" in pattern
        self.bare = self.glob and "." not in pattern
        self.suffix = "." + pattern
        self.owners = owners

    def __call__(self, name: str) -> bool:
        if self.glob:
            return glob_match(self.pattern, name) or (self.bare and glob_match(self.pattern, name.rpartition(".")[2]))
        if name == self.pattern or name.endswith(self.suffix):
            return True
        if not self.owners:
            return False
        owner = name.rpartition(".")[0]
        return owner == self.pattern or owner.endswith(self.suffix)


def glob_match(pattern: str, text: str) -> bool:
    """Wildcard matching, no recursion, no regex. A pattern of literal parts and ``*`` (the usual one)
    is matched by str's own prefix, suffix and find, in C: the loop below steps through the text a
    character at a time in Python, ~1 s for a class named with 5 MB on 3.8, once per command."""
    if "?" not in pattern:
        return _star_match(pattern.split("*"), text)
    return _wildcard_match(pattern, text)


def _star_match(parts: list[str], text: str) -> bool:
    """The text is ``parts`` joined by any strings. Each middle part is taken at its leftmost place:
    a later one could only leave less room for the parts after it."""
    if len(parts) == 1:
        return text == parts[0]
    first, last = parts[0], parts[-1]
    if len(first) + len(last) > len(text) or not text.startswith(first) or not text.endswith(last):
        return False
    at, end = len(first), len(text) - len(last)
    for part in parts[1:-1]:
        found = text.find(part, at, end)
        if found < 0:
            return False
        at = found + len(part)
    return True


def _wildcard_match(pattern: str, text: str) -> bool:
    """Iterative matching of ``*`` and ``?``: linear in practice."""
    p = t = 0
    star = -1
    mark = 0
    while t < len(text):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p += 1
            t += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def namespace(obj: Any) -> dict[str, Any]:
    """An object's own ``__dict__`` as a snapshot, without running any of its code.

    Classes and modules through type's and ModuleType's own getters: ``object.__getattribute__``
    still finds a ``__dict__`` property that a metaclass or a module subclass defines, and runs it.
    """
    try:
        if is_a(obj, type):
            found = TYPE_DICT(obj)
        elif is_a(obj, types.ModuleType):
            found = MODULE_DICT(obj)
        else:
            found = object.__getattribute__(obj, "__dict__")
    except Exception:  # noqa: BLE001 - no __dict__, or a hostile one
        return {}
    try:
        return dict(found)
    except Exception:  # noqa: BLE001 - a mappingproxy that cannot be copied
        return {}


def defined_in(obj: Any, module_name: str) -> bool:
    return namespace(obj).get("__module__") == module_name if is_a(obj, type) else _module_of(obj) == module_name


def _module_of(obj: Any) -> Any:
    try:
        return object.__getattribute__(obj, "__module__")
    except Exception:  # noqa: BLE001
        return None


def classes_of(module_name: str, module: types.ModuleType) -> Iterator[tuple[str, type]]:
    """(qualified name, class) of every class the module defines, nested ones included, each once."""
    for attr, value in _own_classes(namespace(module), module_name, None):
        yield from _with_nested("%s.%s" % (module_name, attr), value, module_name, NESTED_DEPTH)


def _with_nested(name: str, klass: type, module_name: str, depth: int) -> Iterator[tuple[str, type]]:
    yield name, klass
    if depth <= 1:
        return
    for attr, value in _own_classes(namespace(klass), module_name, klass):
        yield from _with_nested("%s.%s" % (name, attr), value, module_name, depth - 1)


def _own_classes(attrs: dict[str, Any], module_name: str, outer: Any) -> list[tuple[str, type]]:
    """(attribute, class) of the classes in ``attrs`` that ``module_name`` defines, each class once.

    A class bound under a second name (logging's ``_loggerClass = Logger``) was listed twice, its
    methods too; it is listed under the name its class statement gave it when one of the names is
    that one, else under the first. In the namespace's order.
    """
    found: dict[int, tuple[str, type]] = {}
    for attr, value in attrs.items():
        if not is_a(value, type) or value is outer or not defined_in(value, module_name):
            continue
        if id(value) not in found or attr == _own_name(value):  # a dict's names differ: no name comes twice
            found[id(value)] = (attr, value)
    return list(found.values())


def _own_name(klass: Any) -> Any:
    try:
        return _TYPE_NAME.__get__(klass, type)  # type's own descriptor: a metaclass's never runs
    except Exception:  # noqa: BLE001
        return None


def _classes(module_name: str, module: types.ModuleType) -> Iterator[tuple[str, Any, str]]:
    for name, klass in classes_of(module_name, module):
        yield name, klass, "class"


def _describe_class(module: str, name: str, klass: Any, kind: str, detail: bool) -> dict[str, Any]:
    match: dict[str, Any] = {"name": name, "module": module, "kind": kind}
    if detail:
        match["bases"] = [_class_name(base) for base in TYPE_BASES(klass)]
        match["file"] = module_file(module)
        match["line"] = class_line(klass)
    return match


def _class_name(klass: Any) -> str:
    # type's own descriptors: a metaclass's __getattribute__ never runs
    try:
        module = _TYPE_MODULE.__get__(klass, type)
        qualname = _TYPE_QUALNAME.__get__(klass, type)
    except Exception:  # noqa: BLE001 - not a class after all
        return "?"
    return str(qualname) if module == "builtins" else "%s.%s" % (module, qualname)


_TYPE_MODULE = type.__dict__["__module__"]
_TYPE_NAME = type.__dict__["__name__"]
_TYPE_QUALNAME = type.__dict__["__qualname__"]


def module_file(module_name: str) -> str | None:
    module = sys.modules.get(module_name)
    found = namespace(module).get("__file__") if module is not None else None
    return found if is_a(found, str) else None


def class_line(klass: Any) -> int | None:
    """The class statement's line (3.13+ records it), else its first method's, else None."""
    attrs = namespace(klass)
    line = attrs.get("__firstlineno__")
    if is_a(line, int):
        return line
    lines = [code.co_firstlineno for code in (code_of(value) for value in attrs.values()) if code is not None]
    return min(lines) if lines else None


def code_of(value: Any) -> Any:
    """The code object behind a function, staticmethod, classmethod or property getter; else None."""
    if is_a(value, (staticmethod, classmethod)):
        value = value.__func__
    elif is_a(value, property):
        value = value.fget
    return hooks.real_code(value) if is_a(value, types.FunctionType) else None  # not a hook's wrapper
