"""The group layer's pure parts: which command lines are group ones, -p, the attach gate's cap, merges."""

from __future__ import annotations

import os
import threading
import time

import pytest

from flight_profiler.errors import UsageError
from flight_profiler.fleet import wants_fleet
from flight_profiler.fleet.merge import MEM_SUMMARY, STACK, summary
from flight_profiler.fleet.runner import Gate
from flight_profiler.fleet.select import Target, parse_pids


@pytest.mark.parametrize(
    "words",
    [["--tree", "12"], ["--tree=12"], ["-p", "1,2"], ["-p1,2"], ["--all"], ["--select", "x"], ["--pids", "3"]],
)
def test_group_command_lines(words: list[str]) -> None:
    assert wants_fleet([*words, "--cmd", "stack"])


@pytest.mark.parametrize("words", [["12"], ["12", "--cmd", "-p"], ["12", "--cmd", "--all"], ["12", "--timeout", "3"]])
def test_single_target_command_lines(words: list[str]) -> None:
    assert not wants_fleet(words)


def test_pids() -> None:
    assert parse_pids("1,2 3,,") == [1, 2, 3]
    for bad in ("", "1,a", "0", "-3"):
        with pytest.raises(UsageError):
            parse_pids(bad)


def test_the_gate_never_lets_more_than_its_limit_through() -> None:
    gate = Gate(3, stagger=0.001)
    inside, most = [0], [0]
    lock = threading.Lock()

    def one() -> None:
        with gate.slot(stagger=True):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.01)  # hold the slot so the others pile up behind it
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 3


def _stack(where: str) -> dict:
    frames = [{"name": "<module>", "file": "/app/x.py", "line": 1, "native": False}]
    frames.append({"name": where, "file": "/app/x.py", "line": 10 if where == "poll" else 20, "native": False})
    return {
        "pid": 0,
        "threads": [{"tid": 1, "name": "MainThread", "owns_gil": False, "active": False, "frames": frames}],
    }


def test_stack_names_the_outlier_and_counts_the_rest() -> None:
    targets = [Target(100, 1, "master", None), *(Target(pid, 100, "worker", None) for pid in range(101, 109))]
    results = {pid: [_stack("poll")] for pid in range(100, 109)}
    results[104] = [_stack("commit")]
    outcome = summary("stack", STACK, targets, results, {})
    merged = outcome.data["merged"]
    assert "7 of 8 workers in `poll` (x.py:10)" in merged["summary"]
    assert "pid 104 in `commit` (x.py:20)" in merged["summary"]
    assert [item["pid"] for item in merged["outliers"]] == [104]
    assert outcome.data["failed"] == [] and outcome.render is not None and len(outcome.render()) == 1


def test_a_worker_on_another_line_of_the_same_functions_is_not_an_outlier() -> None:
    """A polling loop sampled on its test instead of its sleep (the flake of test_fleet.py on a loaded host)."""
    targets = [Target(pid, 1, "worker", None) for pid in (11, 12, 13, 14)]
    results = {pid: [_stack("poll")] for pid in (11, 12, 13, 14)}
    results[12][0]["threads"][0]["frames"][-1]["line"] = 11
    results[14] = [_stack("commit")]
    merged = summary("stack", STACK, targets, results, {}).data["merged"]
    assert [item["pid"] for item in merged["outliers"]] == [14], merged
    assert "3 of 4 workers in `poll` (x.py:10)" in merged["summary"]


def test_a_failed_target_is_left_out_of_the_merge_and_named() -> None:
    targets = [Target(pid, 1, "worker", rank) for rank, pid in enumerate((11, 12, 13))]
    results = {11: [_stack("poll")], 12: [_stack("poll")], 13: []}
    outcome = summary("stack", STACK, targets, results, {13: "pid 13 exited"})
    assert outcome.data["failed"] == [{"pid": 13, "error": "pid 13 exited"}]
    assert "2 of 2 workers" in outcome.data["merged"]["summary"] and "1 failed" in outcome.line


def test_mem_summary_marks_the_process_that_stands_out() -> None:
    targets = [Target(pid, 1, "worker", None) for pid in (1, 2, 3, 4)]

    def event(leaks: int) -> dict:
        rows = [{"type": "dict", "count": 5000, "size": 1}, {"type": "app.Leak", "count": leaks, "size": 1}]
        return {"action": "summary", "objects": 5000 + leaks, "size": 1, "distinct": 2, "seconds": 0.1, "types": rows}

    results = {1: [event(10)], 2: [event(12)], 3: [event(50000)], 4: [event(9)]}
    outcome = summary("mem", MEM_SUMMARY, targets, results, {})
    assert outcome.data["merged"]["outliers"] == [{"pid": 3, "types": ["app.Leak"]}]
    assert "pid 3 stands out (app.Leak)" in outcome.line


def test_the_client_never_selects_itself() -> None:
    from flight_profiler.fleet.select import Selection, select

    [me] = select(Selection(pids=[os.getpid()]))
    assert me.problem is not None and "this flight_profiler client" in me.problem  # left out, failing alone
    with pytest.raises(UsageError):
        select(Selection(tree=os.getpid()))  # our own tree starts with us: nothing left


def test_a_tree_whose_root_is_not_python_is_its_python_descendants() -> None:
    """A container's pid 1 or a service's launcher is often a shell (``k8s ... -- --tree 1``): it was
    refused as "not Python"; its Python processes below are the group. A tree with none is refused."""
    import subprocess
    import sys
    import time

    from flight_profiler.fleet.select import Selection, select

    shell = subprocess.Popen(["sh", "-c", '"$0" -c "import time; time.sleep(60)" & wait', sys.executable])
    try:
        deadline = time.monotonic() + 20
        targets: list[Target] = []
        while time.monotonic() < deadline:
            targets = (
                [t for t in select(Selection(tree=shell.pid)) if t.pid != shell.pid] if _has_child(shell.pid) else []
            )
            if targets:
                break
            time.sleep(0.05)
        assert [t.python is not None for t in targets] == [True], targets  # the python child, not the shell
        assert all(t.pid != shell.pid for t in select(Selection(tree=shell.pid)))
    finally:
        subprocess.run(["pkill", "-P", str(shell.pid)], check=False)
        shell.kill()
        shell.wait()
    lonely = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(UsageError, match="no Python process in that tree"):
            select(Selection(tree=lonely.pid))
    finally:
        lonely.kill()
        lonely.wait()


def _has_child(pid: int) -> bool:
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as fh:
            return bool(fh.read().split())
    except OSError:
        return False
