"""watch against a real target, on every interpreter found: every kind of callable, expressions, threads."""

from __future__ import annotations

import re
from typing import Any

import pytest

from inproc_client import client
from instr_helpers import assert_clean, cli_many, instr_target_fixture, of_kind
from interpreters import find_interpreters
from support import RunningTarget

INTERPRETERS = find_interpreters()


target = instr_target_fixture()


def values(event: dict[str, Any]) -> dict[str, Any]:
    return {entry["expr"]: entry["value"] for entry in event["values"]}


def plain(node: dict[str, Any]) -> Any:
    """A capture tree back to a Python value (scalars and containers)."""
    if "v" in node:
        return node["v"]
    if node.get("kind") in ("list", "tuple", "set"):
        return [plain(item) for item in node["items"]]
    if node.get("kind") == "dict":
        return {plain(key): plain(value) for key, value in node["items"]}
    return node.get("r")


# command -> what its one result must show; every reference the target uses goes through an alias
KINDS = {
    "watch __main__ plain -n 1": lambda v: (
        plain(v["kwargs"]) == {"scale": 2, "tag": "t"} and plain(v["return_obj"]) == (plain(v["args"])[0] + 7) * 2
    ),
    "watch __main__ make_counter -nm tick -n 1": lambda v: plain(v["args"]) == [1] and v["return_obj"]["t"] == "int",
    "watch __main__ greet -n 1": lambda v: plain(v["return_obj"]) == "hello bob",
    "watch __main__ Special buy -n 1": lambda v: (
        v["args"]["items"][0]["t"] == "__main__.Special" and v["args"]["len"] == 3 and "kwargs" not in v
    ),  # qty=... binds a positional parameter: it is in args
    "watch __main__ Shop create -n 1": lambda v: v["args"]["items"][0]["r"] == "<class '__main__.Special'>",
    "watch __main__ Shop tax -n 1": lambda v: plain(v["args"]) == [10] and plain(v["return_obj"]) == 2.0,
    "watch __main__ Shop total -n 1": lambda v: v["return_obj"]["t"] == "int",
    "watch __main__ Shop describe -n 1": lambda v: plain(v["return_obj"]) == "<special",
    "watch __main__ countdown -n 1": lambda v: plain(v["args"]) == [3] and plain(v["return_obj"]) == "liftoff",
    "watch __main__ fetch -n 1": lambda v: plain(v["return_obj"]) == plain(v["args"])[0] * 2 + 1,
    "watch __main__ ticks -n 1": lambda v: plain(v["args"]) == [3] and plain(v["return_obj"]) is None,
    "watch __main__ outer_fn -nm inner_fn -n 1": lambda v: len(plain(v["args"])) == 1,
}


def test_every_kind_of_callable(target: RunningTarget) -> None:
    commands = list(KINDS)
    for command, result in zip(commands, cli_many(target.pid, commands)):
        calls = of_kind(result, "call")
        assert len(calls) == 1, (command, result.stdout, result.stderr)
        assert KINDS[command](values(calls[0])), (command, calls[0])
        assert calls[0]["cost"] >= 0
        assert of_kind(result, "end")[0]["shown"] == 1
    assert_clean(target.pid, target.extra["globals"])


def test_cost_covers_the_whole_run_of_coroutines_and_generators(target: RunningTarget) -> None:
    fetch, nap = cli_many(target.pid, ["watch __main__ fetch -n 2", "watch __main__ nap -n 2 -f 'args[0] == 6'"])
    assert all(call["cost"] >= 3.0 for call in of_kind(fetch, "call"))  # fetch awaits 2 ms + 1 ms of sleeps
    assert all(call["cost"] >= 6.0 for call in of_kind(nap, "call"))


@pytest.mark.any_interpreter  # option variants of the watch hook (--expr, -f, -e)
def test_expressions_and_filters(target: RunningTarget) -> None:
    expr, exit_filter, bad_expr, bad_filter, errors_only = cli_many(
        target.pid,
        [
            "watch __main__ Shop buy -n 2 --expr 'target.name, args[1], cost >= 0' -f \"args[0].name == 'special'\"",
            "watch __main__ nap -n 2 -f 'return_obj == 1 and cost < 60000'",
            "watch __main__ plain -n 1 --expr 'args[99]'",
            "watch __main__ plain -n 1 -f 'kwargs[\"missing\"]'",
            "watch __main__ fragile -n 2 -e -x 2",
        ],
    )
    for call in of_kind(expr, "call"):
        assert plain(call["values"][0]["value"]) == ["special", "apple", True]
    assert [plain(values(call)["args"]) for call in of_kind(exit_filter, "call")] == [[1], [1]]
    assert "expression 'args[99]' failed: IndexError" in of_kind(bad_expr, "call", 1)[0]["error"]
    # a failing filter is not a match: reported once, switched off, the command ends non-zero
    assert bad_filter.returncode != 0 and [e.get("kind") for e in bad_filter.results] == ["start"]
    assert len(bad_filter.errors) == 1
    assert "filter 'kwargs[\"missing\"]' raised KeyError: 'missing' in thread" in bad_filter.errors[0]
    assert bad_filter.errors[0].endswith("switched off")
    raised = of_kind(errors_only, "call")
    assert len(raised) == 2
    for call in raised:
        assert call["exception"]["type"] == "ValueError"
        assert call["exception"]["message"] == "bad %d" % plain(values(call)["args"])[0]
        assert [frame["name"] for frame in call["exception"]["frames"]] == ["fragile"]  # no frame of ours
    assert_clean(target.pid, target.extra["globals"])


