"""``vmtool`` in the target: live instances of a class, why they are alive, forced garbage collection.

Instances are found by the shared heap walk (``services/heapwalk.py``), in slices
that yield the GIL, collecting only the instances shown, never a list of every object;
the chains that keep them alive by ``services/referrers.py``, on the same terms.
"""

from __future__ import annotations

import gc
import time

from ...protocol.requests import RENDER_DEFAULTS
from ...services import heapwalk, referrers, usercode
from ...services.capture import CaptureOptions, capture
from ...services.context import CommandFailed, JobContext
from ...services.describe import TYPE_DICT, TYPE_MRO, class_name
from ...services.expr import Expression, describe_error
from ...services.resolve import find_class, loaded_module
from .model import DEFAULTS, MAX_CHAINS, MAX_DEPTH, REFERENCE_LIMIT

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any


def run(request: dict[str, Any], ctx: JobContext) -> None:
    action = request["action"]
    if action == "forceGc":
        ctx.emit(_force_gc())
    elif action == "getInstances":
        event = _instances(request, ctx)
        if event is not None:  # None: cancelled during the walk (the job ends cancelled)
            ctx.emit(event)
    elif action == "referenceAnalyze":
        event = _reference_analyze(request, ctx)
        if event is not None:
            ctx.emit(event)
    else:
        raise CommandFailed("unknown vmtool action %r (use getInstances, referenceAnalyze or forceGc)" % action)


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


def _instances(request: dict[str, Any], ctx: JobContext) -> dict[str, Any] | None:
    expression = Expression(request["expr"], ("instances",)) if request.get("expr") else None
    klass = find_class(loaded_module(request["module"]), request["cls"])
    budget_ms = usercode.budget_of(request, usercode.AGENT_BUDGET_MS)
    limit = request.get("limit", DEFAULTS["limit"])
    keep = -1 if expression is not None or limit < 0 else limit
    wanted = _SubclassTest(klass, budget_ms)
    walked = heapwalk.walk(ctx.cancelled, [], sizes=False, wanted=wanted, keep=keep)
    if walked is None:
        return None
    wanted.check()
    found = walked.found
    event: dict[str, Any] = {
        "action": "getInstances",
        "class": "%s.%s" % (request["module"], request["cls"]),
        "count": walked.matched(),
        "expand": int(request.get("expand", RENDER_DEFAULTS["expand"])),  # the text's shape depends on it
    }
    options = CaptureOptions.from_request(request)
    if expression is not None:
        event["expr"] = expression.source
        event["pacing"] = walked.pace.finish()  # the walk's; the expression runs under its own budget
        value, error = _evaluate(expression, found, budget_ms)
        if error is not None:
            event["error"] = describe_error(error)
        else:
            event["value"] = capture(value, options)
        return event
    event["instances"] = _captured(found, options, walked.pace)
    event["pacing"] = walked.pace.finish()
    return event


def _captured(found: list[Any], options: CaptureOptions, pace: heapwalk.Pacer) -> list[Any]:
    """Each instance shown, captured in the walk's slices (a capture is bounded, -n is not)."""
    shown = []
    for obj in found:
        shown.append(capture(obj, options))
        pace.tick()  # cancelled: the rest is captured anyway, the walk is done
    return shown


def _reference_analyze(request: dict[str, Any], ctx: JobContext) -> dict[str, Any] | None:
    """Up to ``limit`` instances nearest to a root, each with the chain of references that holds it."""
    klass = find_class(loaded_module(request["module"]), request["cls"])
    limit = _bounded(request.get("limit", REFERENCE_LIMIT), MAX_CHAINS, "-n")
    depth = _bounded(request.get("depth", DEFAULTS["depth"]), MAX_DEPTH, "--depth")
    wanted = _SubclassTest(klass, usercode.budget_of(request, usercode.AGENT_BUDGET_MS))
    found = referrers.analyze(ctx.cancelled, wanted, limit, depth)
    if found is None:
        return None
    wanted.check()
    return {
        "action": "referenceAnalyze",
        "class": "%s.%s" % (request["module"], request["cls"]),
        "chains": found.chains,
        "walked": found.walked,
        "levels": found.levels,
        "complete": found.complete,
        **({"bounded": True} if found.bounded else {}),
        "limit": limit,
        "depth": depth,
        "pacing": found.pacing,
    }


def _bounded(value: Any, most: int, option: str) -> int:
    if type(value) is not int or not 1 <= value <= most:
        raise CommandFailed("%s must be 1..%d, got %r" % (option, most, value))
    return value


def _evaluate(expression: Expression, instances: list[Any], budget_ms: float) -> tuple[Any, BaseException | None]:
    """The expression's value or what it raised, under the budget (the session gave the walk none)."""
    usercode.watchdog_open()
    try:
        namespace = {"instances": instances}
        value, error, overran = usercode.run_marked(expression.evaluate, (namespace,), budget_ms / 1000.0)
    finally:
        usercode.watchdog_close()
    if isinstance(error, usercode.Interrupted):
        raise usercode.Stopped()  # Ctrl-C or detach: the command ends
    if isinstance(error, usercode.BudgetExceeded) or (overran and error is None):
        what = "-e %r" % (expression.source,)  # as the session says it for getglobal
        raise CommandFailed("%s ran over its budget of %g ms: stopped (--budget-ms)" % (what, budget_ms))
    return value, error


class _SubclassTest:
    """Whether objects of a type are instances of ``klass``: asked once per type the walk meets.

    type's own check first (the classes' MROs: no code of the program). A metaclass with its own
    ``__subclasscheck__`` (an ABC: its registry and ``__subclasshook__``) is the program's code,
    which may loop or block: each call within what is left of the budget, and past it no more
    (the walk ends by MRO alone and the command fails, saying so).
    """

    def __init__(self, klass: type, budget_ms: float) -> None:
        self.klass = klass
        self.virtual = _own_subclasscheck(type(klass))
        self.budget_ms = budget_ms
        self.allowance = usercode.Allowance(budget_ms)

    def __call__(self, kind: type) -> bool:
        if type.__subclasscheck__(self.klass, kind):
            return True
        if not self.virtual:
            return False
        value, error, overran = self.allowance.call(class_name(kind), issubclass, (kind, self.klass))
        return not overran and error is None and value is True  # a hostile __subclasscheck__: not an instance

    def check(self) -> None:
        if self.allowance.spent_on is not None:
            raise CommandFailed(
                "%s's __subclasscheck__ (its metaclass %s's: the program's code) ran over the budget of %g ms"
                " (at class %s) and was stopped (--budget-ms)"
                % (class_name(self.klass), class_name(type(self.klass)), self.budget_ms, self.allowance.spent_on)
            )


def _own_subclasscheck(meta: type) -> bool:
    """Whether a metaclass (or one of its bases short of type) defines ``__subclasscheck__``."""
    return any(k is not type and k is not object and "__subclasscheck__" in TYPE_DICT(k) for k in TYPE_MRO(meta))
