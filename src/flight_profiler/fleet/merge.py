"""Merged views of a group's results: one stack tree with counts and the outliers named, ``mem summary``
side by side, a combined ``watch`` summary; and the one-line outcome every group command ends with.

Commands know nothing of groups: a command with a merged view is registered in ``MERGERS`` by
name. Results come in as the events each command's own client code received, as plain JSON.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Tuple  # typing's: subscripted at run time on 3.8

from ..render.safe import safe_line
from .select import Target

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text
    from rich.tree import Tree

Results = Dict[int, List[Dict[str, Any]]]  # typing's: the client runs on 3.8 too
# the data for the fleet line, the merged view (made only when printed as text), the headline
Merged = Tuple[Dict[str, Any], Callable[[], List["RenderableType"]], str]
NAMED_PIDS = 3  # a branch taken by at most this many processes names them


@dataclass
class Outcome:
    line: str
    data: dict[str, Any]
    render: Callable[[], list[RenderableType]] | None = None  # the merged view, made in text mode only


@dataclass(frozen=True)
class Merger:
    """``collects``: results are held back for the merged view (else each prints as it comes)."""

    collects: bool
    merge: Callable[[list[Target], Results], Merged]


def merger_for(command: str, request: dict[str, Any]) -> Merger | None:
    if command == "stack" and not request.get("asyncio"):
        return STACK
    if command == "mem" and request.get("action") == "summary":
        return MEM_SUMMARY
    if command == "watch":
        return WATCH
    return None


def summary(
    command: str, merger: Merger | None, targets: list[Target], results: Results, errors: dict[int, str]
) -> Outcome:
    ok = [target for target in targets if target.key not in errors]
    failed = [target for target in targets if target.key in errors]
    line = "%s on %d process(es): %d ok" % (command, len(targets), len(ok))
    if errors:
        line += ", %d failed (%s)" % (
            len(failed),
            "; ".join("%s: %s" % (target.name(), errors[target.key]) for target in failed),
        )
    data: dict[str, Any] = {
        "targets": [target.to_json() for target in targets],
        "ok": [target.ref() for target in ok],
        "failed": [{"pid": target.ref(), "error": errors[target.key]} for target in failed],
    }
    render = None
    if merger is not None and len(ok) > 1:
        merged, render, headline = merger.merge(ok, {target.key: results.get(target.key, []) for target in ok})
        data["merged"] = merged
        line = "%s; %s" % (headline, line)
    return Outcome(line, data, render)


# ---------------------------------------------------------------------------------------- stack

Frame = Tuple[str, int, str]  # file, line, function


def _frames(thread: dict[str, Any]) -> tuple[Frame, ...]:
    return tuple((str(f["file"]), int(f["line"]), str(f["name"])) for f in thread["frames"])


def _signature(event: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two processes' stacks "the same": every thread's name and the functions on its stack,
    not the lines in them (nor the thread's id). A worker polling in a loop is caught now on its sleep's
    line, now on the loop's test (more often on a loaded host, where a woken process waits for a CPU):
    by lines, that jitter named idle workers as outliers beside the one that really was elsewhere. The
    tree still shows each line, with how many processes were on it."""
    return tuple(
        sorted(
            (str(thread["name"]), tuple((frame[0], frame[2]) for frame in _frames(thread)))
            for thread in event["threads"]
        )
    )


def _main_thread(event: dict[str, Any]) -> dict[str, Any] | None:
    threads = event["threads"]
    return next((t for t in threads if t["name"] == "MainThread"), threads[0] if threads else None)


def _where(event: dict[str, Any]) -> str:
    """Where the process is: its main thread's innermost Python function."""
    thread = _main_thread(event)
    if thread is None or not thread["frames"]:
        return "no Python frames"
    python = [frame for frame in thread["frames"] if not frame.get("native")] or thread["frames"]
    frame = python[-1]
    return "`%s` (%s:%d)" % (safe_line(frame["name"]), safe_line(os.path.basename(frame["file"])), frame["line"])


