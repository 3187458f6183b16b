"""``reload`` in the target: replace one function's code with the one in its source file now.

The whole file is compiled (never run), so line numbers, ``from __future__``
flags and nested scopes come out exactly as an import would make them; the
function's code object is then picked out of the module's code by its
qualified name and swapped into the live function object, so every reference
to the function runs the new body from its next call. Nothing else of the
module is touched: defaults, decorators and module-level statements are not
run again.

Refused, with the target unchanged: the file cannot be read or does not
compile, the function is not in it any more, its parameters changed (the
function object's defaults belong to the old ones), or its closure changed
shape (the cells the function holds cannot change). A function being watched
keeps its hook, which from then on runs the new code; when the hook goes,
the function keeps the new code.
"""

from __future__ import annotations

import types

from ...services import hooks
from ...services.context import CommandFailed, JobContext
from ...services.location import read_source_file, resolve

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from .model import ReloadRequest

CO_OPTIMIZED = 0x01  # set on functions' code, not on class bodies or modules


def run(request: ReloadRequest, ctx: JobContext) -> None:
    target = resolve(request["module"], request.get("cls"), request["method"])
    func = target.func
    old = hooks.real_code(func)
    path = old.co_filename
    module_code = _compile_file(path)
    qualname = getattr(old, "co_qualname", None) or func.__qualname__
    new = _pick(module_code, qualname, old.co_firstlineno)
    if new is None:
        raise CommandFailed("%s is no longer defined in %s (looked for %s)" % (target.label, path, qualname))
    _check_compatible(old, new)
    hooked = hooks.replace_code(func, new)
    ctx.emit(
        {
            "kind": "reloaded",
            "target": target.label,
            "file": path,
            "line": new.co_firstlineno,
            "changed": new.co_code != old.co_code or new.co_consts != old.co_consts,
            "hooked": hooked,
        }
    )


MAX_SOURCE_BYTES = 64 * 1024 * 1024  # a source file larger than this is not read into the target


def _compile_file(path: str) -> types.CodeType:
    if not path or path.startswith("<"):
        raise CommandFailed("the function was not loaded from a file (%s): nothing to reload from" % path)
    source = read_source_file(path, MAX_SOURCE_BYTES)
    if source is None:
        raise CommandFailed("%s is not a regular file: nothing to reload from" % path)
    if len(source) > MAX_SOURCE_BYTES:
        raise CommandFailed("%s is larger than %d MB: not reloaded" % (path, MAX_SOURCE_BYTES // (1024 * 1024)))
    try:
        return compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise CommandFailed("%s does not compile: %s (line %s)" % (path, exc.msg, exc.lineno)) from None
    except (ValueError, TypeError) as exc:  # null bytes, bad encoding declaration
        raise CommandFailed("%s does not compile: %s" % (path, exc)) from None


def _pick(module_code: types.CodeType, qualname: str, old_line: int) -> types.CodeType | None:
    """The function code with this qualified name; the one nearest its old line if several are."""
    found = [code for name, code in _functions(module_code, "", False) if name == qualname]
    if not found:
        return None
    return min(found, key=lambda code: abs(code.co_firstlineno - old_line))


def _functions(code: types.CodeType, prefix: str, in_function: bool) -> list[tuple[str, types.CodeType]]:
    """(qualified name, code) of every function and class body under ``code``, as the compiler names them."""
    out = []
    for const in code.co_consts:
        if not isinstance(const, types.CodeType):
            continue
        if in_function:
            name = "%s.<locals>.%s" % (prefix, const.co_name)
        else:
            name = "%s.%s" % (prefix, const.co_name) if prefix else const.co_name
        name = getattr(const, "co_qualname", name)  # 3.11+: the compiler's own answer
        out.append((name, const))
        out.extend(_functions(const, name, bool(const.co_flags & CO_OPTIMIZED)))
    return out


def _check_compatible(old: types.CodeType, new: types.CodeType) -> None:
    if new.co_freevars != old.co_freevars:
        raise CommandFailed(
            "its closure changed shape: it used %s, the file's version uses %s; restart to load that"
            % (_names(old.co_freevars), _names(new.co_freevars))
        )
    if hooks.code_kind(new) != hooks.code_kind(old):
        raise CommandFailed(
            "it changed from a %s to a %s; restart to load that" % (hooks.code_kind(old), hooks.code_kind(new))
        )
    before, after = _parameters(old), _parameters(new)
    if before != after:
        raise CommandFailed(
            "its parameters changed (%s -> %s): reload replaces the body only; restart to load that" % (before, after)
        )


def _parameters(code: types.CodeType) -> str:
    count = code.co_argcount + code.co_kwonlyargcount
    names = list(code.co_varnames[:count])
    index = count
    if code.co_flags & hooks.CO_VARARGS:
        names.insert(code.co_argcount, "*" + code.co_varnames[index])
        index += 1
    elif code.co_kwonlyargcount:
        names.insert(code.co_argcount, "*")
    if code.co_flags & hooks.CO_VARKEYWORDS:
        names.append("**" + code.co_varnames[index])
    if code.co_posonlyargcount:
        names.insert(code.co_posonlyargcount, "/")
    return "(%s)" % ", ".join(names)


def _names(names: tuple[str, ...]) -> str:
    return "(%s)" % ", ".join(names) if names else "no outer variables"
