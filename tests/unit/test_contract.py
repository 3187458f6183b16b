"""One contract per command: its ``model.py`` against every other place that describes it.

A command's request and events are declared once, as TypedDicts in
``commands/<cmd>/model.py`` (read here from the source: they exist only for the type
checker, the target never imports ``typing``), with the defaults both halves use in
``DEFAULTS``. These tests fail when a surface drifts from it: the requests the parser
builds, the parser's defaults, the client and agent registries, the usage line, the
MCP tools' command lines and the JSON schemas in docs/schema.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import importlib
import inspect
import json
import os
import re
import typing
from typing import Any, NamedTuple

import pytest
from mcp_recorder import Recorder

from flight_profiler import commands
from flight_profiler.agent import registry as agent_registry
from flight_profiler.cli import registry
from flight_profiler.commands.spec import CommandSpec
from flight_profiler.mcp.executor import parse_argv

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
PACKAGE = os.path.join(SRC, "flight_profiler")
SCHEMA_DIR = os.path.join(os.path.dirname(SRC), "docs", "schema")
SHARED = os.path.join(PACKAGE, "protocol", "requests.py")

# commands whose request another command's model declares
SHARED_MODELS = {"sm": "sc"}
# DEFAULTS keys that are not an option's default (positional numbers, values the client does not let the user set)
# (stack -n has no parser default: None lets it refuse -n for thread stacks; the callers form applies 5)
NOT_OPTIONS = {
    ("gilstat", "interval"),
    ("gilstat", "max_threads"),
    ("stack", "rate"),
    ("stack", "limit"),
    ("vmtool", "limit"),  # -n has no parser default: getInstances shows 10, referenceAnalyze 3
}
# option dest -> request key, where the parser names it differently
DEST_TO_KEY = {"limits": "limit"}


class Field(NamedTuple):
    annotation: str
    required: bool


class Shape(NamedTuple):
    """A TypedDict read from the source: its fields (inherited ones included)."""

    name: str
    fields: dict[str, Field]

    def keys(self) -> set[str]:
        return set(self.fields)

    def required(self) -> set[str]:
        return {name for name, field in self.fields.items() if field.required}

    def kinds(self) -> list[str]:
        """The values of a ``kind: Literal[...]`` field."""
        field = self.fields.get("kind")
        if field is None or not field.annotation.startswith("Literal["):
            return []
        node = ast.parse(field.annotation, mode="eval").body
        assert isinstance(node, ast.Subscript)
        values = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return [value.value for value in values if isinstance(value, ast.Constant) and isinstance(value.value, str)]


def _classes(path: str) -> tuple[dict[str, ast.ClassDef], dict[str, list[str]]]:
    """TypedDict-like classes and ``X = Union[...]`` aliases anywhere in the file (under TYPE_CHECKING too)."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
    classes = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    classes.update(_functional(tree))
    unions = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript):
            value = node.value
            if isinstance(value.value, ast.Name) and value.value.id == "Union" and isinstance(value.slice, ast.Tuple):
                unions[node.targets[0].id] = [elt.id for elt in value.slice.elts]  # type: ignore[attr-defined]
    return classes, unions


def _functional(tree: ast.AST) -> dict[str, ast.ClassDef]:
    """``X = TypedDict("X", {"return": ...}, total=False)`` (for keys that are keywords) as the class it means."""
    found = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign) or not isinstance(node.targets[0], ast.Name):
            continue
        call = node.value
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "TypedDict"):
            continue
        fields = call.args[1]
        assert isinstance(fields, ast.Dict)
        body: list[ast.stmt] = [
            ast.AnnAssign(target=ast.Name(id=key.value), annotation=value, simple=1)
            for key, value in zip(fields.keys, fields.values)
            if isinstance(key, ast.Constant) and isinstance(key.value, str)
        ]
        name = node.targets[0].id
        found[name] = ast.ClassDef(name=name, bases=[], keywords=call.keywords, body=body, decorator_list=[])
    return found