def _stack_merge(targets: list[Target], results: Results) -> Merged:
    events = {pid: found[-1] for pid, found in results.items() if found and "threads" in found[-1]}
    present = [target for target in targets if target.key in events]
    classes: dict[str, list[Target]] = {}
    for target in present:
        classes.setdefault(_plural(target.role), []).append(target)
    phrases: list[str] = []
    groups: list[dict[str, Any]] = []
    outliers: list[dict[str, Any]] = []
    for noun, members in classes.items():
        phrase, class_groups, class_outliers = _compare(noun, members, events)
        phrases.append(phrase)
        groups.extend(class_groups)
        outliers.extend(class_outliers)
    headline = "; ".join(phrases)
    data = {"summary": headline, "groups": groups, "outliers": outliers}
    return data, lambda: [_stack_tree(headline, present, events)], headline


def _plural(role: str | None) -> str:
    return {"worker": "workers", "master": "masters", "helper": "helpers"}.get(role or "", "processes")


def _compare(
    noun: str, members: list[Target], events: dict[int, dict[str, Any]]
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """One class of targets (the workers, say): identical stacks grouped, the minority named."""
    by_signature: dict[tuple[Any, ...], list[Target]] = {}
    for target in members:
        by_signature.setdefault(_signature(events[target.key]), []).append(target)
    ordered = sorted(by_signature.values(), key=lambda group: (-len(group), group[0].key))
    groups = [
        {"pids": [t.ref() for t in group], "role": group[0].role, "where": _where(events[group[0].key])}
        for group in ordered
    ]
    if len(members) == 1:
        only = members[0]
        return "%s in %s" % (only.label(), _where(events[only.key])), groups, []
    majority = ordered[0]
    if len(majority) == 1:
        return "%d %s, every one in a different stack" % (len(members), noun), groups, []
    phrase = "%d of %d %s in %s" % (len(majority), len(members), noun, _where(events[majority[0].key]))
    odd = [target for group in ordered[1:] for target in group]
    outliers = [{**target.to_json(), "where": _where(events[target.key])} for target in odd]
    named = [
        "%s%s in %s" % (t.name(), "" if t.rank is None else " (rank %d)" % t.rank, _where(events[t.key]))
        for t in odd[:NAMED_PIDS]
    ]
    if len(outliers) > NAMED_PIDS:
        named.append("%d more" % (len(outliers) - NAMED_PIDS))
    return "; ".join([phrase, *named]), groups, outliers


class _Node:
    """A frame shared by ``count`` processes' stacks (``pids``), and what they called next."""

    def __init__(self) -> None:
        self.pids: list[str] = []  # the processes' names
        self.children: dict[Frame, _Node] = {}


def _stack_tree(headline: str, targets: list[Target], events: dict[int, dict[str, Any]]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text
    from rich.tree import Tree

    threads: dict[str, _Node] = {}
    for target in targets:
        for thread in events[target.key]["threads"]:
            node = threads.setdefault(str(thread["name"]), _Node())
            node.pids.append(target.name())
            for frame in _frames(thread):
                node = node.children.setdefault(frame, _Node())
                node.pids.append(target.name())
    tree = Tree(
        Text("merged stacks of %d processes ([count]: how many share the line)" % len(targets)), guide_style="dim"
    )
    total = len(targets)
    for name, root in sorted(threads.items(), key=lambda item: (item[0] != "MainThread", -len(item[1].pids))):
        branch = tree.add(
            Text("Thread %s: %d of %d processes" % (safe_line(name), len(root.pids), total), style="bold")
        )
        _add_calls(branch, root)
    return Group(Text(safe_line(headline), style="bold"), tree)


def _add_calls(branch: Tree, node: _Node) -> None:
    for frame, child in sorted(node.children.items(), key=lambda item: -len(item[1].pids)):
        label, last = _chain(frame, child, len(node.pids))
        _add_calls(branch.add(label), last)


def _chain(frame: Frame, node: _Node, parent_count: int) -> tuple[Text, _Node]:
    """The frames every one of these processes shares in a row, as one label."""
    from rich.text import Text

    count = len(node.pids)
    text = Text(overflow="fold")
    text.append("[%d] " % count, style="cyan")
    if count <= NAMED_PIDS and 2 * count <= parent_count:  # the minority's branch says whose it is
        text.append("%s " % safe_line(", ".join(sorted(node.pids))), style="yellow")
    text.append(_frame_text(frame))
    while len(node.children) == 1:
        ((next_frame, child),) = node.children.items()
        if len(child.pids) != count:
            break
        text.append("\n" + _frame_text(next_frame))
        node = child
    return text, node


def _frame_text(frame: Frame) -> str:
    """Short: the shape of the stacks matters here (``stack --json`` has every path whole)."""
    return "%s  %s:%d" % (safe_line(frame[2]), safe_line(os.path.basename(frame[0])), frame[1])


STACK = Merger(collects=True, merge=_stack_merge)


# ----------------------------------------------------------------------------------- mem summary

OUTLIER_FLOOR = 100  # objects: smaller differences from the median are noise, never an outlier


def _mem_merge(targets: list[Target], results: Results) -> Merged:
    events = {pid: found[-1] for pid, found in results.items() if found and "types" in found[-1]}
    present = [target for target in targets if target.key in events]
    counts: dict[str, dict[int, int]] = {}
    for target in present:
        for row in events[target.key]["types"]:
            counts.setdefault(str(row["type"]), {})[target.key] = int(row["count"])
    limit = max(len(events[target.key]["types"]) for target in present)
    rows = sorted(counts.items(), key=lambda item: -max(item[1].values()))[:limit]
    marked: dict[int, list[str]] = {}
    for type_name, per_pid in rows:
        for pid in _odd_ones(per_pid, [target.key for target in present]):
            marked.setdefault(pid, []).append(type_name)
    outlier = max(marked, key=lambda key: len(marked[key])) if marked else None
    by_key = {target.key: target for target in present}
    headline = "mem summary over %d processes: %s" % (
        len(present),
        "%s stands out (%s)" % (by_key[outlier].name(), ", ".join(safe_line(name) for name in marked[outlier][:3]))
        if outlier is not None
        else "no process stands out",
    )
    data = {
        "types": [
            {"type": name, "counts": {str(by_key[key].ref()): n for key, n in per_key.items()}}
            for name, per_key in rows
        ],
        "outliers": [{"pid": by_key[key].ref(), "types": names} for key, names in sorted(marked.items())],
    }
    return data, lambda: [_mem_table(headline, present, events, rows, marked)], headline


def _odd_ones(per_pid: dict[int, int], pids: list[int]) -> list[int]:
    values = [per_pid.get(pid, 0) for pid in pids]
    middle = statistics.median(values)
    allowed = max(middle / 2, OUTLIER_FLOOR)
    return [pid for pid, value in zip(pids, values) if abs(value - middle) > allowed]


def _mem_table(
    headline: str,
    targets: list[Target],
    events: dict[int, dict[str, Any]],
    rows: list[tuple[str, dict[int, int]]],
    marked: dict[int, list[str]],
) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False)
    table.add_column("type", overflow="fold")
    for target in targets:
        flag = " (outlier)" if marked.get(target.key) else ""
        table.add_column(safe_line(target.label()) + flag, justify="right", style="red" if flag else None)
    table.add_row("all objects", *("%d" % events[target.key]["objects"] for target in targets), style="bold")
    for name, per_pid in rows:
        cells = []
        for target in targets:
            odd = name in marked.get(target.key, [])
            cells.append(Text("%d%s" % (per_pid.get(target.key, 0), " !" if odd else ""), style="red" if odd else ""))
        table.add_row(Text(safe_line(name)), *cells)
    return Group(Text(headline, style="bold"), table)


MEM_SUMMARY = Merger(collects=True, merge=_mem_merge)


# ----------------------------------------------------------------------------------------- watch


def _watch_merge(targets: list[Target], results: Results) -> Merged:
    shown = {target.key: sum(1 for event in results[target.key] if "index" in event) for target in targets}
    skipped = {
        target.key: sum(int(event.get("skipped") or 0) for event in results[target.key] if event.get("kind") == "end")
        for target in targets
    }
    busiest = max(targets, key=lambda target: shown[target.key])
    headline = "watch over %d processes: %d call(s) shown, most in %s (%d)" % (
        len(targets),
        sum(shown.values()),
        busiest.name(),
        shown[busiest.key],
    )
    data = {
        "shown": {str(target.ref()): shown[target.key] for target in targets},
        "skipped": {str(target.ref()): skipped[target.key] for target in targets},
    }
    return data, lambda: [_watch_table(targets, shown, skipped)], headline


def _watch_table(targets: list[Target], shown: dict[int, int], skipped: dict[int, int]) -> RenderableType:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("target", "calls shown", "skipped by --rate"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for target in targets:
        table.add_row(safe_line(target.label()), str(shown[target.key]), str(skipped[target.key]))
    return table


WATCH = Merger(collects=False, merge=_watch_merge)
