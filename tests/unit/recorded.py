"""Events recorded from the agent halves in this process, for the golden-text tests.

``record(name)`` runs a scenario through the real session (``agent_harness``)
and normalizes what varies from run to run (times, costs, thread ids, paths,
tt's indexes). ``FP_REGEN_GOLDEN=1`` rewrites the stored events and texts:

    FP_REGEN_GOLDEN=1 ./dev unit tests/unit/test_recorded_golden.py
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import hook_shapes as S
from agent_harness import InProcessAgent

from flight_profiler.commands.stack.client import SPEC as STACK
from flight_profiler.commands.trace.client import SPEC as TRACE
from flight_profiler.commands.tt.client import SPEC as TT
from flight_profiler.commands.watch.client import SPEC as WATCH

HERE = os.path.dirname(os.path.abspath(__file__))
EVENTS = os.path.join(HERE, "data", "recorded_events.json")
GOLDEN = os.path.join(HERE, "data", "golden")
REGEN = os.environ.get("FP_REGEN_GOLDEN") == "1"
WHEN = 1776591338.9535  # a fixed instant; the renderers show local time, the tests fix TZ
COST = 1.25  # ms, every cost

Act = Callable[[], Any]


def _one(spec: Any, line: str, act: Act) -> Callable[[InProcessAgent], list[dict[str, Any]]]:
    """A scenario: start the command, wait until it hooked, act, collect its events."""

    def scenario(agent: InProcessAgent) -> list[dict[str, Any]]:
        job = agent.start(spec.name, spec.parse_line(line))
        agent.wait_for(job, "start")
        act()
        events, end = agent.finish(job)
        assert end["status"] == "ok", end
        return events

    return scenario


def _tt(agent: InProcessAgent) -> list[dict[str, Any]]:
    agent.run("tt", TT.parse_line("-da"))  # records other tests left in this process
    events = _one(TT, "-t hook_shapes plain -n 2", lambda: (S.plain(1), S.plain(2, b=7)))(agent)
    first = events[1]["index"]
    for line in ("-l", "-i %d" % first, "-i %d -p" % (first + 1), "-d %d" % first):
        more, end = agent.run("tt", TT.parse_line(line))
        assert end["status"] == "ok", end
        events += more
    agent.run("tt", TT.parse_line("-da"))
    return _renumber(events, first)


SCENARIOS: dict[str, tuple[Any, Callable[[InProcessAgent], list[dict[str, Any]]]]] = {
    "watch_plain": (WATCH, _one(WATCH, "hook_shapes plain -n 2", lambda: (S.plain(1), S.plain(2, b=3)))),
    "watch_exception": (WATCH, _one(WATCH, "hook_shapes raises -n 1 -e", S.call_raises)),
    "watch_method_expanded": (WATCH, _one(WATCH, "hook_shapes Shapes method -n 1 -x 2", lambda: S.Shapes(4).method(1))),
    "watch_kwonly": (WATCH, _one(WATCH, "hook_shapes kwonly -n 1", lambda: S.kwonly(1, k=2))),
    "trace_nested_calls": (TRACE, _one(TRACE, "hook_shapes outer -n 1 -i 0", lambda: S.outer(2))),
    # not "trace hook_shapes gen -n 1 -i 0" (S.drive_gen): once it spun for good in trace's generator stepping
    # (3.11, loaded host, after the sys.monitoring recorder merged); reported, to come back when fixed
    "stack_of_a_call": (STACK, _one(STACK, "hook_shapes plain -n 1", S.calls_plain)),
    "tt_record_list_show_replay_delete": (TT, _tt),
}


def record(name: str) -> list[dict[str, Any]]:
    agent = InProcessAgent()
    try:
        events = SCENARIOS[name][1](agent)
    finally:
        agent.close()
    return [normalize(event) for event in events]


def normalize(value: Any, key: str = "") -> Any:
    """What varies between runs, made fixed; paths cut to their file name; our own frames dropped."""
    if isinstance(value, dict):
        out = {k: normalize(v, k) for k, v in value.items()}
        if "frames" in out and isinstance(out["frames"], list):
            out["frames"] = [f for f in out["frames"] if f.get("file") == "hook_shapes.py"]
        return out
    if isinstance(value, list):
        return [normalize(item, key) for item in value]
    if key == "time" and isinstance(value, (int, float)):
        return WHEN
    if key in ("cost", "avg", "min", "max", "total_cost") and isinstance(value, (int, float)):
        return COST
    if key == "tid" and isinstance(value, int):
        return 4242
    if key == "bytes" and isinstance(value, int):
        return 1000  # the size of the records' captures depends on the interpreter
    if key == "file" and isinstance(value, str) and value.startswith("/"):
        return os.path.basename(value)
    return value


def _renumber(events: list[dict[str, Any]], first: int) -> list[dict[str, Any]]:
    text = json.dumps(events)
    for offset in range(4):  # tt's indexes go on through the process: the first one recorded is 1000 here
        text = text.replace(str(first + offset), str(1000 + offset))
    return json.loads(text)  # type: ignore[no-any-return]


def stored() -> dict[str, list[dict[str, Any]]]:
    with open(EVENTS) as fh:
        return json.load(fh)  # type: ignore[no-any-return]
