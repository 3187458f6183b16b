"""Rendering of ``thread -b`` (client side)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType


HOW = {
    "recorded": "held by",
    "frame": "held by (inside its with-block)",
    "inferred": "candidates (their frames refer to it):",
    "unknown": "held by",
}


# what a waiter on an object without an owner is waiting for
NOBODY = {
    "threading.Event": "nobody: it waits for set()",
    "threading.Condition": "nobody: it waits for notify()",
    "queue.Queue": "nobody: it waits for put() or get()",
    "concurrent.futures._base.Future": "nobody: it waits for the result",
}


def node_label(node: dict[str, Any]) -> str:
    if node["kind"] == "task":
        return "task %s (%s)" % (node["name"], node.get("coro") or "?")
    tid = node.get("tid")
    return "thread %s (%s)" % (tid if tid is not None else node["id"], node["name"])


def render_blocking(event: dict[str, Any]) -> RenderableType:
    from rich.text import Text

    text = Text()
    text.append("%d thread(s), %d asyncio task(s)" % (event["threads"], event["tasks"]), style="dim")
    if event.get("interval_ms"):
        text.append("; stuck: the same wait in two snapshots %d ms apart" % event["interval_ms"], style="dim")
    text.append("\n")
    if event.get("greenlets"):
        from ...render.safe import safe_line

        text.append(
            "%s: its greenlets are not in this graph, only OS threads and asyncio tasks\n"
            % safe_line(event["greenlets"]),
            style="yellow",
        )
    if event.get("trio_tasks"):
        text.append(
            "%d trio task(s): their waits are not in this graph ('stack -a' shows where each waits)\n"
            % event["trio_tasks"],
            style="yellow",
        )
    for cycle in event["cycles"]:
        names = [node_label(node) for node in cycle]
        text.append("DEADLOCK: %s -> %s\n" % (" -> ".join(names), names[0]), style="bold red")
    if not event["waits"]:
        text.append("no thread or task is waiting on a lock, condition, queue, future or thread\n", style="green")
    for wait in event["waits"]:
        text.append(node_label(wait["waiter"]), style="bold")
        if "stuck" in wait:
            text.append(" [stuck]" if wait["stuck"] else " [progressing]", style="red" if wait["stuck"] else "green")
        text.append(" waits on %s" % wait["on"]["type"])
        at = wait["at"]
        text.append(" at %s:%d in %s\n" % (os.path.basename(at["file"]), at["line"], at["name"]), style="dim")
        text.append("    %s\n" % wait["on"]["repr"], style="dim")
        holders = ", ".join(node_label(node) for node in wait["holders"]) or NOBODY.get(
            wait["on"]["type"], "nobody found"
        )
        how = HOW.get(wait["owner"], "held by")
        text.append("    %s %s\n" % (how, holders))
        if wait.get("note"):
            text.append("    (%s)\n" % wait["note"], style="dim")
    return text
