"""The surfaces that stay written by hand, held to the declarations they repeat.

Generated elsewhere (test_surfaces.py): usage lines, help, completion, the skills' option tables and Usage
blocks, README's Commands table, the attach skill's command table and its ``help`` example (both from
``SPEC.summary``). Written by hand because they say more than a declaration can, and checked
here against it: the MCP skill's tool table and description (against the MCP server's tools), which tools
say they change the target (against ``SPEC.changes_target``), each command's prose descriptions (README's
``overview`` and its skill's description: the options they name, and whether the skill says the command
changes the target), docs/json-schema.md's sections and docs/schema's files (against the
commands; the page must name every field of each schema), the lists of commands that change the target in
README and the MCP skill, the few lists of command names kept in code, and each MCP tool's readOnlyHint
(against what ``--read-only`` refuses).
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from mcp_recorder import Recorder

from flight_profiler.cli import registry
from flight_profiler.skills import Skill, skills
from flight_profiler.skills.markers import option_tables

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCUMENTED = registry.visible()
_CODE = re.compile(r"`([^`]+)`")


def _skill(name: str) -> Skill:
    return next(skill for skill in skills() if skill.name == name)


def _table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of each row of the markdown table that starts with ``header``."""
    rows = []
    for line in text.split(header, 1)[1].splitlines()[1:]:
        if not line.startswith("|"):
            break
        if set(line) <= set("|-: "):
            continue
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def _tools() -> dict[str, Any]:
    pytest.importorskip("mcp")
    from flight_profiler.mcp import server

    manager = server.build()._tool_manager  # the SDK keeps no public accessor for the registered tools
    return {tool.name: tool for tool in manager.list_tools()}


def _destructive(tool: Any) -> bool:
    return bool(tool.annotations.destructive_hint)


# ---------------------------------------------------------------- MCP


def test_mcp_tools_mark_changes_as_their_commands_declare() -> None:
    """A tool named after a command changes the target (description and destructiveHint) exactly when the
    command's SPEC says it can."""
    wrong = []
    for name, tool in _tools().items():
        spec = registry.get(name)
        if spec is None:
            continue
        says = "CHANGES THE TARGET" in tool.description.upper()
        if says != spec.changes_target or _destructive(tool) != spec.changes_target:
            wrong.append(
                "%s: changes_target=%s; the tool's description says so: %s, its destructiveHint: %s"
                % (name, spec.changes_target, says, _destructive(tool))
            )
    assert not wrong, "\n".join(wrong)


def _mcp_skill_tools() -> dict[str, tuple[list[str], str, str]]:
    """The MCP skill's Tools table: tool -> (parameter names in order, the parameters cell, the "changes" cell)."""
    found = {}
    for names, parameters, changes in _table_rows(_skill("flight-profiler-mcp").text, "| tool | parameters |"):
        cell = parameters.split(" — ", 1)[0]  # after " — ": a remark on the result
        for name in _CODE.findall(names):
            found[name] = (_CODE.findall(re.sub(r"\([^)]*\)", "", cell)), cell, changes)  # not the remarks
    return found


def test_mcp_skill_lists_every_tool_with_its_parameters() -> None:
    """The MCP skill's Tools table has a row per tool of the server, with its parameters in order (the choices
    of each that has some, in parentheses) and "no" in its last cell exactly when the tool cannot change the
    target (destructiveHint)."""
    tools = _tools()
    listed = _mcp_skill_tools()
    assert sorted(listed) == sorted(tools), "the MCP skill's Tools table: only there %s, only in the server %s" % (
        sorted(set(listed) - set(tools)),
        sorted(set(tools) - set(listed)),
    )
    wrong = []
    for name, tool in tools.items():
        parameters, cell, changes = listed[name]
        properties = tool.parameters["properties"]
        if parameters != list(properties):
            wrong.append("%s: the skill lists %s, the tool has %s" % (name, parameters, list(properties)))
        if changes.startswith("no") == _destructive(tool):
            wrong.append("%s: 'changes the target' says %r, destructiveHint %s" % (name, changes, _destructive(tool)))
        for parameter, schema in properties.items():
            choices = schema.get("enum")
            shown = re.search(r"`%s` \(([^)]*)\)" % parameter, cell)
            if choices and (shown is None or shown.group(1).split(", ") != choices):
                wrong.append("%s %s: the skill shows %s, the tool offers %s" % (name, parameter, shown, choices))
    assert not wrong, "\n".join(wrong)


