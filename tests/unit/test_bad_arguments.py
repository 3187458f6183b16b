"""Bad input met as a demanding user types it (the seeds' syntax, wrong): one clear line, never a
traceback, never the wrong culprit named."""

from __future__ import annotations

import re
from typing import Any

import pytest

from flight_profiler.cli import registry
from flight_profiler.errors import TargetError, UsageError
from flight_profiler.fleet import select
from flight_profiler.readers import pyspy
from usage_errors import parse_error

NO_SUCH_PID = 2**31 - 1  # above any pid_max


@pytest.mark.parametrize(
    ("line", "said"),
    [
        # one name was looked up as module and method both: "attribute 'abc' not found in abc"
        ("stack abc", "stack abc: give a pid, or module [class] method"),
        ("stack -1", "pid must be at least 1, got '-1'"),  # was: module '-1' is not loaded
        ("stack 12 13", "stack takes one pid, got 12 13"),
        ("stack ./stack.log", "to write the stacks to a file: stack -f FILE"),  # the seeds' macOS form
        ("stack /tmp/stacks", "to write the stacks to a file: stack -f FILE"),
        ("stack " + "9" * 60, "9" * 40 + "... is not a pid"),
        ("stack \u00b2", "stack \u00b2: give a pid"),  # isdigit() but not int(): was an internal error
    ],
)
def test_stack_positionals_that_are_neither_form(line: str, said: str) -> None:
    assert said in parse_error(line)


def test_stack_forms_still_parse() -> None:
    spec = registry.get("stack")
    assert spec is not None
    assert spec.parse([])["pid"] is None
    assert spec.parse(["42"])["pid"] == 42
    assert spec.parse(["__main__", "func"])["method"] == "func"
    assert spec.parse(["__main__", "A", "func"])["cls"] == "A"


def test_pids_typed_with_unicode_digits_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="-p takes pids separated by commas"):
        select.parse_pids("12,\u00b2")


def test_a_rank_in_the_target_environment_that_int_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    environ: dict[str, Any] = {"RANK": "\u00b2", "LOCAL_RANK": "3"}
    monkeypatch.setattr(select, "_environ", lambda pid: environ)
    assert select.rank_of(1) == 3


def test_another_pid_that_is_not_running_is_said_as_the_attach_says_it(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[Any] = []
    monkeypatch.setattr("subprocess.run", lambda *a, **k: ran.append(a))
    with pytest.raises(TargetError, match="^no process with pid %d$" % NO_SUCH_PID):
        pyspy.dump(NO_SUCH_PID)
    assert ran == []  # py-spy's own words were "Failed to get process executable name"


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("vmtool -a forceGc -c __main__ A", "vmtool -a forceGc takes no -c: it collects the whole heap"),
        ("vmtool -a forceGc -e len(instances) -n 2", "takes no -e, -n"),
        # the client said "at least 1" and sent it; the agent refused it after the attach
        ("mem summary --limit 99999999999", "mem: --limit must be 1..10000, got '99999999999'"),
    ],
)
def test_options_that_would_be_ignored_or_refused_later(line: str, said: str) -> None:
    assert said in parse_error(line)


def rendered(command: str, event: dict[str, Any]) -> str:
    import io

    from flight_profiler.render.console import make_console

    spec = registry.get(command)
    assert spec is not None
    out = io.StringIO()
    make_console(color=False, file=out, width=120).print(spec.render(event))
    return out.getvalue()


def test_tt_list_whose_method_filter_matches_nothing_does_not_say_there_are_no_records() -> None:
    budget = {"bytes": 10, "max_records": 500, "max_bytes": 16 << 20, "dropped": 0}
    text = rendered("tt", {"kind": "list", "records": [], "kept": 3, **budget})
    assert "no record matches -m" in text and "no records (" not in text and "3 record(s) kept" in text
    assert "no records (tt -t" in rendered("tt", {"kind": "list", "records": [], "kept": 0, **budget})


def test_help_with_more_than_one_name_is_a_usage_error() -> None:
    import os

    from flight_profiler.attach.attacher import AttachOptions
    from flight_profiler.cli.runner import Runner
    from flight_profiler.mcp.executor import Collector

    out = Collector()
    runner = Runner(os.getpid(), out, AttachOptions())
    assert runner.execute("help watch extra") is False  # was: watch's help, status 0, "extra" ignored
    assert out.errors == ["help takes one command name, got watch extra"]


@pytest.mark.parametrize(
    ("command", "rest", "key", "value"),
    [
        # as watch's -f: the text up to the next option, as typed (was: "unrecognized arguments: > 100")
        ("line", "m f 12 -f total > 100 -n 2", "filter", "total > 100"),
        ("line", 'm f 12 --expr d["q"], d.get("boom") -n 1', "expr", 'd["q"], d.get("boom")'),
        ("stack", "m f -f args[0]['query'] == 'hello' -n 1", "filter", "args[0]['query'] == 'hello'"),
        ("stack", "m C f --filter cost > 10", "filter", "cost > 10"),
    ],
)
def test_expression_options_of_line_and_stack_take_the_text_as_typed(
    command: str, rest: str, key: str, value: str
) -> None:
    spec = registry.get(command)
    assert spec is not None
    assert spec.parse_line(rest)[key] == value


