"""``vmtool`` in the CLI."""

from __future__ import annotations

import argparse

from ...errors import UsageError
from ...render.safe import safe_line
from ..calls import add_budget_argument, budget_request, expr_block
from ..spec import CommandSpec, add_expression_argument, add_render_options, check_expression, number, render_options
from ..targeting import check_names
from .model import DEFAULTS, MAX_CHAINS, MAX_DEPTH, REFERENCE_LIMIT

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType

    from .model import ReferenceAnalyzeRequest, VmtoolRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-a", "--action", required=True, choices=("getInstances", "referenceAnalyze", "forceGc"), help="what to do"
    )
    parser.add_argument(
        "-c", "--class", dest="location", nargs=2, metavar=("module", "class"), help="class whose instances to find"
    )
    add_expression_argument(
        parser, "-e", "--expr", help="expression over `instances`, the list found, e.g. instances[0].val"
    )
    parser.add_argument(
        "-n",
        "--limits",
        metavar="N",
        type=number(int, 1, special=(-1,), note="all"),
        default=None,  # getInstances: DEFAULTS["limit"]; referenceAnalyze: REFERENCE_LIMIT
        help="instances to show: getInstances %d by default, -1 all; referenceAnalyze %d by default, at most %d"
        % (DEFAULTS["limit"], REFERENCE_LIMIT, MAX_CHAINS),
    )
    parser.add_argument(
        "--depth",
        metavar="D",
        type=number(int, 1, MAX_DEPTH),
        default=DEFAULTS["depth"],
        help="referenceAnalyze: the longest chain searched, in references (default %d)" % DEFAULTS["depth"],
    )
    add_budget_argument(
        parser,
        "agent",
        "-e and of each value's own code a capture runs (__repr__, __len__, a property: past it, a placeholder)",
    )
    add_render_options(parser, deepest=6)


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = (
    "-a=getInstances -c [-e] [-n] [-x] [-v] [-r] [--budget-ms]",
    "-a=referenceAnalyze -c [-n] [--depth]",
    "-a=forceGc",
)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("-a", "`getInstances`, `referenceAnalyze` or `forceGc`", "required"),
    ("-c", "the class, by the module it is defined in and its name", "required for getInstances and referenceAnalyze"),
    (
        "-e",
        "Python expression over `instances` (a list), e.g. `len(instances)`, `instances[0].stock`, `[i.sku for i in "
        "instances]`; takes the rest of the line up to the next option, so spaces need no quotes",
        "`instances`",
    ),
    (
        "--budget-ms",
        "time budget of `-e`: past it the evaluation is stopped and the command fails with that reason; also of "
        "each instance's own code a capture runs (`__repr__`, `__len__`, a property): past it that instance is "
        "shown as a placeholder with the reason, and the rest as `not run again in this command`",
        "5000",
    ),
    (
        "-n",
        "getInstances: instances to show without `-e` (`-1`: all); referenceAnalyze: instances whose chain to show, "
        "nearest to a root first (1..100)",
        "10; referenceAnalyze 3",
    ),
    ("--depth", "referenceAnalyze: the longest chain searched, in references from a root (1..10000)"),
    ("-x", "depth to expand each value: 1..6, `-1` deepest"),
    ("-v", "every item of containers, whole long strings"),
    ("-r", "`repr()` of values instead of trees"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = (
    "-a=getInstances -c=<module> <class> [-e] [-n] [-x] [-v] [-r] [--budget-ms]",
    "-a=referenceAnalyze -c=<module> <class> [-n] [--depth]",
    "-a=forceGc",
)
OVERVIEW = (
    "live instances of a class (`-e` over `instances`, `-x` up to 6, `-e` budget 5000 ms); why the `-n` (3) instances"
    " nearest to a root are alive: the chain of references from a global, class attribute or thread's local variable "
    "(`__main__.CACHE['k'] -> list[3] -> __main__.Item`), no program code run; a forced collection"
)


def _to_request(ns: argparse.Namespace) -> VmtoolRequest:
    if ns.action == "forceGc":
        given = [flag for flag, value in (("-c", ns.location), ("-e", ns.expr), ("-n", ns.limits)) if value]
        if given:  # silently ignored, it would read as if the collection were limited to them
            raise UsageError("vmtool -a forceGc takes no %s: it collects the whole heap" % ", ".join(given))
        return {"action": "forceGc"}
    if not ns.location:
        raise UsageError("vmtool -a %s needs -c module class" % ns.action)
    module, cls = ns.location
    check_names([module, cls])
    if ns.action == "referenceAnalyze":
        return _reference_request(ns, module, cls)
    return {
        "action": "getInstances",
        "module": module,
        "cls": cls,
        "expr": check_expression(ns.expr, ("instances",), "-e"),
        **budget_request(ns),
        "limit": DEFAULTS["limit"] if ns.limits is None else ns.limits,
        **render_options(ns),
    }


def _reference_request(ns: argparse.Namespace, module: str, cls: str) -> ReferenceAnalyzeRequest:
    if ns.expr:
        raise UsageError("vmtool -a referenceAnalyze takes no -e: it shows why instances of -c module class are alive")
    limit = REFERENCE_LIMIT if ns.limits is None else ns.limits
    if not 1 <= limit <= MAX_CHAINS:
        raise UsageError("-n must be 1..%d for referenceAnalyze, got %d" % (MAX_CHAINS, limit))
    return {"action": "referenceAnalyze", "module": module, "cls": cls, "limit": limit, "depth": ns.depth}


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
    if event["action"] == "referenceAnalyze":
        return _render_chains(event)
    expr = event.get("expr") or "instances"
    if "error" in event:
        parts: list[Any] = [
            Text("EXPR: %s" % safe_line(expr)),
            Text("FAILED: %s" % safe_line(event["error"]), style="red"),
        ]
    elif "value" in event:
        parts = list(expr_block([(expr, event["value"])], expand=event.get("expand", 1)))
    else:
        instances = event["instances"]
        node = {"t": "list", "kind": "list", "len": len(instances), "items": instances}
        parts = list(expr_block([(expr, node)], expand=event.get("expand", 1)))
    found = "%d live instance(s) of %s" % (event["count"], safe_line(event["class"]))
    if "instances" in event and len(event["instances"]) < event["count"]:
        found += "; %d shown (-n -1 shows all)" % len(event["instances"])
    parts.append(Text(found, style="dim"))
    return Group(*parts)


def _render_chains(event: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = []
    for chain in event["chains"]:
        parts.append(Text(safe_line(chain["object"]), style="bold"))
        parts.append(Text("  " + safe_line(chain_text(chain))))
        parts.append(Text("  root: " + safe_line(root_text(chain["root"])), style="dim"))
    parts.append(Text(_summary_line(event), style="dim"))
    return Group(*parts)


def chain_text(chain: dict[str, Any]) -> str:
    """``__main__.CACHE['k'] -> list[3] -> __main__.Item``: the root's name, then each reference
    and the type of what it reaches."""
    text = str(chain["root"]["name"])
    steps = chain["steps"]
    for index, step in enumerate(steps):
        if index:
            text += " -> " + steps[index - 1]["type"]
        text += step["via"]  # "": a reference that could not be named
    return text + " -> " + str(steps[-1]["type"]) if steps else text + " (the instance itself)"


_ROOTS = {
    "global": "global variable {name} ({type})",
    "module": "the namespace of module {name}",
    "local": "local variable {name} of {where} ({type})",
    "frame": "frame of {where}",
    "young": "{where}",
    "unknown": "{where}",
}


def root_text(root: dict[str, Any]) -> str:
    """What holds the chain's first object: a global, a local variable, a frame..."""
    fields = {"name": "?", "where": "?", "type": "?", **root}
    return _ROOTS.get(root.get("kind", ""), "{name} ({type})").format(**fields)


def _summary_line(event: dict[str, Any]) -> str:
    chains, name = event["chains"], safe_line(event["class"])
    walked = "walked %d objects, %d levels from the roots" % (event["walked"], event["levels"])
    if event.get("bounded"):
        walked += "; stopped at its memory bound (the containers kept for the way back)"
    if not chains:
        if event["complete"]:
            return "no live instance of %s is reachable from the roots (%s)" % (name, walked)
        if event.get("bounded"):
            return "no instance of %s found (%s)" % (name, walked)
        return "no instance of %s within --depth %d references of a root (%s)" % (name, event["depth"], walked)
    line = "%d instance(s) of %s, nearest to a root first; %s" % (len(chains), name, walked)
    if not event["complete"]:
        if len(chains) == event["limit"]:
            line += "; more may exist (-n)"
        elif not event.get("bounded"):
            line += "; more may be deeper (--depth)"
    return line


SPEC = CommandSpec(
    name="vmtool",
    summary="List live instances of a class, show why they are alive, or force a garbage collection.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=(
        "vmtool -a getInstances -c __main__ A",
        "vmtool -a getInstances -c __main__ A -e instances[0].val",
        "vmtool -a getInstances -c __main__ A -e [i.val for i in instances]",
        "vmtool -a referenceAnalyze -c __main__ A",
        "vmtool -a referenceAnalyze -c __main__ A -n 1 --depth 20",
        "vmtool -a forceGc",
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    changes_target=True,  # forceGc runs a collection (finalizers run)
    completes=(),
)
