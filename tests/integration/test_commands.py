"""The state commands against a real, really attached target, on every interpreter found."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from inproc_client import client
from interpreters import find_interpreters
from support import CliResult, RunningTarget, cli, target_fixture

INTERPRETERS = find_interpreters()


target = target_fixture("service_target.py", "event")


def only(result: object, status: int = 0) -> dict:
    """The one result; ``status`` 1 where an expression or statement failed (the skill's exit status)."""
    assert result.returncode == status, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    results = result.results  # type: ignore[attr-defined]
    assert len(results) == 1, results
    return results[0]


def test_getglobal_dict_with_depth(target: RunningTarget) -> None:
    value = only(client(target.pid, "getglobal __main__ CONFIG -x 2"))["value"]
    assert value["kind"] == "dict" and value["len"] == 3
    items = {k["v"]: v for k, v in value["items"]}
    assert items["limits"]["kind"] == "list"
    assert [node["v"] for node in items["limits"]["items"]] == [1, 2, 3]
    assert "r" in items["nested"]["items"][0][1]  # depth 2 stops below "nested"


@pytest.mark.any_interpreter  # option variants of getglobal
def test_getglobal_class_attribute_and_expression(target: RunningTarget) -> None:
    assert only(client(target.pid, "getglobal __main__ Widget registry"))["value"]["items"][0][1]["v"] == "widget"
    event = only(
        client(target.pid, "getglobal __main__ CONFIG -e \"target['nested']['deep']['deeper']['deepest'] * 2\"")
    )
    assert event["value"]["v"] == 84


@pytest.mark.any_interpreter  # error messages
def test_expression_errors(target: RunningTarget) -> None:
    event = only(client(target.pid, "getglobal __main__ CONFIG -e \"target['missing']\""), 1)
    assert event["error"].startswith("KeyError")
    result = client(target.pid, 'getglobal __main__ CONFIG -e "target["')
    assert result.returncode != 0
    assert result.errors == [result.errors[0]] and "bad expression" in result.errors[0]


@pytest.mark.any_interpreter  # error messages
@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("getglobal no.such.module x", "module 'no.such.module' is not loaded"),
        ("getglobal __main__ CONFIGG", "did you mean CONFIG"),
        ("getglobal __main__ NoClass x", "not found"),
    ],
)
def test_bad_input_is_one_line(target: RunningTarget, command: str, message: str) -> None:
    assert_one_error_line(client(target.pid, command), message)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("getglobal __main__ CONFIG -x 9", "-x must be"),
        ("nosuchcommand", "unknown command"),
        ("vmtool -a getInstances", "needs -c"),
    ],
)
def test_bad_command_lines_are_one_line(command: str, message: str) -> None:
    """Refused by the client's parser before any attach: once, not per interpreter (our own pid never
    gets an agent: nothing gets that far)."""
    assert_one_error_line(cli(os.getpid(), command), message)


def assert_one_error_line(result: CliResult, message: str) -> None:
    assert result.returncode != 0
    assert len(result.errors) == 1 and message in result.errors[0], result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_values_are_contained(target: RunningTarget) -> None:
    text = only(client(target.pid, "getglobal __main__ LONG_TEXT"))["value"]
    assert text["cut"] == [256, 5003] and text["v"].endswith("END")
    assert "repr failed" in only(client(target.pid, "getglobal __main__ bad"))["value"]["error"]
    cycle = only(client(target.pid, "getglobal __main__ cycle -x 4"))["value"]
    assert cycle["items"][0]["cycle"] is True
    verbose = only(client(target.pid, "getglobal __main__ LONG_TEXT -v"))["value"]
    assert verbose["v"] == "a" * 5000 + "END"
    raw = only(client(target.pid, "getglobal __main__ CONFIG -r"))["value"]
    assert raw["r"].startswith("{'name': 'svc'")


def test_vmtool(target: RunningTarget) -> None:
    event = only(client(target.pid, "vmtool -a getInstances -c __main__ Widget -n 3"))
    assert event["count"] == 7 and len(event["instances"]) == 3
    assert event["instances"][0]["attrs"]["label"]["v"].startswith("w")
    unquoted = only(
        client(target.pid, "vmtool -a getInstances -c __main__ Widget -e sorted(w.index for w in instances)")
    )
    event = only(
        client(target.pid, 'vmtool -a getInstances -c __main__ Widget -e "sorted(w.index for w in instances)"')
    )
    assert unquoted["value"] == event["value"]  # the vmtool skill's unquoted form is the same expression
    assert [n["v"] for n in event["value"]["items"]] == list(range(7))
    gc_event = only(client(target.pid, "vmtool -a forceGc"))
    assert gc_event["collected"] >= 0
    gc_text = client(target.pid, "vmtool -a forceGc", "--no-color", json_output=False).stdout.splitlines()
    assert re.match(r"Gc execute successfully, totally \d+ unreachable objects are freed\.$", gc_text[0])  # the seeds'
    deep = cli(
        target.pid, "vmtool -a getInstances -c __main__ Widget -e len(instances) -x 6", "--no-color", json_output=False
    )
    assert deep.stdout.splitlines()[:3] == ["EXPR: len(instances)", "TYPE: <class 'int'>", "VALUE: 7"]


def test_module(target: RunningTarget) -> None:
    script = os.path.join(os.path.dirname(__file__), "..", "targets", "service_target.py")
    assert only(client(target.pid, "module %s" % script))["modules"] == ["__main__"]
    assert only(client(target.pid, "module /nonexistent/thing.py"))["modules"] == []