def test_stack_file_path_is_still_one_word() -> None:
    spec = registry.get("stack")
    assert spec is not None
    request = spec.parse_line("-f ./stack.log --native")
    assert request["filepath"].endswith("/stack.log") and request["native"] is True


def test_detach_with_an_argument_is_a_usage_error_and_detaches_nothing() -> None:
    import os

    from flight_profiler.attach.attacher import AttachOptions
    from flight_profiler.cli.runner import Runner
    from flight_profiler.mcp.executor import Collector

    out = Collector()
    runner = Runner(os.getpid(), out, AttachOptions())
    detached: list[bool] = []

    def detach() -> bool:
        detached.append(True)
        return True

    runner.detach = detach  # type: ignore[method-assign]
    assert runner.execute("detach now") is False  # was: detached, status 0, "now" ignored
    assert out.errors == ["detach takes no arguments, got now"] and detached == []


def test_perf_of_an_idle_process_says_so_and_how_to_sample_it_anyway() -> None:
    output = "py-spy> Sampling process 100 times a second. Press Control-C to exit.\n\nFailed to write flamegraph: No stack counts found\n"
    with pytest.raises(TargetError) as caught:
        pyspy._recording(42, "/nonexistent/f.svg", 1, output, 1.0, "duration")
    assert (
        str(caught.value) == "no samples from pid 42 in 1.0 s: its threads were idle (--idle samples idle threads too)"
    )


@pytest.mark.parametrize(
    "line",
    [
        "watch threading Event.set -n 2",
        "trace threading Event.set",
        "tt -t threading Event.set",
        "monitor threading Event.set",
        "stack threading Event.set",
        "reload threading Event.set",
        "getglobal threading Event.set",
        "line threading Event.set 600",
    ],
)
def test_class_dot_method_in_the_methods_place_is_the_class_and_the_method(line: str) -> None:
    """``watch threading Event.set``, as Python names the method: was looked up as one attribute
    'Event.set' of threading ("not found ... did you mean Event?")."""
    command, rest = line.split(" ", 1)
    spec = registry.get(command)
    assert spec is not None
    request = spec.parse_line(rest)
    assert request.get("cls") == "Event" and (request.get("method") or request.get("field")) == "set", request
    other = spec.parse_line(rest.replace("Event.set", "Event set"))
    assert request == other  # the same request as the seeds' form


@pytest.mark.parametrize("command", ["watch m f", "trace m C f", "tt -t m f", "monitor m f", "stack m f"])
def test_an_empty_nested_name_is_refused_not_dropped(command: str) -> None:
    spec = registry.get(command.split()[0])
    assert spec is not None
    with pytest.raises(UsageError, match="-nm must name a function defined inside the method, got ''"):
        spec.parse([*command.split()[1:], "-nm", ""])  # was: the method itself hooked, -nm ignored


@pytest.mark.parametrize("line", ["help", "help watch", "help timetunnel"])
def test_help_under_json_keeps_stdout_json_lines_only(line: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import os

    from flight_profiler.attach.attacher import AttachOptions
    from flight_profiler.cli.output import Output
    from flight_profiler.cli.runner import Runner

    runner = Runner(os.getpid(), Output(as_json=True, color=False), AttachOptions())
    assert runner.execute(line) is True
    captured = capsys.readouterr()
    # first the help text on stdout among JSON lines, then on stderr: now one record, as a command's result
    [record] = [json.loads(text) for text in captured.out.splitlines()]
    assert record["command"] == "help" and "watch" in json.dumps(record["result"]) and captured.err == ""


def _fleet() -> Any:
    from flight_profiler.attach.attacher import AttachOptions
    from flight_profiler.fleet.runner import Fleet
    from flight_profiler.fleet.select import Target
    from flight_profiler.fleet.sink import Sink
    from flight_profiler.mcp.executor import Collector

    return Fleet(
        [Target(NO_SUCH_PID, 1, None, None), Target(NO_SUCH_PID - 1, 1, None, None)],
        Sink(Collector()),
        AttachOptions(),
        2,
    )


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        # over a group the line was shlex-split: quotes eaten, brackets split ("unrecognized arguments")
        (
            "getglobal m x -e [c.host for c in target if c.status=='error']",
            "expr",
            "[c.host for c in target if c.status=='error']",
        ),
        ("watch m f -f args[0][\"query\"]=='hello'", "filter", "args[0][\"query\"]=='hello'"),
        ("timetunnel -l", "action", "list"),  # was: unknown command 'timetunnel'
    ],
)
def test_a_group_reads_command_lines_as_one_target_does(line: str, key: str, value: str) -> None:
    fleet = _fleet()
    name, rest = line.split(" ", 1)
    spec, requests, _ = fleet._prepare(name, rest, fleet.members)
    assert spec.name == ("tt" if name == "timetunnel" else name)
    assert {request[key] for request in requests.values()} == {value}


