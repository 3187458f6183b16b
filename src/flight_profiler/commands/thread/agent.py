"""``thread -b`` in the target: who waits on what, who holds it, and deadlock cycles.

Read-only: frames, locks and tasks are only looked at, nothing is hooked, no
lock is acquired or released. What a thread waits on is found two ways:
- its innermost frames are inside a synchronisation primitive written in
  Python (``threading.Condition.wait``, ``queue.Queue.get``, ``Thread.join``,
  ``asyncio.Lock.acquire`` ...): the primitive is that frame's ``self``;
- otherwise, when the kernel says the thread sleeps on a futex, the C locks
  (``Lock``, ``RLock``) its innermost frame refers to that are held and not
  by this thread.
Who holds it is exact where the runtime records an owner (an ``RLock``'s
owner, which also covers a ``Condition`` built on one; the thread a ``join``
waits for); otherwise the threads or tasks whose frames refer to the object
and do not wait on it themselves are given as likely holders, marked
"inferred". A cycle in waiter -> holder edges is a deadlock.
"""

from __future__ import annotations

import _thread
import sys
import threading
import types

from ...services import realthreads, usercode
from ...services.context import AGENT_THREAD_IDS, CommandFailed, JobContext
from ...services.describe import (
    class_name,
    describe_error,
    instance_dict,
    module_of,
    safe_repr,
    short,
    thread_fields,
    type_name,
)
from .model import DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

    from .model import ThreadRequest

FRAMES = 8  # innermost frames of a thread or task looked at for the objects it refers to
MAX_WAITS = 200
MAX_HOLDERS = 8
MAX_CYCLES = 20
MAX_SCANS = 8  # objects whose holders are looked up through gc referrers (each call walks the heap)
SYS_FUTEX = b"202"
# Python-level primitives: a frame of these files whose ``self`` is one of them is a wait on it
SYNC_FILES = ("threading.py", "queue.py", "_base.py", "locks.py", "queues.py", "futures.py")
SYNC_TYPES = (
    "Condition",
    "Event",
    "Semaphore",
    "BoundedSemaphore",
    "Barrier",
    "Queue",
    "LifoQueue",
    "PriorityQueue",
    "SimpleQueue",
    "Future",
    "Thread",
    "Lock",
    "_RLock",
)
_EXITS = ("__exit__", "__aexit__")
_LOCK = _thread.LockType
_RLOCK = getattr(_thread, "RLock", None)


def run(request: ThreadRequest, ctx: JobContext) -> None:
    interval = int(request.get("interval", DEFAULTS["interval"]) or 0) / 1000.0
    before = None
    if interval > 0:  # two snapshots: a waiter still waiting on the same object at the same line is stuck
        before = {_identity(wait) for wait in _contained_snapshot()[0]}
        if ctx.wait(interval):
            return
    waits, nodes = _contained_snapshot()
    if before is not None:
        for wait in waits:
            wait["stuck"] = _identity(wait) in before
    cycles = _cycles(waits, nodes)  # turns the holders' keys into their descriptions too
    graph = {
        "threads": sum(1 for key in nodes if key.startswith("thread:")),
        "tasks": sum(1 for key in nodes if key.startswith("task:")),
        "interval_ms": int(interval * 1000),
        "waits": [_public(wait) for wait in waits],
        "cycles": cycles,
    }
    green = realthreads.green_library()
    if green is not None:
        graph["greenlets"] = green  # its greenlets' waits are not in the graph: said, not implied absent
    trio = _trio_count()
    if trio:
        graph["trio_tasks"] = trio  # nor are trio tasks' (stack -a shows where each waits)
    ctx.emit(graph)


def _trio_count() -> int:
    """The tasks of the trio runs in progress (read by their slots: stack/agent)."""
    from ..stack.agent import _trio_tasks

    return len(_trio_tasks())


