"""``tt`` (time tunnel) in the target: record calls, list them, show one, replay one.

``tt -t module [class] method`` hooks the function like ``watch`` and keeps a
record of each call it picks: arguments, return value or exception, cost,
thread. The values are captured when the call returns, so a record shows
them as they were then, however the objects change later. A record also keeps
references to the argument objects themselves, for ``-p`` (replay), which
calls the function again with them, for real.

The records live in this module until ``tt -d``/``-da`` or ``detach``, bounded
by a count and a byte budget (``--max-records``, ``--max-mb``): when a new
record does not fit, the oldest go first and the listing says how many.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from ...services import (
    capture_repr,  # noqa: F401 - compiled now, in the job's thread, never in a hooked call
    hooks,
    realthreads,
)
from ...services.callprobe import CallProbe, exception_info, serve, thread_info
from ...services.capture import CaptureOptions, capture
from ...services.context import CommandFailed, JobContext, on_detach
from ...services.describe import class_name
from ...services.location import resolve
from ...services.usercode import APP_BUDGET_MS, CAPTURE_BUDGET_MS, budget_of, is_ours
from .model import DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

FIRST_INDEX = 1000
DEFAULT_MAX_RECORDS = DEFAULTS["max_records"]
DEFAULT_MAX_MB = DEFAULTS["max_mb"]
RECORD_DEPTH = 2  # captured at least this deep, so that ``tt -i IDX -x 2`` has something to show
REPLAY_TIMEOUT = 60.0
REPLAY_ITEMS = 10000  # a replayed generator is run to its end, at most this many items


class Store:
    """The records, oldest first; thread-safe; bounded by count and bytes."""

    def __init__(self) -> None:
        self.lock = realthreads.allocate_lock()
        self.records: dict[int, dict[str, Any]] = {}
        self.live: dict[int, tuple[Any, ...]] = {}  # index -> what a replay needs
        self.next_index = FIRST_INDEX
        self.max_records = DEFAULT_MAX_RECORDS
        self.max_bytes = int(DEFAULT_MAX_MB * 1024 * 1024)
        self.bytes = 0
        self.dropped = 0  # records dropped to stay within the budget, since the last -da

    def configure(self, max_records: int, max_bytes: int) -> None:
        with self.lock:
            self.max_records, self.max_bytes = max_records, max_bytes
            self._shrink(0)

    def add(self, record: dict[str, Any], live: tuple[Any, ...]) -> int:
        size = record["size"]
        with self.lock:
            index = self.next_index
            self.next_index += 1
            self._shrink(size)
            record["index"] = index
            self.records[index] = record
            self.live[index] = live
            self.bytes += size
        return index

    def _shrink(self, incoming: int) -> None:
        while self.records and (
            len(self.records) + (1 if incoming else 0) > self.max_records or self.bytes + incoming > self.max_bytes
        ):
            oldest = next(iter(self.records))
            self._remove(oldest)
            self.dropped += 1

    def _remove(self, index: int) -> bool:
        record = self.records.pop(index, None)
        self.live.pop(index, None)
        if record is None:
            return False
        self.bytes -= record["size"]
        return True

    def get(self, index: int) -> tuple[dict[str, Any], tuple[Any, ...]]:
        with self.lock:
            record = self.records.get(index)
            if record is None:
                raise CommandFailed("no record %d; 'tt -l' lists the records" % index)
            return record, self.live[index]

    def delete(self, index: int) -> None:
        with self.lock:
            if not self._remove(index):
                raise CommandFailed("no record %d; 'tt -l' lists the records" % index)

    def clear(self) -> int:
        with self.lock:
            count = len(self.records)
            self.records.clear()
            self.live.clear()
            self.bytes = 0
            self.dropped = 0
        return count

    def forget(self) -> None:
        """Detach: drop every record and the references they hold."""
        self.clear()

    def rows(self, method: str | None) -> list[dict[str, Any]]:
        with self.lock:
            records = list(self.records.values())
        return [_row(record) for record in records if method is None or _method_matches(record["method"], method)]


STORE = Store()
on_detach(STORE.forget)


class TtProbe(CallProbe):
    def __init__(self, request: dict[str, Any], target: Any, kind: str) -> None:
        super().__init__(
            target.is_method,
            request.get("filter"),
            int(request["limit"]),
            float(request.get("rate", DEFAULTS["rate"])),
            bool(request.get("exception")),
            budget_of(request, APP_BUDGET_MS),
        )
        self.filter_source = request.get("filter")
        self.target = target
        self.kind = kind
        depth = int(request.get("expand", 1))
        self.options = CaptureOptions(
            expand=depth if depth < 0 else max(depth, RECORD_DEPTH),
            verbose=bool(request.get("verbose")),
            raw=bool(request.get("raw")),
        )

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
        record = make_record(self.target.label, args, kwargs, returned, error, cost, self.options)
        record.update(thread_info(threading.get_ident()))
        live = (self.target, args, kwargs, _running_loop() if self.kind != "function" else None)
        return {"record": record, "live": live}

    def commit(self, item: Any) -> dict[str, Any]:
        STORE.add(item["record"], item["live"])
        return {"kind": "record", **_row(item["record"])}


def make_record(
    label: str,
    args: Any,
    kwargs: Any,
    returned: Any,
    error: BaseException | None,
    cost: float,
    options: CaptureOptions,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "time": time.time() - cost / 1000.0,
        "cost": round(cost, 4),
        "method": label,
        "is_return": error is None,
        "is_exception": error is not None,
        "depth": options.depth,
        "args": capture(args, options),
        "kwargs": capture({} if kwargs is None else kwargs, options),
    }
    if error is None:
        record["return"] = capture(returned, options)
    else:
        record["exception"] = exception_info(error)
    record["size"] = _size(record) + _shallow(args) + _shallow(kwargs)
    return record


def _size(record: dict[str, Any]) -> int:
    return len(json.dumps(record, separators=(",", ":"), default=repr))


def _shallow(value: Any) -> int:
    try:
        return int(sys.getsizeof(value)) + sum(int(sys.getsizeof(item)) for item in value)
    except Exception:  # noqa: BLE001 - a hostile __sizeof__ or __iter__
        return 0


def _running_loop() -> Any:
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        return asyncio.events._get_running_loop()
    except Exception:  # noqa: BLE001
        return None


def _row(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("index", "time", "cost", "method", "is_return", "is_exception", "thread", "replay_of", "error")
    return {key: record[key] for key in keys if key in record}


def _method_matches(label: str, wanted: str) -> bool:
    """``-m`` takes module.class.method, with None as the class of a module function (as the reference)."""
    parts = wanted.split(".")
    if len(parts) >= 3 and parts[-2] == "None":
        wanted = ".".join(parts[:-2] + parts[-1:])
    return label == wanted


def run(request: dict[str, Any], ctx: JobContext) -> None:
    action = request.get("action")
    if action == "record":
        _record(request, ctx)
    elif action == "list":
        _list(request, ctx)
    elif action == "show":
        _show(request, ctx)
    elif action == "replay":
        _replay(request, ctx)
    elif action == "delete":
        STORE.delete(int(request["index"]))
        ctx.emit({"kind": "deleted", "indexes": [int(request["index"])]})
    elif action == "delete_all":
        ctx.emit({"kind": "deleted", "count": STORE.clear()})
    else:
        raise CommandFailed("unknown tt action %r" % action)


def _record(request: dict[str, Any], ctx: JobContext) -> None:
    if int(request.get("limit", 0)) < 1:
        raise CommandFailed("-n must be at least 1")
    target = resolve(request["module"], request.get("cls"), request["method"], request.get("nested"))
    code = target.code
    probe = TtProbe(request, target, hooks.code_kind(code))
    ctx.add_cleanup(probe.close)
    max_records = int(request.get("max_records") or DEFAULT_MAX_RECORDS)
    max_bytes = int(float(request.get("max_mb") or DEFAULT_MAX_MB) * 1024 * 1024)
    if max_records < 1 or max_bytes < 1024:
        raise CommandFailed("--max-records must be at least 1 and --max-mb at least 0.001")
    STORE.configure(max_records, max_bytes)
    handle = hooks.install(target.func, probe, target.nested)
    ctx.add_cleanup(handle.remove)
    ctx.emit({"kind": "start", **target.describe(), "limit": probe.limit, "rate": probe.bucket.rate})
    reason = serve(ctx, probe.outbox, probe.full, ctx.emit)
    handle.remove()
    probe.close()
    if reason == "cancelled":
        return
    switched_off = probe.switched_off()
    if switched_off is not None:
        raise CommandFailed(switched_off)
    ctx.emit({"kind": "end", "reason": reason, "shown": probe.accepted, **_budget()})


def _budget() -> dict[str, Any]:
    with STORE.lock:
        return {
            "kept": len(STORE.records),
            "bytes": STORE.bytes,
            "max_records": STORE.max_records,
            "max_bytes": STORE.max_bytes,
            "dropped": STORE.dropped,
        }


def _list(request: dict[str, Any], ctx: JobContext) -> None:
    ctx.emit({"kind": "list", "records": STORE.rows(request.get("method_filter")), **_budget()})


def _show(request: dict[str, Any], ctx: JobContext) -> None:
    record, live = STORE.get(int(request["index"]))
    options = CaptureOptions(
        expand=int(request.get("expand", 1)),
        verbose=bool(request.get("verbose")),
        raw=bool(request.get("raw")),
        budget_ms=budget_of(request, CAPTURE_BUDGET_MS),  # -r/-v capture the live arguments again
    )
    depth = options.depth
    detail = {key: value for key, value in record.items() if key != "size"}
    for key in ("args", "kwargs", "return"):
        if key in detail:
            detail[key] = _trim(detail[key], depth)
    if options.raw or options.verbose:  # -r / -v: the arguments as they are now, shown that way
        detail["args"] = capture(live[1], options)
        detail["kwargs"] = capture({} if live[2] is None else live[2], options)
    detail["shown_depth"] = min(depth, record["depth"])
    ctx.emit({"kind": "detail", **detail})


def _trim(node: dict[str, Any], depth: int) -> dict[str, Any]:
    """The capture tree cut ``depth`` levels down (records are captured deeper than shown by default)."""
    kind = node.get("kind")
    if kind is None:
        return node
    if depth <= 0:  # below -x: on one line, as watch shows it there (the record is already bounded)
        return dict(node, flat=True)
    out = dict(node)
    if kind == "dict":
        out["items"] = [[_trim(key, depth - 1), _trim(value, depth - 1)] for key, value in node["items"]]
    elif kind == "object":
        out["attrs"] = {name: _trim(value, depth - 1) for name, value in node["attrs"].items()}
    else:
        out["items"] = [_trim(item, depth - 1) for item in node["items"]]
    return out


def _replay(request: dict[str, Any], ctx: JobContext) -> None:
    index = int(request["index"])
    record, live = STORE.get(index)
    target, args, kwargs, loop = live
    if target.nested is not None:
        raise CommandFailed("record %d is of a nested function (-nm): it cannot be called on its own" % index)
    started = time.perf_counter()
    returned: Any = None
    error: BaseException | None = None
    try:
        returned = _finish(target.func(*args, **(kwargs or {})), loop, ctx)
    except CommandFailed:
        raise
    except BaseException as exc:
        if is_ours(exc):
            raise  # its budget (--budget-ms), Ctrl-C or detach: the replay ends here
        error = exc.with_traceback(exc.__traceback__.tb_next if exc.__traceback__ else None)  # not our frame
    cost = (time.perf_counter() - started) * 1000.0
    options = CaptureOptions(
        expand=max(int(request.get("expand", 1)), record["depth"]),
        verbose=bool(request.get("verbose")),
        raw=bool(request.get("raw")),
    )
    replayed = make_record(record["method"], args, kwargs, returned, error, cost, options)
    replayed.update(thread_info(threading.get_ident()))
    replayed["replay_of"] = index
    new_index = STORE.add(replayed, live)
    detail = {key: value for key, value in replayed.items() if key != "size"}
    detail["index"] = new_index
    detail["note"] = "ran %s again for real, with the arguments of record %d" % (record["method"], index)
    ctx.emit({"kind": "replay", **detail})


def _finish(result: Any, loop: Any, ctx: JobContext) -> Any:
    """A coroutine or generator replayed is run to its end, so the result is what the call produced."""
    kind = class_name(type(result))
    if kind == "coroutine":
        return _run_async(result, loop, ctx)
    if kind == "async_generator":
        return _run_async(_drain_async(result), loop, ctx)
    if kind == "generator":
        count = 0
        while count < REPLAY_ITEMS:
            try:
                next(result)
            except StopIteration as stop:
                return stop.value
            count += 1
        result.close()
        raise CommandFailed("the replayed generator yielded more than %d items; closed it" % REPLAY_ITEMS)
    return result


async def _drain_async(agen: Any) -> int:
    count = 0
    async for _ in agen:
        count += 1
        if count >= REPLAY_ITEMS:
            break
    return count


def _run_async(coro: Any, loop: Any, ctx: JobContext) -> Any:
    import asyncio  # loaded already in any process that has coroutines

    if loop is not None and loop.is_running() and not loop.is_closed():
        future = asyncio.run_coroutine_threadsafe(coro, loop)  # on the loop it ran on the first time
        deadline = time.monotonic() + REPLAY_TIMEOUT
        try:
            while not future.done():
                if ctx.wait(0.05) or time.monotonic() > deadline:
                    future.cancel()
                    raise CommandFailed("the replay did not finish within %.0f s; cancelled it" % REPLAY_TIMEOUT)
        except BaseException:
            future.cancel()  # stopped while waiting (its budget, Ctrl-C, detach): the loop drops it too
            raise
        return future.result()
    fresh = asyncio.new_event_loop()
    try:
        return fresh.run_until_complete(asyncio.wait_for(coro, REPLAY_TIMEOUT))
    finally:
        fresh.close()
