"""Every surface of a command against its one declaration: the parser its ``SPEC.add_arguments`` builds.

The usage line, the skill's option table and Usage block and README's Commands row are rendered from the parser
plus what it cannot say, declared next to it (``SPEC.forms``, ``SPEC.option_docs``, ``SPEC.main_forms``,
``SPEC.overview``; commands/surface.py): the stored blocks and a golden copy of every usage line must be what is
rendered, so a hand edit of any is caught.

The parser (options, flags, types and ranges through ``commands.spec.number``, defaults from the
command's ``model.DEFAULTS``, help, choices, positionals) is what a command declares once. ``help``
and Tab completion are generated from it; these tests hold the rest to it, for every command:
the usage line, the skill's option table, and the MCP tool's input schema (whose requests are
built from argument vectors through the same parser: tests/unit/test_contract.py builds one for
every argument of every tool). The model's defaults against the parser are in test_contract.py.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import re
from typing import Any

import pytest
from mcp_recorder import Recorder

from flight_profiler.cli import registry
from flight_profiler.commands.spec import CommandSpec, NumberType
from flight_profiler.skills import skills
from flight_profiler.skills.markers import option_rows, option_tables

SPECS = registry.specs()  # every command, the hidden one (complete, Tab's helper) included
DOCUMENTED = registry.visible()  # the ones a skill documents


def _ids(spec: CommandSpec) -> str:
    return spec.name


def _documented(parser: argparse.ArgumentParser) -> set[str]:
    """The names a skill must list: every option string, every positional (by metavar)."""
    names: set[str] = set()
    for action in parser._actions:  # argparse keeps no public list of them
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            names.update(action.option_strings)
        else:
            names.add(action.metavar if isinstance(action.metavar, str) else action.dest)
    return names


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_usage_names_every_option(spec: CommandSpec) -> None:
    """The usage line is written by hand (its forms say which options go together): it must name every
    option of the parser (test_contract checks it names no other)."""
    words = set(spec.usage.replace("[", " ").replace("]", " ").replace("|", " ").split())
    missing = [
        action.option_strings[0]
        for action in spec.parser()._actions
        if action.option_strings and action.help != argparse.SUPPRESS and not set(action.option_strings) & words
    ]
    assert not missing, "%s: the usage line lacks %s" % (spec.name, missing)


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_help_and_completion_come_from_the_parser(spec: CommandSpec) -> None:
    from flight_profiler.cli.help import command_help
    from flight_profiler.cli.shell import CommandCompleter

    text = command_help(spec.name).plain  # type: ignore[union-attr]
    options = [flag for action in spec.parser()._actions for flag in action.option_strings]
    assert all(flag in text for flag in options), spec.name
    completer = CommandCompleter.__new__(CommandCompleter)  # completing options needs no runner
    assert completer._candidates([spec.name], "-") == sorted(options)


class _Agent:
    """Stands in for the runner and its connection: records the completion requests sent to the agent."""

    lost = None

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def connection(self) -> _Agent:
        return self

    def run(self, command: str, request: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        self.requests.append(request)
        return [{"names": ["handle"]}]


def test_completion_offers_the_parsers_choices() -> None:
    """Words the parser names (a mode word first, an option's choices) are offered; names the target knows
    are asked from the agent only where the parser takes a name, after the mode word."""
    from flight_profiler.cli.shell import CommandCompleter

    agent = _Agent()
    completer = CommandCompleter(agent)  # type: ignore[arg-type]
    assert completer._candidates(["mem"], "") == ["diff", "summary", "top"]
    assert completer._candidates(["mem"], "s") == ["summary"]
    assert completer._candidates(["torch"], "") == ["memory", "profile"]
    assert completer._candidates(["vmtool", "-a"], "") == ["forceGc", "getInstances", "referenceAnalyze"]
    assert completer._candidates(["perf", "--format"], "s") == ["speedscope", "svg"]
    assert completer._candidates(["mem", "diff"], "") == []  # no names after it: nothing asked
    assert not agent.requests
    assert completer._candidates(["torch", "profile"], "ha") == ["handle"]
    assert agent.requests[-1]["kind"] == "module"  # the module comes after the mode word
    assert completer._candidates(["torch", "profile", "app"], "ha") == ["handle"]
    assert agent.requests[-1] == {"kind": "member", "prefix": "ha", "module": "app", "cls": None}


def _skill_rows() -> dict[str, list[tuple[set[str], str]]]:
    found: dict[str, list[tuple[set[str], str]]] = {}
    for skill in skills():
        for key, rows in option_rows(skill.text).items():
            assert key not in found, "%s's options are documented twice" % key
            found[key] = rows
    return found


ROWS = _skill_rows()


@pytest.mark.parametrize("spec", DOCUMENTED, ids=_ids)
def test_skill_option_table_is_the_parsers(spec: CommandSpec) -> None:
    """The skill's ``<!-- options: NAME -->`` table lists exactly the parser's options and positionals,
    and each row's default cell shows the parser's default."""
    assert spec.name in ROWS, "no skill has an options table for %s" % spec.name
    listed = set().union(*(names for names, _ in ROWS[spec.name]))
    wanted = _documented(spec.parser())
    assert listed == wanted, "%s: only in the skill %s, only in the parser %s" % (
        spec.name,
        sorted(listed - wanted),
        sorted(wanted - listed),
    )
    for action in spec.parser()._actions:
        default = action.default
        if not action.option_strings or isinstance(default, bool) or default in (None, argparse.SUPPRESS):
            continue
        shown = "%g" % default if isinstance(default, (int, float)) else str(default)
        cells = [cell for names, cell in ROWS[spec.name] if names & set(action.option_strings)]
        assert shown in cells[0], "%s %s: default %s, the skill says %r" % (
            spec.name,
            action.option_strings[0],
            shown,
            cells[0],
        )


GOLDEN_USAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "golden", "usage_lines.txt")


def test_usage_lines_are_the_golden_ones() -> None:
    """Users' agents parse the usage lines: a change of them (a metavar renamed in a parser, a form edited)
    must be meant. After one: ``python -c "from flight_profiler.cli import registry; print('\\n'.join(s.usage
    for s in registry.specs()))" > tests/unit/data/golden/usage_lines.txt``."""
    with open(GOLDEN_USAGE, encoding="utf-8") as fh:
        stored = fh.read().splitlines()
    assert [spec.usage for spec in SPECS] == stored