def _contained_snapshot() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """One snapshot within the agent's budget: what the frames refer to (a lock's owner, a primitive's
    attributes, a task) is the program's objects, whose properties and methods may loop or block."""
    snapshot, error, overran = usercode.call_contained(_snapshot, (), usercode.AGENT_BUDGET_MS)
    if overran:
        raise CommandFailed(
            "the program's code that thread -b reads (a lock's, a primitive's or a task's property or method)"
            " ran over the budget of %g ms and was stopped" % usercode.AGENT_BUDGET_MS
        )
    if error is not None:
        raise CommandFailed("reading the threads' waits raised %s" % describe_error(error))
    result: tuple[list[dict[str, Any]], dict[str, dict[str, Any]]] = snapshot
    return result


def _snapshot() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    nodes: dict[str, dict[str, Any]] = {}
    waits = (_thread_waits(nodes) + _task_waits(nodes))[:MAX_WAITS]
    for wait in waits:
        wait["waiter"] = nodes[wait.pop("waiter_key")]
        wait.pop("_object", None)  # no reference to the target's objects outlives the snapshot
    return waits, nodes


def _identity(wait: dict[str, Any]) -> tuple[Any, ...]:
    at = wait["at"]
    return (wait["waiter"]["kind"], wait["waiter"]["id"], wait["on"]["id"], at["file"], at["line"])


def _public(wait: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in wait.items() if not key.startswith("_")}


# ------------------------------------------------------------------ threads


