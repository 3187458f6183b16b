"""``stack -a`` and ``stack module [class] method`` in the target.

Each task's stack is its whole await chain: the frame of its coroutine and of every
coroutine, generator or async generator it awaits, down to the innermost (found through
``cr_await`` / ``gi_yieldfrom`` / ``ag_await``: asyncio's own ``get_stack`` stops at the
outermost frame of a suspended task), and which tasks it awaits (a task, or a gather's).
Every pending task is read, and tasks at the same place (the same loop and await chain)
are one entry that counts them: the one task stuck elsewhere among 50,000 alike is shown.

Thread stacks are read from outside by the client (no injection needed); only
asyncio tasks need the agent, since their suspended coroutines are not on any
thread's stack. ``stack module [class] method`` hooks the function
(``services.hooks``, removed on every exit path, like watch) and reports the
Python call stack that led to each call: who calls this.
"""

from __future__ import annotations

import sys
import threading  # callprobe imports it anyway
import time
from itertools import islice

from ...services import cpuquota, hooks, realthreads, usercode
from ...services.callprobe import CallProbe, describe_error, serve, thread_info
from ...services.context import AGENT_THREAD_IDS, CommandFailed, JobContext
from ...services.describe import TYPE_DICT, TYPE_MRO, class_name, instance_dict, is_a, safe_repr, short, thread_fields
from ...services.location import resolve
from .model import DEFAULTS, READ_SECONDS, TASKS_SHOWN

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


FRAME_LIMIT = 64
TASKS_BYTES = 1 << 20  # stack -a: no new place is kept once the descriptions take about this much
ALIKE_NAMED = 5  # stack -a: names of the other tasks at one place sent with it
# the run loop is below every frame of the task it runs: a deep task puts it far from the top
LOOP_SEARCH_DEPTH = 5000
_TASKS_BY_LOOP = sys.version_info >= (3, 14)
HELD_SEARCH_FRAMES = 32  # the outermost frames of a thread whose variables are read for a loop
LOCALS_SEARCHED = 1000  # a frame's variables looked at for a loop (a module's frame: its globals)
# one task's methods (a Task subclass's are the program's code): a real one takes microseconds, and a
# fifth of the command's budget leaves the others read after one that hangs
TASK_READ_MS = 1000.0


def run(request: dict[str, Any], ctx: JobContext) -> None:
    if request.get("module"):
        _callers(request, ctx)
        return
    if request.get("threads"):
        ctx.emit(_thread_stacks())
        return
    allowance = usercode.Allowance(usercode.AGENT_BUDGET_MS, TASK_READ_MS)
    listed = _listed_tasks(allowance) + _trio_tasks()
    places = _Places(int(request.get("tasks") or TASKS_SHOWN))
    read = 0
    deadline = time.monotonic() + READ_SECONDS
    # in slices with pauses, as a heap walk: the GIL handed over, and under a CPU quota (a pod's limit)
    # a quarter of it at most, whose spending would stop every thread of the program (services/cpuquota)
    slices = cpuquota.Slices(ctx.wait)
    for task in listed:
        # every task is read (a task stuck somewhere else among 50,000 alike is the one wanted), but only
        # one of each place is kept: 50,000 sleeping tasks once made an answer over the protocol's 4 MB
        # and +70 MB in the target while they were described
        if allowance.left_ms <= 0 or time.monotonic() > deadline:
            break
        if not slices.tick():
            return  # cancelled (Ctrl-C, detach): nobody waits for the answer
        loop, described = _read_trio_task(task, allowance) if type(task) is tuple else _read_task(task, allowance)
        read += 1
        places.add(loop, described, allowance)
    found: dict[str, Any] = {"loops": places.loops(), "threads": _loop_threads()}
    green = realthreads.green_library()
    if green is not None:
        found["greenlets"] = green  # its suspended greenlets are not listed: said, not implied absent
    if places.left_out + len(listed) - read:
        found["not_shown"] = places.left_out + len(listed) - read
    if read < len(listed):
        found["not_read"] = len(listed) - read
    ctx.emit(found)


