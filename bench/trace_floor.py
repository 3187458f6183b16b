"""The floor of any recorder written in Python: what a traced sub-call costs before any tree is built.

In one process per interpreter, on the 50-sub-call function of bench/trace_inprocess.py, the best
of 7 alternating windows of process CPU time, per sub-call (µs) above the plain run's, and the
throughput kept: a profile function that does nothing and one that appends a timed tuple (switched
on and off per invocation, as trace does), and on 3.12+ sys.monitoring callbacks set once, locally,
on the two code objects: two that do nothing (PY_START, PY_RETURN), three (CALL too, what a recorder
needs to see C calls), two that append a timed tuple, and two or three that first look the thread
up (what a recorder shared by all threads must do). "Kept" >= 35 % on this method needs at most
0.094 µs per sub-call on a 2.5 µs invocation. Nothing is asserted; it appends its run to
bench/RESULTS-trace.md.

    .venv/bin/python bench/trace_floor.py [--pythons 3.8,3.12,3.13,3.14]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SUB_CALLS = 50


def leaf(i: int) -> int:
    return i * 2


def handle(n: int) -> int:
    total = 0
    for i in range(n):
        total += leaf(i)
    return total


def _loop(body: Any, reps: int = 2000) -> float:
    started = time.process_time()
    for _ in range(reps):
        body()
    return (time.process_time() - started) / reps


def _variants() -> dict[str, Any]:
    events: list[Any] = []
    append = events.append
    clock = time.perf_counter

    def nop(frame: Any, event: str, arg: Any) -> None:
        pass

    def record(frame: Any, event: str, arg: Any) -> None:
        append((frame, event, arg, clock()))

    def profiled(function: Any) -> Any:
        def body() -> None:
            sys.setprofile(function)
            handle(SUB_CALLS)
            sys.setprofile(None)
            del events[:]

        return body

    found: dict[str, Any] = {
        "plain": lambda: handle(SUB_CALLS),
        "profile function, nothing": profiled(nop),
        "profile function, append": profiled(record),
    }
    if hasattr(sys, "monitoring"):
        found.update(_monitoring_variants(events))
    return found


def start_nothing(code: Any, offset: int) -> None:
    pass


def return_nothing(code: Any, offset: int, value: Any) -> None:
    pass


def call_nothing(code: Any, offset: int, callee: Any, arg0: Any) -> None:
    pass


def _monitoring_variants(events: list[Any]) -> dict[str, Any]:
    runs: dict[int, list[Any]] = {}
    get, ident, clock, append = runs.get, threading.get_ident, time.perf_counter, events.append

    def start_append(code: Any, offset: int) -> None:
        append((None, "call", code, clock()))

    def return_append(code: Any, offset: int, value: Any) -> None:
        append((None, "return", None, clock()))

    def start_thread(code: Any, offset: int) -> None:
        run = get(ident())
        if run is not None:
            run.append((None, "call", code, clock()))

    def return_thread(code: Any, offset: int, value: Any) -> None:
        run = get(ident())
        if run is not None:
            run.append((None, "return", None, clock()))

    def call_thread(code: Any, offset: int, callee: Any, arg0: Any) -> None:
        if type(callee) is len:  # never: the Python callee's test a recorder makes first
            pass

    def local(start: Any, returned: Any, call: Any) -> Any:
        def body() -> None:
            runs[me] = events
            handle(SUB_CALLS)
            del runs[me]
            del events[:]

        body.callbacks = (start, returned, call)  # type: ignore[attr-defined]
        return body

    me = threading.get_ident()
    return {
        "local events, 2 callbacks, nothing": local(start_nothing, return_nothing, None),
        "local events, 3 callbacks (CALL), nothing": local(start_nothing, return_nothing, call_nothing),
        "local events, 2 callbacks, append": local(start_append, return_append, None),
        "local events, 2 callbacks, thread look-up + append": local(start_thread, return_thread, None),
        "local events, 3 callbacks, thread look-up + append": local(start_thread, return_thread, call_thread),
    }


def _set_local(body: Any, on: bool) -> None:
    monitoring: Any = getattr(sys, "monitoring")  # noqa: B009 - 3.12+: not in the 3.8 stubs mypy checks against
    events = monitoring.events
    tool = 4
    start, returned, call = body.callbacks
    if on:
        monitoring.use_tool_id(tool, "trace_floor")
        monitoring.register_callback(tool, events.PY_START, start)
        monitoring.register_callback(tool, events.PY_RETURN, returned)
        monitoring.register_callback(tool, events.CALL, call)
    wanted = (events.PY_START | events.PY_RETURN | (events.CALL if call is not None else 0)) if on else 0
    for code in (handle.__code__, leaf.__code__):
        monitoring.set_local_events(tool, code, wanted)
    if not on:
        for event in (events.PY_START, events.PY_RETURN, events.CALL):
            monitoring.register_callback(tool, event, None)
        monitoring.free_tool_id(tool)


def child() -> None:
    variants = _variants()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(7):
        for name, body in variants.items():
            local = hasattr(body, "callbacks")
            if local:
                _set_local(body, True)
            try:
                times[name].append(_loop(body))
            finally:
                if local:
                    _set_local(body, False)
    base = min(times.pop("plain"))
    out = {name: [(min(found) - base) / SUB_CALLS * 1e6, base / min(found)] for name, found in times.items()}
    out["plain"] = [base * 1e6, 1.0]
    print(json.dumps(out))


def main() -> int:
    if sys.argv[1:] == ["--child"]:
        child()
        return 0
    sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "tests")]
    from stamp import stamp

    from interpreters import find_interpreters

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythons", default="3.8,3.12,3.13,3.14", help="interpreter ids (tests/interpreters.py)")
    args = parser.parse_args()
    lines = [
        "| Python | plain invocation, µs | recorder | µs per sub-call | throughput kept |",
        "|---|---|---|---|---|",
    ]
    for label, path in find_interpreters():
        if label not in args.pythons.split(","):
            continue
        out = subprocess.run([path, __file__, "--child"], capture_output=True, text=True, check=True, timeout=600)
        found = json.loads(out.stdout.strip().splitlines()[-1])
        plain = found.pop("plain")[0]
        for name, (cost, kept) in found.items():
            lines.append("| %s | %.2f | %s | %.3f | %.1f %% |" % (label, plain, name, cost, kept * 100.0))
            print(lines[-1], flush=True)
    with open(os.path.join(HERE, "RESULTS-trace.md"), "a") as fh:
        fh.write("\n## The floor of a recorder in Python (%s)\n\n" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        fh.write(stamp())
        fh.write("\nProduced by `bench/trace_floor.py --pythons %s`; not a test. " % args.pythons)
        fh.write(" ".join(__doc__.split("\n\n", 2)[1].split()) + "\n\n")
        fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