def test_console(target: RunningTarget) -> None:
    event = only(client(target.pid, "console -c \"print('hi'); x = 40\""))
    assert event["output"] == "hi\n" and event["value"] is None
    assert only(client(target.pid, "console -c \"import __main__; __main__.CONFIG['name']\""))["value"] == "'svc'"
    event = only(client(target.pid, 'console -c "1/0"'), 1)
    assert "ZeroDivisionError" in event["error"] and "Traceback" in event["error"]
    assert (
        only(client(target.pid, "console -c import __main__; __main__.CONFIG['name']"))["value"] == "'svc'"
    )  # unquoted
    assert only(client(target.pid, "console -c CONFIG['name']"))["value"] == "'svc'"  # sees __main__'s globals
    rebound = only(client(target.pid, "console -c CONFIG = 1; import __main__; CONFIG, type(__main__.CONFIG).__name__"))
    assert rebound["value"] == "(1, 'dict')"  # the console's own name; __main__ untouched
    piped = cli(target.pid, "console", input="import sys\nsys.version_info[:2]\n")
    assert only(piped)["value"].startswith("(3, ")


def test_stack_threads_and_file(target: RunningTarget, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "stack.txt")
    event = only(client(target.pid, "stack -f %s" % path))
    names = [thread["name"] for thread in event["threads"]]
    assert names[0] == "MainThread" and "asyncio-loop" in names
    main = event["threads"][0]
    assert any(frame["name"] == "main_body" for frame in main["frames"])
    with open(path) as fh:
        assert "main_body" in fh.read()


def test_stack_native(target: RunningTarget) -> None:
    main = only(client(target.pid, "stack --native"))["threads"][0]
    assert any(frame["native"] for frame in main["frames"])


def test_stack_asyncio_tasks(target: RunningTarget) -> None:
    event = only(client(target.pid, "stack -a"))
    tasks = [task for loop in event["loops"] for task in loop["tasks"]]
    assert {task["coro"] for task in tasks} >= {"ticker"}
    assert any(frame["name"] == "ticker" for task in tasks for frame in task["frames"])
    by_name = {task["name"]: task for task in tasks}
    child, parent = by_name["chain-child"], by_name["chain-parent"]
    assert [frame["name"] for frame in child["frames"]][:3] == [
        "chain_middle",
        "chain_leaf",
        "sleep",
    ]  # down to the innermost
    assert child["awaited_by"] == ["chain-parent"] and parent["awaits"] == ["chain-child"]
    assert [frame["name"] for frame in parent["frames"]] == ["chain_parent"]
    text = client(target.pid, "stack -a", "--no-color", json_output=False).stdout
    assert "awaits task chain-child" in text and "awaited by task chain-parent" in text
    assert "not_shown" not in event
    # the two tickers wait at the same place: one entry that counts and names the other
    (tickers,) = [task for task in tasks if task["coro"] == "ticker"]
    assert tickers["alike"] == 1 and len({tickers["name"], *tickers["alike_names"]}) == 2, tickers
    # bounded by what is shown: 50,000 tasks once made an answer over the protocol's 4 MB
    everyone = len(tasks) + sum(task.get("alike", 0) for task in tasks)
    few = only(client(target.pid, "stack -a -n 2"))
    shown = [task for loop in few["loops"] for task in loop["tasks"]]
    assert len(shown) == 2 and few["not_shown"] == everyone - 2 - sum(task.get("alike", 0) for task in shown)
    text = client(target.pid, "stack -a -n 2", "--no-color", json_output=False).stdout
    assert "more task(s) at places not shown (the first 2 places read are shown: -n N for more)" in text, text


@pytest.mark.any_interpreter  # the client's rendering and help
def test_text_output_and_help(target: RunningTarget) -> None:
    text = client(target.pid, "getglobal __main__ CONFIG -e target['limits']", "--no-color", json_output=False)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [  # the seeds' block, our own line below it
        "EXPR: target['limits']",
        "TYPE: <class 'list'>",
        "VALUE: [1, 2, 3]",
        "target=__main__.CONFIG",
    ]
    helped = client(target.pid, "help", "--no-color", json_output=False)
    for name in ("stack", "getglobal", "vmtool", "module", "console", "detach"):
        assert name in helped.stdout
    assert "-x, --expand" in client(target.pid, "help getglobal", json_output=False).stdout


def test_second_client_reuses_the_agent(target: RunningTarget) -> None:
    client(target.pid, "module /x.py")
    second = client(target.pid, "module /x.py", "--debug", json_output=False)
    assert "reusing the agent" in second.stderr


def test_dead_and_non_python_pids() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        result = cli(sleeper.pid, "getglobal __main__ x")
        assert result.returncode != 0 and "not a CPython process" in result.errors[0]
    finally:
        sleeper.kill()
        sleeper.wait()
    result = cli(sleeper.pid, "getglobal __main__ x")
    assert result.returncode != 0 and "no process with pid" in result.errors[0]
    result = cli("notapid", "stack")
    assert result.returncode != 0 and "not a pid" in result.errors[0]


def test_in_target_code_imports_without_client_dependencies() -> None:
    """The in-target set must import on the oldest Python with rich/prompt_toolkit unavailable."""
    code = (
        "import sys; sys.modules['rich'] = None; sys.modules['prompt_toolkit'] = None\n"
        "import importlib, pkgutil\n"
        "import flight_profiler.agent.server, flight_profiler.agent.registry as r\n"
        "for mod in r.HANDLERS.values(): importlib.import_module(mod, 'flight_profiler')\n"
        "print('ok')\n"
    )
    oldest = INTERPRETERS[0][1]
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    proc = subprocess.run(
        [oldest, "-I", "-c", "import sys; sys.path.insert(0, %r)\n" % src + code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.strip() == "ok", proc.stderr
    assert sys.version_info >= (3, 8)
