"""``watch`` in the target: arguments, return value, exception and cost of a function's calls.

The function is hooked for as long as the job runs (``services.hooks``): until
``-n`` results were shown, the user pressed Ctrl-C, the client went away, the
agent detached, or the user code (``-f``, ``--expr``, a capture) was switched
off for raising or running over ``--budget-ms`` (``services.usercode``).
Calls are picked on the calling thread (``-f``, ``-e``, the count and
``--rate``); only those shown are captured, at the moment the call returns, so
the values are the ones the call saw.
"""

from __future__ import annotations

import time
from threading import get_ident

from ...services import (
    capture_repr,  # noqa: F401 - compiled now, in the job's thread, never in a hooked call
    hooks,
)
from ...services.callexpr import CallExpression
from ...services.callprobe import CallProbe, describe_error, exception_info, serve, thread_info
from ...services.capture import CaptureOptions, capture
from ...services.context import CommandFailed, JobContext
from ...services.location import resolve
from ...services.usercode import APP_BUDGET_MS, budget_of
from .model import DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

    from .model import WatchRequest


class WatchProbe(CallProbe):
    def __init__(self, request: WatchRequest, is_method: bool) -> None:
        expr_source = request.get("expr")
        # checked before the guards are made (they hold the watchdog until closed)
        expr = CallExpression(expr_source).evaluator(is_method) if expr_source else None
        super().__init__(
            is_method,
            request.get("filter"),
            int(request["limit"]),
            float(request.get("rate", DEFAULTS["rate"])),
            bool(request.get("exception", DEFAULTS["exception"])),
            budget_of(request, APP_BUDGET_MS),
            "--expr %r" % request["expr"] if request.get("expr") else "capturing a call's values",
        )
        self.filter_source = request.get("filter")
        self.expr_source = request.get("expr")
        self.expr = expr
        self.options = CaptureOptions.from_request(request)
        self.method = ""  # module[.class].method, shown in each result's title

    def record(
        self,
        index: int,
        args: Any,
        kwargs: Any,
        returned: Any,
        error: BaseException | None,
        cost: float,
        filter_error: BaseException | None,
    ) -> dict[str, Any]:
        item: dict[str, Any] = {"kind": "call", "index": index, "time": time.time() - cost / 1000.0}
        item["cost"] = round(cost, 4)
        item["method"] = self.method
        item.update(thread_info(get_ident()))
        if error is not None:
            item["exception"] = exception_info(error)
        if self.expr is not None:
            try:
                value = self.expr(args, kwargs, returned, cost)
            except Exception as exc:  # noqa: BLE001 - the expression's error is this call's result
                # (SystemExit & co. go to the guard around record(): switched off)
                item["error"] = "expression %r failed: %s" % (self.expr_source, describe_error(exc))
                return item
            item["values"] = [{"expr": self.expr_source, "value": capture(value, self.options)}]
            return item
        values = [{"expr": "args", "value": capture(args, self.options)}]
        if kwargs:
            values.append({"expr": "kwargs", "value": capture(kwargs, self.options)})
        if error is None:
            values.append({"expr": "return_obj", "value": capture(returned, self.options)})
        item["values"] = values
        return item


def run(request: WatchRequest, ctx: JobContext) -> None:
    if int(request.get("limit", 0)) < 1:
        raise CommandFailed("-n must be at least 1")
    target = resolve(request["module"], request.get("cls"), request["method"], request.get("nested"))
    probe = WatchProbe(request, target.is_method)  # expressions are checked here, before anything is hooked
    probe.method = target.label
    ctx.add_cleanup(probe.close)
    handle = hooks.install(target.func, probe, target.nested)
    ctx.add_cleanup(handle.remove)
    ctx.emit({"kind": "start", **target.describe(), "limit": probe.limit, "rate": probe.bucket.rate})
    reason = serve(ctx, probe.outbox, probe.full, ctx.emit)
    handle.remove()  # before the summary: the function is itself again as soon as we are done
    probe.close()
    if reason == "cancelled":
        return  # nobody is reading any more
    switched_off = probe.switched_off()
    if switched_off is not None:
        raise CommandFailed(switched_off)
    ctx.emit(
        {
            "kind": "end",
            "reason": reason,
            "shown": probe.accepted,
            "skipped": probe.bucket.skipped_total,
            "dropped": probe.outbox.dropped,
        }
    )