def _shape(name: str, classes: dict[str, ast.ClassDef]) -> Shape:
    node = classes[name]
    fields: dict[str, Field] = {}
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in classes:
            fields.update(_shape(base.id, classes).fields)
    total = not any(kw.arg == "total" and getattr(kw.value, "value", True) is False for kw in node.keywords)
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            fields[item.target.id] = Field(ast.unparse(item.annotation), total)
    return Shape(name, fields)


def model_path(command: str) -> str:
    return os.path.join(PACKAGE, "commands", SHARED_MODELS.get(command, command), "model.py")


def shapes(command: str) -> dict[str, Shape]:
    """Every TypedDict of the command's model, by name."""
    classes, _ = _classes(model_path(command))
    shared, _ = _classes(SHARED)
    everything = {**shared, **classes}
    return {name: _shape(name, everything) for name in classes}


def requests(command: str) -> list[Shape]:
    """The request shapes: ``<X>Request`` TypedDicts, or the members of a ``<X>Request = Union[...]``."""
    _, unions = _classes(model_path(command))
    found = shapes(command)
    union = [members for name, members in unions.items() if name.endswith("Request")]
    if union:
        return [found[name] for name in union[0]]
    return [shape for name, shape in found.items() if name.endswith("Request") and name not in _agent_only(command)]


def _agent_only(command: str) -> set[str]:
    return {"NamesRequest"} if command == "gilstat" else set()


def defaults(command: str) -> dict[str, Any]:
    module = importlib.import_module("flight_profiler.commands.%s.model" % SHARED_MODELS.get(command, command))
    found: dict[str, Any] = getattr(module, "DEFAULTS", {})
    return found


SPECS = registry.specs()


def _ids(spec: CommandSpec) -> str:
    return spec.name


def test_every_command_declares_its_request_in_its_model() -> None:
    for spec in SPECS:
        assert os.path.isfile(model_path(spec.name)), "%s has no model.py" % spec.name
        assert requests(spec.name), "%s's model.py declares no ...Request TypedDict" % spec.name


def test_models_never_import_typing_at_run_time() -> None:
    """The target loads every model.py: typing only under TYPE_CHECKING (a GIL round trip per import)."""
    for command in sorted(os.listdir(os.path.join(PACKAGE, "commands"))):
        path = os.path.join(PACKAGE, "commands", command, "model.py")
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        for node in tree.body:  # module level only: the TYPE_CHECKING block is an ``if``
            if isinstance(node, ast.ImportFrom):
                assert node.level > 0 or node.module == "__future__", "%s imports %s at run time" % (path, node.module)
            assert not isinstance(node, ast.Import), "%s imports at run time" % path


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_examples_build_requests_the_model_declares(spec: CommandSpec, tmp_path: Any) -> None:
    """Each documented example, parsed as the shell does, gives a request of one of the model's shapes."""
    shapes_ = requests(spec.name)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # perf and stack -f check that their file can be written
    try:
        for example in spec.examples:
            request = spec.parse_line(example[len(spec.name) :])
            fits = [shape.name for shape in shapes_ if shape.required() <= set(request) <= shape.keys()]
            assert fits, "%r gives keys %s; the model declares %s" % (
                example,
                sorted(request),
                {shape.name: sorted(shape.keys()) for shape in shapes_},
            )
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_parser_defaults_are_the_models(spec: CommandSpec) -> None:
    """The option that fills a request field defaults to the value the agent falls back on."""
    wanted = defaults(spec.name)
    options = {DEST_TO_KEY.get(action.dest, action.dest): action for action in spec.parser()._actions}
    for key, value in wanted.items():
        if (spec.name, key) in NOT_OPTIONS:
            continue
        assert key in options, "%s: DEFAULTS[%r] fills no option (add it to NOT_OPTIONS if meant)" % (spec.name, key)
        assert options[key].default == value, "%s %s: parser default %r, model %r" % (
            spec.name,
            "/".join(options[key].option_strings),
            options[key].default,
            value,
        )
        stated = re.search(r"\(default (-?[0-9.]+)", options[key].help or "")
        if stated is not None:
            assert float(stated.group(1)) == value, "%s: help of %s says default %s, model %r" % (
                spec.name,
                key,
                stated.group(1),
                value,
            )


