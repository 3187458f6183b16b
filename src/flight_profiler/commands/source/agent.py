"""``source`` in the target: a module's, class's or function's source, and whether it is what runs.

The text comes from the file the code object names, read directly (no
``linecache``, no ``inspect``: neither is imported into the target). To tell a
stale deploy or a ``reload`` apart, the file is compiled now (``compile`` only,
nothing is executed) and each running function's code is compared with its
counterpart from the file: instructions, names and constants, nested
functions included. Line numbers alone do not count as a difference: code
that only moved is reported as moved.
"""

from __future__ import annotations

import sys
import types

from ...services import hooks
from ...services.context import CommandFailed, JobContext
from ...services.describe import class_name, short
from ...services.location import read_source_file, resolve
from ...services.resolve import find_attribute, loaded_module, module_label
from ..sc.agent import code_of, defined_in, namespace
from .model import MAX_BYTES, MAX_DIFFERING, MAX_LINES

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Iterator

    from .model import SourceRequest


def run(request: SourceRequest, ctx: JobContext) -> None:
    module = loaded_module(request["module"])
    names = list(request.get("names") or [])
    if len(names) > 2:
        raise CommandFailed("expected: module [class] [method], got %d names after the module" % len(names))
    if not names:
        ctx.emit(_module_source(module))
        return
    if len(names) == 1:
        found = find_attribute(module, names[0], module_label(module))
        if isinstance(found, type):
            ctx.emit(_class_source(module_label(module) + "." + names[0], found))
            return
    target = resolve(module_label(module), names[0] if len(names) == 2 else None, names[-1])
    ctx.emit(_function_source(target.label, target.kind, hooks.real_code(target.func), names))


# ------------------------------------------------------------------ the three kinds


def _module_source(module: types.ModuleType) -> dict[str, Any]:
    path = namespace(module).get("__file__")
    if not isinstance(path, str) or not path.endswith(".py"):
        raise CommandFailed("module %s has no Python source file (%r)" % (module_label(module), path))
    lines = _read(path)
    disk = _compile(lines, path)
    differing = []
    for name, code in _module_codes(module):
        if not _found_same(code, disk, name.split(".")[1:]):
            differing.append(name)
    return _result(module_label(module), "module", path, lines, 1, len(lines), differing, disk is not None)


def _class_source(label: str, klass: type) -> dict[str, Any]:
    module_name = str(namespace(klass).get("__module__") or "")
    module = sys.modules.get(module_name)
    path = namespace(module).get("__file__") if module is not None else None
    if not isinstance(path, str) or not path.endswith(".py"):
        raise CommandFailed("class %s has no Python source file (module %s: %r)" % (label, module_name, path))
    lines = _read(path)
    disk = _compile(lines, path)
    qualname = str(namespace(klass).get("__qualname__") or class_name(klass)).split(".")
    body = _find(disk, qualname) if disk is not None else None
    start = namespace(klass).get("__firstlineno__")
    if not isinstance(start, int):
        if body is None:
            raise CommandFailed("class %s is not in %s any more: the file changed since it was loaded" % (label, path))
        start = body.co_firstlineno
    end = _block_end(lines, start, body)
    differing = []
    for attr, value in namespace(klass).items():
        code = code_of(value)
        if code is not None and not _found_same(code, disk, [*qualname, attr]):
            differing.append("%s.%s" % (label, attr))
    return _result(label, "class", path, lines, start, end, differing, disk is not None)


def _function_source(label: str, kind: str, code: types.CodeType, names: list[str]) -> dict[str, Any]:
    path = code.co_filename
    if not path.endswith(".py"):
        raise CommandFailed("%s was not loaded from a Python source file (%r)" % (label, path))
    lines = _read(path)
    disk = _compile(lines, path)
    twin = _twin(code, disk, _qualname(code, names)) if disk is not None else None
    start = twin.co_firstlineno if twin is not None else code.co_firstlineno
    end = _block_end(lines, start, twin)
    differing = [] if twin is not None and same_code(code, twin) else [label]
    result = _result(label, kind, path, lines, start, end, differing, disk is not None)
    if twin is not None and twin.co_firstlineno != code.co_firstlineno:
        result["moved"] = code.co_firstlineno
    return result


def _result(
    label: str, what: str, path: str, lines: list[str], start: int, end: int, differing: list[str], compiled: bool
) -> dict[str, Any]:
    shown = lines[start - 1 : min(end, start - 1 + MAX_LINES)]
    status = "unknown" if not compiled else ("differs" if differing else "matches")
    return {
        "target": short(label),  # names are the program's: a class may be named with megabytes
        "what": what,
        "file": path,
        "start": start,
        "lines": shown,
        "more": max(0, end - start + 1 - len(shown)),
        "status": status,
        "differing": [short(name) for name in differing[:MAX_DIFFERING]],
    }


# ------------------------------------------------------------------ reading and compiling the file