def test_mcp_skill_description_names_every_tool() -> None:
    description = _skill("flight-profiler-mcp").description
    named = set(re.findall(r"[a-z]+", description.split(" as tools", 1)[0]))
    missing = sorted(name for name in _tools() if name != "command" and name not in named)
    assert not missing, "the MCP skill's description does not name %s" % missing


# ---------------------------------------------------------------- the target-changing commands, in words


def test_commands_that_change_the_target_are_named_where_users_read_it() -> None:
    """README's sentence under the Commands table and the MCP skill's ``--read-only`` row name every command
    whose SPEC says it can change the target (``tt -p``, ``logger --level``: the command's name leads)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    sentence = readme.split("Commands that change the target are marked in `help`:", 1)[1].split("\n\n", 1)[0]
    read_only = next(
        line for line in _skill("flight-profiler-mcp").text.splitlines() if line.startswith("| `--read-only` |")
    )
    changing = [spec.name for spec in DOCUMENTED if spec.changes_target]
    for where, text in (("README", sentence), ("the MCP skill's --read-only row", read_only)):
        named = {code.split()[0] for code in _CODE.findall(text)}
        missing = [name for name in changing if name not in named]
        assert not missing, "%s does not name %s, which can change the target" % (where, missing)


# ---------------------------------------------------------------- each command's description, in prose

# an option named in prose: ``-d``, ``--budget``, ``-nm`` (not ``pre-fork``, ``p50``, ``a/-b``)
_FLAG = re.compile(r"(?<![\w/.-])(--?[A-Za-z][\w-]*)")


def _skill_of() -> dict[str, Skill]:
    """The skill that documents each command: the one holding its options table."""
    return {key: skill for skill in skills() for key in option_tables(skill.text)}


def _main_flags() -> set[str]:
    from flight_profiler.cli.main import build_parser

    return set(build_parser()._option_string_actions)  # argparse keeps no public map of them


def test_prose_descriptions_name_only_options_their_command_has() -> None:
    """A command is described in prose three times, each for its reader: ``SPEC.summary`` (help's list, the
    attach skill's command table, the MCP tool's description: generated from it), ``SPEC.overview``
    (README's Commands table) and the front-matter description of the skill that documents it (what an AI
    agent reads to pick the skill). An option any of them names must be one of the command's (or the
    program's: ``--cmd``): a renamed or removed option leaves no stale mention behind."""
    owner = _skill_of()
    main_flags = _main_flags()
    wrong = []
    for spec in DOCUMENTED:
        skill = owner[spec.name]
        # a skill that documents several commands (search: sc and sm) may name the options of each
        flags = set(main_flags)
        for name in _commands_of(skill, owner):
            flags.update(_spec(name).parser()._option_string_actions)  # argparse keeps no public map of them
        for where, text in (
            ("SPEC.summary", spec.summary),
            ("SPEC.overview", spec.overview),
            ("%s's description" % skill.name, skill.description),
        ):
            unknown = sorted(set(_FLAG.findall(text)) - flags)
            if unknown:
                wrong.append("%s: %s names %s, which %s does not have" % (spec.name, where, unknown, spec.name))
    assert not wrong, "\n".join(wrong)


def _spec(name: str) -> Any:
    spec = registry.get(name)
    assert spec is not None, name
    return spec


def _commands_of(skill: Skill, owner: dict[str, Skill]) -> list[str]:
    return [name for name, holder in owner.items() if holder.name == skill.name and name in registry.COMMANDS]


