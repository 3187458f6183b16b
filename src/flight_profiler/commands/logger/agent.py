"""``logger`` in the target: the logging tree, and a level change that reverts itself.

Read-only unless ``--level`` is given. ``logging`` is never imported: a target
that has not loaded it has no loggers. No logger is ever created (``getLogger``
would create one): names are looked up in the manager's dictionary. A level
change is undone by the job's cleanup, which runs on every exit path: after
``--for``, on Ctrl-C, when the client goes away however it died, and on
``detach``. It is undone only if the level is still the one we set, so a
change the application made meanwhile is kept.
"""

from __future__ import annotations

import sys

from ...services import usercode
from ...services.context import CommandFailed, JobContext
from ...services.describe import class_name, describe_error, short
from .model import DEFAULTS, MAX_FOR_S, MAX_HANDLERS, MAX_LOGGERS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

    from .model import LoggerRequest


def run(request: LoggerRequest, ctx: JobContext) -> None:
    logging = sys.modules.get("logging")
    if logging is None:
        raise CommandFailed("logging is not loaded in the target: it has no loggers")
    name = request.get("name")
    if request.get("level") is None:
        ctx.emit(_contained_tree(logging, name))
        return
    if not name:
        raise CommandFailed("--level needs --name (use --name root for the root logger)")
    _change(logging, name, str(request["level"]), float(request.get("seconds", DEFAULTS["seconds"])), ctx)


def _find(logging: Any, name: str) -> Any:
    if name == "root":
        return logging.root
    found = logging.Logger.manager.loggerDict.get(name)
    if found is None or not isinstance(found, logging.Logger):
        raise CommandFailed("no logger named %r in the target%s" % (name, _suggest(logging, name)))
    return found


def _suggest(logging: Any, name: str) -> str:
    names = [key for key, value in list(logging.Logger.manager.loggerDict.items()) if isinstance(value, logging.Logger)]
    close = [key for key in names if key.startswith(name) or name.startswith(key)]
    return " (did you mean %s?)" % ", ".join(sorted(close)[:5]) if close else ""


def _loggers(logging: Any, name: str | None) -> list[Any]:
    """The root logger, then the others by name (placeholders for unused names left out)."""
    items = sorted(list(logging.Logger.manager.loggerDict.items()))  # noqa: C414 - a snapshot: threads add loggers
    found = [logger for key, logger in items if isinstance(logger, logging.Logger)]
    if name is None:
        return [logging.root, *found]
    start = _find(logging, name)
    if start is logging.root:
        return [logging.root, *found]
    return [start] + [lg for lg in found if lg.name.startswith(start.name + ".")]


def _contained_tree(logging: Any, name: str | None) -> dict[str, Any]:
    """The tree read within the agent's budget: Logger and Handler subclasses (``logging.setLoggerClass``
    makes every logger one) are the program's code, whose properties and methods may loop or block."""
    tree, error, overran = usercode.call_contained(_tree, (logging, name), usercode.AGENT_BUDGET_MS)
    if overran:
        raise CommandFailed(
            "the loggers' own code (a Logger or Handler subclass's method or property) ran over the budget of"
            " %g ms and was stopped" % usercode.AGENT_BUDGET_MS
        )
    if isinstance(error, CommandFailed):
        raise error
    if error is not None:
        raise CommandFailed("reading the loggers raised %s" % describe_error(error))
    result: dict[str, Any] = tree
    return result


def _tree(logging: Any, name: str | None) -> dict[str, Any]:
    loggers = _loggers(logging, name)
    shown = [_describe(logging, logger) for logger in loggers[:MAX_LOGGERS]]
    return {"kind": "tree", "loggers": shown, "total": len(loggers), "shown": len(shown)}


def _describe(logging: Any, logger: Any) -> dict[str, Any]:
    handlers = list(getattr(logger, "handlers", []))
    return {
        "name": "root" if logger is logging.root else short(str(logger.name)),
        "level": _level_name(logging, logger.level),
        "effective": _level_name(logging, logger.getEffectiveLevel()),
        "propagate": bool(logger.propagate),
        "disabled": bool(getattr(logger, "disabled", False)),
        "handlers": [_handler(logging, handler) for handler in handlers[:MAX_HANDLERS]],
    }


