"""The skill files: every command and option documented (and nothing else), examples still run.

Coverage is derived from the registries, so a new command or option fails here until a
skill documents it: the commands of cli/registry.py (hidden ones excepted), the shell
built-ins, the main program's options and the top-level subcommands (ps, install-skills,
mcp). The examples are re-run against the demo service (a fresh one per skill, as when they
were generated), a pre-fork server for ps and a small PyTorch model for torch, each skill's on
the oldest or the newest interpreter (``_edge_of``); regenerate them with tools/gen_skill_examples.py.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from flight_profiler.cli import registry
from flight_profiler.cli.demo import SERVICE
from flight_profiler.cli.main import build_parser
from flight_profiler.cli.subcommands import subcommands
from flight_profiler.skills import Skill, skills
from flight_profiler.skills.markers import (
    Example,
    Substitutions,
    examples,
    json_records,
    option_rows,
    option_tables,
    run_example,
)
from interpreters import spot_interpreters
from json_schemas import problems
from support import TARGETS

EDGES = spot_interpreters()  # the any_interpreter tier's: oldest and newest (tests/interpreters.py)
# built-ins take no options, except help's optional command name
BUILTIN_ARGUMENTS = {"help": {"command"}}
SKILLS = skills()
EXAMPLES = [(skill, index, example) for skill in SKILLS for index, example in enumerate(examples(skill.text))]


def documented_names(parser: argparse.ArgumentParser) -> set[str]:
    """What a skill must name for ``parser``: every option string, every positional."""
    names: set[str] = set()
    for action in parser._actions:  # argparse keeps no public list
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            names.update(action.option_strings)
        else:
            names.add(action.metavar if isinstance(action.metavar, str) else action.dest)
    return names


def expected() -> dict[str, set[str]]:
    """Every documented key and the names it must list."""
    wanted = {spec.name: documented_names(spec.parser()) for spec in registry.visible()}
    for name in registry.BUILTINS:
        wanted[name] = BUILTIN_ARGUMENTS.get(name, set())
    wanted["flight_profiler"] = documented_names(build_parser())
    for name, sub in subcommands().items():
        wanted["flight_profiler %s" % name] = documented_names(sub.parser())
    return wanted


def tables() -> dict[str, tuple[str, set[str]]]:
    """Documented key -> (skill name, names in its table); a key documented twice fails."""
    found: dict[str, tuple[str, set[str]]] = {}
    for skill in SKILLS:
        for key, names in option_tables(skill.text).items():
            assert key not in found, "%s is documented by both %s and %s" % (key, found[key][0], skill.name)
            found[key] = (skill.name, names)
    return found


def test_front_matter() -> None:
    assert SKILLS, "no skill files packaged"
    for skill in SKILLS:
        folder = os.path.basename(os.path.dirname(skill.path))
        assert skill.name == folder, "%s: name %r must match its folder" % (skill.path, skill.name)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", skill.name) and len(skill.name) <= 64
        assert 40 <= len(skill.description) <= 1024, "%s: description length %d" % (skill.name, len(skill.description))


def test_every_command_and_option_is_documented() -> None:
    documented = tables()
    missing = []
    for key, names in expected().items():
        if key not in documented:
            missing.append("%s: no skill documents it (add an '<!-- options: %s -->' table)" % (key, key))
            continue
        skill, listed = documented[key]
        missing += ["%s: %s is not in %s" % (key, name, skill) for name in sorted(names - listed)]
    assert not missing, "\n".join(missing)


def test_skills_document_nothing_that_does_not_exist() -> None:
    wanted = expected()
    extra = []
    for key, (skill, listed) in tables().items():
        if key not in wanted:
            extra.append("%s documents %r, which is not a command" % (skill, key))
            continue
        extra += [
            "%s documents %s %s, which does not exist" % (skill, key, name) for name in sorted(listed - wanted[key])
        ]
    assert not extra, "\n".join(extra)


def test_documented_defaults_match_the_parsers() -> None:
    """A number or word the parser defaults to must appear in the table's default column."""
    parsers: dict[str, argparse.ArgumentParser] = {spec.name: spec.parser() for spec in registry.visible()}
    parsers["flight_profiler"] = build_parser()
    parsers.update({"flight_profiler %s" % name: sub.parser() for name, sub in subcommands().items()})
    rows = {key: row for skill in SKILLS for key, row in option_rows(skill.text).items()}
    wrong = []
    for key, parser in parsers.items():
        for action in parser._actions:
            default = action.default
            if (
                isinstance(default, bool)
                or default is None
                or default == argparse.SUPPRESS
                or not action.option_strings
            ):
                continue
            shown = "%g" % default if isinstance(default, (int, float)) else str(default)
            cells = [cell for names, cell in rows.get(key, []) if names & set(action.option_strings)]
            if cells and shown not in cells[0]:
                wrong.append("%s %s: default %s, the skill says %r" % (key, action.option_strings[0], shown, cells[0]))
    assert not wrong, "\n".join(wrong)


