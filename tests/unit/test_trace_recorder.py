"""trace's recorders (commands/trace/agent.py) under every interpreter: the same tree from each.

tests/targets/trace_recorder_check.py runs in a fresh interpreter with the sources on its path,
traces the same invocations with the profile-function recorder and, on 3.12+, the sys.monitoring
one, and reports the trees; the shapes, the -i/-d handling and the hidden counts must agree, the
tool id must be free afterwards, a tool id somebody else holds must never be taken, and the
thread's own profiler must be running again (beside ours, on 3.12+) when the trace ends.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from interpreters import find_interpreters

INTERPRETERS = find_interpreters()
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "targets", "trace_recorder_check.py")
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")

LEAF = ["leaf", [["len", []]]]
FULL = [
    "handle",
    [LEAF, LEAF, LEAF, LEAF, ["sum", [["gen", [LEAF, LEAF, LEAF]]]], ["fails", []], ["max", []], ["sorted", []]],
]
DEPTH_2 = ["handle", [["leaf", []]] * 4 + [["sum", []], ["fails", []], ["max", []], ["sorted", []]]]
CALLS_UNDER_ROOT = 18  # 4 leaf + 4 len, sum, gen (resumed: one node), 3 leaf + 3 len, fails, max, sorted
BELOW_DEPTH_2 = 8  # said, not shown: 4 len under the leaves, gen under sum once per resumption (4)


@pytest.fixture(scope="module", params=INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def report(request: pytest.FixtureRequest) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([request.param[1], SCRIPT], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_every_recorder_builds_the_same_tree(report: dict[str, Any]) -> None:
    monitoring = tuple(report["version"]) >= (3, 12)
    expected = {
        "all": (FULL, 0, 0),
        "depth": (DEPTH_2, 0, BELOW_DEPTH_2),
        "none": (["handle", []], CALLS_UNDER_ROOT, 0),
    }
    for name, (shape, hidden, deeper) in expected.items():
        traces = report[name]
        assert len(traces) == (2 if monitoring else 1)
        for trace in traces:
            assert (trace["shape"], trace["hidden"], trace["deeper"], trace["broken"]) == (shape, hidden, deeper, False)
        assert [trace["monitor"] for trace in traces] == ([False, True] if monitoring else [False])


def test_a_big_invocation_is_built_in_parts_to_the_same_counts(report: dict[str, Any]) -> None:
    # 4000 mid + 12000 leaf + 12000 len: kept up to MAX_NODES (20000), the calls beyond counted where
    # their parent was kept (those under a left-out call are not), as before the recorder was split;
    # -d 2 keeps wide and its 4000 mid, and says the 12000 leaf calls below (not their len calls)
    expected = {"all": [20001, 0, 1145, 0, False], "none": [1, 28000, 0, 0, False], "depth": [4001, 0, 0, 12000, False]}
    for name, counts in expected.items():
        assert all(found == counts for found in report["big"][name]), (name, report["big"][name])


def test_generators_and_coroutines_step_the_same_with_every_recorder(report: dict[str, Any]) -> None:
    yields = [LEAF, ["[yield]", []]] * 3
    for shape, broken in report["generator"]:
        assert (shape, broken) == (["countdown", yields], False)
    coroutines = report["coroutine"]
    for shape, broken in coroutines:
        assert shape[0] == "outer" and not broken
        assert shape[1][0] == LEAF and shape[1][1][0] == "inner" and shape[1][-1] == LEAF
        assert any(node[0].startswith("[await]") for node in _walk(shape))
    assert all(shape == coroutines[0][0] for shape, _ in coroutines)  # the same tree from each


def _walk(shape: list[Any]) -> list[list[Any]]:
    found = [shape]
    for child in shape[1]:
        found.extend(_walk(child))
    return found


def test_tool_ids_are_freed_and_never_taken_from_another_tool(report: dict[str, Any]) -> None:
    if tuple(report["version"]) < (3, 12):
        pytest.skip("no sys.monitoring before 3.12")
    assert report["held_after"] == []
    assert report["taken_beside"] not in (None, 3, 0, 1)  # 3 was somebody's; 0 and 1 are never ours
    assert report["somebody_kept"] == "somebody"
    assert report["held_at_end"] == [3]


def test_the_threads_own_profiler_is_back(report: dict[str, Any]) -> None:
    assert report["own_profiler_back"] is True
    assert report["own_profiler_shape"] == [
        "handle",
        [LEAF, ["sum", [["gen", [LEAF, LEAF, LEAF]]]], ["fails", []], ["max", []], ["sorted", []]],
    ]
    # 3.12+: ours records with its own tool and the thread's profiler keeps running meanwhile
    assert report["own_profiler_saw_calls"] is (tuple(report["version"]) >= (3, 12))


def test_the_events_held_on_while_tracing_often_give_the_same_trees_and_are_let_go(report: dict[str, Any]) -> None:
    if tuple(report["version"]) < (3, 12):
        pytest.skip("switching a profile function re-instruments nothing before 3.12: nothing is held")
    held = report["held"]
    assert held["started"] is True  # back-to-back invocations: a holder thread keeps the events on
    assert held["shape"] == FULL and held["same_trees"] is True  # the trees are the same before and while held
    assert held["own_profile_back"] is True
    assert held["let_go_when_idle"] is True  # nothing traced any more: the holder lets go by itself
    assert held["held_again"] is True
    assert held["gone_after_stop"] is True  # the command's end
    assert held["gone_at_detach"] is True  # detach, before any job's cleanup ran
    assert held["holder_threads_left"] == []
    assert held["no_thread_to_be_had"] == [1, True, True]  # counted once as ours, never raised, same tree
