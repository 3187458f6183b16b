"""``stack`` in the CLI: thread stacks read from outside, asyncio tasks and who-calls-this via the agent.

The first positional decides the form: nothing or a number is the seeds' ``stack [pid]``;
anything else is ``module [class] method``, whose calls' Python stacks the agent reports.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

from ...errors import UsageError
from ...readers import pyspy
from ...render.safe import safe_line
from ..calls import add_nested_argument, render_end, render_header, render_start, skipped_note
from ..outfile import check_destination, write_text
from ..spec import (
    CALL_NAMES,
    LONGEST_NUMBER,
    CommandSpec,
    LocalContext,
    add_expression_argument,
    check_expression,
    number,
)
from ..targeting import check_names, owner_and_name
from ..userpath import user_path
from .model import DEFAULTS, READ_SECONDS, TASKS_SHOWN

CALLS_LIMIT = DEFAULTS["limit"]  # stack module [class] method: calls shown by default
CALLS_RATE = DEFAULTS["rate"]  # at most this many call stacks per second; the others are counted as skipped

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType
    from rich.text import Text

    from .model import CallersRequest, StackRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        nargs="*",
        metavar="TARGET",
        help="nothing or a pid: every thread's stack (of that pid); module [class] method: who calls it",
    )
    add_expression_argument(  # the filter of the module [class] method form: the text up to the next option
        parser,
        "-f",
        "--filepath",
        metavar="FILE",
        help="thread stacks: also write them to this file; module [class] method: the filter, like --filter",
    )
    parser.add_argument("--native", action="store_true", help="include native (C) frames")
    parser.add_argument(
        "-a", "--asyncio", action="store_true", help="show the stacks of asyncio tasks (needs the agent)"
    )
    add_expression_argument(parser, "--filter", help="module [class] method: only calls for which this is true")
    parser.add_argument(
        "-n",
        "--limits",
        metavar="N",
        type=number(int, 1),
        help="module [class] method: stop after this many calls (default %d); -a: show at most N places (tasks at the "
        "same await chain are one place; default %d)" % (CALLS_LIMIT, TASKS_SHOWN),
    )
    add_nested_argument(parser)


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = (
    "[pid] [-f] [--native] [-a]",
    "module [class] method [-n] [-f=FILTER] [--filter] [-nm]",
)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    (
        "TARGET",
        "nothing: the attached pid; a number: read this other pid instead (e.g. a worker of the attached master); "
        "`module [class] method`: who calls that function (hooks it, needs the agent)",
        "the attached pid",
    ),
    (
        "-f",
        "also write the stacks (text) to FILE, on your machine; with `module [class] method`: the filter, as "
        "`--filter`",
        "off",
    ),
    ("--native", "include native (C) frames between the Python frames"),
    ("-a", "the stacks of pending asyncio tasks, per event loop (injects the agent)"),
    (
        "--filter",
        "`module [class] method` only: only calls for which this is true, over `target`, `args`, `kwargs`, "
        "`return_obj`, `cost`",
        "all calls",
    ),
    (
        "-n",
        "`module [class] method`: stop after N calls (5); with `-a`: show at most N places (tasks at the same await "
        "chain are one place, counted; 200)",
        "5 / 200",
    ),
    ("-nm", "`module [class] method` only: the function `NAME` defined inside the method", "off"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = (
    "[pid] [-f] [--native] [-a]",
    "<module> [<class>] <method> [-n] [-f=FILTER]",
)
OVERVIEW = (
    "every thread's stack with names and who holds the GIL, read **from outside** (py-spy, shipped with us): works "
    "without injection, even when the GIL is stuck. `-a` shows each asyncio (or trio) task's whole await chain, "
    "down to the innermost coroutine, and which task awaits which (via the agent); tasks waiting at the same "
    "place are one entry that counts them, the odd ones out first. With `module [class] method` (the first "
    "positional decides): who calls it, the Python stack leading to each of the next `-n` calls, with thread and cost"
)


def _to_request(ns: argparse.Namespace) -> StackRequest:
    words: list[str] = ns.target
    if words and _number(words[0]):
        if len(words) > 1:
            raise UsageError("stack takes one pid, got %s" % " ".join(words))
        if len(words[0]) > LONGEST_NUMBER:  # int() of thousands of digits is slow (refused on 3.11+)
            raise UsageError("%s... is not a pid" % words[0][:LONGEST_NUMBER])
        if int(words[0]) < 1:
            raise UsageError("pid must be at least 1, got '%s'" % words[0])
    elif len(words) == 1:
        # one name is neither form: looked up as module and method both, it would blame the
        # module ("attribute 'abc' not found in abc"); a path is the seeds' macOS ``stack [filepath]``
        if "/" in words[0] or "." in os.path.basename(words[0]).lstrip("."):
            raise UsageError("stack takes a pid or module [class] method; to write the stacks to a file: stack -f FILE")
        raise UsageError("stack %s: give a pid, or module [class] method (a module names no function)" % words[0])
    elif words:
        return _callers_request(ns, words)
    for option, value in (("--filter", ns.filter), ("-n", None if ns.asyncio else ns.limits), ("-nm", ns.nested)):
        if value is not None:
            raise UsageError("%s needs module [class] method (stack module [class] method %s ...)" % (option, option))
    path = user_path(ns.filepath) if ns.filepath else None
    if path is not None:
        check_destination(path)
    pid = int(words[0]) if words else None
    tasks = TASKS_SHOWN if ns.limits is None else ns.limits
    return {"pid": pid, "filepath": path, "native": ns.native, "asyncio": ns.asyncio, "tasks": tasks}


def _number(word: str) -> bool:
    """A pid as typed, sign included: ``stack -1`` is a bad pid, not a module named ``-1``."""
    digits = word.lstrip("+-")
    return digits.isdigit() and digits.isascii()  # int() refuses "²", which isdigit() accepts


def _callers_request(ns: argparse.Namespace, words: list[str]) -> CallersRequest:
    """``stack module [class] method``: the call stacks leading to the function's calls."""
    if len(words) > 3:
        raise UsageError("expected: stack module [class] method, got %d names" % len(words))
    check_names(words)
    if ns.native or ns.asyncio:
        raise UsageError("--native and -a are for thread stacks, not for stack module [class] method")
    if ns.filter and ns.filepath:
        raise UsageError("give the filter once: -f or --filter")
    limit = CALLS_LIMIT if ns.limits is None else ns.limits
    if limit < 1:
        raise UsageError("-n must be at least 1, got %d" % limit)
    cls, method = owner_and_name(words[1] if len(words) == 3 else None, words[-1])
    return {
        "module": words[0],
        "cls": cls,
        "method": method,
        "nested": ns.nested,
        "filter": check_expression(ns.filter or ns.filepath, CALL_NAMES, "-f"),
        "limit": limit,
        "rate": CALLS_RATE,
    }


