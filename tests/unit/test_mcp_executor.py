"""The MCP server's pure parts: parsing, what changes a target, and the command lines built."""

from __future__ import annotations

import pytest

from flight_profiler.errors import FlightProfilerError, UsageError
from flight_profiler.mcp.executor import (
    MAX_COLLECTED,
    Collector,
    changes_target,
    display,
    not_read_only,
    parse,
    parse_argv,
)


def test_parse_uses_the_cli_checks() -> None:
    spec, request = parse("getglobal __main__ CONFIG -x 2")
    assert spec.name == "getglobal" and request["expand"] == 2
    for line, message in (
        ("nosuch", "unknown command"),
        ("getglobal __main__ X -x 9", "-x must be"),
        ("console", "interactive"),
        ("getglobal 'unclosed", "cannot parse"),
        ("", "unknown command"),
    ):
        with pytest.raises(UsageError, match=message):
            parse(line)


def test_what_changes_the_target() -> None:
    assert changes_target(*parse("vmtool -a forceGc"))
    assert not changes_target(*parse("vmtool -a getInstances -c m C"))
    assert changes_target(*parse("console -c 1"))
    assert not changes_target(*parse("getglobal m x"))


def test_read_only_is_judged_on_the_parsed_request(tmp_path: object) -> None:
    """Expressions, filters, console code and output files are not read-only, however they are spelled."""
    for line in (
        "getglobal m x -e target.a",
        "getglobal m x --expr=1",
        "vmtool -a getInstances -c m C -e instances",
        "watch m f -f cost>1",
        "watch m f --expr args",
        "trace m f --filter 1",
        "tt -t m f -f 1",
        "tt -i 1000 -p",
        "console -c 1",
        "stack -f %s/x" % tmp_path,
        "perf -d 1 -f %s/y" % tmp_path,
    ):
        assert not_read_only(*parse(line)), line
    for line in ("getglobal m x", "vmtool -a getInstances -c m C", "watch m f", "stack", "mem summary", "tt -l"):
        assert not_read_only(*parse(line)) == "", line


def test_collector_caps_what_one_call_keeps() -> None:
    collector = Collector()
    collector.result("x", {"a": "b" * 1000}, None)
    with pytest.raises(FlightProfilerError, match="truncated"):
        collector.result("x", {"a": "b" * MAX_COLLECTED}, None)
    assert len(collector.results) == 1


def test_collector_keeps_everything_and_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    out = Collector()
    out.result("x", {"a": 1}, None)
    out.error("x", "bad")
    out.note("cancelled")
    assert (out.results, out.errors, out.notes) == ([{"a": 1}], ["bad"], ["cancelled"])
    assert capsys.readouterr() == ("", "")


def test_tools_build_argument_vectors_not_text() -> None:
    """A tool's arguments reach the parser as words: nothing is quoted and split again, so a value with
    quotes, spaces, a word that looks like an option, or a leading "-" stays exactly one value."""
    pytest.importorskip("mcp")
    from flight_profiler.mcp.server import _argv, _extra, _with_count

    argv = _argv(
        "getglobal", "__main__", "X", options={"-e": "target['a b']", "-x": "2"}, flags={"-v": True, "-r": False}
    )
    assert argv == ["getglobal", "__main__", "X", "-e", "target['a b']", "-x", "2", "-v"]
    assert display(argv) == "getglobal __main__ X -e 'target['\"'\"'a b'\"'\"']' -x 2 -v"
    assert parse_argv(argv)[1]["expr"] == "target['a b']"
    for expr in ("target -n 3", "-target", 'target["-x"] if 1 else " -v "'):
        _, request = parse_argv(_argv("getglobal", "m", "X", options={"-e": expr, "-x": "-1"}))
        assert (request["expr"], request["expand"], request["verbose"]) == (expr, -1, False)
    assert _argv("trace", "m", "f", options={"-i": "-1", "-et": "-1e-05"}) == [
        "trace",
        "m",
        "f",
        "-i",
        "-1",
        "-et=-1e-05",
    ]
    watched = _argv("watch", "m", "f", options={"--expr": "args -f x", "-f": "cost > 1"})
    assert parse_argv(watched)[1]["expr"] == "args -f x"
    assert _with_count(["vmtool", "-a", "forceGc"], 3) == ["vmtool", "-a", "forceGc", "-n", "3"]
    assert _with_count(["vmtool", "-a", "forceGc", "-n", "5"], 3) == ["vmtool", "-a", "forceGc", "-n", "5"]
    assert _with_count(["watch", "m", "f", "--limits=5"], 3) == ["watch", "m", "f", "--limits=5"]
    assert _with_count(["nosuch"], 3) == ["nosuch"]
    # the free-form ``options`` argument is CLI text: split as the CLI splits it
    assert _extra("watch", "-f args[0]['q']=='a b' -v") == ["--filter=args[0]['q']=='a b'", "-v"]
    assert _extra("watch", "  ") == []


def test_argument_vectors_get_the_cli_checks_and_errors() -> None:
    """The same one-line errors as the CLI, for the same mistakes."""
    for argv, message in (
        (["nosuch"], "unknown command"),
        ([], "unknown command"),
        (["getglobal", "__main__", "X", "-x", "9"], "-x must be"),
        (["getglobal", "m", "a", "b", "c"], "expected: module"),
        (["console"], "interactive"),
        (["watch", "m", "f", "-f", "args[0][query]==hello"], "cannot see in the target"),
    ):
        with pytest.raises(UsageError, match=message):
            parse_argv(argv)
        line = display(argv)
        if argv:
            with pytest.raises(UsageError, match=message):
                parse(line)  # the command tool's line, typed the same, is refused alike


def test_local_commands_must_end_before_the_time_limit() -> None:
    from flight_profiler.mcp.executor import _check_bounded

    _check_bounded(*parse("perf -d 1 -f /tmp/fp-unit.svg"), time_limit=5)
    with pytest.raises(UsageError, match="runs until stopped"):
        _check_bounded(*parse("perf -f /tmp/fp-unit.svg"), time_limit=5)
    with pytest.raises(UsageError, match="would outlast"):
        _check_bounded(*parse("perf -d 10 -f /tmp/fp-unit.svg"), time_limit=5)
    _check_bounded(*parse("getglobal m x"), time_limit=5)  # agent commands are cancelled at the limit