def test_every_command_folder_is_listed_once() -> None:
    """A command is its folder plus its entry in ``commands.COMMANDS``: a folder left out is never offered."""
    root = os.path.join(PACKAGE, "commands")
    folders = {name for name in os.listdir(root) if os.path.isfile(os.path.join(root, name, "client.py"))}
    assert sorted(commands.COMMANDS) == sorted(folders)
    assert set(commands.CLIENT_ONLY) <= folders
    for name in commands.CLIENT_ONLY:
        assert not os.path.isfile(os.path.join(root, name, "agent.py")), "%s has an agent half" % name


def test_client_and_agent_registries_list_the_same_commands() -> None:
    assert set(agent_registry.HANDLERS) == set(registry.COMMANDS) - set(commands.CLIENT_ONLY)
    for command, module in agent_registry.HANDLERS.items():
        path = os.path.join(PACKAGE, *module.strip(".").split(".")) + ".py"
        assert os.path.isfile(path), "agent registry: %s -> %s, no such file" % (command, path)
        assert module == ".commands.%s.agent" % command


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_usage_names_only_options_the_parser_has(spec: CommandSpec) -> None:
    options = {flag for action in spec.parser()._actions for flag in action.option_strings}
    words = spec.usage.replace("[", " ").replace("]", " ").replace("|", " ").split()
    assert words[0] == spec.name
    unknown = [word for word in words if word.startswith("-") and word not in options]
    assert not unknown, "%s usage names %s, which the parser does not know" % (spec.name, unknown)


# ---------------------------------------------------------------- the events against docs/schema


def _schema_variants(command: str) -> dict[str, tuple[set[str], set[str]]]:
    """kind -> (properties, required) of each variant of docs/schema/<command>.json, refs followed."""
    with open(os.path.join(SCHEMA_DIR, "%s.json" % command), encoding="utf-8") as fh:
        schema = json.load(fh)
    found = {}
    for variant in schema.get("oneOf", [schema]):
        kind = variant.get("properties", {}).get("kind", {})
        if not isinstance(kind, dict) or not ("const" in kind or "enum" in kind):
            continue
        properties, required = set(variant["properties"]), set(variant.get("required", []))
        for part in variant.get("allOf", []):
            definition = _definition(part["$ref"], command)
            properties |= set(definition.get("properties", {}))
            required |= set(definition.get("required", []))
        for value in kind.get("enum", [kind.get("const")]):
            found[value] = (properties, required)
    return found


def _definition(ref: str, command: str) -> dict[str, Any]:
    """The ``$defs`` entry ``ref`` names: in another schema (``urn:...:calls#/$defs/x``) or this one."""
    name, path = ref.rsplit(":", 1)[-1].split("#/$defs/")
    with open(os.path.join(SCHEMA_DIR, "%s.json" % (name or command)), encoding="utf-8") as fh:
        definition: dict[str, Any] = json.load(fh)["$defs"][path]
    return definition


def _event_commands() -> list[str]:
    """Commands whose model declares events with a ``kind`` (the others are checked by their real output)."""
    names = []
    for spec in SPECS:
        events = [shape for name, shape in shapes(spec.name).items() if not name.endswith("Request")]
        if spec.name not in SHARED_MODELS and any(shape.kinds() for shape in events):
            names.append(spec.name)
    return names


def test_the_modelled_events_cover_the_instrumenting_commands() -> None:
    assert {"watch", "trace", "monitor", "line", "reload", "logger", "tt"} <= set(_event_commands())


