"""``getglobal`` in the target: read a module global or class attribute."""

from __future__ import annotations

from ...protocol.requests import RENDER_DEFAULTS
from ...services.capture import CaptureOptions, capture
from ...services.context import JobContext
from ...services.describe import class_name
from ...services.expr import Expression, describe_error
from ...services.resolve import find_attribute, find_class, loaded_module, module_label, qualified

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

    from .model import GetGlobalRequest


def run(request: GetGlobalRequest, ctx: JobContext) -> None:
    source, cls = request.get("expr"), request.get("cls")
    expression = Expression(source, ("target",)) if source else None
    options = CaptureOptions.from_request(request)  # its budget bounds the lookups too (a module's __getattr__)
    module = loaded_module(request["module"])
    owner: Any = module
    label = module_label(module)
    if cls:
        owner = find_class(module, cls, options.budget_ms)
        label = qualified(label, cls, "")
    value = find_attribute(owner, request["field"], label, options.budget_ms)
    event: dict[str, Any] = {
        "name": qualified(request["module"], request.get("cls"), request["field"]),
        "type": class_name(type(value)),
        "expand": int(request.get("expand", RENDER_DEFAULTS["expand"])),  # the text's shape depends on it
    }
    if expression is not None:
        event["expr"] = expression.source
        try:
            value = expression.evaluate({"target": value})
        except BaseException as exc:
            from ...services.usercode import is_ours  # only with -e: it imports threading

            if is_ours(exc):
                raise  # a stop (budget, Ctrl-C, detach) ends the command
            event["error"] = describe_error(exc)
            ctx.emit(event)
            return
    event["value"] = capture(value, options)
    ctx.emit(event)
