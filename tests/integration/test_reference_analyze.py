"""``vmtool -a referenceAnalyze``: why an object is alive, against a real target on every interpreter.

tests/targets/refs_target.py keeps instances alive in known ways: a module-level dict
(the leak of issue 12), a class attribute, a thread's local variable, a cycle, and a dict
keyed by objects whose ``__hash__``/``__eq__``/``__repr__``/``__getattr__`` count their calls.
"""

from __future__ import annotations

from typing import Any

import pytest

from inproc_client import client
from support import RunningTarget, target_fixture

target = target_fixture("refs_target.py")


def analyze(pid: int, what: str) -> dict[str, Any]:
    result = client(pid, "vmtool -a referenceAnalyze -c __main__ %s" % what)
    assert result.returncode == 0, (result.stdout, result.stderr)
    (event,) = result.results
    assert event["action"] == "referenceAnalyze"
    return event


def path(chain: dict[str, Any]) -> list[str]:
    return [step["via"] for step in chain["steps"]]


def test_a_leak_held_by_a_module_level_dict_names_the_dicts_global(target: RunningTarget) -> None:
    event = analyze(target.pid, "Leak")
    (chain,) = event["chains"]
    assert chain["root"] == {"kind": "global", "name": "__main__.CACHE", "type": "dict"}
    assert chain["steps"] == [{"via": "['k']", "type": "list"}, {"via": "[3]", "type": "__main__.Leak"}]
    assert event["complete"] and event["walked"] > 1000
    text = client(target.pid, "vmtool -a referenceAnalyze -c __main__ Leak", "--no-color", json_output=False)
    assert text.returncode == 0, text.stderr
    assert "__main__.CACHE['k'] -> list[3] -> __main__.Leak" in text.stdout.splitlines()[1]


def test_a_class_attribute_and_a_threads_local_variable_are_roots(target: RunningTarget) -> None:
    (tracked,) = analyze(target.pid, "Tracked")["chains"]
    assert tracked["root"]["name"] == "__main__.Registry" and path(tracked) == [".entries", "[0]"]
    (job,) = analyze(target.pid, "Job")["chains"]
    assert job["root"]["kind"] == "local" and job["root"]["name"] == "pending"
    assert job["root"]["where"] == "worker() in thread 'jobs'" and path(job) == ["[0]"]


def test_a_cycle_gives_each_node_its_shortest_chain(target: RunningTarget) -> None:
    chains = analyze(target.pid, "Node -n 5")["chains"]
    assert sorted(path(chain) for chain in chains) == [["[0]"], ["[0]", ".peer"]]
    assert {chain["root"]["name"] for chain in chains} == {"__main__.RING"}


def test_no_code_of_the_program_runs_while_naming_the_steps(target: RunningTarget) -> None:
    chains = analyze(target.pid, "Hostile -n 5")["chains"]
    vias = sorted(path(chain)[0] for chain in chains)
    assert vias[0] == ".keys()" and vias[1].startswith("[<__main__.Hostile at 0x"), vias
    calls = client(target.pid, "getglobal __main__ CALLS -x 2")
    assert calls.returncode == 0 and calls.results[0]["value"]["items"] == [{"t": "int", "v": 0}], calls.stdout


@pytest.mark.any_interpreter  # a message
def test_a_class_without_instances_says_so(target: RunningTarget) -> None:
    event = analyze(target.pid, "Never")
    assert event["chains"] == [] and event["complete"]
    text = client(target.pid, "vmtool -a referenceAnalyze -c __main__ Never", "--no-color", json_output=False)
    assert text.returncode == 0 and "no live instance of __main__.Never is reachable" in text.stdout


@pytest.mark.any_interpreter  # an option variant (--depth)
def test_depth_bounds_the_search(target: RunningTarget) -> None:
    event = analyze(target.pid, "Tracked --depth 2")  # module dict -> class -> its dict -> list -> instance
    assert event["chains"] == [] and not event["complete"] and event["levels"] == 2
    text = client(
        target.pid, "vmtool -a referenceAnalyze -c __main__ Tracked --depth 2", "--no-color", json_output=False
    )
    assert "no instance of __main__.Tracked within --depth 2 references of a root" in text.stdout


@pytest.mark.any_interpreter  # error messages
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("vmtool -a referenceAnalyze -c __main__ Missing", "'Missing' not found in __main__"),
        ("vmtool -a referenceAnalyze -c no_such_module X", "module 'no_such_module' is not loaded in the target"),
        ("vmtool -a referenceAnalyze -c __main__ CACHE", "__main__.CACHE is a dict, not a class"),
        ("vmtool -a referenceAnalyze", "vmtool -a referenceAnalyze needs -c module class"),
        ("vmtool -a referenceAnalyze -c __main__ Leak -n 0", "-n must be at least 1 or -1 (all), got '0'"),
        ("vmtool -a referenceAnalyze -c __main__ Leak -n -1", "-n must be 1..100 for referenceAnalyze, got -1"),
        ("vmtool -a referenceAnalyze -c __main__ Leak -n 101", "-n must be 1..100 for referenceAnalyze, got 101"),
        ("vmtool -a referenceAnalyze -c __main__ Leak --depth 0", "--depth must be 1..10000, got '0'"),
        ("vmtool -a referenceAnalyze -c __main__ Leak -e instances", "vmtool -a referenceAnalyze takes no -e"),
    ],
)
def test_bad_input_gets_one_line(target: RunningTarget, line: str, message: str) -> None:
    result = client(target.pid, line, "--no-color", json_output=False)
    assert result.returncode != 0
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and message in lines[0], (result.stdout, result.stderr)
