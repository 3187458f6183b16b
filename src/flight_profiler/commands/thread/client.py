"""``thread`` in the CLI: every thread's state and CPU, read from outside; ``-b`` asks the agent.

``thread``, ``thread ID`` and ``thread -n N`` never inject anything: CPU time and
kernel state come from /proc (``readers.proctasks``), names and stacks from
py-spy (``readers.pyspy``), so they answer even when the GIL is stuck. They take
the interval (``-i``) plus one ``stack``. Only ``thread -b`` (who holds the lock
a thread waits on) needs the agent: lock owners live in the target's objects.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator

from ...errors import UsageError
from ...readers import proctasks, pyspy
from ..spec import CommandSpec, LocalContext, number
from .model import DEFAULTS, MAX_INTERVAL_MS

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType
    from rich.text import Text

    from .model import ThreadRequest

SLICE = 0.05  # seconds between two looks at Ctrl-C while the interval runs


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", nargs="?", type=int, help="one thread's native id (as listed): its state and stack")
    parser.add_argument(
        "-n",
        "--top",
        metavar="N",
        type=number(int, 1),
        help="the N busiest threads over the interval, with their stacks",
    )
    parser.add_argument(
        "-i",
        "--interval",
        metavar="MS",
        type=number(int, 0, MAX_INTERVAL_MS),
        default=DEFAULTS["interval"],
        help="milliseconds over which CPU use is measured; with -b, between the two snapshots that tell stuck "
        "waiters from progressing ones, 0 for one snapshot (default %d)" % DEFAULTS["interval"],
    )
    parser.add_argument(
        "-b",
        "--blocking",
        action="store_true",
        help="the blocking graph: who waits on which lock and who holds it, deadlock cycles (needs the agent)",
    )


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("[ID] [-n] [-i] [-b]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("id", "one thread: its native id as `thread` lists it (or its Python ident)", "every thread"),
    ("-n", "the N busiest threads over the interval, with their stacks", "off"),
    (
        "-i",
        "milliseconds over which CPU use is measured (0..60000); with `-b`, between two snapshots: a wait seen in "
        "both (same object, same line) is `[stuck]`, else `[progressing]`; 0: one snapshot",
    ),
    ("-b", "the blocking graph: waits, holders, deadlock cycles (needs the agent)"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = (
    "[ID] [-n] [-i]",
    "-b",
)
OVERVIEW = (
    "every thread's state (running, waiting on a lock, in I/O, sleeping, in C) and CPU % over `-i` ms, read from "
    "`/proc` and py-spy without injecting; one thread's stack; the `-n` busiest with stacks. `-b`: who waits on which"
    " lock, condition, queue, future or asyncio lock and who holds it (exact for RLock owners and asyncio tasks "
    "inside `async with`, otherwise inferred and marked so), deadlock cycles named"
)


def _to_request(ns: argparse.Namespace) -> ThreadRequest:
    if ns.blocking and (ns.id is not None or ns.top is not None):
        raise UsageError("-b shows every waiting thread: it takes no thread id and no -n")
    if ns.id is not None and ns.top is not None:
        raise UsageError("give either a thread id or -n, not both")
    return {"id": ns.id, "top": ns.top, "interval": ns.interval, "blocking": ns.blocking}


def _run_local(request: dict[str, Any], ctx: LocalContext) -> Iterator[dict[str, Any]]:
    pid = ctx.pid
    interval = request["interval"] / 1000.0
    hz = proctasks.ticks_per_second()
    before = proctasks.sample(pid)
    started = time.monotonic()
    while time.monotonic() - started < interval:
        if ctx.cancelled():
            return
        time.sleep(min(SLICE, max(0.0, interval - (time.monotonic() - started))))
    after = proctasks.sample(pid)
    seconds = time.monotonic() - started
    # the kernel states first: py-spy stops the threads while it reads them, and a thread it has just
    # let go is restarting its syscall, "running" for an instant
    states = {tid: proctasks.task_state(pid, now) for tid, now in after.items()}
    stacks = {_native_id(raw): raw for raw in pyspy.dump(pid)}
    threads = [
        _thread(tid, states[tid], before.get(tid), now, seconds, hz, stacks.get(tid), pid) for tid, now in after.items()
    ]
    yield _select(request, pid, threads)


def _native_id(raw: dict[str, Any]) -> int:
    return int(raw.get("os_thread_id") or raw.get("thread_id") or 0)


def _thread(
    tid: int,
    state: proctasks.TaskState,
    before: proctasks.TaskSample | None,
    now: proctasks.TaskSample,
    seconds: float,
    hz: int,
    raw: dict[str, Any] | None,
    pid: int,
) -> dict[str, Any]:
    thread: dict[str, Any] = {
        "tid": tid,
        "ident": raw.get("thread_id") if raw else None,
        "name": (raw.get("thread_name") if raw else None) or now.comm,
        "python": raw is not None,
        "main": tid == pid,
        "state": state.state,
        "detail": state.detail,
        "cpu": proctasks.cpu_percent(before, now, seconds, hz),
        "owns_gil": bool(raw.get("owns_gil")) if raw else False,
    }
    thread["frames"] = _frames(raw) if raw else []
    return thread


def _frames(raw: dict[str, Any]) -> list[dict[str, Any]]:
    # py-spy gives innermost first; we keep outermost first, like stack
    return [{"name": f["name"], "file": f["filename"], "line": f["line"]} for f in reversed(raw["frames"])]


def _select(request: dict[str, Any], pid: int, threads: list[dict[str, Any]]) -> dict[str, Any]:
    event: dict[str, Any] = {"pid": pid, "interval_ms": request["interval"], "total": len(threads)}
    if request.get("id") is not None:
        wanted = [t for t in threads if t["tid"] == request["id"] or t["ident"] == request["id"]]
        if not wanted:
            raise UsageError("no thread %d in pid %d (thread lists the ids)" % (request["id"], pid))
        event.update(mode="one", threads=wanted)
        return event
    if request.get("top") is not None:
        busiest = sorted(threads, key=lambda t: (-t["cpu"], _ours(t), t["tid"]))[: request["top"]]
        event.update(mode="top", threads=busiest)
        return event
    for thread in threads:
        del thread["frames"]  # the list stays short: thread ID shows one stack
    threads.sort(key=lambda t: (not t["main"], not t["python"], _ours(t), t["tid"]))
    event.update(mode="all", threads=threads)
    return event


def _ours(thread: dict[str, Any]) -> bool:
    """Our agent's threads go after the program's among equals: ``thread -n 3`` on an idle service
    named our agent and watchdog (lower thread ids once ids wrap) before the program's idle threads.
    By name only, so a program's thread named like ours just sorts later: this orders, it proves nothing."""
    return str(thread["name"]).startswith("flight_profiler")