class _Places:
    """The tasks read, one entry per place: tasks of one loop whose await chains are the same, frame for
    frame, and that await no task, are one entry that counts the others (``alike``) and names a few.

    Bounded by what is shown: at most ``most`` entries and about TASKS_BYTES of them; a task at a new
    place past either is only counted (``left_out``).
    """

    def __init__(self, most: int) -> None:
        self.most = most
        self.size = 0
        self.left_out = 0
        self.entries: dict[Any, dict[str, Any]] = {}  # place (or a task's own key) -> its entry
        self.by_loop: dict[int, dict[str, Any]] = {}

    def add(self, loop: Any, described: dict[str, Any], allowance: usercode.Allowance) -> None:
        place = _place(loop, described)
        entry = self.entries.get(place)
        if entry is not None:
            entry["alike"] = entry.get("alike", 0) + 1
            names = entry.setdefault("alike_names", [])
            if len(names) < ALIKE_NAMED:
                names.append(described["name"])
            return
        if len(self.entries) >= self.most or self.size > TASKS_BYTES:
            self.left_out += 1
            return
        self.size += _size_of(described)
        self.entries[place] = described
        holder = self.by_loop.get(id(loop))
        if holder is None and type(loop) is _TrioRun:  # trio's run: its label, read by us
            holder = self.by_loop[id(loop)] = {"loop": loop.label, "running": True, "tasks": []}
        if holder is None:  # the loop's repr once per loop, not per task: it is the program's code (a budget each)
            running, _, _ = allowance.call("the loop's is_running()", _running, (loop,))
            holder = self.by_loop[id(loop)] = {"loop": safe_repr(loop), "running": running is True, "tasks": []}
        holder["tasks"].append(described)

    def loops(self) -> list[dict[str, Any]]:
        awaited_by: dict[str, list[str]] = {}
        for holder in self.by_loop.values():
            for task in holder["tasks"]:
                for inner in task["awaits"]:
                    awaited_by.setdefault(inner, []).append(task["name"])
        for holder in self.by_loop.values():
            for task in holder["tasks"]:
                # a crowd's: of the tasks it names (the children of one gather are usually one place)
                names = [task["name"], *task.get("alike_names", ())]
                task["awaited_by"] = sorted({waiter for name in names for waiter in awaited_by.get(name, ())})
            # the odd ones out first: a task stuck where no other is, then the crowds, smallest first
            holder["tasks"].sort(key=lambda task: (task.get("alike", 0), task["name"]))
        return list(self.by_loop.values())


def _place(loop: Any, described: dict[str, Any]) -> Any:
    """Where a task is, as a key: its loop, coroutine and await chain; a task that awaits tasks (or was
    not read) keys by its own name, so that who awaits whom is never folded away."""
    if described["awaits"] or not described["frames"]:
        return ("task", described["name"])
    frames = tuple((frame["file"], frame["line"], frame["name"]) for frame in described["frames"])
    return (id(loop), described["coro"], frames)


def _size_of(described: dict[str, Any]) -> int:
    """About the bytes a task's description takes in the answer."""
    frames = described.get("frames") or ()
    return (
        100
        + len(described["name"])
        + len(described["coro"])
        + sum(60 + len(frame["file"]) + len(frame["name"]) for frame in frames)
        + 2 * sum(4 + len(name) for name in described.get("awaits") or ())  # and once more in awaited_by
    )


def _thread_stacks() -> dict[str, Any]:
    """Every application thread's Python stack, seen from inside: for a target py-spy may not read
    (ptrace forbidden, a pre-armed agent). The same shape as py-spy's reading, outermost first."""
    import os

    named = {}
    threading = sys.modules.get("threading")  # never imported by us
    for ident, thread in list(getattr(threading, "_active", {}).items()):
        name, _, native = thread_fields(thread)
        named[ident] = (name, native)
    threads = []
    for ident, top in realthreads.thread_frames().items():  # not this frame: see thread_frames
        if ident in AGENT_THREAD_IDS:
            continue
        name, native = named.get(ident, ("", None))
        frames: list[dict[str, Any]] = []
        frame: Any = top
        while frame is not None and len(frames) < FRAME_LIMIT:
            code = frame.f_code
            line = frame.f_lineno or 0
            frames.append({"name": code.co_name, "file": code.co_filename, "line": line, "native": False})
            frame = frame.f_back
        frames.reverse()
        thread = {
            "tid": native or ident,
            "name": short(str(name)),
            "owns_gil": False,
            "active": False,
            "frames": frames,
        }
        threads.append(thread)
    threads.sort(key=lambda thread: (thread["name"] != "MainThread", thread["tid"]))
    return {"pid": os.getpid(), "threads": threads, "from": "agent"}


