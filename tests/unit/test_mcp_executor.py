"""The MCP server's pure parts: parsing, what changes a target, and the command lines built."""

from __future__ import annotations

import pytest

from flight_profiler.errors import FlightProfilerError, UsageError
from flight_profiler.mcp.executor import MAX_COLLECTED, Collector, changes_target, not_read_only, parse


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


def test_built_lines_are_quoted_and_bounded() -> None:
    pytest.importorskip("mcp")
    from flight_profiler.mcp.server import _line, _with_count

    line = _line(
        "getglobal", "__main__", "X", options={"-e": "target['a b']", "-x": "2"}, flags={"-v": True, "-r": False}
    )
    assert line == "getglobal __main__ X -e 'target['\"'\"'a b'\"'\"']' -x 2 -v"
    assert parse(line)[1]["expr"] == "target['a b']"
    assert _with_count("vmtool", "vmtool -a forceGc", 3) == "vmtool -a forceGc -n 3"
    assert _with_count("vmtool", "vmtool -a forceGc -n 5", 3) == "vmtool -a forceGc -n 5"
    assert _with_count("nosuch", "nosuch", 3) == "nosuch"


def test_local_commands_must_end_before_the_time_limit() -> None:
    from flight_profiler.mcp.executor import _check_bounded

    _check_bounded(*parse("perf -d 1 -f /tmp/fp-unit.svg"), time_limit=5)
    with pytest.raises(UsageError, match="runs until stopped"):
        _check_bounded(*parse("perf -f /tmp/fp-unit.svg"), time_limit=5)
    with pytest.raises(UsageError, match="would outlast"):
        _check_bounded(*parse("perf -d 10 -f /tmp/fp-unit.svg"), time_limit=5)
    _check_bounded(*parse("getglobal m x"), time_limit=5)  # agent commands are cancelled at the limit