@pytest.mark.parametrize("skill", skills(), ids=lambda skill: os.path.basename(os.path.dirname(skill.path)))
def test_skill_generated_blocks_are_rendered_from_the_declaration(skill: Any) -> None:
    """Every command's options block and every Usage block in a SKILL.md is what ``option_table`` and
    ``skill_usage`` render (a hand edit fails here; edit ``option_docs``, ``main_forms`` or the parser, then run
    ``python -m flight_profiler.skills.tables``)."""
    from flight_profiler.skills.tables import rendered

    assert rendered(skill) == skill.text, "stale block in %s: run python -m flight_profiler.skills.tables" % skill.path


_SHOWN_VALUE = re.compile(r"(?<![\w-])(-{1,2}[a-z][\w-]*) ([A-Z][A-Z_]*)\b")


@pytest.mark.parametrize("spec", DOCUMENTED, ids=_ids)
def test_skill_usage_blocks_show_the_parsers_metavars(spec: CommandSpec) -> None:
    """The skills' Usage blocks are short hand-picked forms; where one shows an option with a value in capitals
    (``[-n N]``), that is the parser's metavar, or what the generated usage line shows there."""
    from flight_profiler.commands.surface import metavar

    actions = spec.parser()._option_string_actions  # argparse keeps no public map of them
    wrong = []
    for skill in skills():
        usage = skill.text.split("## Usage", 1)[1].split("```", 2)[1] if "## Usage" in skill.text else ""
        for line in usage.splitlines():
            if '--cmd "%s ' % spec.name not in line and '--cmd "%s"' % spec.name not in line:
                continue
            for flag, shown in _SHOWN_VALUE.findall(line):
                action = actions.get(flag)
                if action is None or action.nargs == 0 or "%s %s" % (flag, shown) in spec.usage:
                    continue
                if shown != metavar(action).rstrip("."):
                    wrong.append("%s: %s %s, the parser says %s %s" % (skill.path, flag, shown, flag, metavar(action)))
    assert not wrong, "\n".join(wrong)


def test_option_tables_parse_as_names() -> None:
    assert option_tables("<!-- options: x -->\n| `-a N`, `--all N` | all | 1 |\n<!-- /options -->") == {
        "x": {"-a", "--all"}
    }


README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "README.md")


