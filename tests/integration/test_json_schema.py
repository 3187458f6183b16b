"""Real --json output of every command validated against docs/schema, on every interpreter.

Each command needs real output checked here: a line in CASES, or a --json example in its
skill (re-run and validated by test_skills.py). The schema files are strict, so a field
added without documenting it fails too.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from flight_profiler.cli import registry
from flight_profiler.cli.demo import SERVICE
from flight_profiler.skills import skills
from flight_profiler.skills.markers import examples, json_records
from inproc_client import client
from interpreters import find_interpreters
from json_schemas import SCHEMA_DIR, problems, schemas
from support import cli

INTERPRETERS = find_interpreters()
DOC = os.path.join(os.path.dirname(SCHEMA_DIR), "json-schema.md")

# command lines covering every result shape (in order: the tt lines use the records made before);
# "{demo}" is the demo service's file, "{tmp}" a scratch directory
CASES = [
    "stack",
    "stack -a",
    "stack -a -n 1",  # not_shown
    "getglobal __main__ SETTINGS -x 2",
    "getglobal __main__ inventory -x 2",
    "getglobal __main__ Inventory capacity",
    "getglobal __main__ SETTINGS -e \"target['retry']\"",
    "getglobal __main__ SETTINGS -e \"target['missing']\"",
    "getglobal __main__ SETTINGS -r",
    "getglobal __main__ processed -v",
    "getglobal __main__ SETTING",
    "vmtool -a getInstances -c __main__ Inventory -x 2",
    "vmtool -a getInstances -c __main__ PaymentGateway -e len(instances)",
    "vmtool -a getInstances -c __main__ PaymentGateway -e instances[5]",
    "vmtool -a referenceAnalyze -c __main__ Order -n 2",
    "vmtool -a forceGc",
    "module {demo}",
    "module /nonexistent/x.py",
    "console -c \"print('hi'); 6 * 7\"",
    "console -c 1/0",
    "console -c 'x ='",
    "watch __main__ PaymentGateway charge -e -n 1 -x 2",
    "watch __main__ handle -f 1/0 -n 1",
    "trace __main__ handle -n 1 -i 0",
    "tt -t __main__ Inventory reserve -n 2",
    "tt -l",
    "tt -i 1000 -p",
    "tt -d 1001",
    "tt -da",
    "reload __main__ Inventory reserve",
    "mem summary --limit 3",
    "mem top -i 0.5 --limit 3",
    "perf -d 0.5 -f {tmp}/profile.txt --format raw",
]


def covered_commands() -> set[str]:
    """Commands whose real --json output some test validates."""
    names = {case.split()[0] for case in CASES}
    for skill in skills():
        for example in examples(skill.text):
            words = example.args.replace('"', " ").replace("'", " ").split()
            if example.is_json and "--cmd" in words:
                names.add(words[words.index("--cmd") + 1])
    return names


def test_schemas_are_valid_json_schema() -> None:
    for name, schema in schemas().items():
        Draft202012Validator.check_schema(schema)
        assert schema["$id"] == "urn:flight_profiler:schema:%s" % name, name


def test_every_command_has_a_schema_a_section_and_real_output_checked() -> None:
    with open(DOC, encoding="utf-8") as fh:
        doc = fh.read()
    covered = covered_commands()
    missing = []
    for name in [spec.name for spec in registry.visible()] + ["flight_profiler ps", "flight_profiler install-skills"]:
        short = name.split()[-1]
        if short not in schemas():
            missing.append("%s: no docs/schema/%s.json" % (name, short))
        if "### `%s`" % name not in doc:
            missing.append("%s: no '### `%s`' section in docs/json-schema.md" % (name, name))
        if name in registry.COMMANDS and name not in covered:
            missing.append("%s: no real output validated (add a CASES line or a --json example in its skill)" % name)
    assert not missing, "\n".join(missing)


class Demo:
    """The demo service, its stderr kept so that a crash can be explained."""

    def __init__(self, python: str, stderr_path: str) -> None:
        self.stderr = open(stderr_path, "w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([python, SERVICE], stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().startswith("demo service running")
        self.pid = self.proc.pid

    def check_alive(self, after: str) -> None:
        code = self.proc.poll()
        if code is not None:
            self.stderr.seek(0)
            raise AssertionError("the target died (exit %s) after %r:\n%s" % (code, after, self.stderr.read()[-2000:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            cli(self.pid, "detach")
            self.proc.kill()
        self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.close()


@pytest.fixture(scope="module", params=INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def demo_service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    service = Demo(request.param[1], str(tmp_path_factory.mktemp("demo") / "stderr.txt"))
    yield service
    service.stop()


@pytest.fixture
def demo(demo_service: Demo) -> int:
    demo_service.check_alive("the previous test")
    return demo_service.pid


def per_interpreter(cases: list[str]) -> list[Any]:
    """The first line of each command on every interpreter (its real output, each time, from the real CLI);
    the other lines are variants of the same command's output: the any_interpreter tier (tests/conftest.py),
    run by the client in this process (``inproc_client``: the same --json lines, without a process start)."""
    seen: set[str] = set()
    params: list[Any] = []
    for line in cases:
        command = line.split()[0]
        params.append(line if command not in seen else pytest.param(line, marks=pytest.mark.any_interpreter))
        seen.add(command)
    return params


@pytest.mark.parametrize("line", per_interpreter(CASES))
def test_real_output_matches_the_schema(
    demo_service: Demo, line: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    demo_service.check_alive("the previous test")
    run = client if request.node.get_closest_marker("any_interpreter") else cli
    result = run(demo_service.pid, line.replace("{demo}", SERVICE).replace("{tmp}", str(tmp_path)))
    demo_service.check_alive(line)  # no command may take the target down
    assert result.records, (line, result.stderr)
    for record in result.records:
        assert not problems(record), (line, record, problems(record))


def test_subcommand_output_matches_the_schema(demo: int, tmp_path: Any) -> None:
    for argv in (["ps", str(demo), "--json"], ["install-skills", "--dir", str(tmp_path), "--json"]):
        proc = subprocess.run([sys.executable, "-m", "flight_profiler", *argv], capture_output=True, text=True)
        records = [json.loads(line) for line in proc.stdout.splitlines()]
        assert proc.returncode == 0 and len(records) == 1, proc.stderr
        assert not problems(records[0]), problems(records[0])


def test_help_is_a_record_that_matches_the_schema(demo: int) -> None:
    """``help`` with --json printed its text to stderr and nothing to stdout: a script or an agent
    asking for JSON got no record at all."""
    for line, check in (
        ("help", lambda result: "watch" in [c["name"] for c in result["commands"]]),
        ("help watch", lambda result: ["-f", "--filter"] in [o["names"] for o in result["options"]]),
        ("help detach", lambda result: result["command"] == "detach"),
    ):
        result = cli(demo, line)
        assert result.returncode == 0 and len(result.records) == 1, (line, result.stdout, result.stderr)
        [record] = result.records
        assert record["command"] == "help" and not problems(record), (line, problems(record))
        assert check(record["result"]), (line, record)
        assert not result.stderr.strip(), (line, result.stderr)
    unknown = cli(demo, "help nosuch")
    assert unknown.returncode != 0 and unknown.records[0]["error"].startswith("unknown command 'nosuch'")


@pytest.mark.any_interpreter  # the schema check is the client's; the record is only its input
def test_the_schemas_reject_drift(demo: int) -> None:
    """A renamed, retyped or undocumented field is caught (so the tests above can fail)."""
    [record] = client(demo, "getglobal __main__ SETTINGS -x 2").records
    assert not problems(record)
    renamed = copy.deepcopy(record)
    renamed["result"]["value_tree"] = renamed["result"].pop("value")
    retyped = copy.deepcopy(record)
    retyped["result"]["value"]["items"][0][1]["v"] = {"nested": 1}
    versioned = dict(record, schema=2)
    for bad in (renamed, retyped, versioned, {"schema": 1, "command": "getglobal"}):
        assert problems(bad), bad


def test_stored_skill_examples_match_the_schema() -> None:
    """Without a target: the JSON lines stored in the skills are valid output too."""
    for skill in skills():
        for example in examples(skill.text):
            if example.is_json:
                for record in json_records(example.stored_output()):
                    assert not problems(record), (skill.name, example.args, problems(record))
