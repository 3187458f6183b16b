"""``flight_profiler ps``: the Python processes you could attach to, server trees as trees."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..discovery.processes import Caller, PythonProcess, roots, scan
from ..errors import TargetError
from ..render.safe import safe_line
from .subcommands import Subcommand, add_output_options, make_output

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text
    from rich.tree import Tree

CMDLINE_WIDTH = 160  # the text view cuts long command lines; --json has them whole


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pids", nargs="*", type=int, metavar="pid", help="only these pids and their child processes")
    parser.add_argument("-a", "--attachable", action="store_true", help="only the processes you can attach to")
    add_output_options(parser)


def listing(pids: list[int], attachable_only: bool, caller: Caller | None = None) -> dict[str, Any]:
    """The ``ps`` result: the caller and the processes, selected. Raises TargetError for unknown pids."""
    who = caller or Caller.current()
    processes = scan(who)
    if pids:
        processes = _with_descendants(processes, pids)
    if attachable_only:
        processes = [proc for proc in processes if proc.attachable]
    return {
        "caller": {"uid": who.uid, "cap_sys_ptrace": who.cap_sys_ptrace, "yama_ptrace_scope": who.yama_scope},
        "processes": [proc.to_json() for proc in processes],
    }


def _with_descendants(processes: list[PythonProcess], pids: list[int]) -> list[PythonProcess]:
    by_pid = {proc.pid: proc for proc in processes}
    missing = [pid for pid in pids if pid not in by_pid]
    if missing:
        raise TargetError(
            "no Python process with pid %s (gone, or not Python)" % ", ".join(str(pid) for pid in missing)
        )
    wanted: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid not in wanted:
            wanted.add(pid)
            todo.extend(by_pid[pid].children)
    return [proc for proc in processes if proc.pid in wanted]


def render(result: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    processes = [_from_json(item) for item in result["processes"]]
    if not processes:
        return Text("no Python processes found", style="yellow")
    by_pid = {proc.pid: proc for proc in processes}
    usable = sum(1 for proc in processes if proc.attachable)
    header = Text(
        "%d Python process(es), %d attachable by you (uid %d)" % (len(processes), usable, result["caller"]["uid"]),
        style="bold",
    )
    return Group(header, *(_tree(proc, by_pid) for proc in roots(processes)))


def _tree(proc: PythonProcess, by_pid: dict[int, PythonProcess]) -> Tree:
    from rich.tree import Tree

    tree = Tree(_label(proc), guide_style="dim")
    for child in proc.children:
        if child in by_pid:
            tree.add(_tree(by_pid[child], by_pid))
    return tree


def _label(proc: PythonProcess) -> Text:
    """Two or three lines: who and what it is, its command line, and why not when it is not attachable."""
    from rich.text import Text

    text = Text(no_wrap=False, overflow="fold")  # long command lines wrap, never cut at the edge
    text.append("%d" % proc.pid, style="bold")
    text.append("  python %s  %s  " % (safe_line(proc.python or "?"), safe_line(proc.user)))
    if proc.attachable:
        text.append("attachable" + (" (agent running)" if proc.agent else ""), style="green")
    else:
        text.append("not attachable", style="red")
    if proc.role:
        text.append("  [%s]" % safe_line(proc.role), style="cyan")
    if proc.container:
        text.append("  [container]", style="cyan")
    # other users' argv: anything at all, escaped before it is cut so an escape is never cut in half
    cmdline = safe_line(proc.cmdline)
    cmdline = cmdline if len(cmdline) <= CMDLINE_WIDTH else cmdline[: CMDLINE_WIDTH - 3] + "..."
    text.append("\n  %s" % cmdline, style="dim")
    if proc.reason:
        text.append("\n  why not: %s" % safe_line(proc.reason), style="yellow")
    return text


def _from_json(item: dict[str, Any]) -> PythonProcess:
    return PythonProcess(**item)


def _run(args: argparse.Namespace) -> int:
    output = make_output(args)
    try:
        result = listing(args.pids, args.attachable)
    except TargetError as exc:
        output.error("ps", str(exc))
        return exc.exit_code
    output.result("ps", result, None if output.as_json else render(result))
    return 0


SUBCOMMAND = Subcommand(
    name="ps",
    summary="List the Python processes you could attach to: pid, version, user, command line, and why not.",
    add_arguments=_add_arguments,
    run=_run,
)