@pytest.mark.parametrize(
    ("line", "said"),
    [("detach now", "detach takes no arguments, got now"), ("help watch extra", "help takes one command name")],
)
def test_a_group_refuses_extra_words_to_help_and_detach(line: str, said: str) -> None:
    fleet = _fleet()
    assert fleet.execute(line) is False
    assert any(said in error for error in fleet.sink.output.errors)


def test_k8s_checks_the_pods_command_line_as_the_pod_will_read_it() -> None:
    from flight_profiler.fleet.k8s import _remote_words

    line = "getglobal m x -e [c.host for c in target if c.status=='error']"
    _, spec, request = _remote_words(["--all", "--cmd", line])  # was refused here: "unrecognized arguments"
    assert spec is not None and spec.name == "getglobal"
    assert request["expr"] == "[c.host for c in target if c.status=='error']"
    tt = _remote_words(["--all", "--cmd", "timetunnel -l"])[1]
    assert tt is not None and tt.name == "tt"
    assert _remote_words(["--all", "--cmd", "detach"])[1] is None  # the client's own, not an agent command
    with pytest.raises(UsageError, match="detach"):
        _remote_words(["--all", "--cmd", "detach now"])
    with pytest.raises(UsageError, match="unknown command"):
        _remote_words(["--all", "--cmd", "nosuchcommand -x"])
    with pytest.raises(UsageError, match="--cmd: is empty"):
        _remote_words(["--all", "--cmd", "  "])


def test_stack_filter_that_lost_its_quotes_is_refused_before_anything_is_hooked() -> None:
    said = parse_error("stack m f -n 1 -f args[0][query]==hello")
    assert "uses hello, query, which it cannot see in the target" in said  # as watch's -f


@pytest.mark.parametrize(("order", "said"), [("ascending", "smallest 2:"), ("descending", "largest 2:")])
def test_mem_summary_header_says_which_end_of_the_order_it_shows(order: str, said: str) -> None:
    rows = [{"type": "NoneType", "count": 1, "size": 16}, {"type": "ellipsis", "count": 1, "size": 16}]
    event = {"action": "summary", "objects": 9, "size": 99, "distinct": 5, "seconds": 0.1, "order": order}
    assert said in rendered("mem", {**event, "types": rows})  # --order ascending said "largest 2:"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("stack '' f", "a module, class or function name must not be empty, got ''"),  # was: every thread's stack
        ("watch m '' f", "must not be empty, got ''"),
        ("tt -t '' f", "must not be empty, got ''"),
        ("line '' f 3", "must not be empty, got ''"),
        ("source m ' '", "must not be empty, got ' '"),
        ("vmtool -a getInstances -c '' A", "must not be empty, got ''"),
        ("module ''", "module needs a file path, got ''"),  # was: the current directory looked up
        ("gilstat off extra", "gilstat off takes no arguments, got extra"),  # was: the number parser's words
        ("tt -l -x 3", "-x applies to recording and showing a record (-t/-i), not to -l"),  # was: ignored
        ("tt -i 3 -n 5", "-n applies to recording (-t), not to -i"),
        ("tt -d 1 --rate 3", "--rate applies to recording (-t), not to -d"),
        ("tt -da --max-mb 2", "--max-mb applies to recording (-t), not to -da"),
    ],
)
def test_empty_names_and_options_that_mean_nothing_here_are_refused(line: str, message: str) -> None:
    name, rest = line.split(" ", 1)
    spec = registry.get(name)
    assert spec is not None
    with pytest.raises(UsageError, match=re.escape(message)):
        spec.parse_line(rest)


@pytest.mark.parametrize("line", ["tt -t m f -x 2 -n 3 --rate 5", "tt -i 3 -x 2 -v --budget-ms 50", "tt -l -m m.C.f"])
def test_options_in_their_mode_still_parse(line: str) -> None:
    spec = registry.get("tt")
    assert spec is not None
    assert spec.parse_line(line.split(" ", 1)[1])["action"] in ("record", "show", "list")


@pytest.mark.parametrize(
    ("line", "key", "last"),
    [
        ("watch __main__ f -n 3 -n 5", "limit", 5),
        ("watch __main__ f -x 2 -x 3", "expand", 3),
        ("trace __main__ f -n 3 -n 5", "limit", 5),
        ("tt -t __main__ f -n 3 -n 5", "limit", 5),
        ("tt -i 1 -i 2", "index", 2),
        ("tt -t a b -t c d", "module", "c"),
        ("getglobal __main__ X -x 2 -x 3", "expand", 3),
        ("vmtool -a getInstances -c m C -c n D", "cls", "D"),
        ("monitor __main__ f -c 3 -c 5", "cycle", 5.0),
        ("sc *A* -n 3 -n 5", "limit", 5),
        ("thread -n 3 -n 5", "top", 5),
    ],
)
def test_a_repeated_option_keeps_its_last_value_in_every_command(line: str, key: str, last: Any) -> None:
    """argparse's rule, the same for every command (every line goes through CommandParser); README says so."""
    name, rest = line.split(" ", 1)
    spec = registry.get(name)
    assert spec is not None
    assert spec.parse_line(rest)[key] == last
