"""``stack`` in the CLI: thread stacks read from outside, asyncio tasks via the agent."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...readers import pyspy
from ...render.safe import safe_line
from ..outfile import check_destination, write_text
from ..spec import CommandSpec, LocalContext, number

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pid", nargs="?", type=number(int, 1), help="another pid to read (default: the attached one)")
    parser.add_argument("-f", "--filepath", help="also write the stacks to this file")
    parser.add_argument("--native", action="store_true", help="include native (C) frames")
    parser.add_argument(
        "-a", "--asyncio", action="store_true", help="show the stacks of asyncio tasks (needs the agent)"
    )


def _to_request(ns: argparse.Namespace) -> dict[str, Any]:
    path = os.path.abspath(os.path.expanduser(ns.filepath)) if ns.filepath else None
    if path is not None:
        check_destination(path)
    return {"pid": ns.pid, "filepath": path, "native": ns.native, "asyncio": ns.asyncio}


def _run_local(request: dict[str, Any], ctx: LocalContext) -> Iterator[dict[str, Any]]:
    pid = request.get("pid") or ctx.pid
    threads = [_thread(raw) for raw in pyspy.dump(pid, native=request.get("native", False))]
    threads.sort(key=lambda thread: (thread["name"] != "MainThread", thread["tid"]))
    event: dict[str, Any] = {"pid": pid, "threads": threads}
    if request.get("filepath"):
        write_text(request["filepath"], _threads_text(threads) + "\n")  # 0600, never through a link
        event["written_to"] = request["filepath"]
    yield event


def _thread(raw: dict[str, Any]) -> dict[str, Any]:
    frames = [
        {
            "name": frame["name"],
            "file": frame["filename"],
            "line": frame["line"],
            "native": frame.get("module") is not None and frame["line"] == 0,
        }
        for frame in reversed(raw["frames"])  # py-spy gives innermost first; we print outermost first
    ]
    return {
        "tid": raw["os_thread_id"] or raw["thread_id"],
        "name": raw.get("thread_name") or "",
        "owns_gil": bool(raw.get("owns_gil")),
        "active": bool(raw.get("active")),
        "frames": frames,
    }


def _threads_text(threads: list[dict[str, Any]]) -> str:
    return "\n\n".join(_thread_text(thread).plain for thread in threads)


def _thread_text(thread: dict[str, Any]) -> Text:
    from rich.text import Text

    flags = [flag for flag, on in (("holds GIL", thread["owns_gil"]), ("running", thread["active"])) if on]
    text = Text(
        "Thread %s (%s)%s\n"
        % (thread["tid"], safe_line(thread["name"] or "?"), " [%s]" % ", ".join(flags) if flags else " [idle]"),
        style="bold",
    )
    for frame in thread["frames"]:
        if frame["native"]:
            text.append(
                "    %s (%s)\n" % (safe_line(frame["name"]), safe_line(os.path.basename(frame["file"]))), style="dim"
            )
        else:
            text.append(
                '    File "%s", line %d, in %s\n' % (safe_line(frame["file"]), frame["line"], safe_line(frame["name"]))
            )
    return text


def _tasks_text(event: dict[str, Any]) -> Text:
    from rich.text import Text

    text = Text()
    if not event["loops"]:
        text.append("no pending asyncio tasks in the target\n", style="yellow")
    for loop in event["loops"]:
        text.append(
            "Loop %s%s: %d task(s)\n"
            % (safe_line(loop["loop"]), " [running]" if loop["running"] else "", len(loop["tasks"])),
            style="bold",
        )
        for task in loop["tasks"]:
            text.append("  Task %s (%s)\n" % (safe_line(task["name"]), safe_line(task["coro"])), style="cyan")
            if task.get("awaits"):
                text.append("    awaits task %s\n" % ", ".join(safe_line(name) for name in task["awaits"]), style="dim")
            if task.get("awaited_by"):
                text.append(
                    "    awaited by task %s\n" % ", ".join(safe_line(name) for name in task["awaited_by"]), style="dim"
                )
            for frame in task["frames"]:
                text.append(
                    '      File "%s", line %d, in %s\n'
                    % (safe_line(frame["file"]), frame["line"], safe_line(frame["name"]))
                )
    return text


def _render(event: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    if "loops" in event:
        return _tasks_text(event)
    parts: list[RenderableType] = [_thread_text(thread) for thread in event["threads"]]
    if event.get("written_to"):
        parts.append(Text("stacks written to %s" % safe_line(event["written_to"]), style="green"))
    return Group(*parts)


SPEC = CommandSpec(
    name="stack",
    summary="Show every thread's stack (read from outside: works even when the GIL is stuck), or asyncio tasks.",
    usage="stack [pid] [-f FILE] [--native] [-a]",
    examples=("stack", "stack --native", "stack -f ./stack.log", "stack -a"),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    run_local=_run_local,
    runs_locally=lambda request: not request.get("asyncio"),
)
