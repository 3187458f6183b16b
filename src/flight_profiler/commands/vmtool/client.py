"""``vmtool`` in the CLI."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from ...render.values import pretty
from ..calls import add_budget_argument, budget_request
from ..spec import CommandSpec, add_render_options, render_options

if TYPE_CHECKING:
    from rich.console import RenderableType


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--action", required=True, choices=("getInstances", "forceGc"), help="what to do")
    parser.add_argument(
        "-c", "--class", dest="location", nargs=2, metavar=("module", "class"), help="class whose instances to list"
    )
    parser.add_argument("-e", "--expr", help="expression over `instances`, the list found, e.g. instances[0].val")
    parser.add_argument("-n", "--limits", type=int, default=10, help="instances to show (default 10, -1 all)")
    add_budget_argument(parser, "agent", "-e")
    add_render_options(parser)


def _to_request(ns: argparse.Namespace) -> dict[str, Any]:
    if ns.action == "forceGc":
        return {"action": "forceGc"}
    if not ns.location:
        raise UsageError("vmtool -a getInstances needs -c module class")
    if ns.limits == 0 or ns.limits < -1:
        raise UsageError("-n must be positive or -1, got %d" % ns.limits)
    module, cls = ns.location
    return {
        "action": "getInstances",
        "module": module,
        "cls": cls,
        "expr": ns.expr,
        **budget_request(ns),
        "limit": ns.limits,
        **render_options(ns),
    }


def _render(event: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    if event["action"] == "forceGc":
        return Text(
            "gc.collect() freed %d objects in %.1f ms; generation counts %s -> %s"
            % (event["collected"], event["ms"], event["count_before"], event["count_after"])
        )
    header = Text("%d live instance(s) of %s" % (event["count"], event["class"]), style="bold")
    if "error" in event:
        return Group(header, Text("expression %s failed: %s" % (event["expr"], event["error"]), style="red"))
    if "value" in event:
        return Group(header, Text("%s = %s" % (event["expr"], pretty(event["value"]))))
    rows = [Text("[%d] %s" % (index, pretty(node))) for index, node in enumerate(event["instances"])]
    if len(rows) < event["count"]:
        rows.append(Text("... %d more (-n -1 shows all)" % (event["count"] - len(rows)), style="dim"))
    return Group(header, *rows)


SPEC = CommandSpec(
    name="vmtool",
    summary="List live instances of a class, or force a garbage collection.",
    usage="vmtool -a getInstances -c module class [-e EXPR] [-n N] [-x N] [-v] [-r] | vmtool -a forceGc",
    examples=(
        "vmtool -a getInstances -c __main__ A",
        "vmtool -a getInstances -c __main__ A -e instances[0].val",
        "vmtool -a forceGc",
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    changes_target=True,  # forceGc runs a collection (finalizers run)
    completes=(),
)
