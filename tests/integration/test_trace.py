"""trace against a real target, on every interpreter found: the call tree, its options, coroutines, generators."""

from __future__ import annotations

import re
import signal
from typing import Any

import pytest

from inproc_client import client
from instr_helpers import assert_clean, background, cli_many, instr_target_fixture, of_kind
from interpreters import find_interpreters
from support import RunningTarget

INTERPRETERS = find_interpreters()


target = instr_target_fixture()


def shape(node: dict[str, Any]) -> Any:
    """(short name, [children]) without costs: what the tree says about who called whom."""
    name = node["name"].rsplit(".", 1)[-1]
    return (name, [shape(child) for child in node.get("children", [])])


def quick_shape(node: dict[str, Any]) -> tuple[Any, int]:
    """``shape`` without ``len`` leaves, and how many there were.

    A len() takes far less than -i's 0.1 ms, but the thread can lose the CPU (and the GIL) inside
    it on a loaded host: then it is rightly shown. Which calls are quick is not a timing to assert.
    """
    name, children = shape(node)
    kept = [child for child in children if child != ("len", [])]
    grown = [quick_shape(child) for child in node.get("children", []) if shape(child) != ("len", [])]
    return (name, [g[0] for g in grown]), len(children) - len(kept) + sum(g[1] for g in grown)


def names(node: dict[str, Any]) -> list[str]:
    found = [node["name"]]
    for child in node.get("children", []):
        found.extend(names(child))
    return found


def test_call_tree_with_costs_files_and_builtins(target: RunningTarget) -> None:
    full, depth, depth_over_interval, interval, entrance, filtered, nested = cli_many(
        target.pid,
        [
            "trace __main__ Shop order -n 2",
            "trace __main__ Shop order -n 1 -d 2",
            "trace __main__ Shop order -n 1 -d 2 -i 5000",  # the seeds: -d forces the interval to 0
            "trace __main__ Shop order -n 1 -i 5000",
            "trace __main__ nap -n 2 -et 4",
            "trace __main__ nap -n 2 -f args[0] == 6 -i 0",  # unquoted, as the seeds type it
            "trace __main__ outer_fn -nm inner_fn -n 1 -i 0",
        ],
    )
    for tree in of_kind(full, "trace"):
        tree_shape, lens_shown = quick_shape(tree["root"])
        assert tree_shape == (
            "order",
            [("validate", [("sleep", [])]), ("compute_price", [("sleep", []), ("apply_discount", [("sleep", [])])])],
        )
        root = tree["root"]
        assert root["file"].endswith("instr_target.py") and root["line"] > 0
        assert tree["cost"] == root["cost"] >= 4.0
        validate = root["children"][0]
        assert validate["children"][0]["file"] == "<built-in>"
        assert sum(child["cost"] for child in root["children"]) <= root["cost"]
        assert tree["hidden"] + lens_shown >= 2  # the len() calls: hidden under 0.1 ms, unless preempted
    tree = of_kind(depth, "trace")[0]
    root = tree["root"]
    assert shape(root) == ("order", [("validate", []), ("compute_price", [])])  # -d 2: no -i filtering
    assert (tree["deeper"], tree["depth"]) == (5, 2)  # not shown: sleep; len, len, sleep, apply_discount
    assert all("deeper" not in tree for tree in of_kind(full, "trace"))
    assert shape(of_kind(depth_over_interval, "trace")[0]["root"]) == shape(root)
    assert shape(of_kind(interval, "trace")[0]["root"]) == ("order", [])
    assert [tree["cost"] >= 4.0 for tree in of_kind(entrance, "trace")] == [True, True]
    for tree in of_kind(filtered, "trace"):
        assert shape(tree["root"]) == ("nap", [("sleep", [])]) and tree["cost"] >= 6.0  # only nap(6)
    assert shape(of_kind(nested, "trace")[0]["root"]) == ("inner_fn", [])
    assert_clean(target.pid, target.extra["globals"])