def test_eight_threads_exactly_n_results(target: RunningTarget) -> None:
    result = client(target.pid, "watch __main__ hot -n 10 --rate 0")
    calls = of_kind(result, "call")
    assert sorted(call["index"] for call in calls) == list(range(1, 11))
    assert {call["thread"] for call in calls} <= {"hot-%d" % i for i in range(8)}
    end = of_kind(result, "end")[0]
    assert end["shown"] == 10 and end["dropped"] == 0
    assert_clean(target.pid)


@pytest.mark.any_interpreter  # --rate: the agent's counter (tests/unit: fake clock)
def test_rate_limit_counts_what_it_skips(target: RunningTarget) -> None:
    end = of_kind(client(target.pid, "watch __main__ hot -n 2 --rate 1"), "end")[0]
    assert end["shown"] == 2
    assert end["skipped"] > 0  # eight threads call it thousands of times a second


def test_from_time_import_time_and_logger_keep_working(target: RunningTarget) -> None:
    calls = of_kind(client(target.pid, "watch __main__ stamped -n 3 -x 2"), "call")
    for call in calls:
        returned = plain(values(call)["return_obj"])
        assert returned["logger"] == "the app's logger" and returned["at"] is True
    after = assert_clean(target.pid, target.extra["globals"])
    assert "time" in after["globals"] and "logger" in after["globals"]


BAD_INPUT = [
    ("watch no.such.module f", "module 'no.such.module' is not loaded"),
    ("watch __main__ NoClass f", "not found"),
    ("watch __main__ Shop nope", "attribute 'nope' not found"),
    ("watch __main__ logger", "is a str, not a Python function"),
    ("watch __main__ Shop", "is a class"),
    ("watch __main__ sleep", "built-in"),
    ("watch __main__ plain --expr 'args['", "bad expression"),
    ("watch __main__ plain -f 'cost >'", "bad expression"),
    ("watch __main__ plain -n 0", "-n must be at least 1"),
    ("watch __main__ plain --rate -1", "--rate must not be negative"),
    ("watch __main__ plain -x 7", "-x must be"),
    ("watch __main__ outer_fn -nm nothing", "defines no nested function 'nothing' (it defines: inner_fn)"),
    ("watch __main__ a b c d", "expected: module [class] method"),
]


@pytest.mark.any_interpreter  # error messages
def test_bad_input_is_one_line_and_hooks_nothing(target: RunningTarget) -> None:
    results = cli_many(target.pid, [command for command, _ in BAD_INPUT])
    for (command, message), result in zip(BAD_INPUT, results):
        assert result.returncode != 0, command
        assert len(result.errors) == 1 and message in result.errors[0], (command, result.errors, result.stdout)
        assert result.results == []
        assert "Traceback" not in result.stdout + result.stderr
    assert_clean(target.pid, target.extra["globals"])


def test_nothing_left_behind(target: RunningTarget) -> None:
    assert_clean(target.pid, target.extra["globals"])


@pytest.mark.any_interpreter  # the client's parsing and rendering
def test_seeds_syntax_unquoted_and_text_shape(target: RunningTarget) -> None:
    """The PyPI page's unquoted filters reach Python as typed; the text is the seeds' EXPR/TYPE/VALUE block."""
    typed = "watch __main__ greet -f args[0]=='bob' and return_obj == 'hello bob' -n 1 --expr return_obj,args"
    text = client(target.pid, typed, "--no-color", json_output=False)
    assert text.returncode == 0, (text.stdout, text.stderr)
    lines = text.stdout.splitlines()
    title = next(index for index, line in enumerate(lines) if line.startswith("\u2713 "))
    assert lines[title - 1] == "\u2500" * 60
    assert re.match(
        r"\u2713 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} method=__main__\.greet cost=\d+\.\d{6}ms is_exp=False result=\{$",
        lines[title],
    )
    assert lines[title + 1 : title + 5] == [
        "  EXPR: return_obj,args",
        "  TYPE: <class 'tuple'>",
        "  VALUE: ('hello bob', ('bob',))",
        "}",
    ]
    assert lines[title + 5].startswith("thread=sync-caller tid=")  # ours, below the seeds' fields
    bad = client(target.pid, "watch __main__ greet -f args[0] = 'bob' -n 1")  # not an expression: said before hooking
    assert bad.returncode == 1 and len(bad.errors) == 1 and "bad expression" in bad.errors[0]
    assert_clean(target.pid, target.extra["globals"])
