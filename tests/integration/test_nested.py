"""``-nm`` on every shape of nested function, on every interpreter found; checked from inside the target.

Shapes: no free variable (the reference's own example, which once made the
hook call itself until RecursionError), closure, lambda, a method of a class
defined in the function, two levels, one name defined twice, a generator,
a coroutine, and functions made before the hook (a closure, a class).
After each command every function and nested code is the exact object it
started as, no function anywhere runs a hook's code, and the target's callers
saw no error.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from instr_helpers import background, cli_many, evaluate, of_kind
from interpreters import find_interpreters
from support import RunningTarget, cli, start_target, wait_until

INTERPRETERS = find_interpreters()
NEVER = "-f 'args[0] is None' -n 5"


@pytest.fixture(scope="module", params=INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def target(request: pytest.FixtureRequest) -> Iterator[RunningTarget]:
    running = start_target(request.param[1], "nested_target.py")
    assert state(running.pid)["errors"] == []  # attached once, before the commands that run side by side
    yield running
    cli(running.pid, "detach")
    assert running.healthy()  # exits 0 only when the callers never saw an error
    running.stop()


def state(pid: int) -> dict[str, Any]:
    found: dict[str, Any] = evaluate(pid, "m.state()")
    return found


def assert_clean(pid: int) -> None:
    before = state(pid)["rounds"]
    assert wait_until(lambda: state(pid)["rounds"] > before + 2)  # the callers still run
    now = state(pid)
    assert now["errors"] == [], now
    assert now["changed"] == [] and now["stray"] == [], now
    assert now["hooked_functions"] == [], now


def plain(node: dict[str, Any]) -> Any:
    if "v" in node:
        return node["v"]
    if node.get("kind") in ("list", "tuple"):
        return [plain(item) for item in node["items"]]
    return node.get("r")


def calls(result: Any) -> list[tuple[Any, Any]]:
    """(args, return value) of each call shown."""
    out = []
    for event in of_kind(result, "call"):
        found = {entry["expr"]: entry["value"] for entry in event["values"]}
        out.append((plain(found["args"]), plain(found["return_obj"])))
    return out


SHAPES = {
    "watch __main__ no_free -nm inner_work -n 2": lambda a, r: r == a[0] * 2,
    "watch __main__ closure -nm add -n 2": lambda a, r: a == [1] and r >= 2,
    "watch __main__ with_lambda -nm '<lambda>' -n 2": lambda a, r: r == a[0] * 3,
    "watch __main__ with_class -nm Helper.scale -n 2": lambda a, r: r == "<" + str(a[1] * 2),
    "watch __main__ levels -nm a.b -n 2": lambda a, r: r == a[0] + 1,
    "watch __main__ levels -nm a -n 2": lambda a, r: r == (a[0] + 1) * 2,
    "watch __main__ make_a -nm a.b -n 2": lambda a, r: r == a[0] * 5,  # only the a made before the hook runs
    "watch __main__ make_class -nm Kept.value -n 2": lambda a, r: r == a[1] - 1,  # a class made before the hook
    "watch __main__ gen_outer -nm numbers -n 2": lambda a, r: a == [3] and r == "done",
    "watch __main__ coro_outer -nm later -n 2": lambda a, r: r == a[0] + 1,
    "watch __main__ ambiguous -nm first.step -n 2": lambda a, r: r == a[0],
    "watch __main__ ambiguous -nm second.step -n 2": lambda a, r: r == -a[0],
}


def test_every_shape(target: RunningTarget) -> None:
    commands = list(SHAPES)
    for command, result in zip(commands, cli_many(target.pid, commands)):
        shown = calls(result)
        assert len(shown) == 2, (command, result.stdout, result.stderr)
        for args, returned in shown:
            assert SHAPES[command](args, returned), (command, args, returned)
    assert_clean(target.pid)


def test_a_name_defined_twice_hooks_both(target: RunningTarget) -> None:
    result = cli(target.pid, "watch __main__ twice -nm pick -n 6")
    start = of_kind(result, "start")[0]
    assert start["callable"] == "2 nested functions" and start["target"] == "__main__.twice.pick"
    shown = calls(result)
    assert {r - a[0] for a, r in shown} == {100, -100}, shown  # the caller alternates the two branches
    assert_clean(target.pid)


def test_a_name_found_at_any_depth_when_it_is_unique(target: RunningTarget) -> None:
    result = cli(target.pid, "watch __main__ levels -nm b -n 1")
    assert of_kind(result, "start")[0]["target"] == "__main__.levels.a.b"
    assert [r == a[0] + 1 for a, r in calls(result)] == [True]
    assert_clean(target.pid)


@pytest.mark.any_interpreter  # error messages
@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            "watch __main__ ambiguous -nm step -n 1",
            "ambiguous in __main__.ambiguous: it could be first.step, second.step",
        ),
        ("watch __main__ with_class -nm Helper -n 1", "is a class: name one of its methods"),
        ("watch __main__ no_free -nm nope -n 1", "defines no nested function 'nope' (it defines: inner_work)"),
        ("trace __main__ levels -nm a.c -n 1", "(it defines: a, a.b)"),
    ],
)
def test_bad_names_are_one_line_errors(target: RunningTarget, command: str, message: str) -> None:
    result = cli(target.pid, command)
    assert result.returncode != 0
    assert len(result.errors) == 1 and message in result.errors[0], result.errors
    assert "Traceback" not in result.stderr


def test_trace_and_tt_on_nested_shapes(target: RunningTarget) -> None:
    traced, recorded, hooked_twice = cli_many(
        target.pid,
        [
            "trace __main__ no_free -nm inner_work -n 1 -i 0",
            "tt -t __main__ with_class -nm Helper.scale -n 1",
            "trace __main__ twice -nm pick -n 2 -i 0",
        ],
    )
    tree = of_kind(traced, "trace")[0]
    assert tree["root"]["name"].split(".")[-1] == "inner_work", tree  # a qualified name on 3.11+
    assert len(of_kind(recorded, "record")) == 1
    assert [t["root"]["name"].split(".")[-1] for t in of_kind(hooked_twice, "trace")] == ["pick", "pick"]
    assert_clean(target.pid)


def test_ctrl_c_and_detach_restore_every_code_object(target: RunningTarget) -> None:
    running = [
        background(target.pid, "watch __main__ %s %s" % (where, NEVER))
        for where in (
            "no_free -nm inner_work",
            "levels -nm a",
            "levels -nm a.b",
            "make_a -nm a.b",
            "make_class -nm Kept.value",
            "with_class -nm Helper.scale",
        )
    ]
    now = state(target.pid)
    assert set(now["changed"]) == {"no_free", "levels", "make_a", "make_class", "with_class"}, now
    assert "make_a.<locals>.a" in now["stray"], now  # the a made before the hook was switched
    running[0].proc.send_signal(signal.SIGINT)
    assert running[0].proc.wait(10) == 130  # Ctrl-C during a --cmd
    assert "no_free" not in state(target.pid)["changed"]
    assert cli(target.pid, "detach").returncode == 0
    for command in running[1:]:
        command.proc.wait(10)
    assert_clean(target.pid)