@pytest.mark.parametrize("command", _event_commands())
def test_docs_schema_describes_the_models_events(command: str) -> None:
    """Every ``kind`` of event the model declares has the same fields, required alike, in the schema;
    and the schema has no kind the model lacks."""
    variants = _schema_variants(command)
    modelled = {}
    for shape in shapes(command).values():
        for kind in shape.kinds():
            if shape.name.endswith("Request"):
                continue
            modelled[kind] = shape
    assert set(modelled) == set(variants), "%s: model kinds %s, schema kinds %s" % (
        command,
        sorted(modelled),
        sorted(variants),
    )
    for kind, shape in modelled.items():
        properties, required = variants[kind]
        assert shape.keys() == properties, "%s %s: only in the model %s, only in the schema %s" % (
            command,
            kind,
            sorted(shape.keys() - properties),
            sorted(properties - shape.keys()),
        )
        assert shape.required() == required, "%s %s: required in the model %s, in the schema %s" % (
            command,
            kind,
            sorted(shape.required()),
            sorted(required),
        )


# ---------------------------------------------------------------- MCP tools against the parsers


def _tools() -> dict[str, Any]:
    """The MCP server's tools by name, each with the command lines its function builds."""
    pytest.importorskip("mcp")
    from flight_profiler.mcp import server

    built = server.build()
    manager = built._tool_manager  # the SDK keeps no public accessor for the registered functions
    return {tool.name: tool for tool in manager.list_tools()}


SAMPLES = {
    "module": "__main__",
    "method": "handle",
    "cls": "Inventory",
    "field": "SETTINGS",
    "expr": "target",
    "filter": "cost > 1",
    "filepath": "/tmp/x.py",
    "index": 1000,
    "pattern": "*Order*",
    "line": 10,
    "name": "root",
    "level": "DEBUG",
}


def test_every_mcp_tool_argument_builds_a_request_the_parser_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command tool, called with every argument set, runs an argument vector its command parses:
    the MCP schema cannot offer what the parser refuses (or names differently)."""
    tools = _tools()
    recorder = Recorder()
    checked = []
    for name, tool in tools.items():
        spec = registry.get(name)
        if spec is None or name in ("perf",):  # perf writes a file into a private directory first
            continue
        fn = tool.fn
        parameters = inspect.signature(fn).parameters
        for action in _actions(fn):
            arguments = {key: _sample(key, parameter) for key, parameter in parameters.items()}
            if action is not None:
                arguments["action"] = action
            if name == "vmtool" and action == "getInstances":
                arguments["expr"] = "instances"
            recorder.calls.clear()
            _bind(fn, recorder, monkeypatch)
            asyncio.run(fn(**arguments))
            for argv in recorder.calls:
                assert argv[0] == name, argv
                parse_argv(argv)
                checked.append(argv)
    assert len(checked) >= 8, checked


def _actions(fn: Any) -> list[str | None]:
    """Each value of the tool's ``action: Annotated[Literal[...], Field(...)]``, or [None]."""
    hint = typing.get_type_hints(fn, include_extras=True).get("action")
    if hint is None:
        return [None]
    literal = typing.get_args(hint)[0]
    return list(typing.get_args(literal))


def _sample(key: str, parameter: inspect.Parameter) -> Any:
    if key in SAMPLES:
        return SAMPLES[key]
    if key == "pid":
        return 1
    default = parameter.default
    if isinstance(default, bool):
        return True
    return default if default is not inspect.Parameter.empty else None


def _bind(fn: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the tool function's ``tools`` (a closure cell) at the recorder."""
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        if name == "tools":
            monkeypatch.setattr(cell, "cell_contents", recorder)


def test_argparse_namespace_is_not_what_crosses_the_wire() -> None:
    """Requests are plain JSON objects: no Namespace, no tuple sneaks into one."""
    for spec in SPECS:
        for example in spec.examples[:1]:
            try:
                request = spec.parse_line(example[len(spec.name) :])
            except Exception:
                continue
            assert json.loads(json.dumps(request)) == request
            assert not any(isinstance(value, argparse.Namespace) for value in request.values())