def test_readme_commands_table_is_rendered_from_the_declarations() -> None:
    """README's Commands table is what ``surface.readme_table`` renders from every command's ``main_forms`` and
    ``overview``: a hand edit fails here (edit those, then run ``python -m flight_profiler.skills.tables``)."""
    from flight_profiler.skills import tables

    assert os.path.samefile(tables.README, README)
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    assert text.count("<!-- commands -->") == 1, "README has no (or more than one) generated Commands table"
    assert tables.rendered_readme(text) == text, (
        "stale Commands table in README: run python -m flight_profiler.skills.tables"
    )
    rows = text.split("<!-- commands -->", 1)[1].split("<!-- /commands -->", 1)[0]
    missing = [spec.name for spec in DOCUMENTED if "| `%s" % spec.name not in rows]
    assert not missing, missing


def test_every_command_has_one_generated_usage_block() -> None:
    """Each documented command's short forms appear in exactly one skill's ``<!-- usage: -->`` block."""
    from flight_profiler.skills.tables import _USAGE

    blocks: dict[str, list[str]] = {}
    for skill in skills():
        for match in _USAGE.finditer(skill.text):
            for name in match.group("names").split():
                blocks.setdefault(name, []).append(skill.name)
    wrong = {spec.name: blocks.get(spec.name, []) for spec in DOCUMENTED if len(blocks.get(spec.name, [])) != 1}
    assert not wrong, "commands without exactly one usage block: %s" % wrong


# ---------------------------------------------------------------- the MCP tools' input schemas


def _tools() -> dict[str, Any]:
    pytest.importorskip("mcp")
    from flight_profiler.mcp import server

    manager = server.build()._tool_manager  # the SDK keeps no public accessor for the registered functions
    return {tool.name: tool for tool in manager.list_tools() if registry.get(tool.name) is not None}


BASE = {
    "module": "__main__",
    "method": "handle",
    "field": "SETTINGS",
    "pattern": "*Order*",
    "line": 10,
    "index": 3,
    "thread_id": 4242,
    "timeout_s": 1e7,  # above every duration a tool checks against it
}


def _edges(schema: dict[str, Any]) -> list[Any]:
    """The extreme values a parameter's schema allows: its bounds, its default, each of its choices."""
    variants = schema.get("anyOf", [schema])
    values: list[Any] = []
    for variant in variants:
        values += variant.get("enum", [])
        for key in ("minimum", "maximum"):
            if key in variant:
                values.append(variant[key])
        if "exclusiveMinimum" in variant:
            step = 1 if variant.get("type") == "integer" else 0.001
            values.append(variant["exclusiveMinimum"] + step)
    if schema.get("default") is not None:
        values.append(schema["default"])
    return values