def _run_local(request: dict[str, Any], ctx: LocalContext) -> Iterator[dict[str, Any]]:
    pid = request.get("pid") or ctx.pid
    threads = [_thread(raw) for raw in pyspy.dump(pid, native=request.get("native", False))]
    threads.sort(key=lambda thread: (thread["name"] != "MainThread", thread["tid"]))
    event: dict[str, Any] = {"pid": pid, "threads": threads}
    if request.get("filepath"):
        write_text(request["filepath"], _threads_text(threads) + "\n")  # 0600, never through a link
        event["written_to"] = request["filepath"]
    yield event


def _outside_only(request: dict[str, Any]) -> bool:
    """Another pid, C frames or a file: what only reading from outside (or the client) does."""
    return bool(request.get("pid") or request.get("native") or request.get("filepath"))


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
    if event.get("greenlets"):
        text.append(
            "%s: its suspended greenlets are not listed, only asyncio tasks (watch and trace name the greenlet of each"
            " call)\n" % safe_line(event["greenlets"]),
            style="yellow",
        )
    for loop in event["loops"]:
        tasks = loop["tasks"]
        count = len(tasks) + sum(task.get("alike", 0) for task in tasks)
        text.append(
            "Loop %s%s: %s task(s)%s%s\n"
            % (
                safe_line(loop["loop"]),
                " [running]" if loop["running"] else "",
                _count(count),
                " at %d place(s)" % len(tasks) if count > len(tasks) else "",
                " shown" if event.get("not_shown") else "",
            ),
            style="bold",
        )
        for task in tasks:
            _task_text(text, task)
    if event.get("not_shown"):
        text.append(_not_shown_text(event), style="yellow")
    return text


