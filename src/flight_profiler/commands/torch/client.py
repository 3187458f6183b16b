"""``torch`` in the CLI: profile the next call, CUDA memory snapshots and recordings."""

from __future__ import annotations

import argparse
import os

from ...errors import UsageError
from ...render.safe import safe_line
from ..calls import add_nested_argument
from ..spec import CommandSpec, number
from ..userpath import user_path
from .model import DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType

    from ...protocol.requests import TargetRequest
    from .model import TorchRequest

DEFAULT_FILES = {"profile": "trace.json", "memory": "snapshot.pickle"}
OPEN = {
    "profile": "open it in https://ui.perfetto.dev (Open trace file) or chrome://tracing (Load)",
    "snapshot": "drop it onto https://pytorch.org/memory_viz",
    "record": "drop it onto https://pytorch.org/memory_viz (the allocations of that call, with their stacks)",
}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("profile", "memory"), help="profile the next call, or CUDA memory")
    parser.add_argument("names", nargs="*", metavar="module [class] method", help="the function (profile, memory -r)")
    parser.add_argument(
        "-f", "--filepath", metavar="FILE", help="output file (default trace.json / snapshot.pickle here)"
    )
    add_nested_argument(parser)
    parser.add_argument("-s", "--snapshot", action="store_true", help="memory: snapshot the CUDA memory now")
    parser.add_argument(
        "-r",
        "--record",
        nargs="+",
        metavar="NAME",
        help="memory: record CUDA allocations during the next call of module [class] method",
    )
    parser.add_argument(
        "--wait",
        metavar="S",
        type=number(float, 0),
        default=DEFAULTS["wait"],
        help="give up when no call came within this many seconds",
    )


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = (
    "profile module [class] method [-f] [-nm] [--wait]",
    "memory -s [-f]",
    "memory -r=module [class] method [-f] [-nm] [--wait]",
)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("action", "`profile` (the next call) or `memory` (CUDA memory, with `-s` or `-r`)"),
    ("module [class] method", "the function to profile (`profile`)", "required for profile"),
    ("-f", "output file, written by the target", "`trace.json` / `snapshot.pickle` in your current directory"),
    ("-nm", "the function `NAME` defined inside the method", "off"),
    ("-s", "`memory`: snapshot the CUDA allocator now", ""),
    ("-r", "`memory`: record CUDA allocations during the next call of `module [class] method`"),
    ("--wait", "give up when no call came within S seconds (nothing is changed then)", "0: wait until Ctrl-C"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = (
    "profile <module> [<class>] <method> [-f] [--wait]",
    "memory -s [-f]",
    "memory -r=<module> [<class>] <method> [-f] [--wait]",
)
OVERVIEW = (
    "profile the next call with the PyTorch profiler (CPU, and CUDA when present) into a Chrome trace; CUDA memory "
    "snapshots"
)


def _to_request(ns: argparse.Namespace) -> TorchRequest:
    path = user_path(ns.filepath or DEFAULT_FILES[ns.action])  # the user's cwd
    if os.path.isdir(path):
        raise UsageError("-f %s is a directory; give a file name" % path)
    if ns.action == "profile":
        if ns.snapshot or ns.record:
            raise UsageError("-s and -r belong to torch memory")
        return {"action": "profile", "path": path, "wait": ns.wait, **_function(ns, "torch profile")}
    if ns.snapshot == bool(ns.record):
        raise UsageError("torch memory needs exactly one of -s (snapshot now) or -r module [class] method")
    if ns.snapshot:
        if ns.names or ns.nested:
            raise UsageError("torch memory -s takes no function")
        return {"action": "snapshot", "path": path}
    if ns.names:
        raise UsageError("torch memory -r takes the function after -r: -r module [class] method")
    return {"action": "record", "path": path, "wait": ns.wait, **_function(ns, "torch memory -r", ns.record)}


def _function(ns: argparse.Namespace, command: str, given: list[str] | None = None) -> TargetRequest:
    names: list[str] = ns.names if given is None else given
    if not 2 <= len(names) <= 3:
        raise UsageError("%s needs: module [class] method" % command)
    module, cls, method = (names[0], None, names[1]) if len(names) == 2 else names
    return {"module": module, "cls": cls, "method": method, "nested": ns.nested}


def _render(event: dict[str, Any]) -> RenderableType:
    from rich.text import Text

    action = event["action"]
    if action == "waiting":
        return Text("%s; Ctrl-C to stop" % safe_line(event["doing"]), style="dim")
    text = Text()
    if action == "profile":
        text.append(
            "profiled one call of %s (%s)" % (safe_line(event["target"]), safe_line("+".join(event["activities"]))),
            style="bold",
        )
    elif action == "record":
        text.append("recorded CUDA allocations of one call of %s" % safe_line(event["target"]), style="bold")
    else:
        text.append("CUDA memory snapshot", style="bold")
    if "call_ms" in event:
        text.append(
            ": the call took %.1f ms%s"
            % (event["call_ms"], ", raised %s" % safe_line(event["raised"]) if event["raised"] else "")
        )
    text.append("\nwritten to %s (%d bytes)\n" % (safe_line(event["path"]), event["bytes"]), style="green")
    text.append(OPEN[action], style="cyan")
    return text


SPEC = CommandSpec(
    name="torch",
    summary="PyTorch: profile the next call of a function (CPU, and CUDA when present), CUDA memory snapshots.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=(
        "torch profile __main__ Model forward",
        "torch profile my.pkg.infer Service predict -f ~/trace.json",
        "torch memory -s",
        "torch memory -r __main__ Solution call -f ~/snapshot.pickle",
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    changes_target=True,  # the function is hooked until its next call returned
    completes=("module", "class", "member"),
)