def test_skill_descriptions_say_whether_the_command_changes_the_target() -> None:
    """The description of the skill that documents a command says "changes the target" exactly when
    ``SPEC.changes_target`` is set, and "read-only" when it is not: an agent picks a skill by that text
    alone, and must not run a target-changing one unawares (help and the MCP tool derive their mark from
    ``changes_target``; this is the one place that says it in words)."""
    wrong = []
    for spec in DOCUMENTED:
        skill = _skill_of()[spec.name]
        if _commands_of(skill, _skill_of()) != [spec.name]:
            continue  # a skill of several commands says it per command (checked by reading, not here)
        text = skill.description.lower()
        if ("changes the target" in text) != spec.changes_target:
            wrong.append(
                "%s: changes_target=%s, its skill's description: %r"
                % (spec.name, spec.changes_target, skill.description)
            )
        elif not spec.changes_target and "read-only" not in text:
            wrong.append("%s: its skill's description does not say it is read-only" % spec.name)
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------- docs/json-schema.md and docs/schema


SCHEMA_DIR = os.path.join(ROOT, "docs", "schema")
# schema files that are not a command's: the envelope, shared pieces, the MCP result, the program's subcommands
SCHEMA_PIECES = {"envelope", "value", "calls", "mcp-result", "ps", "install-skills", "help"}
DOC_EXTRA = {"detach", "help", "flight_profiler ps", "flight_profiler install-skills"}


def test_json_schema_doc_and_files_are_the_commands() -> None:
    """docs/schema has a file per command and docs/json-schema.md a section per command, and neither has one for
    a command that does not exist (a renamed or removed command's leftovers)."""
    files = {name[: -len(".json")] for name in os.listdir(SCHEMA_DIR) if name.endswith(".json")}
    commands = {spec.name for spec in DOCUMENTED}
    assert files - SCHEMA_PIECES == commands, "docs/schema: only there %s, no file for %s" % (
        sorted(files - SCHEMA_PIECES - commands),
        sorted(commands - files),
    )
    with open(os.path.join(ROOT, "docs", "json-schema.md"), encoding="utf-8") as fh:
        doc = fh.read()
    sections = set(re.findall(r"^### `([^`]+)`", doc, re.M))
    assert sections - DOC_EXTRA == commands, "docs/json-schema.md: sections only there %s, none for %s" % (
        sorted(sections - DOC_EXTRA - commands),
        sorted(commands - sections),
    )
    for name in sections - {"detach"}:
        short = name.split()[-1]
        assert "(schema/%s.json)" % short in doc, "docs/json-schema.md's %s section links no schema/%s.json" % (
            name,
            short,
        )


def _doc_sections() -> tuple[dict[str, str], str]:
    """docs/json-schema.md's sections by schema name (``flight_profiler ps`` -> ``ps``), and the shared pieces'."""
    with open(os.path.join(ROOT, "docs", "json-schema.md"), encoding="utf-8") as fh:
        doc = fh.read()
    sections, shared = {}, ""
    for section in re.split(r"^### ", doc, flags=re.M)[1:]:
        if section.startswith("Instrumentation: shared pieces"):
            shared = section
        named = re.match(r"`([^`]+)`", section)
        if named:
            sections[named.group(1).split()[-1]] = section
    return sections, shared


def _named(text: str) -> set[str]:
    """The words inside the code spans of ``text``: `` `frames[]` (`name`, `file`) `` names frames, name, file."""
    return {word for code in _CODE.findall(text) for word in re.findall(r"[A-Za-z_]\w*", code)}


def _fields(node: Any, depth: int = 0) -> set[str]:
    """The properties of a result schema and of its variants (``oneOf``/``allOf``), not of nested objects."""
    found = set(node.get("properties", {})) if depth <= 2 else set()
    for key in ("oneOf", "anyOf", "allOf"):
        for variant in node.get(key, []):
            found |= _fields(variant, depth + 1)
    return found