def test_commands_that_change_the_target_say_so() -> None:
    documented = tables()
    for spec in registry.visible():
        if spec.name not in documented:
            continue  # reported by test_every_command_and_option_is_documented
        skill = next(s for s in SKILLS if s.name == documented[spec.name][0])
        says = "changes the target" in skill.description.lower()
        assert says == spec.changes_target, "%s: changes_target=%s but its skill's description %s" % (
            spec.name,
            spec.changes_target,
            "says so" if says else "does not say so",
        )


def test_the_overview_lists_every_command() -> None:
    attach = next(skill for skill in SKILLS if skill.name == "flight-profiler-attach")
    missing = [spec.name for spec in registry.visible() if "| `%s` |" % spec.name not in attach.text]
    assert not missing, "add to the Commands table of flight-profiler-attach: %s" % ", ".join(missing)


def test_examples_hold_generated_output() -> None:
    for skill, _, example in EXAMPLES:
        assert example.body.startswith("```text\n$ flight_profiler "), (
            "%s: example `%s` has no output: run tools/gen_skill_examples.py" % (skill.name, example.args)
        )


def test_marked_commands_exist() -> None:
    """Examples only use commands that exist (option tables are checked above)."""
    known = set(registry.COMMANDS) | set(registry.BUILTINS)
    for skill, _, example in EXAMPLES:
        match = re.search(r"--cmd [\"']([^\s\"']+)", example.args)
        if match:
            assert match.group(1) in known, "%s: example uses unknown command %r" % (skill.name, match.group(1))