def _all_tasks() -> list[Any]:
    """Every pending task; the registries' names differ across 3.8-3.15, gc covers the rest."""
    tasks: list[Any] = []
    future = _future_type()  # asyncio is never imported by us: a program without it has no tasks
    if future is None:
        return tasks
    module = sys.modules.get("asyncio.tasks")
    for name in ("_all_tasks", "_scheduled_tasks"):
        registry = getattr(module, name, None)
        if registry is not None:
            tasks.extend(list(registry))
    eager = getattr(module, "_eager_tasks", None)
    if eager is not None:
        tasks.extend(list(eager))
    # 3.14+: C tasks live in per-thread lists that only all_tasks(loop) reads (the registries hold the Python
    # tasks only); before, the registries hold every task, and the frames are not searched: reading a frame's
    # variables there (f_locals) writes a dict of them into the frame of the program's thread
    if _TASKS_BY_LOOP:
        tasks.extend(_tasks_of_running_loops(module))
    unique = {id(task): task for task in tasks if not task.done()}
    return list(unique.values())


def _tasks_of_running_loops(module: Any) -> list[Any]:
    """The tasks of every loop a thread is running, the loop found in that thread's stack.

    Not the heap: ``gc.get_objects()`` held the GIL ~12 ms per million objects and built a list as
    large, for a command that shows a few tasks. A loop no thread runs is not found; its tasks are not
    running either.
    """
    all_tasks = getattr(module, "all_tasks", None)
    tasks: list[Any] = []
    for loop in _running_loops():
        try:
            tasks.extend(all_tasks(loop))  # type: ignore[misc]  # the loop's pending tasks, any thread's
        except Exception:  # noqa: BLE001, S112 - a custom loop or a changed asyncio: shown without its tasks
            continue
    return tasks


def _running_loops() -> list[Any]:
    """The loops the threads run, from their frames, at most LOOP_SEARCH_DEPTH frames out from each
    thread's innermost (the run loop is below every frame of the task it runs), the program's code never
    run: ``self`` of asyncio's own run loop (matched by code object); else ``self._loop`` of
    ``asyncio.Runner.run`` (``asyncio.run``, ``uvloop.run``: uvloop's run loop is compiled, and has no
    frame, so a uvloop service on 3.14+ showed "no pending asyncio tasks"); else a loop held by a local
    variable of a frame that waits in the loop's C code (``loop.run_until_complete(main())``)."""
    base = getattr(sys.modules.get("asyncio.base_events"), "BaseEventLoop", None)
    codes = (
        [getattr(base.__dict__.get(name), "__code__", None) for name in ("run_forever", "_run_once")]
        if is_a(base, type)
        else []
    )
    runner = getattr(sys.modules.get("asyncio.runners"), "Runner", None)
    runner_run = getattr(vars(runner).get("run"), "__code__", None) if is_a(runner, type) else None
    abstract = getattr(sys.modules.get("asyncio.events"), "AbstractEventLoop", None)
    loops: dict[int, Any] = {}
    for top in realthreads.thread_frames().values():  # not this frame's own (see thread_frames)
        loop = _loop_in_frames(top, codes, runner_run, abstract)
        if loop is not None:
            loops[id(loop)] = loop
    return list(loops.values())