def _task_text(text: Text, task: dict[str, Any]) -> None:
    text.append("  Task %s (%s)\n" % (safe_line(task["name"]), safe_line(task["coro"])), style="cyan")
    if task.get("alike"):
        named = [safe_line(name) for name in task.get("alike_names") or ()]
        rest = task["alike"] - len(named)
        text.append(
            "    and %s other task(s) at the same place: %s%s\n"
            % (_count(task["alike"]), ", ".join(named), ", and %s more" % _count(rest) if rest > 0 else ""),
            style="cyan",
        )
    if task.get("awaits"):
        text.append("    awaits task %s\n" % ", ".join(safe_line(name) for name in task["awaits"]), style="dim")
    if task.get("awaited_by"):
        text.append("    awaited by task %s\n" % ", ".join(safe_line(name) for name in task["awaited_by"]), style="dim")
    for frame in task["frames"]:
        text.append(
            '      File "%s", line %d, in %s\n' % (safe_line(frame["file"]), frame["line"], safe_line(frame["name"]))
        )


def _not_shown_text(event: dict[str, Any]) -> str:
    unread = event.get("not_read", 0)
    lines = []
    if event["not_shown"] > unread:
        places = sum(len(loop["tasks"]) for loop in event["loops"])
        lines.append(
            "%s more task(s) at places not shown (the first %d places read are shown: -n N for more)\n"
            % (_count(event["not_shown"] - unread), places)
        )
    if unread:
        lines.append("%s more task(s) not read (reading stops after %g s)\n" % (_count(unread), READ_SECONDS))
    return "".join(lines)


def _count(number: int) -> str:
    return f"{number:,}"


def _callers_text(event: dict[str, Any]) -> RenderableType | None:
    from rich.console import Group
    from rich.text import Text

    kind = event["kind"]
    if kind == "start":
        return render_start(event, "stacks of calls to", "-n %d" % event["limit"])
    if kind == "end":
        return render_end(event, "call stack(s)")
    parts: list[RenderableType] = []
    note = skipped_note(event)
    if note is not None:
        parts.append(note)
    parts.append(render_header(event, "#%d" % event["index"]))
    if "error" in event:
        parts.append(Text(event["error"], style="red"))
    body = Text()
    for frame in event.get("frames", []):
        body.append('    File "%s", line %d, in %s\n' % (frame["file"], frame["line"], frame["name"]))
    parts.append(body)
    return Group(*parts)


def _render(event: dict[str, Any]) -> RenderableType | None:
    from rich.console import Group
    from rich.text import Text

    if "kind" in event:
        return _callers_text(event)
    if "loops" in event:
        return _tasks_text(event)
    parts: list[RenderableType] = [_thread_text(thread) for thread in event["threads"]]
    if event.get("from") == "agent":
        note = "read from inside by the agent already running (py-spy may not read this process): Python frames only"
        parts.insert(0, Text(note, style="yellow"))
    if event.get("written_to"):
        parts.append(Text("stacks written to %s" % safe_line(event["written_to"]), style="green"))
    return Group(*parts)


SPEC = CommandSpec(
    name="stack",
    summary="Show every thread's stack (read from outside: works even when the GIL is stuck), asyncio tasks, "
    "or who calls a function (stack module [class] method).",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=(
        "stack",
        "stack --native",
        "stack -f ./stack.log",
        "stack -a",
        "stack __main__ PaymentGateway charge -n 2",
        'stack __main__ handle -f "args[0].quantity > 3"',
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    run_local=_run_local,
    # py-spy refused (ptrace forbidden): a pre-armed agent can list the Python frames from inside
    agent_fallback=lambda request: None if _outside_only(request) else {"threads": True},
    runs_locally=lambda request: not request.get("asyncio") and not request.get("module"),
)