def test_coroutine_awaits_and_generator_yields(target: RunningTarget) -> None:
    coroutine, generator, asyncgen = cli_many(
        target.pid,
        [
            "trace __main__ fetch -n 1 -d 3",
            "trace __main__ countdown -n 1 -i 0",
            "trace __main__ ticks -n 1 -i 0",
        ],
    )
    root = of_kind(coroutine, "trace")[0]["root"]
    assert shape(root)[0] == "fetch"
    helper = root["children"][0]
    assert shape(helper)[0] == "helper" and helper["cost"] >= 2.0  # 2 ms of asyncio.sleep
    sleep = helper["children"][0]
    assert shape(sleep)[0] == "sleep"
    assert [child["name"] for child in sleep["children"]] == ["[await] Future"]  # in the frame that waited
    assert "sleep" in [shape(child)[0] for child in root["children"][1:]]
    tree = of_kind(generator, "trace")[0]["root"]
    assert [child["name"] for child in tree["children"]] == ["[yield]"] * 3
    tree = of_kind(asyncgen, "trace")[0]["root"]
    assert names(tree).count("[await] NoneType") == 3 or names(tree).count("[await] None") == 3
    assert_clean(target.pid, target.extra["globals"])


def test_other_hooks_and_recursion_are_seen_through(target: RunningTarget) -> None:
    watch = background(target.pid, "watch __main__ validate -f 'args[0] is None' -n 1")  # a hook inside the tree
    tree = of_kind(client(target.pid, "trace __main__ Shop order -n 1 -i 0"), "trace")[0]["root"]
    watch.proc.send_signal(signal.SIGINT)
    assert watch.proc.wait(10) == 130  # interrupted
    assert [shape(child)[0] for child in tree["children"]] == ["validate", "compute_price"]
    assert all("flight_profiler" not in name and "_fp_" not in name for name in names(tree))
    assert_clean(target.pid, target.extra["globals"])


@pytest.mark.any_interpreter  # error messages
def test_bad_input(target: RunningTarget) -> None:
    commands = [
        ("trace __main__ plain -f 'return_obj > 1'", "uses return_obj, not known here"),
        ("trace __main__ plain -d 0", "-d must be at least 1"),
        ("trace __main__ plain -i -1", "-i must not be negative"),
        ("trace __main__ plain --budget 101", "--budget must be between 0 and 100"),
        ("trace __main__ nope", "not found"),
    ]
    for (command, message), result in zip(commands, cli_many(target.pid, [c for c, _ in commands])):
        assert result.returncode != 0 and len(result.errors) == 1, command
        assert message in result.errors[0], (command, result.errors)
    assert_clean(target.pid, target.extra["globals"])


@pytest.mark.any_interpreter  # the client's rendering
def test_text_output(target: RunningTarget) -> None:
    text = client(target.pid, "trace __main__ Shop order -n 1", "--no-color", json_output=False)
    lines = text.stdout.splitlines()
    title = next(index for index, line in enumerate(lines) if line.startswith("\U0001f50d "))  # the seeds' icon
    assert lines[title - 1] == "\u2500" * 60
    assert re.match(
        r"\U0001f50d \d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} thread=sync-caller tid=\d+ daemon=\w+ cost=\d+\.\d{3}ms$",
        lines[title],
    )
    assert re.match(r"\[[\d.]+ms\] order instr_target.py:\d+$", lines[title + 1])  # bare names, as the seeds
    assert any(line.startswith("├─ [") and "validate instr_target.py:" in line for line in lines)
    assert any("└─ [" in line and "sleep <built-in>" in line for line in lines)


def test_every_qualifying_invocation_is_traced_by_default(target: RunningTarget) -> None:
    """The seeds: trace traces every qualifying invocation up to -n; the --budget guard is off unless asked."""
    result = client(target.pid, "trace __main__ Shop order -n 8 -i 0")
    trees = of_kind(result, "trace")
    assert [tree["index"] for tree in trees] == list(range(1, 9))
    assert all(not tree.get("not_traced_budget") and not tree.get("skipped") for tree in trees)
    end = of_kind(result, "end")[0]
    assert end["not_traced_budget"] == 0 and end["skipped"] == 0
    assert of_kind(result, "start")[0]["budget"] == 0
    assert_clean(target.pid, target.extra["globals"])