def _thread_waits(nodes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    frames = realthreads.thread_frames()  # not this frame, which ``frames`` would hold: a cycle
    active = threading._active  # type: ignore[attr-defined]
    stacks: dict[str, list[Any]] = {}
    for ident, frame in frames.items():
        if ident in AGENT_THREAD_IDS:
            continue
        key = "thread:%d" % ident
        nodes[key] = _thread_node(ident, active.get(ident))
        stacks[key] = _innermost(frame)
    waits = []
    for key, stack in stacks.items():
        wait = _sync_wait(stack) or _lock_wait(key, stack, nodes[key])
        if wait is not None:
            wait["waiter_key"] = key
            waits.append(wait)
    _holders(waits, stacks, nodes)
    del frames
    return waits


def _thread_node(ident: int, thread: Any) -> dict[str, Any]:
    if thread is None:
        return {"kind": "thread", "id": ident, "tid": None, "name": "Thread-%d" % ident}
    name, _, native = thread_fields(thread)
    return {"kind": "thread", "id": ident, "tid": native, "name": name}


def _innermost(frame: Any) -> list[Any]:
    stack: list[Any] = []
    while frame is not None and len(stack) < 64:
        stack.append(frame)
        frame = frame.f_back
    return stack  # innermost first


def _sync_wait(stack: list[Any]) -> dict[str, Any] | None:
    """The outermost Python primitive the innermost frames are in (Queue, not its Condition)."""
    found = None
    at = None
    for index, frame in enumerate(stack):
        if not frame.f_code.co_filename.endswith(SYNC_FILES):
            break
        owner = _self_of(frame)
        if owner is not None and class_name(type(owner)) in SYNC_TYPES:
            found = owner
            at = stack[index + 1] if index + 1 < len(stack) else frame
    if found is None:
        return None
    return {"on": _describe(found), "at": _frame_info(at), "_object": found}


def _lock_wait(key: str, stack: list[Any], node: dict[str, Any]) -> dict[str, Any] | None:
    """A C lock the innermost frame refers to, held by someone else, while the thread sleeps on a futex."""
    if not stack or not _on_futex(node.get("tid")):
        return None
    frame = stack[0]
    ident = node["id"]
    held = [obj for obj in _refs(frame) if _is_c_lock(obj) and _held_by_other(obj, ident)]
    if not held:
        return None
    wait = {"on": _describe(held[0]), "at": _frame_info(frame), "_object": held[0]}
    if len(held) > 1:
        wait["note"] = "the frame refers to %d held locks; the first is shown" % len(held)
    return wait


def _on_futex(tid: int | None) -> bool:
    if tid is None:
        return True  # no native id to check: the frame alone decides
    try:
        with open("/proc/self/task/%d/syscall" % tid, "rb") as fh:
            return fh.read().split(b" ", 1)[0] == SYS_FUTEX
    except OSError:
        return True


def _is_c_lock(obj: Any) -> bool:
    kind = type(obj)
    return kind is _LOCK or (_RLOCK is not None and kind is _RLOCK) or class_name(kind) == "_RLock"


def _held_by_other(lock: Any, ident: int) -> bool:
    owner = _owner(lock)
    if owner is not None:
        return owner != ident
    try:
        return bool(lock.locked())
    except Exception:  # noqa: BLE001 - an RLock before 3.14 has no locked()
        return "<locked" in safe_repr(lock)


def _owner(lock: Any) -> int | None:
    """The thread ident the runtime records as the owner of an RLock (or a Condition built on one)."""
    inner = getattr(lock, "_lock", None) if class_name(type(lock)) == "Condition" else lock
    if inner is None:
        return None
    if class_name(type(inner)) == "_RLock":  # the pure-Python RLock keeps it in an attribute
        owner = getattr(inner, "_owner", None)
        return owner if isinstance(owner, int) and getattr(inner, "_count", None) else None
    if _RLOCK is None or type(inner) is not _RLOCK:
        return None
    text = safe_repr(inner)  # "<locked _thread.RLock object owner=140... count=1 at 0x...>"
    if not text.startswith("<locked"):
        return None
    start = text.find("owner=")
    if start < 0:
        return None
    digits = text[start + 6 :].split(" ", 1)[0]
    return int(digits) if digits.isdigit() and digits != "0" else None


# ------------------------------------------------------------------ holders


def _holders(
    waits: list[dict[str, Any]],
    stacks: dict[str, list[Any]],
    nodes: dict[str, dict[str, Any]],
    coros: dict[str, list[Any]] | None = None,
) -> None:
    """Fill each wait's holders: recorded where the runtime knows, else inferred from frames."""
    waiting_on: dict[str, set[int]] = {}
    for wait in waits:
        waiting_on.setdefault(wait["waiter_key"], set()).add(id(wait["_object"]))
    by_frame: dict[int, list[str]] = {}
    for wait in waits:
        obj = wait["_object"]
        exact = _exact_holder(obj, nodes)
        if exact is not None:
            wait["holders"], wait["owner"] = [exact], "recorded"
            continue
        if _held_in_with(obj) and len(by_frame) < MAX_SCANS:
            by_frame[id(obj)] = _with_holders(obj, stacks, coros or {}, wait["waiter_key"], waiting_on)
        holding = by_frame.get(id(obj))
        if holding:
            wait["holders"], wait["owner"] = holding[:MAX_HOLDERS], "frame"
            continue
        candidates = []
        for key, stack in stacks.items():
            if key == wait["waiter_key"] or id(obj) in waiting_on.get(key, ()):
                continue
            if any(ref is obj for frame in stack[:FRAMES] for ref in _refs(frame)):
                candidates.append(key)
        wait["holders"] = candidates[:MAX_HOLDERS]
        wait["owner"] = "inferred" if candidates else "unknown"


def _held_in_with(obj: Any) -> bool:
    """A lock taken with ``with``/``async with`` whose owner the runtime does not record."""
    kind = type(obj)
    return kind is _LOCK or (
        class_name(kind) in ("Lock", "Semaphore", "BoundedSemaphore") and "asyncio" in module_of(kind)
    )


def _with_holders(
    obj: Any,
    stacks: dict[str, list[Any]],
    coros: dict[str, list[Any]],
    waiter: str,
    waiting_on: dict[str, set[int]],
) -> list[str]:
    """Threads or tasks whose frame is inside ``with obj:``: that frame keeps ``obj.__(a)exit__`` alive.

    Found through the garbage collector's referrers (the suspended coroutine, or
    the frame, holds the bound ``__aexit__``/``__exit__`` on its value stack; on
    3.14 the object itself). Only suspended coroutines and, before 3.11, frames
    are visible this way: a running thread's frame is not traversed by the gc
    from 3.11 on, and its holder is then only inferred.
    """
    import gc

    owners: dict[int, str] = {}
    for key, stack in stacks.items():
        if key == waiter or id(obj) in waiting_on.get(key, ()):
            continue
        for frame in stack:
            owners[id(frame)] = key
        for coro in coros.get(key, ()):
            owners[id(coro)] = key
    if not owners:
        return []
    direct = gc.get_referrers(obj)
    exits = [ref for ref in direct if _bound_exit_of(ref, obj)]
    # a frame or coroutine that refers to the lock itself holds it only when the lock is on its value
    # stack (3.14's with-block keeps it there); one that merely has it in a variable (the task that made
    # the lock and handed it to the others) was named as its holder
    containers = [ref for ref in direct if id(ref) in owners and _on_value_stack(ref, obj)]
    containers += gc.get_referrers(*exits) if exits else []
    found: list[str] = []
    for ref in containers:
        holder = owners.get(id(ref))
        if holder is not None and holder not in found:
            found.append(holder)
    del direct, exits, containers
    return found


def _on_value_stack(ref: Any, obj: Any) -> bool:
    """Whether a frame or coroutine refers to ``obj`` more often than its plain variables do: the rest are
    on its value stack (what the collector visits of a frame: those variables, cells, and the stack)."""
    import gc

    kind = type(ref)
    frame = (
        ref
        if kind is types.FrameType
        else ref.cr_frame
        if kind is types.CoroutineType
        else ref.gi_frame
        if kind is types.GeneratorType
        else ref.ag_frame
        if kind is types.AsyncGeneratorType
        else None
    )
    if frame is None:
        return True  # another kind of referrer: taken as holding it, as before
    seen = sum(1 for item in gc.get_referents(ref) if item is obj)
    code = frame.f_code
    plain = [name for name in code.co_varnames if name not in code.co_cellvars]  # a cell holds its value
    try:
        variables = frame.f_locals
        named = sum(1 for name in plain if variables.get(name) is obj)
    except Exception:  # noqa: BLE001 - a hostile mapping: count it as held, as before
        return True
    return seen > named


def _bound_exit_of(ref: Any, obj: Any) -> bool:
    """Whether a referrer is ``obj.__exit__`` or ``obj.__aexit__`` bound: its type checked first, since
    a referrer may be any of the program's objects (a ``getattr`` on one runs its ``__getattr__``)."""
    if type(ref) is types.BuiltinMethodType:  # a C lock's
        return ref.__self__ is obj and ref.__name__ in _EXITS
    if type(ref) is types.MethodType and type(ref.__func__) is types.FunctionType:  # asyncio's locks'
        return ref.__self__ is obj and ref.__func__.__name__ in _EXITS
    return False


def _exact_holder(obj: Any, nodes: dict[str, dict[str, Any]]) -> str | None:
    if class_name(type(obj)) == "Thread":
        ident = getattr(obj, "ident", None)
        key = "thread:%s" % ident
        return key if key in nodes else None
    owner = _owner(obj)
    if owner is None:
        return None
    key = "thread:%d" % owner
    if key not in nodes:
        nodes[key] = _thread_node(owner, threading._active.get(owner))  # type: ignore[attr-defined]
    return key


def _refs(frame: Any) -> list[Any]:
    """Objects a frame refers to: its locals, the globals and self attributes its code names."""
    out: list[Any] = []
    try:
        glob = frame.f_globals
        if frame.f_locals is glob:
            return out  # a module's top level: every global would look like a reference
        local = frame.f_locals
        out.extend(local.values())
        names = frame.f_code.co_names
        out.extend(glob[name] for name in names if name in glob)
        owner = local.get("self")
        attrs = instance_dict(owner) if owner is not None else None
        if isinstance(attrs, dict):
            out.extend(attrs[name] for name in names if name in attrs)
    except Exception:  # noqa: BLE001 - a hostile mapping: what was found so far is enough
        return out
    return out


def _self_of(frame: Any) -> Any:
    try:
        return frame.f_locals.get("self")
    except Exception:  # noqa: BLE001
        return None


# ------------------------------------------------------------------ asyncio tasks


def _task_waits(nodes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    if "asyncio" not in sys.modules:
        return []  # never import asyncio into a target that does not use it
    from ..stack.agent import TASK_READ_MS, _all_tasks

    stacks: dict[str, list[Any]] = {}
    coros: dict[str, list[Any]] = {}
    # a Task subclass's methods are the program's: each task within its own share, half the budget in all
    allowance = usercode.Allowance(usercode.AGENT_BUDGET_MS / 2, TASK_READ_MS)
    for task in _all_tasks():
        key = "task:%d" % id(task)
        read, error, overran = allowance.call(key, _read_task, (task,))
        if overran or error is not None:
            nodes[key] = _unread_node(task, None if overran else error)
            continue
        nodes[key], (stacks[key], coros[key]) = read
    waits = []
    for key, stack in stacks.items():
        wait = _sync_wait(stack)
        if wait is not None:
            wait["waiter_key"] = key
            waits.append(wait)
    _holders(waits, stacks, nodes, coros)
    return waits


def _unread_node(task: Any, error: BaseException | None) -> dict[str, Any]:
    """A task whose own code raised (``error``) or overran: named by its class and address only."""
    why = "its own code ran over the budget" if error is None else "it raised " + describe_error(error)
    label = "<%s at 0x%x>" % (class_name(type(task)), id(task))
    return {"kind": "task", "id": id(task), "name": label, "coro": "<not read: %s>" % why}


def _read_task(task: Any) -> tuple[dict[str, Any], tuple[list[Any], list[Any]]]:
    return _task_node(task), _coroutine_frames(task)


def _task_node(task: Any) -> dict[str, Any]:
    try:
        name = task.get_name()
    except Exception:  # noqa: BLE001 - 3.7-style tasks have no name
        name = safe_repr(task)
    coro = getattr(task, "get_coro", lambda: None)()
    coro_name = short(str(getattr(coro, "__qualname__", "")))
    return {"kind": "task", "id": id(task), "name": short(str(name)), "coro": coro_name}


def _coroutine_frames(task: Any) -> tuple[list[Any], list[Any]]:
    """The suspended coroutine chain of a task: its frames innermost first, and the coroutines."""
    frames: list[Any] = []
    coros: list[Any] = []
    coro = task.get_coro() if hasattr(task, "get_coro") else getattr(task, "_coro", None)
    while coro is not None and len(frames) < 64:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        coros.append(coro)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    frames.reverse()
    return frames, coros


# ------------------------------------------------------------------ description and cycles


def _describe(obj: Any) -> dict[str, Any]:
    return {"type": type_name(type(obj), ("builtins", "_thread")), "id": id(obj), "repr": safe_repr(obj)}


def _frame_info(frame: Any) -> dict[str, Any]:
    code = frame.f_code
    return {"file": code.co_filename, "line": frame.f_lineno or 0, "name": code.co_name}


def _cycles(waits: list[dict[str, Any]], nodes: dict[str, dict[str, Any]]) -> list[list[dict[str, Any]]]:
    edges: dict[str, list[str]] = {}
    for wait in waits:
        key = "%s:%d" % (wait["waiter"]["kind"], wait["waiter"]["id"])
        edges.setdefault(key, []).extend(wait.get("holders", []))
    found: dict[tuple[str, ...], list[str]] = {}
    for start in sorted(edges):
        _walk(start, [start], edges, found)
        if len(found) >= MAX_CYCLES:
            break
    for wait in waits:  # holders are node keys until here
        wait["holders"] = [nodes[key] for key in wait.get("holders", []) if key in nodes]
    return [[nodes[key] for key in cycle] for cycle in found.values()]


def _walk(node: str, path: list[str], edges: dict[str, list[str]], found: dict[tuple[str, ...], list[str]]) -> None:
    for nxt in edges.get(node, ()):
        if nxt == path[0]:
            lowest = path.index(min(path))
            canonical = tuple(path[lowest:] + path[:lowest])
            found.setdefault(canonical, list(canonical))
        elif nxt not in path and len(path) < 16 and len(found) < MAX_CYCLES:
            _walk(nxt, [*path, nxt], edges, found)