def test_json_schema_doc_names_every_field_of_each_result() -> None:
    """Each field a command's schema allows in its results is named in its docs/json-schema.md section (or in
    the shared pieces' section when its schema uses calls.json, or in the section it says it is "as");
    ``kind`` values are named, not the word."""
    import json

    sections, shared = _doc_sections()
    missing = []
    for name, section in sorted(sections.items()):
        path = os.path.join(SCHEMA_DIR, "%s.json" % name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as fh:
            raw = fh.read()
        named = _named(section) | {"kind"}
        if "urn:flight_profiler:schema:calls" in raw:
            named |= _named(shared)
        for other in re.findall(r"\b[Aa]s `?(\w+)`?", section):
            named |= _named(sections.get(other, ""))
        missing += ["%s: %s" % (name, field) for field in sorted(_fields(json.loads(raw)) - named)]
    assert not missing, "fields of docs/schema not named in docs/json-schema.md:\n" + "\n".join(missing)


# ---------------------------------------------------------------- lists of command names kept in code


def test_command_names_kept_in_code_are_commands() -> None:
    """The few places that name commands in code (which run on the session's thread, which leave nothing to
    sweep, which need the MCP read-only refusal for some requests only, the CLI's aliases) name real ones: a
    renamed or removed command would leave them silently naming nothing."""
    from flight_profiler.agent.registry import QUICK
    from flight_profiler.agent.session import PASSIVE_COMMANDS
    from flight_profiler.cli.runner import ALIASES
    from flight_profiler.mcp.executor import _CHANGES_WHEN

    names = set(registry.COMMANDS)
    changing = {spec.name for spec in registry.specs() if spec.changes_target}
    assert names >= QUICK, sorted(QUICK - names)
    assert names - changing >= PASSIVE_COMMANDS, "passive commands must exist and never change the target"
    assert set(_CHANGES_WHEN) <= changing, "only a command that can change the target needs a 'changes when' rule"
    assert set(ALIASES.values()) <= names and not set(ALIASES) & names, ALIASES


# a value for each optional text parameter a tool may pass to its command, so each call asks for all it can
_FILLED = {"expr": "1", "filter": "1", "filepath": "/tmp/fp-unit-crosscheck.out", "level": "DEBUG"}


def test_mcp_read_only_hint_agrees_with_the_executors_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool that can build a request ``--read-only`` refuses (it changes the target, runs Python there or writes
    a file: ``executor.not_read_only``, judged on the command's own parser) never claims readOnlyHint."""
    import asyncio
    import inspect

    from flight_profiler.mcp import server
    from flight_profiler.mcp.executor import not_read_only, parse_argv

    monkeypatch.setattr(server, "private_output_dir", lambda: "/tmp")
    wrong = []
    for name, tool in _tools().items():
        if registry.get(name) is None:
            continue
        parameters = inspect.signature(tool.fn).parameters
        base: dict[str, Any] = {"pid": 1, "timeout_s": 1e6, "module": "m", "method": "f", "field": "F", "cls": "C"}
        base.update({"pattern": "x", "line": 3, "index": 1, "thread_id": 7, "name": "root", "filepath": "/tmp/x.py"})
        base.update(_FILLED)
        arguments = {key: value for key, value in base.items() if key in parameters}
        modes = [
            {mode: choice}
            for mode in ("action", "view")
            for choice in tool.parameters["properties"].get(mode, {}).get("enum", [])
        ] or [{}]
        recorder = Recorder()
        for cell_name, cell in zip(tool.fn.__code__.co_freevars, tool.fn.__closure__ or ()):
            if cell_name == "tools":
                monkeypatch.setattr(cell, "cell_contents", recorder)
        for mode in modes:
            try:
                asyncio.run(tool.fn(**arguments, **mode))
            except RuntimeError:
                continue  # a combination the tool itself refuses
        reasons = {not_read_only(*parse_argv(argv)) for argv in recorder.calls} - {""}
        if reasons and tool.annotations.read_only_hint:
            wrong.append("%s claims readOnlyHint, but a call of it %s" % (name, sorted(reasons)))
    assert not wrong, "\n".join(wrong)
