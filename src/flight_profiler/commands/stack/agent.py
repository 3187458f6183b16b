"""``stack -a`` in the target: the stacks of every asyncio task of every loop.

Thread stacks are read from outside by the client (no injection needed); only
asyncio tasks need the agent, since their suspended coroutines are not on any
thread's stack.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading

from ...services.context import JobContext

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


FRAME_LIMIT = 64


def run(request: dict[str, Any], ctx: JobContext) -> None:
    loops: dict[int, dict[str, Any]] = {}
    for task in _all_tasks():
        loop = _loop_of(task)
        entry = loops.setdefault(id(loop), {"loop": _safe_repr(loop), "running": _running(loop), "tasks": []})
        entry["tasks"].append(_describe(task))
    for entry in loops.values():
        entry["tasks"].sort(key=lambda task: task["name"])
    ctx.emit({"loops": list(loops.values()), "threads": _loop_threads()})


def _all_tasks() -> list[Any]:
    """Every pending task; the registries' names differ across 3.8-3.14, gc covers the rest."""
    tasks: list[Any] = []
    module = sys.modules.get("asyncio.tasks")
    for name in ("_all_tasks", "_scheduled_tasks"):
        registry = getattr(module, name, None)
        if registry is not None:
            tasks.extend(list(registry))
    eager = getattr(module, "_eager_tasks", None)
    if eager is not None:
        tasks.extend(list(eager))
    if not tasks:
        tasks = [obj for obj in gc.get_objects() if isinstance(obj, asyncio.Future) and hasattr(obj, "get_coro")]
    unique = {id(task): task for task in tasks if not task.done()}
    return list(unique.values())


def _describe(task: Any) -> dict[str, Any]:
    frames = []
    for frame in task.get_stack(limit=FRAME_LIMIT):
        code = frame.f_code
        frames.append({"name": code.co_name, "file": code.co_filename, "line": frame.f_lineno})
    coro = task.get_coro()
    return {
        "name": task.get_name() if hasattr(task, "get_name") else _safe_repr(task),
        "coro": getattr(coro, "__qualname__", _safe_repr(coro)),
        "frames": frames,  # outermost first, as asyncio returns them for suspended coroutines
    }


def _loop_of(task: Any) -> Any:
    try:
        return task.get_loop()
    except AttributeError:
        return getattr(task, "_loop", None)


def _running(loop: Any) -> bool:
    try:
        return bool(loop.is_running())
    except Exception:  # noqa: BLE001 - a custom loop may not implement it
        return False


def _loop_threads() -> dict[str, str]:
    """Which thread runs which loop, found through the running-loop holder of each thread."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return {str(ident): name for ident, name in names.items() if ident is not None}


def _safe_repr(obj: Any) -> str:
    try:
        return repr(obj)[:200]
    except Exception:  # noqa: BLE001 - hostile repr
        return "<%s>" % type(obj).__name__