def _loop_in_frames(top: Any, codes: list[Any], runner_run: Any, abstract: Any) -> Any:
    """The loop one thread runs, from its frames (see ``_running_loops``), or None. Every frame's code is
    compared; the variables are read only in the outermost HELD_SEARCH_FRAMES frames, where the code that
    started the loop waits in it (a thread of thousands of deep stacks costs no more than that)."""
    frame = top
    chain: list[Any] = []
    while frame is not None and len(chain) < LOOP_SEARCH_DEPTH:
        code = frame.f_code
        if any(code is known for known in codes):
            return frame.f_locals.get("self")
        if code is runner_run:
            found = (instance_dict(frame.f_locals.get("self")) or {}).get("_loop")
            if _is_loop(found, abstract):
                return found
        chain.append(frame)
        frame = frame.f_back
    if abstract is None:
        return None
    for outer in reversed(chain[-HELD_SEARCH_FRAMES:]):
        held = _loop_held_by(outer, abstract)
        if held is not None:
            return held
    return None


def _loop_held_by(frame: Any, abstract: Any) -> Any:
    """A running event loop among a frame's first LOCALS_SEARCHED local variables (the module's globals
    for a module's frame), found by type: nothing of the program's runs."""
    try:
        values = list(islice(frame.f_locals.values(), LOCALS_SEARCHED))  # a dict, or 3.13+'s proxy
    except RuntimeError:  # a module's globals, changed by its thread meanwhile
        return None
    for value in values:
        if _is_loop(value, abstract) and _running(value):
            return value
    return None


def _is_loop(value: Any, abstract: Any) -> bool:
    return abstract is not None and abstract in TYPE_MRO(type(value))


def _listed_tasks(allowance: usercode.Allowance) -> list[Any]:
    """The pending tasks, listed within the budget: a Task subclass's ``done()`` is the program's code."""
    tasks, error, overran = allowance.call("listing the tasks", _all_tasks, ())
    if overran:
        raise CommandFailed(
            "listing the asyncio tasks ran the program's code (a Task subclass's done(), a custom loop) past the"
            " budget of %g ms: stopped" % allowance.total_ms
        )
    if error is not None:
        raise CommandFailed("listing the asyncio tasks raised %s" % describe_error(error))
    found: list[Any] = tasks
    return found


def _read_task(task: Any, allowance: usercode.Allowance) -> tuple[Any, dict[str, Any]]:
    """A task's loop and description, read within what is left of the command's budget: a Task
    subclass's ``get_coro``, ``get_name`` or ``get_loop`` is the program's code, which may loop or block.
    One that overran or raised is shown by its class and address, and the others still are."""
    value, error, overran = allowance.call("task %s" % _label(task), _loop_and_description, (task,))
    if not overran and error is None:
        read: tuple[Any, dict[str, Any]] = value
        return read
    if overran or error is None:
        return None, _unread(task, "its own code ran over the budget")
    return None, _unread(task, "it raised %s" % describe_error(error))


def _loop_and_description(task: Any) -> tuple[Any, dict[str, Any]]:
    return _loop_of(task), _describe(task)


def _label(task: Any) -> str:
    return "<%s at 0x%x>" % (class_name(type(task)), id(task))


def _unread(task: Any, why: str) -> dict[str, Any]:
    return {"name": _label(task), "coro": "<not read: %s>" % why, "frames": [], "awaits": []}


def _describe(task: Any) -> dict[str, Any]:
    coro = task.get_coro()
    frames, awaited = _await_chain(coro)
    waiter = getattr(task, "_fut_waiter", None)  # what the task's step waits on, when it is a future
    if waiter is not None:
        awaited = waiter
    return {
        "name": _task_name(task),
        "coro": _coro_name(coro),
        "frames": frames,  # outermost first, down to the innermost coroutine the task awaits
        "awaits": [_task_name(inner) for inner in _tasks_in(awaited)],
    }


def _coro_name(coro: Any) -> str:
    if type(coro) is _COROUTINE:
        name: str = coro.__qualname__
        return name
    found = getattr(coro, "__qualname__", None)  # the repr only when there is no name: it may be the program's
    return found if isinstance(found, str) else safe_repr(coro)


async def _sample() -> None:
    pass


def _generator_sample() -> Any:
    yield


_made = _sample()
_COROUTINE: Any = type(_made)  # read directly: every task's chain goes through a few (stack -a reads every task)
_made.close()
_GENERATOR: Any = type(_generator_sample())
del _made


