"""``vmtool`` in the CLI."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from ...render.safe import safe_line
from ..calls import add_budget_argument, budget_request, expr_block
from ..spec import CommandSpec, add_expression_argument, add_render_options, check_expression, number, render_options
from .model import DEFAULTS

if TYPE_CHECKING:
    from rich.console import RenderableType

    from .model import VmtoolRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--action", required=True, choices=("getInstances", "forceGc"), help="what to do")
    parser.add_argument(
        "-c", "--class", dest="location", nargs=2, metavar=("module", "class"), help="class whose instances to list"
    )
    add_expression_argument(
        parser, "-e", "--expr", help="expression over `instances`, the list found, e.g. instances[0].val"
    )
    parser.add_argument(
        "-n",
        "--limits",
        type=number(int, 1, special=(-1,), note="all"),
        default=DEFAULTS["limit"],
        help="instances to show (default %d, -1 all)" % DEFAULTS["limit"],
    )
    add_budget_argument(parser, "agent", "-e")
    add_render_options(parser, deepest=6)


def _to_request(ns: argparse.Namespace) -> VmtoolRequest:
    if ns.action == "forceGc":
        return {"action": "forceGc"}
    if not ns.location:
        raise UsageError("vmtool -a getInstances needs -c module class")
    module, cls = ns.location
    return {
        "action": "getInstances",
        "module": module,
        "cls": cls,
        "expr": check_expression(ns.expr, ("instances",), "-e"),
        **budget_request(ns),
        "limit": ns.limits,
        **render_options(ns),
    }


def _render(event: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    if event["action"] == "forceGc":
        return Group(
            Text("Gc execute successfully, totally %d unreachable objects are freed." % event["collected"]),
            Text(
                "took %.1f ms; generation counts %s -> %s"
                % (event["ms"], safe_line(event["count_before"]), safe_line(event["count_after"])),
                style="dim",
            ),
        )
    expr = event.get("expr") or "instances"
    if "error" in event:
        parts: list[Any] = [
            Text("EXPR: %s" % safe_line(expr)),
            Text("FAILED: %s" % safe_line(event["error"]), style="red"),
        ]
    elif "value" in event:
        parts = list(expr_block([(expr, event["value"])]))
    else:
        instances = event["instances"]
        node = {"t": "list", "kind": "list", "len": len(instances), "items": instances}
        parts = list(expr_block([(expr, node)]))
    found = "%d live instance(s) of %s" % (event["count"], safe_line(event["class"]))
    if "instances" in event and len(event["instances"]) < event["count"]:
        found += "; %d shown (-n -1 shows all)" % len(event["instances"])
    parts.append(Text(found, style="dim"))
    return Group(*parts)


SPEC = CommandSpec(
    name="vmtool",
    summary="List live instances of a class, or force a garbage collection.",
    usage="vmtool -a getInstances -c module class [-e EXPR] [-n N] [-x N] [-v] [-r] [--budget-ms MS] "
    "| vmtool -a forceGc",
    examples=(
        "vmtool -a getInstances -c __main__ A",
        "vmtool -a getInstances -c __main__ A -e instances[0].val",
        "vmtool -a getInstances -c __main__ A -e [i.val for i in instances]",
        "vmtool -a forceGc",
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    changes_target=True,  # forceGc runs a collection (finalizers run)
    completes=(),
)
