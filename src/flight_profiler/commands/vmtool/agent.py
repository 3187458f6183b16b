"""``vmtool`` in the target: live instances of a class, forced garbage collection."""

from __future__ import annotations

import gc
import time

from ...services.capture import CaptureOptions, capture
from ...services.context import CommandFailed, JobContext
from ...services.expr import Expression, describe_error
from ...services.resolve import find_class, loaded_module
from ...services.usercode import is_ours

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


def run(request: dict[str, Any], ctx: JobContext) -> None:
    action = request["action"]
    if action == "forceGc":
        ctx.emit(_force_gc())
    elif action == "getInstances":
        ctx.emit(_instances(request))
    else:
        raise CommandFailed("unknown vmtool action %r (use getInstances or forceGc)" % action)


def _force_gc() -> dict[str, Any]:
    before = gc.get_count()
    started = time.perf_counter()
    collected = gc.collect()
    return {
        "action": "forceGc",
        "collected": collected,
        "count_before": list(before),
        "count_after": list(gc.get_count()),
        "ms": round((time.perf_counter() - started) * 1000, 3),
    }


def _instances(request: dict[str, Any]) -> dict[str, Any]:
    expression = Expression(request["expr"], ("instances",)) if request.get("expr") else None
    klass = find_class(loaded_module(request["module"]), request["cls"])
    found = [obj for obj in gc.get_objects() if isinstance(obj, klass)]
    event: dict[str, Any] = {
        "action": "getInstances",
        "class": "%s.%s" % (request["module"], request["cls"]),
        "count": len(found),
    }
    options = CaptureOptions.from_request(request)
    if expression is not None:
        event["expr"] = expression.source
        try:
            event["value"] = capture(expression.evaluate({"instances": found}), options)
        except BaseException as exc:
            if is_ours(exc):
                raise  # a stop (budget, Ctrl-C, detach) ends the command
            event["error"] = describe_error(exc)
        return event
    limit = request.get("limit", 10)
    shown = found if limit < 0 else found[:limit]
    event["instances"] = [capture(obj, options) for obj in shown]
    return event