def _await_chain(coro: Any) -> tuple[list[dict[str, Any]], Any]:
    """The frames of ``coro`` and of every coroutine or generator it awaits, outermost first (a
    suspended coroutine's frame has no f_back: the chain is only reachable through cr_await),
    and the future at the end of the chain, if any."""
    frames: list[dict[str, Any]] = []
    seen: set[int] = set()
    future = _future_type() or ()  # is_a of () is False
    current = coro
    while current is not None and len(frames) < FRAME_LIMIT and id(current) not in seen:
        seen.add(id(current))
        kind = type(current)
        if kind is _COROUTINE:  # the builtin types' own attributes: no lookup of names that are not there
            frame, after = current.cr_frame, current.cr_await
        elif kind is _GENERATOR:
            frame, after = current.gi_frame, current.gi_yieldfrom
        elif is_a(current, future):
            return frames, current
        else:
            frame = _first_attribute(current, ("cr_frame", "gi_frame", "ag_frame"))
            after = _first_attribute(current, ("cr_await", "gi_yieldfrom", "ag_await"))
        if frame is not None:
            code = frame.f_code
            frames.append({"name": code.co_name, "file": code.co_filename, "line": frame.f_lineno})
        current = after
    return frames, None


def _future_type() -> Any:
    """asyncio's Future (the C one where there is one), once the program imported asyncio, else None."""
    future = getattr(sys.modules.get("asyncio.futures"), "Future", None)
    return future if is_a(future, type) else None


