"""The shared heap walk (``mem summary``, ``vmtool -a getInstances``) on objects only a local variable holds.

From 3.11 a running frame does not visit its local variables for ``gc``, so a
walk from the roots used to miss objects held only by a sleeping thread's local
list (0 of 20,000 on 3.14, a few thousand on 3.11: those still young).
"""

from __future__ import annotations

import shlex

from inproc_client import client
from interpreters import find_interpreters
from support import RunningTarget, target_fixture

INTERPRETERS = find_interpreters()
N = 20000


target = target_fixture("locals_target.py", str(N))


def only(result: object) -> dict:
    assert result.returncode == 0, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    results = result.results  # type: ignore[attr-defined]
    assert len(results) == 1, results
    return results[0]


def test_mem_summary_counts_objects_held_by_a_local_variable(target: RunningTarget) -> None:
    event = only(client(target.pid, "mem summary --limit 10000"))
    counts = {row["type"]: row["count"] for row in event["types"]}
    assert counts.get("__main__.Held") == N


def test_get_instances_finds_objects_held_by_a_local_variable(target: RunningTarget) -> None:
    event = only(client(target.pid, "vmtool -a getInstances -c __main__ Held -n 2"))
    assert event["count"] == N and len(event["instances"]) == 2
    event = only(client(target.pid, "vmtool -a getInstances -c __main__ Held -e len(set(h.index for h in instances))"))
    assert event["count"] == N and event["value"]["v"] == N  # each instance once


def test_the_walk_leaves_the_frames_locals_working(target: RunningTarget) -> None:
    # twice: a walk must not leave the worker's variables changed or its locals() stale
    for _ in range(2):
        assert only(client(target.pid, "vmtool -a getInstances -c __main__ Held -n 1"))["count"] == N
    source = "import sys; [len(f.f_locals['held']) for t, f in sys._current_frames().items() if 'held' in f.f_locals]"
    value = only(client(target.pid, "console -c %r" % source))["value"]
    assert str(N) in str(value)


def test_get_instances_budget_is_the_expressions_own(target: RunningTarget) -> None:
    # the expression, not the walk before it, runs under --budget-ms; an overrun is stopped and said so
    long_sum = shlex.quote("sum(x for x in range(10**12)) + len(instances)")
    stopped = client(target.pid, "vmtool -a getInstances -c __main__ Held -e %s --budget-ms 300" % long_sum)
    assert stopped.returncode != 0 and "ran over its budget of 300 ms: stopped" in stopped.errors[0], stopped.stdout
    assert only(client(target.pid, "vmtool -a getInstances -c __main__ Held -n 1"))["count"] == N  # the agent goes on