def _handler(logging: Any, handler: Any) -> dict[str, Any]:
    info = {"type": class_name(type(handler)), "level": _level_name(logging, getattr(handler, "level", 0))}
    filename = getattr(handler, "baseFilename", None)
    stream = getattr(handler, "stream", None)
    if isinstance(filename, str):
        info["target"] = filename
    elif stream is not None:
        info["target"] = str(getattr(stream, "name", class_name(type(stream))))
    return info


def _level_name(logging: Any, level: Any) -> str:
    name = logging.getLevelName(level)  # a pure lookup: never registers anything for a number
    return short(name) if isinstance(name, str) else str(level)


def _parse_level(logging: Any, text: str) -> int:
    if text.isdigit():
        return int(text)
    known: dict[str, int] = dict(getattr(logging, "_nameToLevel", {}))
    level = known.get(text.upper())
    if level is None:
        names = sorted(known, key=lambda key: known[key])
        raise CommandFailed("unknown level %r; known: %s" % (text, ", ".join(names)))
    return int(level)


def _change(logging: Any, name: str, level_text: str, seconds: float, ctx: JobContext) -> None:
    if not 0 < seconds <= MAX_FOR_S:
        raise CommandFailed("--for must be more than 0 and at most %g seconds" % MAX_FOR_S)
    logger = _contained(lambda: _find(logging, name), "the name's entry in the manager's dict")
    level = _contained(lambda: _parse_level(logging, level_text), "the level names")
    old = _contained(lambda: logger.level, "a Logger subclass's level")
    undo = _Undo(logger, old, level)
    ctx.add_cleanup(undo.cleanup)  # before the change: a setLevel stopped halfway is undone too
    effective = _contained(lambda: _set_level(logger, level), "a Logger subclass's setLevel()")
    ctx.emit(
        {
            "kind": "changed",
            "name": name,
            "old_level": _level_name(logging, old),
            "level": _level_name(logging, level),
            "effective": _level_name(logging, effective),
            "seconds": seconds,
        }
    )
    if ctx.wait(seconds):
        return  # cancelled: the cleanup reverts; nobody reads any more
    kept = undo()
    now = _contained(lambda: logger.level, "a Logger subclass's level")
    ctx.emit({"kind": "reverted", "name": name, "level": _level_name(logging, now), "kept_app_change": not kept})


def _set_level(logger: Any, level: int) -> Any:
    logger.setLevel(level)
    return logger.getEffectiveLevel()


class _Undo:
    """Puts the old level back once (at the end of --for, or as the job's cleanup on any exit), unless
    the application changed the level meanwhile: then theirs is kept. A Logger subclass's ``level``
    and ``setLevel`` are the program's code: read within the budget, and a cleanup never raises."""

    def __init__(self, logger: Any, old: Any, level: int) -> None:
        self.logger, self.old, self.level = logger, old, level
        self.done = False

    def __call__(self) -> bool:
        """Whether the level was still ours (and so was put back)."""
        if self.done:
            return False
        self.done = True
        ours, _, _ = usercode.call_contained(self._put_back, (), usercode.AGENT_BUDGET_MS)
        return ours is True  # FAILED when it raised or overran: the level is left as it is

    def cleanup(self) -> None:
        self()

    def _put_back(self) -> bool:
        if self.logger.level != self.level:
            return False
        self.logger.setLevel(self.old)
        return True


def _contained(read: Any, what: str) -> Any:
    value, error, overran = usercode.call_contained(read, (), usercode.AGENT_BUDGET_MS)
    if overran:
        raise CommandFailed(
            "the program's logging code (%s) ran over the budget of %g ms and was stopped"
            % (what, usercode.AGENT_BUDGET_MS)
        )
    if isinstance(error, CommandFailed):
        raise error
    if error is not None:
        raise CommandFailed("the logger's %s raised %s" % (what, describe_error(error)))
    return value