def _first_attribute(obj: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        try:
            value = getattr(obj, name, None)
        except Exception:  # noqa: BLE001 - a hostile awaitable
            value = None
        if value is not None:
            return value
    return None


def _tasks_in(awaited: Any) -> list[Any]:
    """The tasks a task waits for: the task it awaits, or the children of a gather."""
    if awaited is None:
        return []
    if hasattr(awaited, "get_coro"):
        return [awaited]
    children = getattr(awaited, "_children", None)  # asyncio.gather's future
    if isinstance(children, (list, tuple)):
        return [child for child in children if hasattr(child, "get_coro")]
    return []


def _task_name(task: Any) -> str:
    try:
        return short(str(task.get_name())) if hasattr(task, "get_name") else safe_repr(task)
    except Exception:  # noqa: BLE001 - a task subclass may break it
        return safe_repr(task)


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
    active = getattr(sys.modules.get("threading"), "_active", {})
    return {str(ident): thread_fields(thread)[0] for ident, thread in list(active.items())}


# ------------------------------------------------------------------ trio


class _TrioRun:
    """One ``trio.run`` in progress: its runner, and the label its tasks are shown under."""

    __slots__ = ("label", "runner")

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.label = "<trio run at 0x%x>" % id(runner)


def _trio_tasks() -> list[Any]:
    """(run, task) for every task of every ``trio.run`` a thread is in, found as the ``runner`` variable of
    that call's frame (trio keeps its run state in a thread-local no other thread can read), read through
    the classes' own slots: nothing of the program's runs. Empty where trio is not loaded."""
    module: Any = sys.modules.get("trio._core._run")
    run = getattr(module, "run", None) if module is not None else None
    code = getattr(getattr(run, "__wrapped__", run), "__code__", None)
    if code is None:
        return []
    found: list[Any] = []
    for top in realthreads.thread_frames().values():
        frame, depth = top, 0
        while frame is not None and depth < LOOP_SEARCH_DEPTH:
            if frame.f_code is code:
                runner = frame.f_locals.get("runner")
                tasks = _member(runner, "tasks")
                if isinstance(tasks, (set, frozenset)):
                    trio_run = _TrioRun(runner)
                    found.extend((trio_run, task) for task in list(tasks))
                break
            frame, depth = frame.f_back, depth + 1
    return found


def _member(obj: Any, name: str) -> Any:
    """An attribute kept in a ``__slots__`` member of ``obj``'s class, or in its instance dict; None if neither:
    read by the member descriptor (C) or the dict, never by getattr (a property would be the program's)."""
    for kind in TYPE_MRO(type(obj)):
        slot = TYPE_DICT(kind).get(name)
        if type(slot) is _MEMBER:
            try:
                return slot.__get__(obj)
            except AttributeError:  # declared, never set
                return None
    return (instance_dict(obj) or {}).get(name)


_MEMBER: Any = type(vars(_TrioRun)["label"])  # member_descriptor


def _read_trio_task(pair: tuple[Any, Any], allowance: usercode.Allowance) -> tuple[Any, dict[str, Any]]:
    """A trio task's run and description, within the command's budget (its coroutine may await the program's
    own awaitables, whose attributes are read)."""
    trio_run, task = pair
    value, error, overran = allowance.call("trio task %s" % _label(task), _describe_trio, (task,))
    if not overran and error is None:
        return trio_run, value
    why = "its own code ran over the budget" if overran or error is None else "it raised %s" % describe_error(error)
    return trio_run, _unread(task, why)


def _describe_trio(task: Any) -> dict[str, Any]:
    coro = _member(task, "coro")
    frames, _ = _await_chain(coro)
    name = _member(task, "name")
    children: list[Any] = []
    for nursery in _member(task, "_child_nurseries") or ():
        children.extend(_member(nursery, "_children") or ())
    return {
        "name": short(name) if isinstance(name, str) else _label(task),
        "coro": _coro_name(coro) if coro is not None else "?",
        "frames": frames,
        # a nursery's owner waits for its children (each name once: five "sleeper" children are one name)
        "awaits": list(dict.fromkeys(_trio_name(child) for child in children)),
    }


def _trio_name(task: Any) -> str:
    name = _member(task, "name")
    return short(name) if isinstance(name, str) else _label(task)


# ------------------------------------------------------------------ stack module [class] method


class CallersProbe(CallProbe):
    """For each picked call: the Python frames that led to it, outermost first."""

    def __init__(self, request: dict[str, Any], is_method: bool) -> None:
        super().__init__(
            is_method, request.get("filter"), int(request["limit"]), float(request.get("rate", DEFAULTS["rate"])), False
        )
        self.filter_source = request.get("filter")

    def record(
        self,
        index: int,
        args: Any,
        kwargs: Any,
        returned: Any,
        error: BaseException | None,
        cost: float,
        filter_error: BaseException | None,
    ) -> dict[str, Any]:
        import time

        item: dict[str, Any] = {"kind": "call", "index": index, "time": time.time() - cost / 1000.0}
        item["cost"] = round(cost, 4)
        item.update(thread_info(threading.get_ident()))
        if filter_error is not None:
            item["error"] = "filter %r failed: %s" % (self.filter_source, describe_error(filter_error))
        item["frames"] = _callers_of_hook()
        return item


def _callers_of_hook() -> list[dict[str, Any]]:
    """The frames outside the hook's wrapper: the caller, its caller, ... (outermost first)."""
    frame: Any = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename != hooks.HOOK_FILE:
        frame = frame.f_back
    frames: list[dict[str, Any]] = []
    caller = frame.f_back if frame is not None else None
    while caller is not None and len(frames) < FRAME_LIMIT:
        code = caller.f_code
        if code.co_filename != hooks.HOOK_FILE:  # a hooked caller shows once, as itself
            frames.append({"name": code.co_name, "file": code.co_filename, "line": caller.f_lineno or 0})
        caller = caller.f_back
    frames.reverse()
    return frames


def _callers(request: dict[str, Any], ctx: JobContext) -> None:
    if int(request.get("limit", 0)) < 1:
        raise CommandFailed("-n must be at least 1")
    target = resolve(request["module"], request.get("cls"), request["method"], request.get("nested"))
    probe = CallersProbe(request, target.is_method)  # the filter is checked here, before anything is hooked
    handle = hooks.install(target.func, probe, target.nested)
    ctx.add_cleanup(handle.remove)
    ctx.emit({"kind": "start", **target.describe(), "limit": probe.limit})
    reason = serve(ctx, probe.outbox, probe.full, ctx.emit)
    handle.remove()
    probe.close()
    if reason == "cancelled":
        return
    switched_off = probe.switched_off()  # a filter that raised or ran over: said, as watch says it
    if switched_off is not None:
        raise CommandFailed(switched_off)
    ctx.emit(
        {
            "kind": "end",
            "reason": reason,
            "shown": probe.accepted,
            "skipped": probe.bucket.skipped_total,
            "dropped": probe.outbox.dropped,
        }
    )
