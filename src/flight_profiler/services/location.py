"""``module [class] method [-nm nested]`` to the Python function to instrument (runs in the target).

Shared by ``watch``, ``trace``, ``tt`` and ``reload``. Nothing is imported:
the module must already be loaded (``services.resolve``). Descriptors are
looked through (classmethod, staticmethod, a property's getter, a bound
method), and so are decorators that keep the function they wrap in
``__wrapped__``: instrumenting the innermost function is what makes every
caller see the hook, however it reaches the function.
"""

from __future__ import annotations

import os
import posix
import stat
import sys
import types

from . import hooks, interpreters
from .context import CommandFailed
from .describe import MODULE_DICT, class_name, instance_dict
from .resolve import find_attribute, find_class, loaded_module, module_label, qualified

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


def read_source_file(path: str, limit: int) -> bytes | None:
    """At most ``limit + 1`` bytes of the regular file ``path`` (``source``, ``reload``); None when it
    is not a regular file. A code object's file name is the program's to set: a FIFO would block
    the open or the read in C for good (nothing of ours can stop that), /dev/zero never ends."""
    try:
        fd = posix.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)  # not eventlet's (cgroups)
    except NotADirectoryError:
        return _from_archive(path, limit)  # ARCHIVE/member: imported from a zip (zipapp, lib.zip on the path)
    except OSError as exc:
        raise CommandFailed("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, got = [], 0
        while got <= limit:
            chunk = posix.read(fd, min(limit + 1 - got, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise CommandFailed("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    finally:
        os.close(fd)


def _from_archive(path: str, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``member`` for a code file named ``ARCHIVE/member``: a module
    zipimport loaded (a ``.pyz``, ``PYTHONPATH=lib.zip``). It was "cannot read ...: Not a directory".
    The archive is the longest regular file that begins the path; the member is read by its
    uncompressed bytes, at most ``limit + 1``, so a member that inflates without end stops there."""
    head = path
    parts: list[str] = []
    while True:
        head, tail = os.path.split(head)
        if not tail:
            raise CommandFailed("cannot read %s: no archive on its path" % path)
        parts.insert(0, tail)
        try:
            mode = os.stat(head).st_mode
        except OSError:
            continue
        if not stat.S_ISREG(mode):
            raise CommandFailed("cannot read %s: not a directory, not an archive" % path)
        break
    member_name = "/".join(parts)
    _check_directory(head, member_name)
    import zipfile  # only for a module loaded from an archive

    try:
        with zipfile.ZipFile(head) as archive, archive.open(member_name) as member:
            data: bytes = member.read(limit + 1)
            return data
    except (OSError, KeyError, zipfile.BadZipFile, RuntimeError) as exc:
        raise CommandFailed("cannot read %s from the archive %s: %s" % (member_name, head, exc)) from None


MAX_DIRECTORY = 4 << 20  # bytes of an archive's central directory read in the target (~40,000 entries)
_EOCD = b"PK\x05\x06"  # the end of central directory record's signature; the record is 22 bytes and more


def _check_directory(archive: str, member: str) -> None:
    """Refuse an archive whose central directory is over MAX_DIRECTORY before zipfile reads all of it:
    it keeps one ZipInfo per entry (~500 bytes), in the target, for one member's source. Read from the
    end record (its last 64 KiB: the record, and a comment of up to 65,535 bytes before it)."""
    try:
        with open(archive, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - (1 << 16) - 22))
            tail = fh.read()
    except OSError as exc:
        raise CommandFailed("cannot read %s from the archive %s: %s" % (member, archive, exc.strerror or exc)) from None
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) < at + 22:
        return  # no end record: zipfile says what is wrong
    entries = int.from_bytes(tail[at + 10 : at + 12], "little")
    directory = int.from_bytes(tail[at + 12 : at + 16], "little")
    if directory > MAX_DIRECTORY or entries == 0xFFFF or directory == 0xFFFFFFFF:  # zip64: larger still
        raise CommandFailed(
            "cannot read %s from the archive %s: its directory of %s entries (%s bytes) is more than the %s bytes "
            "read in the target for one file"
            % (
                member,
                archive,
                "65,535+" if entries == 0xFFFF else f"{entries:,}",
                "4 GB+" if directory == 0xFFFFFFFF else f"{directory:,}",
                f"{MAX_DIRECTORY:,}",
            )
        )


MAX_WRAPPED = 32  # a __wrapped__ chain longer than this is a cycle


class Target:
    """The function to instrument and how its calls are to be read."""

    def __init__(
        self, func: types.FunctionType, label: str, kind: str, nested: list[tuple[types.CodeType, ...]] | None
    ) -> None:
        self.func = func  # for -nm: the enclosing function, whose code holds the nested ones
        self.label = label  # module.Class.method[.nested], for people
        self.kind = kind  # function, method, classmethod, staticmethod, property getter, nested function
        self.nested = nested  # for -nm: the path of code objects down to each nested function named
        self.note: str | None = None  # what the person must know to read the calls (a cache in front)
        self.is_method = kind in ("method", "classmethod", "property getter")  # args[0] is the target

    @property
    def code(self) -> types.CodeType:
        """The code whose calls are reported (the first one, for several nested functions of one name)."""
        return self.nested[0][-1] if self.nested else hooks.real_code(self.func)

    def describe(self) -> dict[str, Any]:
        code = self.code
        return {
            "target": self.label,
            "callable": self.kind,
            "file": code.co_filename,
            "line": code.co_firstlineno,
            **({"note": self.note} if self.note else {}),
        }


def resolve(module_name: str, class_name: str | None, name: str, nested: str | None = None) -> Target:
    module = loaded_module(module_name)
    own_name = module_label(module)
    label = qualified(own_name, class_name, name)
    if class_name:
        owner: Any = find_class(module, class_name)
        raw = find_attribute(owner, name, qualified(own_name, class_name, ""))
    else:
        raw = find_attribute(module, name, own_name)
    inner, kind = _described(raw, label, in_class=bool(class_name))
    func = _unwrap(inner, label)
    if not nested:
        target = Target(func, label, kind, None)
        target.note = _notes(_cache_note(inner), interpreters.note())
        return target
    names, paths = _nested_paths(func, label, nested)
    what = "nested method" if len(paths[0]) > 1 and hooks.is_class_body(paths[0][-2]) else "nested function"
    if len(paths) > 1:
        what = "%d nested functions" % len(paths)
    target = Target(func, "%s.%s" % (label, ".".join(names)), what, paths)
    target.note = interpreters.note()
    return target


def _notes(*notes: str | None) -> str | None:
    said = [note for note in notes if note]
    return "; ".join(said) if said else None


def _described(raw: Any, label: str, in_class: bool) -> tuple[Any, str]:
    """Look through a descriptor to what it calls (decorators are ``_unwrap``'s), and the kind of callable."""
    if isinstance(raw, staticmethod):
        return raw.__func__, "staticmethod"
    if isinstance(raw, classmethod):
        return raw.__func__, "classmethod"
    if isinstance(raw, property):
        if raw.fget is None:
            raise CommandFailed("%s is a property without a getter" % label)
        return raw.fget, "property getter"
    if isinstance(raw, types.MethodType):
        return raw.__func__, "method"
    return raw, "method" if in_class else "function"


CACHE_NOTE = (
    "behind functools.lru_cache: a call its cache answers never reaches this function, and is not seen or counted"
)


def _cache_note(inner: Any) -> str | None:
    """``CACHE_NOTE`` when a ``functools.lru_cache`` (or ``cache``) wrapper lies on ``inner``'s decorator
    chain: the innermost function, the one hooked, sees only the cache's misses, so ``watch`` of a method
    called 100 times a second showed nothing and ``monitor`` counted a few calls. (Only the C wrapper's
    exact type is recognised: nothing of the program runs to find out.)"""
    functools = sys.modules.get("functools")
    if type(functools) is not types.ModuleType:  # exactly: a subclass's attributes are its code
        return None
    wrapper_type = MODULE_DICT(functools).get("_lru_cache_wrapper")  # its dict: no module __getattr__ runs
    if type(wrapper_type) is not type:
        return None  # the pure-Python fallback: a plain function, not told apart
    return CACHE_NOTE if any(type(obj) is wrapper_type for obj in _chain(inner)) else None


def _chain(obj: Any) -> list[Any]:
    """``obj`` and the decorators' ``__wrapped__`` below it, innermost last (MAX_WRAPPED at most)."""
    chain = [obj]
    for _ in range(MAX_WRAPPED):
        wrapped = _wrapped(chain[-1])
        if wrapped is None:
            break
        chain.append(wrapped)
    return chain


def _unwrap(obj: Any, label: str) -> types.FunctionType:
    """The innermost Python function along the decorators' ``__wrapped__`` chain. One below it that is
    not one (``functools.wraps(len)``, a callable object, something odd a library set) is what that
    function calls: it was refused ("is a built-in (C) function") though the function named was Python."""
    chain = _chain(obj)
    for candidate in reversed(chain):
        if type(candidate) is types.FunctionType:  # exactly (it has no subclasses): no __class__ of theirs runs
            found: types.FunctionType = candidate
            return found
    raise CommandFailed("%s %s" % (label, _what(chain[0])))


def _wrapped(obj: Any) -> Any:
    """A decorator's ``__wrapped__`` from the object's own dict, read through its class's slot: a
    ``__getattr__`` or a ``__dict__`` property is the program's code."""
    own = instance_dict(obj)
    return None if own is None else dict.get(own, "__wrapped__")


def _what(obj: Any) -> str:
    if isinstance(obj, type):
        return "is a class: name one of its methods (module class method)"
    if isinstance(obj, (types.BuiltinFunctionType, types.BuiltinMethodType)):
        return "is a built-in (C) function: only Python functions can be instrumented"
    if isinstance(obj, types.ModuleType):
        return "is a module, not a Python function"
    kind = class_name(type(obj))
    if callable(obj):
        return "is a callable %s object, not a Python function (name its class's __call__ instead)" % kind
    return "is %s %s, not a Python function" % ("an" if kind[:1] in "aeiou" else "a", kind)


def _nested_paths(
    func: types.FunctionType, label: str, spec: str
) -> tuple[tuple[str, ...], list[tuple[types.CodeType, ...]]]:
    """``-nm`` to the code paths it names, and their names.

    ``a.b`` is ``b`` defined in ``a`` defined in the function (a class body is
    a step: ``Inner.method``); a name that is not such a path from the
    function matches where it ends any path (``b`` alone finds ``a.b``) when
    it ends only one. Every code object at that path is hooked: a name
    defined twice (in both branches of an ``if``, say) is the same function to
    the person reading the source.
    """
    wanted = tuple(spec.split("."))
    every = hooks.nested_paths(hooks.real_code(func))
    found = [(path, names) for path, names in every if not hooks.is_class_body(path[-1])]
    exact = [entry for entry in found if entry[1] == wanted]
    matches = exact or [entry for entry in found if entry[1][-len(wanted) :] == wanted]
    if not matches:
        if any(n == wanted and hooks.is_class_body(p[-1]) for p, n in every):
            raise CommandFailed("%s.%s is a class: name one of its methods (-nm %s.METHOD)" % (label, spec, spec))
        names = sorted({".".join(n) for _, n in found})
        hint = _listing(names) if names else " (it defines no nested functions)"
        raise CommandFailed("%s defines no nested function %r%s" % (label, spec, hint))
    distinct = sorted({".".join(n) for _, n in matches})
    if len(distinct) > 1:
        raise CommandFailed(
            "-nm %s is ambiguous in %s: it could be %s; name one by its path" % (spec, label, ", ".join(distinct))
        )
    kinds = sorted({hooks.code_kind(p[-1]) for p, _ in matches})
    if len(kinds) > 1:
        raise CommandFailed(
            "%s defines %d functions named %s of different kinds (%s): they cannot be instrumented together"
            % (label, len(matches), distinct[0], ", ".join(kinds))
        )
    return matches[0][1], [path for path, _ in matches]


def _listing(names: list[str]) -> str:
    shown = names[:12]
    more = " and %d more" % (len(names) - len(shown)) if len(names) > len(shown) else ""
    return " (it defines: %s%s)" % (", ".join(shown), more)