# ------------------------------------------------------------------ rendering


def _cpu(thread: dict[str, Any], measured: bool) -> str:
    """CPU use as text; "-" under -i 0, where nothing was measured (every thread read 0.0, a hog too)."""
    return "%.1f" % thread["cpu"] if measured else "-"


def _thread_text(thread: dict[str, Any], measured: bool = True) -> Text:
    from rich.text import Text

    text = Text()
    text.append("Thread %s (%s)" % (thread["tid"], thread["name"] or "?"), style="bold")
    text.append(" cpu=%s%s %s" % (_cpu(thread, measured), "%" if measured else "", _state_words(thread)))
    text.append("\n")
    if not thread["python"]:
        text.append("    (no Python frames: a native thread)\n", style="dim")
    for frame in thread.get("frames", []):
        text.append('    File "%s", line %d, in %s\n' % (frame["file"], frame["line"], frame["name"]))
    return text


def _state_words(thread: dict[str, Any]) -> str:
    words = str(thread["state"])
    if thread["detail"]:
        words += " (%s)" % thread["detail"]
    if thread["owns_gil"]:
        words += ", holds the GIL"
    return words


def _table(event: dict[str, Any]) -> RenderableType:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("TID", "NAME", "CPU%", "STATE", "PYTHON"):
        table.add_column(column, justify="right" if column in ("TID", "CPU%") else "left")
    for thread in event["threads"]:
        table.add_row(
            str(thread["tid"]),
            thread["name"] or "?",
            _cpu(thread, event["interval_ms"] > 0),
            _state_words(thread),
            "main" if thread["main"] else ("yes" if thread["python"] else "no"),
        )
    return table


def _render(event: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    if "waits" in event:
        from .blocking import render_blocking

        return render_blocking(event)
    measured = event["interval_ms"] > 0
    over = "CPU over %d ms" % event["interval_ms"] if measured else "CPU not measured (-i 0)"
    head = Text("pid %d: %d thread(s), %s" % (event["pid"], event["total"], over))
    head.stylize("dim")
    if event["mode"] == "all":
        return Group(head, _table(event))
    return Group(head, *[_thread_text(thread, measured) for thread in event["threads"]])


def _where(file: str, line: int) -> str:
    return "%s:%d" % (os.path.basename(file), line)


SPEC = CommandSpec(
    name="thread",
    summary="Every thread's state and CPU use (read from outside), one thread's stack, the busiest "
    "threads, or who blocks whom (-b).",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=("thread", "thread 12345", "thread -n 3 -i 500", "thread -b"),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    run_local=_run_local,
    runs_locally=lambda request: not request.get("blocking"),
)