def _read(path: str) -> list[str]:
    raw = read_source_file(path, MAX_BYTES)
    if raw is None:
        raise CommandFailed("%s is not a regular file" % path)
    if len(raw) > MAX_BYTES:
        raise CommandFailed("%s is larger than %d MB" % (path, MAX_BYTES // (1024 * 1024)))
    return raw.decode(_encoding(raw), "replace").splitlines()


def _encoding(raw: bytes) -> str:
    """The PEP 263 coding cookie of the first two lines, without tokenize or re."""
    for line in raw.split(b"\n", 2)[:2]:
        text = line.decode("latin-1").strip()
        if not text.startswith("#"):
            if text:
                break  # PEP 263: a cookie on line 2 counts only below a comment or blank line 1
            continue
        for marker in ("coding:", "coding="):
            at = text.find(marker)
            if at >= 0:
                name = text[at + len(marker) :].strip().split()[0] if text[at + len(marker) :].strip() else ""
                name = "".join(ch for ch in name if ch.isalnum() or ch in "-_.")
                if name:
                    try:
                        "".encode(name)
                        return name
                    except LookupError:
                        return "utf-8"
    return "utf-8"


def _compile(lines: list[str], path: str) -> types.CodeType | None:
    try:
        # dont_inherit: our own future flags must not change how the file compiles
        return compile("\n".join(lines) + "\n", path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None  # the file on disk does not even compile: what runs cannot be compared


def _block_end(lines: list[str], start: int, code: types.CodeType | None) -> int:
    """The last line of the definition starting at ``start``: by indentation, and by the code's line table."""
    end = start
    if 0 < start <= len(lines):
        header = lines[start - 1]
        indent = len(header) - len(header.lstrip())
        seen_body = False
        for number in range(start + 1, len(lines) + 1):
            text = lines[number - 1]
            stripped = text.strip()
            if not stripped:
                continue
            if len(text) - len(text.lstrip()) <= indent and seen_body and not stripped.startswith((")", "]", "}")):
                break
            if not stripped.startswith("@"):
                seen_body = True
            end = number
    if code is not None:
        end = max(end, last_line(code))
    return min(end, len(lines))


def last_line(code: types.CodeType) -> int:
    """The highest line number any instruction of ``code`` (or of code nested in it) has."""
    best = code.co_firstlineno
    if hasattr(code, "co_lines"):  # 3.10+
        for _, _, line in code.co_lines():
            if line is not None and line > best:
                best = line
    else:  # 3.8, 3.9: pairs of (byte increment, signed line increment)
        table = code.co_lnotab
        line = code.co_firstlineno
        for index in range(1, len(table), 2):
            step = table[index]
            line += step - 256 if step >= 128 else step
            if line > best:
                best = line
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            best = max(best, last_line(const))
    return best


# ------------------------------------------------------------------ comparing running code with the file


def _module_codes(module: types.ModuleType) -> Iterator[tuple[str, types.CodeType]]:
    """``(module.name[.attr], code)`` of the functions and methods the module defines, top level and in classes."""
    module_name = module_label(module)
    for attr, value in namespace(module).items():
        if isinstance(value, types.FunctionType) and defined_in(value, module_name):
            code = code_of(value)
            if code is not None and code.co_name == attr:
                yield "%s.%s" % (module_name, attr), code
        elif isinstance(value, type) and defined_in(value, module_name) and value.__name__ == attr:
            for name, member in namespace(value).items():
                code = code_of(member)
                if code is not None and code.co_name == name:
                    yield "%s.%s.%s" % (module_name, attr, name), code


def _qualname(code: types.CodeType, names: list[str]) -> list[str]:
    """Where the file defines it: the code's qualified name (3.11+), else the class asked for and its name."""
    qualname = getattr(code, "co_qualname", None)
    if isinstance(qualname, str):
        return [part for part in qualname.split(".") if part != "<locals>"]
    return [*names[:-1], code.co_name]  # the code's own name: the method may be reached through a decorator


def _found_same(code: types.CodeType, disk: types.CodeType | None, path: list[str]) -> bool:
    if disk is None:
        return True  # nothing to compare with: reported as "unknown" as a whole
    twin = _twin(code, disk, path)
    return twin is not None and same_code(code, twin)


def _twin(code: types.CodeType, disk: types.CodeType, path: list[str]) -> types.CodeType | None:
    """The file's code object for the running ``code``: by qualified name, else by name and line."""
    found = _find(disk, path)
    if found is not None:
        return found
    named = [candidate for candidate in _walk(disk) if candidate.co_name == code.co_name]
    for candidate in named:
        if candidate.co_firstlineno == code.co_firstlineno:
            return candidate
    return named[0] if len(named) == 1 else None


def _find(code: types.CodeType, path: list[str]) -> types.CodeType | None:
    """Follow class bodies and functions by name from the module's code: ``['Class', 'method']``."""
    current = code
    for name in path:
        nxt = None
        for const in current.co_consts:
            if isinstance(const, types.CodeType) and const.co_name == name:
                nxt = const  # the last definition wins, as it does when the module runs
        if nxt is None:
            return None
        current = nxt
    return current


def _walk(code: types.CodeType) -> Iterator[types.CodeType]:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield const
            yield from _walk(const)


def same_code(running: types.CodeType, disk: types.CodeType) -> bool:
    """Same instructions, names and constants (nested code compared the same way); lines may differ."""
    if running.co_code != disk.co_code:
        return False
    for attr in ("co_names", "co_varnames", "co_freevars", "co_cellvars", "co_argcount", "co_kwonlyargcount"):
        if getattr(running, attr) != getattr(disk, attr):
            return False
    if len(running.co_consts) != len(disk.co_consts):
        return False
    for mine, theirs in zip(running.co_consts, disk.co_consts):
        if isinstance(mine, types.CodeType) or isinstance(theirs, types.CodeType):
            if not (isinstance(mine, types.CodeType) and isinstance(theirs, types.CodeType)):
                return False
            if not same_code(mine, theirs):
                return False
        elif type(mine) is not type(theirs) or repr(mine) != repr(theirs):  # literals only: their repr is ours
            return False
    return True