class Targets:
    """A fresh demo service for each skill (its examples ran on a fresh one too), one pre-fork server."""

    def __init__(self, python: str, tmp: str) -> None:
        self.python = python
        self.tmp = tmp
        gunicorn = os.path.join(tmp, "gunicorn")
        shutil.copy(os.path.join(TARGETS, "ps_prefork.py"), gunicorn)
        self.prefork = self._start([python, gunicorn, "--workers", "2"])
        self.skill = ""
        self.next_index = 0  # the index of the skill's example its demo expects next
        self.demo: subprocess.Popen[str] | None = None

    def for_skill(self, skill: str, index: int = 0) -> Substitutions:
        """The skill's demo as its example ``index`` expects it: the earlier examples run first, in order.

        A skill's examples build on each other (``tt -i 1000`` after ``tt -t``); should this worker not
        have run the ones before (a fresh demo, or another order), they are run again here, unchecked.
        """
        if skill != self.skill or self.demo is None or index < self.next_index:
            self._stop_demo()
            self.demo, self.skill, self.next_index = self._start([self.python, SERVICE]), skill, 0
        values = {"pid": str(self.demo.pid), "prefork": str(self.prefork.pid), "demo": SERVICE, "tmp": self.tmp}
        subs = Substitutions(values)
        for earlier_skill, earlier, example in EXAMPLES:
            if earlier_skill.name == skill and self.next_index <= earlier < index and example.needs != "torch":
                run_example(example, subs)
        self.next_index = index + 1
        return subs

    def close(self) -> None:
        self._stop_demo()
        self._stop(self.prefork)

    @staticmethod
    def _start(argv: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline()
        return proc

    def _stop_demo(self) -> None:
        if self.demo is not None:
            subprocess.run(
                [sys.executable, "-m", "flight_profiler", str(self.demo.pid), "--cmd", "detach"], check=False
            )
            self._stop(self.demo)
            self.demo = None

    @staticmethod
    def _stop(proc: subprocess.Popen[str]) -> None:
        proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.fixture(scope="module")
def targets(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    """The demo and pre-fork server on the interpreter ``request.param`` (RUNS: an (id, path) of EDGES)."""
    running = Targets(request.param[1], str(tmp_path_factory.mktemp("examples")))
    yield running
    running.close()


@pytest.fixture(scope="module")
def torch_pid(torch_python: str) -> Iterator[int]:
    """The small PyTorch model the torch skill's examples ran against (its venv: ensure_torch_env.sh)."""
    proc = subprocess.Popen(
        [torch_python, os.path.join(TARGETS, "prof_torch_target.py")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
    yield proc.pid
    subprocess.run([sys.executable, "-m", "flight_profiler", str(proc.pid), "--cmd", "detach"], check=False)
    proc.kill()
    proc.wait(10)
    proc.stdout.close()


def _edge_of(position: int, skill: Skill) -> tuple[str, str]:
    """The one edge a skill's examples run on (all of them, in order, against one demo).

    Skills alternate between the oldest and the newest interpreter, so that both run about half of
    the examples; a skill with a gilstat example runs on the oldest (pyenv's keep their symbols; the
    newest here is Debian's, stripped: its gilstat examples were skipped), one with a torch example
    on the newest (that process is the torch venv's own, beside the newest's demo). Every example ran
    on both edges before: 204 runs, 3 min of the parallel pass; the commands themselves are tested on
    every interpreter elsewhere, what these check is that the documented lines still run and print
    the documented shapes.
    """
    needs = {example.needs for example in examples(skill.text)}
    if "gil-symbols" in needs:
        return EDGES[0]
    if "torch" in needs:
        return EDGES[-1]
    return EDGES[position % len(EDGES)]


RUNS = sorted(
    (
        (_edge_of(position, skill), skill, index, example)
        for position, skill in enumerate(SKILLS)
        for index, example in enumerate(examples(skill.text))
    ),
    key=lambda run: EDGES.index(run[0]),  # edge by edge: one demo per edge (the module-scoped ``targets``)
)


@pytest.mark.parametrize(
    ("targets", "skill", "index", "example"),
    RUNS,
    indirect=["targets"],
    ids=["%s-%s-%d" % (edge[0], skill.name[16:], index) for edge, skill, index, _ in RUNS],
)
def test_example_runs(
    targets: Targets, skill: Skill, index: int, example: Example, request: pytest.FixtureRequest
) -> None:
    subs = targets.for_skill(skill.name, index)
    if example.needs == "torch":
        subs = Substitutions(dict(subs.values, torch=str(request.getfixturevalue("torch_pid"))))
    _check_needs(example, int(subs.values["pid"]))
    proc = run_example(example, subs)
    failed = proc.returncode != 0
    assert failed == example.fails, "%s: `%s` exited %d\n%s%s" % (
        skill.name,
        example.args,
        proc.returncode,
        proc.stdout,
        proc.stderr,
    )
    assert "Traceback (most recent call last)" not in proc.stderr
    if example.is_json:
        _same_shape(json_records(example.stored_output()), json_records(proc.stdout), example)


def _check_needs(example: Example, pid: int) -> None:
    """Skip examples whose requirement this target does not meet (a stripped interpreter for gilstat)."""
    if example.needs == "gil-symbols":
        from flight_profiler.commands.gilstat.probe import GilUnavailable, find_functions

        try:
            find_functions(pid)
        except GilUnavailable as exc:
            pytest.skip(str(exc))
    elif example.needs and example.needs != "torch":
        raise AssertionError("unknown requirement needs=%s in `%s`" % (example.needs, example.args))


def _same_shape(stored: list[dict[str, Any]], fresh: list[dict[str, Any]], example: Example) -> None:
    assert stored, "stored output of `%s` has no JSON line" % example.args
    if len(fresh) != len(stored) and _periodic(stored):
        # a periodic report (gilstat's intervals) has as many lines as intervals the machine's load
        # allowed; what must match is each line's shape
        assert fresh, (example.args, fresh)
        stored = [stored[min(i, len(stored) - 1)] for i in range(len(fresh))]
    assert len(fresh) == len(stored), (example.args, fresh)
    for old, new in zip(stored, fresh):
        assert set(new) == set(old), (example.args, new)
        if "result" in old:
            assert set(new["result"]) == set(old["result"]), (example.args, new)
        assert not problems(new), (example.args, problems(new))


def _periodic(records: list[dict[str, Any]]) -> bool:
    """Every record after the first has the same keys (results of one kind, repeated)."""
    shapes = {(tuple(sorted(r)), tuple(sorted(r.get("result") or {}))) for r in records[1:]}
    return len(shapes) <= 1 and len(records) > 1


def test_install_skills(tmp_path: Any) -> None:
    explicit = tmp_path / "explicit"
    result = subprocess.run(
        [sys.executable, "-m", "flight_profiler", "install-skills", "--dir", str(explicit), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    [record] = json_records(result.stdout)
    assert not problems(record)
    assert len(record["result"]["installed"]) == len(SKILLS)
    for skill in SKILLS:
        with open(explicit / skill.name / "SKILL.md", encoding="utf-8") as fh:
            assert fh.read() == skill.text
    home = tmp_path / "home"
    env = dict(os.environ, HOME=str(home))
    subprocess.run(
        [sys.executable, "-m", "flight_profiler", "install-skills"], env=env, capture_output=True, check=True
    )
    for base in (".claude/skills", ".agent/skills"):
        assert sorted(os.listdir(home / base)) == sorted(skill.name for skill in SKILLS)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_install_skills_refuses_a_directory_another_user_controls(tmp_path: Any) -> None:
    """Root removes and copies folders there: the other user could swap them for links meanwhile."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 4242, 4242)
    result = subprocess.run(
        [sys.executable, "-m", "flight_profiler", "install-skills", "--dir", str(theirs / "skills")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and "belongs to uid 4242" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert os.listdir(theirs) == []