def _run(tool: Any, arguments: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    recorder = Recorder()
    fn = tool.fn
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        if name == "tools":
            monkeypatch.setattr(cell, "cell_contents", recorder)
    asyncio.run(fn(**arguments))
    return recorder.calls


def _private_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """perf's default file goes to a private directory of ours: here, the test's."""
    from flight_profiler.mcp import server

    monkeypatch.setattr(server, "private_output_dir", lambda: str(tmp_path))


MODES = ("action", "view")  # a tool parameter that picks the command's form: an argument may fit one form only


def _forms(tool: Any) -> list[dict[str, Any]]:
    """The base arguments of a tool, once per value of its mode parameter (or once)."""
    parameters = inspect.signature(tool.fn).parameters
    base = {key: value for key, value in BASE.items() if key in parameters}
    base.update(pid=1, **({"cls": "C"} if tool.name == "vmtool" else {}))
    if "filepath" in parameters and parameters["filepath"].default is inspect.Parameter.empty:
        base["filepath"] = "/tmp/fp-unit-surfaces.py"  # module's source file: only named, never opened here
    for mode in MODES:
        choices = tool.parameters["properties"].get(mode, {}).get("enum")
        if choices:
            return [{**base, mode: choice} for choice in choices]
    return [base]


def _accepted(tool: Any, arguments: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> str:
    """ "" when the tool, in one of its forms, builds argument vectors the parser accepts; else the errors."""
    from flight_profiler.errors import UsageError
    from flight_profiler.mcp.executor import parse_argv

    errors = []
    for form in arguments:
        try:
            for argv in _run(tool, form, monkeypatch):
                parse_argv(argv)
        except (UsageError, RuntimeError) as exc:
            errors.append(str(exc))
            continue
        return ""
    return "; ".join(errors)


def test_mcp_schemas_offer_only_what_the_parsers_accept(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Every tool parameter at each edge its JSON schema allows (bounds, default, every choice) gives a
    request the command's parser accepts, in at least one of the tool's forms: the schema never offers
    what the CLI refuses."""
    _private_dir(monkeypatch, tmp_path)
    checked, refused = 0, []
    for name, tool in _tools().items():
        for parameter, schema in tool.parameters["properties"].items():
            if parameter in ("pid", "timeout_s"):
                continue
            for value in _edges(schema):
                forms = [{**form, parameter: value} for form in _forms(tool)]
                error = _accepted(tool, forms, monkeypatch)
                if error:
                    refused.append("%s %s=%r: %s" % (name, parameter, value, error))
                checked += 1
    assert not refused, "\n".join(refused)
    assert checked >= 40, checked


# request keys a tool fills with its own default, not the command's: a call must end within timeout_s
# (fewer captured calls; monitor and dashboard report in short cycles and fit their count to timeout_s)
MCP_OWN_DEFAULTS = {
    ("watch", "limit"),
    ("trace", "limit"),
    ("tt", "limit"),
    ("line", "limit"),
    ("monitor", "cycle"),
    ("monitor", "cycles"),
    ("dashboard", "interval"),
    ("dashboard", "frames"),
}


def _without_defaulted_options(spec: CommandSpec, argv: list[str]) -> list[str]:
    """``argv`` less the options that have a default (what the tool restated), so the parser applies its own."""
    actions = spec.parser()._option_string_actions  # argparse keeps no public map of them
    kept: list[str] = []
    words = iter(argv)
    for word in words:
        action = actions.get(word.split("=", 1)[0])
        if action is None or action.default in (None, False):
            kept.append(word)
        elif action.nargs != 0 and "=" not in word:
            next(words, None)  # its value
    return kept


def test_mcp_defaults_are_the_commands(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """A tool called with its defaults asks for what the command does by default (its model's DEFAULTS),
    except where it must be shorter (MCP_OWN_DEFAULTS)."""
    from flight_profiler.mcp.executor import parse_argv

    _private_dir(monkeypatch, tmp_path)
    differ = []
    for name, tool in _tools().items():
        for form in _forms(tool):
            for argv in _run(tool, form, monkeypatch):
                spec, request = parse_argv(argv)
                _, plain = parse_argv(_without_defaulted_options(spec, argv))
                differ += [
                    "%s %s: the tool asks %r, the command's default is %r"
                    % (name, key, request.get(key), plain.get(key))
                    for key in sorted(set(request) | set(plain))
                    if request.get(key) != plain.get(key) and (name, key) not in MCP_OWN_DEFAULTS
                ]
    assert not differ, "\n".join(differ)


def test_perf_tool_defaults_are_the_commands() -> None:
    from flight_profiler.mcp.options import option_default

    schema = _tools()["perf"].parameters["properties"]
    assert schema["format"]["default"] == option_default("perf", "--format")
    assert schema["rate"]["default"] == option_default("perf", "-r")
    assert set(schema["format"]["enum"]) == set(option_action_choices("perf", "--format"))


def option_action_choices(command: str, flag: str) -> list[Any]:
    from flight_profiler.mcp.options import option_action

    return list(option_action(command, flag).choices or ())


def test_mcp_numbers_generated_from_options_match_them() -> None:
    """Arguments made with ``option_field`` carry the option's range: the schema's bounds are the parser's."""
    from flight_profiler.mcp.options import bounds, option_action

    for command, flag, parameter in (
        ("getglobal", "-x", "expand"),
        ("vmtool", "-x", "expand"),
        ("vmtool", "-n", "limit"),
        ("watch", "-x", "expand"),
        ("tt", "-x", "expand"),
        ("trace", "-d", "depth"),
        ("mem", "-i", "interval_s"),
        ("mem", "--limit", "limit"),
        ("perf", "-r", "rate"),
        ("monitor", "-c", "cycle_s"),
        ("dashboard", "-i", "interval_ms"),
        ("thread", "-n", "top"),
        ("thread", "-i", "interval_ms"),
        ("logger", "--for", "for_s"),
        ("sc", "-n", "limit"),
        ("sm", "-n", "limit"),
    ):
        kind = option_action(command, flag).type
        assert isinstance(kind, NumberType), (command, flag)
        schema = _tools()[command].parameters["properties"][parameter]
        schema = next(variant for variant in schema.get("anyOf", [schema]) if variant.get("type") != "null")
        names = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum"}
        assert {names[key]: value for key, value in bounds(kind).items()} == {
            key: schema[key] for key in ("minimum", "exclusiveMinimum", "maximum") if key in schema
        }, (command, flag)
        for value in (schema.get("minimum"), schema.get("maximum")):
            if value is not None:
                assert kind.accepts(value)
