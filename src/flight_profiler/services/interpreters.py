"""Whether the process runs more interpreters than the one the agent is in (runs in the target).

Each interpreter has its own modules: a hook set on ``mod.func`` in one never sees the calls the
others make of their own ``mod.func`` (3.14's ``concurrent.interpreters`` and its
``InterpreterPoolExecutor``, mod_wsgi's sub-interpreters), and a name loaded only in another is not
found. People must be told, or an empty ``watch`` reads as "never called".

Known only where the program itself loaded the interpreters module (``_interpreters``, 3.13+, or
``_xxsubinterpreters`` before): we never import it for it. An embedding host that makes
sub-interpreters through the C API alone is not seen.
"""

from __future__ import annotations

import sys
import types

from .describe import MODULE_DICT

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any

_MODULES = ("_interpreters", "_xxsubinterpreters")


def _number(interpreter_id: Any) -> int:
    """``InterpreterID(3)`` (before 3.13) or ``(3, whence)`` (3.13+) as 3."""
    if isinstance(interpreter_id, tuple):
        interpreter_id = interpreter_id[0]
    return int(interpreter_id)


def seen() -> tuple[int, int, int] | None:
    """(interpreters, the agent's one, the main one), by their ids; None when not known."""
    for name in _MODULES:
        module = sys.modules.get(name)
        if type(module) is not types.ModuleType:  # exactly: anything else there is the program's object
            continue
        # read from the module's dict, and only C functions called: what sits in sys.modules under that
        # name may be the program's, whose attributes and functions would run its code here
        found = [MODULE_DICT(module).get(attr) for attr in ("list_all", "get_current", "get_main")]
        if any(type(function) is not types.BuiltinFunctionType for function in found):
            return None
        list_all, get_current, get_main = found
        try:
            every = [_number(each) for each in list_all()]
            return len(every), _number(get_current()), _number(get_main())
        except Exception:  # noqa: BLE001 - an unexpected shape in some version: say nothing
            return None
    return None


def note() -> str | None:
    """What to say beside a hook's start or a failed lookup when other interpreters run; None if none."""
    found = seen()
    if found is None or found[0] < 2:
        return None
    count, current, main = found
    which = "the main one" if current == main else "interpreter %d" % current
    return (
        "this process runs %d interpreters and the agent is in %s: calls made and modules loaded in the "
        "others are not seen" % (count, which)
    )
