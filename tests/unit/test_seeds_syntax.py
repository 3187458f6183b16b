"""The command lines of the seeds (the reference's docs and skills), parsed as they are typed.

Every line here is copied from the seeds' examples: people and AI agents arrive with them. An
expression option (-f, --filter, --filter_expr, --expr, vmtool/getglobal -e, console -c) takes
the text up to the next option of the command, quotes and spaces included; a value that is one
quoted word loses its quotes, as in a shell. The same parser serves the shell, --cmd and MCP.
"""

from __future__ import annotations

from typing import Any

import pytest

from flight_profiler.cli.runner import parse_command
from flight_profiler.commands.spec import split_command
from flight_profiler.errors import UsageError
from flight_profiler.mcp.executor import parse as mcp_parse


def parsed(line: str) -> dict[str, Any]:
    name, rest = split_command(line)
    return parse_command(name, rest)[1]


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        # the PyPI page, unquoted
        ("watch __main__ func -f args[0][\"query\"]=='hello'", "filter", "args[0][\"query\"]=='hello'"),
        ("watch __main__ func -f return_obj['success']==True", "filter", "return_obj['success']==True"),
        ("watch __main__ func --expr return_obj,args -f cost>10", "expr", "return_obj,args"),
        ("watch __main__ func --expr return_obj,args -f cost>10", "filter", "cost>10"),
        # the command guide, quoted
        ('watch __main__ func -f "args[0][\\"query\\"]==\'hello\'"', "filter", "args[0][\"query\"]=='hello'"),
        ('watch __main__ func --expr "{return_obj,args}" -f "cost>10"', "expr", "{return_obj,args}"),
        (
            "tt -t __main__ func -f \"return_obj['success']==True and cost>10\"",
            "filter",
            "return_obj['success']==True and cost>10",
        ),
        # spaces without quotes: up to the next option
        (
            "tt -t __main__ func -f return_obj['success']==True and cost>10 -n 5",
            "filter",
            "return_obj['success']==True and cost>10",
        ),
        ("trace __main__ compute -f 'args[0]>=1' -n 1", "filter", "args[0]>=1"),
        ("trace __main__ compute --filter_expr args[0] >= 1 -n 1", "filter", "args[0] >= 1"),
        # the vmtool skill
        (
            "vmtool -a getInstances -c __main__ Connection -e [i.host for i in instances]",
            "expr",
            "[i.host for i in instances]",
        ),
        ("vmtool -a getInstances -c __main__ Connection -e len(instances)", "expr", "len(instances)"),
        (
            'vmtool -a getInstances -c __main__ Connection -e "[i for i in instances if i.status==\\"error\\"]"',
            "expr",
            '[i for i in instances if i.status=="error"]',
        ),
        (
            "vmtool -a getInstances -c __main__ Connection -e type(instances[0]),len(vars(instances[0]))",
            "expr",
            "type(instances[0]),len(vars(instances[0]))",
        ),
        ("vmtool -a getInstances -c __main__ Task -e instances[0] -x 2", "expand", 2),
        ("vmtool -a getInstances -c __main__ Task -e instances[0] -x 6", "expand", 6),
        # an option inside brackets is part of the expression; a negative number is no option
        ("watch m f -f (lambda n: cost in [ -n ])(1) -n 2", "filter", "(lambda n: cost in [ -n ])(1)"),
        ("watch m f -f cost == -1", "filter", "cost == -1"),
        ("getglobal __main__ CONFIG -e target['timeout'] -x 2", "expr", "target['timeout']"),
        ("console -c import sys; len(sys.modules)", "source", "import sys; len(sys.modules)"),
    ],
)
def test_seeds_lines(line: str, key: str, value: Any) -> None:
    assert parsed(line)[key] == value
    assert mcp_parse(line)[1][key] == value  # MCP parses exactly as the CLI


def test_timetunnel_is_tt() -> None:
    assert parsed("timetunnel -t __main__ A func") == parsed("tt -t __main__ A func")
    assert parsed("tt --time_tunnel __main__ A func")["cls"] == "A"


def test_trace_depth_forces_the_interval_to_zero() -> None:
    assert parsed("trace __main__ f -d 2 -i 10")["interval"] == 0.0  # the seeds: -i is ignored with -d
    assert parsed("trace __main__ f -i 10")["interval"] == 10.0
    assert parsed("trace __main__ f")["interval"] is None  # the agent's default, 0.1 ms


def test_trace_guards_are_off_unless_asked() -> None:
    request = parsed("trace __main__ MyClass method -et 100 -i 10 -n 3")
    assert request["budget"] == 0 and request["rate"] == 0
    assert parsed("trace __main__ f --budget 20")["budget"] == 20


def test_vmtool_expand_stops_at_six_others_at_four() -> None:
    with pytest.raises(UsageError, match=r"-x must be 1\.\.6"):
        parsed("vmtool -a getInstances -c __main__ A -x 7")
    with pytest.raises(UsageError, match=r"-x must be 1\.\.4"):
        parsed("getglobal __main__ A -x 5")


def test_an_unclosed_quote_is_one_clear_error() -> None:
    with pytest.raises(UsageError, match="no closing quote"):
        parsed("watch m f -f 'args[0]")


@pytest.mark.parametrize(
    "line",
    [
        "watch __main__ func -f args[0][query]==hello",  # what a shell leaves of the unquoted filter
        "trace __main__ func -f args[0] == hello -n 1",
        "tt -t __main__ func -f return_obj[success]==True",
        "vmtool -a getInstances -c __main__ A -e [i.host for i in instancs]",
        "getglobal __main__ CONFIG -e targt['x']",
    ],
)
def test_an_expression_that_cannot_see_its_names_is_refused_before_hooking(line: str) -> None:
    with pytest.raises(UsageError, match="cannot see in the target"):
        parsed(line)


@pytest.mark.parametrize(
    "line",
    [
        "vmtool -a getInstances -c __main__ A -e [i.host for i in instances if (n := len(i.host)) > 1]",
        "vmtool -a getInstances -c __main__ A -e sorted(instances, key=lambda i, *rest: i.n)",
        "watch __main__ func -f isinstance(args[0], dict) and len(kwargs) < 3 and cost > 1e-3",
        "watch __main__ func -f args[0] == t'x'",  # newer syntax: left to the target's compiler
    ],
)
def test_bound_names_builtins_and_newer_syntax_pass(line: str) -> None:
    parsed(line)


@pytest.mark.parametrize("word", ["quit", "exit", " quit "])
def test_cmd_quit_does_nothing_and_exits_0(word: str) -> None:
    """The attach skill: `--cmd quit`/`exit` leave at once; nothing is attached (the pid need not exist)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "flight_profiler", "2147483646", "--cmd", word],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_shell_completes_timetunnel_and_its_options() -> None:
    from flight_profiler.cli.shell import CommandCompleter

    completer = CommandCompleter(None)  # type: ignore[arg-type]  # names and options need no runner
    assert "timetunnel" in completer._candidates([], "time")
    assert "--time_tunnel" in completer._candidates(["timetunnel"], "--time")
